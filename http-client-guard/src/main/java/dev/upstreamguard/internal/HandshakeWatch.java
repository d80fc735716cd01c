package dev.upstreamguard.internal;

import java.io.IOException;
import java.net.Socket;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.config.TlsConfig;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.apache.hc.core5.util.Timeout;

/**
 * Bounds a whole TLS handshake by what the attempt's connect timeout left of it, by closing the socket when it runs
 * out.
 *
 * <p>The socket's read timeout bounds only each silence: an upstream sending its handshake a byte at a time never
 * lets it fire, and held the connect until the call's total deadline ({@code http_response_timeout}, 30 s by default)
 * rather than failing it as the {@code connection_timeout} it is, at {@code connect-timeout} and retried as such. And
 * that read timeout was the upstream's connect timeout, the only one the TLS config knows, even for a call whose own
 * policy ({@code @UpstreamPolicy}) set another.
 *
 * <p>The timer is the calling client's {@link DeadlineTimer}, found in the exchange's context; without one (a client
 * not built by this library) the read timeout alone applies, as before.
 */
public final class HandshakeWatch {

    /** {@link HttpContext} attribute: the {@link DeadlineTimer} that runs handshake watches. */
    public static final String TIMER_ATTRIBUTE = HandshakeWatch.class.getName() + ".timer";

    private final AtomicBoolean over = new AtomicBoolean();
    private volatile boolean expired;
    private DeadlineTimer.Handle handle;

    private HandshakeWatch() {
    }

    /**
     * Starts watching the handshake about to run on {@code socket}, for as long as the attempt's connect timeout allows
     * (a per-call policy's, capped by what the deadline leaves), which also bounds each silence: the TLS config only
     * knows the upstream's own.
     *
     * @param tlsConfig the attachment HttpClient passes to the TLS strategy, which holds the handshake timeout
     */
    public static HandshakeWatch start(Socket socket, Object tlsConfig, HttpContext context) throws IOException {
        HandshakeWatch watch = new HandshakeWatch();
        Object timer = context == null ? null : context.getAttribute(TIMER_ATTRIBUTE);
        if (!(timer instanceof DeadlineTimer)) {
            return watch;
        }
        // What the connect's budget left after the lookup and the TCP connect; the attempt's whole connect timeout
        // when the handshake is not part of one (through a proxy's tunnel).
        long left = ConnectPhaseOperator.remainingBudget(context);
        Timeout limit = left > 0 ? Timeout.ofMilliseconds(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)))
                : attemptConnectTimeout(context);
        if (limit != null) {
            socket.setSoTimeout(limit.toMillisecondsIntBound()); // HttpClient restores its own after the handshake
        } else if (tlsConfig instanceof TlsConfig) {
            limit = ((TlsConfig) tlsConfig).getHandshakeTimeout();
        }
        if (limit != null && !limit.isDisabled()) {
            watch.handle = ((DeadlineTimer) timer).arm(() -> watch.expire(socket), limit.toNanoseconds());
        }
        return watch;
    }

    @SuppressWarnings("deprecation") // RequestConfig's connect timeout is the only per-attempt one
    private static Timeout attemptConnectTimeout(HttpContext context) {
        RequestConfig config = context instanceof HttpClientContext
                ? ((HttpClientContext) context).getRequestConfig() : null;
        Timeout timeout = config == null ? null : config.getConnectTimeout();
        return timeout == null || timeout.isDisabled() ? null : timeout;
    }

    private void expire(Socket socket) {
        if (over.compareAndSet(false, true)) {
            expired = true;
            try {
                socket.close(); // breaks the handshake's blocked read
            } catch (IOException ignored) {
                // closing is all that was wanted
            }
        }
    }

    /**
     * Ends the watch: {@code true} when the handshake ran out of time first, so that its socket is closed and whatever
     * the handshake ended with is a connect timeout.
     */
    public boolean stop() {
        if (over.compareAndSet(false, true)) {
            if (handle != null) {
                handle.cancel();
            }
            return false;
        }
        return expired;
    }
}
