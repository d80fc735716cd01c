package dev.upstreamguard.internal;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Fires a task when a call's deadline runs out, so that the deadline also bounds an upstream that trickles its
 * response head: a socket read timeout only bounds the silence between two reads, and an upstream sending a header
 * byte every few hundred milliseconds would otherwise hold the call far past its {@code total-timeout}.
 *
 * <p>A coarse sweeper, not a scheduler: arming and disarming are one insertion into and one removal from a concurrent
 * set, with no lock shared by every caller and no wake-up of the timer thread per call (a
 * {@code ScheduledThreadPoolExecutor} signals its thread whenever a new task becomes the earliest, which on a busy
 * proxy is nearly every call). The thread looks at the armed deadlines every {@value #TICK_MILLIS} ms while any are
 * armed and sleeps otherwise, so a deadline fires at most that much late — nothing next to a deadline of seconds.
 *
 * <p>One per client, closed with it (a library thread outliving its client would pin a web application's class loader
 * after a redeploy). Its daemon thread starts with the first armed deadline.
 */
public final class DeadlineTimer implements AutoCloseable {

    static final long TICK_MILLIS = 10;

    /** An armed deadline. */
    public interface Handle {
        /** Disarms the deadline; its task will not run unless it already has. */
        void cancel();
    }

    private final Set<Entry> armed = ConcurrentHashMap.newKeySet();
    private volatile Thread sweeper;
    private volatile boolean idle;
    private volatile boolean closed;

    /**
     * Runs {@code onExpiry} once {@code nanos} have passed, unless the returned handle is cancelled first; {@code null}
     * once the timer is closed, so that a call racing with {@link #close()} simply has no deadline timer.
     */
    public Handle arm(Runnable onExpiry, long nanos) {
        if (closed) {
            return null;
        }
        Entry entry = new Entry(System.nanoTime() + Math.max(0, nanos), onExpiry);
        armed.add(entry);
        Thread thread = sweeper;
        if (thread == null) {
            thread = start();
        }
        if (idle) {
            LockSupport.unpark(thread);
        }
        return entry;
    }

    private synchronized Thread start() {
        if (sweeper == null && !closed) {
            Thread thread = new Thread(this::sweep, "upstream-guard-deadline");
            thread.setDaemon(true);
            sweeper = thread;
            thread.start();
        }
        return sweeper;
    }

    private void sweep() {
        while (!closed) {
            if (armed.isEmpty()) {
                idle = true;
                // Re-checked after announcing idleness: an arm() in between either sees idle and unparks, or is seen here.
                if (armed.isEmpty() && !closed) {
                    LockSupport.park(this);
                }
                idle = false;
                continue;
            }
            LockSupport.parkNanos(this, TimeUnit.MILLISECONDS.toNanos(TICK_MILLIS));
            long now = System.nanoTime();
            for (Entry entry : armed) {
                if (now - entry.expiresAt >= 0 && armed.remove(entry)) {
                    try {
                        entry.onExpiry.run();
                    } catch (RuntimeException e) {
                        // Cancelling a request cannot be allowed to stop every other call's deadline.
                    }
                }
            }
        }
        armed.clear();
    }

    @Override
    public void close() {
        closed = true;
        Thread thread = sweeper;
        if (thread != null) {
            LockSupport.unpark(thread);
        }
    }

    private final class Entry implements Handle {
        final long expiresAt;
        final Runnable onExpiry;

        Entry(long expiresAt, Runnable onExpiry) {
            this.expiresAt = expiresAt;
            this.onExpiry = onExpiry;
        }

        @Override
        public void cancel() {
            armed.remove(this);
        }
    }
}
