package dev.upstreamguard.spring;

import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.spring.internal.GuardBypassCheck;
import dev.upstreamguard.spring.internal.GuardedHttpContextFactory;
import dev.upstreamguard.spring.internal.GuardedRequest;
import dev.upstreamguard.spring.internal.UpstreamPolicyResolver;
import java.io.IOException;
import java.net.URI;
import java.util.Locale;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.protocol.HttpContext;
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

    /** Hands the context made for a request, within {@code super.createRequest}, to {@link #createRequest}. */
    private static final ThreadLocal<HttpContext> MADE = new ThreadLocal<>();

    private final UpstreamPolicyResolver resolver;
    private final GuardedHttpContextFactory policies;

    /** A factory over {@code client}, resolving {@code @UpstreamPolicy} overrides with {@code resolver}. */
    public GuardedClientHttpRequestFactory(GuardedHttpClient client, UpstreamPolicyResolver resolver) {
        super(client);
        this.resolver = resolver;
        this.policies = new GuardedHttpContextFactory(resolver);
    }

    @Override
    public ClientHttpRequest createRequest(URI uri, HttpMethod httpMethod) throws IOException {
        ClientHttpRequest request;
        HttpContext context;
        try {
            request = super.createRequest(uri, httpMethod);
            context = MADE.get();
        } finally {
            MADE.remove();
        }
        GuardBypassCheck.created(request);
        return new GuardedRequest(request, context, policies, this::upstreamName);
    }

    /**
     * The context for one request: the policy in force for it goes in as it executes ({@link GuardedRequest}), when
     * an {@code @HttpExchange} method's declaration has reached it as a request attribute.
     */
    @Override
    protected HttpContext createHttpContext(HttpMethod httpMethod, URI uri) {
        HttpContext own = super.createHttpContext(httpMethod, uri); // one set with setHttpContextFactory(...)
        HttpContext context = own != null ? own : HttpClientContext.create();
        MADE.set(context);
        return context;
    }

    /**
     * The name the guarded client calls {@code uri}'s upstream by when no declaration names it, as near as the
     * configuration tells it.
     */
    private String upstreamName(URI uri) {
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
