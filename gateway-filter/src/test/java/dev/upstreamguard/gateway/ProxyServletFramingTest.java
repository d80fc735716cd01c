package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.FakeTime;
import dev.upstreamguard.testing.RawUpstream;
import dev.upstreamguard.testing.TestTls;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Unusual but valid upstream responses through the proxy servlet, in each container: what the client receives is a
 * complete, correctly framed response, and its connection to the gateway stays in step for the next request.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletFramingTest {

    /** A field of 7 KB: within Tomcat's default 8 KiB response head, with room for what the container adds. */
    private static final int LARGE_COOKIE = 7000;

    /** More than the proxy discards of a body a 205 must not have: its connection is closed instead. */
    private static final int LARGE_205_BODY = 256 * 1024;

    /**
     * A trailer section of 10 KB, 95 fields: within what the client reads (64 KiB, 256 fields) and over the 8 KiB
     * Jetty writes of one (its {@code responseHeaderSize}).
     */
    private static final String LARGE_TRAILER_SECTION = largeTrailerSection();

    /**
     * 20 KB of {@code Link} fields on a 103: each line and the section within what the client reads (16 KiB, 64 KiB),
     * the section over the head either container writes (Tomcat 8 KiB, Jetty 16 KiB).
     */
    private static final String HINTS_TOO_LARGE = ("Link: </" + "a".repeat(980) + ".css>; rel=preload\r\n").repeat(20);

    private static final Duration SETTLE = Duration.ofSeconds(15);
    private static final String SECOND = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";
    private static final String TOO_LARGE = "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\n"
            + "Content-Length: 8\r\n\r\ntoo big!";

    private final List<RawUpstream> closeables = new ArrayList<>();
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, Map<String, UpstreamProxyServlet>> servlets = new EnumMap<>(Container.class);
    private final Map<Container, Map<String, RawUpstream>> upstreams = new EnumMap<>(Container.class);
    private final Map<Container, CountDownLatch> idleCloses = new EnumMap<>(Container.class);
    private final Map<Container, Semaphore> closesAfterEach = new EnumMap<>(Container.class);
    private final FakeTime idleTime = new FakeTime();
    private final List<GuardedHttpClient> sharedClients = new ArrayList<>();

    @BeforeAll
    void start() throws Exception {
        for (Container container : Container.values()) {
            Map<String, RawUpstream> ups = new LinkedHashMap<>();
            ups.put("no-content", keepAlive("HTTP/1.1 204 No Content\r\nContent-Length: 2\r\nX-Done: yes\r\n\r\n"));
            ups.put("not-modified", keepAlive("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"));
            ups.put("reset-content", keepAlive(
                    "HTTP/1.1 205 Reset Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
            ups.put("reset-content-unframed", start(Behaviours.respond("HTTP/1.1 205 Reset Content\r\n\r\n")));
            ups.put("reset-content-length", keepAlive("HTTP/1.1 205 X\r\nContent-Type: text/plain\r\n"
                    + "Content-Length: 11\r\n\r\nclosed body"));
            ups.put("reset-content-closed", start(Behaviours.respond("HTTP/1.1 205 X\r\nContent-Type: text/plain\r\n"
                    + "\r\nclosed body")));
            ups.put("reset-content-large", keepAlive("HTTP/1.1 205 X\r\nContent-Type: text/plain\r\n"
                    + "Content-Length: " + LARGE_205_BODY + "\r\n\r\n" + "b".repeat(LARGE_205_BODY)));
            ups.put("early-hints", keepAlive("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                    + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal"));
            ups.put("trailers", keepAlive("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Checksum\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: sha-256=:LPJNul+wow4m6Dsq:\r\n"
                    + "Server-Timing: db;dur=53\r\nServer-Timing: app;dur=47.2\r\nContent-Length: 99\r\n"
                    + "Connection: close\r\n\r\n"));
            ups.put("large-trailers", keepAlive("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T0\r\n\r\n"
                    + "5\r\nhello\r\n0\r\n" + LARGE_TRAILER_SECTION + "\r\n"));
            ups.put("trailers-forbidden", keepAlive("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                    + "Trailer: X-Checksum, Cache-Control, Authorization\r\nTrailer: Authentication-Info\r\n\r\n"
                    + "5\r\nhello\r\n0\r\nX-Checksum: c\r\nCache-Control: no-store\r\nAuthorization: Basic eDp5\r\n"
                    + "Location: /elsewhere\r\nRetry-After: 5\r\nVary: Cookie\r\nExpires: 0\r\nAge: 1\r\n"
                    + "WWW-Authenticate: Basic\r\nAuthentication-Info: nextnonce=\"a\"\r\n\r\n"));
            ups.put("hints", keepAlive("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
                    + "Link: </b.js>; rel=preload\r\nConnection: X-Hint-Hop\r\nX-Hint-Hop: no\r\n\r\n"
                    + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal"));
            // RFC 9110 §8.6: a 1xx has no Content-Length; and no content for a type, nor a Date or Server of its own.
            ups.put("hints-framing", keepAlive("HTTP/1.1 103 Early Hints\r\nContent-Length: 100\r\n"
                    + "Content-Type: text/html\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nServer: hints/1\r\n"
                    + "Link: </a.css>; rel=preload\r\n\r\n"
                    + "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfinal\r\n0\r\n\r\n"));
            ups.put("hints-mixed-case", keepAlive("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
                    + "link: </b.js>; rel=preload\r\n\r\n"
                    + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal"));
            ups.put("hints-too-large", keepAlive("HTTP/1.1 103 Early Hints\r\n" + HINTS_TOO_LARGE + "\r\n"
                    + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal"));
            ups.put("hints-wrapped", keepAlive("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                    + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal"));
            ups.put("repeated", keepAlive("HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nX-Rep: one\r\n"
                    + "Set-Cookie: b=2, c=3\r\nX-Empty:\r\nX-Rep: two\r\nProxy-Status: inner; error=http_response_incomplete\r\n"
                    + "Proxy-Status: middle\r\nContent-Length: 2\r\n\r\nok"));
            ups.put("http10", start(Behaviours.respond("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                    + "read until the upstream closes")));
            ups.put("folded", keepAlive("HTTP/1.1 200 OK\r\nX-Folded: first\r\n  second\r\nContent-Length: 2\r\n\r\n"
                    + "ok"));
            ups.put("brotli", keepAlive("HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n"
                    + "\u001b\u0000"));
            ups.put("early", start(Behaviours.answerBeforeTheBody(TOO_LARGE, false)));
            RawUpstream earlyTls = RawUpstream.startTls(false, Behaviours.answerBeforeTheBody(TOO_LARGE, false));
            closeables.add(earlyTls);
            ups.put("early-tls", earlyTls);
            CountDownLatch idleClosed = new CountDownLatch(1);
            idleCloses.put(container, idleClosed);
            ups.put("idle-close", start(c -> {
                if (c.readRequest() != null) {
                    // A server may close an idle connection at any time, without announcing it (RFC 9112 §9.5).
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
                }
                c.close();
                idleClosed.countDown();
            }, c -> {
                for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                    c.write(SECOND);
                }
            }));
            Semaphore closedAfterEach = new Semaphore(0);
            closesAfterEach.put(container, closedAfterEach);
            ups.put("every-close", start(c -> {
                RawUpstream.Request r = c.readRequest();
                if (r != null) {
                    // Closes after every response without "Connection: close", which RFC 9112 §9.6 asks for.
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: " + r.target().length() + "\r\n\r\n" + r.target());
                }
                c.close();
                closedAfterEach.release();
            }));
            ups.put("dated", keepAlive("HTTP/1.1 200 OK\r\nDate: Tue, 01 Jan 2030 00:00:00 GMT\r\nServer: origin/1\r\n"
                    + "Content-Length: 2\r\n\r\nok"));
            ups.put("html", keepAlive("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok"));
            ups.put("labelled", keepAlive("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=windows-1252\r\n"
                    + "Content-Length: 2\r\n\r\nok"));
            ups.put("head-unframed", keepAlive("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n"));
            ups.put("large-head", keepAlive("HTTP/1.1 200 OK\r\nSet-Cookie: big=" + "c".repeat(LARGE_COOKIE)
                    + "\r\nContent-Length: 2\r\n\r\nok"));
            ups.put("surplus", keepAlive("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!"));
            String smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!";
            ups.put("surplus-204", keepAlive("HTTP/1.1 204 No Content\r\n\r\n" + smuggled));
            ups.put("surplus-304", keepAlive("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n" + smuggled));
            upstreams.put(container, ups);

            Map<String, UpstreamProxyServlet> routes = new LinkedHashMap<>();
            Container.Deployment deployment = new Container.Deployment();
            for (Map.Entry<String, RawUpstream> e : ups.entrySet()) {
                UpstreamProxyServlet.Builder b = UpstreamProxyServlet.builder(e.getValue().baseUrl())
                        .meterRegistry(null)
                        // One attempt: each response below must come through as it is, not after a retry.
                        .set("retry.max-attempts", "1");
                if (e.getKey().equals("early-tls")) {
                    GuardedHttpClient client = GuardedHttpClients.custom()
                            .upstream("early-tls", e.getValue().baseUrl(), GuardPolicy.builder().maxAttempts(1)
                                    .connectTimeout(Duration.ofSeconds(10)).build())
                            .sslContext(TestTls.clientContext()).contentCompression(false).redirects(false).build();
                    sharedClients.add(client);
                    b.client(client, "early-tls");
                }
                if (e.getKey().equals("idle-close")) {
                    // Its own client on a fake clock, so the pooled connection can be made to have idled.
                    GuardedHttpClient client = GuardedHttpClients.custom()
                            .upstream("idle-close", e.getValue().baseUrl(), GuardPolicy.builder().maxAttempts(1).build())
                            .contentCompression(false).redirects(false).ticker(idleTime).sleeper(idleTime).build();
                    sharedClients.add(client);
                    b.client(client, "idle-close");
                }
                UpstreamProxyServlet servlet = b.build();
                routes.put(e.getKey(), servlet);
                deployment.servlet(e.getKey(), servlet, "/" + e.getKey() + "/*");
            }
            // As Spring Boot's ErrorPageFilter does: a sendError through its wrapper is kept, and an error page
            // rendered after the chain.
            deployment.filter("error-page", (req, res, chain) -> {
                int[] error = {0};
                var wrapper = new jakarta.servlet.http.HttpServletResponseWrapper(
                        (jakarta.servlet.http.HttpServletResponse) res) {
                    @Override
                    public void sendError(int sc) {
                        error[0] = sc;
                    }

                    @Override
                    public void sendError(int sc, String msg) {
                        error[0] = sc;
                    }
                };
                chain.doFilter(req, wrapper);
                if (error[0] != 0 && !res.isCommitted()) {
                    res.reset();
                    ((jakarta.servlet.http.HttpServletResponse) res).setStatus(500);
                    res.getWriter().write("error page for " + error[0]);
                }
            }, "/hints-wrapped/*", Map.of(), java.util.EnumSet.of(jakarta.servlet.DispatcherType.REQUEST));
            servlets.put(container, routes);
            containers.put(container, container.start(deployment));
        }
    }

    @AfterAll
    void stop() {
        containers.values().forEach(Container.Running::close);
        closeables.forEach(RawUpstream::close);
        sharedClients.forEach(c -> c.close(org.apache.hc.core5.io.CloseMode.IMMEDIATE));
    }

    /** Regression: Jetty answered 500 "Insufficient content written 0 < 2" when the 204's length was passed on. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void a204WithAContentLengthPassesAsA204WithoutABodyOrALength(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/no-content/x");
        RawClient.Response response = both.get(0);
        assertThat(response.status()).isEqualTo(204);
        assertThat(response.header("X-Done")).isEqualTo("yes");
        // RFC 9110 §8.6: a server must not send Content-Length in a 204.
        assertThat(response.header("Content-Length")).isIn(null, "0");
        assertThat(response.header("Transfer-Encoding")).isNull();
        assertInStep(both.get(1));
        assertNothingLeased(container, "no-content");
    }

    /**
     * Regression: a 205 whose upstream framed its empty body with chunks (or by its close, to a client that asked to
     * close) reached Tomcat's clients as {@code Transfer-Encoding: chunked} and then nothing: the servlet asked for
     * chunks to carry trailer fields, Tomcat announced them and wrote none (a 205 has no content, RFC 9110 §15.3.6),
     * and the client waited for a body that never came.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void a205PassesWithoutContentAndTheClientConnectionStaysInStep(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/reset-content/x");
        assertWholeAndEmpty205(both.get(0));
        assertInStep(both.get(1));
        assertNothingLeased(container, "reset-content");

        RawClient.Response closing = RawClient.request(port(container), "GET", "/gw/reset-content-unframed/x",
                "Connection: close");
        assertWholeAndEmpty205(closing);
        assertNothingLeased(container, "reset-content-unframed");
    }

    /**
     * Regression: a 205 that an upstream sent with content (RFC 9110 §15.3.6: it has none) reached Jetty's clients with
     * that content, while Tomcat dropped it. Now no container passes it on; content the upstream framed by its length
     * is read off, so the upstream connection stays in step for its next request, and more than a little is not read
     * at all: that connection is closed.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void a205WithContentPassesWithoutItAndBothConnectionsStayInStep(Container container) throws Exception {
        List<RawClient.Response> byLength = twoOnOneConnection(container, "GET", "/gw/reset-content-length/x");
        assertWholeAndEmpty205(byLength.get(0));
        assertInStep(byLength.get(1));
        assertThat(byLength.get(1).bodyUtf8()).isEqualTo("second");
        assertThat(upstreams.get(container).get("reset-content-length").connectionCount())
                .as("the upstream connection was reused in step").isEqualTo(1);
        assertNothingLeased(container, "reset-content-length");

        List<RawClient.Response> byClose = twoOnOneConnection(container, "GET", "/gw/reset-content-closed/x");
        for (RawClient.Response response : byClose) {
            assertWholeAndEmpty205(response);
        }
        assertNothingLeased(container, "reset-content-closed");

        List<RawClient.Response> large = twoOnOneConnection(container, "GET", "/gw/reset-content-large/x");
        assertWholeAndEmpty205(large.get(0));
        assertInStep(large.get(1));
        assertThat(upstreams.get(container).get("reset-content-large").connectionCount())
                .as("the connection with unread content was not reused").isEqualTo(2);
        assertNothingLeased(container, "reset-content-large");
        for (String route : List.of("reset-content-length", "reset-content-closed", "reset-content-large")) {
            UpstreamProxyServlet servlet = servlets.get(container).get(route);
            assertThat(servlet.client().upstream(servlet.upstreamName()).faultCounts()).as(route).isEmpty();
        }
    }

    /** A 205 has no content (RFC 9110 §15.3.6): the client gets none, framed so that the connection stays usable. */
    private static void assertWholeAndEmpty205(RawClient.Response response) {
        assertThat(response.status()).as("%s", response).isEqualTo(205);
        assertThat(response.complete()).as("%s", response).isTrue();
        assertThat(response.body()).as("%s", response).isEmpty();
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void a304PassesWithItsValidatorsAndNoBody(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/not-modified/x");
        assertThat(both.get(0).status()).isEqualTo(304);
        assertThat(both.get(0).header("ETag")).isEqualTo("\"v1\"");
        // Regression: Jetty stated "Content-Length: 0", which on a 304 is the length of the stored representation
        // (RFC 9110 §8.6: never sent unless it is that length), saying the cached body is empty.
        assertThat(both.get(0).headers("Content-Length")).isEmpty();
        assertInStep(both.get(1));
        assertNothingLeased(container, "not-modified");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theFinalResponseAfterEarlyHintsComesThrough(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/early-hints/x");
        assertThat(both.get(0).status()).isEqualTo(200);
        assertThat(both.get(0).complete()).isTrue();
        assertThat(both.get(0).bodyUtf8()).isEqualTo("final");
        assertInStep(both.get(1));
        assertNothingLeased(container, "early-hints");
    }

    /**
     * Regression: the trailer section of a chunked upstream body was dropped, so checksums and Server-Timing computed
     * as the body streamed never reached the client. RFC 9112 §7.1.2 lets a recipient that removes the chunked coding
     * discard trailers, but a proxy that streams chunks through can pass them on; fields that must not be trailers
     * (framing, RFC 9110 §6.5.1) or are this hop's (§7.6.1) are not.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theTrailerFieldsOfAChunkedBodyReachTheClient(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/trailers/x");
        RawClient.Response response = both.get(0);
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.complete()).isTrue();
        assertThat(response.bodyUtf8()).isEqualTo("hello");
        assertThat(response.headers("Trailer")).as("the announcement goes with the trailers").containsExactly("X-Checksum");
        assertThat(response.trailers()).as("%s", response).containsOnlyKeys("x-checksum", "server-timing");
        assertThat(response.trailers().get("x-checksum")).containsExactly("sha-256=:LPJNul+wow4m6Dsq:");
        assertThat(String.join(", ", response.trailers().get("server-timing")))
                .isEqualTo("db;dur=53, app;dur=47.2");
        assertInStep(both.get(1));
        assertNothingLeased(container, "trailers");
    }

    /**
     * Regression: a trailer section larger than Jetty writes (its {@code responseHeaderSize}, 8 KiB, while the head may
     * grow to 16 KiB) made it fail the response after the body: a valid answer reached the client cut off, without its
     * last chunk, and the connection was lost. Such a section is now discarded (RFC 9112 §7.1.2 lets a recipient that
     * removes the chunked coding discard trailer fields; the head's {@code Trailer} only said they might come), and the
     * body ends whole; Tomcat, which writes it, gets it all.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aTrailerSectionTooLargeForTheContainerIsDroppedWholeAndTheBodyEndsCleanly(Container container)
            throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/large-trailers/x");
        RawClient.Response response = both.get(0);
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.complete()).as("%s", response).isTrue();
        assertThat(response.bodyUtf8()).isEqualTo("hello");
        if (!response.trailers().isEmpty()) {
            assertThat(response.trailers()).as("whole or not at all").hasSize(95);
        }
        assertThat(response.trailers().isEmpty()).as("dropped where the container cannot write them")
                .isEqualTo(container == Container.JETTY);
        assertInStep(both.get(1));
        assertNothingLeased(container, "large-trailers");
    }

    private static String largeTrailerSection() {
        StringBuilder section = new StringBuilder();
        for (int i = 0; i < 95; i++) {
            section.append("X-T").append(i).append(": ").append("v".repeat(100)).append("\r\n");
        }
        return section.toString();
    }

    /**
     * Regression: trailer fields that RFC 9110 §6.5.1 keeps out of trailers (response controls, authentication) were
     * passed on by Jetty ({@code Cache-Control}, {@code Location}…), dropped by Tomcat, and {@code Authorization} by
     * neither. They are dropped in both; one a trailer may carry ({@code Authentication-Info}, RFC 7615) passes.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void trailerFieldsThatMustNotBeTrailersAreDroppedInEveryContainer(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/trailers-forbidden/x");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.complete()).isTrue();
        assertThat(response.bodyUtf8()).isEqualTo("hello");
        assertThat(response.trailers()).as("%s", response).containsOnlyKeys("x-checksum", "authentication-info");
        assertThat(String.join(", ", response.headers("Trailer"))).as("what the announcement names")
                .isEqualTo("X-Checksum, Authentication-Info");
        assertNothingLeased(container, "trailers-forbidden");
    }

    /**
     * Regression: a 103 Early Hints from the upstream was swallowed, so a browser behind the gateway could not start
     * its preloads while the upstream still worked on the page. RFC 9110 §15.2: a proxy forwards the 1xx responses it
     * did not ask for — without this hop's fields, and never to an HTTP/1.0 client (which cannot parse them).
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anEarlyHintsResponseIsForwardedBeforeTheFinalOne(Container container) throws Exception {
        int port = port(container);
        HintsAndAnswer exchange = hintsAndAnswer(container, port, "/gw/hints/page");
        if (exchange.hints() != null) {
            assertThat(exchange.hints()).contains("Link: </a.css>; rel=preload", "Link: </b.js>; rel=preload")
                    .noneMatch(h -> h.toLowerCase(java.util.Locale.ROOT).contains("hint-hop"));
        }
        assertThat(exchange.answer().status()).isEqualTo(200);
        assertThat(exchange.answer().bodyUtf8()).isEqualTo("final");
        assertThat(exchange.answer().headers("Link")).as("hints are not part of the final answer").isEmpty();
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            socket.getOutputStream().write("GET /gw/hints/page HTTP/1.0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
            InputStream in = new BufferedInputStream(socket.getInputStream());
            assertThat(RawClient.line(in)).as("no 1xx to HTTP/1.0").startsWith("HTTP/1.1 200");
        }
        assertNothingLeased(container, "hints");
    }

    /**
     * Regression: the fields of a 103 were set on the response to be sent with it and taken off again after, framing
     * and the container's own fields too: Jetty took a 103's {@code Content-Length} for the final answer's and failed it
     * with a 500 {@code proxy_internal_error}, and answered with its {@code Date} and {@code Server} twice. A 1xx has no
     * content (RFC 9110 §8.6), so its framing and content metadata are not relayed, nor the fields the container sets.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void earlyHintsWithFramingOrTheContainersFieldsLeaveTheFinalAnswerWholeAndSingle(Container container)
            throws Exception {
        HintsAndAnswer exchange = hintsAndAnswer(container, port(container), "/gw/hints-framing/page");
        if (exchange.hints() != null) {
            assertThat(exchange.hints()).contains("Link: </a.css>; rel=preload")
                    .noneMatch(h -> h.regionMatches(true, 0, "Content-", 0, 8))
                    .noneMatch(h -> h.contains("hints/1") || h.contains("2001"));
        }
        RawClient.Response response = exchange.answer();
        assertThat(response.status()).as("%s", response).isEqualTo(200);
        assertThat(response.complete()).isTrue();
        assertThat(response.bodyUtf8()).isEqualTo("final");
        assertThat(response.headers("Date")).hasSize(1);
        assertThat(response.headers("Server")).hasSizeLessThanOrEqualTo(1).doesNotContain("hints/1");
        assertThat(response.headers("Content-Type")).isEmpty();
        assertThat(response.headers("Link")).isEmpty();
        assertNothingLeased(container, "hints-framing");
    }

    /**
     * Regression: sent through a filter's wrapper, the 103 was the wrapper's to interpret: one that keeps a sendError
     * for later (as Spring Boot's ErrorPageFilter does, to render an error page after the chain) swallowed the hints
     * and held a 103 as the answer's error status.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void earlyHintsReachTheClientPastAFilterThatWrapsTheResponseAndLeaveTheFinalAnswerAlone(Container container)
            throws Exception {
        RawClient.Response response = hintsAndAnswer(container, port(container), "/gw/hints-wrapped/page").answer();
        assertThat(response.status()).as("%s", response).isEqualTo(200);
        assertThat(response.bodyUtf8()).isEqualTo("final");
        assertThat(response.headers("Link")).as("hints are not part of the final answer").isEmpty();
    }

    /**
     * Regression: the hints' fields were taken off the final answer again by name as the upstream spelled it, so of a
     * field sent in two spellings ({@code Link} and {@code link}: names are case-insensitive, RFC 9110 §5.1) the second
     * was put back as if a filter had set it, and the final answer carried a hint the upstream never gave it.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void hintsWhoseFieldNameComesInTwoSpellingsLeaveNothingOnTheFinalAnswer(Container container) throws Exception {
        HintsAndAnswer exchange = hintsAndAnswer(container, port(container), "/gw/hints-mixed-case/page");
        if (exchange.hints() != null) {
            assertThat(String.join("\n", exchange.hints())).containsIgnoringCase("</a.css>").contains("</b.js>");
        }
        RawClient.Response response = exchange.answer();
        assertThat(response.status()).as("%s", response).isEqualTo(200);
        assertThat(response.bodyUtf8()).isEqualTo("final");
        assertThat(response.headers("Link")).as("hints are not part of the final answer").isEmpty();
        assertNothingLeased(container, "hints-mixed-case");
    }

    /**
     * Regression: hints larger than the head Jetty writes (16 KiB) made it throw from the 103's {@code sendError}, and
     * the valid answer that followed became a 500 {@code proxy_internal_error}. Hints are advisory: ones the container
     * cannot write are not relayed, and the final answer passes as it came.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void hintsTooLargeForTheContainerAreNotRelayedAndTheFinalAnswerPasses(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/hints-too-large/page");
        RawClient.Response response = both.get(0);
        assertThat(response.status()).as("%s", response).isEqualTo(200);
        assertThat(response.complete()).isTrue();
        assertThat(response.bodyUtf8()).isEqualTo("final");
        assertThat(response.headers("Link")).as("hints are not part of the final answer").isEmpty();
        assertThat(response.header("Proxy-Status")).isNull();
        assertInStep(both.get(1));
        assertNothingLeased(container, "hints-too-large");
    }

    /** A 103's field lines, or {@code null} where the container relays none, and the final answer after it. */
    private record HintsAndAnswer(List<String> hints, RawClient.Response answer) {
    }

    /** GETs {@code path} over HTTP/1.1 and reads the 103 (where the container relays hints) and the final answer. */
    private static HintsAndAnswer hintsAndAnswer(Container container, int port, String path) throws IOException {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            socket.getOutputStream().write(RawClient.head(port, "GET", path).getBytes(StandardCharsets.ISO_8859_1));
            InputStream in = new BufferedInputStream(socket.getInputStream());
            List<String> hints = null;
            if (relaysEarlyHints(container)) {
                assertThat(RawClient.line(in)).startsWith("HTTP/1.1 103");
                hints = new ArrayList<>();
                for (String line = RawClient.line(in); !line.isEmpty(); line = RawClient.line(in)) {
                    hints.add(line);
                }
            }
            return new HintsAndAnswer(hints, RawClient.read(in, false));
        }
    }

    /**
     * Hints are relayed where the container can take them off the final answer again (a header set to null removed):
     * Servlet 6.1 containers and Jetty; not Tomcat 10.1 (Servlet 6.0, the CI's second run), which ignores that call.
     */
    private static boolean relaysEarlyHints(Container container) {
        return container == Container.JETTY || !org.apache.catalina.util.ServerInfo.getServerNumber().startsWith("10.");
    }

    /**
     * End-to-end fields pass both ways as they came: each line of a repeated field, in order (Set-Cookie cannot be
     * joined), empty values, and an upstream's own Proxy-Status list, which a relayed answer does not add to.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void repeatedAndEmptyFieldsAndAnUpstreamsProxyStatusPassUnchanged(Container container) throws Exception {
        RawUpstream upstream = upstreams.get(container).get("repeated");
        int before = upstream.requestCount();
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/repeated/x", "X-Req: 1",
                "X-Empty:", "X-Req: 2", "Cookie: a=1", "Cookie: b=2");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.headers("Set-Cookie")).containsExactly("a=1; Path=/", "b=2, c=3");
        assertThat(response.headers("X-Rep")).containsExactly("one", "two");
        assertThat(response.headers("X-Empty")).containsExactly("");
        assertThat(String.join(", ", response.headers("Proxy-Status")))
                .isEqualTo("inner; error=http_response_incomplete, middle");
        RawUpstream.Request seen = upstream.requests().get(before);
        assertThat(seen.headers().get("x-req")).containsExactly("1", "2");
        assertThat(seen.headers().get("x-empty")).containsExactly("");
        assertThat(seen.headers().get("cookie")).containsExactly("a=1", "b=2");
    }

    /** RFC 9112 §6.3: a body without length or chunking ends at close; that end is complete, not a truncation. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anHttp10BodyDelimitedByCloseArrivesCompleteAndFramed(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/http10/x");
        RawClient.Response response = both.get(0);
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.complete()).isTrue();
        assertThat(response.bodyUtf8()).isEqualTo("read until the upstream closes");
        assertThat(response.header("Via")).isEqualTo("1.0 upstream-guard");
        assertInStep(both.get(1));
        assertNothingLeased(container, "http10");
    }

    /** RFC 9112 §5.2: a proxy replaces obs-fold with spaces before forwarding (or rejects the message). */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFoldedHeaderIsForwardedOnOneLine(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/folded/x");
        assertThat(both.get(0).status()).isEqualTo(200);
        assertThat(both.get(0).header("X-Folded")).isEqualTo("first second");
        assertThat(both.get(0).bodyUtf8()).isEqualTo("ok");
        assertInStep(both.get(1));
    }

    /** A proxy never decodes: a coding it could not decode itself passes through untouched. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aContentCodingPassesThroughUndecoded(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/brotli/x");
        assertThat(both.get(0).status()).isEqualTo(200);
        assertThat(both.get(0).header("Content-Encoding")).isEqualTo("br");
        assertThat(both.get(0).body()).containsExactly(0x1b, 0x00);
        assertInStep(both.get(1));
    }

    /**
     * An upstream refusing a streamed body half way (answering 413 and closing) gave a valid answer: the client gets
     * it, not a 502 for the broken upstream connection. The client keeps sending meanwhile, as real clients do.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anAnswerTheUpstreamSentBeforeTakingTheWholeBodyReachesTheClient(Container container) throws Exception {
        assertEarlyAnswerReachesTheClient(container, "early");
    }

    /** Regression: over TLS the answer was lost, and the client got 502 connection_terminated. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anAnswerATlsUpstreamSentBeforeTakingTheWholeBodyReachesTheClient(Container container) throws Exception {
        assertEarlyAnswerReachesTheClient(container, "early-tls");
    }

    private void assertEarlyAnswerReachesTheClient(Container container, String route) throws Exception {
        int port = port(container);
        int bodyBytes = 8 * 1024 * 1024;
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(RawClient.head(port, "POST", "/gw/" + route + "/upload",
                    "Content-Type: application/octet-stream", "Content-Length: " + bodyBytes)
                    .getBytes(StandardCharsets.ISO_8859_1));
            Thread sender = new Thread(() -> {
                try {
                    byte[] chunk = new byte[64 * 1024];
                    for (int sent = 0; sent < bodyBytes; sent += chunk.length) {
                        out.write(chunk);
                    }
                } catch (java.io.IOException stopped) {
                    // The gateway may close once it has answered: the rest of the body is not wanted.
                }
            }, "early-answer-sender");
            sender.setDaemon(true);
            sender.start();
            RawClient.Response response = RawClient.read(new BufferedInputStream(socket.getInputStream()), false);
            assertThat(response.status()).isEqualTo(413);
            assertThat(response.bodyUtf8()).isEqualTo("too big!");
        }
        assertNothingLeased(container, route);
    }

    /** A POST is never replayed, so it must not go out on a pooled connection the upstream already closed. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aPostAfterTheUpstreamClosedAnIdleConnectionIsDelivered(Container container) throws Exception {
        int port = port(container);
        assertThat(RawClient.request(port, "GET", "/gw/idle-close/1").bodyUtf8()).isEqualTo("first");
        assertThat(idleCloses.get(container).await(10, TimeUnit.SECONDS)).isTrue();
        // The client has its response before the servlet hands the connection back; its idle time starts then.
        assertNothingLeased(container, "idle-close");
        idleTime.advance(Duration.ofMillis(150)); // as long as a server's keep-alive timeout could be
        RawClient.Response post = RawClient.send(port, RawClient.head(port, "POST", "/gw/idle-close/orders",
                "Content-Type: text/plain", "Content-Length: 7"), "order=1".getBytes(StandardCharsets.UTF_8));
        assertThat(post.status()).as("%s", post).isEqualTo(200);
        assertThat(post.bodyUtf8()).isEqualTo("second");
        assertThat(upstreams.get(container).get("idle-close").requests()).hasSize(2);
        assertNothingLeased(container, "idle-close");
    }

    /** Behind an upstream that closes after every response, no request is lost to a connection it dropped. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void everyRequestToAnUpstreamThatClosesAfterEachResponseIsDelivered(Container container) throws Exception {
        int port = port(container);
        for (int i = 0; i < 4; i++) {
            String method = i == 2 ? "GET" : "POST";
            RawClient.Response response = RawClient.send(port, RawClient.head(port, method, "/gw/every-close/" + i,
                    "Content-Type: text/plain", "Content-Length: 7"), "order=1".getBytes(StandardCharsets.UTF_8));
            assertThat(response.status()).as("%s #%d: %s", method, i, response).isEqualTo(200);
            assertThat(response.bodyUtf8()).isEqualTo("/" + i);
            assertThat(closesAfterEach.get(container).tryAcquire(10, TimeUnit.SECONDS)).isTrue();
        }
        assertThat(upstreams.get(container).get("every-close").requests()).hasSize(4);
        assertNothingLeased(container, "every-close");
    }

    /**
     * Regression: Jetty presets its own {@code Date} and {@code Server}, and the upstream's were added next to them,
     * so the client got two of each; both are single-valued (RFC 9110 §5.3), and the origin's date is the one a proxy
     * forwards (§6.6.1).
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theUpstreamsDateAndServerReachTheClientAloneNotBesideTheContainersOwn(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/dated/x");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.headers("Date")).containsExactly("Tue, 01 Jan 2030 00:00:00 GMT");
        assertThat(response.headers("Server")).containsExactly("origin/1");
    }

    /**
     * Regression: Jetty added a charset the upstream never gave ({@code text/html} became
     * {@code text/html;charset=utf-8}), which in a browser overrides the page's own {@code <meta charset>}. The media
     * type passes as it came; a charset the upstream gave stays (containers may only respell it).
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theContentTypePassesWithoutACharsetTheUpstreamDidNotGive(Container container) throws Exception {
        assertThat(RawClient.request(port(container), "GET", "/gw/html/x").headers("Content-Type"))
                .containsExactly("text/html");
        List<String> labelled = RawClient.request(port(container), "GET", "/gw/labelled/x").headers("Content-Type");
        assertThat(labelled).hasSize(1);
        assertThat(labelled.get(0).replace(" ", "").toLowerCase(java.util.Locale.ROOT))
                .isEqualTo("text/plain;charset=windows-1252");
    }

    /** Regression: Jetty answered "Content-Length: 0", saying the GET's body was empty. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aHeadResponseWithoutALengthGetsNoLengthTheUpstreamDidNotGive(Container container) throws Exception {
        List<RawClient.Response> both = twoOnOneConnection(container, "HEAD", "/gw/head-unframed/events");
        assertThat(both.get(0).status()).isEqualTo(200);
        assertThat(both.get(0).header("Content-Type")).isEqualTo("text/event-stream");
        assertThat(both.get(0).headers("Content-Length")).isEmpty();
        assertInStep(both.get(1));
        assertNothingLeased(container, "head-unframed");
    }

    /** A head the container can write passes, however close to its limit (Tomcat's default 8 KiB is the lower). */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aLargeHeadTheContainerCanWritePassesWhole(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/large-head/x");
        assertThat(response.status()).as("%s", response.status()).isEqualTo(200);
        assertThat(response.header("Set-Cookie")).hasSize("big=".length() + LARGE_COOKIE);
        assertThat(response.bodyUtf8()).isEqualTo("ok");
    }

    /** Bytes an upstream sends past its framed body must never answer another client's request. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aResponseSmuggledPastTheBodyNeverReachesTheNextClient(Container container) throws Exception {
        RawClient.Response first = RawClient.request(port(container), "GET", "/gw/surplus/1");
        assertThat(first.bodyUtf8()).isEqualTo("ok");
        RawClient.Response next = RawClient.request(port(container), "GET", "/gw/surplus/2");
        assertThat(next.status()).isEqualTo(200);
        assertThat(next.bodyUtf8()).isEqualTo("second");
        assertNothingLeased(container, "surplus");
    }

    /** Bytes after a response that has no content (204, 304) are no content either, nor the next response. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aResponseSmuggledBehindA204OrA304NeverReachesTheNextRequest(Container container) throws Exception {
        for (String route : List.of("surplus-204", "surplus-304")) {
            List<RawClient.Response> both = twoOnOneConnection(container, "GET", "/gw/" + route + "/1");
            assertThat(both.get(0).status()).isIn(204, 304);
            assertThat(both.get(0).body()).isEmpty();
            assertThat(both.get(1).status()).as("%s: %s", route, both.get(1)).isEqualTo(200);
            assertThat(both.get(1).bodyUtf8()).isEqualTo("second");
            assertNothingLeased(container, route);
        }
    }

    /** Two requests on one client connection: the first to {@code path}, the second to the same route. */
    private List<RawClient.Response> twoOnOneConnection(Container container, String method, String path)
            throws Exception {
        int port = port(container);
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            InputStream in = new BufferedInputStream(socket.getInputStream());
            out.write(RawClient.head(port, method, path).getBytes(StandardCharsets.ISO_8859_1));
            RawClient.Response first = RawClient.read(in, "HEAD".equals(method));
            String route = path.substring(0, path.indexOf('/', "/gw/".length()));
            out.write(RawClient.head(port, "GET", route + "/in-step").getBytes(StandardCharsets.ISO_8859_1));
            return List.of(first, RawClient.read(in, false));
        }
    }

    /** The second response on the client connection is the one for the second request. */
    private static void assertInStep(RawClient.Response second) {
        assertThat(second.status()).as("second response %s", second).isIn(200, 204, 304);
        assertThat(second.complete()).isTrue();
    }

    private int port(Container container) {
        return containers.get(container).port();
    }

    private void assertNothingLeased(Container container, String route) {
        UpstreamProxyServlet servlet = servlets.get(container).get(route);
        Await.until("no connection of '" + route + "' is leased", SETTLE,
                () -> servlet.client().poolStats().getLeased() == 0, () -> "" + servlet.client().poolStats());
    }

    /** Answers its first request with {@code first}, exactly as given, and every later one with {@link #SECOND}. */
    private RawUpstream keepAlive(String first) throws Exception {
        return start(c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write(r.index() == 0 ? first : SECOND);
            }
        });
    }

    private RawUpstream start(RawUpstream.Behaviour behaviour, RawUpstream.Behaviour... then) throws Exception {
        RawUpstream upstream = RawUpstream.start(behaviour, then);
        closeables.add(upstream);
        return upstream;
    }
}
