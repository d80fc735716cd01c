package dev.upstreamguard.spring.internal;

import java.net.URI;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.client.ClientHttpRequest;
import org.springframework.http.client.ClientHttpRequestInitializer;

/**
 * Notices a call from a {@code RestClient} built from the context's {@code RestClient.Builder} that the guarded request
 * factory never saw: {@code requestFactory(...)}, called on the builder after Upstream Guard customized it, wins, as
 * Spring's explicit settings do over auto-configuration, and the client then silently has no deadline, retry, circuit
 * breaker or fault translation. One warning per upstream address says so.
 *
 * <p>An initializer, not an interceptor: any interceptor makes the {@code RestClient} buffer every request body. It
 * sees the request as the client's factory made it, right after the factory made it. Behind interceptors of the
 * application's own, the guarded factory makes its request only as the chain executes, so there the check cannot
 * tell and stays quiet.
 */
public final class GuardBypassCheck implements ClientHttpRequestInitializer {

    private static final Logger log = LoggerFactory.getLogger(GuardBypassCheck.class);

    /** Enough to name every upstream of an application, few enough that addresses built per call cannot fill memory. */
    private static final int MAX_WARNED = 256;

    /** Spring's request that runs a builder's interceptors; it makes the real request only as it executes. */
    private static final String INTERCEPTING = "org.springframework.http.client.InterceptingClientHttpRequest";

    /**
     * The URI of the request the guarded factory made last on this thread: a wrapper of the application's around it
     * (a {@code BufferingClientHttpRequestFactory}) answers the same URI instance.
     */
    private static final ThreadLocal<URI> CREATED = new ThreadLocal<>();

    private final Set<String> warned = ConcurrentHashMap.newKeySet();

    /** Called by the guarded request factory as it creates a request. */
    public static void created(ClientHttpRequest request) {
        CREATED.set(request.getURI());
    }

    @Override
    public void initialize(ClientHttpRequest request) {
        URI created = CREATED.get();
        CREATED.remove();
        URI uri = request.getURI();
        if (request instanceof GuardedRequest || created != null && created == uri
                || INTERCEPTING.equals(request.getClass().getName())) {
            return;
        }
        String address = address(uri);
        if (warned.size() < MAX_WARNED && warned.add(address)) {
            log.warn("A RestClient built from the application context's RestClient.Builder called {} without Upstream"
                    + " Guard: requestFactory(...) replaced the guarded request factory Upstream Guard gave the builder,"
                    + " so these calls have no deadline, retry or circuit breaker and their faults are not answered as"
                    + " 502/503/504. Leave the request factory to Upstream Guard, or pass the"
                    + " GuardedClientHttpRequestFactory bean to requestFactory(...). (Said once per address.)", address);
        }
    }

    private static String address(URI uri) {
        if (uri == null || uri.getHost() == null) {
            return String.valueOf(uri);
        }
        String scheme = uri.getScheme() == null ? "http" : uri.getScheme().toLowerCase(Locale.ROOT);
        return scheme + "://" + uri.getHost().toLowerCase(Locale.ROOT) + (uri.getPort() < 0 ? "" : ":" + uri.getPort());
    }
}
