package dev.upstreamguard.spring.internal;

import dev.upstreamguard.client.GuardedHttpClient;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.util.Map;
import java.util.function.Function;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpMethod;
import org.springframework.http.StreamingHttpOutputMessage;
import org.springframework.http.client.ClientHttpRequest;
import org.springframework.http.client.ClientHttpResponse;

/**
 * A request of the guarded request factory. As it executes, the {@code @UpstreamPolicy} in force for it — the
 * {@code @HttpExchange} method's, carried as the request attribute {@link ExchangePolicyProcessor#ATTRIBUTE}, over the
 * controller's on this thread — goes into its {@code HttpContext} for the {@link GuardedHttpClient}.
 *
 * <p>Read at {@code execute()}, not by a {@code ClientHttpRequestInterceptor}: any interceptor makes Spring's
 * {@code RestClient} buffer every request body in memory, whole, before a byte is sent. Request attributes reach this
 * request directly, and through the application's own interceptors, which pass them on.
 */
public final class GuardedRequest implements ClientHttpRequest, StreamingHttpOutputMessage {

    private final ClientHttpRequest delegate;
    private final HttpContext context;
    private final GuardedHttpContextFactory policies;
    private final Function<URI, String> upstreamNames;

    /**
     * @param delegate the HttpComponents request, streaming
     * @param context the {@code HttpContext} {@code delegate} executes in
     * @param upstreamNames what the client calls a URI's upstream when no declaration names one
     */
    public GuardedRequest(ClientHttpRequest delegate, HttpContext context, GuardedHttpContextFactory policies,
            Function<URI, String> upstreamNames) {
        this.delegate = delegate;
        this.context = context;
        this.policies = policies;
        this.upstreamNames = upstreamNames;
    }

    @Override
    public ClientHttpResponse execute() throws IOException {
        Object exchange = delegate.getAttributes().get(ExchangePolicyProcessor.ATTRIBUTE);
        boolean outbound = exchange instanceof PolicyOverride;
        PolicyOverride previous = outbound ? CallScope.enterOutbound((PolicyOverride) exchange) : null;
        try {
            // No context: a subclass of the factory made its own without asking ours (createHttpContext).
            String named = context == null ? null : policies.putInto(context, getURI());
            if (!AsyncUpstreamCalls.tracking()) {
                return delegate.execute();
            }
            return AsyncUpstreamCalls.execute(delegate, named != null ? named : upstreamNames.apply(getURI()));
        } finally {
            if (outbound) {
                CallScope.exitOutbound(previous);
            }
        }
    }

    @Override
    public void setBody(Body body) {
        // Keeps the guarded request's streaming (and, where the body is, replayable) body rather than a buffer.
        ((StreamingHttpOutputMessage) delegate).setBody(body);
    }

    @Override
    public OutputStream getBody() throws IOException {
        return delegate.getBody();
    }

    @Override
    public HttpHeaders getHeaders() {
        return delegate.getHeaders();
    }

    @Override
    public HttpMethod getMethod() {
        return delegate.getMethod();
    }

    @Override
    public URI getURI() {
        return delegate.getURI();
    }

    @Override
    public Map<String, Object> getAttributes() {
        return delegate.getAttributes();
    }
}
