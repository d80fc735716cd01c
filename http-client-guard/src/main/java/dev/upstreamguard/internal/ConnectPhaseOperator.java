package dev.upstreamguard.internal;

import dev.upstreamguard.FaultClassifier;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.Ticker;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.NoRouteToHostException;
import java.net.PortUnreachableException;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.hc.client5.http.ConnectTimeoutException;
import org.apache.hc.client5.http.DnsResolver;
import org.apache.hc.client5.http.SchemePortResolver;
import org.apache.hc.client5.http.SystemDefaultDnsResolver;
import org.apache.hc.client5.http.impl.DefaultSchemePortResolver;
import org.apache.hc.client5.http.impl.io.DefaultHttpClientConnectionOperator;
import org.apache.hc.client5.http.io.ManagedHttpClientConnection;
import org.apache.hc.client5.http.ssl.TlsSocketStrategy;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.http.URIScheme;
import org.apache.hc.core5.http.config.RegistryBuilder;
import org.apache.hc.core5.http.io.SocketConfig;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.apache.hc.core5.net.NamedEndpoint;
import org.apache.hc.core5.util.Timeout;

/**
 * HttpClient's connection operator, except that a TCP connect that fails with a plain {@link SocketException} is
 * {@code connection_refused}: the request never left.
 *
 * <p>The JDK names only some connect failures by type ({@code ConnectException} for a refusal,
 * {@code NoRouteToHostException} for an unreachable host). Others — an unreachable network ({@code ENETUNREACH}, as for
 * a broadcast or multicast address, or IPv6 without a route), a local address that cannot be assigned — are a bare
 * {@code SocketException}, which HttpClient passes on unchanged and which after connecting means a connection broken
 * under a request: {@code connection_terminated}, "the upstream may have acted", so a POST was never retried though it
 * never left. Only here is it known whether the TCP connection was up; a failure after it (the TLS handshake) keeps
 * its own classification.
 *
 * <p>The attempt's connect timeout is one budget for the whole connect: the host name lookup ({@link BoundedDnsResolver}:
 * {@code dns_timeout}), the TCP connect to each of the host's addresses in turn, and the TLS handshake
 * ({@link HandshakeWatch}).
 *
 * <p>Addresses whose connect timed out or was refused are remembered for a while ({@link RecentConnectFailures}) and
 * tried last by this operator's later connects, whichever call makes them.
 */
public final class ConnectPhaseOperator extends DefaultHttpClientConnectionOperator {

    private static final String CONNECTED = ConnectPhaseOperator.class.getName() + ".connected";
    /** {@link System#nanoTime()} by which the connect under way, TLS handshake included, must be done. */
    private static final String DEADLINE = ConnectPhaseOperator.class.getName() + ".deadline";
    /** The addresses a call's connects found dead so far, least recently failed first. */
    private static final String FAILED = ConnectPhaseOperator.class.getName() + ".failed";

    private final SchemePortResolver schemePortResolver;
    private final DnsResolver dnsResolver;
    private final RecentConnectFailures recentFailures;

    public ConnectPhaseOperator(SchemePortResolver schemePortResolver, DnsResolver dnsResolver,
            TlsSocketStrategy tlsSocketStrategy) {
        this(schemePortResolver, dnsResolver, tlsSocketStrategy, Ticker.system());
    }

    /** {@code ticker} times how long a failed address is tried last. */
    public ConnectPhaseOperator(SchemePortResolver schemePortResolver, DnsResolver dnsResolver,
            TlsSocketStrategy tlsSocketStrategy, Ticker ticker) {
        // The registry HttpClient's own connection manager builder creates; lookups bounded by the connect timeout.
        this(schemePortResolver != null ? schemePortResolver : DefaultSchemePortResolver.INSTANCE,
                new BoundedDnsResolver(dnsResolver != null ? dnsResolver : SystemDefaultDnsResolver.INSTANCE),
                tlsSocketStrategy, new RecentConnectFailures(ticker));
    }

    private ConnectPhaseOperator(SchemePortResolver schemePortResolver, BoundedDnsResolver dnsResolver,
            TlsSocketStrategy tlsSocketStrategy, RecentConnectFailures recentFailures) {
        super(schemePortResolver, dnsResolver, RegistryBuilder.<TlsSocketStrategy>create()
                .register(URIScheme.HTTPS.id, tlsSocketStrategy).build());
        this.schemePortResolver = schemePortResolver;
        this.dnsResolver = dnsResolver;
        this.recentFailures = recentFailures;
    }

    @Override
    public void connect(ManagedHttpClientConnection conn, HttpHost endpointHost, NamedEndpoint endpointName,
            Path unixDomainSocket, InetSocketAddress localAddress, Timeout connectTimeout, SocketConfig socketConfig,
            Object attachment, HttpContext context) throws IOException {
        long budget = connectTimeout == null || connectTimeout.isDisabled() ? 0 : connectTimeout.toNanoseconds();
        if (budget == 0 || context == null || unixDomainSocket != null || endpointHost.getAddress() != null) {
            // Nothing to share out: no bound, or a single target that needs no lookup.
            connectTo(conn, endpointHost, endpointName, unixDomainSocket, localAddress, connectTimeout, socketConfig,
                    attachment, context);
            return;
        }
        // Sockets time out in real time, whatever ticker the client was given.
        long deadline = System.nanoTime() + budget;
        context.setAttribute(DEADLINE, deadline);
        try {
            List<InetSocketAddress> addresses;
            BoundedDnsResolver.bound(budget);
            try {
                addresses = dnsResolver.resolve(endpointHost.getHostName(),
                        schemePortResolver.resolve(endpointHost.getSchemeName(), endpointHost));
            } finally {
                BoundedDnsResolver.unbound();
            }
            if (addresses.isEmpty()) {
                throw new UnknownHostException(endpointHost.getHostName() + ": the resolver found no address");
            }
            connectToEach(conn, endpointHost, endpointName, addresses, deadline, localAddress, socketConfig,
                    attachment, context);
        } finally {
            context.removeAttribute(DEADLINE);
        }
    }

    /**
     * Forgets which addresses failed the connects of the call that last ran in {@code context}: a context the caller
     * passes to several calls does not carry one call's dead addresses into the next.
     */
    public static void newCall(HttpContext context) {
        context.removeAttribute(FAILED);
    }

    /**
     * Tries each address in turn within one budget, as curl does: each but the last gets half of what is left, so a
     * silent first address leaves time for the others, and the last gets the rest. HttpClient gave each the whole connect
     * timeout, so a host whose N addresses all stayed silent held the attempt for N times it.
     *
     * <p>The failure when none connects is the one that got furthest: a TLS handshake's failure (an address answered,
     * and its certificate or TLS is what is wrong), else {@code connection_timeout} if any address timed out or the
     * budget ran out before every address was tried (the time went on silence; a refusal is then only part of the
     * story), else the last address's. The others' failures are attached as suppressed.
     */
    private void connectToEach(ManagedHttpClientConnection conn, HttpHost endpointHost, NamedEndpoint endpointName,
            List<InetSocketAddress> addresses, long deadline, InetSocketAddress localAddress,
            SocketConfig socketConfig, Object attachment, HttpContext context) throws IOException {
        IOException last = null;
        IOException timedOut = null;
        IOException tlsFailure = null;
        List<IOException> failures = new ArrayList<>(addresses.size());
        boolean budgetSpent = false;
        // A new connection, of this call or another: addresses that recently failed this pool's connects go last.
        addresses = recentFailures.order(addresses);
        @SuppressWarnings("unchecked")
        Set<InetSocketAddress> failedBefore = (Set<InetSocketAddress>) context.getAttribute(FAILED);
        if (failedBefore != null) {
            // A later attempt of the call (a retry, a request sent again): the addresses that failed it go last, so a
            // silent first address does not cost every attempt half of its connect budget again.
            List<InetSocketAddress> reordered = new ArrayList<>(addresses.size());
            for (InetSocketAddress address : addresses) {
                if (!failedBefore.contains(address)) {
                    reordered.add(address);
                }
            }
            for (InetSocketAddress address : failedBefore) {
                if (addresses.contains(address)) {
                    reordered.add(address);
                }
            }
            addresses = reordered;
        }
        for (int i = 0; i < addresses.size(); i++) {
            long remaining = deadline - System.nanoTime();
            if (remaining <= 0) {
                budgetSpent = true;
                break;
            }
            long share = i == addresses.size() - 1 ? remaining : remaining / 2;
            InetSocketAddress address = addresses.get(i);
            // The name stays the endpoint's (TLS checks the certificate against it); the address is the one to try.
            HttpHost target = new HttpHost(endpointHost.getSchemeName(), address.getAddress(),
                    endpointHost.getHostName(), address.getPort());
            try {
                connectTo(conn, target, endpointName, null, localAddress,
                        Timeout.of(Math.max(TimeUnit.MILLISECONDS.toNanos(1), share), TimeUnit.NANOSECONDS),
                        socketConfig, attachment, context);
                if (failedBefore != null) {
                    failedBefore.remove(address);
                }
                recentFailures.connected(address);
                return;
            } catch (IOException e) {
                if (!conn.isOpen()) {
                    // Closed under the connect by its owner (the call was cancelled, the client closed), not by a
                    // failed connect, which closes only its socket: no other address is wanted.
                    throw e;
                }
                if (failedBefore == null) {
                    failedBefore = new LinkedHashSet<>();
                    context.setAttribute(FAILED, failedBefore);
                }
                failedBefore.remove(address); // to the end: the most recent failure is tried last
                failedBefore.add(address);
                last = e;
                failures.add(e);
                UpstreamFault fault = FaultClassifier.classify(e);
                if (fault == UpstreamFault.TLS_CERTIFICATE_ERROR || fault == UpstreamFault.TLS_ALERT_RECEIVED
                        || fault == UpstreamFault.TLS_PROTOCOL_ERROR) {
                    tlsFailure = e;
                } else if (fault == UpstreamFault.CONNECTION_TIMEOUT) {
                    if (timedOut == null) {
                        timedOut = e;
                    }
                    recentFailures.failed(address);
                } else if (fault == UpstreamFault.CONNECTION_REFUSED) {
                    recentFailures.failed(address);
                }
            }
        }
        IOException failure;
        if (tlsFailure != null) {
            failure = tlsFailure;
        } else if (timedOut != null || budgetSpent) {
            failure = new ConnectTimeoutException("Connect to " + endpointHost + " " + addresses.stream()
                    .map(InetSocketAddress::getAddress).collect(Collectors.toList()) + " timed out: "
                    + failures.size() + " of " + addresses.size() + " addresses tried within the connect timeout",
                    endpointHost);
            failure.initCause(timedOut != null ? timedOut : last);
        } else {
            failure = last;
        }
        for (IOException e : failures) {
            if (e != failure && e != failure.getCause()) {
                failure.addSuppressed(e);
            }
        }
        throw failure;
    }

    /** One connect to one target (or, for a connect without a budget, to each of its addresses as HttpClient does). */
    private void connectTo(ManagedHttpClientConnection conn, HttpHost endpointHost, NamedEndpoint endpointName,
            Path unixDomainSocket, InetSocketAddress localAddress, Timeout connectTimeout, SocketConfig socketConfig,
            Object attachment, HttpContext context) throws IOException {
        BoundedDnsResolver.bound(connectTimeout == null || connectTimeout.isDisabled() ? 0
                : connectTimeout.toNanoseconds());
        try {
            super.connect(conn, endpointHost, endpointName, unixDomainSocket, localAddress, connectTimeout,
                    socketConfig, attachment, context);
            handOver(conn, context);
        } catch (SocketException e) {
            if (context == null || Boolean.TRUE.equals(context.getAttribute(CONNECTED)) || e instanceof ConnectException
                    || e instanceof NoRouteToHostException || e instanceof PortUnreachableException) {
                throw e; // connected, or already a type the classifier knows
            }
            if (isReset(e)) {
                // ECONNRESET from the connect: the upstream accepted the connection and reset it before the connect
                // returned (a refusal is ECONNREFUSED, a ConnectException). The same as a reset just after it, which
                // the classifier names connection_terminated: which of the two happens is a race.
                throw e;
            }
            throw new FaultSignal(UpstreamFault.CONNECTION_REFUSED,
                    "Could not connect to " + endpointHost + ": " + e.getMessage(), e);
        } finally {
            BoundedDnsResolver.unbound();
            if (context != null) {
                context.removeAttribute(CONNECTED);
                TlsTransport.take(context);
            }
        }
    }

    /** The JDK has no type for a reset, only its message ("Connection reset", "Connection reset by peer"). */
    private static boolean isReset(SocketException e) {
        String message = e.getMessage();
        return message != null && message.regionMatches(true, 0, "Connection reset", 0, 16);
    }

    /**
     * What is left of the budget of the connect running in {@code context}, in nanoseconds (at least 1), for its TLS
     * handshake; {@code -1} outside such a connect.
     */
    static long remainingBudget(HttpContext context) {
        Object deadline = context == null ? null : context.getAttribute(DEADLINE);
        return deadline instanceof Long ? Math.max(1, (Long) deadline - System.nanoTime()) : -1;
    }

    /** TLS layered on a connection already made: through a forward proxy's tunnel. */
    @Override
    public void upgrade(ManagedHttpClientConnection conn, HttpHost endpointHost, NamedEndpoint endpointName,
            Object attachment, HttpContext context) throws IOException {
        try {
            super.upgrade(conn, endpointHost, endpointName, attachment, context);
            handOver(conn, context);
        } finally {
            TlsTransport.take(context);
        }
    }

    /** Tells the connection what its TLS socket reads from, if the TLS strategy was ours. */
    private static void handOver(ManagedHttpClientConnection conn, HttpContext context) {
        TlsTransport transport = TlsTransport.take(context);
        if (transport != null && conn instanceof GuardedConnection) {
            ((GuardedConnection) conn).tlsTransport(transport);
        }
    }

    @Override
    protected void onBeforeSocketConnect(HttpContext context, HttpHost endpointHost) {
        super.onBeforeSocketConnect(context, endpointHost);
        if (context != null) {
            context.removeAttribute(CONNECTED); // each address of a host is tried afresh
        }
    }

    @Override
    protected void onAfterSocketConnect(HttpContext context, HttpHost endpointHost) {
        super.onAfterSocketConnect(context, endpointHost);
        if (context != null) {
            context.setAttribute(CONNECTED, Boolean.TRUE);
        }
    }
}
