package dev.upstreamguard.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class RetryBudgetTest {

    /**
     * Regression: the budget's seconds were the ticker's nanoseconds divided with truncation, so a ticker below zero
     * (System.nanoTime may be, the JDK says) made one "second" of the two either side of zero, and retries taken just
     * before zero stayed counted a second longer than the window.
     */
    @Test
    void retriesTakenJustBeforeTheTickerPassesZeroLeaveTheWindowTenSecondsLater() {
        AtomicLong nanos = new AtomicLong(-Duration.ofMillis(500).toNanos());
        RetryBudget budget = new RetryBudget(0, 1, nanos::get);
        for (int i = 0; i < 10; i++) {
            assertThat(budget.tryRetry()).as("retry %d", i).isTrue();
        }
        assertThat(budget.tryRetry()).isFalse();
        nanos.addAndGet(Duration.ofSeconds(10).toNanos());
        assertThat(budget.remaining()).isEqualTo(10);
    }
}
