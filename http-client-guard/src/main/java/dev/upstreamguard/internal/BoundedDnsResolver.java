package dev.upstreamguard.internal;

import dev.upstreamguard.UpstreamFault;
import java.io.InterruptedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.hc.client5.http.DnsResolver;
import org.apache.hc.core5.net.InetAddressUtils;

/**
 * A resolver whose lookups end by the attempt's connect timeout: one that runs longer is RFC 9209
 * {@code dns_timeout} (504, nothing sent, retried like a connect timeout).
 *
 * <p>The JDK's lookup ({@code getaddrinfo}) cannot be interrupted, and a resolver that does not answer holds it for its
 * own timeouts (glibc: 5 s per try and server), so the call outlived its connect timeout and its whole deadline, and
 * ended as {@code http_response_timeout} or, from the resolver's eventual "Temporary failure in name resolution",
 * {@code dns_error}. A host name is therefore looked up on a lookup thread while the caller waits for it no longer
 * than the bound. Lookups of one name share one thread, so callers piling onto a dead resolver do not pile up
 * threads; idle lookup threads end after a few seconds. IP literals are not looked up.
 */
final class BoundedDnsResolver implements DnsResolver {

    /** The bound of lookups on this thread, in nanoseconds; 0 for none. Set around a connect. */
    private static final ThreadLocal<long[]> BOUND = ThreadLocal.withInitial(() -> new long[1]);

    private static final AtomicInteger THREADS = new AtomicInteger();

    private final DnsResolver delegate;
    private final ConcurrentHashMap<String, CompletableFuture<Object>> inFlight = new ConcurrentHashMap<>();
    private final ExecutorService lookups = new ThreadPoolExecutor(0, Integer.MAX_VALUE, 5, TimeUnit.SECONDS,
            new SynchronousQueue<>(), r -> {
                Thread t = new Thread(r, "upstream-guard-dns-" + THREADS.incrementAndGet());
                t.setDaemon(true);
                t.setContextClassLoader(null);
                return t;
            });

    BoundedDnsResolver(DnsResolver delegate) {
        this.delegate = delegate;
    }

    /** Bounds the lookups this thread makes until {@link #unbound()} ({@code nanos} ≤ 0: no bound). */
    static void bound(long nanos) {
        BOUND.get()[0] = Math.max(0, nanos);
    }

    static void unbound() {
        BOUND.get()[0] = 0;
    }

    @Override
    public InetAddress[] resolve(String host) throws UnknownHostException {
        return (InetAddress[]) bounded(host, host, () -> delegate.resolve(host));
    }

    @Override
    @SuppressWarnings("unchecked")
    public List<InetSocketAddress> resolve(String host, int port) throws UnknownHostException {
        return (List<InetSocketAddress>) bounded(host, host + ":" + port, () -> delegate.resolve(host, port));
    }

    @Override
    public String resolveCanonicalHostname(String host) throws UnknownHostException {
        return delegate.resolveCanonicalHostname(host);
    }

    @FunctionalInterface
    private interface Lookup {
        Object run() throws UnknownHostException;
    }

    private Object bounded(String host, String key, Lookup lookup) throws UnknownHostException {
        long bound = BOUND.get()[0];
        if (bound <= 0 || isLiteral(host)) {
            return lookup.run();
        }
        CompletableFuture<Object> mine = new CompletableFuture<>();
        CompletableFuture<Object> running = inFlight.putIfAbsent(key, mine);
        if (running == null) {
            running = mine;
            try {
                lookups.execute(() -> {
                    try {
                        mine.complete(lookup.run());
                    } catch (Throwable t) {
                        mine.completeExceptionally(t);
                    } finally {
                        inFlight.remove(key, mine);
                    }
                });
            } catch (RuntimeException rejected) {
                inFlight.remove(key, mine);
                return lookup.run();
            }
        }
        try {
            return running.get(bound, TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw timedOut(host, bound);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            UnknownHostException interrupted = new UnknownHostException(host);
            interrupted.initCause(new InterruptedIOException("Interrupted while resolving " + host));
            throw interrupted;
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof UnknownHostException) {
                UnknownHostException own = new UnknownHostException(cause.getMessage());
                own.initCause(cause); // a fresh one: the lookup's is shared by every caller that waited for it
                throw own;
            }
            if (cause instanceof RuntimeException) {
                throw (RuntimeException) cause;
            }
            if (cause instanceof Error) {
                throw (Error) cause;
            }
            throw new IllegalStateException(cause);
        }
    }

    /**
     * An {@code UnknownHostException}, the only failure a resolver may throw, carrying the fault: the classifier finds
     * it in the chain before it would read the exception as {@code dns_error}.
     */
    private static UnknownHostException timedOut(String host, long bound) {
        String message = "Resolving " + host + " took longer than " + TimeUnit.NANOSECONDS.toMillis(bound) + " ms";
        UnknownHostException e = new UnknownHostException(message);
        e.initCause(new FaultSignal(UpstreamFault.DNS_TIMEOUT, message));
        return e;
    }

    private static boolean isLiteral(String host) {
        return InetAddressUtils.isIPv4(host) || host.indexOf(':') >= 0;
    }
}
