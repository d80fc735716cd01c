package dev.upstreamguard.spring;

import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.spring.internal.GuardBypassCheck;
import dev.upstreamguard.spring.internal.GuardedHttpContextFactory;
import dev.upstreamguard.spring.internal.UpstreamPolicyResolver;
import java.io.IOException;
import java.net.URI;
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

    /** A factory over {@code client}, resolving {@code @UpstreamPolicy} overrides with {@code resolver}. */
    @SuppressWarnings("this-escape") // Spring's own setter, the only way to give the factory its context
    public GuardedClientHttpRequestFactory(GuardedHttpClient client, UpstreamPolicyResolver resolver) {
        super(client);
        setHttpContextFactory(new GuardedHttpContextFactory(resolver));
    }

    @Override
    public ClientHttpRequest createRequest(URI uri, HttpMethod httpMethod) throws IOException {
        GuardBypassCheck.created();
        return super.createRequest(uri, httpMethod);
    }

    /** Leaves the shared client open: it is a bean of its own, closed with the application context. */
    @Override
    public void destroy() {
    }
}
