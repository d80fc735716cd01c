package dev.upstreamguard.client;

import java.time.Duration;

/** Waits between retry attempts; injectable so that backoff and {@code Retry-After} can be tested without waiting. */
@FunctionalInterface
public interface Sleeper {

    /** Blocks the calling thread for {@code duration}. */
    void sleep(Duration duration) throws InterruptedException;

    /** Sleeps with {@link Thread#sleep(long, int)}. */
    static Sleeper system() {
        return d -> {
            long nanos = d.toNanos();
            if (nanos > 0) {
                Thread.sleep(nanos / 1_000_000, (int) (nanos % 1_000_000));
            }
        };
    }
}
