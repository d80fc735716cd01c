package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What a fault leaves behind, in each container, over real sockets: after every kind of broken exchange, the next
 * request on the same client keep-alive connection and the next request to the same upstream each get exactly their
 * own answer (a proxy that reuses a connection out of step hands one client another's response), a broken upstream
 * connection is never pooled while a healthy one is, and no lease, bulkhead permit or metric sample is left over.
 */
@Timeout(120)
class ProxyServletConnectionStateTest {

    private static final Duration SETTLE = Duration.ofSeconds(15);

    /** How long the client waits for any byte: far over every timeout the servlet is given, so a hang shows. */
    private static final int CLIENT_READ_TIMEOUT_MILLIS = 20_000;

    /** A second response hidden behind the first one's framing: whoever reuses the connection gets it. */
    private static final String SMUGGLED = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nWRONG!";

    private static final String ROUTE = "r";

    /** The first upstream connection's behaviour, the request that meets it, and the answer it calls for. */
    private record Case(String name, RawUpstream.Behaviour first, String method, List<String> headers,
            byte[] body, Predicate<RawClient.Response> rightAnswer, Boolean upstreamConnectionReusable) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Arguments> cases() {
        List<Case> cases = new ArrayList<>();
        cases.add(fault("refused", null, "connection_refused"));
        cases.add(fault("reset-before-response", Behaviours.resetBeforeResponse(), "connection_terminated"));
        cases.add(fault("close-before-response", Behaviours.closeBeforeResponse(), "connection_terminated"));
        cases.add(fault("not-http", keepServingAfter(Behaviours.NOT_HTTP), "http_protocol_error"));
        cases.add(fault("bad-status-line", keepServingAfter(Behaviours.MALFORMED_STATUS_LINE), "http_protocol_error"));
        cases.add(fault("huge-header", Behaviours.hugeHeader(), "http_response_header_size"));
        cases.add(fault("conflicting-content-length", keepServingAfter(Behaviours.CONFLICTING_CONTENT_LENGTH),
                "http_protocol_error"));
        cases.add(fault("content-length-and-transfer-encoding",
                keepServingAfter(Behaviours.CONTENT_LENGTH_AND_TRANSFER_ENCODING), "http_protocol_error"));
        cases.add(cutOrFault("truncated-body", Behaviours.truncatedBody(), "http_response_incomplete"));
        cases.add(cutOrFault("truncated-chunked", Behaviours.truncatedChunk(), "http_response_incomplete"));
        cases.add(fault("bad-chunk-size", keepServingAfter(Behaviours.BAD_CHUNK), "http_protocol_error"));
        cases.add(cutOrFault("body-stall-after-commit", c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                        + (1024 * 1024) + "\r\n\r\n");
                c.write(new byte[64 * 1024]);
                c.stallUntilClosed();
            }
        }, "connection_read_timeout"));
        cases.add(fault("response-timeout", Behaviours.stall(), "connection_read_timeout"));
        cases.add(valid("upstream-503-with-a-body", keepServingAfter(
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nContent-Length: 4\r\n\r\nbusy"),
                "GET", List.of(), r -> r.status() == 503 && r.complete() && "busy".equals(r.bodyUtf8())
                        && "30".equals(r.header("Retry-After")) && r.header("Proxy-Status") == null, true));
        cases.add(valid("interim-then-final", keepServingAfter(
                "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                        + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"),
                "GET", List.of(), r -> r.status() == 200 && r.complete() && "final".equals(r.bodyUtf8()), true));
        // Clean answers without a body to read: the connection is in step, and reused.
        cases.add(valid("a-clean-head-answer", keepServingAfter("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"),
                "HEAD", List.of(), r -> r.status() == 200 && "6".equals(r.header("Content-Length")), true));
        cases.add(valid("a-clean-204", keepServingAfter("HTTP/1.1 204 No Content\r\n\r\n"),
                "GET", List.of(), r -> r.status() == 204, true));
        cases.add(valid("a-clean-304", keepServingAfter("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"),
                "GET", List.of("If-None-Match: \"v1\""), r -> r.status() == 304, true));
        cases.add(valid("a-clean-chunked-answer", keepServingAfter(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
                "GET", List.of(), r -> r.status() == 200 && r.complete() && "ok".equals(r.bodyUtf8()), true));
        // The upstream's Connection: close is about its own connection: the client's stays open, the upstream's is not
        // pooled.
        cases.add(valid("an-answer-closing-the-upstream-connection", Behaviours.respond(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"), "GET", List.of(),
                r -> r.status() == 200 && r.complete() && "ok".equals(r.bodyUtf8()) && r.header("Connection") == null,
                false));
        cases.add(valid("surplus-after-a-framed-body", keepServingAfter(
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + SMUGGLED),
                "GET", List.of(), r -> r.status() == 200 && r.complete() && "ok".equals(r.bodyUtf8()), false));
        cases.add(valid("surplus-after-a-chunked-body", keepServingAfter(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + SMUGGLED),
                "GET", List.of(), r -> r.status() == 200 && r.complete() && "ok".equals(r.bodyUtf8()), false));
        cases.add(valid("a-204-announcing-a-body", keepServingAfter(
                "HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\nWRONG!"),
                "GET", List.of(), r -> r.status() == 204, false));
        cases.add(valid("a-chunked-body-on-a-head-answer", keepServingAfter(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nWRONG!\r\n0\r\n\r\n"),
                "HEAD", List.of(), r -> r.status() == 200, false));
        cases.add(valid("a-body-on-a-204", keepServingAfter("HTTP/1.1 204 No Content\r\n\r\n" + SMUGGLED),
                "GET", List.of(), r -> r.status() == 204, false));
        cases.add(valid("a-body-on-a-304", keepServingAfter(
                "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n" + SMUGGLED),
                "GET", List.of("If-None-Match: \"v1\""), r -> r.status() == 304, false));
        cases.add(valid("a-body-on-a-head-answer", keepServingAfter(
                "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nWRONG!"),
                "HEAD", List.of(), r -> r.status() == 200 && "6".equals(r.header("Content-Length")), false));
        int upload = 1024 * 1024;
        cases.add(new Case("early-413-while-the-client-uploads", c -> {
            if (c.skipHead()) {
                c.write("HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n"
                        + "Connection: close\r\n\r\ntoo big!");
                c.reset();
            }
        }, "POST", List.of("Content-Type: application/octet-stream", "Content-Length: " + upload), new byte[upload],
                r -> r.status() == 413 && r.complete() && "too big!".equals(r.bodyUtf8()), false));
        // Answered by the head, on a connection kept open whose upstream then takes exactly the announced body: a
        // proxy that stops sending the body and pools the connection has its next request taken as more of the body.
        cases.add(new Case("early-413-on-a-connection-kept-open", c -> {
            if (c.skipHead()) {
                c.write("HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\n"
                        + "too big!");
                if (c.in().readNBytes(upload).length == upload) {
                    ownAnswers().handle(c);
                }
            }
        }, "POST", List.of("Content-Type: application/octet-stream", "Content-Length: " + upload), new byte[upload],
                r -> r.status() == 413 && r.complete() && "too big!".equals(r.bodyUtf8()), null));
        return Stream.of(Container.values()).flatMap(k -> cases.stream().map(c -> Arguments.of(k, c)));
    }

    @ParameterizedTest(name = "[{0}] {1}")
    @MethodSource("cases")
    void afterAFaultTheNextRequestOnTheClientConnectionAndToTheUpstreamGetExactlyTheirOwnAnswers(Container container,
            Case c) throws Exception {
        try (Fixture f = new Fixture(container, c)) {
            int calls = 0;
            try (Socket socket = f.connect()) {
                OutputStream out = socket.getOutputStream();
                InputStream in = new BufferedInputStream(socket.getInputStream());
                f.send(out, c);
                RawClient.Response first = RawClient.read(in, "HEAD".equals(c.method));
                calls++;
                assertThat(c.rightAnswer.test(first)).as("the faulting request's answer: %s", first).isTrue();
                f.awaitSenderDone();
                if (keptOpen(first) && c.body != null) {
                    // With the rest of the upload unread, Jetty closes after the answer without saying so first
                    // (RFC 9112 §9.3.1 allows it): the next request then meets a closed connection, never an answer.
                    RawClient.Response next = nextOrClosed(out, in, f.head("GET", "/next-1"));
                    if (next != null) {
                        calls++;
                        f.assertOwnAnswer(next, "/next-1");
                    }
                } else if (keptOpen(first)) {
                    out.write(f.head("GET", "/next-1").getBytes(StandardCharsets.ISO_8859_1));
                    out.flush();
                    RawClient.Response next = RawClient.read(in, false);
                    calls++;
                    f.assertOwnAnswer(next, "/next-1");
                } else {
                    assertClosedWithoutAnotherByte(in);
                }
            }
            f.assertAnsweredAgain(calls + 1, true);
        }
    }

    /**
     * The same faults on a pooled connection that has answered once already: what the fault leaves behind is judged
     * as on a fresh one (the faulting request's answer, the next one's, and no lease or permit left).
     */
    @ParameterizedTest(name = "[{0}] {1}")
    @MethodSource("cases")
    void aFaultOnAReusedUpstreamConnectionLeavesTheNextRequestItsOwnAnswer(Container container, Case c)
            throws Exception {
        if (c.first == null) {
            return; // nothing to reuse
        }
        RawUpstream.Behaviour warmThenFault = conn -> {
            RawUpstream.Request warm = conn.readRequest();
            if (warm != null) {
                String body = "own " + warm.target();
                conn.write("HTTP/1.1 200 OK\r\nContent-Length: " + body.length() + "\r\n\r\n" + body);
                c.first.handle(conn);
            }
        };
        Case warmed = new Case(c.name, warmThenFault, c.method, c.headers, c.body, c.rightAnswer,
                c.upstreamConnectionReusable);
        try (Fixture f = new Fixture(container, warmed)) {
            f.assertOwnAnswer(RawClient.request(f.port(), "GET", "/gw/" + ROUTE + "/warm"), "/warm");
            f.assertSettled();
            try (Socket socket = f.connect()) {
                f.send(socket.getOutputStream(), warmed);
                RawClient.Response first = RawClient.read(new BufferedInputStream(socket.getInputStream()),
                        "HEAD".equals(c.method));
                assertThat(c.rightAnswer.test(first)).as("the faulting request's answer: %s", first).isTrue();
                f.awaitSenderDone();
            }
            f.assertAnsweredAgain(3, true);
        }
    }

    /** Two requests written at once, the first one faulting: the second gets its own answer or a clean close. */
    @ParameterizedTest(name = "[{0}] {1}")
    @MethodSource("cases")
    void aPipelinedRequestBehindAFaultGetsItsOwnAnswerOrACleanClose(Container container, Case c) throws Exception {
        if (c.body != null) {
            return; // an upload is not pipelined by any client
        }
        try (Fixture f = new Fixture(container, c)) {
            int calls = 0;
            try (Socket socket = f.connect()) {
                OutputStream out = socket.getOutputStream();
                InputStream in = new BufferedInputStream(socket.getInputStream());
                out.write((f.head(c.method, "/fault", c.headers.toArray(String[]::new)) + f.head("GET", "/next-1"))
                        .getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
                RawClient.Response first = RawClient.read(in, "HEAD".equals(c.method));
                calls++;
                assertThat(c.rightAnswer.test(first)).as("the faulting request's answer: %s", first).isTrue();
                if (keptOpen(first)) {
                    RawClient.Response next = RawClient.read(in, false);
                    calls++;
                    f.assertOwnAnswer(next, "/next-1");
                } else {
                    assertClosedWithoutAnotherByte(in);
                }
            }
            f.assertAnsweredAgain(calls + 1, false);
        }
    }

    /**
     * A client that hangs up in the middle of a large download: the upstream connection, with most of its body unread,
     * is closed (not drained, not pooled), and the next request gets its own answer on a new connection.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientAbortingMidDownloadLeavesNoPoisonedUpstreamConnection(Container container) throws Exception {
        RawUpstream.Behaviour endless = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                        + (1L << 40) + "\r\n\r\n");
                byte[] chunk = new byte[64 * 1024];
                try {
                    for (;;) {
                        c.write(chunk);
                    }
                } catch (IOException proxyHungUp) {
                    // What the test waits for.
                }
            }
        };
        Case c = new Case("abort-mid-download", endless, "GET", List.of(), null, r -> true, false);
        try (Fixture f = new Fixture(container, c)) {
            try (Socket socket = f.connect()) {
                f.send(socket.getOutputStream(), c);
                InputStream in = new BufferedInputStream(socket.getInputStream());
                assertThat(RawClient.line(in)).startsWith("HTTP/1.1 200");
                in.readNBytes(128 * 1024); // well into the body
                socket.setSoLinger(true, 0); // a hard reset, as a killed browser tab
            }
            f.assertAnsweredAgain(2, true);
        }
    }

    /**
     * A client that hangs up while the gateway still waits for the upstream's head: once the response timeout ends
     * the wait, the upstream connection is closed, the permit released, and the next request gets its own answer.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientAbortingBeforeTheAnswerLeavesNoPoisonedUpstreamConnection(Container container) throws Exception {
        Case c = new Case("abort-before-the-answer", Behaviours.stall(), "GET", List.of(), null, r -> true, false);
        try (Fixture f = new Fixture(container, c)) {
            try (Socket socket = f.connect()) {
                f.send(socket.getOutputStream(), c);
                assertThat(f.upstream.awaitRequests(1, SETTLE)).isTrue();
                socket.setSoLinger(true, 0);
            }
            f.assertAnsweredAgain(2, true);
        }
    }

    /**
     * A client that hangs up in the middle of an upload: the upstream connection, with a request body it will never
     * get the rest of, is closed, and the next request gets its own answer on a new connection.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientAbortingMidUploadLeavesNoPoisonedUpstreamConnection(Container container) throws Exception {
        RawUpstream.Behaviour drain = c -> {
            if (c.skipHead()) {
                byte[] buffer = new byte[64 * 1024];
                try {
                    while (c.in().read(buffer) != -1) {
                        // The body as it comes, until the proxy gives up on it.
                    }
                } catch (IOException proxyHungUp) {
                    // Also an end.
                }
            }
        };
        Case c = new Case("abort-mid-upload", drain, "POST", List.of("Content-Type: application/octet-stream",
                "Content-Length: " + (8 * 1024 * 1024)), null, r -> true, false);
        try (Fixture f = new Fixture(container, c)) {
            try (Socket socket = f.connect()) {
                f.send(socket.getOutputStream(), c);
                socket.getOutputStream().write(new byte[256 * 1024]);
                socket.getOutputStream().flush();
                assertThat(f.upstream.awaitConnections(1, SETTLE)).isTrue();
                socket.setSoLinger(true, 0);
            }
            f.assertAnsweredAgain(2, true);
        }
    }

    /** Sends {@code head}: its answer, or {@code null} when the connection turned out closed before any byte of it. */
    private static RawClient.Response nextOrClosed(OutputStream out, InputStream in, String head) throws IOException {
        try {
            out.write(head.getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
        } catch (IOException closed) {
            assertClosedWithoutAnotherByte(in);
            return null;
        }
        in.mark(1);
        int b;
        try {
            b = in.read();
        } catch (SocketTimeoutException hang) {
            throw new AssertionError("The connection was neither used nor closed", hang);
        } catch (IOException reset) {
            return null;
        }
        if (b == -1) {
            return null;
        }
        in.reset();
        return RawClient.read(in, false);
    }

    private static boolean keptOpen(RawClient.Response r) {
        return r.complete() && !"close".equalsIgnoreCase(r.header("Connection"));
    }

    /** The container ended the connection: EOF or a reset, and neither a byte more nor a hang. */
    private static void assertClosedWithoutAnotherByte(InputStream in) throws IOException {
        int b;
        try {
            b = in.read();
        } catch (SocketTimeoutException hang) {
            throw new AssertionError("The connection was neither used nor closed", hang);
        } catch (IOException reset) {
            return;
        }
        assertThat(b).as("a byte after a response that left the connection unusable").isEqualTo(-1);
    }

    private static Case fault(String name, RawUpstream.Behaviour first, String error) {
        return new Case(name, first, "GET", List.of(), null, r -> r.status() == expectedStatus(error)
                && ("upstream-guard; error=" + error).equals(r.header("Proxy-Status")) && r.complete(), false);
    }

    /** A fault in the body: the gateway's answer if met before the commit, an aborted 200 after it. */
    private static Case cutOrFault(String name, RawUpstream.Behaviour first, String error) {
        Predicate<RawClient.Response> generated = fault(name, first, error).rightAnswer;
        return new Case(name, first, "GET", List.of(), null,
                r -> generated.test(r) || (r.status() == 200 && !r.complete()), false);
    }

    private static Case valid(String name, RawUpstream.Behaviour first, String method, List<String> headers,
            Predicate<RawClient.Response> right, boolean reusable) {
        return new Case(name, first, method, headers, null, right, reusable);
    }

    private static int expectedStatus(String error) {
        return error.equals("connection_read_timeout") ? 504 : 502;
    }

    /**
     * Reads one request, writes {@code raw} in one go (so any surplus is on the connection before the next request),
     * then keeps answering on the same connection as a healthy upstream would: only a proxy that reuses it sees that.
     */
    private static RawUpstream.Behaviour keepServingAfter(String raw) {
        return c -> {
            if (c.readRequest() != null) {
                c.write(raw);
                ownAnswers().handle(c);
            }
        };
    }

    /** A healthy keep-alive upstream answering each request with its own target, so a misplaced answer shows. */
    private static RawUpstream.Behaviour ownAnswers() {
        return c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                String body = "own " + r.target();
                c.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + body.length() + "\r\n\r\n"
                        + body);
            }
        };
    }

    /** One upstream (its first connection faulting, the later ones healthy), one servlet, one container. */
    private static final class Fixture implements AutoCloseable {
        final Case c;
        final RawUpstream upstream;
        final SimpleMeterRegistry meters = new SimpleMeterRegistry();
        final UpstreamProxyServlet servlet;
        final Container.Running running;
        Thread sender;

        Fixture(Container container, Case c) throws Exception {
            this.c = c;
            this.upstream = c.first == null ? null : RawUpstream.start(c.first, ownAnswers());
            String url = upstream == null ? ClosedPort.find().baseUrl() : upstream.baseUrl();
            this.servlet = UpstreamProxyServlet.builder(url)
                    .upstreamName(ROUTE)
                    .meterRegistry(meters)
                    .set("retry.enabled", "false") // each call meets exactly one upstream exchange
                    .set("circuit-breaker.enabled", "false")
                    .set("bulkhead.max-concurrent-calls", "1") // a permit left over shows as the next call's 503
                    .set("connect-timeout", "2s")
                    .set("response-timeout", "1500ms")
                    .build();
            this.running = container.start(new Container.Deployment().servlet(ROUTE, servlet, "/" + ROUTE + "/*"));
        }

        int port() {
            return running.port();
        }

        Socket connect() throws IOException {
            Socket socket = new Socket(InetAddress.getLoopbackAddress(), port());
            socket.setSoTimeout(CLIENT_READ_TIMEOUT_MILLIS);
            return socket;
        }

        String head(String method, String path, String... headers) {
            return RawClient.head(port(), method, "/gw/" + ROUTE + path, headers);
        }

        /** Writes the faulting request; its body, if any, from another thread, as a client keeps sending. */
        void send(OutputStream out, Case c) throws IOException {
            out.write(head(c.method, "/fault", c.headers.toArray(String[]::new)).getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            if (c.body != null) {
                sender = new Thread(() -> {
                    try {
                        out.write(c.body);
                        out.flush();
                    } catch (IOException refused) {
                        // The gateway may close once it has answered: the rest of the body is not wanted.
                    }
                }, "connection-state-sender");
                sender.setDaemon(true);
                sender.start();
            }
        }

        void awaitSenderDone() throws InterruptedException {
            if (sender != null) {
                sender.join(SETTLE.toMillis());
                assertThat(sender.isAlive()).as("the upload ended").isFalse();
            }
        }

        void assertOwnAnswer(RawClient.Response r, String path) {
            if (upstream == null) {
                assertThat(r.status()).as("%s", r).isEqualTo(502);
                assertThat(r.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_refused");
                return;
            }
            assertThat(r.status()).as("the answer to %s: %s", path, r).isEqualTo(200);
            assertThat(r.complete()).isTrue();
            assertThat(r.bodyUtf8()).isEqualTo("own " + path);
        }

        /**
         * Everything settles, a new client connection gets its own answer, everything settles again, and each of the
         * {@code calls} made in all (that answer's included) was recorded once; with {@code countConnections}, the
         * upstream connections are as the case expects.
         */
        void assertAnsweredAgain(int calls, boolean countConnections) throws IOException {
            assertSettled();
            assertOwnAnswer(RawClient.request(port(), "GET", "/gw/" + ROUTE + "/next-2"), "/next-2");
            assertSettled();
            if (countConnections) {
                assertUpstreamConnections();
            }
            assertCallsRecorded(calls);
        }

        void assertSettled() {
            Await.until("no connection is leased and no call is in flight", SETTLE,
                    () -> servlet.client().poolStats().getLeased() == 0
                            && servlet.client().upstream(ROUTE).callsInFlight() == 0,
                    () -> servlet.client().poolStats() + ", in flight "
                            + servlet.client().upstream(ROUTE).callsInFlight());
        }

        /** A broken connection is never reused, a healthy one always is; {@code null}: in step either way. */
        void assertUpstreamConnections() {
            if (upstream == null || c.upstreamConnectionReusable == null) {
                return;
            }
            assertThat(upstream.connectionCount()).as("upstream connections, requests %s", upstream.requests())
                    .isEqualTo(c.upstreamConnectionReusable ? 1 : 2);
        }

        void assertCallsRecorded(int calls) {
            Await.until("one upstream.guard.calls sample per call", SETTLE,
                    () -> recorded() == calls, () -> "recorded " + recorded() + " of " + calls + ": "
                            + meters.find("upstream.guard.calls").timers().stream()
                                    .map(t -> t.getId().getTags() + "=" + t.count()).toList());
        }

        private long recorded() {
            return meters.find("upstream.guard.calls").timers().stream().mapToLong(Timer::count).sum();
        }

        @Override
        public void close() {
            running.close();
            if (upstream != null) {
                upstream.close();
            }
        }
    }
}
