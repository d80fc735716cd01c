package dev.upstreamguard.gateway.internal;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import java.io.IOException;
import java.net.ConnectException;
import java.time.Duration;
import org.apache.hc.client5.http.HttpHostConnectException;
import org.junit.jupiter.api.Test;

class FaultResponseWriterTest {

    @Test
    void theLogLineNamesUpstreamFaultAttemptsElapsedTimeAndTheRootCausesClass() {
        UpstreamException fault = new UpstreamException(UpstreamFault.CONNECTION_REFUSED, "inventory", 3, null,
                Duration.ofMillis(104).toNanos(), "refused",
                new IOException("wrapper", new HttpHostConnectException("refused")));
        assertThat(FaultResponseWriter.logLine("GET", "/api/items/7", fault, "502")).isEqualTo(
                "Upstream fault: upstream=inventory fault=connection_refused attempts=3 elapsed_ms=104 "
                        + "root_cause=org.apache.hc.client5.http.HttpHostConnectException response=502 "
                        + "request=\"GET /api/items/7\"");
    }

    @Test
    void aRejectionWithoutCauseLogsNoneAsItsRootCause() {
        UpstreamException open = new UpstreamException(UpstreamFault.DESTINATION_UNAVAILABLE, "inventory", 0,
                Duration.ofSeconds(9), 0, "open", null);
        assertThat(FaultResponseWriter.logLine("POST", "/x", open, "503")).contains("attempts=0", "root_cause=none",
                "response=503");
        assertThat(FaultResponseWriter.rootCauseClass(new UpstreamException(UpstreamFault.CONNECTION_REFUSED, "u", 1,
                null, 0, "m", new ConnectException()))).isEqualTo("java.net.ConnectException");
    }

    @Test
    void detailsAndNextHopAppearInProxyStatusOnlyWhenExposed() {
        UpstreamException fault = new UpstreamException(UpstreamFault.CONNECTION_TIMEOUT, "http://10.0.0.5:8080", 1,
                null, 0, "Connect to \"10.0.0.5:8080\" timed out", null);
        assertThat(new FaultResponseWriter("edge-1", false, null).proxyStatus(fault, null))
                .isEqualTo("edge-1; error=connection_timeout");
        assertThat(new FaultResponseWriter("edge-1", true, null).proxyStatus(fault, null))
                .isEqualTo("edge-1; error=connection_timeout; next-hop=\"10.0.0.5:8080\"; "
                        + "details=\"Connect to \\\"10.0.0.5:8080\\\" timed out\"");
        assertThat(new FaultResponseWriter("edge-1", true, null).proxyStatus(fault, "inventory:8080"))
                .startsWith("edge-1; error=connection_timeout; next-hop=inventory:8080; ");
    }
}
