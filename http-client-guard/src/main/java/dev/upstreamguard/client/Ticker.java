package dev.upstreamguard.client;

/**
 * A monotonic time source in nanoseconds, injectable so that time-based logic (deadlines, the retry budget's window)
 * can be tested without waiting.
 */
@FunctionalInterface
public interface Ticker {

    /** The current reading in nanoseconds; only differences between readings mean anything. */
    long nanoTime();

    /** The system's monotonic clock. */
    static Ticker system() {
        return System::nanoTime;
    }
}
