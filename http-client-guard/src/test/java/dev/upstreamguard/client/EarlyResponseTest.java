package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import dev.upstreamguard.testing.TestTls;
import java.io.IOException;
import java.time.Duration;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.classic.methods.HttpPost;
import org.apache.hc.core5.http.ContentType;
import org.apache.hc.core5.http.io.entity.ByteArrayEntity;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * An upstream that refuses a request body half way — it answers (413, 401…) and closes without reading the rest —
 * gave a valid answer: the caller gets it (RFC 9112 §9.5), not a broken connection; over plain HTTP and TLS alike.
 */
@Timeout(60)
class EarlyResponseTest {

    /** Far more than the socket buffers hold, so the upstream's close hits the client while it is still sending. */
    static final int BODY_BYTES = 8 * 1024 * 1024;

    static final String TOO_LARGE = "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 8"
            + "\r\n\r\ntoo big!";

    /** Regression (tls=true): over TLS the answer was lost, a broken pipe reported as connection_terminated. */
    @ParameterizedTest(name = "reset={0}, tls={1}")
    @CsvSource({"false, false", "true, false", "false, true", "true, true"})
    void anAnswerSentBeforeTheWholeBodyWasReadReachesTheCaller(boolean reset, boolean tls) throws Exception {
        RawUpstream.Behaviour healthy = c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        };
        RawUpstream.Behaviour early = Behaviours.answerBeforeTheBody(TOO_LARGE, reset);
        GuardedHttpClientBuilder builder = GuardedHttpClients.custom().defaults(GuardPolicy.builder()
                .connectTimeout(Duration.ofSeconds(10)).responseTimeout(Duration.ofSeconds(10)).build());
        try (RawUpstream upstream = tls ? RawUpstream.startTls(false, early, healthy)
                        : RawUpstream.start(early, healthy);
                GuardedHttpClient client = tls ? builder.sslContext(TestTls.clientContext()).build()
                        : builder.build()) {
            HttpPost post = new HttpPost(upstream.baseUrl() + "/upload");
            post.setEntity(new ByteArrayEntity(new byte[BODY_BYTES], ContentType.APPLICATION_OCTET_STREAM));
            String seen = client.execute(post, r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(seen).isEqualTo("413 too big!");

            // The connection, with half a body in it, is never reused.
            String next = client.execute(new HttpGet(upstream.baseUrl() + "/next"),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(next).isEqualTo("200 ok");
            assertThat(upstream.connectionCount()).isEqualTo(2);
        } catch (IOException e) {
            throw new AssertionError("the early answer was lost", e);
        }
    }
}
