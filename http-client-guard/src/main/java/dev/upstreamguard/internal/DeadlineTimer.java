package dev.upstreamguard.internal;

import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Fires a task when a call's deadline runs out, so that the deadline also bounds an upstream that trickles its
 * response head: a socket read timeout only bounds the silence between two reads, and an upstream sending a header
 * byte every few hundred milliseconds would otherwise hold the call far past its {@code total-timeout}.
 *
 * <p>One per client, closed with it (a library thread outliving its client would pin a web application's class
 * loader after a redeploy). Its single daemon thread starts with the first call; its tasks only cancel a request, so
 * it is never busy.
 */
public final class DeadlineTimer implements AutoCloseable {

    private final ScheduledThreadPoolExecutor timer;

    public DeadlineTimer() {
        timer = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "upstream-guard-deadline");
            t.setDaemon(true);
            return t;
        });
        // Almost every timer is disarmed long before it fires: do not keep them queued until then.
        timer.setRemoveOnCancelPolicy(true);
    }

    /**
     * Runs {@code onExpiry} after {@code nanos}, unless the returned future is cancelled first; {@code null} once the
     * timer is closed, so that a call racing with {@link #close()} simply has no deadline timer.
     */
    public ScheduledFuture<?> arm(Runnable onExpiry, long nanos) {
        if (timer.isShutdown()) {
            return null;
        }
        try {
            return timer.schedule(onExpiry, Math.max(0, nanos), TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException closed) {
            return null;
        }
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
