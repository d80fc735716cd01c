package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.FaultClassifier;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import jakarta.servlet.ServletRequest;
import java.io.IOException;
import java.net.ConnectException;
import java.net.NoRouteToHostException;
import java.net.PortUnreachableException;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLPeerUnverifiedException;

/**
 * A failure of a call the application made to an upstream without the guarded client (a plain HttpClient, the JDK's
 * {@code java.net.http} client, a {@code RestTemplate} of its own…), recognised in an exception that escaped it, so the
 * filter can answer it as the gateway fault it is instead of leaving the container to answer 500.
 *
 * <p>Only failures that cannot be the servlet's own connection count: a connect that failed (an inbound connection
 * is never connected by the application), a name that did not resolve, a TLS handshake (the container finishes the
 * inbound one before any filter runs), an I/O failure an HTTP client library throws (not its other exceptions: the
 * guarded client hands back the caller's own interceptor's {@code HttpException} as such) or the JDK's clients throw
 * from their own code (by the frames of its stack trace, as their exceptions are plain {@code java.io} and
 * {@code java.net} ones), and anything Spring reports as a failed
 * client request ({@code ResourceAccessException}). A read timeout counts only outside the container's own
 * exceptions: Tomcat reports a client too slow with its upload as a {@code ClientAbortException} around one, and to
 * the async listeners as one its poller made.
 */
public final class OutboundFailure {

    private static final String ATTRIBUTE = OutboundFailure.class.getName();
    private static final String[] CLIENT_PACKAGES = {"java.net.http.", "org.apache.hc.", "org.apache.http."};
    /**
     * The JDK's {@code java.net.http} client reports a failure after connecting (a connection closed or reset, a
     * response cut short or not HTTP) as a plain {@code IOException} or {@code ProtocolException} from its
     * implementation's {@code send}; it never throws for an HTTP status, so any such exception is a failed call.
     */
    private static final String[] JDK_CLIENT_PACKAGES = {"jdk.internal.net.http."};
    /**
     * {@code HttpURLConnection} reports a connection closed or reset as a {@code SocketException} from within it; its
     * other {@code IOException}s include those for an upstream's 4xx/5xx answer, which are no failed call.
     */
    private static final String[] URL_CONNECTION_PACKAGES = {"sun.net.www.http.", "sun.net.www.protocol.http."};
    private static final String[] CLIENT_WRAPPERS = {"org.springframework.web.client.ResourceAccessException",
        "org.springframework.web.reactive.function.client.WebClientRequestException"};
    private static final String[] CONTAINER_PACKAGES = {"org.apache.catalina.", "org.apache.coyote.",
        "org.apache.tomcat.", "org.eclipse.jetty.", "io.undertow."};
    /**
     * Where only the server side of a container makes exceptions: not Jetty's {@code io} or {@code client} packages,
     * nor Tomcat's websocket client, whose connect timeouts are an application's outbound calls.
     */
    private static final String[] SERVER_PACKAGES = {"org.apache.catalina.", "org.apache.coyote.",
        "org.apache.tomcat.util.net.", "org.eclipse.jetty.server.", "io.undertow.server."};

    private OutboundFailure() {
    }

    /**
     * The upstream fault {@code thrown} reports, as an {@link UpstreamException} of one attempt on {@code upstream},
     * or {@code null} when it is not an outbound call's failure. The same throwable seen again in this request gives
     * the same exception, so an answered failure is recognised as answered.
     */
    public static UpstreamException find(ServletRequest request, Throwable thrown, String upstream) {
        Object seen = request.getAttribute(ATTRIBUTE);
        if (seen instanceof UpstreamException && ((UpstreamException) seen).getCause() == thrown) {
            return (UpstreamException) seen;
        }
        if (!isOutbound(thrown)) {
            return null;
        }
        UpstreamFault fault = FaultClassifier.classify(thrown);
        if (fault == UpstreamFault.PROXY_INTERNAL_ERROR) {
            return null;
        }
        UpstreamException e = new UpstreamException(fault, upstream, 1, null, 0,
                "The application's own call to an upstream failed: " + fault.type(), thrown);
        request.setAttribute(ATTRIBUTE, e);
        return e;
    }

    /**
     * Whether {@code fault} is the stand-in {@link #find} made in this request: its upstream is named after the
     * servlet, not a hop the gateway knows.
     */
    public static boolean isStandIn(ServletRequest request, UpstreamException fault) {
        return fault != null && request.getAttribute(ATTRIBUTE) == fault;
    }

    static boolean isOutbound(Throwable thrown) {
        // Bounded rather than cycle-checked, as UpstreamException.find is.
        Throwable t = thrown;
        for (int depth = 0; t != null && depth < 64; depth++, t = t.getCause()) {
            // The container's report of its own client anywhere in the chain makes it that client's failure, also
            // when a client library wrapped it (the inbound body streamed to an upstream broke on the inbound side).
            if (startsWithAny(t.getClass().getName(), CONTAINER_PACKAGES) || madeBy(t, SERVER_PACKAGES)) {
                return false;
            }
        }
        t = thrown;
        for (int depth = 0; t != null && depth < 64; depth++, t = t.getCause()) {
            String name = t.getClass().getName();
            if (t instanceof ConnectException || t instanceof NoRouteToHostException
                    || t instanceof PortUnreachableException || t instanceof UnknownHostException
                    || t instanceof SSLHandshakeException || t instanceof SSLPeerUnverifiedException
                    || t instanceof SocketTimeoutException
                    || (t instanceof IOException && startsWithAny(name, CLIENT_PACKAGES))
                    || (t instanceof IOException && thrownBy(t, JDK_CLIENT_PACKAGES))
                    || (t instanceof SocketException && thrownBy(t, URL_CONNECTION_PACKAGES))
                    || isClientWrapper(t.getClass())) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether {@code t} was made in one of {@code packages}: a plain {@code java.net} exception the container made
     * itself (Tomcat tells the async listeners of its client's read timeout with a {@code SocketTimeoutException}
     * from its poller). Only the frame that made it counts, since the application runs inside the container's.
     */
    private static boolean madeBy(Throwable t, String[] packages) {
        StackTraceElement[] frames = t.getStackTrace();
        return frames.length > 0 && startsWithAny(frames[0].getClassName(), packages);
    }

    /** Whether a frame of {@code t}'s stack trace is in one of {@code packages}. */
    private static boolean thrownBy(Throwable t, String[] packages) {
        for (StackTraceElement frame : t.getStackTrace()) {
            if (startsWithAny(frame.getClassName(), packages)) {
                return true;
            }
        }
        return false;
    }

    private static boolean isClientWrapper(Class<?> type) {
        for (Class<?> c = type; c != null && c != Object.class; c = c.getSuperclass()) {
            for (String wrapper : CLIENT_WRAPPERS) {
                if (c.getName().equals(wrapper)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static boolean startsWithAny(String name, String[] prefixes) {
        for (String prefix : prefixes) {
            if (name.startsWith(prefix)) {
                return true;
            }
        }
        return false;
    }
}
