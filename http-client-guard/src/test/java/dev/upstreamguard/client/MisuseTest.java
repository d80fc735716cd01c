package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class MisuseTest {

    @Test
    void refusesSchemesOtherThanHttpBeforeOpeningAnyConnection() throws Exception {
        try (GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            UpstreamException e = catchThrowableOfType(UpstreamException.class,
                    () -> client.execute(new HttpGet("ftp://127.0.0.1:21/file"), r -> r.getCode()));

            assertThat(e.fault()).isEqualTo(UpstreamFault.PROXY_CONFIGURATION_ERROR);
            assertThat(e.fault().status()).isEqualTo(500);
            assertThat(e.attempts()).isZero();
        }
    }

    @Test
    void aCallOnAClosedClientFailsAsAnUpstreamExceptionKeepingTheCause() throws Exception {
        GuardedHttpClient client = GuardedHttpClients.createDefault();
        client.close();

        UpstreamException e = catchThrowableOfType(UpstreamException.class,
                () -> client.execute(new HttpGet("http://127.0.0.1:9/"), r -> r.getCode()));

        assertThat(e.fault()).isEqualTo(UpstreamFault.PROXY_INTERNAL_ERROR);
        assertThat(e.attempts()).isEqualTo(1);
        assertThat(e.getCause()).isInstanceOf(IllegalStateException.class);
    }
}
