package dev.upstreamguard.internal;

import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Fires a task when a call's deadline runs out, so that the deadline also bounds an upstream that trickles its
 * response head: a socket read timeout only bounds the silence between two reads, and an upstream sending a header
 * byte every few hundred milliseconds would otherwise hold the call far past its {@code total-timeout}.
 *
 * <p>One daemon thread for the whole JVM; its tasks only cancel a request, so it is never busy.
 */
public final class DeadlineTimer {

    private static final ScheduledThreadPoolExecutor TIMER = create();

    private DeadlineTimer() {
    }

    private static ScheduledThreadPoolExecutor create() {
        AtomicInteger n = new AtomicInteger();
        ScheduledThreadPoolExecutor timer = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "upstream-guard-deadline-" + n.getAndIncrement());
            t.setDaemon(true);
            return t;
        });
        // Almost every timer is disarmed long before it fires: do not keep them queued until then.
        timer.setRemoveOnCancelPolicy(true);
        return timer;
    }

    /** Runs {@code onExpiry} after {@code nanos}, unless the returned future is cancelled first. */
    public static ScheduledFuture<?> arm(Runnable onExpiry, long nanos) {
        return TIMER.schedule(onExpiry, Math.max(0, nanos), TimeUnit.NANOSECONDS);
    }
}
