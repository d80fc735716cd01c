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
        if (override.upstream() != null) {
            context.setAttribute(GuardedHttpClient.UPSTREAM_ATTRIBUTE, override.upstream());
        }
        GuardPolicy policy = resolver.policy(override, uri);
        if (policy != null) {
            context.setAttribute(GuardedHttpClient.POLICY_ATTRIBUTE, policy);
        }
        return context;
    }
}
