package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.hc.client5.http.DnsResolver;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Which upstream a request's URL names, and how the client gets there: host names HttpClient accepts, ports that
 * name no upstream, hosts with several addresses.
 */
@Timeout(30)
class ConnectTargetTest {

    private static final GuardPolicy POLICY = GuardPolicy.builder().connectTimeout(Duration.ofSeconds(5))
            .responseTimeout(Duration.ofSeconds(5)).initialBackoff(Duration.ofMillis(1))
            .maxBackoff(Duration.ofMillis(5)).build();

    /** A client whose resolver gives every host name {@code addresses}, in that order. */
    private static GuardedHttpClient resolvingTo(String... addresses) {
        return GuardedHttpClients.custom().defaults(POLICY).connectionManager(
                GuardedHttpClients.connectionManagerBuilder().setDnsResolver(resolver(addresses)).build()).build();
    }

    private static DnsResolver resolver(String... addresses) {
        return new DnsResolver() {
            @Override
            public InetAddress[] resolve(String host) throws UnknownHostException {
                InetAddress[] resolved = new InetAddress[addresses.length];
                for (int i = 0; i < addresses.length; i++) {
                    resolved[i] = InetAddress.getByName(addresses[i]);
                }
                return resolved;
            }

            @Override
            public String resolveCanonicalHostname(String host) {
                return host;
            }
        };
    }

    /**
     * Regression: a host name with an underscore (a Docker Compose service such as {@code order_service}) is no host
     * to {@code java.net.URI}, though HttpClient calls it; a request executed without an explicit target (as Spring's
     * request factory executes every request) failed as {@code destination_not_found} without being sent.
     */
    @Test
    void aHostNameWithAnUnderscoreIsCalledHoweverTheRequestIsExecuted() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("served"));
                GuardedHttpClient client = resolvingTo("127.0.0.1")) {
            URI uri = URI.create("http://order_service:" + upstream.port() + "/orders");
            try (ClassicHttpResponse response = client.executeOpen(null, new HttpGet(uri), null)) {
                assertThat(EntityUtils.toString(response.getEntity())).isEqualTo("served");
            }
            String viaExecute = client.execute(new HttpGet(uri), r -> EntityUtils.toString(r.getEntity()));
            assertThat(viaExecute).isEqualTo("served");
            assertThat(upstream.requestCount()).isEqualTo(2);
            assertThat(upstream.requests().get(0).header("Host")).isEqualTo("order_service:" + upstream.port());
        }
    }

    /**
     * Regression: the same name as a named upstream was refused when the client was built ("needs an absolute http or
     * https URI"). It is one, and its policy applies to the calls to it, however they are executed.
     */
    @Test
    void aNamedUpstreamWithAnUnderscoreInItsHostNameIsConfiguredAndUsed() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("served"))) {
            String base = "http://order_service:" + upstream.port();
            GuardPolicy noRetries = GuardPolicy.builder().retryEnabled(false).build();
            try (GuardedHttpClient client = GuardedHttpClients.custom().defaults(POLICY)
                    .upstream("orders", base + "/api", noRetries)
                    .connectionManager(GuardedHttpClients.connectionManagerBuilder()
                            .setDnsResolver(resolver("127.0.0.1")).build()).build()) {
                URI uri = URI.create(base + "/api/orders");
                try (ClassicHttpResponse response = client.executeOpen(null, new HttpGet(uri), null)) {
                    assertThat(EntityUtils.toString(response.getEntity())).isEqualTo("served");
                }
                assertThat(client.upstreams()).extracting(GuardedUpstream::name).containsExactly("orders");
            }
        }
    }

    /**
     * Regression: a resolver that does not answer (a dead DNS server: glibc waits 5 s per try) held the call past its
     * connect timeout and its whole deadline, since the JDK's lookup cannot be interrupted; it ended as
     * http_response_timeout, or dns_error from the resolver's eventual "temporary failure". The lookup is bounded by
     * the attempt's connect timeout: RFC 9209 dns_timeout (504), nothing sent, so retried for any method.
     */
    @Test
    void aLookupThatDoesNotAnswerWithinTheConnectTimeoutIsADnsTimeoutRetriedForAnyMethod() throws Exception {
        CountDownLatch testOver = new CountDownLatch(1);
        AtomicInteger lookups = new AtomicInteger();
        DnsResolver deadServer = new DnsResolver() {
            @Override
            public InetAddress[] resolve(String host) throws UnknownHostException {
                lookups.incrementAndGet();
                try {
                    testOver.await(20, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                throw new UnknownHostException(host + ": Temporary failure in name resolution");
            }

            @Override
            public String resolveCanonicalHostname(String host) {
                return host;
            }
        };
        GuardPolicy policy = GuardPolicy.builder().connectTimeout(Duration.ofMillis(300))
                .totalTimeout(Duration.ofSeconds(10)).initialBackoff(Duration.ofMillis(1))
                .maxBackoff(Duration.ofMillis(5)).build();
        try (GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy).connectionManager(
                GuardedHttpClients.connectionManagerBuilder().setDnsResolver(deadServer).build()).build()) {
            URI uri = URI.create("http://dns-does-not-answer.test/");
            for (ClassicHttpRequest request : new ClassicHttpRequest[] {new HttpGet(uri), FaultMatrixTest.post(uri)}) {
                long start = System.nanoTime();
                UpstreamException e = catchThrowableOfType(UpstreamException.class,
                        () -> client.execute(request, r -> r.getCode()));
                FaultMatrixTest.assertFault(e, "dns_timeout", 504, 3);
                assertThat(Duration.ofNanos(System.nanoTime() - start)).as("three lookups of 300 ms")
                        .isLessThan(Duration.ofSeconds(3));
            }
            // Attempts waiting on a lookup still running share it rather than start another.
            assertThat(lookups.get()).isEqualTo(1);
        } finally {
            testOver.countDown();
        }
    }

    /** A host whose first address refuses is reached on the next one, in the same attempt. */
    @Test
    void aHostWhoseFirstAddressRefusesIsReachedOnItsNextAddress() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("served"));
                GuardedHttpClient client = resolvingTo("::1", "127.0.0.1")) {
            URI uri = URI.create("http://two-addresses.test:" + upstream.port() + "/");
            String get = client.execute(new HttpGet(uri), r -> EntityUtils.toString(r.getEntity()));
            String post = client.execute(FaultMatrixTest.post(uri), r -> EntityUtils.toString(r.getEntity()));
            assertThat(get + " " + post).isEqualTo("served served");
        }
    }

    /**
     * Regression: an IPv6 literal in a URI is bracketed ({@code [::1]}) but one in an {@code HttpHost} built by hand is
     * not ({@code ::1}); the second missed the named upstream and became an unnamed one, {@code http://::1:9}, with a
     * breaker, bulkhead and meters of its own. The named upstream's circuit is forced open, so nothing is connected.
     */
    @Test
    void anIpv6LiteralGivenAsAnHttpHostReachesTheNamedUpstreamOfItsUri() throws Exception {
        try (GuardedHttpClient client = GuardedHttpClients.custom().upstream("v6", "http://[::1]:9").build()) {
            client.upstream("v6").circuitBreaker().orElseThrow().transitionToForcedOpenState();
            for (HttpHost target : new HttpHost[] {new HttpHost("http", "::1", 9), new HttpHost("http", "[::1]", 9)}) {
                UpstreamException e = catchThrowableOfType(UpstreamException.class,
                        () -> client.execute(target, new HttpGet("/items"), r -> r.getCode()));
                assertThat(e.upstream()).as("upstream of %s", target).isEqualTo("v6");
            }
            assertThat(client.upstreams()).extracting(GuardedUpstream::name).containsExactly("v6");
        }
        assertThat(GuardedHttpClient.origin("http", "::1", 9)).isEqualTo("http://[::1]:9");
        assertThat(GuardedHttpClient.origin("HTTPS", "[::1]", -1)).isEqualTo("https://[::1]:443");
    }
}
