package dev.upstreamguard.samples;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.boot.EnvironmentPostProcessor;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.context.properties.bind.Bindable;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.MapPropertySource;

/**
 * Unless {@code upstream-guard.routes.*} are configured (then the sample is a plain gateway), starts the
 * {@link FaultyUpstream} before the application binds its properties, and routes to it: upstream {@code faulty}, the
 * proxy route {@code /faulty/**}, the route {@code /refused/**} to a closed port, and {@code /breaker/**}, an upstream
 * whose circuit opens after three failures. These are defaults: anything set elsewhere wins.
 */
public final class EmbeddedUpstreamEnvironment implements EnvironmentPostProcessor {

    /** The property holding the embedded upstream's port, when it runs. */
    public static final String PORT_PROPERTY = "sample.upstream.port";

    @Override
    public void postProcessEnvironment(ConfigurableEnvironment environment, SpringApplication application) {
        if (!environment.getProperty("sample.upstream.enabled", Boolean.class, true)
                || environment.containsProperty(PORT_PROPERTY)) {
            return;
        }
        Map<String, Object> routes = Binder.get(environment)
                .bind("upstream-guard.routes", Bindable.mapOf(String.class, Object.class)).orElse(Map.of());
        if (!routes.isEmpty()) {
            return;
        }
        FaultyUpstream upstream;
        int closed;
        try {
            upstream = FaultyUpstream.start();
            closed = FaultyUpstream.closedPort();
        } catch (IOException e) {
            throw new UncheckedIOException("Could not start the embedded faulty upstream", e);
        }
        Map<String, Object> p = new LinkedHashMap<>();
        p.put(PORT_PROPERTY, upstream.port());
        p.put("sample.refused.url", "http://127.0.0.1:" + closed);
        p.put("upstream-guard.upstreams.faulty.url", upstream.url());
        p.put("upstream-guard.upstreams.faulty.response-timeout", "2s");
        p.put("upstream-guard.upstreams.faulty.max-response-body", "1MB");
        // Keep the tour's deliberate failures from opening this upstream's circuit; /breaker shows that instead.
        p.put("upstream-guard.upstreams.faulty.circuit-breaker.minimum-calls", "1000");
        p.put("upstream-guard.upstreams.faulty.retry.budget-min-per-second", "100");
        p.put("upstream-guard.upstreams.refused.url", "http://127.0.0.1:" + closed);
        p.put("upstream-guard.upstreams.refused.circuit-breaker.minimum-calls", "1000");
        p.put("upstream-guard.upstreams.refused.retry.budget-min-per-second", "100");
        p.put("upstream-guard.upstreams.breaker.url", upstream.url());
        p.put("upstream-guard.upstreams.breaker.retry.enabled", "false");
        p.put("upstream-guard.upstreams.breaker.circuit-breaker.minimum-calls", "3");
        p.put("upstream-guard.upstreams.breaker.circuit-breaker.open-for", "30s");
        p.put("upstream-guard.routes.faulty.path", "/faulty/**");
        p.put("upstream-guard.routes.faulty.upstream", "faulty");
        p.put("upstream-guard.routes.faulty.strip-prefix", "1");
        p.put("upstream-guard.routes.refused.path", "/refused/**");
        p.put("upstream-guard.routes.refused.upstream", "refused");
        p.put("upstream-guard.routes.refused.strip-prefix", "1");
        p.put("upstream-guard.routes.breaker.path", "/breaker/**");
        p.put("upstream-guard.routes.breaker.upstream", "breaker");
        p.put("upstream-guard.routes.breaker.strip-prefix", "1");
        environment.getPropertySources().addLast(new MapPropertySource("embeddedFaultyUpstream", p));
    }
}
