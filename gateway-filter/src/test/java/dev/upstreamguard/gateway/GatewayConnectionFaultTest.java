package dev.upstreamguard.gateway;

import static dev.upstreamguard.gateway.FaultAssertions.assertGeneratedFault;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.MockWebServers;
import dev.upstreamguard.testing.RawUpstream;
import dev.upstreamguard.testing.TestTls;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import okhttp3.tls.HandshakeCertificates;
import okhttp3.tls.HeldCertificate;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.apache.hc.core5.io.CloseMode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * TLS and connection-level upstream faults, over real sockets, answered by the gateway both ways it answers them —
 * the proxy servlet, and the fault filter in front of an application calling a guarded client — in each container,
 * to HTTP/1.1 and to HTTP/2 clients: status, {@code Proxy-Status} (with {@code next-hop} and {@code details} when
 * exposed), the problem body, no {@code Retry-After}, and nothing left leased. Every upstream is called with a
 * bulkhead of one call and a pool of one connection, so a permit or a connection the fault leaked would turn the next
 * request into {@code connection_limit_reached}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class GatewayConnectionFaultTest {

    private static final Duration SETTLE = Duration.ofSeconds(15);

    private static final Map<String, String> POLICY = Map.of(
            "retry.max-attempts", "2",
            "retry.initial-backoff", "1ms",
            "retry.max-backoff", "2ms",
            "circuit-breaker.enabled", "false",
            "connect-timeout", "5s",
            "response-timeout", "5s",
            "bulkhead.max-concurrent-calls", "1",
            "max-connections", "1");

    /**
     * The route whose handshake stalls outlasts a short connect-timeout; the others keep a generous one, as a handshake
     * on a loaded machine can take longer than half a second.
     */
    private static final Map<String, String> STALLED_HANDSHAKE = Map.of("connect-timeout", "500ms");

    /** A fault case: {@code trusting} when the client must trust {@link TestTls}'s root for the fault to show. */
    private record Case(String route, UpstreamFault fault, String upstream, boolean trusting, boolean cutBody,
            String... alerts) {
        /**
         * A pattern of the alert's parameters RFC 9209 gives {@code tls_alert_received} (any one of those the case
         * names: the JDK's own TLS server sends different alerts in different versions), or of nothing.
         */
        String alertParameters() {
            return alerts.length == 0 ? ""
                    : Arrays.stream(alerts).map(Pattern::quote).collect(Collectors.joining("|", "(", ")"));
        }

        @Override
        public String toString() {
            return route;
        }
    }

    private final List<AutoCloseable> upstreams = new ArrayList<>();
    private final List<Case> cases = new ArrayList<>();
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, Map<String, UpstreamProxyServlet>> proxies = new EnumMap<>(Container.class);
    private final Map<Container, List<GuardedHttpClient>> applicationClients = new EnumMap<>(Container.class);
    private final Map<Container, HttpClient> http2Clients = new EnumMap<>(Container.class);
    private String goodUpstream;
    private String resetOnAccept;

    @BeforeAll
    void start() throws Exception {
        long now = System.currentTimeMillis();
        long day = Duration.ofDays(1).toMillis();
        add("tls-untrusted", UpstreamFault.TLS_CERTIFICATE_ERROR,
                rawTls(serverContext(new HeldCertificate.Builder().addSubjectAlternativeName("127.0.0.1")), ok()),
                false);
        add("tls-expired", UpstreamFault.TLS_CERTIFICATE_ERROR, rawTls(serverContext(new HeldCertificate.Builder()
                .addSubjectAlternativeName("127.0.0.1").validityInterval(now - 10 * day, now - day)), ok()), true);
        add("tls-wrong-host", UpstreamFault.TLS_CERTIFICATE_ERROR, rawTls(serverContext(new HeldCertificate.Builder()
                .addSubjectAlternativeName("other.example")), ok()), true);
        add("tls-to-plain", UpstreamFault.TLS_PROTOCOL_ERROR, https(raw(Behaviours.plainHttpToTls())), true);
        add("plain-to-tls", UpstreamFault.HTTP_PROTOCOL_ERROR,
                rawTls(TestTls.serverCertificates().sslContext(), ok()).replace("https://", "http://"), true);
        // Accepts the TCP connection, reads the ClientHello and never answers: the handshake outlasts connect-timeout.
        add("tls-handshake-stalls", UpstreamFault.CONNECTION_TIMEOUT, https(raw(c -> c.stallUntilClosed())), true);
        add("tls-handshake-closed", UpstreamFault.TLS_PROTOCOL_ERROR, https(raw(c -> {
            if (c.in().read(new byte[16 * 1024]) != -1) {
                c.close();
            }
        })), true);
        add("tls-handshake-reset", UpstreamFault.TLS_PROTOCOL_ERROR, https(raw(c -> {
            if (c.in().read(new byte[16 * 1024]) != -1) {
                c.reset();
            }
        })), true);
        cases.add(new Case("tls-fatal-alert", UpstreamFault.TLS_ALERT_RECEIVED, https(raw(Behaviours.tlsFatalAlert())),
                true, false, "; alert-id=40; alert-message=\"handshake_failure\""));
        cases.add(new Case("tls13-client-certificate-required", UpstreamFault.TLS_ALERT_RECEIVED,
                register(RawUpstream.startTls(true, new String[] {"TLSv1.3"}, ok())).baseUrl(), true, false,
                "; alert-id=42; alert-message=\"bad_certificate\"", // JDK 17's server
                "; alert-id=116; alert-message=\"certificate_required\"")); // JDK 25's, as RFC 8446 has it
        cases.add(new Case("tls12-client-certificate-required", UpstreamFault.TLS_ALERT_RECEIVED,
                register(RawUpstream.startTls(true, new String[] {"TLSv1.2"}, ok())).baseUrl(), true, false,
                "; alert-id=42; alert-message=\"bad_certificate\"", // JDK 17's server
                "; alert-id=40; alert-message=\"handshake_failure\"")); // JDK 25's
        add("reset-after-request", UpstreamFault.CONNECTION_TERMINATED, raw(Behaviours.resetBeforeResponse()), false);
        // Over an established TLS connection the same cuts are connection faults, not TLS ones.
        add("tls-reset-after-request", UpstreamFault.CONNECTION_TERMINATED,
                register(RawUpstream.startTls(false, Behaviours.resetBeforeResponse())).baseUrl(), true);
        add("tls-closed-after-request", UpstreamFault.CONNECTION_TERMINATED,
                register(RawUpstream.startTls(false, Behaviours.closeBeforeResponse())).baseUrl(), true);
        add("tls-cut-after-request", UpstreamFault.CONNECTION_TERMINATED, register(RawUpstream.startTls(false, c -> {
            if (c.readRequest() != null) {
                c.closeWithoutCloseNotify();
            }
        })).baseUrl(), true);
        add("tls-cut-mid-head", UpstreamFault.HTTP_RESPONSE_INCOMPLETE, register(RawUpstream.startTls(false, c -> {
            if (c.readRequest() != null) {
                c.write(Behaviours.TRUNCATED_HEAD);
                c.closeWithoutCloseNotify();
            }
        })).baseUrl(), true);
        add("half-closed-after-request", UpstreamFault.CONNECTION_TERMINATED, raw(c -> {
            if (c.readRequest() != null) {
                c.socket().shutdownOutput();
                c.stallUntilClosed();
            }
        }), false);
        add("half-closed-mid-head", UpstreamFault.HTTP_RESPONSE_INCOMPLETE, raw(c -> {
            if (c.readRequest() != null) {
                c.write(Behaviours.TRUNCATED_HEAD);
                c.socket().shutdownOutput();
                c.stallUntilClosed();
            }
        }), false);
        cases.add(new Case("half-closed-mid-body", UpstreamFault.HTTP_RESPONSE_INCOMPLETE, raw(c -> {
            if (c.readRequest() != null) {
                c.write(Behaviours.TRUNCATED_BODY);
                c.socket().shutdownOutput();
                c.stallUntilClosed();
            }
        }), false, true));
        add("dns-invalid", UpstreamFault.DNS_ERROR, "http://upstream-guard-test.invalid:8080", false);
        add("ipv6-refused", UpstreamFault.CONNECTION_REFUSED, "http://[::1]:" + closedIpv6Port(), false);
        MockWebServer tlsOnIpv6 = new MockWebServer();
        upstreams.add(tlsOnIpv6);
        tlsOnIpv6.useHttps(TestTls.serverCertificates().sslSocketFactory());
        tlsOnIpv6.start(InetAddress.getByName("::1"), 0);
        // TestTls's certificate names 127.0.0.1 and localhost, not ::1.
        add("ipv6-tls-not-named", UpstreamFault.TLS_CERTIFICATE_ERROR, "https://[::1]:" + tlsOnIpv6.getPort(), true);

        resetOnAccept = raw(c -> c.reset());

        MockWebServer good = new MockWebServer();
        upstreams.add(good);
        MockWebServers.always(good, new MockResponse.Builder().body("ok").build());
        good.start(InetAddress.getByName("::1"), 0);
        goodUpstream = "http://[::1]:" + good.getPort();

        for (Container container : Container.values()) {
            Container.Deployment deployment = new Container.Deployment().http2();
            Map<String, UpstreamProxyServlet> byRoute = new LinkedHashMap<>();
            List<GuardedHttpClient> clients = new ArrayList<>();
            SimpleMeterRegistry registry = new SimpleMeterRegistry();
            GuardedHttpClient trusting = applicationClient(true, registry);
            GuardedHttpClient untrusting = applicationClient(false, registry);
            clients.add(trusting);
            clients.add(untrusting);
            applicationClients.put(container, clients);
            deployment.filter("guard", UpstreamFaultFilter.builder().meterRegistry(registry).build(), "/f/*");
            deployment.filter("exposed", new UpstreamFaultFilter(), "/xf/*", Map.of("expose-details", "true"),
                    java.util.EnumSet.of(jakarta.servlet.DispatcherType.REQUEST));
            for (Case c : cases) {
                GuardedHttpClient client = c.trusting ? trusting : untrusting;
                byRoute.put(c.route, proxy(c, registry, false));
                deployment.servlet("p-" + c.route, byRoute.get(c.route), "/p/" + c.route + "/*");
                deployment.servlet("x-" + c.route, proxy(c, registry, true), "/x/" + c.route + "/*");
                deployment.servlet("f-" + c.route, application(client, c.upstream), "/f/" + c.route);
                deployment.servlet("xf-" + c.route, application(client, c.upstream), "/xf/" + c.route);
            }
            UpstreamProxyServlet resetting = proxy(new Case("reset-on-accept", UpstreamFault.CONNECTION_TERMINATED,
                    resetOnAccept, false, false, ""), registry, false);
            byRoute.put("reset-on-accept", resetting);
            deployment.servlet("p-reset-on-accept", resetting, "/p/reset-on-accept/*");
            deployment.servlet("f-reset-on-accept", application(untrusting, resetOnAccept), "/f/reset-on-accept");
            UpstreamProxyServlet goodProxy = UpstreamProxyServlet.builder(goodUpstream).meterRegistry(registry).build();
            byRoute.put("good", goodProxy);
            deployment.servlet("p-good", goodProxy, "/p/good/*");
            deployment.servlet("f-good", application(trusting, goodUpstream), "/f/good");
            proxies.put(container, byRoute);
            Container.Running running = container.start(deployment);
            containers.put(container, running);
            HttpClient h2 = HttpClient.newBuilder().version(HttpClient.Version.HTTP_2).build();
            http2Clients.put(container, h2);
            // The upgrade's own request settles the connection to HTTP/2 for the tests' requests.
            assertThat(http2(container, "/gw/p/good/x", "*/*").body()).isEqualTo("ok");
        }
    }

    @AfterAll
    void stop() throws Exception {
        containers.values().forEach(Container.Running::close);
        applicationClients.values().forEach(l -> l.forEach(c -> c.close(CloseMode.IMMEDIATE)));
        for (AutoCloseable c : upstreams) {
            c.close();
        }
    }

    Stream<Arguments> faults() {
        return Stream.of(Container.values()).flatMap(k -> cases.stream().map(c -> Arguments.of(k, c)));
    }

    @ParameterizedTest(name = "[{0}] {1}")
    @MethodSource("faults")
    void theProxyServletAnswersEachConnectionFaultToHttp11AndLeaksNothing(Container container, Case c)
            throws Exception {
        RawClient.Response json = assertGeneratedFault(c.cutBody
                ? FaultAssertions::requestPastCommittedCuts : RawClient::request, port(container),
                "/gw/p/" + c.route + "/items/1?q=x", c.fault, false, !c.cutBody);
        assertThat(json.bodyUtf8()).containsPattern(upstreamNamed(c));
        assertProxyNothingLeased(container, c.route);
        assertGoodStillAnswered(container);
    }

    @ParameterizedTest(name = "[{0}] {1}")
    @MethodSource("faults")
    void theFaultFilterAnswersEachConnectionFaultOfAGuardedClientToHttp11AndLeaksNothing(Container container, Case c)
            throws Exception {
        RawClient.Response json = assertGeneratedFault(c.cutBody
                ? FaultAssertions::requestPastCommittedCuts : RawClient::request, port(container),
                "/gw/f/" + c.route, c.fault, false, !c.cutBody);
        assertThat(json.bodyUtf8()).contains("\"upstream\":\"" + c.route + "\"");
        assertApplicationNothingLeased(container);
        assertGoodStillAnswered(container);
    }

    @ParameterizedTest(name = "[{0}] {1}")
    @MethodSource("faults")
    void bothAnswerEachConnectionFaultToHttp2(Container container, Case c) throws Exception {
        for (String path : new String[] {"/gw/p/" + c.route + "/items/1", "/gw/f/" + c.route}) {
            HttpResponse<String> answer = http2(container, path, "application/json");
            for (int tries = 1; c.cutBody && answer.statusCode() == 200 && tries < 10; tries++) {
                answer = http2(container, path, "application/json"); // committed before the cut: see requestPastCommittedCuts
            }
            assertThat(answer.version()).isEqualTo(HttpClient.Version.HTTP_2);
            assertThat(answer.statusCode()).as("%s %s", path, answer.body()).isEqualTo(c.fault.status());
            assertThat(answer.headers().firstValue("proxy-status")).as(path).hasValueSatisfying(v -> assertThat(v)
                    .matches(Pattern.quote("upstream-guard; error=" + c.fault.type()) + c.alertParameters()));
            assertThat(answer.headers().firstValue("retry-after")).isEmpty();
            assertThat(answer.headers().firstValue("content-type")).hasValueSatisfying(v -> assertThat(v)
                    .startsWith("application/problem+json"));
            assertThat(answer.body()).containsPattern(upstreamNamed(c))
                    .contains("\"fault\":\"" + c.fault.type() + "\"").doesNotContain("127.0.0.1", "::1", "Exception");
        }
        assertProxyNothingLeased(container, c.route);
        assertApplicationNothingLeased(container);
        assertGoodStillAnswered(container);
    }

    @ParameterizedTest(name = "[{0}] {1}")
    @MethodSource("faults")
    void exposedDetailsNameTheNextHopAndTheCause(Container container, Case c) throws Exception {
        String hop = URI.create(c.upstream).getRawAuthority();
        RawClient.Response proxied = request(container, "/gw/x/" + c.route + "/items/1", c);
        assertThat(proxied.status()).as("%s", proxied).isEqualTo(c.fault.status());
        // next-hop is an sf-token where the host:port is one, else an sf-string ("[::1]:8080": '[' is no tchar).
        assertThat(proxied.header("Proxy-Status")).as("%s", proxied).matches(Pattern.quote(
                "upstream-guard; error=" + c.fault.type()) + c.alertParameters() + Pattern.quote("; next-hop=")
                + "(" + Pattern.quote(hop) + "|\"" + Pattern.quote(hop) + "\")" + "; details=\"[^\"]+\"");
        if (hop.startsWith("[")) {
            assertThat(proxied.header("Proxy-Status")).contains("next-hop=\"" + hop + "\"");
        }
        RawClient.Response filtered = request(container, "/gw/xf/" + c.route, c);
        assertThat(filtered.status()).as("%s", filtered).isEqualTo(c.fault.status());
        assertThat(filtered.header("Proxy-Status")).as("%s", filtered).matches(Pattern.quote(
                "upstream-guard; error=" + c.fault.type()) + c.alertParameters() + Pattern.quote("; next-hop=" + c.route)
                + "; details=\"[^\"]+\"");
        assertProxyNothingLeased(container, c.route);
        assertApplicationNothingLeased(container);
    }

    /**
     * An upstream that resets each connection the moment it accepts it: {@code connection_terminated}, an accepted
     * connection closed before any response, whether the reset beat the end of the connect (the JDK then reports it
     * from the connect) or came after it; a 502 without {@code Retry-After}, and nothing leaks.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aResetTheMomentTheConnectionIsAcceptedIsTerminatedAndLeaksNothing(Container container)
            throws Exception {
        for (String path : new String[] {"/gw/p/reset-on-accept/items/1", "/gw/f/reset-on-accept"}) {
            for (int i = 0; i < 4; i++) {
                RawClient.Response answer = RawClient.request(port(container), "GET", path,
                        "Accept: application/json");
                assertThat(answer.status()).as("%s %s", path, answer).isEqualTo(502);
                assertThat(answer.header("Proxy-Status")).as(path).matches(
                        "upstream-guard; error=connection_terminated");
                assertThat(answer.header("Retry-After")).isNull();
                assertThat(answer.bodyUtf8()).contains("\"fault\":\"connection_terminated\"");
                HttpResponse<String> h2 = http2(container, path, "application/json");
                assertThat(h2.statusCode()).as("%s over HTTP/2", path).isEqualTo(502);
                assertThat(h2.headers().firstValue("proxy-status")).hasValueSatisfying(v -> assertThat(v)
                        .isEqualTo("upstream-guard; error=connection_terminated"));
            }
        }
        assertProxyNothingLeased(container, "reset-on-accept");
        assertApplicationNothingLeased(container);
        assertGoodStillAnswered(container);
    }

    /** The good upstream is reached through the proxy and the filtered application, so the IPv6 path itself works. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anIpv6LoopbackUpstreamIsReachedThroughBoth(Container container) throws Exception {
        assertGoodStillAnswered(container);
    }

    /**
     * The upstream's name in the problem body: the route for a client named by the test, or the proxy servlet's name
     * ({@code p-<route>}) for the client the servlet builds itself.
     */
    private static Pattern upstreamNamed(Case c) {
        return Pattern.compile("\"upstream\":\"(p-)?" + Pattern.quote(c.route) + "\"");
    }

    private RawClient.Response request(Container container, String path, Case c) throws IOException {
        RawClient.Response answer = RawClient.request(port(container), "GET", path, "Accept: application/json");
        for (int tries = 1; c.cutBody && answer.status() == 200 && tries < 10; tries++) {
            answer = RawClient.request(port(container), "GET", path, "Accept: application/json");
        }
        return answer;
    }

    private void assertGoodStillAnswered(Container container) throws IOException {
        for (String path : new String[] {"/gw/p/good/x", "/gw/f/good"}) {
            RawClient.Response answer = RawClient.request(port(container), "GET", path);
            assertThat(answer.status()).as("%s %s", path, answer).isEqualTo(200);
            assertThat(answer.bodyUtf8()).isEqualTo("ok");
        }
    }

    private void assertProxyNothingLeased(Container container, String route) {
        UpstreamProxyServlet servlet = proxies.get(container).get(route);
        Await.until("no connection of '" + route + "' is leased", SETTLE,
                () -> servlet.client().poolStats().getLeased() == 0, () -> "" + servlet.client().poolStats());
    }

    private void assertApplicationNothingLeased(Container container) {
        for (GuardedHttpClient client : applicationClients.get(container)) {
            Await.until("no connection of the application's client is leased", SETTLE,
                    () -> client.poolStats().getLeased() == 0, () -> "" + client.poolStats());
        }
    }

    private HttpResponse<String> http2(Container container, String path, String accept)
            throws IOException, InterruptedException {
        return http2Clients.get(container).send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + port(container) + path)).header("Accept", accept)
                .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private int port(Container container) {
        return containers.get(container).port();
    }

    private UpstreamProxyServlet proxy(Case c, SimpleMeterRegistry registry, boolean expose) {
        UpstreamProxyServlet.Builder b = UpstreamProxyServlet.builder(c.upstream).meterRegistry(registry);
        policy(c.route).forEach(b::set);
        if (expose) {
            b.exposeDetails(true);
        }
        if (c.trusting) {
            GuardPolicy.Builder policy = GuardPolicy.builder();
            policy(c.route).forEach(policy::set);
            GuardedHttpClient client = GuardedHttpClients.custom().sslContext(TestTls.clientContext())
                    .upstream(c.route, c.upstream, policy.build()).meterRegistry(registry)
                    .contentCompression(false).redirects(false).build();
            upstreams.add(() -> client.close(CloseMode.IMMEDIATE));
            b.client(client, c.route);
        }
        return b.build();
    }

    /** The application's client: every case's upstream (and the good one) by name, with the test's policy. */
    private GuardedHttpClient applicationClient(boolean trusting, SimpleMeterRegistry registry) {
        var b = GuardedHttpClients.custom().meterRegistry(registry).contentCompression(false).redirects(false);
        if (trusting) {
            b.sslContext(TestTls.clientContext());
        }
        for (Case c : cases) {
            b.upstream(c.route, c.upstream, policyOf(c.route));
        }
        b.upstream("good", goodUpstream, policyOf("good"));
        b.upstream("reset-on-accept", resetOnAccept, policyOf("reset-on-accept"));
        return b.build();
    }

    private static Map<String, String> policy(String route) {
        Map<String, String> settings = new LinkedHashMap<>(POLICY);
        if (route.equals("tls-handshake-stalls")) {
            settings.putAll(STALLED_HANDSHAKE);
        }
        return settings;
    }

    private static GuardPolicy policyOf(String route) {
        GuardPolicy.Builder policy = GuardPolicy.builder();
        policy(route).forEach(policy::set);
        return policy.build();
    }

    /** An application servlet that GETs its upstream with the guarded client and relays status and body. */
    private HttpServlet application(GuardedHttpClient client, String upstream) {
        String target = upstream + "/items/1";
        return new HttpServlet() {
            private static final long serialVersionUID = 1L;

            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                String body = client.execute(new HttpGet(target), r -> {
                    resp.setStatus(r.getCode());
                    return EntityUtils.toString(r.getEntity());
                });
                resp.setContentType("text/plain");
                resp.getWriter().write(body);
            }
        };
    }

    private void add(String route, UpstreamFault fault, String upstream, boolean trusting) {
        cases.add(new Case(route, fault, upstream, trusting, false));
    }

    private String raw(RawUpstream.Behaviour behaviour) throws IOException {
        return register(RawUpstream.start(behaviour)).baseUrl();
    }

    private String rawTls(javax.net.ssl.SSLContext server, RawUpstream.Behaviour behaviour) throws IOException {
        return register(RawUpstream.startTls(server, behaviour)).baseUrl();
    }

    private RawUpstream register(RawUpstream upstream) {
        upstreams.add(upstream);
        return upstream;
    }

    private static String https(String url) {
        return url.replace("http://", "https://");
    }

    private static RawUpstream.Behaviour ok() {
        return Behaviours.ok("never");
    }

    /** A server presenting {@code leaf}, signed by {@link TestTls}'s root unless it names no issuer of its own. */
    private static javax.net.ssl.SSLContext serverContext(HeldCertificate.Builder leaf) {
        HeldCertificate root = TestTls.rootCertificate();
        return new HandshakeCertificates.Builder()
                .heldCertificate(leaf.commonName("upstream").ecdsa256().signedBy(root).build(), root.certificate())
                .build().sslContext();
    }

    /** A port nothing listens on at ::1: bound a moment ago and closed. */
    private static int closedIpv6Port() throws IOException {
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress(InetAddress.getByName("::1"), 0));
            return s.getLocalPort();
        }
    }
}
