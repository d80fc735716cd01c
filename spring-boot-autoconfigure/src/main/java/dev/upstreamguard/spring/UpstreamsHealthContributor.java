package dev.upstreamguard.spring;

import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedUpstream;
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
        return stream().filter(e -> e.name().equals(name)).map(Entry::contributor).findFirst().orElse(null);
    }

    @Override
    public Stream<Entry> stream() {
        return client.upstreams().stream().sorted(java.util.Comparator.comparing(GuardedUpstream::name))
                .map(u -> new Entry(healthName(u.name()), indicator(u)));
    }

    static String healthName(String upstream) {
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
