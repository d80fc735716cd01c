package dev.upstreamguard.gateway;

import java.time.Duration;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

/** Bounded polling for state that settles asynchronously (a connection returned to the pool). No sleeps. */
final class Await {

    private Await() {
    }

    /** Polls {@code condition} until it holds; fails with {@code what} when it does not within {@code timeout}. */
    static void until(String what, Duration timeout, BooleanSupplier condition) {
        until(what, timeout, condition, () -> "");
    }

    static void until(String what, Duration timeout, BooleanSupplier condition, Supplier<String> state) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("Timed out after " + timeout + " waiting until " + what + " " + state.get());
            }
            LockSupport.parkNanos(5_000_000);
        }
    }
}
