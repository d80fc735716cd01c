package dev.upstreamguard.client;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamFault;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;

/**
 * A read-only view of one upstream's live state, for operators (Actuator endpoints, health checks, dashboards):
 * its policy, circuit state, bulkhead use, retry budget and the faults seen since start.
 */
public interface GuardedUpstream {

    /** The upstream's name: the configured one, or {@code scheme://host:port} for an unnamed upstream. */
    String name();

    /** The policy calls to this upstream run under. */
    GuardPolicy policy();

    /**
     * The circuit breaker's state: {@code CLOSED}, {@code OPEN}, {@code HALF_OPEN}, or {@code DISABLED} (none), and
     * Resilience4j's {@code FORCED_OPEN} or {@code METRICS_ONLY} after an operator moved {@link #circuitBreaker()}.
     * An open circuit whose {@code open-for} has passed is {@code HALF_OPEN} already: the next call is a trial call.
     */
    String circuitState();

    /** When an open circuit lets trial calls through again, if it is open. */
    Optional<Duration> retryAfter();

    /** Calls started and not yet finished (a response whose body is still being read included), bulkhead or not. */
    int callsInFlight();

    /** Retries the budget would allow right now. */
    int retriesAvailable();

    /** Faults seen since start, by fault; faults never seen are absent. */
    Map<UpstreamFault, Long> faultCounts();

    /** The Resilience4j circuit breaker, when enabled, for callers that want its full metrics. */
    Optional<io.github.resilience4j.circuitbreaker.CircuitBreaker> circuitBreaker();
}
