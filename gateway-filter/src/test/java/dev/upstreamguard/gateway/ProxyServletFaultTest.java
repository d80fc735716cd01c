package dev.upstreamguard.gateway;

import static dev.upstreamguard.gateway.FaultAssertions.assertGeneratedFault;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.client.GuardedUpstream;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.Blackhole;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.FakeTime;
import dev.upstreamguard.testing.RawUpstream;
import dev.upstreamguard.testing.TestTls;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.stream.Stream;
import mockwebserver3.MockWebServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every upstream fault, produced over real sockets, through the proxy servlet in each container: the generated
 * response (status, Proxy-Status, Retry-After, body per Accept, HEAD) and no connection left leased.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletFaultTest {

    private static final Duration SETTLE = Duration.ofSeconds(15);

    /** Fast retries and no breaker, so that each fault shows itself and nothing else. */
    private static final Map<String, String> MATRIX_POLICY = Map.of(
            "retry.max-attempts", "2",
            "retry.initial-backoff", "1ms",
            "retry.max-backoff", "2ms",
            "circuit-breaker.enabled", "false",
            "connect-timeout", "2s",
            "response-timeout", "5s");

    /** Within the client's parser limits, over what either container writes (Tomcat 8 KiB, Jetty 16 KiB). */
    private static final String HEAD_TOO_LARGE_FOR_CONTAINER = "HTTP/1.1 200 OK\r\n"
            + ("X-Large: " + "v".repeat(1000) + "\r\n").repeat(30) + "Content-Length: 2\r\n\r\nok";

    private record Case(String route, UpstreamFault fault, String upstream, Map<String, String> settings) {
        @Override
        public String toString() {
            return route;
        }
    }

    private final List<AutoCloseable> upstreams = new ArrayList<>();
    private final List<Case> cases = new ArrayList<>();
    /** Routes to TLS upstreams whose certificate the proxy must trust ({@link TestTls}) for the fault to show. */
    private final List<String> trustingRoutes = new ArrayList<>();
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, Map<String, UpstreamProxyServlet>> servlets = new EnumMap<>(Container.class);
    private final Map<Container, SimpleMeterRegistry> registries = new EnumMap<>(Container.class);
    private final CountDownLatch bulkheadCallInFlight = new CountDownLatch(2);
    private final AtomicLong truncatedUpstreamClosedAt = new AtomicLong();
    private final Map<Container, CountDownLatch> trialCallsInFlight = new EnumMap<>(Container.class);
    private final Map<Container, FakeTime> breakerClocks = new EnumMap<>(Container.class);

    @BeforeAll
    void startUpstreamsAndContainers() throws Exception {
        add("refused", UpstreamFault.CONNECTION_REFUSED, ClosedPort.find().baseUrl());
        add("dns", UpstreamFault.DNS_ERROR, "http://upstream-guard-test.invalid:8080");
        Blackhole blackhole = Blackhole.open();
        upstreams.add(blackhole);
        add("connect-timeout", UpstreamFault.CONNECTION_TIMEOUT, blackhole.baseUrl(),
                "connect-timeout", "300ms", "retry.max-attempts", "1");
        add("reset", UpstreamFault.CONNECTION_TERMINATED, raw(Behaviours.resetBeforeResponse()));
        // Regression: the chunk that arrived was flushed at the pause the close made, committing a 200 that the cut
        // then had to abort; the gateway now sees the close before committing, and answers a clean 502.
        add("truncated-chunk", UpstreamFault.HTTP_RESPONSE_INCOMPLETE, raw(Behaviours.truncatedChunk()));
        add("truncated-chunk-at-a-boundary", UpstreamFault.HTTP_RESPONSE_INCOMPLETE, raw(Behaviours.respond(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n")));
        // Regression: an upstream whose close lags its last bytes by a few milliseconds (a busy machine) had them
        // flushed at the pause, committing a 200 that the cut then had to abort.
        add("body-cut-moments-later", UpstreamFault.HTTP_RESPONSE_INCOMPLETE,
                raw(closingMomentsAfter(Behaviours.TRUNCATED_BODY)));
        add("chunk-cut-moments-later", UpstreamFault.HTTP_RESPONSE_INCOMPLETE,
                raw(closingMomentsAfter(Behaviours.TRUNCATED_CHUNK)));
        add("close", UpstreamFault.CONNECTION_TERMINATED, raw(Behaviours.closeBeforeResponse()));
        add("not-http", UpstreamFault.HTTP_PROTOCOL_ERROR, raw(Behaviours.notHttp()));
        add("malformed-status", UpstreamFault.HTTP_PROTOCOL_ERROR, raw(Behaviours.malformedStatusLine()));
        add("huge-header", UpstreamFault.HTTP_RESPONSE_HEADER_SIZE, raw(Behaviours.hugeHeader()));
        add("many-headers", UpstreamFault.HTTP_RESPONSE_HEADER_SECTION_SIZE, raw(Behaviours.manyHeaders()));
        add("conflicting-content-length", UpstreamFault.HTTP_PROTOCOL_ERROR,
                raw(Behaviours.conflictingContentLength()));
        add("content-length-and-transfer-encoding", UpstreamFault.HTTP_PROTOCOL_ERROR,
                raw(Behaviours.contentLengthAndTransferEncoding()));
        add("http10-transfer-encoding", UpstreamFault.HTTP_PROTOCOL_ERROR, raw(Behaviours.respond(
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")));
        add("unsolicited-101", UpstreamFault.HTTP_PROTOCOL_ERROR, raw(Behaviours.respond(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")));
        add("interim-then-close", UpstreamFault.HTTP_RESPONSE_INCOMPLETE, raw(Behaviours.respond(
                "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")));
        add("interim-flood", UpstreamFault.HTTP_PROTOCOL_ERROR, raw(c -> {
            if (c.readRequest() != null) {
                try {
                    for (;;) {
                        c.write("HTTP/1.1 102 Processing\r\n\r\n");
                    }
                } catch (IOException hungUp) {
                    // The proxy gave up on the flood.
                }
            }
        }), "total-timeout", "4s");
        add("reset-mid-head", UpstreamFault.HTTP_RESPONSE_INCOMPLETE, raw(c -> {
            if (c.readRequest() != null) {
                c.write(Behaviours.TRUNCATED_HEAD);
                c.reset();
            }
        }));
        add("status-600", UpstreamFault.HTTP_PROTOCOL_ERROR, raw(Behaviours.respond(
                "HTTP/1.1 600 Unknown\r\nContent-Length: 2\r\n\r\nok")));
        add("nul-in-header", UpstreamFault.HTTP_PROTOCOL_ERROR, raw(Behaviours.respond(
                "HTTP/1.1 200 OK\r\nX-Nul: a\u0000b\r\nContent-Length: 2\r\n\r\nok")));
        add("content-length-overflow", UpstreamFault.HTTP_PROTOCOL_ERROR, raw(Behaviours.respond(
                "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok")));
        add("section-of-small-headers", UpstreamFault.HTTP_RESPONSE_HEADER_SECTION_SIZE,
                raw(Behaviours.respond(smallHeadersOver64KiB())));
        // Regression: within the parser's limits but over what the container can write (Tomcat 8 KiB, Jetty 16 KiB),
        // the container failed the commit and answered a bare 500 of its own.
        add("head-too-large-for-container", UpstreamFault.HTTP_RESPONSE_HEADER_SECTION_SIZE,
                raw(Behaviours.respond(HEAD_TOO_LARGE_FOR_CONTAINER)));
        add("response-timeout", UpstreamFault.CONNECTION_READ_TIMEOUT, raw(Behaviours.stall()),
                "response-timeout", "400ms");
        MockWebServer tls = TestTls.httpsServer();
        upstreams.add(tls);
        add("tls-untrusted", UpstreamFault.TLS_CERTIFICATE_ERROR, "https://127.0.0.1:" + tls.getPort());
        add("tls-handshake-reset", UpstreamFault.TLS_PROTOCOL_ERROR, raw(c -> {
            if (c.in().read(new byte[16 * 1024]) != -1) {
                c.reset();
            }
        }).replace("http://", "https://"));
        add("plain-to-tls", UpstreamFault.HTTP_PROTOCOL_ERROR, "http://127.0.0.1:" + tls.getPort());
        add("tls-to-plain", UpstreamFault.TLS_PROTOCOL_ERROR,
                raw(Behaviours.plainHttpToTls()).replace("http://", "https://"));
        add("tls-alert", UpstreamFault.TLS_ALERT_RECEIVED,
                raw(Behaviours.tlsFatalAlert()).replace("http://", "https://"));
        // Regression: a TLS 1.2 upstream refusing the proxy's missing client certificate alerts and closes while the
        // proxy still writes its handshake flight; the broken pipe was tls_protocol_error.
        addTrusting("tls12-client-certificate-required", UpstreamFault.TLS_ALERT_RECEIVED,
                rawTls(true, new String[] {"TLSv1.2"}, Behaviours.ok("never")));
        // Regression: a body delimited by the close, over TLS, cut by a bare TCP close (no close_notify), was passed on
        // as a whole 200 (RFC 9112 §9.8).
        addTrusting("tls-body-cut-without-close-notify", UpstreamFault.HTTP_RESPONSE_INCOMPLETE,
                rawTls(false, null, c -> {
                    if (c.readRequest() != null) {
                        c.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\npart of it");
                        c.closeWithoutCloseNotify();
                    }
                }));
        // A head trickling in, each byte well within the response timeout: only the total deadline ends it.
        add("head-trickle", UpstreamFault.HTTP_RESPONSE_TIMEOUT, raw(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\n");
                c.socket().setSoTimeout(100);
                for (int i = 0; i < 600; i++) {
                    c.write("X-Slow-" + i + ": v\r\n");
                    try {
                        if (c.in().read() == -1) {
                            return; // the proxy gave up
                        }
                    } catch (java.net.SocketTimeoutException paced) {
                        // 100 ms between header lines
                    }
                }
            }
        }), "total-timeout", "1s", "retry.max-attempts", "1");
        add("body-over-limit", UpstreamFault.HTTP_RESPONSE_BODY_SIZE, raw(Behaviours.respond(
                "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + "x".repeat(5000))),
                "max-response-body", "1KiB");

        for (Container container : Container.values()) {
            Map<String, UpstreamProxyServlet> byRoute = new LinkedHashMap<>();
            SimpleMeterRegistry registry = new SimpleMeterRegistry();
            registries.put(container, registry);
            Container.Deployment deployment = new Container.Deployment();
            for (Case c : cases) {
                UpstreamProxyServlet.Builder b = UpstreamProxyServlet.builder(c.upstream).meterRegistry(registry);
                MATRIX_POLICY.forEach(b::set);
                c.settings.forEach(b::set);
                if (trustingRoutes.contains(c.route)) {
                    b.client(trustingClient(c, registry), c.route);
                }
                byRoute.put(c.route, b.build());
            }
            byRoute.put("circuit", UpstreamProxyServlet.builder(ClosedPort.find().baseUrl()).meterRegistry(registry)
                    .set("retry.enabled", "false")
                    .set("circuit-breaker.minimum-calls", "2")
                    .set("circuit-breaker.failure-rate-threshold", "50")
                    .set("circuit-breaker.open-for", "60s")
                    .build());
            byRoute.put("bulkhead", UpstreamProxyServlet.builder(raw(Behaviours.stall(bulkheadCallInFlight)))
                    .meterRegistry(registry)
                    .set("bulkhead.max-concurrent-calls", "1")
                    .set("retry.enabled", "false")
                    .set("response-timeout", "60s")
                    .build());
            byRoute.put("truncated", UpstreamProxyServlet.builder(raw(truncatedAfter(256 * 1024, 1024 * 1024)))
                    .meterRegistry(registry).build());
            byRoute.put("truncated-chunked", UpstreamProxyServlet.builder(raw(truncatedChunked(256 * 1024)))
                    .meterRegistry(registry).build());
            // An endless chunked body: past the limit only after the response was committed.
            byRoute.put("endless-over-limit", UpstreamProxyServlet.builder(raw(endlessChunked()))
                    .meterRegistry(registry).set("max-response-body", "256KiB").build());
            byRoute.put("stalled-body", UpstreamProxyServlet.builder(raw(stallAfter(64 * 1024, 1024 * 1024)))
                    .meterRegistry(registry).set("response-timeout", "500ms").build());
            byRoute.put("half-open", halfOpenRoute(container, registry));
            // The head, then the close with none of the body: the fault in the body is met before anything is
            // committed, whatever the timing (body-cut-moments-later is the case with part of the body).
            byRoute.put("relayed-then-cut", UpstreamProxyServlet.builder(raw(Behaviours.respond(
                    "HTTP/1.1 200 OK\r\nProxy-Status: inner-cache; received-status=200\r\nContent-Length: 100\r\n\r\n")))
                    .meterRegistry(registry).set("retry.enabled", "false").build());
            RawUpstream busyThenTooLarge = RawUpstream.start(
                    Behaviours.respond("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                            + "Content-Length: 4\r\n\r\nbusy"),
                    Behaviours.respond(HEAD_TOO_LARGE_FOR_CONTAINER));
            upstreams.add(busyThenTooLarge);
            byRoute.put("busy-then-head-too-large", UpstreamProxyServlet.builder(busyThenTooLarge.baseUrl())
                    .meterRegistry(registry).set("retry.initial-backoff", "1ms").build());
            byRoute.forEach((route, servlet) -> deployment.servlet(route, servlet, "/" + route + "/*"));
            servlets.put(container, byRoute);
            containers.put(container, container.start(deployment));
        }
    }

    @AfterAll
    void stop() throws Exception {
        containers.values().forEach(Container.Running::close);
        for (AutoCloseable c : upstreams) {
            c.close();
        }
    }

    Stream<Arguments> faults() {
        return Stream.of(Container.values()).flatMap(k -> cases.stream().map(c -> Arguments.of(k, c)));
    }

    @ParameterizedTest(name = "[{0}] {1}")
    @MethodSource("faults")
    void eachFaultIsAnsweredWithItsStatusProxyStatusAndNegotiatedBodyAndLeaksNothing(Container container, Case c)
            throws Exception {
        int port = containers.get(container).port();
        // A response to HEAD has no body: nothing in it can be over the body limit or cut short.
        boolean cutBody = c.route.startsWith("truncated-chunk") || c.route.startsWith("tls-body-cut")
                || c.route.endsWith("-moments-later");
        boolean head = c.fault != UpstreamFault.HTTP_RESPONSE_BODY_SIZE && !cutBody;
        String path = "/gw/" + c.route + "/items/1?q=x";
        RawClient.Response json = assertGeneratedFault(cutBody
                ? FaultAssertions::requestPastCommittedCuts : RawClient::request, port, path, c.fault, false, head);
        assertThat(json.bodyUtf8()).contains("\"upstream\":\"" + c.route + "\"");
        assertNothingLeased(container, c.route);
    }

    /**
     * Regression: when the body of an upstream response that already carried a {@code Proxy-Status} (from a proxy
     * further in) failed before anything was committed, the gateway's 502 named only itself, and the inner hop's member
     * was lost. RFC 9209 §2: intermediaries adding a member preserve the existing ones, nearest the origin first.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultInAResponseFromAnotherProxyKeepsThatProxysMemberBeforeTheGatewaysOwn(Container container)
            throws Exception {
        RawClient.Response answer = RawClient.request(containers.get(container).port(), "GET",
                "/gw/relayed-then-cut/x");
        assertThat(answer.status()).as("%s", answer).isEqualTo(502);
        assertThat(answer.headers("Proxy-Status")).containsExactly(
                "inner-cache; received-status=200, upstream-guard; error=http_response_incomplete");
        assertNothingLeased(container, "relayed-then-cut");
    }

    /** Regression: {@code application/json} listed before a refused {@code application/problem+json} won JSON. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aRefusedProblemJsonIsNotSentBecauseApplicationJsonIsListedFirst(Container container) throws Exception {
        RawClient.Response answer = RawClient.request(containers.get(container).port(), "GET", "/gw/refused/x",
                "Accept: application/json, application/problem+json;q=0");
        assertThat(answer.status()).isEqualTo(502);
        assertThat(answer.header("Content-Type")).startsWith("text/plain");
    }

    /** Regression: only the first of several {@code Accept} lines was read, so this client got plain text. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theBodyIsNegotiatedOnEveryAcceptLine(Container container) throws Exception {
        RawClient.Response answer = RawClient.request(containers.get(container).port(), "GET", "/gw/refused/x",
                "Accept: text/plain;q=0.1", "Accept: application/problem+json");
        assertThat(answer.status()).isEqualTo(502);
        assertThat(answer.header("Content-Type")).startsWith("application/problem+json");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anOpenCircuitIsAnsweredWith503AndRetryAfterWithoutTouchingTheUpstream(Container container) throws Exception {
        int port = containers.get(container).port();
        for (int i = 0; i < 2; i++) {
            assertThat(RawClient.request(port, "GET", "/gw/circuit/x").header("Proxy-Status"))
                    .isEqualTo("upstream-guard; error=connection_refused");
        }
        RawClient.Response open = assertGeneratedFault(port, "/gw/circuit/x", UpstreamFault.DESTINATION_UNAVAILABLE,
                true);
        assertThat(Long.parseLong(open.header("Retry-After"))).isBetween(1L, 60L);
        assertThat(open.bodyUtf8()).contains("\"attempts\":0");
        assertNothingLeased(container, "circuit");
    }

    /**
     * Regression: a head too large for the container was answered 502, but the servlet then closed the response, so
     * the call was recorded as cancelled — unseen by the breaker, the fault counts and the {@code fault} outcome — and
     * the answer said {@code attempts: 1} whatever the call took.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aHeadTooLargeForTheContainerIsTheUpstreamsFaultWithItsRealAttemptCount(Container container)
            throws Exception {
        String route = "busy-then-head-too-large";
        UpstreamFault fault = UpstreamFault.HTTP_RESPONSE_HEADER_SECTION_SIZE;
        RawClient.Response answer = RawClient.request(containers.get(container).port(), "GET", "/gw/" + route + "/x",
                "Accept: application/json");
        assertThat(answer.status()).isEqualTo(502);
        assertThat(answer.header("Proxy-Status")).isEqualTo("upstream-guard; error=" + fault.type());
        assertThat(answer.bodyUtf8()).contains("\"attempts\":2");

        GuardedUpstream upstream = servlets.get(container).get(route).client().upstreams().iterator().next();
        assertThat(upstream.faultCounts()).containsEntry(fault, 1L);
        assertThat(upstream.circuitBreaker().orElseThrow().getMetrics().getNumberOfFailedCalls()).isEqualTo(1);
        SimpleMeterRegistry registry = registries.get(container);
        assertThat(registry.find("upstream.guard.calls").tag("upstream", route).tag("outcome", "fault")
                .tag("fault", fault.type()).timer().count()).isEqualTo(1);
        assertThat(registry.find("upstream.guard.calls").tag("upstream", route).tag("outcome", "cancelled").timer())
                .isNull();
        assertNothingLeased(container, route);
    }

    /**
     * Regression: a half-open circuit whose trial calls are all out rejects the rest, and that 503 had no
     * {@code Retry-After} (the time is unknown), unlike every other 503 the gateway generates.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aHalfOpenCircuitWithItsTrialCallOutIsAnswered503WithRetryAfter(Container container) throws Exception {
        int port = containers.get(container).port();
        for (int i = 0; i < 2; i++) {
            assertThat(RawClient.request(port, "GET", "/gw/half-open/x").header("Proxy-Status"))
                    .isEqualTo("upstream-guard; error=connection_terminated");
        }
        assertThat(RawClient.request(port, "GET", "/gw/half-open/x").header("Proxy-Status"))
                .isEqualTo("upstream-guard; error=destination_unavailable");
        breakerClocks.get(container).advance(Duration.ofMinutes(2));
        CompletableFuture<RawClient.Response> trial = CompletableFuture.supplyAsync(() -> {
            try {
                return RawClient.request(port, "GET", "/gw/half-open/trial");
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        assertThat(trialCallsInFlight.get(container).await(30, TimeUnit.SECONDS)).isTrue();
        RawClient.Response rejected = assertGeneratedFault(port, "/gw/half-open/x",
                UpstreamFault.DESTINATION_UNAVAILABLE, true);
        assertThat(rejected.header("Retry-After")).isEqualTo("1");
        servlets.get(container).get("half-open").client().close(org.apache.hc.core5.io.CloseMode.IMMEDIATE);
        assertThat(trial.get(30, TimeUnit.SECONDS).status()).isBetween(500, 504);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFullBulkheadIsAnswered503AtOnceAndTheBlockedCallStillEndsCleanly(Container container) throws Exception {
        int port = containers.get(container).port();
        long inFlightBefore = bulkheadCallInFlight.getCount();
        CompletableFuture<RawClient.Response> hung = CompletableFuture.supplyAsync(() -> {
            try {
                return RawClient.request(port, "GET", "/gw/bulkhead/slow");
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        Await.until("the first call reached the upstream", SETTLE,
                () -> bulkheadCallInFlight.getCount() < inFlightBefore);
        RawClient.Response full = assertGeneratedFault(port, "/gw/bulkhead/x", UpstreamFault.CONNECTION_LIMIT_REACHED,
                true);
        assertThat(full.header("Retry-After")).isEqualTo("1");
        // End the stalled call: close its upstream connection (the response timeout would take a minute).
        servlets.get(container).get("bulkhead").client().close(org.apache.hc.core5.io.CloseMode.IMMEDIATE);
        RawClient.Response ended = hung.get(30, TimeUnit.SECONDS);
        assertThat(ended.status()).isBetween(500, 504);
        assertNothingLeased(container, "bulkhead");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aBodyCutOffAfterTheResponseWasCommittedAbortsTheClientConnectionWithinASecond(Container container)
            throws Exception {
        int port = containers.get(container).port();
        SimpleMeterRegistry registry = registries.get(container);
        double abortedBefore = abortedCount(registry, "http_response_incomplete");
        // The fault is logged once, at WARN; Tomcat must not add a SEVERE "Servlet.service() threw exception".
        List<LogRecord> severe = new CopyOnWriteArrayList<>();
        Logger catalina = Logger.getLogger("org.apache.catalina");
        Handler capture = new Handler() {
            @Override
            public void publish(LogRecord record) {
                if (record.getLevel().intValue() >= Level.SEVERE.intValue()) {
                    severe.add(record);
                }
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        catalina.addHandler(capture);
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            socket.getOutputStream().write(RawClient.head(port, "GET", "/gw/truncated/big")
                    .getBytes(StandardCharsets.ISO_8859_1));
            InputStream in = socket.getInputStream();
            RawClient.Response response = RawClient.read(new java.io.BufferedInputStream(in), false);
            long sawEnd = System.nanoTime();
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.complete()).as("the client must see an incomplete response").isFalse();
            assertThat(response.body().length).isLessThan(1024 * 1024);
            assertThat(Duration.ofNanos(sawEnd - truncatedUpstreamClosedAt.get()))
                    .isLessThan(Duration.ofSeconds(1));
        } finally {
            catalina.removeHandler(capture);
        }
        assertThat(severe).extracting(LogRecord::getMessage).isEmpty();
        Await.until("the abort is counted", SETTLE,
                () -> abortedCount(registry, "http_response_incomplete") == abortedBefore + 1);
        assertNothingLeased(container, "truncated");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aChunkedBodyCutOffAfterTheResponseWasCommittedNeverEndsCleanlyForTheClient(Container container)
            throws Exception {
        RawClient.Response response = RawClient.request(containers.get(container).port(), "GET",
                "/gw/truncated-chunked/stream");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.complete()).as("the client must not see the last chunk").isFalse();
        assertThat(response.body().length).isLessThanOrEqualTo(256 * 1024 + 100);
        assertNothingLeased(container, "truncated-chunked");
    }

    /**
     * Regression: to a client asking to close the connection Jetty framed a body of unknown length by that close, so
     * a body the upstream cut short ended as cleanly as a whole one. Only chunks can show the cut.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aChunkedBodyCutOffNeverEndsCleanlyForAClientThatAskedToCloseTheConnection(Container container)
            throws Exception {
        RawClient.Response response = RawClient.request(containers.get(container).port(), "GET",
                "/gw/truncated-chunked/stream", "Connection: close");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.header("Transfer-Encoding")).isEqualTo("chunked");
        assertThat(response.complete()).as("the client must not see the last chunk").isFalse();
        assertNothingLeased(container, "truncated-chunked");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aBodyThatStallsAfterTheResponseWasCommittedAbortsTheClientConnectionAfterTheResponseTimeout(
            Container container) throws Exception {
        int port = containers.get(container).port();
        RawClient.Response response = RawClient.request(port, "GET", "/gw/stalled-body/big");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.complete()).isFalse();
        assertThat(response.body().length).isLessThan(1024 * 1024);
        assertNothingLeased(container, "stalled-body");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aBodyOverTheLimitAfterTheResponseWasCommittedAbortsTheClientConnection(Container container)
            throws Exception {
        SimpleMeterRegistry registry = registries.get(container);
        double abortedBefore = abortedCount(registry, "http_response_body_size");
        RawClient.Response response = RawClient.request(containers.get(container).port(), "GET",
                "/gw/endless-over-limit/stream");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.complete()).as("the client must not see the last chunk").isFalse();
        assertThat(response.body().length).isLessThanOrEqualTo(256 * 1024);
        Await.until("the abort is counted", SETTLE,
                () -> abortedCount(registry, "http_response_body_size") == abortedBefore + 1);
        assertNothingLeased(container, "endless-over-limit");
    }

    /**
     * A client whose circuit opens after two resets, on a clock the test moves, and lets one trial call through when
     * half-open: that call reaches an upstream that never answers.
     */
    private UpstreamProxyServlet halfOpenRoute(Container container, SimpleMeterRegistry registry) throws IOException {
        CountDownLatch trialInFlight = new CountDownLatch(1);
        trialCallsInFlight.put(container, trialInFlight);
        FakeTime clock = new FakeTime();
        breakerClocks.put(container, clock);
        RawUpstream upstream = RawUpstream.start(Behaviours.resetBeforeResponse(), Behaviours.resetBeforeResponse(),
                Behaviours.stall(trialInFlight));
        upstreams.add(upstream);
        GuardedHttpClient client = GuardedHttpClients.custom()
                .upstream("half-open", upstream.baseUrl(), GuardPolicy.builder()
                        .set("retry.enabled", "false")
                        .set("response-timeout", "60s")
                        .set("circuit-breaker.minimum-calls", "2")
                        .set("circuit-breaker.open-for", "60s")
                        .set("circuit-breaker.half-open-calls", "1")
                        .build())
                .clock(clock.clock()).meterRegistry(registry).contentCompression(false).redirects(false).build();
        upstreams.add(() -> client.close(org.apache.hc.core5.io.CloseMode.IMMEDIATE));
        return UpstreamProxyServlet.builder(upstream.baseUrl()).client(client, "half-open").build();
    }

    private void assertNothingLeased(Container container, String route) {
        UpstreamProxyServlet servlet = servlets.get(container).get(route);
        Await.until("no connection of '" + route + "' is leased", SETTLE,
                () -> servlet.client().poolStats().getLeased() == 0, () -> "" + servlet.client().poolStats());
    }

    private static double abortedCount(SimpleMeterRegistry registry, String fault) {
        var counter = registry.find("upstream.guard.responses").tag("status", "aborted").tag("fault", fault)
                .counter();
        return counter == null ? 0 : counter.count();
    }

    private void add(String route, UpstreamFault fault, String upstream, String... settings) {
        Map<String, String> map = new LinkedHashMap<>();
        for (int i = 0; i < settings.length; i += 2) {
            map.put(settings[i], settings[i + 1]);
        }
        cases.add(new Case(route, fault, upstream, map));
    }

    /** A case whose TLS upstream ({@link #rawTls}) the route's client trusts. */
    private void addTrusting(String route, UpstreamFault fault, String upstream) {
        add(route, fault, upstream);
        trustingRoutes.add(route);
    }

    private String raw(RawUpstream.Behaviour behaviour) throws IOException {
        RawUpstream upstream = RawUpstream.start(behaviour);
        upstreams.add(upstream);
        return upstream.baseUrl();
    }

    /** A TLS upstream presenting {@link TestTls}'s certificate, which the route's client is built to trust. */
    private String rawTls(boolean needClientAuth, String[] protocols, RawUpstream.Behaviour behaviour)
            throws IOException {
        RawUpstream upstream = RawUpstream.startTls(needClientAuth, protocols, behaviour);
        upstreams.add(upstream);
        return upstream.baseUrl();
    }

    /** A client trusting {@link TestTls}'s root, with the matrix policy and the case's settings for its upstream. */
    private GuardedHttpClient trustingClient(Case c, SimpleMeterRegistry registry) {
        GuardPolicy.Builder policy = GuardPolicy.builder();
        MATRIX_POLICY.forEach(policy::set);
        c.settings.forEach(policy::set);
        GuardedHttpClient client = GuardedHttpClients.custom().sslContext(TestTls.clientContext())
                .upstream(c.route, c.upstream, policy.build()).meterRegistry(registry)
                .contentCompression(false).redirects(false).build();
        upstreams.add(() -> client.close(org.apache.hc.core5.io.CloseMode.IMMEDIATE));
        return client;
    }

    /** Fewer headers than the count limit (256), each far below the line limit, together over the 64 KiB head. */
    private static String smallHeadersOver64KiB() {
        StringBuilder sb = new StringBuilder("HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 250; i++) {
            sb.append("X-Small-").append(i).append(": ").append("v".repeat(300)).append("\r\n");
        }
        return sb.append("Content-Length: 2\r\n\r\nok").toString();
    }

    /** Announces {@code length} bytes, sends {@code sent}, then closes, noting when. */
    private RawUpstream.Behaviour truncatedAfter(int sent, int length) {
        return c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + length
                        + "\r\n\r\n");
                c.write(new byte[sent]);
                truncatedUpstreamClosedAt.set(System.nanoTime());
                c.close();
            }
        };
    }

    /** Writes {@code raw}, then closes the connection 10 ms later. */
    private static RawUpstream.Behaviour closingMomentsAfter(String raw) {
        return c -> {
            if (c.readRequest() != null) {
                c.write(raw);
                c.socket().setSoTimeout(10);
                try {
                    c.in().read(); // the proxy sends nothing more: the read only lets the moment pass
                } catch (java.net.SocketTimeoutException lag) {
                    // the moment has passed
                }
            }
        };
    }

    private static RawUpstream.Behaviour truncatedChunked(int sent) {
        return c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked"
                        + "\r\n\r\n");
                String chunk = "4000\r\n" + "x".repeat(16 * 1024) + "\r\n";
                for (int i = 0; i < sent / (16 * 1024); i++) {
                    c.write(chunk);
                }
                c.write("4000\r\n" + "x".repeat(100));
                c.close();
            }
        };
    }

    /** A chunked body in 16 KiB chunks that never ends, until the proxy hangs up. */
    private static RawUpstream.Behaviour endlessChunked() {
        return c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked"
                        + "\r\n\r\n");
                String chunk = "4000\r\n" + "x".repeat(16 * 1024) + "\r\n";
                try {
                    for (;;) {
                        c.write(chunk);
                    }
                } catch (IOException hungUp) {
                    // The proxy closed the connection: what it should do.
                }
            }
        };
    }

    /** Announces {@code length} bytes, sends {@code sent}, then stalls until the proxy hangs up. */
    private static RawUpstream.Behaviour stallAfter(int sent, int length) {
        return c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + length
                        + "\r\n\r\n");
                c.write(new byte[sent]);
                c.stallUntilClosed();
            }
        };
    }
}
