package dev.upstreamguard.spring.internal;

import java.io.IOException;
import java.net.URI;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.http.HttpRequest;
import org.springframework.http.client.ClientHttpRequestExecution;
import org.springframework.http.client.ClientHttpRequestInterceptor;
import org.springframework.http.client.ClientHttpResponse;

/**
 * Notices a call from a {@code RestClient} built from the context's {@code RestClient.Builder} that the guarded request
 * factory never saw: {@code requestFactory(...)}, called on the builder after Upstream Guard customized it, wins, as
 * Spring's explicit settings do over auto-configuration, and the client then silently has no deadline, retry, circuit
 * breaker or fault translation. One warning per upstream address says so.
 */
public final class GuardBypassCheck implements ClientHttpRequestInterceptor {

    private static final Logger log = LoggerFactory.getLogger(GuardBypassCheck.class);

    /** Enough to name every upstream of an application, few enough that addresses built per call cannot fill memory. */
    private static final int MAX_WARNED = 256;

    /** Set to false while a context-built client executes a request; the guarded factory sets it to true. */
    private static final ThreadLocal<Boolean> GUARDED = new ThreadLocal<>();

    private final Set<String> warned = ConcurrentHashMap.newKeySet();

    /** Called by the guarded request factory as it creates a request. */
    public static void created() {
        if (GUARDED.get() != null) {
            GUARDED.set(Boolean.TRUE);
        }
    }

    @Override
    public ClientHttpResponse intercept(HttpRequest request, byte[] body, ClientHttpRequestExecution execution)
            throws IOException {
        Boolean previous = GUARDED.get();
        GUARDED.set(Boolean.FALSE);
        try {
            return execution.execute(request, body);
        } finally {
            end(previous, request.getURI());
        }
    }

    private void end(Boolean previous, URI uri) {
        boolean guarded = Boolean.TRUE.equals(GUARDED.get());
        if (previous == null) {
            GUARDED.remove();
        } else {
            // A call made inside another (by one of its interceptors) leaves the outer one's state as it found it.
            GUARDED.set(previous);
        }
        if (guarded) {
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
