package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.EnumMap;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * The proxy servlet answering clients over HTTP/2 (h2c, on Tomcat and on Jetty): a body the upstream cuts off after the
 * response was committed must reach the client as a reset stream, never as one that ended cleanly.
 */
@Timeout(60)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletHttp2Test {

    private static final int CHUNKS = 40;
    private static final int CHUNK = 8192;
    /**
     * 250 fields of 50 bytes: 13.5 KB as HTTP/1.1 lines, within Jetty's 16 KiB, but 20.5 KB as an HTTP/2 header list
     * (RFC 9113 §6.5.2 counts 32 more bytes per field), over the same 16 KiB Jetty applies to it.
     */
    private static final String MANY_FIELDS = manyFields();

    private static String manyFields() {
        StringBuilder fields = new StringBuilder();
        for (int i = 100; i < 350; i++) {
            fields.append("X-Field-").append(i).append(": ").append("v".repeat(39)).append("\r\n");
        }
        return fields.toString();
    }

    private RawUpstream cut;
    private RawUpstream whole;
    private RawUpstream small;
    private RawUpstream shortBody;
    private RawUpstream forwarding;
    private RawUpstream largeHead;
    private RawUpstream echo;
    private RawUpstream trailers;
    private RawUpstream cutWithTrailers;
    private RawUpstream manyFields;
    private RawUpstream hints;
    private RawUpstream stalled;
    private String refused;
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, Http2Client> clients = new EnumMap<>(Container.class);

    @BeforeAll
    void start() throws Exception {
        cut = RawUpstream.start(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                writeChunks(c);
                c.close(); // no last chunk: the body was cut off
            }
        });
        whole = RawUpstream.start(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                writeChunks(c);
                c.write("0\r\n\r\n");
                c.stallUntilClosed();
            }
        });
        small = RawUpstream.start(Behaviours.ok("ok"));
        shortBody = RawUpstream.start(Behaviours.truncatedBody());
        forwarding = RawUpstream.start(Behaviours.ok("forwarded"));
        // 12 KB of fields: over Tomcat's HTTP/1.1 maxHttpResponseHeaderSize (8 KiB), which its HTTP/2 does not have.
        largeHead = RawUpstream.start(c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write("HTTP/1.1 200 OK\r\n" + ("X-Large: " + "v".repeat(110) + "\r\n").repeat(100)
                        + "Content-Length: 5\r\n\r\nlarge");
            }
        });
        echo = RawUpstream.start(Behaviours.echo());
        cutWithTrailers = RawUpstream.start(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n");
                writeChunks(c);
                c.close(); // neither last chunk nor trailer section
            }
        });
        trailers = RawUpstream.start(c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                // "/large": a body larger than the containers' response buffers, so the response is committed, and
                // its first part sent, before the trailers arrive.
                String content = r.target().contains("large") ? "x".repeat(200_000) : "hello";
                c.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Checksum, Cache-Control\r\n"
                        + "Transfer-Encoding: chunked\r\n\r\n" + Integer.toHexString(content.length()) + "\r\n"
                        + content + "\r\n0\r\nX-Checksum: sha-256=:LPJNul+wow4m6Dsq:\r\n"
                        + "Server-Timing: db;dur=53\r\nServer-Timing: app;dur=47.2\r\nCache-Control: no-store\r\n\r\n");
            }
        });
        manyFields = RawUpstream.start(c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write("HTTP/1.1 200 OK\r\n" + MANY_FIELDS + "Content-Length: 5\r\n\r\nlarge");
            }
        });
        hints = RawUpstream.start(c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                        + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal");
            }
        });
        stalled = RawUpstream.start(Behaviours.stall());
        refused = dev.upstreamguard.testing.ClosedPort.find().baseUrl();
        for (Container kind : Container.values()) {
            Container.Running running = kind.start(deployment());
            containers.put(kind, running);
            clients.put(kind, new Http2Client(running.port(), "/gw/small/"));
        }
    }

    private Container.Deployment deployment() {
        return new Container.Deployment().http2()
                .servlet("cut", UpstreamProxyServlet.builder(cut.baseUrl()).set("retry.enabled", "false").build(),
                        "/cut/*")
                .servlet("whole", UpstreamProxyServlet.builder(whole.baseUrl()).set("retry.enabled", "false").build(),
                        "/whole/*")
                .servlet("small", UpstreamProxyServlet.builder(small.baseUrl()).build(), "/small/*")
                .servlet("short", UpstreamProxyServlet.builder(shortBody.baseUrl()).set("retry.enabled", "false")
                        .build(), "/short/*")
                .servlet("forwarded", UpstreamProxyServlet.builder(forwarding.baseUrl()).build(), "/forwarded/*")
                .servlet("preserved", UpstreamProxyServlet.builder(forwarding.baseUrl()).preserveHost(true).build(),
                        "/preserved/*")
                .servlet("large-head", UpstreamProxyServlet.builder(largeHead.baseUrl()).set("retry.enabled", "false")
                        .build(), "/large-head/*")
                .servlet("many-fields", UpstreamProxyServlet.builder(manyFields.baseUrl()).set("retry.enabled", "false")
                        .build(), "/many-fields/*")
                .servlet("cut-trailers", UpstreamProxyServlet.builder(cutWithTrailers.baseUrl())
                        .set("retry.enabled", "false").build(), "/cut-trailers/*")
                .servlet("circuit", UpstreamProxyServlet.builder(refused).set("retry.enabled", "false")
                        .set("circuit-breaker.minimum-calls", "2").set("circuit-breaker.failure-rate-threshold", "50")
                        .set("circuit-breaker.open-for", "60s").build(), "/circuit/*")
                .servlet("trailers", UpstreamProxyServlet.builder(trailers.baseUrl()).build(), "/trailers/*")
                .servlet("echo", UpstreamProxyServlet.builder(echo.baseUrl()).build(), "/echo/*")
                .servlet("hints", UpstreamProxyServlet.builder(hints.baseUrl()).build(), "/hints/*")
                .servlet("refused", UpstreamProxyServlet.builder(refused).set("retry.enabled", "false").build(),
                        "/refused/*")
                .servlet("stalled", UpstreamProxyServlet.builder(stalled.baseUrl()).set("retry.enabled", "false")
                        .set("response-timeout", "400ms").build(), "/stalled/*");
    }

    @AfterAll
    void stop() {
        containers.values().forEach(Container.Running::close);
        cut.close();
        whole.close();
        small.close();
        shortBody.close();
        forwarding.close();
        largeHead.close();
        echo.close();
        trailers.close();
        cutWithTrailers.close();
        manyFields.close();
        hints.close();
        stalled.close();
    }

    private static void writeChunks(RawUpstream.Connection c) throws IOException {
        String chunk = Integer.toHexString(CHUNK) + "\r\n" + "x".repeat(CHUNK) + "\r\n";
        for (int i = 0; i < CHUNKS; i++) {
            c.write(chunk);
        }
    }

    /**
     * Regression: over HTTP/2 Tomcat ends the stream cleanly (END_STREAM) whatever the servlet throws after the commit,
     * so a body of no stated length the upstream cut off reached the client as a whole, shorter one.
     */
    @ParameterizedTest
    @EnumSource(Container.class)
    void aBodyCutOffAfterTheCommitResetsTheHttp2StreamInsteadOfEndingIt(Container kind) throws Exception {
        clients.get(kind).assertResetAfterA200Head("/gw/cut/x");
    }

    /** A body cut off before anything was committed is answered as over HTTP/1.1: a whole 502 naming the fault. */
    @ParameterizedTest
    @EnumSource(Container.class)
    void aBodyCutOffBeforeTheCommitIsAWhole502OverHttp2(Container kind) throws Exception {
        HttpResponse<InputStream> response = clients.get(kind).get("/gw/short/x");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status"))
                .hasValue("upstream-guard; error=http_response_incomplete");
        try (InputStream in = response.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).contains("502");
        }
    }

    @ParameterizedTest
    @EnumSource(Container.class)
    void aWholeBodyOfNoStatedLengthEndsTheHttp2StreamCleanly(Container kind) throws Exception {
        HttpResponse<InputStream> response = clients.get(kind).get("/gw/whole/x");
        assertThat(response.statusCode()).isEqualTo(200);
        try (InputStream in = response.body()) {
            assertThat(in.transferTo(OutputStream.nullOutputStream())).isEqualTo((long) CHUNKS * CHUNK);
        }
    }

    /**
     * Regression: over HTTP/2 the client's authority travels as {@code :authority}, which Tomcat gives the servlet as
     * its server name and port but not as a {@code Host} field; the servlet read only {@code Host}, so the upstream got
     * no {@code X-Forwarded-Host}, a {@code Forwarded} without {@code host}, and with {@code preserve-host} its own
     * name instead of the client's (RFC 9113 §8.3.1: a Host generated for HTTP/1.1 takes the {@code :authority}).
     */
    @ParameterizedTest
    @EnumSource(Container.class)
    void theAuthorityAnHttp2ClientAddressedReachesTheUpstreamAsAHttp11ClientsHostWould(Container kind) throws Exception {
        String authority = "127.0.0.1:" + containers.get(kind).port();
        assertThat(clients.get(kind).get("/gw/forwarded/x").statusCode()).isEqualTo(200);
        RawUpstream.Request forwarded = forwarding.requests().get(forwarding.requestCount() - 1);
        assertThat(forwarded.header("X-Forwarded-Host")).isEqualTo(authority);
        assertThat(forwarded.header("Forwarded")).isEqualTo("for=127.0.0.1;proto=http;host=\"" + authority + "\"");
        assertThat(forwarded.header("Host")).isEqualTo("127.0.0.1:" + forwarding.port());

        assertThat(clients.get(kind).get("/gw/preserved/x").statusCode()).isEqualTo(200);
        RawUpstream.Request preserved = forwarding.requests().get(forwarding.requestCount() - 1);
        assertThat(preserved.header("Host")).isEqualTo(authority);
    }

    /**
     * Regression: an HTTP/2 client may send its cookies as several {@code cookie} fields (browsers do, so that each
     * compresses on its own); Jetty hands them to the servlet as separate values, and they reached the HTTP/1.1
     * upstream as several {@code Cookie} lines, of which many servers read only the first (RFC 6265 §5.4 allows one).
     * RFC 9113 §8.2.3: they are joined with "; " before they enter an HTTP/1.1 message.
     */
    @ParameterizedTest
    @EnumSource(Container.class)
    void theCookieFieldsOfAnHttp2ClientReachTheUpstreamAsOneCookieLine(Container kind) throws Exception {
        HttpResponse<InputStream> response = clients.get(kind).get("/gw/forwarded/x", "Cookie", "session=s1",
                "Cookie", "theme=dark", "X-Listed", "one", "X-Listed", "two");
        try (InputStream in = response.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).isEqualTo("forwarded");
        }
        RawUpstream.Request forwarded = forwarding.requests().get(forwarding.requestCount() - 1);
        assertThat(forwarded.headers().get("cookie")).containsExactly("session=s1; theme=dark");
        assertThat(String.join(", ", forwarded.headers().get("x-listed"))).isEqualTo("one, two");
    }

    /**
     * Regression: the check that answers 502 {@code http_response_header_section_size} for a head the container cannot
     * write applied Tomcat's HTTP/1.1 limit ({@code maxHttpResponseHeaderSize}, 8 KiB) to HTTP/2 clients too, whose
     * heads Tomcat writes whatever their size (in CONTINUATION frames): a valid 12 KB head became a 502. Over HTTP/1.1
     * on the same connector and servlet it is still the 502.
     */
    @ParameterizedTest
    @EnumSource(Container.class)
    void aHeadOverTomcatsHttp11LimitPassesToAnHttp2ClientButNotToAnHttp11One(Container kind) throws Exception {
        HttpResponse<InputStream> overHttp2 = clients.get(kind).get("/gw/large-head/x");
        assertThat(overHttp2.statusCode()).isEqualTo(200);
        assertThat(overHttp2.headers().allValues("X-Large")).hasSize(100);
        try (InputStream in = overHttp2.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).isEqualTo("large");
        }
        if (kind != Container.TOMCAT) {
            return; // Jetty's HTTP/1.1 limit (16 KiB) takes the 12 KB head too
        }
        RawClient.Response overHttp11 = RawClient.request(containers.get(kind).port(), "GET", "/gw/large-head/x");
        assertThat(overHttp11.status()).as("%s", overHttp11).isEqualTo(502);
        assertThat(overHttp11.header("Proxy-Status"))
                .isEqualTo("upstream-guard; error=http_response_header_section_size");
    }

    /** A request body of no stated length (DATA frames only) reaches the upstream whole. */
    @ParameterizedTest
    @EnumSource(Container.class)
    void aRequestBodyOfNoStatedLengthFromAnHttp2ClientReachesTheUpstreamWhole(Container kind) throws Exception {
        byte[] body = new byte[200_000];
        for (int i = 0; i < body.length; i++) {
            body[i] = (byte) i;
        }
        HttpResponse<byte[]> response = clients.get(kind).postOfNoStatedLength("/gw/echo/x", body);
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.body()).isEqualTo(body);
    }

    /** The 103 the upstream sends first does not get in the way of its final response over HTTP/2. */
    @ParameterizedTest
    @EnumSource(Container.class)
    void theFinalResponseAfterEarlyHintsReachesAnHttp2Client(Container kind) throws Exception {
        HttpResponse<InputStream> response = clients.get(kind).get("/gw/hints/x");
        assertThat(response.statusCode()).isEqualTo(200);
        try (InputStream in = response.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).isEqualTo("final");
        }
    }

    /** Faults before the commit are answered to an HTTP/2 client as to an HTTP/1.1 one: status and Proxy-Status. */
    @ParameterizedTest
    @EnumSource(Container.class)
    void faultsBeforeTheCommitAreAnsweredWithTheirStatusAndProxyStatusOverHttp2(Container kind) throws Exception {
        HttpResponse<InputStream> refusedAnswer = clients.get(kind).get("/gw/refused/x");
        assertThat(refusedAnswer.statusCode()).isEqualTo(502);
        assertThat(refusedAnswer.headers().firstValue("Proxy-Status").orElseThrow())
                .startsWith("upstream-guard; error=connection_refused");
        try (InputStream in = refusedAnswer.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).contains("502");
        }
        HttpResponse<InputStream> timedOut = clients.get(kind).get("/gw/stalled/x");
        assertThat(timedOut.statusCode()).isEqualTo(504);
        assertThat(timedOut.headers().firstValue("Proxy-Status").orElseThrow())
                .startsWith("upstream-guard; error=connection_read_timeout");
        try (InputStream in = timedOut.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).contains("504");
        }
    }

    /**
     * Regression: Jetty bounds an HTTP/2 head as a header list (name, value and 32 bytes a field) by the limit the
     * servlet checked as HTTP/1.1 lines, so a head of many small fields passed the check, failed in Jetty's encoder and
     * reached the client as a reset stream, with no status or {@code Proxy-Status}. Tomcat writes it whole over HTTP/2.
     */
    @ParameterizedTest
    @EnumSource(Container.class)
    void aHeadOfManyFieldsOverJettysHttp2LimitIsA502RatherThanAResetStream(Container kind) throws Exception {
        HttpResponse<InputStream> overHttp2 = clients.get(kind).get("/gw/many-fields/x");
        if (kind == Container.JETTY) {
            assertThat(overHttp2.statusCode()).isEqualTo(502);
            assertThat(overHttp2.headers().firstValue("Proxy-Status"))
                    .hasValue("upstream-guard; error=http_response_header_section_size");
            return;
        }
        assertThat(overHttp2.statusCode()).isEqualTo(200);
        assertThat(overHttp2.headers().allValues("X-Field-349")).hasSize(1);
        try (InputStream in = overHttp2.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).isEqualTo("large");
        }
    }

    /**
     * Regression: the trailer fields of a chunked upstream body reached HTTP/1.1 clients only; over HTTP/2, where
     * trailers are a HEADERS frame after the body (RFC 9113 §8.1), they were dropped. The fields that must not be
     * trailers stay out, and the {@code Trailer} announcement names only what goes along.
     */
    @ParameterizedTest(name = "[{0}] {1}")
    @org.junit.jupiter.params.provider.CsvSource({"TOMCAT, small", "JETTY, small", "TOMCAT, large", "JETTY, large"})
    void theUpstreamsTrailerFieldsReachAnHttp2Client(Container kind, String size) throws Exception {
        okhttp3.OkHttpClient okHttp = new okhttp3.OkHttpClient.Builder()
                .protocols(java.util.List.of(okhttp3.Protocol.H2_PRIOR_KNOWLEDGE))
                .callTimeout(java.time.Duration.ofSeconds(30)).build();
        try (okhttp3.Response response = okHttp.newCall(new okhttp3.Request.Builder()
                .url("http://127.0.0.1:" + containers.get(kind).port() + "/gw/trailers/" + size).build()).execute()) {
            assertThat(response.protocol()).isEqualTo(okhttp3.Protocol.H2_PRIOR_KNOWLEDGE);
            assertThat(response.code()).isEqualTo(200);
            assertThat(response.header("Trailer")).isEqualToIgnoringCase("X-Checksum");
            assertThat(response.body().string()).isEqualTo(size.equals("large") ? "x".repeat(200_000) : "hello");
            okhttp3.Headers trailerFields = response.trailers();
            assertThat(trailerFields.get("x-checksum")).isEqualTo("sha-256=:LPJNul+wow4m6Dsq:");
            assertThat(String.join(", ", trailerFields.values("server-timing")))
                    .isEqualTo("db;dur=53, app;dur=47.2");
            assertThat(trailerFields.get("cache-control")).isNull();
        } finally {
            okHttp.dispatcher().executorService().shutdown();
            okHttp.connectionPool().evictAll();
        }
    }

    /** A body announcing trailers that the upstream cuts off still resets the stream: no trailers claim it whole. */
    @ParameterizedTest
    @EnumSource(Container.class)
    void aBodyAnnouncingTrailersCutOffAfterTheCommitStillResetsTheHttp2Stream(Container kind) throws Exception {
        clients.get(kind).assertResetAfterA200Head("/gw/cut-trailers/x");
    }

    /** An open circuit is answered 503 with its Proxy-Status and Retry-After over HTTP/2 as over HTTP/1.1. */
    @ParameterizedTest
    @EnumSource(Container.class)
    void anOpenCircuitIsA503WithProxyStatusAndRetryAfterOverHttp2(Container kind) throws Exception {
        for (int i = 0; i < 2; i++) {
            assertThat(clients.get(kind).get("/gw/circuit/x").statusCode()).isEqualTo(502);
        }
        HttpResponse<InputStream> open = clients.get(kind).get("/gw/circuit/x");
        assertThat(open.statusCode()).isEqualTo(503);
        assertThat(open.headers().firstValue("Proxy-Status").orElseThrow())
                .startsWith("upstream-guard; error=destination_unavailable");
        assertThat(Long.parseLong(open.headers().firstValue("Retry-After").orElseThrow())).isBetween(1L, 60L);
        try (InputStream in = open.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).contains("503");
        }
    }
}
