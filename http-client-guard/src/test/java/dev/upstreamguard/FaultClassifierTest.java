package dev.upstreamguard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.internal.FaultSignal;
import dev.upstreamguard.testing.ClosedPort;
import java.io.EOFException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse.BodyHandlers;
import java.net.http.HttpTimeoutException;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateException;
import java.time.Duration;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.zip.ZipException;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLPeerUnverifiedException;
import org.apache.hc.client5.http.ClientProtocolException;
import org.apache.hc.client5.http.ConnectTimeoutException;
import org.apache.hc.client5.http.HttpHostConnectException;
import org.apache.hc.core5.http.ConnectionClosedException;
import org.apache.hc.core5.http.ConnectionRequestTimeoutException;
import org.apache.hc.core5.http.MalformedChunkCodingException;
import org.apache.hc.core5.http.NoHttpResponseException;
import org.apache.hc.core5.http.ProtocolException;
import org.apache.hc.core5.http.TruncatedChunkException;
import org.junit.jupiter.api.Test;

/**
 * The classifier on its own, with the exception shapes the real-socket tests produce and the wrappers frameworks add
 * around them. Where a test here and a real-socket test disagree, the real-socket one is right.
 */
class FaultClassifierTest {

    private static UpstreamFault head(Throwable t) {
        return FaultClassifier.classify(t);
    }

    private static UpstreamFault body(Throwable t) {
        return FaultClassifier.classifyBodyFailure(t);
    }

    @Test
    void connectingFaultsAreClassifiedByType() {
        assertThat(head(new UnknownHostException("nothing.invalid"))).isEqualTo(UpstreamFault.DNS_ERROR);
        assertThat(head(new ConnectException("Connection refused"))).isEqualTo(UpstreamFault.CONNECTION_REFUSED);
        assertThat(head(new HttpHostConnectException("Connect to http://127.0.0.1:1 failed")))
                .isEqualTo(UpstreamFault.CONNECTION_REFUSED);
        assertThat(head(new NoRouteToHostException())).isEqualTo(UpstreamFault.CONNECTION_REFUSED);
        assertThat(head(new ConnectTimeoutException("Connect timed out"))).isEqualTo(UpstreamFault.CONNECTION_TIMEOUT);
        assertThat(head(new HttpConnectTimeoutException("HTTP connect timed out")))
                .isEqualTo(UpstreamFault.CONNECTION_TIMEOUT);
        assertThat(head(new ConnectionRequestTimeoutException("Timeout deadline: 300 MILLISECONDS")))
                .isEqualTo(UpstreamFault.CONNECTION_LIMIT_REACHED);
    }

    /**
     * Regression: the JDK's {@code java.net.http} client reports a host name that does not resolve as a
     * {@code ConnectException} around NIO's {@code UnresolvedAddressException}, which was classified
     * {@code connection_refused}.
     */
    @Test
    void theJdkHttpClientsFailuresOverRealSocketsAreClassifiedAsTheirCauses() {
        HttpClient jdk = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        Throwable unresolved = catchThrowable(() -> jdk.send(
                HttpRequest.newBuilder(URI.create("http://nothing.invalid/")).build(), BodyHandlers.discarding()));
        assertThat(head(unresolved)).as("%s", unresolved).isEqualTo(UpstreamFault.DNS_ERROR);
        Throwable refused = catchThrowable(() -> jdk.send(
                HttpRequest.newBuilder(ClosedPort.find().uri("/")).build(), BodyHandlers.discarding()));
        assertThat(head(refused)).as("%s", refused).isEqualTo(UpstreamFault.CONNECTION_REFUSED);
    }

    @Test
    void readingFaultsDependOnWhetherTheResponseHadStarted() {
        assertThat(head(new NoHttpResponseException("127.0.0.1:1 failed to respond")))
                .isEqualTo(UpstreamFault.CONNECTION_TERMINATED);
        assertThat(head(new SocketException("Connection reset"))).isEqualTo(UpstreamFault.CONNECTION_TERMINATED);
        assertThat(body(new SocketException("Connection reset"))).isEqualTo(UpstreamFault.HTTP_RESPONSE_INCOMPLETE);
        assertThat(body(new ConnectionClosedException("Premature end of Content-Length delimited message body")))
                .isEqualTo(UpstreamFault.HTTP_RESPONSE_INCOMPLETE);
        assertThat(body(new TruncatedChunkException("Truncated chunk"))).isEqualTo(UpstreamFault.HTTP_RESPONSE_INCOMPLETE);
        assertThat(body(new MalformedChunkCodingException("Bad chunk header: zz")))
                .isEqualTo(UpstreamFault.HTTP_PROTOCOL_ERROR);
        assertThat(body(new ZipException("invalid block type"))).isEqualTo(UpstreamFault.HTTP_RESPONSE_CONTENT_CODING);
        assertThat(head(new SocketTimeoutException("Read timed out"))).isEqualTo(UpstreamFault.CONNECTION_READ_TIMEOUT);
        assertThat(body(new SocketTimeoutException("Read timed out"))).isEqualTo(UpstreamFault.CONNECTION_READ_TIMEOUT);
        assertThat(head(new HttpTimeoutException("request timed out"))).isEqualTo(UpstreamFault.CONNECTION_READ_TIMEOUT);
        assertThat(head(new EOFException())).isEqualTo(UpstreamFault.CONNECTION_TERMINATED);
        assertThat(head(new InterruptedIOException("Request aborted"))).isEqualTo(UpstreamFault.CONNECTION_TERMINATED);
    }

    @Test
    void protocolFaultsAreHttpProtocolErrors() {
        assertThat(head(new ClientProtocolException(new ProtocolException("Multiple Content-Length headers"))))
                .isEqualTo(UpstreamFault.HTTP_PROTOCOL_ERROR);
        assertThat(head(new ProtocolException("Invalid header"))).isEqualTo(UpstreamFault.HTTP_PROTOCOL_ERROR);
    }

    @Test
    void tlsFaultsSeparateCertificatesAlertsAndEverythingElse() {
        assertThat(head(new SSLHandshakeException("PKIX path building failed")
                .initCause(new CertificateException(new CertPathValidatorException("untrusted")))))
                .isEqualTo(UpstreamFault.TLS_CERTIFICATE_ERROR);
        assertThat(head(new SSLPeerUnverifiedException("Certificate for <a> doesn't match")))
                .isEqualTo(UpstreamFault.TLS_CERTIFICATE_ERROR);
        assertThat(head(new SSLHandshakeException("Received fatal alert: handshake_failure")))
                .isEqualTo(UpstreamFault.TLS_ALERT_RECEIVED);
        // Regression: alerts other than a fatal one of a known description were tls_protocol_error (JDK 17 and 25 words).
        for (String alert : new String[] {"received handshake warning: unrecognized_name",
            "(handshake_failure) received handshake warning: unrecognized_name", "Unknown alert description (-1)",
            "(unexpected_message) Unknown alert description (-1)", "Received close_notify during handshake",
            "(unexpected_message) Received close_notify during handshake"}) {
            assertThat(head(new SSLHandshakeException(alert))).as(alert).isEqualTo(UpstreamFault.TLS_ALERT_RECEIVED);
        }
        assertThat(head(new SSLException("Unsupported or unrecognized SSL message")))
                .isEqualTo(UpstreamFault.TLS_PROTOCOL_ERROR);
        assertThat(head(new SSLHandshakeException("Remote host terminated the handshake").initCause(new EOFException())))
                .isEqualTo(UpstreamFault.TLS_PROTOCOL_ERROR);
        // An established TLS connection that breaks is a broken connection, not a TLS problem.
        assertThat(body(new SSLException("Connection reset", new SocketException("Connection reset"))))
                .isEqualTo(UpstreamFault.HTTP_RESPONSE_INCOMPLETE);
    }

    @Test
    void wrappersAreLookedThroughWhateverTheirMessages() {
        IOException refused = new ConnectException("Connection refused");
        assertThat(head(new ExecutionException(refused))).isEqualTo(UpstreamFault.CONNECTION_REFUSED);
        assertThat(head(new CompletionException(new UncheckedIOException(refused))))
                .isEqualTo(UpstreamFault.CONNECTION_REFUSED);
        assertThat(head(new RuntimeException("I/O error on GET request: connect timed out",
                new ConnectTimeoutException("x")))).isEqualTo(UpstreamFault.CONNECTION_TIMEOUT);
        assertThat(head(new Exception("timed out", new UnknownHostException("timed out"))))
                .as("decided by type, not by message").isEqualTo(UpstreamFault.DNS_ERROR);
    }

    @Test
    void aFaultTheLibraryAlreadyDecidedWinsAnywhereInTheChain() {
        UpstreamException decided = new UpstreamException(UpstreamFault.DESTINATION_UNAVAILABLE, "inventory", 0, null, 0,
                "circuit open", null);
        assertThat(head(new RuntimeException(new IOException("reset", decided))))
                .isEqualTo(UpstreamFault.DESTINATION_UNAVAILABLE);
        assertThat(head(new IOException(new FaultSignal(UpstreamFault.HTTP_RESPONSE_HEADER_SIZE, "too long"))))
                .isEqualTo(UpstreamFault.HTTP_RESPONSE_HEADER_SIZE);
        assertThat(UpstreamException.find(new ExecutionException(new RuntimeException(decided)))).containsSame(decided);
    }

    @Test
    void unknownFailuresFallBackToWhatIsKnown() {
        assertThat(head(new IOException("something broke"))).isEqualTo(UpstreamFault.CONNECTION_TERMINATED);
        assertThat(body(new IOException("something broke"))).isEqualTo(UpstreamFault.HTTP_RESPONSE_INCOMPLETE);
        assertThat(head(new IllegalStateException("bug"))).isEqualTo(UpstreamFault.PROXY_INTERNAL_ERROR);
    }

    @Test
    void everyFaultHasItsRfc9209TypeAndStatus() {
        for (UpstreamFault fault : UpstreamFault.values()) {
            assertThat(UpstreamFault.ofType(fault.type())).containsSame(fault);
            assertThat(fault.type()).matches("[a-z0-9_]+");
            assertThat(fault.status()).isIn(500, 502, 503, 504);
            assertThat(fault.isTimeout()).isEqualTo(fault.status() == 504);
        }
        assertThat(UpstreamFault.ofType(" Connection_Refused ")).contains(UpstreamFault.CONNECTION_REFUSED);
        assertThat(UpstreamFault.ofType("no_such_type")).isEmpty();
    }
}
