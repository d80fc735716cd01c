package dev.upstreamguard.internal;

import dev.upstreamguard.client.Ticker;

/**
 * Caps retries at a share of recent calls, plus a small floor per second, so that retries cannot multiply the
 * load on an upstream that is already failing (the approach of Finagle's and Linkerd's retry budgets).
 *
 * <p>Calls and retries are counted in one-second buckets over a ten-second window. A retry is allowed while
 * {@code retries < ratio × calls + minPerSecond × windowSeconds}.
 */
public final class RetryBudget {

    private static final int WINDOW_SECONDS = 10;
    private static final long SECOND = 1_000_000_000L;

    private final double ratio;
    private final int minPerSecond;
    private final Ticker ticker;
    private final long[] calls = new long[WINDOW_SECONDS];
    private final long[] retries = new long[WINDOW_SECONDS];
    private long currentSecond;

    public RetryBudget(double ratio, int minPerSecond, Ticker ticker) {
        this.ratio = ratio;
        this.minPerSecond = minPerSecond;
        this.ticker = ticker;
        this.currentSecond = ticker.nanoTime() / SECOND;
    }

    /** Counts one call (a first attempt). */
    public synchronized void onCall() {
        calls[advance()]++;
    }

    /** Takes one retry from the budget if one is left; counts it when taken. */
    public synchronized boolean tryRetry() {
        int slot = advance();
        if (available() < 1) {
            return false;
        }
        retries[slot]++;
        return true;
    }

    /** Retries the budget would allow now. */
    public synchronized int remaining() {
        advance();
        return (int) Math.max(0, Math.floor(available()));
    }

    private double available() {
        long callSum = 0;
        long retrySum = 0;
        for (int i = 0; i < WINDOW_SECONDS; i++) {
            callSum += calls[i];
            retrySum += retries[i];
        }
        return ratio * callSum + (double) minPerSecond * WINDOW_SECONDS - retrySum;
    }

    private int advance() {
        long now = ticker.nanoTime() / SECOND;
        if (now != currentSecond) {
            long gap = Math.min(now - currentSecond, WINDOW_SECONDS);
            for (long s = 1; s <= gap; s++) {
                int slot = (int) Math.floorMod(currentSecond + s, (long) WINDOW_SECONDS);
                calls[slot] = 0;
                retries[slot] = 0;
            }
            currentSecond = now;
        }
        return (int) Math.floorMod(now, (long) WINDOW_SECONDS);
    }
}
