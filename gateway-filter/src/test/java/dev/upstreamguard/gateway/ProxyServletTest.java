package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The proxy servlet's behaviour on healthy and misbehaving exchanges, in each container: headers both ways, pass
 * through, retries, streaming, cancellation, and confinement to the route.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletTest {

    private static final Duration SETTLE = Duration.ofSeconds(15);
    private static final long GIB = 1L << 30;
    private static final byte[] GZIPPED_HELLO = gzip("hello, gzip");

    private final List<AutoCloseable> closeables = new ArrayList<>();
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, Map<String, UpstreamProxyServlet>> servlets = new EnumMap<>(Container.class);
    private final Map<Container, Map<String, RawUpstream>> upstreams = new EnumMap<>(Container.class);
    private final Map<Container, SimpleMeterRegistry> uploadMeters = new EnumMap<>(Container.class);
    private final Map<Container, SimpleMeterRegistry> endlessMeters = new EnumMap<>(Container.class);
    private RawUpstream recording;
    private RawUpstream evil;

    @BeforeAll
    void start() throws Exception {
        recording = upstream(Behaviours.ok("fine"));
        evil = upstream(Behaviours.ok("you should not be here"));
        for (Container container : Container.values()) {
            Map<String, RawUpstream> ups = new LinkedHashMap<>();
            ups.put("hop", upstream(hopByHopResponse()));
            ups.put("busy", upstream(Behaviours.respond("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n"
                    + "Content-Type: text/plain\r\nContent-Length: 4\r\n\r\nbusy")));
            ups.put("get-retry", upstream(Behaviours.resetBeforeResponse(), Behaviours.ok("fine")));
            ups.put("post-once", upstream(Behaviours.resetBeforeResponse(), Behaviours.ok("fine")));
            ups.put("put-small", upstream(Behaviours.resetBeforeResponse(), Behaviours.echo()));
            ups.put("put-large", upstream(Behaviours.resetBeforeResponse(), Behaviours.echo()));
            ups.put("head", upstream(Behaviours.respond("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + "Content-Length: 1234\r\nETag: \"v1\"\r\n\r\n")));
            ups.put("location", upstream(null));
            ups.get("location").behaviour(redirectWithCookiesAndGzip(ups.get("location").port()));
            ups.put("network-path", upstream(null));
            String upstreamAuthority = "//127.0.0.1:" + ups.get("network-path").port();
            ups.get("network-path").behaviour(Behaviours.respond("HTTP/1.1 302 Found\r\nLocation: "
                    + upstreamAuthority + "/base/next?x=1\r\nContent-Location: " + upstreamAuthority
                    + "/elsewhere\r\nContent-Length: 0\r\n\r\n"));
            ups.put("endless", upstream(null));
            ups.put("upload", upstream(null));
            ups.put("big-download", upstream(generator(GIB)));
            ups.put("big-upload", upstream(countingSink()));
            upstreams.put(container, ups);

            Map<String, UpstreamProxyServlet> routes = new LinkedHashMap<>();
            routes.put("proxy", fast(UpstreamProxyServlet.builder(recording.baseUrl() + "/base")));
            routes.put("preserve", fast(UpstreamProxyServlet.builder(recording.baseUrl() + "/base")
                    .preserveHost(true)));
            for (String route : ups.keySet()) {
                routes.put(route, fast(UpstreamProxyServlet.builder(ups.get(route).baseUrl() + "/base")));
            }
            uploadMeters.put(container, new SimpleMeterRegistry());
            routes.put("upload", fast(UpstreamProxyServlet.builder(ups.get("upload").baseUrl() + "/base")
                    .meterRegistry(uploadMeters.get(container))));
            endlessMeters.put(container, new SimpleMeterRegistry());
            routes.put("endless", fast(UpstreamProxyServlet.builder(ups.get("endless").baseUrl() + "/base")
                    .meterRegistry(endlessMeters.get(container))));
            Container.Deployment deployment = new Container.Deployment();
            routes.forEach((route, servlet) -> deployment.servlet(route, servlet, "/" + route + "/*"));
            Map<String, String> params = new LinkedHashMap<>();
            params.put("upstream", recording.baseUrl() + "/base");
            params.put("upstream-name", "recording");
            params.put("proxy-name", "edge-1");
            params.put("retry.max-attempts", "1");
            params.put("max-buffered-request-body", "1KiB");
            deployment.servlet("configured", new UpstreamProxyServlet(), "/configured/*", params);
            Map<String, String> failing = new LinkedHashMap<>();
            failing.put("upstream", ClosedPort.find().baseUrl());
            failing.put("proxy-name", "edge 1");
            failing.put("expose-details", "true");
            failing.put("retry.enabled", "false");
            deployment.servlet("configured-failing", new UpstreamProxyServlet(), "/configured-failing/*", failing);
            servlets.put(container, routes);
            containers.put(container, container.start(deployment));
        }
    }

    private static UpstreamProxyServlet fast(UpstreamProxyServlet.Builder builder) {
        return builder.set("retry.initial-backoff", "1ms").set("retry.max-backoff", "2ms")
                .set("response-timeout", "20s").build();
    }

    @AfterAll
    void stop() throws Exception {
        containers.values().forEach(Container.Running::close);
        for (AutoCloseable c : closeables) {
            c.close();
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void hopByHopRequestHeadersAreDroppedAndForwardingHeadersAdded(Container container) throws Exception {
        int port = port(container);
        int before = recording.requestCount();
        RawClient.Response response = RawClient.send(port, "GET /gw/proxy/items?id=7 HTTP/1.1\r\n"
                + "Host: 127.0.0.1:" + port + "\r\n"
                + "Connection: X-Secret-Hop, close\r\n"
                + "X-Secret-Hop: must not pass\r\n"
                + "Keep-Alive: timeout=5\r\n"
                + "TE: trailers\r\n"
                + "Trailer: X-Checksum\r\n"
                + "Proxy-Connection: keep-alive\r\n"
                + "Proxy-Authorization: Basic c2VjcmV0\r\n"
                + "X-Forwarded-For: 203.0.113.9\r\n"
                + "X-Forwarded-Host: evil.example\r\n"
                + "Forwarded: for=203.0.113.9\r\n"
                + "Via: 1.1 earlier-proxy\r\n"
                + "X-End-To-End: kept\r\n"
                + "Cookie: a=1\r\n"
                + "\r\n", null);
        assertThat(response.status()).as("%s", response).isEqualTo(200);
        assertThat(response.bodyUtf8()).isEqualTo("fine");
        RawUpstream.Request seen = recording.requests().get(before);
        assertThat(seen.target()).isEqualTo("/base/items?id=7");
        assertThat(seen.headers().keySet()).doesNotContain("x-secret-hop", "keep-alive", "te", "trailer", "upgrade",
                "proxy-connection", "proxy-authorization", "transfer-encoding");
        assertThat(seen.headers().getOrDefault("connection", List.of())).noneMatch(v -> v.contains("X-Secret-Hop"));
        assertThat(seen.header("X-End-To-End")).isEqualTo("kept");
        assertThat(seen.header("Cookie")).isEqualTo("a=1");
        assertThat(seen.header("Host")).isEqualTo("127.0.0.1:" + recording.port());
        assertThat(seen.header("X-Forwarded-For")).isEqualTo("203.0.113.9, 127.0.0.1");
        assertThat(seen.header("X-Forwarded-Proto")).isEqualTo("http");
        assertThat(seen.headers().get("x-forwarded-host")).containsExactly("127.0.0.1:" + port);
        assertThat(seen.header("X-Forwarded-Port")).isEqualTo(Integer.toString(port));
        assertThat(seen.header("Forwarded"))
                .isEqualTo("for=203.0.113.9, for=127.0.0.1;proto=http;host=\"127.0.0.1:" + port + "\"");
        assertThat(seen.header("Via")).isEqualTo("1.1 earlier-proxy, 1.1 upstream-guard");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anUpgradeRequestHeaderNeverReachesTheUpstream(Container container) throws Exception {
        int port = port(container);
        int before = recording.requestCount();
        RawClient.Response response = RawClient.send(port, "GET /gw/proxy/upgrade HTTP/1.1\r\n"
                + "Host: 127.0.0.1:" + port + "\r\nUpgrade: example/1\r\nConnection: close\r\n\r\n", null);
        // Jetty refuses an Upgrade it cannot perform itself (400); Tomcat passes the request on.
        assertThat(response.status()).as("%s", response).isIn(200, 400);
        if (response.status() == 200) {
            assertThat(recording.requests().get(before).headers()).doesNotContainKey("upgrade");
        } else {
            assertThat(recording.requestCount()).isEqualTo(before);
        }
    }

    /**
     * Regression: a WebSocket handshake went upstream as a plain GET (its Upgrade dropped as hop-by-hop), and the
     * client got whatever the upstream made of that — here a 200 — instead of learning the gateway cannot tunnel.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aWebSocketHandshakeIsAnswered501WhileAnH2cUpgradeIsIgnored(Container container) throws Exception {
        int port = port(container);
        int before = recording.requestCount();
        RawClient.Response webSocket = RawClient.request(port, "GET", "/gw/proxy/socket", "Upgrade: WebSocket",
                "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13");
        assertThat(webSocket.status()).as("%s", webSocket).isEqualTo(501);
        assertThat(webSocket.bodyUtf8()).contains("This gateway cannot proxy WebSocket connections");
        assertThat(recording.requestCount()).isEqualTo(before);

        // An h2c upgrade (deprecated by RFC 9113 §3.1) may be ignored: the request simply goes on over HTTP/1.1.
        RawClient.Response h2c = RawClient.request(port, "GET", "/gw/proxy/h2c", "Upgrade: h2c",
                "Connection: Upgrade, HTTP2-Settings", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA");
        assertThat(h2c.status()).as("%s", h2c).isEqualTo(200);
        assertThat(recording.requests().get(before).headers()).doesNotContainKeys("upgrade", "http2-settings");
        // And an Upgrade in an HTTP/1.0 request must be ignored (RFC 9110 §7.8).
        RawClient.Response http10 = RawClient.send(port, "GET /gw/proxy/old HTTP/1.0\r\nUpgrade: websocket\r\n"
                + "Connection: Upgrade\r\n\r\n", null);
        assertThat(http10.status()).as("%s", http10).isEqualTo(200);
        assertThat(recording.requests().get(before + 1).headers()).doesNotContainKey("upgrade");
    }

    /**
     * Regression: {@code HTTP2-Settings} went upstream unless the client's {@code Connection} named it. It only ever
     * belongs to the connection its h2c upgrade asks about (RFC 7540 §3.2.1: a connection-specific field), and an
     * upstream that upgrades on it would take the client's settings for the gateway's.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anHttp2SettingsFieldNeverReachesTheUpstreamEvenWhenConnectionDoesNotNameIt(Container container)
            throws Exception {
        int port = port(container);
        int before = recording.requestCount();
        RawClient.Response h2c = RawClient.request(port, "GET", "/gw/proxy/h2c-unnamed", "Upgrade: h2c",
                "Connection: Upgrade", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA");
        assertThat(h2c.status()).as("%s", h2c).isEqualTo(200);
        assertThat(recording.requests().get(before).headers()).doesNotContainKeys("upgrade", "http2-settings");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void hopByHopResponseHeadersAreDroppedAndEndToEndOnesPassed(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/hop/x");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.bodyUtf8()).isEqualTo("hop");
        assertThat(response.headers().keySet()).doesNotContain("x-upstream-hop", "proxy-authenticate", "upgrade",
                "trailer", "proxy-connection");
        assertThat(response.headers("Keep-Alive")).doesNotContain("timeout=7, max=99");
        assertThat(response.headers("Connection")).noneMatch(v -> v.contains("X-Upstream-Hop"));
        assertThat(response.header("X-End-To-End")).isEqualTo("kept");
        assertThat(response.header("Via")).isEqualTo("1.0 origin-cache, 1.1 upstream-guard");
    }

    /**
     * Regression: HttpCore wrote the characters 0x80–0x9F of a field value as {@code ?}; containers hand the servlet a
     * field's bytes as such characters, so every UTF-8 character with such a byte ({@code ß}, {@code €}, most CJK)
     * reached the upstream broken. The client's bytes now pass as they came, in any order and repetition.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aUtf8RequestFieldValueReachesTheUpstreamByteForByte(Container container) throws Exception {
        String utf8 = new String("Straße 10 € 文".getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
        String latin1 = "caf\u00e9";
        int before = recording.requestCount();
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/proxy/names",
                "X-Address: " + utf8, "X-Name: " + latin1, "X-Address: second");
        assertThat(response.status()).isEqualTo(200);
        RawUpstream.Request seen = recording.requests().get(before);
        assertThat(seen.headers().get("x-address")).containsExactly(utf8, "second");
        assertThat(seen.header("X-Name")).isEqualTo(latin1);
    }

    /** Regression: a client that sent no {@code User-Agent} reached the upstream as {@code Apache-HttpClient/5.x}. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theUpstreamSeesTheClientsUserAgentOrNoneNeverTheGatewaysHttpClient(Container container) throws Exception {
        int before = recording.requestCount();
        assertThat(RawClient.request(port(container), "GET", "/gw/proxy/anonymous").status()).isEqualTo(200);
        assertThat(RawClient.request(port(container), "GET", "/gw/proxy/browser", "User-Agent: curl/8.5.0").status())
                .isEqualTo(200);
        assertThat(recording.requests().get(before).headers()).doesNotContainKey("user-agent");
        assertThat(recording.requests().get(before + 1).headers().get("user-agent")).containsExactly("curl/8.5.0");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theClientsHostIsSentUpstreamOnlyWhenPreserveHostIsOn(Container container) throws Exception {
        int port = port(container);
        int before = recording.requestCount();
        assertThat(RawClient.request(port, "GET", "/gw/preserve/a").status()).isEqualTo(200);
        assertThat(recording.requests().get(before).header("Host")).isEqualTo("127.0.0.1:" + port);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anUpstream503WithRetryAfterPassesThroughUnchanged(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/busy/x",
                "Accept: application/json");
        assertThat(response.status()).isEqualTo(503);
        assertThat(response.header("Retry-After")).isEqualTo("120");
        assertThat(response.bodyUtf8()).isEqualTo("busy");
        assertThat(response.header("Content-Type")).startsWith("text/plain");
        assertThat(response.header("Proxy-Status")).isNull();
        assertThat(upstreams.get(container).get("busy").requestCount()).isEqualTo(1);
        assertNothingLeased(container, "busy");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aHeadResponsePassesItsContentLengthWithoutABody(Container container) throws Exception {
        int port = port(container);
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            InputStream in = new BufferedInputStream(socket.getInputStream());
            out.write(RawClient.head(port, "HEAD", "/gw/head/doc").getBytes(StandardCharsets.ISO_8859_1));
            RawClient.Response head = RawClient.read(in, true);
            assertThat(head.status()).isEqualTo(200);
            assertThat(head.header("Content-Length")).isEqualTo("1234");
            assertThat(head.header("ETag")).isEqualTo("\"v1\"");
            assertThat(upstreams.get(container).get("head").requests().get(0).method()).isEqualTo("HEAD");
            // The connection is still in step: a second request on it gets its own response.
            out.write(RawClient.head(port, "GET", "/gw/proxy/after-head").getBytes(StandardCharsets.ISO_8859_1));
            RawClient.Response next = RawClient.read(in, false);
            assertThat(next.status()).isEqualTo(200);
            assertThat(next.bodyUtf8()).isEqualTo("fine");
        }
        assertNothingLeased(container, "head");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aGetIsRetriedAfterAResetButAPostIsDeliveredOnce(Container container) throws Exception {
        int port = port(container);
        RawClient.Response get = RawClient.request(port, "GET", "/gw/get-retry/x");
        assertThat(get.status()).isEqualTo(200);
        assertThat(get.bodyUtf8()).isEqualTo("fine");
        assertThat(upstreams.get(container).get("get-retry").requestCount()).isEqualTo(2);

        byte[] body = "order=1".getBytes(StandardCharsets.UTF_8);
        RawClient.Response post = RawClient.send(port, "POST /gw/post-once/orders HTTP/1.1\r\nHost: x\r\n"
                + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + body.length
                + "\r\nConnection: close\r\n\r\n", body);
        assertThat(post.status()).isEqualTo(502);
        assertThat(post.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_terminated");
        RawUpstream postUpstream = upstreams.get(container).get("post-once");
        assertThat(postUpstream.requestCount()).isEqualTo(1);
        assertThat(postUpstream.requests().get(0).bodyUtf8()).isEqualTo("order=1");
        assertNothingLeased(container, "get-retry");
        assertNothingLeased(container, "post-once");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aSmallBufferedBodyIsReplayedOnRetryButALargeStreamedOneIsNeverRetried(Container container)
            throws Exception {
        int port = port(container);
        byte[] small = pattern(10_000);
        RawClient.Response put = RawClient.send(port, "PUT /gw/put-small/doc HTTP/1.1\r\nHost: x\r\n"
                + "Content-Length: " + small.length + "\r\nConnection: close\r\n\r\n", small);
        assertThat(put.status()).isEqualTo(200);
        assertThat(put.body()).isEqualTo(small);
        assertThat(upstreams.get(container).get("put-small").requestCount()).isEqualTo(2);

        byte[] large = pattern(200_000);
        RawClient.Response putLarge = RawClient.send(port, "PUT /gw/put-large/doc HTTP/1.1\r\nHost: x\r\n"
                + "Content-Length: " + large.length + "\r\nConnection: close\r\n\r\n", large);
        assertThat(putLarge.status()).isEqualTo(502);
        assertThat(putLarge.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_terminated");
        RawUpstream largeUpstream = upstreams.get(container).get("put-large");
        assertThat(largeUpstream.requestCount()).isEqualTo(1);
        assertThat(largeUpstream.requests().get(0).body()).isEqualTo(large);
        assertNothingLeased(container, "put-small");
        assertNothingLeased(container, "put-large");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aChunkedRequestBodyIsForwardedWhole(Container container) throws Exception {
        int port = port(container);
        int before = recording.requestCount();
        RawClient.Response response = RawClient.send(port, "POST /gw/proxy/chunked HTTP/1.1\r\nHost: x\r\n"
                + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n", null);
        assertThat(response.status()).isEqualTo(200);
        assertThat(recording.requests().get(before).bodyUtf8()).isEqualTo("hello, world");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void locationIsRewrittenToTheGatewayWhileCookiesAndContentCodingsPassUntouched(Container container)
            throws Exception {
        int port = port(container);
        RawClient.Response response = RawClient.request(port, "GET", "/gw/location/start",
                "Accept-Encoding: gzip");
        assertThat(response.status()).isEqualTo(302);
        assertThat(response.header("Location")).isEqualTo("http://127.0.0.1:" + port + "/gw/location/next?x=1");
        assertThat(response.header("Content-Location")).isEqualTo("/gw/location/other");
        assertThat(response.headers("Set-Cookie")).containsExactly("a=1; Path=/; HttpOnly", "b=2; Path=/");
        assertThat(response.header("Content-Encoding")).isEqualTo("gzip");
        assertThat(response.body()).isEqualTo(GZIPPED_HELLO);
        RawUpstream upstream = upstreams.get(container).get("location");
        assertThat(upstream.requests().get(0).header("Accept-Encoding")).isEqualTo("gzip");
    }

    /**
     * Regression: a {@code Location} naming the upstream by a network-path reference ({@code //host:port/path}, RFC 3986
     * §4.2, which takes the scheme of the request it answers: the upstream's) was passed on as it came, sending the
     * client to the upstream's own address, past the gateway.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aLocationNamingTheUpstreamWithoutASchemeIsRewrittenToTheGateway(Container container) throws Exception {
        int port = port(container);
        RawClient.Response response = RawClient.request(port, "GET", "/gw/network-path/start");
        assertThat(response.status()).isEqualTo(302);
        assertThat(response.header("Location")).isEqualTo("http://127.0.0.1:" + port + "/gw/network-path/next?x=1");
        assertThat(response.header("Content-Location")).as("not under the base path: nothing here maps to it")
                .isEqualTo("//127.0.0.1:" + upstreams.get(container).get("network-path").port() + "/elsewhere");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void noRequestPathCanLeaveTheRouteOrReachAnotherHost(Container container) throws Exception {
        int port = port(container);
        String evilHost = "127.0.0.1:" + evil.port();
        List<String> attacks = List.of(
                "/gw/proxy/../secret",
                "/gw/proxy/../../secret",
                "/gw/proxy/a/../../secret",
                "/gw/proxy/%2e%2e/secret",
                "/gw/proxy/%2E%2E/%2e%2e/secret",
                "/gw/proxy/.%2e/secret",
                "/gw/proxy/..%2fsecret",
                "/gw/proxy/..%2Fsecret",
                "/gw/proxy/a%2F..%2F..%2Fsecret",
                "/gw/proxy/..%5csecret",
                "/gw/proxy/..;/secret",
                "/gw/proxy/a/..;/..;/secret",
                "/gw/proxy//" + evilHost + "/x",
                "/gw/proxy/%2F%2F" + evilHost + "/x",
                "/gw/proxy/@" + evilHost + "/x",
                "/gw/proxy/x@" + evilHost,
                "/gw/proxy/%252e%252e/secret",
                "http://" + evilHost + "/gw/proxy/x",
                "http://" + evilHost + "/gw/proxy/../../x",
                "/gw/proxy/x?next=http://" + evilHost + "/");
        for (String attack : attacks) {
            int before = recording.requestCount();
            RawClient.Response response = RawClient.send(port, "GET " + attack + " HTTP/1.1\r\nHost: " + evilHost
                    + "\r\nConnection: close\r\n\r\n", null);
            assertThat(response.status()).as("status for %s", attack).isIn(200, 400, 404);
            if (response.status() == 200) {
                assertThat(recording.requestCount()).as("requests after %s", attack).isEqualTo(before + 1);
                String target = recording.requests().get(before).target();
                String path = target.contains("?") ? target.substring(0, target.indexOf('?')) : target;
                String decoded = URLDecoder.decode(path.replace("+", "%2B"), StandardCharsets.UTF_8);
                assertThat(path).as("upstream target for %s", attack).startsWith("/base/");
                assertThat(decoded).as("decoded upstream path for %s", attack)
                        .doesNotContain("/../", "\\", "//").doesNotEndWith("/..");
                assertThat(path.toLowerCase(Locale.ROOT)).doesNotContain("%2f", "%5c");
                assertThat(recording.requests().get(before).header("Host"))
                        .isEqualTo("127.0.0.1:" + recording.port());
            } else {
                assertThat(recording.requestCount()).as("requests after %s", attack).isEqualTo(before);
            }
        }
        assertThat(evil.connectionCount()).isZero();
        // A path that climbs but stays within the route is normalized, not rejected.
        int before = recording.requestCount();
        assertThat(RawClient.request(port, "GET", "/gw/proxy/a/./b/../c").status()).isEqualTo(200);
        assertThat(recording.requests().get(before).target()).isEqualTo("/base/a/c");
    }

    /**
     * Regression: a query holding a raw byte that is not UTF-8 (RFC 9112 §3.2 allows no raw non-ASCII in a target),
     * which Tomcat answers 400, Jetty decoded to U+FFFD, and the gateway forwarded that as {@code %EF%BF%BD}: the
     * upstream got another query than the client sent. Such a query is answered 400 in both, and nothing goes upstream
     * (a path holding one already was: pinned).
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aTargetWithARawByteThatIsNotUtf8IsRejectedNotForwardedAltered(Container container) throws Exception {
        for (String target : List.of("/gw/proxy/a?name=caf\u00e9", "/gw/proxy/caf\u00e9")) {
            int before = recording.requestCount();
            RawClient.Response response = RawClient.request(port(container), "GET", target);
            assertThat(response.status()).as("%s: %s", target, response).isEqualTo(400);
            assertThat(recording.requestCount()).as(target).isEqualTo(before);
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void inAContainerThatLetsEncodedSeparatorsThroughTheServletItselfRejectsThem(Container container)
            throws Exception {
        List<String> attacks = List.of(
                "/gw/proxy/..%2fsecret",
                "/gw/proxy/a%2F..%2F..%2Fsecret",
                "/gw/proxy/%2F%2F127.0.0.1:" + evil.port() + "/x",
                "/gw/proxy/..%5csecret",
                "/gw/proxy/..%5C..%5Csecret");
        UpstreamProxyServlet servlet = fast(UpstreamProxyServlet.builder(recording.baseUrl() + "/base"));
        try (Container.Running permissive = container.start(new Container.Deployment().permissive()
                .servlet("proxy", servlet, "/proxy/*"))) {
            for (String attack : attacks) {
                int before = recording.requestCount();
                RawClient.Response response = RawClient.request(permissive.port(), "GET", attack);
                assertThat(response.status()).as("status for %s", attack).isEqualTo(400);
                assertThat(response.bodyUtf8()).as("rejected by the servlet: %s", attack)
                        .contains("The request path leaves the route or hides a path separator");
                assertThat(recording.requestCount()).as("requests after %s", attack).isEqualTo(before);
            }
            int before = recording.requestCount();
            assertThat(RawClient.request(permissive.port(), "GET", "/gw/proxy/a/b/../c").status()).isEqualTo(200);
            assertThat(recording.requests().get(before).target()).isEqualTo("/base/a/c");
        }
        assertThat(evil.connectionCount()).isZero();
    }

    /**
     * Regression: a route whose upstream leads back to the gateway forwarded the request round and round, a hundred
     * hops, until its Via outgrew the container's head limit, and the client got that container's 400 or 431.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aRouteThatLeadsBackToTheGatewayIsAnswered500LoopDetectedAfterAFewHops(Container container) throws Exception {
        AtomicInteger gatewayPort = new AtomicInteger();
        // The upstream is a TCP relay back to the gateway, as a load balancer in front of it would be.
        try (RawUpstream relay = RawUpstream.start(c -> relay(c, gatewayPort.get()))) {
            UpstreamProxyServlet loop = fast(UpstreamProxyServlet.builder(relay.baseUrl() + "/gw/loop"));
            try (Container.Running gateway = container.start(new Container.Deployment()
                    .servlet("loop", loop, "/loop/*"))) {
                gatewayPort.set(gateway.port());
                RawClient.Response response = RawClient.request(gateway.port(), "GET", "/gw/loop/x",
                        "Accept: application/json");
                assertThat(response.status()).as("%s", response).isEqualTo(500);
                assertThat(response.header("Proxy-Status")).isEqualTo("upstream-guard; error=proxy_loop_detected");
                assertThat(response.bodyUtf8()).contains("\"fault\":\"proxy_loop_detected\"");
                assertThat(relay.connectionCount()).as("hops").isEqualTo(5);
            }
        }
        // Gateways of one name in a chain are no loop.
        int before = recording.requestCount();
        assertThat(RawClient.request(port(container), "GET", "/gw/proxy/chained",
                "Via: 1.1 upstream-guard, 1.0 upstream-guard (Upstream-Guard/1), HTTP/1.1 UPSTREAM-GUARD").status())
                .isEqualTo(200);
        assertThat(recording.requests().get(before).header("Via")).isEqualTo(
                "1.1 upstream-guard, 1.0 upstream-guard (Upstream-Guard/1), HTTP/1.1 UPSTREAM-GUARD, 1.1 upstream-guard");
    }

    /** Pipes one connection to {@code port} on the loopback and back, byte for byte, until either side closes. */
    private static void relay(RawUpstream.Connection c, int port) throws IOException {
        try (Socket next = new Socket(InetAddress.getLoopbackAddress(), port)) {
            OutputStream toNext = next.getOutputStream();
            Thread forward = new Thread(() -> pipe(c.in(), toNext), "relay");
            forward.setDaemon(true);
            forward.start();
            pipe(next.getInputStream(), c.socket().getOutputStream());
        }
    }

    private static void pipe(InputStream in, OutputStream out) {
        byte[] buffer = new byte[8192];
        try {
            for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                out.write(buffer, 0, n);
                out.flush();
            }
        } catch (IOException closed) {
            // Either side closed: the relay ends.
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientHangingUpMidResponseCancelsTheUpstreamExchange(Container container) throws Exception {
        CountDownLatch upstreamCut = new CountDownLatch(1);
        AtomicLong sent = new AtomicLong();
        upstreams.get(container).get("endless").behaviour(c -> {
            if (c.readRequest() == null) {
                return;
            }
            c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
            byte[] data = chunk(16 * 1024);
            byte[] chunkHead = "4000\r\n".getBytes(StandardCharsets.ISO_8859_1);
            byte[] chunk = new byte[chunkHead.length + data.length + 2];
            System.arraycopy(chunkHead, 0, chunk, 0, chunkHead.length);
            System.arraycopy(data, 0, chunk, chunkHead.length, data.length);
            chunk[chunk.length - 2] = '\r';
            chunk[chunk.length - 1] = '\n';
            try {
                for (;;) {
                    c.write(chunk);
                    sent.addAndGet(16 * 1024);
                }
            } catch (IOException cut) {
                upstreamCut.countDown();
            }
        });
        int port = port(container);
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            socket.getOutputStream().write(RawClient.head(port, "GET", "/gw/endless/stream")
                    .getBytes(StandardCharsets.ISO_8859_1));
            InputStream in = socket.getInputStream();
            byte[] buffer = new byte[64 * 1024];
            long read = 0;
            while (read < 1024 * 1024) {
                int n = in.read(buffer);
                assertThat(n).isPositive();
                read += n;
            }
            socket.setSoLinger(true, 0);
        }
        assertThat(upstreamCut.await(15, TimeUnit.SECONDS))
                .as("the upstream connection is closed, not drained (sent %d bytes)", sent.get()).isTrue();
        assertNothingLeased(container, "endless");
        assertRecordedAsCancelled(container, "endless", endlessMeters.get(container));
    }

    /** A client walking away says nothing about the upstream's health: no fault, no breaker failure, no success. */
    private void assertRecordedAsCancelled(Container container, String route, SimpleMeterRegistry meters) {
        UpstreamProxyServlet servlet = servlets.get(container).get(route);
        var upstream = servlet.client().upstream(servlet.upstreamName());
        // The upstream sees the cut before the servlet thread has finished the call.
        Await.until("the call is on record", SETTLE, () -> !meters.find("upstream.guard.calls").timers().isEmpty());
        assertThat(meters.find("upstream.guard.calls").timers()).singleElement()
                .satisfies(t -> assertThat(t.getId().getTag("outcome")).isEqualTo("cancelled"));
        assertThat(upstream.faultCounts()).isEmpty();
        assertThat(upstream.circuitBreaker().orElseThrow().getMetrics().getNumberOfFailedCalls()).isZero();
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientHangingUpMidRequestCancelsTheUpstreamExchange(Container container) throws Exception {
        CountDownLatch upstreamCut = new CountDownLatch(1);
        AtomicLong received = new AtomicLong();
        upstreams.get(container).get("upload").behaviour(c -> {
            readHead(c.in());
            byte[] buffer = new byte[64 * 1024];
            try {
                for (int n = c.in().read(buffer); n >= 0; n = c.in().read(buffer)) {
                    received.addAndGet(n);
                }
            } catch (IOException cut) {
                // Reset by the proxy: as good as EOF here.
            }
            upstreamCut.countDown();
        });
        int port = port(container);
        long announced = 100L * 1024 * 1024;
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            OutputStream out = socket.getOutputStream();
            out.write(("POST /gw/upload/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                    + "Content-Length: " + announced + "\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
            out.write(pattern(1024 * 1024));
            out.flush();
            Await.until("the upstream receives the start of the body", SETTLE, () -> received.get() > 256 * 1024);
            socket.setSoLinger(true, 0);
        }
        assertThat(upstreamCut.await(15, TimeUnit.SECONDS)).as("the upstream connection is closed").isTrue();
        assertThat(received.get()).isLessThan(announced);
        assertNothingLeased(container, "upload");
        assertRecordedAsCancelled(container, "upload", uploadMeters.get(container));
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aOneGibibyteResponseStreamsThroughASmallHeap(Container container) throws Exception {
        int port = port(container);
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            socket.getOutputStream().write(RawClient.head(port, "GET", "/gw/big-download/file")
                    .getBytes(StandardCharsets.ISO_8859_1));
            InputStream in = new BufferedInputStream(socket.getInputStream(), 64 * 1024);
            assertThat(RawClient.line(in)).startsWith("HTTP/1.1 200");
            long length = -1;
            for (String line = RawClient.line(in); !line.isEmpty(); line = RawClient.line(in)) {
                if (line.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
                    length = Long.parseLong(line.substring(15).trim());
                }
            }
            assertThat(length).isEqualTo(GIB);
            assertThat(countAndCheckPattern(in, GIB)).isEqualTo(GIB);
        }
        assertThat(Runtime.getRuntime().maxMemory()).as("the heap is far smaller than the body").isLessThan(GIB / 2);
        assertNothingLeased(container, "big-download");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aOneGibibyteRequestBodyStreamsThroughASmallHeap(Container container) throws Exception {
        int port = port(container);
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(("PUT /gw/big-upload/file HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                    + "Content-Length: " + GIB + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1));
            byte[] block = chunk(64 * 1024);
            for (long sent = 0; sent < GIB; sent += block.length) {
                out.write(block);
            }
            out.flush();
            RawClient.Response response = RawClient.read(new BufferedInputStream(socket.getInputStream()), false);
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.bodyUtf8()).isEqualTo(Long.toString(GIB));
        }
        assertThat(upstreams.get(container).get("big-upload").connectionCount()).isEqualTo(1);
        assertNothingLeased(container, "big-upload");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aServletConfiguredByInitParamsProxiesAndAnswersFaultsWithItsOwnSettings(Container container)
            throws Exception {
        int port = port(container);
        int before = recording.requestCount();
        RawClient.Response ok = RawClient.request(port, "GET", "/gw/configured/hello");
        assertThat(ok.status()).isEqualTo(200);
        assertThat(ok.header("Via")).isEqualTo("1.1 edge-1");
        assertThat(recording.requests().get(before).target()).isEqualTo("/base/hello");

        RawClient.Response fault = RawClient.request(port, "GET", "/gw/configured-failing/x",
                "Accept: application/json");
        assertThat(fault.status()).isEqualTo(502);
        assertThat(fault.header("Proxy-Status"))
                .startsWith("\"edge 1\"; error=connection_refused; next-hop=\"127.0.0.1:")
                .contains("; details=\"Upstream 'configured-failing' failed: connection_refused");
        assertThat(fault.bodyUtf8()).contains("\"upstream\":\"configured-failing\"");
    }

    private void assertNothingLeased(Container container, String route) {
        UpstreamProxyServlet servlet = servlets.get(container).get(route);
        Await.until("no connection of '" + route + "' is leased", SETTLE,
                () -> servlet.client().poolStats().getLeased() == 0, () -> "" + servlet.client().poolStats());
    }

    private int port(Container container) {
        return containers.get(container).port();
    }

    private RawUpstream upstream(RawUpstream.Behaviour first, RawUpstream.Behaviour... then) throws IOException {
        RawUpstream upstream = first == null ? RawUpstream.start(c -> { }) : RawUpstream.start(first, then);
        closeables.add(upstream);
        return upstream;
    }

    private static RawUpstream.Behaviour hopByHopResponse() {
        return Behaviours.respond("HTTP/1.1 200 OK\r\n"
                + "Connection: X-Upstream-Hop\r\n"
                + "X-Upstream-Hop: must not pass\r\n"
                + "Keep-Alive: timeout=7, max=99\r\n"
                + "Proxy-Authenticate: Basic realm=\"upstream\"\r\n"
                + "Proxy-Connection: keep-alive\r\n"
                + "Upgrade: h2c\r\n"
                + "Trailer: X-Checksum\r\n"
                + "Via: 1.0 origin-cache\r\n"
                + "X-End-To-End: kept\r\n"
                + "Content-Type: text/plain\r\n"
                + "Content-Length: 3\r\n\r\nhop");
    }

    private static RawUpstream.Behaviour redirectWithCookiesAndGzip(int upstreamPort) {
        byte[] head = ("HTTP/1.1 302 Found\r\n"
                + "Location: http://127.0.0.1:" + upstreamPort + "/base/next?x=1\r\n"
                + "Content-Location: /base/other\r\n"
                + "Set-Cookie: a=1; Path=/; HttpOnly\r\n"
                + "Set-Cookie: b=2; Path=/\r\n"
                + "Content-Type: text/plain\r\n"
                + "Content-Encoding: gzip\r\n"
                + "Content-Length: " + GZIPPED_HELLO.length + "\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1);
        byte[] all = Arrays.copyOf(head, head.length + GZIPPED_HELLO.length);
        System.arraycopy(GZIPPED_HELLO, 0, all, head.length, GZIPPED_HELLO.length);
        return Behaviours.respond(all);
    }

    /** Sends {@code length} bytes of the {@link #chunk} pattern. */
    private static RawUpstream.Behaviour generator(long length) {
        return c -> {
            if (c.readRequest() == null) {
                return;
            }
            c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + length
                    + "\r\n\r\n");
            byte[] block = chunk(64 * 1024);
            OutputStream out = c.socket().getOutputStream();
            for (long sent = 0; sent < length; sent += block.length) {
                out.write(block);
            }
            out.flush();
        };
    }

    /** Reads a request head, counts and checks its body without keeping it, answers with the count. */
    private static RawUpstream.Behaviour countingSink() {
        return c -> {
            long length = readHead(c.in());
            long count = countAndCheckPattern(c.in(), length);
            byte[] body = Long.toString(count).getBytes(StandardCharsets.ISO_8859_1);
            c.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + body.length + "\r\n\r\n"
                    + new String(body, StandardCharsets.ISO_8859_1));
        };
    }

    /** Reads a request head; returns its Content-Length, or -1. */
    private static long readHead(InputStream in) throws IOException {
        long length = -1;
        RawClient.line(in);
        for (String line = RawClient.line(in); line != null && !line.isEmpty(); line = RawClient.line(in)) {
            if (line.toLowerCase(Locale.ROOT).startsWith("content-length:")) {
                length = Long.parseLong(line.substring(15).trim());
            }
        }
        return length;
    }

    /** Reads {@code length} bytes, checking each is {@code position & 0xFF}; returns how many matched. */
    private static long countAndCheckPattern(InputStream in, long length) throws IOException {
        byte[] buffer = new byte[64 * 1024];
        long position = 0;
        while (position < length) {
            int n = in.read(buffer, 0, (int) Math.min(buffer.length, length - position));
            if (n < 0) {
                break;
            }
            for (int i = 0; i < n; i++) {
                if (buffer[i] != (byte) (position + i)) {
                    return position + i;
                }
            }
            position += n;
        }
        return position;
    }

    /** {@code size} bytes (a multiple of 256) of the repeating pattern 0, 1, …, 255. */
    private static byte[] chunk(int size) {
        byte[] b = new byte[size];
        for (int i = 0; i < size; i++) {
            b[i] = (byte) i;
        }
        return b;
    }

    private static byte[] pattern(int size) {
        return chunk(size);
    }

    private static byte[] gzip(String text) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(bytes)) {
            gz.write(text.getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return bytes.toByteArray();
    }
}
