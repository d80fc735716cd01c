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
}
