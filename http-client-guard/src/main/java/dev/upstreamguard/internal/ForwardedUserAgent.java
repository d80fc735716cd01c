package dev.upstreamguard.internal;

import org.apache.hc.core5.http.HttpHeaders;
import org.apache.hc.core5.http.HttpRequestInterceptor;

/**
 * Keeps HttpClient's own {@code User-Agent} off a request a proxy forwards for a client that sent none, on a client that
 * otherwise adds it (a client shared by an application's own calls and its proxy routes, as Spring's is): the upstream
 * should see the client's field or none, not the gateway's library and Java versions.
 */
public final class ForwardedUserAgent {

    /** Context attribute, any value: the request is forwarded for a client that sent no {@code User-Agent}. */
    public static final String NONE_SENT = ForwardedUserAgent.class.getName() + ".noneSent";

    /** Runs after HttpClient's protocol interceptors, so the only {@code User-Agent} it can find is the default. */
    public static final HttpRequestInterceptor REMOVE_DEFAULT = (request, entity, context) -> {
        if (context != null && context.getAttribute(NONE_SENT) != null) {
            request.removeHeaders(HttpHeaders.USER_AGENT);
        }
    };

    private ForwardedUserAgent() {
    }
}
