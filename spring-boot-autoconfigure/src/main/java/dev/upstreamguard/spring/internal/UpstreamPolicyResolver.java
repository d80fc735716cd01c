package dev.upstreamguard.spring.internal;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.spring.UpstreamPolicy;
import dev.upstreamguard.spring.UpstreamRegistry;
import java.lang.reflect.AnnotatedElement;
import java.lang.reflect.Method;
import java.net.URI;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.springframework.core.annotation.AnnotatedElementUtils;
import org.springframework.core.env.Environment;

/**
 * Reads {@link UpstreamPolicy} declarations, merges them by precedence, checks them against the
 * {@link UpstreamRegistry}, and turns them into the {@link GuardPolicy} of a call. Everything is cached: declarations
 * per method, policies per (upstream, settings).
 */
public final class UpstreamPolicyResolver {

    private static final PolicyOverride NONE = new PolicyOverride(null, Map.of(), "none");

    private final UpstreamRegistry registry;
    private final Environment environment;
    private final Map<Object, PolicyOverride> declarations = new ConcurrentHashMap<>();
    private final Map<Object, GuardPolicy> policies = new ConcurrentHashMap<>();

    /** A resolver over {@code registry}; {@code environment} resolves placeholders in annotation values. */
    public UpstreamPolicyResolver(UpstreamRegistry registry, Environment environment) {
        this.registry = registry;
        this.environment = environment;
    }

    /** The registry policies are resolved against. */
    public UpstreamRegistry registry() {
        return registry;
    }

    /**
     * The merged declaration of a controller method (over its class), or {@code null} if neither declares one.
     *
     * @throws IllegalStateException naming the method when a value is invalid
     */
    public PolicyOverride forHandler(Method method, Class<?> beanType) {
        PolicyOverride o = declarations.computeIfAbsent(new Key(method, beanType), k -> {
            PolicyOverride onClass = read(beanType, beanType.getName());
            PolicyOverride onMethod = read(method, beanType.getName() + "#" + method.getName());
            return merge(onMethod, onClass);
        });
        return o == NONE ? null : o;
    }

    /**
     * The merged declaration of an {@code @HttpExchange} method (over its interface), or {@code null}.
     *
     * @throws IllegalStateException naming the method when a value is invalid
     */
    public PolicyOverride forExchange(Method method) {
        PolicyOverride o = declarations.computeIfAbsent(method, k -> {
            Class<?> type = method.getDeclaringClass();
            PolicyOverride onType = read(type, type.getName());
            PolicyOverride onMethod = read(method, type.getName() + "#" + method.getName());
            return merge(onMethod, onType);
        });
        return o == NONE ? null : o;
    }

    /** The upstream name a call under {@code override} runs as, if it names one. */
    public Optional<String> upstream(PolicyOverride override) {
        return Optional.ofNullable(override == null ? null : override.upstream());
    }

    /**
     * The policy of a call to {@code uri} under {@code override}: the named upstream's (or the one {@code uri} belongs
     * to, or the defaults) with the override's settings on top; {@code null} when the override changes no setting.
     */
    public GuardPolicy policy(PolicyOverride override, URI uri) {
        if (override == null || override.settings().isEmpty()) {
            return null;
        }
        GuardPolicy base = override.upstream() != null ? registry.policy(override.upstream())
                : registry.policyFor(uri);
        return policies.computeIfAbsent(new Key(base, override.settings()),
                k -> apply(base.toBuilder(), override.settings(), override.source()).build());
    }

    private static PolicyOverride merge(PolicyOverride more, PolicyOverride less) {
        if (more == null) {
            return less == null ? NONE : less;
        }
        return more.over(less);
    }

    private PolicyOverride read(AnnotatedElement element, String source) {
        UpstreamPolicy a = AnnotatedElementUtils.findMergedAnnotation(element, UpstreamPolicy.class);
        if (a == null) {
            return null;
        }
        String where = "@UpstreamPolicy on " + source;
        Map<String, String> settings = new LinkedHashMap<>();
        put(settings, "connect-timeout", where, "connectTimeout", a.connectTimeout());
        put(settings, "response-timeout", where, "responseTimeout", a.responseTimeout());
        put(settings, "total-timeout", where, "totalTimeout", a.totalTimeout());
        put(settings, "max-response-body", where, "maxResponseBody", a.maxResponseBody());
        if (a.maxAttempts() != 0) {
            settings.put("retry.max-attempts", Integer.toString(a.maxAttempts()));
        }
        if (a.retry() != UpstreamPolicy.Retry.INHERIT) {
            settings.put("retry.enabled", Boolean.toString(a.retry() == UpstreamPolicy.Retry.ENABLED));
        }
        String upstream = resolve(where, "upstream", a.upstream());
        // A route to a uri is an upstream of its own, under the route's name: the guarded client knows it so.
        if (!upstream.isEmpty() && !registry.upstreams().containsKey(upstream)
                && !registry.routeUpstreams().containsKey(upstream)) {
            throw new IllegalStateException(where + " names upstream '" + upstream
                    + "', which is not configured under 'upstream-guard.upstreams' (known: "
                    + registry.upstreams().keySet() + ") nor a route to a uri under 'upstream-guard.routes' (known: "
                    + registry.routeUpstreams().keySet() + ")");
        }
        // Checked now, so that a bad value fails start-up rather than a request.
        apply(GuardPolicy.ofDefaults().toBuilder(), settings, where);
        return new PolicyOverride(upstream, settings, where);
    }

    private void put(Map<String, String> settings, String key, String where, String attribute, String value) {
        String resolved = resolve(where, attribute, value);
        if (!resolved.isEmpty()) {
            settings.put(key, resolved);
        }
    }

    private String resolve(String where, String attribute, String value) {
        if (value.isEmpty() || environment == null) {
            return value.trim();
        }
        try {
            return environment.resolveRequiredPlaceholders(value).trim();
        } catch (IllegalArgumentException e) {
            // Spring's message names the placeholder but not where it was written.
            throw new IllegalStateException(where + " is invalid: " + attribute + " = \"" + value + "\": "
                    + e.getMessage(), e);
        }
    }

    private static GuardPolicy.Builder apply(GuardPolicy.Builder b, Map<String, String> settings, String where) {
        try {
            settings.forEach(b::set);
            b.build();
            return b;
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(where + " is invalid: " + e.getMessage(), e);
        }
    }

    private record Key(Object a, Object b) {
    }
}
