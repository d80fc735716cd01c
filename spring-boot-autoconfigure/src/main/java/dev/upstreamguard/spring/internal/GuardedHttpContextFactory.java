package dev.upstreamguard.spring.internal;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.client.GuardedHttpClient;
import java.net.URI;
import java.util.function.BiFunction;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.springframework.http.HttpMethod;

/**
 * What the {@code HttpContext} of a call through the guarded request factory carries for the {@code @UpstreamPolicy}
 * in force on this thread ({@link CallScope}): the {@link GuardedHttpClient}'s
 * {@link GuardedHttpClient#UPSTREAM_ATTRIBUTE} and {@link GuardedHttpClient#POLICY_ATTRIBUTE}, or {@code null} when no
 * declaration is in force. {@link GuardedRequest} asks as it executes.
 */
public final class GuardedHttpContextFactory implements BiFunction<HttpMethod, URI, HttpContext> {

    private final UpstreamPolicyResolver resolver;

    /** A factory resolving overrides with {@code resolver}. */
    public GuardedHttpContextFactory(UpstreamPolicyResolver resolver) {
        this.resolver = resolver;
    }

    @Override
    public HttpContext apply(HttpMethod method, URI uri) {
        PolicyOverride override = CallScope.current();
        if (override == null) {
            return null;
        }
        HttpClientContext context = HttpClientContext.create();
        put(override, context, uri);
        return context;
    }

    /**
     * Puts what the declaration in force on this thread asks for into {@code context}, the one a call to {@code uri}
     * executes in: the upstream it names, or {@code null} (also when no declaration is in force).
     */
    public String putInto(HttpContext context, URI uri) {
        PolicyOverride override = CallScope.current();
        if (override == null) {
            return null;
        }
        put(override, context, uri);
        return override.upstream();
    }

    private void put(PolicyOverride override, HttpContext context, URI uri) {
        if (override.upstream() != null) {
            context.setAttribute(GuardedHttpClient.UPSTREAM_ATTRIBUTE, override.upstream());
        }
        GuardPolicy policy = resolver.policy(override, uri);
        if (policy != null) {
            context.setAttribute(GuardedHttpClient.POLICY_ATTRIBUTE, policy);
        }
    }
}
