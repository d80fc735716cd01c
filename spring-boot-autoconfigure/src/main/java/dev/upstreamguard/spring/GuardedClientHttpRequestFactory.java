package dev.upstreamguard.spring;

import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.spring.internal.AsyncUpstreamCalls;
import dev.upstreamguard.spring.internal.CallScope;
import dev.upstreamguard.spring.internal.GuardBypassCheck;
import dev.upstreamguard.spring.internal.GuardedHttpContextFactory;
import dev.upstreamguard.spring.internal.PolicyOverride;
import dev.upstreamguard.spring.internal.UpstreamPolicyResolver;
import java.io.IOException;
import java.net.URI;
import java.util.Locale;
import org.springframework.http.HttpMethod;
import org.springframework.http.client.ClientHttpRequest;
import org.springframework.http.client.HttpComponentsClientHttpRequestFactory;

/**
 * The {@code ClientHttpRequestFactory} every auto-configured {@code RestClient.Builder} and {@code RestTemplateBuilder}
 * uses: requests go through the shared {@link GuardedHttpClient}, under the {@link UpstreamPolicy} in force for the
 * call. Faults surface from Spring's clients as {@code ResourceAccessException} with the
 * {@link dev.upstreamguard.UpstreamException} as its cause.
 */
public class GuardedClientHttpRequestFactory extends HttpComponentsClientHttpRequestFactory {

    private final UpstreamPolicyResolver resolver;

    /** A factory over {@code client}, resolving {@code @UpstreamPolicy} overrides with {@code resolver}. */
    @SuppressWarnings("this-escape") // Spring's own setter, the only way to give the factory its context
    public GuardedClientHttpRequestFactory(GuardedHttpClient client, UpstreamPolicyResolver resolver) {
        super(client);
        this.resolver = resolver;
        setHttpContextFactory(new GuardedHttpContextFactory(resolver));
    }

    @Override
    public ClientHttpRequest createRequest(URI uri, HttpMethod httpMethod) throws IOException {
        GuardBypassCheck.created();
        ClientHttpRequest request = super.createRequest(uri, httpMethod);
        return AsyncUpstreamCalls.tracking() ? AsyncUpstreamCalls.track(request, upstreamName(uri)) : request;
    }

    /** The name the guarded client calls {@code uri}'s upstream by, as near as the configuration tells it. */
    private String upstreamName(URI uri) {
        PolicyOverride override = CallScope.current();
        if (override != null && override.upstream() != null) {
            return override.upstream();
        }
        return resolver.registry().calledAs(uri).map(UpstreamRegistry.NamedUpstream::name)
                .orElseGet(() -> origin(uri));
    }

    private static String origin(URI uri) {
        String scheme = uri.getScheme() == null ? "http" : uri.getScheme().toLowerCase(Locale.ROOT);
        int port = uri.getPort() > 0 ? uri.getPort() : "https".equals(scheme) ? 443 : 80;
        return scheme + "://" + String.valueOf(uri.getHost()).toLowerCase(Locale.ROOT) + ":" + port;
    }

    /** Leaves the shared client open: it is a bean of its own, closed with the application context. */
    @Override
    public void destroy() {
    }
}
