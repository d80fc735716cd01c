package dev.upstreamguard.spring.internal;

import java.io.IOException;
import org.springframework.http.HttpRequest;
import org.springframework.http.client.ClientHttpRequestExecution;
import org.springframework.http.client.ClientHttpRequestInterceptor;
import org.springframework.http.client.ClientHttpResponse;

/**
 * Puts the {@code @UpstreamPolicy} of an {@code @HttpExchange} method, carried as a request attribute, in force on the
 * thread while the request is created and executed, where {@link GuardedHttpContextFactory} reads it.
 */
public final class OutboundPolicyInterceptor implements ClientHttpRequestInterceptor {

    /** The request attribute holding the {@link PolicyOverride} of the {@code @HttpExchange} method. */
    public static final String ATTRIBUTE = OutboundPolicyInterceptor.class.getName() + ".policy";

    @Override
    public ClientHttpResponse intercept(HttpRequest request, byte[] body, ClientHttpRequestExecution execution)
            throws IOException {
        Object override = request.getAttributes().get(ATTRIBUTE);
        if (!(override instanceof PolicyOverride)) {
            return execution.execute(request, body);
        }
        PolicyOverride previous = CallScope.enterOutbound((PolicyOverride) override);
        try {
            return execution.execute(request, body);
        } finally {
            CallScope.exitOutbound(previous);
        }
    }
}
