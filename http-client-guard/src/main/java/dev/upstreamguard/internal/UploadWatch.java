package dev.upstreamguard.internal;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import org.apache.hc.core5.http.HttpEntity;
import org.apache.hc.core5.http.io.entity.HttpEntityWrapper;
import org.apache.hc.core5.http.protocol.HttpContext;

/**
 * Bounds how long one write of a request body may block. A socket write has no timeout in Java: an upstream that reads
 * the request head and then stops reading (a stalled or overloaded server) fills the socket buffers, and the write
 * blocks until the total deadline — or forever without one — while the response timeout, a read timeout, never
 * applies because nothing is being read yet. The upstream has been silent and taken nothing for as long as a write
 * blocks, so a write blocked for the response timeout is a timeout like a read blocked that long.
 *
 * <p>Only time spent inside a write counts: a body whose source is slow (a proxy's client uploading slowly) is not the
 * upstream's doing. The watch is one armed entry in the client's {@link DeadlineTimer}, re-armed while the body is
 * being written; it costs nothing per write beyond two volatile stores.
 */
public final class UploadWatch extends HttpEntityWrapper {

    /**
     * Context attribute, set when a call's total deadline ran out while its body waited for its source: the caller's
     * pace (a proxy's client uploading slowly), which the call records as cancelled, not as the upstream's fault.
     */
    private static final String DEADLINE_ON_SOURCE = UploadWatch.class.getName() + ".deadlineOnSource";

    private static final long NOT_BLOCKED = Long.MIN_VALUE;

    private final long timeoutNanos;
    private final Runnable onStall;
    private DeadlineTimer timer;
    private volatile long blockedSince = NOT_BLOCKED;
    private volatile boolean stopped;
    /** Inside {@link #writeTo}: the body is being sent, from its source to the upstream. */
    private volatile boolean sending;
    private volatile DeadlineTimer.Handle armed;
    /** A write to the upstream failed: whatever else fails after it is a consequence. */
    private volatile boolean writeFailed;
    /** The body's own source failed (not a write to the upstream): the caller's doing. */
    private volatile boolean sourceFailed;

    /**
     * @param body the request body to write
     * @param timeoutNanos the longest one write may block
     * @param onStall run (on the timer's thread) when a write blocked that long: it must break the connection
     */
    public UploadWatch(HttpEntity body, long timeoutNanos, Runnable onStall) {
        super(body);
        this.timeoutNanos = timeoutNanos;
        this.onStall = onStall;
    }

    /** Starts watching; {@link #stop()} must follow once the exchange no longer writes. */
    public void start(DeadlineTimer deadlines) {
        this.timer = deadlines;
        armed = deadlines.arm(this::check, timeoutNanos);
    }

    /** Stops watching; a check already running does nothing more. */
    public void stop() {
        stopped = true;
        DeadlineTimer.Handle handle = armed;
        if (handle != null) {
            handle.cancel();
        }
    }

    /**
     * Whether the body is being sent but no write is blocked: the exchange is waiting for the body's source (a slow
     * caller, a proxy's client stalling mid-upload), not for the upstream.
     */
    public boolean waitingOnSource() {
        return sending && blockedSince == NOT_BLOCKED;
    }

    /** Notes in {@code context} that the call's deadline ran out while its body waited for its source. */
    public static void noteDeadlineOnSource(HttpContext context) {
        context.setAttribute(DEADLINE_ON_SOURCE, Boolean.TRUE);
    }

    /**
     * Whether the call run with {@code context} ended because its deadline ran out while its body waited for its
     * source, not for the upstream: a proxy answers its client for that, not with a fault naming the upstream.
     */
    public static boolean deadlineRanOutOnSource(HttpContext context) {
        return context != null && Boolean.TRUE.equals(context.getAttribute(DEADLINE_ON_SOURCE));
    }

    private void check() {
        if (stopped) {
            return;
        }
        long since = blockedSince;
        long now = System.nanoTime();
        if (since != NOT_BLOCKED && now - since >= timeoutNanos) {
            stopped = true;
            onStall.run();
            return;
        }
        armed = timer.arm(this::check, since == NOT_BLOCKED ? timeoutNanos : since + timeoutNanos - now);
    }

    /**
     * Whether sending the body failed in its source (a caller's stream that threw) rather than in a write to the
     * upstream: nothing the upstream did.
     */
    public boolean sourceFailed() {
        return sourceFailed;
    }

    @Override
    public void writeTo(OutputStream out) throws IOException {
        sending = true;
        try {
            send(out);
        } catch (IOException | RuntimeException e) {
            if (!writeFailed) {
                sourceFailed = true;
            }
            throw e;
        } finally {
            sending = false;
        }
    }

    private void send(OutputStream out) throws IOException {
        super.writeTo(new FilterOutputStream(out) {
            @Override
            public void write(int b) throws IOException {
                blocking(() -> out.write(b));
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                blocking(() -> out.write(b, off, len));
            }

            @Override
            public void flush() throws IOException {
                blocking(out::flush);
            }

            @Override
            public void close() throws IOException {
                // Closing finishes the body (a chunked one's last chunk), which is a write too.
                blocking(out::close);
            }
        });
    }

    /** Runs one write to the upstream, marked as blocked for as long as it takes. */
    private void blocking(Write write) throws IOException {
        blockedSince = System.nanoTime();
        try {
            write.run();
        } catch (IOException | RuntimeException e) {
            writeFailed = true;
            throw e;
        } finally {
            blockedSince = NOT_BLOCKED;
        }
    }

    @FunctionalInterface
    private interface Write {
        void run() throws IOException;
    }
}
