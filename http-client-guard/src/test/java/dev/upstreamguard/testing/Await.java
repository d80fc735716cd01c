package dev.upstreamguard.testing;

import java.time.Duration;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/**
 * Bounded polling for state that settles asynchronously, such as a connection a cancelling timer thread returns to the
 * pool just after the caller saw its call fail. No sleeps.
 */
public final class Await {

    private Await() {
    }

    /** Polls {@code condition} until it holds; fails with {@code what} when it does not within {@code timeout}. */
    public static void until(String what, Duration timeout, BooleanSupplier condition) {
        until(what, timeout, condition, () -> "");
    }

    /** As above; {@code state} describes what was seen instead, for the failure message. */
    public static void until(String what, Duration timeout, BooleanSupplier condition, Supplier<String> state) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("Timed out after " + timeout + " waiting until " + what + " " + state.get());
            }
            LockSupport.parkNanos(5_000_000);
        }
    }
}
