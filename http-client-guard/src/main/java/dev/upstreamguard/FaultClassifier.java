package dev.upstreamguard;

import dev.upstreamguard.internal.FaultSignal;
import java.io.EOFException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.net.PortUnreachableException;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpTimeoutException;
import java.nio.channels.UnresolvedAddressException;
import java.security.cert.CRLException;
import java.security.cert.CertPathBuilderException;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateException;
import java.util.zip.ZipException;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLPeerUnverifiedException;
import org.apache.hc.client5.http.ConnectTimeoutException;
import org.apache.hc.client5.http.UnsupportedSchemeException;
import org.apache.hc.core5.http.ConnectionClosedException;
import org.apache.hc.core5.http.ConnectionRequestTimeoutException;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.MalformedChunkCodingException;
import org.apache.hc.core5.http.MessageConstraintException;
import org.apache.hc.core5.http.NoHttpResponseException;
import org.apache.hc.core5.http.TruncatedChunkException;

/**
 * Turns any failure of an upstream call into exactly one {@link UpstreamFault}.
 *
 * <p>It walks the whole cause chain, so failures wrapped by frameworks ({@code ExecutionException},
 * {@code CompletionException}, {@code UncheckedIOException}, Spring's {@code ResourceAccessException},
 * {@code ServletException}…) classify like the original, and it decides by exception type wherever a type exists.
 * The places a type does not exist are a TLS alert from the peer, which the JDK reports only in the message, and a
 * content coding HttpClient cannot decode.
 *
 * <p>Where a failure happened matters: a reset before any byte of the response is {@code connection_terminated},
 * the same reset while reading the body is {@code http_response_incomplete}. Use {@link #classify(Throwable)} for
 * failures up to the response head and {@link #classifyBodyFailure(Throwable)} for failures while reading the body.
 */
public final class FaultClassifier {

    private static final int MAX_DEPTH = 32;

    private FaultClassifier() {
    }

    /** Classifies a failure that happened before the response head was received. */
    public static UpstreamFault classify(Throwable failure) {
        return classify(failure, false);
    }

    /** Classifies a failure that happened while reading a response body. */
    public static UpstreamFault classifyBodyFailure(Throwable failure) {
        return classify(failure, true);
    }

    private static UpstreamFault classify(Throwable failure, boolean inBody) {
        // First pass: a fault decided by the library itself always wins, wherever it sits in the chain.
        Throwable t = failure;
        for (int depth = 0; t != null && depth < MAX_DEPTH; depth++, t = t.getCause()) {
            if (t instanceof UpstreamException) {
                return ((UpstreamException) t).fault();
            }
            if (t instanceof FaultSignal) {
                return ((FaultSignal) t).fault();
            }
        }
        // Second pass: the outermost exception with a known meaning; wrappers without one are looked through.
        t = failure;
        for (int depth = 0; t != null && depth < MAX_DEPTH; depth++, t = t.getCause()) {
            UpstreamFault fault = byType(t, inBody);
            if (fault != null) {
                return fault;
            }
        }
        if (hasIoCause(failure)) {
            // An I/O failure nobody named: the connection broke somehow; that is all that is known.
            return inBody ? UpstreamFault.HTTP_RESPONSE_INCOMPLETE : UpstreamFault.CONNECTION_TERMINATED;
        }
        return UpstreamFault.PROXY_INTERNAL_ERROR;
    }

    /**
     * The JDK's java.net.http client reports a name that did not resolve as ConnectExceptions around NIO's
     * UnresolvedAddressException: not a refused connection.
     */
    private static boolean unresolved(Throwable connect) {
        Throwable t = connect.getCause();
        for (int depth = 0; t != null && depth < MAX_DEPTH; depth++, t = t.getCause()) {
            if (t instanceof UnresolvedAddressException) {
                return true;
            }
        }
        return false;
    }

    private static UpstreamFault byType(Throwable t, boolean inBody) {
        // DNS
        if (t instanceof UnknownHostException || t instanceof UnresolvedAddressException
                || (t instanceof ConnectException && unresolved(t))) {
            return UpstreamFault.DNS_ERROR;
        }
        // Local limits: checked before timeouts, since a pool lease timeout is not the upstream's fault.
        if (t instanceof ConnectionRequestTimeoutException) {
            return UpstreamFault.CONNECTION_LIMIT_REACHED;
        }
        // Connecting
        if (t instanceof ConnectTimeoutException || t instanceof HttpConnectTimeoutException) {
            return UpstreamFault.CONNECTION_TIMEOUT;
        }
        if (t instanceof ConnectException || t instanceof NoRouteToHostException
                || t instanceof PortUnreachableException) {
            return UpstreamFault.CONNECTION_REFUSED;
        }
        // TLS
        if (t instanceof SSLPeerUnverifiedException) {
            return UpstreamFault.TLS_CERTIFICATE_ERROR;
        }
        if (t instanceof SSLException) {
            return tls((SSLException) t, inBody);
        }
        if (t instanceof CertificateException) {
            return UpstreamFault.TLS_CERTIFICATE_ERROR;
        }
        // Reading
        if (t instanceof SocketTimeoutException || t instanceof HttpTimeoutException) {
            return UpstreamFault.CONNECTION_READ_TIMEOUT;
        }
        if (t instanceof TruncatedChunkException) {
            return UpstreamFault.HTTP_RESPONSE_INCOMPLETE;
        }
        if (t instanceof MalformedChunkCodingException) {
            return UpstreamFault.HTTP_PROTOCOL_ERROR;
        }
        if (t instanceof MessageConstraintException) {
            // Outside the strict head parser only chunk and trailer lines are constrained: framing, not head size.
            return inBody ? UpstreamFault.HTTP_PROTOCOL_ERROR : UpstreamFault.HTTP_RESPONSE_HEADER_SECTION_SIZE;
        }
        if (t instanceof NoHttpResponseException) {
            return UpstreamFault.CONNECTION_TERMINATED;
        }
        if (t instanceof ConnectionClosedException || t instanceof EOFException || t instanceof SocketException) {
            return inBody ? UpstreamFault.HTTP_RESPONSE_INCOMPLETE : UpstreamFault.CONNECTION_TERMINATED;
        }
        if (t instanceof ZipException) {
            return UpstreamFault.HTTP_RESPONSE_CONTENT_CODING;
        }
        if (t instanceof UnsupportedSchemeException) {
            return UpstreamFault.PROXY_CONFIGURATION_ERROR;
        }
        if (t instanceof HttpException && isUnsupportedContentCoding(t.getMessage())) {
            return UpstreamFault.HTTP_RESPONSE_CONTENT_CODING;
        }
        if (t instanceof HttpException) {
            // ProtocolException, ParseException, NotImplementedException (unsupported transfer coding)…
            return UpstreamFault.HTTP_PROTOCOL_ERROR;
        }
        if (t instanceof InterruptedIOException && !(t.getCause() instanceof IOException)) {
            // Aborted or interrupted: the exchange was cut off while in flight.
            return inBody ? UpstreamFault.HTTP_RESPONSE_INCOMPLETE : UpstreamFault.CONNECTION_TERMINATED;
        }
        return null;
    }

    /**
     * A valid response whose content coding the decoding client cannot undo (br, zstd… without a codec), or whose
     * list of codings is longer than HttpClient decodes (more than five layers, a guard against layered bombs): RFC
     * 9209's content-coding error, not a protocol error. HttpClient has no exception type for either, only these
     * messages.
     */
    private static boolean isUnsupportedContentCoding(String message) {
        return message != null
                && (message.startsWith("Unsupported Content-Encoding") || message.startsWith("Codec list exceeds"));
    }

    private static UpstreamFault tls(SSLException e, boolean inBody) {
        for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
            if (isCertificateFailure(c)) {
                return UpstreamFault.TLS_CERTIFICATE_ERROR;
            }
            if (c instanceof SocketTimeoutException) {
                return UpstreamFault.CONNECTION_TIMEOUT;
            }
            if (!(e instanceof SSLHandshakeException) && (c instanceof SocketException || c instanceof EOFException)) {
                // An established TLS connection that broke is a broken connection, not a TLS problem.
                return inBody ? UpstreamFault.HTTP_RESPONSE_INCOMPLETE : UpstreamFault.CONNECTION_TERMINATED;
            }
        }
        // No exception type exists for a received alert: the JDK only says so in the message, which JDK 17 starts with
        // these words and later JDKs prefix with the alert it answers, "(handshake_failure) Received fatal alert: ...".
        if (isReceivedAlert(e.getMessage())) {
            return UpstreamFault.TLS_ALERT_RECEIVED;
        }
        return UpstreamFault.TLS_PROTOCOL_ERROR;
    }

    /**
     * The JDK's words for a handshake ended by the peer's alert. Not only a fatal one: a warning it will not go on
     * after (unrecognized_name from a server that does not know the SNI name, TLS 1.2), an alert of a description it
     * does not know (RFC 8446 §6: an unknown alert is an error alert) and a close_notify before the handshake is done
     * are alerts the upstream sent too (RFC 9209 tls_alert_received), not a failure of this side's TLS.
     */
    private static boolean isReceivedAlert(String message) {
        return message != null && (message.contains("Received fatal alert")
                || message.contains("received handshake warning")
                || message.contains("Unknown alert description")
                || message.contains("Received close_notify during handshake"));
    }

    /**
     * A failure of certificate checks. Not any {@code GeneralSecurityException}: a record that fails to decrypt
     * ({@code AEADBadTagException}, {@code BadPaddingException}: a corrupt or forged record, the peer's bad_record_mac)
     * is one too, and is a TLS protocol failure, not a certificate problem.
     */
    private static boolean isCertificateFailure(Throwable t) {
        return t instanceof CertificateException || t instanceof CertPathValidatorException
                || t instanceof CertPathBuilderException || t instanceof CRLException;
    }

    private static boolean hasIoCause(Throwable failure) {
        Throwable t = failure;
        for (int depth = 0; t != null && depth < MAX_DEPTH; depth++, t = t.getCause()) {
            if (t instanceof IOException) {
                return true;
            }
        }
        return false;
    }
}
