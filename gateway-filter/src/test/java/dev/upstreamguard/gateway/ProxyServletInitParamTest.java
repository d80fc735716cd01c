package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.Blackhole;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Metrics;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The proxy servlet as {@code web.xml} makes it: created by the container from its class and configured by
 * init-params alone (values with surrounding blanks, {@code PT30S}, {@code TRUE}), each setting seen at work over real
 * sockets in each container: the status, {@code Proxy-Status}, {@code Retry-After} and the upstream's request count.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletInitParamTest {

    private static final int BREAKER_ROUTES = 3;

    private final List<AutoCloseable> closeables = new ArrayList<>();
    private final Map<Container, Map<String, RawUpstream>> upstreams = new EnumMap<>(Container.class);
    private final Map<Container, Map<String, UpstreamProxyServlet>> servlets = new EnumMap<>(Container.class);
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    /** Servlets made from their class meter into Micrometer's global registry. */
    private final SimpleMeterRegistry global = new SimpleMeterRegistry();
    private String closedPort;

    @BeforeAll
    void start() throws Exception {
        Metrics.addRegistry(global);
        Blackhole blackhole = Blackhole.open();
        closeables.add(blackhole);
        closedPort = ClosedPort.find().baseUrl();
        for (Container container : Container.values()) {
            Map<String, RawUpstream> byRoute = new LinkedHashMap<>();
            Map<String, UpstreamProxyServlet> servletsByRoute = new LinkedHashMap<>();
            upstreams.put(container, byRoute);
            servlets.put(container, servletsByRoute);
            Container.Deployment d = new Container.Deployment();
            route(container, d, "once", Behaviours.status(503, "busy"), "retry.max-attempts", "1");
            route(container, d, "retry-disabled", Behaviours.status(503, "busy"), "retry.enabled", " false ");
            route(container, d, "only-503", Behaviours.status(502, "bad"), "retry.statuses", "503",
                    "retry.initial-backoff", "1ms", "retry.max-backoff", "2ms");
            route(container, d, "no-statuses", Behaviours.status(503, "busy"), "retry.statuses", "none");
            route(container, d, "no-budget", Behaviours.status(503, "busy"), "retry.budget-ratio", "0",
                    "retry.budget-min-per-second", "0", "upstream-name", "no-budget-" + container);
            route(container, d, "read-timeout", Behaviours.stall(), "retry.on-response-timeout", "true",
                    "response-timeout", "300ms", "retry.max-attempts", "2", "retry.initial-backoff", "1ms",
                    "retry.max-backoff", "2ms");
            for (int i = 0; i < BREAKER_ROUTES; i++) {
                route(container, d, "breaker-" + i, Behaviours.status(500, "broken"),
                        "circuit-breaker.record-statuses", "500", "circuit-breaker.minimum-calls", "2",
                        "circuit-breaker.failure-rate-threshold", "50", "circuit-breaker.open-for", "PT30S",
                        "retry.enabled", "false");
            }
            route(container, d, "breaker-off", Behaviours.status(500, "broken"),
                    "circuit-breaker.record-statuses", "500", "circuit-breaker.minimum-calls", "2",
                    "circuit-breaker.enabled", "false", "retry.enabled", "false");
            for (int i = 0; i < BREAKER_ROUTES; i++) {
                route(container, d, "head-breaker-" + i,
                        Behaviours.respond("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n"),
                        "circuit-breaker.minimum-calls", "2", "circuit-breaker.open-for", "30s",
                        "retry.enabled", "false");
            }
            route(container, d, "pool", Behaviours.stall(), "max-connections", "1", "pool-timeout", "300ms",
                    "response-timeout", "4s", "retry.enabled", "false");
            route(container, d, "no-bulkhead", Behaviours.stall(), "bulkhead.enabled", "false",
                    "bulkhead.max-concurrent-calls", "1", "response-timeout", "1s", "retry.enabled", "false");
            route(container, d, "bulkhead", Behaviours.stall(), "bulkhead.max-concurrent-calls", "1",
                    "response-timeout", "4s", "retry.enabled", "false");
            route(container, d, "total", Behaviours.stall(), "total-timeout", "500ms");
            route(container, d, "body-limit", Behaviours.respond("HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n"
                    + "x".repeat(70000)), "max-response-body", "64KiB");
            route(container, d, "retry-after", Behaviours.respond(
                    "HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"),
                    "retry.max-retry-after", "1s");
            route(container, d, "put", Behaviours.closeBeforeResponse(), "max-buffered-request-body", "1KiB",
                    "retry.initial-backoff", "1ms", "retry.max-backoff", "2ms", "circuit-breaker.enabled", "false");
            route(container, d, "fwd", Behaviours.ok("fine"), "forwarded-headers", " Forwarded ",
                    "preserve-host", "true");
            route(container, d, "xfwd", Behaviours.ok("fine"), "forwarded-headers", "x-forwarded");
            route(container, d, "named", Behaviours.ok("fine"),
                    "upstream-name", " inventory-" + container + " ", "proxy-name", " edge-1 ");
            servlet(container, d, "named-refused", closedPort, "upstream-name", "refused-" + container,
                    "proxy-name", "edge-1", "retry.max-attempts", "1");
            servlet(container, d, "details", closedPort, "expose-details", "TRUE", "retry.max-attempts", "1");
            servlet(container, d, "connect", blackhole.baseUrl(), "connect-timeout", "300ms",
                    "retry.max-attempts", "1");
            servlet(container, d, "connect-total", blackhole.baseUrl(), "connect-timeout", "5s",
                    "total-timeout", "400ms");
            containers.put(container, container.start(d));
        }
    }

    private void route(Container container, Container.Deployment d, String route, RawUpstream.Behaviour behaviour,
            String... settings) throws Exception {
        RawUpstream upstream = RawUpstream.start(behaviour);
        closeables.add(upstream);
        upstreams.get(container).put(route, upstream);
        servlet(container, d, route, " " + upstream.baseUrl() + "/base/ ", settings);
    }

    private void servlet(Container container, Container.Deployment d, String route, String upstream,
            String... settings) {
        Map<String, String> params = new LinkedHashMap<>();
        params.put("upstream", upstream);
        for (int i = 0; i < settings.length; i += 2) {
            params.put(settings[i], settings[i + 1]);
        }
        UpstreamProxyServlet servlet = new UpstreamProxyServlet();
        servlets.get(container).put(route, servlet);
        d.servlet(route, servlet, "/" + route + "/*", params);
    }

    @AfterAll
    void stop() throws Exception {
        containers.values().forEach(Container.Running::close);
        for (AutoCloseable c : closeables) {
            c.close();
        }
        Metrics.removeRegistry(global);
    }

    private RawClient.Response get(Container c, String path, String... headers) throws Exception {
        return RawClient.request(containers.get(c).port(), "GET", "/gw" + path, headers);
    }

    private int requests(Container c, String route) {
        return upstreams.get(c).get(route).requestCount();
    }

    /**
     * Regression: the client had the whole of a failure status's answer (by its {@code Content-Length}) before the
     * call was on record, so a request sent right after the one that opened the circuit reached the upstream, or was
     * answered with {@code Retry-After: 1} for an opening still under way, instead of the open circuit's 503 with the
     * time left of {@code open-for}.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFailureStatusThatOpensTheCircuitIsOnRecordBeforeItsAnswerReachesTheClient(Container c) throws Exception {
        for (int i = 0; i < BREAKER_ROUTES; i++) {
            String route = "breaker-" + i;
            for (int call = 0; call < 2; call++) {
                RawClient.Response passed = get(c, "/" + route + "/x");
                assertThat(passed.status()).as("a 500 passes through unchanged").isEqualTo(500);
                assertThat(passed.header("Proxy-Status")).isNull();
                assertThat(passed.bodyUtf8()).isEqualTo("broken");
            }
            assertOpenedByTheSecondFailure(c, route, get(c, "/" + route + "/x"));
        }
    }

    /**
     * The circuit of {@code route} is open once the client has the second failing answer, and {@code next}, the request
     * made then, got the open circuit's 503 with the time left of {@code open-for} (30 s), nothing sent upstream.
     */
    private void assertOpenedByTheSecondFailure(Container c, String route, RawClient.Response next) {
        assertThat(servlets.get(c).get(route).client().upstreams().iterator().next().circuitState())
                .as("%s: the circuit once the client has the second failure", route).isEqualTo("OPEN");
        assertThat(next.status()).as("%s", next).isEqualTo(503);
        assertThat(next.header("Proxy-Status")).isEqualTo("upstream-guard; error=destination_unavailable");
        assertThat(Long.parseLong(next.header("Retry-After"))).as("%s", route).isBetween(20L, 30L);
        assertThat(requests(c, route)).as("nothing sent upstream while open").isEqualTo(2);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aDisabledCircuitBreakerLetsEveryFailingCallThrough(Container c) throws Exception {
        for (int call = 0; call < 4; call++) {
            assertThat(get(c, "/breaker-off/x").status()).isEqualTo(500);
        }
        assertThat(requests(c, "breaker-off")).isEqualTo(4);
    }

    /**
     * An answer without a body (to HEAD, here without a {@code Content-Length}, which the servlet flushes) is on record
     * before its head reaches the client: the circuit it opens is open for the client's next request.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFailureAnsweredToHeadIsOnRecordBeforeItsHeadReachesTheClient(Container c) throws Exception {
        int port = containers.get(c).port();
        for (int i = 0; i < BREAKER_ROUTES; i++) {
            String route = "head-breaker-" + i;
            for (int call = 0; call < 2; call++) {
                RawClient.Response passed = RawClient.request(port, "HEAD", "/gw/" + route + "/x");
                assertThat(passed.status()).as("a 503 passes through unchanged").isEqualTo(503);
                assertThat(passed.header("Proxy-Status")).isNull();
            }
            assertOpenedByTheSecondFailure(c, route, RawClient.request(port, "HEAD", "/gw/" + route + "/x"));
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theRetrySettingsGivenAsInitParamsDecideWhatIsSentAgain(Container c) throws Exception {
        int port = containers.get(c).port();
        for (String route : List.of("once", "retry-disabled", "no-statuses", "no-budget")) {
            RawClient.Response busy = get(c, "/" + route + "/x");
            assertThat(busy.status()).as(route).isEqualTo(503);
            assertThat(busy.bodyUtf8()).isEqualTo("busy");
            assertThat(busy.header("Proxy-Status")).isNull();
            assertThat(requests(c, route)).as(route).isEqualTo(1);
        }
        assertThat(global.get("upstream.guard.retry.budget.exhausted").tag("upstream", "no-budget-" + c).counter()
                .count()).isEqualTo(1);
        RawClient.Response bad = get(c, "/only-503/x");
        assertThat(bad.status()).isEqualTo(502);
        assertThat(bad.header("Proxy-Status")).isNull();
        assertThat(requests(c, "only-503")).as("502 is not among retry.statuses=503").isEqualTo(1);

        RawClient.Response timedOut = get(c, "/read-timeout/x");
        assertThat(timedOut.status()).isEqualTo(504);
        assertThat(timedOut.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_read_timeout");
        assertThat(requests(c, "read-timeout")).as("a GET is retried after a read timeout").isEqualTo(2);
        RawClient.Response post = RawClient.send(port, RawClient.head(port, "POST", "/gw/read-timeout/x",
                "Content-Type: text/plain", "Content-Length: 2"), "ab".getBytes(StandardCharsets.US_ASCII));
        assertThat(post.status()).isEqualTo(504);
        assertThat(post.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_read_timeout");
        assertThat(requests(c, "read-timeout")).as("a POST never").isEqualTo(3);
        RawClient.Response keyed = RawClient.send(port, RawClient.head(port, "POST", "/gw/read-timeout/x",
                "Content-Type: text/plain", "Content-Length: 2", "Idempotency-Key: k1"),
                "ab".getBytes(StandardCharsets.US_ASCII));
        assertThat(keyed.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_read_timeout");
        assertThat(requests(c, "read-timeout")).as("a POST with an Idempotency-Key is").isEqualTo(5);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theServletsOwnInitParamsNameTheUpstreamAndTheProxyAndHideTheAddress(Container c) throws Exception {
        RawClient.Response ok = get(c, "/named/a?q=1");
        assertThat(ok.status()).isEqualTo(200);
        assertThat(ok.header("Via")).isEqualTo("1.1 edge-1");
        assertThat(upstreams.get(c).get("named").requests().get(0).target()).isEqualTo("/base/a?q=1");
        assertThat(upstreams.get(c).get("named").requests().get(0).header("Via")).isEqualTo("1.1 edge-1");
        assertThat(global.get("upstream.guard.calls").tag("upstream", "inventory-" + c).tag("outcome", "success")
                .timer().count()).isEqualTo(1);

        RawClient.Response refused = get(c, "/named-refused/a", "Accept: application/json");
        assertThat(refused.status()).isEqualTo(502);
        assertThat(refused.header("Proxy-Status")).isEqualTo("edge-1; error=connection_refused");
        assertThat(refused.bodyUtf8()).contains("\"upstream\":\"refused-" + c + "\"");
        String port = closedPort.substring(closedPort.lastIndexOf(':') + 1);
        assertThat(refused.headers().toString() + refused.bodyUtf8()).doesNotContain("127.0.0.1").doesNotContain(port);
        assertThat(global.get("upstream.guard.calls").tag("upstream", "refused-" + c).tag("outcome", "fault")
                .tag("fault", "connection_refused").timer().count()).isEqualTo(1);

        RawClient.Response details = get(c, "/details/a", "Accept: application/json");
        assertThat(details.status()).isEqualTo(502);
        assertThat(details.header("Proxy-Status")).startsWith("upstream-guard; error=connection_refused; next-hop=\""
                + closedPort.substring("http://".length()) + "\"; details=\"");
        assertThat(details.bodyUtf8()).contains("Connection refused");
    }

    private CompletableFuture<RawClient.Response> async(Container c, String path) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return get(c, path);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theConcurrencyLimitsGivenAsInitParamsRejectTheSecondCallOrLetItThrough(Container c) throws Exception {
        for (String route : List.of("pool", "bulkhead", "no-bulkhead")) {
            CompletableFuture<RawClient.Response> first = async(c, "/" + route + "/1");
            assertThat(upstreams.get(c).get(route).awaitRequests(1, Duration.ofSeconds(30))).isTrue();
            RawClient.Response second = get(c, "/" + route + "/2");
            if (route.equals("no-bulkhead")) {
                assertThat(second.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_read_timeout");
                assertThat(requests(c, route)).as("bulkhead.enabled=false lets it through").isEqualTo(2);
            } else {
                assertThat(second.status()).as(route).isEqualTo(503);
                assertThat(second.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_limit_reached");
                assertThat(second.header("Retry-After")).isEqualTo("1");
                assertThat(requests(c, route)).as(route).isEqualTo(1);
            }
            assertThat(first.get(30, TimeUnit.SECONDS).header("Proxy-Status"))
                    .isEqualTo("upstream-guard; error=connection_read_timeout");
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theTimeoutAndSizeLimitsGivenAsInitParamsAreHonoured(Container c) throws Exception {
        int port = containers.get(c).port();
        long start = System.nanoTime();
        RawClient.Response total = get(c, "/total/x");
        assertThat(total.status()).isEqualTo(504);
        assertThat(total.header("Proxy-Status")).isEqualTo("upstream-guard; error=http_response_timeout");
        assertThat(Duration.ofNanos(System.nanoTime() - start)).isBetween(Duration.ofMillis(450), Duration.ofSeconds(8));

        RawClient.Response tooLarge = get(c, "/body-limit/x");
        assertThat(tooLarge.status()).isEqualTo(502);
        assertThat(tooLarge.header("Proxy-Status")).isEqualTo("upstream-guard; error=http_response_body_size");
        assertThat(tooLarge.complete()).isTrue();

        RawClient.Response busy = get(c, "/retry-after/x");
        assertThat(busy.status()).isEqualTo(503);
        assertThat(busy.header("Retry-After")).as("over retry.max-retry-after: returned at once").isEqualTo("2");
        assertThat(requests(c, "retry-after")).isEqualTo(1);

        RawClient.Response buffered = RawClient.send(port, RawClient.head(port, "PUT", "/gw/put/x",
                "Content-Type: text/plain", "Content-Length: 1024"), new byte[1024]);
        assertThat(buffered.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_terminated");
        assertThat(requests(c, "put")).as("a PUT at max-buffered-request-body is retried").isEqualTo(3);
        RawClient.Response streamed = RawClient.send(port, RawClient.head(port, "PUT", "/gw/put/x",
                "Content-Type: text/plain", "Content-Length: 1025"), new byte[1025]);
        assertThat(streamed.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_terminated");
        assertThat(requests(c, "put")).as("one byte over it streams, never retried").isEqualTo(4);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theForwardingInitParamsDecideTheHostAndForwardingHeadersSentUpstream(Container c) throws Exception {
        int port = containers.get(c).port();
        assertThat(get(c, "/fwd/x").status()).isEqualTo(200);
        RawUpstream.Request fwd = upstreams.get(c).get("fwd").requests().get(0);
        assertThat(fwd.header("Host")).isEqualTo("127.0.0.1:" + port);
        assertThat(fwd.header("Forwarded")).isEqualTo("for=127.0.0.1;proto=http;host=\"127.0.0.1:" + port + "\"");
        assertThat(fwd.header("X-Forwarded-For")).isNull();
        assertThat(get(c, "/xfwd/x").status()).isEqualTo(200);
        RawUpstream.Request xfwd = upstreams.get(c).get("xfwd").requests().get(0);
        assertThat(xfwd.header("Host")).isEqualTo("127.0.0.1:" + upstreams.get(c).get("xfwd").port());
        assertThat(xfwd.header("Forwarded")).isNull();
        assertThat(xfwd.header("X-Forwarded-For")).isEqualTo("127.0.0.1");
        assertThat(xfwd.header("X-Forwarded-Port")).isEqualTo(Integer.toString(port));
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aConnectTimeoutOrAShorterTotalTimeoutGivenAsAnInitParamEndsASilentConnectWithinIt(Container c) throws Exception {
        long start = System.nanoTime();
        RawClient.Response answer = get(c, "/connect/a");
        long millis = (System.nanoTime() - start) / 1_000_000;
        assertThat(answer.status()).isEqualTo(504);
        assertThat(answer.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_timeout");
        assertThat(millis).isBetween(250L, 10_000L);

        start = System.nanoTime();
        RawClient.Response deadline = get(c, "/connect-total/a");
        millis = (System.nanoTime() - start) / 1_000_000;
        assertThat(deadline.status()).isEqualTo(504);
        assertThat(deadline.header("Proxy-Status")).as("a total-timeout shorter than connect-timeout ends the connect")
                .isEqualTo("upstream-guard; error=http_response_timeout");
        assertThat(millis).isBetween(350L, 4_000L);
    }
}
