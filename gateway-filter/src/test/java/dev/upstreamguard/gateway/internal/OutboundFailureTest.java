package dev.upstreamguard.gateway.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.ConnectException;
import java.net.SocketTimeoutException;
import org.apache.catalina.connector.ClientAbortException;
import org.apache.hc.client5.http.ClientProtocolException;
import org.junit.jupiter.api.Test;

class OutboundFailureTest {

    /**
     * Regression: the inbound client's failure wrapped by a client library (an upload streamed on to an upstream,
     * broken on the inbound side) was taken for an upstream's, because the library's exception came first.
     */
    @Test
    void theContainersReportOfItsOwnClientAnywhereInTheChainIsNoOutboundFailure() {
        assertThat(OutboundFailure.isOutbound(new ClientProtocolException("upload failed",
                new ClientAbortException(new SocketTimeoutException("Read timed out"))))).isFalse();
        assertThat(OutboundFailure.isOutbound(new ClientAbortException(new SocketTimeoutException()))).isFalse();
        assertThat(OutboundFailure.isOutbound(new ClientProtocolException("x", new ConnectException()))).isTrue();
    }

    /**
     * Tomcat tells the async listeners of its client's read timeout with a bare {@code SocketTimeoutException} its
     * poller made; one an HTTP client made (Jetty's client shares Jetty's {@code io} package) is still outbound.
     */
    @Test
    void aTimeoutTheServerMadeIsNoOutboundFailureButOneAClientMadeIs() {
        assertThat(OutboundFailure.isOutbound(madeAt("org.apache.tomcat.util.net.NioEndpoint$Poller"))).isFalse();
        assertThat(OutboundFailure.isOutbound(madeAt("org.eclipse.jetty.io.SelectorManager"))).isTrue();
        assertThat(OutboundFailure.isOutbound(madeAt("org.eclipse.jetty.client.HttpConnection"))).isTrue();
    }

    private static SocketTimeoutException madeAt(String className) {
        SocketTimeoutException e = new SocketTimeoutException();
        e.setStackTrace(new StackTraceElement[] {new StackTraceElement(className, "timeout", null, 1)});
        return e;
    }
}
