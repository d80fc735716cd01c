package dev.upstreamguard.internal;

import java.io.IOException;
import java.net.Socket;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.hc.client5.http.impl.io.DefaultManagedHttpClientConnection;
import org.apache.hc.client5.http.io.ManagedHttpClientConnection;
import org.apache.hc.core5.http.config.Http1Config;
import org.apache.hc.core5.http.io.HttpConnectionFactory;

/**
 * An upstream connection that the pool never hands out again once bytes arrived on it that belong to no request.
 *
 * <p>An upstream that sends more than it framed — a body longer than its {@code Content-Length}, a body on a 304 or
 * on a HEAD response, anything after the last chunk — leaves those bytes on the connection. HttpClient's own stale
 * check counts incoming bytes as a sign of life, so the next request on the pooled connection would read them as its
 * response: a broken response for an innocent request at best, a response smuggled in by the upstream at worst.
 * RFC 9112 §9.3 has responses match requests by order alone, so a connection with unsolicited bytes is out of step
 * for good and is discarded.
 *
 * <p>The pool asks {@link #isStale()} on every lease (validate-after-inactivity 0); looking for buffered bytes costs
 * no read. The blocking probe for a closed connection (up to 1 ms) still runs only after
 * {@value #VALIDATE_AFTER_INACTIVITY_MILLIS} ms idle, HttpClient's default.
 */
public final class GuardedConnection extends DefaultManagedHttpClientConnection {

    static final long VALIDATE_AFTER_INACTIVITY_MILLIS = 2000;

    private static final AtomicLong IDS = new AtomicLong();

    private final StrictResponseParser parser;
    private long idleSince = System.nanoTime();

    private GuardedConnection(String id, Http1Config config, StrictResponseParser parser) {
        super(id, null, null, config, null, null, null, c -> parser);
        this.parser = parser;
    }

    /** Connections with the strict response parser and the given limits. */
    public static HttpConnectionFactory<ManagedHttpClientConnection> factory(Http1Config config, int maxHeaderCount,
            int maxSectionSize) {
        return socket -> {
            GuardedConnection connection = new GuardedConnection("upstream-guard-" + IDS.getAndIncrement(), config,
                    new StrictResponseParser(maxHeaderCount, maxSectionSize));
            if (socket != null) {
                connection.bind(socket);
            }
            return connection;
        };
    }

    @Override
    public void passivate() {
        idleSince = System.nanoTime();
        super.passivate();
    }

    @Override
    public boolean isStale() throws IOException {
        if (!isOpen() || hasUnsolicitedInput()) {
            return true;
        }
        if (System.nanoTime() - idleSince < TimeUnit.MILLISECONDS.toNanos(VALIDATE_AFTER_INACTIVITY_MILLIS)) {
            return false;
        }
        // The probe reads what is waiting: a close, or bytes nobody asked for, which are just as fatal.
        return super.isStale() || hasUnsolicitedInput();
    }

    private boolean hasUnsolicitedInput() throws IOException {
        if (parser.bufferedInput() > 0) {
            return true;
        }
        Socket socket = getSocket();
        return socket != null && socket.getInputStream().available() > 0;
    }
}
