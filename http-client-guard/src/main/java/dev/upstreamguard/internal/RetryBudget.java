package dev.upstreamguard.internal;

import dev.upstreamguard.client.Ticker;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Caps retries at a share of recent calls, plus a small floor per second, so that retries cannot multiply the
 * load on an upstream that is already failing (the approach of Finagle's and Linkerd's retry budgets).
 *
 * <p>Calls and retries are counted in one-second buckets over a ten-second window. A retry is allowed when, counting
 * it, {@code retries ≤ ratio × calls + minPerSecond × windowSeconds} (the ratio exact to a millionth).
 */
public final class RetryBudget {

    private static final int WINDOW_SECONDS = 10;
    private static final long SECOND = 1_000_000_000L;

    /** A millionth of a retry: the unit the budget is counted in, so that it adds up exactly. */
    private static final long MICROS = 1_000_000L;

    /**
     * The ratio in millionths of a retry per call. Counted in a double, 29 % of 100 calls was 28.999999999999996 retries,
     * and the 29th retry was refused.
     */
    private final long ratioMicros;
    private final int minPerSecond;
    private final Ticker ticker;
    // Every call counts itself, so counting is lock-free; only the once-a-second rotation and retries take the lock.
    private final AtomicLongArray calls = new AtomicLongArray(WINDOW_SECONDS);
    private final AtomicLongArray retries = new AtomicLongArray(WINDOW_SECONDS);
    private volatile long currentSecond;

    public RetryBudget(double ratio, int minPerSecond, Ticker ticker) {
        this.ratioMicros = Math.round(ratio * MICROS);
        this.minPerSecond = minPerSecond;
        this.ticker = ticker;
        this.currentSecond = Math.floorDiv(ticker.nanoTime(), SECOND);
    }

    /** Counts one call (a first attempt). */
    public void onCall() {
        calls.incrementAndGet(advance());
    }

    /** Takes one retry from the budget if one is left; counts it when taken. */
    public synchronized boolean tryRetry() {
        int slot = advance();
        if (availableMicros() < MICROS) {
            return false;
        }
        retries.incrementAndGet(slot);
        return true;
    }

    /** Gives back a retry taken by {@link #tryRetry()} that was never made (the newest one still in the window). */
    public synchronized void giveBack() {
        int slot = advance();
        for (int i = 0; i < WINDOW_SECONDS; i++) {
            int s = Math.floorMod(slot - i, WINDOW_SECONDS);
            if (retries.get(s) > 0) {
                retries.decrementAndGet(s);
                return;
            }
        }
    }

    /** Retries the budget would allow now. */
    public synchronized int remaining() {
        advance();
        return (int) Math.min(Integer.MAX_VALUE, Math.max(0, availableMicros() / MICROS));
    }

    /** Retries left, in millionths: {@code ratio × calls + minPerSecond × windowSeconds − retries}. */
    private long availableMicros() {
        long callSum = 0;
        long retrySum = 0;
        for (int i = 0; i < WINDOW_SECONDS; i++) {
            callSum += calls.get(i);
            retrySum += retries.get(i);
        }
        return ratioMicros * callSum + ((long) minPerSecond * WINDOW_SECONDS - retrySum) * MICROS;
    }

    private int advance() {
        long now = Math.floorDiv(ticker.nanoTime(), SECOND);
        if (now != currentSecond) {
            rotate(now);
        }
        return (int) Math.floorMod(now, (long) WINDOW_SECONDS);
    }

    private synchronized void rotate(long now) {
        if (now == currentSecond) {
            return; // another thread rotated first
        }
        long gap = Math.min(now - currentSecond, WINDOW_SECONDS);
        for (long s = 1; s <= gap; s++) {
            int slot = (int) Math.floorMod(currentSecond + s, (long) WINDOW_SECONDS);
            calls.set(slot, 0);
            retries.set(slot, 0);
        }
        currentSecond = now;
    }
}
