package dev.upstreamguard.spring;

import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedUpstream;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.springframework.boot.health.contributor.CompositeHealthContributor;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthContributor;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.boot.health.contributor.Status;

/**
 * One health indicator per upstream, under {@code /actuator/health/upstreams/<name>}. A closed (or disabled) circuit
 * is {@code UP}; an open one is {@link #CIRCUIT_OPEN} and a half-open one {@link #CIRCUIT_HALF_OPEN}. Neither is in
 * Spring Boot's default status order, so an upstream outage never turns the application {@code DOWN} or fails its
 * liveness: the application is alive and is answering 503s correctly. To make readiness fail on an open circuit, add
 * the status to the order and map it, e.g. {@code management.endpoint.health.status.order=down,circuit-open,out-of-service,up,unknown}
 * and {@code management.endpoint.health.status.http-mapping.circuit-open=503}, and include {@code upstreams} in the
 * readiness group.
 *
 * <p>Unnamed upstreams ({@code http://host:port}) appear once called, named {@code http-host-port}.
 */
public class UpstreamsHealthContributor implements CompositeHealthContributor {

    /** The status of an upstream whose circuit is open. */
    public static final Status CIRCUIT_OPEN = new Status("CIRCUIT_OPEN", "Circuit open: calls are rejected");

    /** The status of an upstream whose circuit lets trial calls through. */
    public static final Status CIRCUIT_HALF_OPEN = new Status("CIRCUIT_HALF_OPEN",
            "Circuit half-open: trial calls are let through");

    private final GuardedHttpClient client;

    /** Health of {@code client}'s upstreams. */
    public UpstreamsHealthContributor(GuardedHttpClient client) {
        this.client = client;
    }

    @Override
    public HealthContributor getContributor(String name) {
        GuardedUpstream upstream = byHealthName(client.upstreams()).get(name);
        return upstream == null ? null : indicator(upstream);
    }

    @Override
    public Stream<Entry> stream() {
        return byHealthName(client.upstreams()).entrySet().stream()
                .map(e -> new Entry(e.getKey(), indicator(e.getValue())));
    }

    /**
     * The upstreams by health name, in name order. A health name keeps only characters a URL path carries as they
     * are ({@code http://host:9000} is {@code http-host-9000}), so different names can read alike ({@code a b},
     * {@code a+b}, {@code a-b}); each must still have a name of its own, or health would show one and hide the
     * others' open circuits. A name that needs no change keeps it; the others take the next free number.
     */
    static Map<String, GuardedUpstream> byHealthName(Collection<GuardedUpstream> upstreams) {
        List<GuardedUpstream> sorted = upstreams.stream().sorted(Comparator.comparing(GuardedUpstream::name))
                .toList();
        Map<String, GuardedUpstream> byName = new HashMap<>();
        List<GuardedUpstream> renamed = new ArrayList<>();
        for (GuardedUpstream upstream : sorted) {
            if (healthName(upstream.name()).equals(upstream.name())) {
                byName.put(upstream.name(), upstream);
            } else {
                renamed.add(upstream);
            }
        }
        for (GuardedUpstream upstream : renamed) {
            String base = healthName(upstream.name());
            String name = base;
            for (int n = 2; byName.containsKey(name); n++) {
                name = base + "-" + n;
            }
            byName.put(name, upstream);
        }
        return new TreeMap<>(byName);
    }

    private static String healthName(String upstream) {
        return upstream.replace("://", "-").replaceAll("[^A-Za-z0-9._-]", "-");
    }

    private static HealthIndicator indicator(GuardedUpstream upstream) {
        return () -> {
            String state = upstream.circuitState();
            Health.Builder health;
            switch (state) {
                case "OPEN":
                case "FORCED_OPEN":
                    health = Health.status(CIRCUIT_OPEN);
                    break;
                case "HALF_OPEN":
                    health = Health.status(CIRCUIT_HALF_OPEN);
                    break;
                default:
                    health = Health.up();
            }
            health.withDetail("upstream", upstream.name()).withDetail("circuitState", state)
                    .withDetail("callsInFlight", upstream.callsInFlight())
                    .withDetail("retriesAvailable", upstream.retriesAvailable());
            upstream.retryAfter().ifPresent(d -> health.withDetail("retryAfterSeconds", (d.toMillis() + 999) / 1000));
            return health.build();
        };
    }
}
