package dev.upstreamguard.internal;

import dev.upstreamguard.UpstreamFault;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.TimeUnit;

/**
 * The client-side meters of one upstream, named as in the design: {@code upstream.guard.calls},
 * {@code upstream.guard.retries} and {@code upstream.guard.retry.budget.exhausted}. Tags never hold a URI; methods
 * outside the standard set are tagged {@code OTHER} so a client cannot blow up cardinality.
 */
public final class GuardMetrics {

    private final MeterRegistry registry;
    private final String upstream;
    private final ConcurrentMap<Long, Timer> timers = new ConcurrentHashMap<>();
    private final ConcurrentMap<String, Counter> retries = new ConcurrentHashMap<>();
    private final Counter budgetExhausted;
    /** Set when the upstream is forgotten: a call still finishing must not register its meters again. */
    private volatile boolean closed;

    GuardMetrics(MeterRegistry registry, String upstream) {
        this.registry = registry;
        this.upstream = upstream;
        this.budgetExhausted = registry == null ? null
                : Counter.builder("upstream.guard.retry.budget.exhausted")
                        .description("Retries refused because the upstream's retry budget was spent")
                        .tag("upstream", upstream)
                        .register(registry);
    }

    /** Records one finished call. {@code status} is 0 when no response arrived; {@code fault} null when none. */
    public void recordCall(String method, String outcome, int status, UpstreamFault fault, long nanos) {
        if (registry == null || closed) {
            return;
        }
        int m = methodIndex(method);
        int o = outcomeIndex(outcome);
        // The tag values packed in one number: a cached timer per combination, no string building per call.
        long key = ((long) m << 40) | ((long) o << 32) | ((long) status << 8) | (fault == null ? 0 : fault.ordinal() + 1);
        Timer timer = timers.get(key);
        if (timer == null) {
            timer = timers.computeIfAbsent(key, k -> Timer.builder("upstream.guard.calls")
                    .description("Calls to an upstream: one sample per call whatever its attempts, timed to "
                            + "the end of its body")
                    .tag("upstream", upstream)
                    .tag("method", METHODS[m])
                    .tag("outcome", outcome)
                    .tag("status", status == 0 ? "none" : Integer.toString(status))
                    .tag("fault", fault == null ? "none" : fault.type())
                    .register(registry));
        }
        timer.record(nanos, TimeUnit.NANOSECONDS);
    }

    /** Records one retry, tagged with what caused it: a fault type, or {@code status_503} and the like. */
    public void recordRetry(String cause) {
        if (registry == null || closed) {
            return;
        }
        retries.computeIfAbsent(cause, c -> Counter.builder("upstream.guard.retries")
                .description("Attempts after the first")
                .tag("upstream", upstream)
                .tag("fault", c)
                .register(registry)).increment();
    }

    /** Removes every meter of this upstream from the registry; later records are dropped. */
    void close() {
        closed = true;
        if (registry == null) {
            return;
        }
        timers.values().forEach(registry::remove);
        retries.values().forEach(registry::remove);
        registry.remove(budgetExhausted);
    }

    public void recordBudgetExhausted() {
        if (budgetExhausted != null) {
            budgetExhausted.increment();
        }
    }

    private static final String[] METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
        "OTHER"};
    /** The outcome of a call the caller cancelled: not the upstream's fault, and not a success either. */
    public static final String CANCELLED = "cancelled";

    private static final String[] OUTCOMES = {"success", "client_error", "server_error", "fault", "rejected",
        CANCELLED};

    private static int methodIndex(String method) {
        for (int i = 0; i < METHODS.length - 1; i++) {
            if (METHODS[i].equals(method)) {
                return i;
            }
        }
        return METHODS.length - 1;
    }

    private static int outcomeIndex(String outcome) {
        for (int i = 0; i < OUTCOMES.length; i++) {
            if (OUTCOMES[i].equals(outcome)) {
                return i;
            }
        }
        throw new IllegalArgumentException("Unknown outcome " + outcome);
    }

    /** The outcome tag for an upstream status. */
    public static String outcome(int status) {
        if (status >= 500) {
            return "server_error";
        }
        if (status >= 400) {
            return "client_error";
        }
        return "success";
    }
}
