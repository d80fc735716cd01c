package dev.upstreamguard.spring;

import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedUpstream;
import java.util.Collection;
import java.util.Map;
import java.util.TreeMap;
import org.springframework.boot.actuate.endpoint.annotation.Endpoint;
import org.springframework.boot.actuate.endpoint.annotation.ReadOperation;
import org.springframework.boot.actuate.endpoint.annotation.Selector;

/**
 * The {@code upstreams} Actuator endpoint: every upstream the guarded client knows (named ones, and unnamed ones once
 * called) with its circuit state, bulkhead use, retry budget, faults since start and policy.
 */
@Endpoint(id = "upstreams")
public class UpstreamsEndpoint {

    private final GuardedHttpClient client;

    /** An endpoint reporting on {@code client}'s upstreams. */
    public UpstreamsEndpoint(GuardedHttpClient client) {
        this.client = client;
    }

    /** Every upstream, by name. */
    @ReadOperation
    public Map<String, Object> upstreams() {
        Map<String, Object> all = new TreeMap<>();
        for (GuardedUpstream upstream : client.upstreams()) {
            all.put(upstream.name(), describe(upstream));
        }
        return Map.of("upstreams", all);
    }

    /**
     * One upstream, by its name or by its name in health ({@code http-127.0.0.1-9000} for the unnamed
     * {@code http://127.0.0.1:9000}, which no URL path can carry); {@code null} (404) when there is none.
     */
    @ReadOperation
    public UpstreamDescriptor upstream(@Selector String name) {
        Collection<GuardedUpstream> upstreams = client.upstreams();
        for (GuardedUpstream upstream : upstreams) {
            if (upstream.name().equals(name)) {
                return describe(upstream);
            }
        }
        GuardedUpstream upstream = UpstreamsHealthContributor.byHealthName(upstreams).get(name);
        return upstream == null ? null : describe(upstream);
    }

    static UpstreamDescriptor describe(GuardedUpstream upstream) {
        Map<String, Long> faults = new TreeMap<>();
        for (Map.Entry<UpstreamFault, Long> e : upstream.faultCounts().entrySet()) {
            faults.put(e.getKey().type(), e.getValue());
        }
        var policy = upstream.policy();
        Long retryAfter = upstream.retryAfter().map(d -> (d.toMillis() + 999) / 1000).orElse(null);
        return new UpstreamDescriptor(upstream.name(), upstream.circuitState(), retryAfter,
                upstream.callsInFlight(), policy.bulkhead().enabled() ? policy.bulkhead().maxConcurrentCalls() : null,
                upstream.retriesAvailable(), faults, policy.asProperties());
    }

    /**
     * One upstream's live state.
     *
     * @param name the upstream's name
     * @param circuitState {@code CLOSED}, {@code OPEN}, {@code HALF_OPEN} or {@code DISABLED}; {@code FORCED_OPEN}
     *     or {@code METRICS_ONLY} once an operator moved the breaker
     * @param retryAfterSeconds while open, seconds until trial calls are let through
     * @param callsInFlight calls started and not yet finished, bulkhead or not
     * @param maxConcurrentCalls the bulkhead's limit, {@code null} when disabled
     * @param retriesAvailable retries the budget would allow right now
     * @param faults faults seen since start, by RFC 9209 type
     * @param policy the upstream's policy, by setting
     */
    public record UpstreamDescriptor(String name, String circuitState, Long retryAfterSeconds, int callsInFlight,
            Integer maxConcurrentCalls, int retriesAvailable, Map<String, Long> faults, Map<String, String> policy) {
    }
}
