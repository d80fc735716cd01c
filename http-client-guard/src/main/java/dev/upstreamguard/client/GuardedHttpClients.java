package dev.upstreamguard.client;

import org.apache.hc.client5.http.impl.io.PoolingHttpClientConnectionManagerBuilder;

/**
 * Factory methods for {@link GuardedHttpClient}, in the manner of HttpClient's own {@code HttpClients}.
 *
 * <pre>{@code
 * CloseableHttpClient client = GuardedHttpClients.createDefault();
 * }</pre>
 */
public final class GuardedHttpClients {

    private GuardedHttpClients() {
    }

    /**
     * A client with every documented default ({@link dev.upstreamguard.GuardPolicy}): connect timeout 2 s, response
     * timeout 10 s, total deadline 30 s, 3 attempts under a 20 % retry budget, a circuit breaker and a bulkhead per
     * upstream, and a strict response parser.
     */
    public static GuardedHttpClient createDefault() {
        return custom().build();
    }

    /** A builder for everything else: named upstreams, policies, meters, TLS, the HttpClient underneath. */
    public static GuardedHttpClientBuilder custom() {
        return new GuardedHttpClientBuilder();
    }

    /**
     * A pooling connection manager builder with the strict response parser plugged in and the default header limits,
     * for callers that bring their own connection manager. A TLS strategy set on it (its own versions or key material)
     * has its handshake failures classified as the client's own would be: a stalled or trickling handshake is
     * {@code connection_timeout}, one cut off is {@code tls_protocol_error}, an alert {@code tls_alert_received}.
     */
    public static PoolingHttpClientConnectionManagerBuilder connectionManagerBuilder() {
        return GuardedHttpClientBuilder.connectionManagerBuilder(GuardedHttpClientBuilder.DEFAULT_MAX_HEADER_SIZE,
                GuardedHttpClientBuilder.DEFAULT_MAX_HEADER_COUNT,
                GuardedHttpClientBuilder.DEFAULT_MAX_HEADER_SECTION_SIZE, Ticker.system());
    }
}
