package dev.upstreamguard.internal;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.GuardedUpstream;
import dev.upstreamguard.client.Ticker;
import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig.SlidingWindowSynchronizationStrategy;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig.SlidingWindowType;
import io.github.resilience4j.micrometer.tagged.TaggedBulkheadMetrics;
import io.github.resilience4j.micrometer.tagged.TaggedCircuitBreakerMetrics;
import io.github.resilience4j.bulkhead.BulkheadRegistry;
import io.github.resilience4j.circuitbreaker.CircuitBreakerRegistry;
import io.micrometer.core.instrument.MeterRegistry;
import java.time.Clock;
import org.apache.hc.client5.http.config.RequestConfig;
import java.time.Duration;
import java.util.Collections;
import java.util.EnumMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLongArray;

/** The live state of one upstream: its policy, breaker, bulkhead, retry budget, meters and fault counts. */
public final class UpstreamGuard implements GuardedUpstream {

    private static final UpstreamFault[] FAULTS = UpstreamFault.values();

    private final String name;
    private final GuardPolicy policy;
    private final CircuitBreaker breaker;
    private final Bulkhead bulkhead;
    private final RetryBudget budget;
    private final GuardMetrics metrics;
    private final Clock clock;
    private final AtomicLongArray faultCounts = new AtomicLongArray(FAULTS.length);
    /**
     * Calls in flight when there is no bulkhead to count them. Without it an upstream mid-call looked idle: forgotten
     * with its meters (the call's sample lost) and shown with no call in flight. With a bulkhead its permits count
     * them, so a busy upstream's calls do not write this shared field as well.
     */
    private final AtomicInteger uncountedInFlight = new AtomicInteger();
    private final CircuitBreakerRegistry breakerRegistry;
    private final BulkheadRegistry bulkheadRegistry;
    private volatile long openedAtMillis;
    /** Counts the breaker's changes of state, as seen by {@link #breakerGeneration()}; written before seenState. */
    private volatile long breakerGeneration;
    private volatile CircuitBreaker.State seenState = CircuitBreaker.State.CLOSED;
    private final Object generationLock = new Object();
    private volatile RequestConfig attemptConfig;
    private volatile long lastUsedNanos;

    public UpstreamGuard(String name, GuardPolicy policy, Ticker ticker, Clock clock, MeterRegistry registry) {
        this.name = name;
        this.policy = policy;
        this.clock = clock;
        this.budget = new RetryBudget(policy.retry().budgetRatio(), policy.retry().budgetMinPerSecond(), ticker);
        this.metrics = new GuardMetrics(registry, name);
        GuardPolicy.CircuitBreaker cb = policy.circuitBreaker();
        if (cb.enabled()) {
            CircuitBreakerConfig config = CircuitBreakerConfig.custom()
                    .failureRateThreshold(cb.failureRateThreshold())
                    .minimumNumberOfCalls(cb.minimumCalls())
                    .slidingWindowType(SlidingWindowType.TIME_BASED)
                    // Every call records an outcome; the synchronized window would serialize them all. But the
                    // lock-free window reads the system's time, not the configured clock: with a clock of the caller's
                    // (a test's fake time) open-for moved while failures never aged out of the window.
                    .slidingWindowSynchronizationStrategy(isSystemClock(clock)
                            ? SlidingWindowSynchronizationStrategy.LOCK_FREE
                            : SlidingWindowSynchronizationStrategy.SYNCHRONIZED)
                    .slidingWindowSize((int) Math.max(1, cb.window().toSeconds()))
                    .waitDurationInOpenState(cb.openFor())
                    .permittedNumberOfCallsInHalfOpenState(cb.halfOpenCalls())
                    // Resilience4j would open on calls slower than 60 s by default; a call lasts until its body is
                    // read, so a long download or event stream is no failure. Only faults and record-statuses count.
                    .slowCallRateThreshold(100)
                    .slowCallDurationThreshold(Duration.ofNanos(Long.MAX_VALUE))
                    // Every outcome is reported explicitly, already classified; nothing is recorded by type here.
                    .recordException(e -> true)
                    .writableStackTraceEnabled(false)
                    .clock(clock)
                    .build();
            this.breakerRegistry = CircuitBreakerRegistry.of(config);
            this.breaker = breakerRegistry.circuitBreaker(name);
            if (registry != null) {
                TaggedCircuitBreakerMetrics.ofCircuitBreakerRegistry(breakerRegistry).bindTo(registry);
            }
        } else {
            this.breakerRegistry = null;
            this.breaker = null;
        }
        if (policy.bulkhead().enabled()) {
            this.bulkheadRegistry = BulkheadRegistry.of(BulkheadConfig.custom()
                    .maxConcurrentCalls(policy.bulkhead().maxConcurrentCalls())
                    .maxWaitDuration(Duration.ZERO)
                    .writableStackTraceEnabled(false)
                    .build());
            this.bulkhead = bulkheadRegistry.bulkhead(name);
            if (registry != null) {
                TaggedBulkheadMetrics.ofBulkheadRegistry(bulkheadRegistry).bindTo(registry);
            }
        } else {
            this.bulkheadRegistry = null;
            this.bulkhead = null;
        }
        this.lastUsedNanos = ticker.nanoTime();
    }

    /** Whether {@code clock} shows the system's time, in whatever zone, as Resilience4j's lock-free window does. */
    private static boolean isSystemClock(Clock clock) {
        return clock.getClass() == Clock.systemUTC().getClass();
    }

    /**
     * Notes a call at {@code nanos} (the client's ticker), for {@link #lastUsedNanos()}. Written at most once a second:
     * every call of a busy upstream would otherwise write the same shared field.
     */
    public void used(long nanos) {
        if (nanos - lastUsedNanos > 1_000_000_000L) {
            lastUsedNanos = nanos;
        }
    }

    /** When a call last started, to within a second, on the client's ticker. */
    public long lastUsedNanos() {
        return lastUsedNanos;
    }

    /**
     * Whether forgetting this upstream loses nothing a caller relies on: its circuit is closed (an open or half-open
     * one is protecting the upstream and must keep its state) and the bulkhead sees no call in flight.
     */
    public boolean isIdle() {
        CircuitBreaker.State state = breaker == null ? CircuitBreaker.State.CLOSED : breaker.getState();
        return state == CircuitBreaker.State.CLOSED && callsInFlight() == 0;
    }

    /** Removes this upstream's meters (ours and Resilience4j's) from the registry; the object stays usable. */
    public void close() {
        metrics.close();
        if (breakerRegistry != null) {
            breakerRegistry.remove(name);
        }
        if (bulkheadRegistry != null) {
            bulkheadRegistry.remove(name);
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public GuardPolicy policy() {
        return policy;
    }

    /** The breaker, or {@code null} when disabled. */
    public CircuitBreaker breaker() {
        return breaker;
    }

    /** The bulkhead, or {@code null} when disabled. */
    public Bulkhead bulkhead() {
        return bulkhead;
    }

    /** The request config of an attempt that the deadline does not cap, once built; see the client. */
    public RequestConfig attemptConfig() {
        return attemptConfig;
    }

    public void attemptConfig(RequestConfig config) {
        this.attemptConfig = config;
    }

    /**
     * Reports a failure to the breaker and notes when it opens, for {@link #retryAfter()}. Watched here rather than
     * through the breaker's event publisher: with any consumer subscribed, Resilience4j creates a timestamped event
     * object for every single call. Dropped when the breaker changed state since the call took its permit
     * ({@code generation}, from {@link #breakerGeneration()}): the outcome belongs to a state that is over.
     */
    public void recordBreakerFailure(long nanos, Throwable cause, long generation) {
        if (generation != breakerGeneration()) {
            return;
        }
        CircuitBreaker.State before = breaker.getState();
        breaker.onError(nanos, TimeUnit.NANOSECONDS, cause);
        noteIfOpened(before);
    }

    /**
     * Reports a success to the breaker and notes when it opens. A success can open it too: the failure rate is judged
     * on every recorded call, so the call that completes the minimum (or the last half-open trial) may be a success
     * with enough failures before it; missing that left {@link #retryAfter()} counting from an older opening (a
     * {@code Retry-After} of 1 s for a circuit open for {@code open-for}). Dropped, as a failure is, when the breaker
     * changed state since the call took its permit ({@code generation}).
     */
    public void recordBreakerSuccess(long nanos, long generation) {
        if (generation != breakerGeneration()) {
            return;
        }
        CircuitBreaker.State before = breaker.getState();
        breaker.onSuccess(nanos, TimeUnit.NANOSECONDS);
        noteIfOpened(before);
    }

    /**
     * Gives back the permit of a call whose outcome says nothing about the upstream, if it was taken in the breaker's
     * present state: a half-open permit given back in a later one would let one trial call too many through.
     */
    public void releaseBreakerPermit(long generation) {
        if (generation == breakerGeneration()) {
            breaker.releasePermission();
        }
    }

    private void noteIfOpened(CircuitBreaker.State before) {
        CircuitBreaker.State after = breaker.getState();
        if (before != CircuitBreaker.State.OPEN && after == CircuitBreaker.State.OPEN) {
            openedAtMillis = clock.millis();
        }
        breakerGeneration();
    }

    /**
     * Which state of the breaker this is: a number that changes whenever the breaker has changed state since it was
     * last asked. A call takes it with its permit, and its outcome is recorded only if it has not changed by the end:
     * Resilience4j records an outcome in whatever state the breaker is in when it arrives, so a call that began before
     * the circuit opened and ended while it was half-open counted as a trial call, and a slow call of the outage could
     * reopen a circuit whose trial calls had all succeeded. Every change of state happens in a permit request or an
     * outcome, and both ask afterwards, so none goes unseen (an operator's transition is seen at the next call).
     */
    public long breakerGeneration() {
        if (breaker.getState() != seenState) {
            // Rare: only at a change of state, so the calls of a steady breaker take no lock.
            synchronized (generationLock) {
                CircuitBreaker.State now = breaker.getState();
                if (now != seenState) {
                    breakerGeneration = breakerGeneration + 1;
                    seenState = now;
                }
            }
        }
        return breakerGeneration;
    }

    public RetryBudget budget() {
        return budget;
    }

    public GuardMetrics metrics() {
        return metrics;
    }

    public void countFault(UpstreamFault fault) {
        faultCounts.incrementAndGet(fault.ordinal());
    }

    /**
     * The breaker's state, except that an open circuit whose {@code open-for} has passed is {@code HALF_OPEN}:
     * Resilience4j moves it only when the next call asks for a permit, so an upstream nobody calls (an instance taken
     * out of rotation on its open circuit) would otherwise read {@code OPEN} for good.
     */
    @Override
    public String circuitState() {
        if (breaker == null) {
            return "DISABLED";
        }
        CircuitBreaker.State state = breaker.getState();
        return state == CircuitBreaker.State.OPEN && openMillisLeft() < 0 ? CircuitBreaker.State.HALF_OPEN.name()
                : state.name();
    }

    @Override
    public Optional<Duration> retryAfter() {
        if (breaker == null || breaker.getState() != CircuitBreaker.State.OPEN) {
            return Optional.empty(); // closed, half-open, or forced open by an operator: no time is known
        }
        long left = openMillisLeft();
        if (left < 0) {
            return Optional.empty(); // the next call is a trial call
        }
        // Retry-After has one-second resolution; never tell a client "0" while the circuit is still open.
        return Optional.of(Duration.ofMillis(Math.max(left, 1)));
    }

    /**
     * Milliseconds until an open circuit lets trial calls through; negative once it would. Strictly negative only
     * when Resilience4j, which noted the opening no later than {@link #openedAtMillis} on the same clock, lets the
     * next call through too, so a call it rejects is never told no time.
     */
    private long openMillisLeft() {
        return openedAtMillis + policy.circuitBreaker().openFor().toMillis() - clock.millis();
    }

    /** A call without a bulkhead permit started; {@link #callEnded()} follows once it is finished. */
    void callStarted() {
        uncountedInFlight.incrementAndGet();
    }

    void callEnded() {
        uncountedInFlight.decrementAndGet();
    }

    @Override
    public int callsInFlight() {
        return bulkhead == null ? uncountedInFlight.get()
                : bulkhead.getBulkheadConfig().getMaxConcurrentCalls() - bulkhead.getMetrics().getAvailableConcurrentCalls();
    }

    @Override
    public int retriesAvailable() {
        return budget.remaining();
    }

    @Override
    public Map<UpstreamFault, Long> faultCounts() {
        Map<UpstreamFault, Long> counts = new EnumMap<>(UpstreamFault.class);
        for (int i = 0; i < FAULTS.length; i++) {
            long n = faultCounts.get(i);
            if (n > 0) {
                counts.put(FAULTS[i], n);
            }
        }
        return Collections.unmodifiableMap(counts);
    }

    @Override
    public Optional<CircuitBreaker> circuitBreaker() {
        return Optional.ofNullable(breaker);
    }
}
