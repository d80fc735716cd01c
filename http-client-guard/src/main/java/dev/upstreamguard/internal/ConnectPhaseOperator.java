package dev.upstreamguard.internal;

import dev.upstreamguard.UpstreamFault;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.NoRouteToHostException;
import java.net.PortUnreachableException;
import java.net.SocketException;
import java.nio.file.Path;
import org.apache.hc.client5.http.DnsResolver;
import org.apache.hc.client5.http.SchemePortResolver;
import org.apache.hc.client5.http.SystemDefaultDnsResolver;
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
 * <p>It also bounds the host name lookup by the attempt's connect timeout ({@link BoundedDnsResolver}):
 * {@code dns_timeout}.
 */
public final class ConnectPhaseOperator extends DefaultHttpClientConnectionOperator {

    private static final String CONNECTED = ConnectPhaseOperator.class.getName() + ".connected";

    public ConnectPhaseOperator(SchemePortResolver schemePortResolver, DnsResolver dnsResolver,
            TlsSocketStrategy tlsSocketStrategy) {
        // The registry HttpClient's own connection manager builder creates; lookups bounded by the connect timeout.
        super(schemePortResolver, new BoundedDnsResolver(dnsResolver != null ? dnsResolver
                : SystemDefaultDnsResolver.INSTANCE), RegistryBuilder.<TlsSocketStrategy>create()
                .register(URIScheme.HTTPS.id, tlsSocketStrategy).build());
    }

    @Override
    public void connect(ManagedHttpClientConnection conn, HttpHost endpointHost, NamedEndpoint endpointName,
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
