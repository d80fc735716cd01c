package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import jakarta.servlet.DispatcherType;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The proxy servlet when the request body cannot be read as announced: taken by a filter ahead of the servlet, or a
 * client that stalls or hangs up mid-upload. Never an empty 200 for a request that did not reach the upstream.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletRequestBodyTest {

    /** Short, so that a stalled upload times out quickly; generous next to a loopback round trip. */
    private static final Duration IDLE_TIMEOUT = Duration.ofSeconds(1);
    private static final String FORM = "name=widget&count=3";

    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, RawUpstream> upstreams = new EnumMap<>(Container.class);
    private final Map<Container, RawUpstream> refusingUpstreams = new EnumMap<>(Container.class);
    private final Map<Container, RawUpstream> continuingUpstreams = new EnumMap<>(Container.class);
    private final Map<Container, List<Boolean>> expectations = new java.util.concurrent.ConcurrentHashMap<>();

    @BeforeAll
    void start() throws IOException {
        for (Container container : Container.values()) {
            RawUpstream echo = RawUpstream.start(Behaviours.echo());
            upstreams.put(container, echo);
            Container.Deployment d = new Container.Deployment().idleTimeout(IDLE_TIMEOUT);
            d.filter("parameters", (req, res, chain) -> {
                req.getParameter("name"); // as a logging or CSRF filter would
                chain.doFilter(req, res);
            }, "/parameters/*", Map.of(), EnumSet.of(DispatcherType.REQUEST));
            d.filter("reader", (req, res, chain) -> {
                req.getInputStream().readAllBytes(); // as a request-logging filter would
                chain.doFilter(req, res);
            }, "/reader/*", Map.of(), EnumSet.of(DispatcherType.REQUEST));
            d.filter("peek", (req, res, chain) -> {
                req.getInputStream().readNBytes(10);
                chain.doFilter(req, res);
            }, "/peek/*", Map.of(), EnumSet.of(DispatcherType.REQUEST));
            RawUpstream refusing = RawUpstream.start(c -> {
                // Looks at the head only, as a server checking the size or credentials first: no 100, no body read.
                if (c.skipHead()) {
                    c.write("HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n"
                            + "Connection: close\r\n\r\ntoo big!");
                }
            });
            refusingUpstreams.put(container, refusing);
            d.servlet("refusing", UpstreamProxyServlet.builder(refusing.baseUrl()).meterRegistry(null).build(),
                    "/refusing/*");
            RawUpstream continuing = RawUpstream.start(c -> {
                // What servers do for a request that expects 100-continue: say so, then read the body.
                for (;;) {
                    java.io.ByteArrayOutputStream head = new java.io.ByteArrayOutputStream();
                    for (int nl = 0; nl < 2;) {
                        int b = c.in().read();
                        if (b < 0) {
                            return;
                        }
                        head.write(b);
                        nl = b == '\n' ? nl + 1 : b == '\r' ? nl : 0;
                    }
                    String h = head.toString(StandardCharsets.ISO_8859_1).toLowerCase(java.util.Locale.ROOT);
                    expectations.computeIfAbsent(container, k -> new java.util.concurrent.CopyOnWriteArrayList<>())
                            .add(h.contains("\r\nexpect: 100-continue\r\n"));
                    if (h.contains("\r\nexpect: 100-continue\r\n")) {
                        c.write("HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    int at = h.indexOf("content-length:");
                    int length = Integer.parseInt(h.substring(at + 15, h.indexOf('\r', at)).trim());
                    byte[] body = c.in().readNBytes(length);
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: " + body.length + "\r\n\r\n");
                    c.write(body);
                }
            });
            continuingUpstreams.put(container, continuing);
            d.servlet("continuing", UpstreamProxyServlet.builder(continuing.baseUrl()).meterRegistry(null).build(),
                    "/continuing/*");
            for (String route : new String[] {"parameters", "reader", "peek", "direct"}) {
                d.servlet(route, UpstreamProxyServlet.builder(echo.baseUrl()).meterRegistry(null).build(),
                        "/" + route + "/*");
            }
            containers.put(container, container.start(d));
        }
    }

    @AfterAll
    void stop() {
        containers.values().forEach(Container.Running::close);
        upstreams.values().forEach(RawUpstream::close);
        refusingUpstreams.values().forEach(RawUpstream::close);
        continuingUpstreams.values().forEach(RawUpstream::close);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFormBodyAFilterReadWithGetParameterIsAnswered500ProxyConfigurationErrorNotAnEmpty200(Container container)
            throws Exception {
        RawClient.Response response = post(container, "/gw/parameters/orders", FORM,
                "Content-Type: application/x-www-form-urlencoded", "Content-Length: " + FORM.length());
        assertBodyTaken(container, response);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aBodyAFilterReadIsAnswered500ProxyConfigurationErrorWhateverItsFraming(Container container) throws Exception {
        assertBodyTaken(container, post(container, "/gw/reader/orders", "hello",
                "Content-Type: text/plain", "Content-Length: 5"));
        assertBodyTaken(container, post(container, "/gw/reader/orders", "5\r\nhello\r\n0\r\n\r\n",
                "Content-Type: text/plain", "Transfer-Encoding: chunked"));
        String large = "x".repeat(100_000); // over the buffered limit: would stream
        assertBodyTaken(container, post(container, "/gw/reader/orders", large,
                "Content-Type: text/plain", "Content-Length: " + large.length()));
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aLargeBodyAFilterPartlyReadIsAnswered500ProxyConfigurationErrorRatherThanSentShort(Container container)
            throws Exception {
        String large = "x".repeat(100_000);
        RawClient.Response response = post(container, "/gw/peek/orders", large,
                "Content-Type: text/plain", "Content-Length: " + large.length());
        assertThat(response.status()).as("%s", response).isEqualTo(500);
        assertThat(response.header("Proxy-Status")).isEqualTo("upstream-guard; error=proxy_configuration_error");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anEmptyChunkedBodyNobodyReadIsStillForwarded(Container container) throws Exception {
        RawClient.Response response = post(container, "/gw/direct/orders", "0\r\n\r\n",
                "Content-Type: text/plain", "Transfer-Encoding: chunked");
        assertThat(response.status()).as("%s", response).isEqualTo(200);
        assertThat(response.body()).isEmpty();
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientThatStallsMidUploadIsAnswered408BeforeAnythingIsForwarded(Container container) throws Exception {
        int before = upstreams.get(container).requestCount();
        assertRequestTimeout(stall(container, "Content-Length: 100", "only ten.."));
        assertRequestTimeout(stall(container, "Transfer-Encoding: chunked", "5\r\nhello\r\n"));
        assertThat(upstreams.get(container).requestCount()).as("buffered bodies are never forwarded")
                .isEqualTo(before);
        // A large body streams: the upstream may have seen the head; the exchange is cancelled, the client gets 408.
        assertRequestTimeout(stall(container, "Content-Length: 100000", "x".repeat(1000)));
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientThatSendsLessThanItsContentLengthAndClosesGetsNoSuccessAndNothingIsForwarded(Container container)
            throws Exception {
        int before = upstreams.get(container).requestCount();
        int port = containers.get(container).port();
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write((RawClient.head(port, "POST", "/gw/direct/orders", "Content-Type: text/plain",
                    "Content-Length: 100") + "only ten..").getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            socket.shutdownOutput();
            RawClient.Response response = RawClient.read(new BufferedInputStream(socket.getInputStream()), false);
            assertThat(response.status()).as("%s", response).isGreaterThanOrEqualTo(400);
        }
        assertThat(upstreams.get(container).requestCount()).isEqualTo(before);
    }

    /**
     * Regression: Jetty hands the servlet a body whose transfer codings it did not undo ({@code gzip, chunked}: only the
     * chunks taken off), and the gateway sent those gzip bytes upstream as the plain content, the coding dropped with
     * the hop-by-hop {@code Transfer-Encoding}. A transfer coding the gateway cannot decode is answered 501 (RFC 9112
     * §6.1), as Tomcat does itself, and nothing reaches the upstream.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aRequestBodyInATransferCodingOtherThanChunkedIsAnswered501AndNeverForwarded(Container container)
            throws Exception {
        int before = upstreams.get(container).requestCount();
        RawClient.Response response = post(container, "/gw/direct/x", "5\r\nhello\r\n0\r\n\r\n",
                "Transfer-Encoding: gzip, chunked");
        assertThat(response.status()).as("%s", response).isEqualTo(501);
        assertThat(response.header("Proxy-Status")).isNull();
        assertThat(upstreams.get(container).requestCount()).isEqualTo(before);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aMalformedChunkedBodyIsAnswered400WithoutAStackTraceAndNeverReachesTheUpstreamWhole(Container container)
            throws Exception {
        int before = upstreams.get(container).requestCount();
        String small = "5\r\nhello\r\nZZ\r\nxx\r\n0\r\n\r\n";
        // A large first chunk streams: the upstream may see the head, never a terminating chunk.
        String streamed = "40000\r\n" + "x".repeat(0x40000) + "\r\nZZ\r\n0\r\n\r\n";
        for (String body : new String[] {small, streamed}) {
            RawClient.Response response = post(container, "/gw/direct/orders", body, "Content-Type: text/plain",
                    "Transfer-Encoding: chunked");
            assertThat(response.status()).as("%s", response).isEqualTo(400);
            assertThat(response.header("Proxy-Status")).as("the client's fault, not the upstream's").isNull();
            // Tomcat renders its own error page over the answer once a read has failed; without the servlet
            // rethrowing, it has no exception to show.
            assertThat(response.bodyUtf8()).doesNotContain("Exception").doesNotContain("UpstreamProxyServlet");
        }
        assertThat(upstreams.get(container).requestCount()).as("the buffered body is never forwarded")
                .isEqualTo(before);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientWaitingFor100ContinueIsAskedForItsBodyWhichGoesUpstreamWithoutTheExpectation(Container container)
            throws Exception {
        int port = containers.get(container).port();
        for (int size : new int[] {10, 60_000}) { // buffered (a larger body streams: see the test below)
            byte[] body = "0123456789".repeat(size / 10).getBytes(StandardCharsets.ISO_8859_1);
            int before = upstreams.get(container).requestCount();
            try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
                socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
                OutputStream out = socket.getOutputStream();
                out.write(RawClient.head(port, "POST", "/gw/direct/upload", "Content-Type: application/octet-stream",
                        "Content-Length: " + size, "Expect: 100-continue").getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                BufferedInputStream in = new BufferedInputStream(socket.getInputStream());
                // A strict client sends nothing more until it is told to continue.
                assertThat(RawClient.line(in)).as("size %d", size).startsWith("HTTP/1.1 100");
                assertThat(RawClient.line(in)).isEmpty();
                out.write(body);
                out.flush();
                RawClient.Response response = RawClient.read(in, false);
                assertThat(response.status()).as("%s", response).isEqualTo(200);
                assertThat(response.body()).isEqualTo(body);
            }
            RawUpstream.Request forwarded = upstreams.get(container).requests().get(before);
            // Expect is this hop's for a body it buffers: the body is already here, so the upstream is not asked to wait.
            assertThat(forwarded.header("Expect")).isNull();
            assertThat(forwarded.body()).hasSize(size);
        }
    }

    /**
     * Both Content-Length and Transfer-Encoding is how requests are smuggled past a hop that reads the other framing
     * (RFC 9112 §6.3, §11.2). Jetty refuses it with 400; Tomcat removes the Content-Length before the servlet sees it,
     * frames the body by its chunks and closes the connection after answering, as §6.3 asks of an intermediary that
     * forwards such a message. Either way, what follows the chunks is never taken for a second request.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aRequestFramedByBothContentLengthAndChunksNeverSmugglesASecondRequestUpstream(Container container)
            throws Exception {
        RawUpstream upstream = upstreams.get(container);
        int before = upstream.requestCount();
        int port = containers.get(container).port();
        String smuggled = "GET /gw/direct/smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
        for (String framing : new String[] {"Content-Length: 5\r\nTransfer-Encoding: chunked",
                "Transfer-Encoding: chunked\r\nContent-Length: 5"}) {
            try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
                socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
                OutputStream out = socket.getOutputStream();
                out.write(("POST /gw/direct/orders HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n" + framing
                        + "\r\n\r\n0\r\n\r\n" + smuggled).getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                BufferedInputStream in = new BufferedInputStream(socket.getInputStream());
                RawClient.Response response = RawClient.read(in, false);
                assertThat(response.status()).as("%s: %s", framing, response)
                        .isEqualTo(container == Container.JETTY ? 400 : 200);
                assertThat(response.header("Proxy-Status")).isNull();
                assertThat(response.header("Connection")).isEqualTo("close");
                assertThat(in.read()).as("no answer to the smuggled request").isEqualTo(-1);
            }
        }
        assertThat(upstream.requests().subList(before, upstream.requestCount()))
                .allSatisfy(r -> {
                    assertThat(r.target()).isEqualTo("/orders");
                    assertThat(r.headers().get("content-length")).containsExactly("0");
                    assertThat(r.headers()).doesNotContainKey("transfer-encoding");
                });
    }

    /**
     * Regression: a client that announced a large body and waited for 100 (Continue) was told to go on as soon as the
     * gateway began to stream, so it uploaded its body to an upstream that had already refused it by its head (413,
     * 401). RFC 9110 §10.1.1: a proxy forwards the request head toward the origin; the upstream then decides. A body
     * too large to buffer now goes upstream with the expectation, and the client hears 100 only when the upstream
     * asks for the body, or its final answer with no upload at all (in Jetty, and in Tomcat configured with
     * {@code continueResponseTiming="onRead"}; Tomcat's default says 100 itself before any servlet runs).
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientExpecting100ContinueUploadsNothingWhenTheUpstreamRefusesByTheHead(Container container)
            throws Exception {
        int port = containers.get(container).port();
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(RawClient.head(port, "PUT", "/gw/refusing/video", "Content-Type: application/octet-stream",
                    "Content-Length: 10000000", "Expect: 100-continue").getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            BufferedInputStream in = new BufferedInputStream(socket.getInputStream());
            if (container == Container.TOMCAT) {
                // Tomcat's default continueResponseTiming="immediately" says 100 before any servlet runs;
                // "onRead" leaves it to the upstream as Jetty does. Either way nothing is forwarded of the body.
                assertThat(RawClient.line(in)).startsWith("HTTP/1.1 100");
                assertThat(RawClient.line(in)).isEmpty();
            }
            assertThat(RawClient.line(in)).as("the upstream's answer, not a 100").startsWith("HTTP/1.1 413");
        }

        // An upstream that asks for the body gets it, and so does the client's 100.
        byte[] body = "0123456789".repeat(10_000).getBytes(StandardCharsets.ISO_8859_1);
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(RawClient.head(port, "PUT", "/gw/continuing/video", "Content-Type: application/octet-stream",
                    "Content-Length: " + body.length, "Expect: 100-continue").getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            BufferedInputStream in = new BufferedInputStream(socket.getInputStream());
            assertThat(RawClient.line(in)).startsWith("HTTP/1.1 100");
            assertThat(RawClient.line(in)).isEmpty();
            out.write(body);
            out.flush();
            RawClient.Response response = RawClient.read(in, false);
            assertThat(response.status()).as("%s", response).isEqualTo(200);
            assertThat(response.body()).isEqualTo(body);
        }
        assertThat(expectations.get(container)).containsExactly(true);
    }

    /**
     * Regression: a client uploading a streamed body in parts, each in time for the container, yet all of them slower
     * than the upstream's total-timeout, was answered 504 with {@code Proxy-Status: http_response_timeout}, naming the
     * upstream for the client's pace (the guarded client already kept the call off the upstream's record). It is a
     * 408 now, like a client that stalls, and the upstream never receives the body as if it were whole.
     *
     * <p>Regression, a body small enough to be buffered (below {@code max-buffered-request-body}): it is read before the
     * call begins, so no deadline bounded it, and a client trickling it held a container thread as long as each part
     * came within the container's idle timeout. It gets the same 408 at total-timeout; no call began.
     */
    @ParameterizedTest(name = "[{0}] {1}-byte parts")
    @MethodSource("containersAndPartSizes")
    void anUploadSlowerThanTheTotalTimeoutIsAnswered408NotA504NamingTheUpstream(Container container, int partSize)
            throws Exception {
        boolean streamed = partSize * 4L > 64 * 1024;
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        UpstreamProxyServlet servlet = UpstreamProxyServlet.builder(upstreams.get(container).baseUrl())
                .meterRegistry(meters).upstreamName("slow-client").set("total-timeout", "1s").build();
        int before = upstreams.get(container).requestCount();
        // Parts 600 ms apart: far inside the container's idle timeout, together past the deadline.
        try (Container.Running running = container.start(new Container.Deployment()
                .idleTimeout(Duration.ofSeconds(20)).servlet("slow", servlet, "/slow/*"))) {
            int port = running.port();
            try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
                socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
                OutputStream out = socket.getOutputStream();
                out.write(RawClient.head(port, "PUT", "/gw/slow/file", "Content-Type: application/octet-stream",
                        "Content-Length: " + partSize * 4).getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                Thread sender = new Thread(() -> {
                    try {
                        for (int part = 0; part < 4; part++) {
                            out.write(new byte[partSize]);
                            out.flush();
                            LockSupport.parkNanos(Duration.ofMillis(600).toNanos());
                        }
                    } catch (IOException closed) {
                        // The gateway closes once it has answered: the rest of the body is not wanted.
                    }
                }, "slow-uploader");
                sender.setDaemon(true);
                sender.start();
                RawClient.Response response = RawClient.read(new BufferedInputStream(socket.getInputStream()), false);
                assertRequestTimeout(response);
                assertThat(response.header("Proxy-Status")).isNull();
            }
            if (streamed) {
                Await.until("the call is on record", Duration.ofSeconds(15),
                        () -> !meters.find("upstream.guard.calls").timers().isEmpty());
                assertThat(meters.find("upstream.guard.calls").timers()).singleElement()
                        .satisfies(t -> assertThat(t.getId().getTag("outcome")).isEqualTo("cancelled"));
            } else {
                assertThat(meters.find("upstream.guard.calls").timers()).as("no call began").isEmpty();
            }
            assertThat(servlet.client().upstream("slow-client").faultCounts()).isEmpty();
            // The README's promise: an answer to the client's own request is no generated fault response.
            assertThat(meters.find("upstream.guard.responses").counters()).isEmpty();
        }
        assertThat(upstreams.get(container).requestCount()).as("no body reached the upstream as whole")
                .isEqualTo(before);
    }

    static Stream<Arguments> containersAndPartSizes() {
        return Stream.of(Container.values()).flatMap(c -> Stream.of(Arguments.of(c, 100_000), Arguments.of(c, 10_000)));
    }

    private void assertBodyTaken(Container container, RawClient.Response response) {
        assertThat(response.status()).as("%s", response).isEqualTo(500);
        assertThat(response.complete()).isTrue();
        assertThat(response.header("Proxy-Status")).isEqualTo("upstream-guard; error=proxy_configuration_error");
        assertThat(response.header("Cache-Control")).isEqualTo("no-store");
        assertThat(response.bodyUtf8()).contains("proxy_configuration_error").doesNotContain("Exception");
    }

    private RawClient.Response post(Container container, String path, String body, String... headers)
            throws IOException {
        int port = containers.get(container).port();
        return RawClient.send(port, RawClient.head(port, "POST", path, headers),
                body.getBytes(StandardCharsets.ISO_8859_1));
    }

    /** Sends a head and part of the body, then goes silent (without closing) and reads the answer. */
    private RawClient.Response stall(Container container, String framing, String part) throws IOException {
        return post(container, "/gw/direct/orders", part, "Content-Type: text/plain", framing);
    }

    private static void assertRequestTimeout(RawClient.Response response) {
        assertThat(response.status()).as("%s", response).isEqualTo(408);
        assertThat(response.complete()).isTrue();
        // The body may be the container's error page: Tomcat marks the request failed once a read has failed and
        // renders its page over the servlet's (with or without a stack trace, as its ErrorReportValve is configured).
        assertThat(response.header("Connection")).isEqualTo("close");
    }
    /**
     * Regression: over HTTP/2 a request body of no stated length ends with its stream (there are no chunks), and the
     * servlet, looking for Content-Length or Transfer-Encoding, took it for no body: an upload was forwarded empty and
     * answered as if it had arrived. Tomcat and Jetty with h2c; the JDK client sends a streamed body without a length.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anHttp2BodyWithoutALengthIsForwardedWholeAndARequestWithoutOneStaysWithout(Container container) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.echo())) {
            Container.Deployment deployment = new Container.Deployment().http2().servlet("p",
                    UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(null).build(), "/p/*");
            try (Container.Running running = container.start(deployment)) {
                HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_2).build();
                URI uri = URI.create("http://127.0.0.1:" + running.port() + "/gw/p/a");
                for (int i = 0; i < 2; i++) {
                    // The first upgrades the connection (h2c); the second is an HTTP/2 stream from its start.
                    HttpResponse<String> get = client.send(HttpRequest.newBuilder(uri).build(),
                            HttpResponse.BodyHandlers.ofString());
                    assertThat(get.version()).isEqualTo(HttpClient.Version.HTTP_2);
                    assertThat(get.statusCode()).isEqualTo(200);
                }
                for (String body : List.of("hello body", "x".repeat(200 * 1024))) {
                    byte[] bytes = body.getBytes(StandardCharsets.US_ASCII);
                    HttpResponse<String> post = client.send(HttpRequest.newBuilder(uri).POST(
                            HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(bytes)))
                            .build(), HttpResponse.BodyHandlers.ofString());
                    assertThat(post.version()).isEqualTo(HttpClient.Version.HTTP_2);
                    assertThat(post.statusCode()).isEqualTo(200);
                    assertThat(post.body()).as("the echo of a %d-byte body", bytes.length).isEqualTo(body);
                }
                HttpResponse<String> options = client.send(HttpRequest.newBuilder(uri)
                        .method("OPTIONS", HttpRequest.BodyPublishers.noBody()).build(),
                        HttpResponse.BodyHandlers.ofString());
                assertThat(options.statusCode()).isEqualTo(200);
                List<RawUpstream.Request> seen = upstream.requests();
                assertThat(seen).extracting(RawUpstream.Request::method)
                        .containsExactly("GET", "GET", "POST", "POST", "OPTIONS");
                for (RawUpstream.Request r : List.of(seen.get(1), seen.get(4))) {
                    assertThat(r.header("Content-Length")).as("%s", r).isNull();
                    assertThat(r.header("Transfer-Encoding")).as("%s", r).isNull();
                }
            }
        }
    }
}
