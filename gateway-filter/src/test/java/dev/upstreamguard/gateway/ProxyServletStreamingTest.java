package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.GuardedUpstream;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The response side of the proxy servlet under misbehaviour of either side, in each container: what the client
 * receives, whether its connection stays usable, what happens to the upstream connection, and what the call is
 * recorded as.
 */
@Timeout(30)
class ProxyServletStreamingTest {

    private static final Duration SETTLE = Duration.ofSeconds(15);

    /** One proxy servlet at {@code /gw/r/*} in {@code container}, in front of {@code upstream}. */
    private static final class Route implements AutoCloseable {
        final RawUpstream upstream;
        final UpstreamProxyServlet servlet;
        final SimpleMeterRegistry meters = new SimpleMeterRegistry();
        final Container.Running running;

        Route(Container container, RawUpstream upstream, String... settings) {
            this.upstream = upstream;
            UpstreamProxyServlet.Builder b = UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(meters)
                    .upstreamName("r");
            for (int i = 0; i < settings.length; i += 2) {
                b.set(settings[i], settings[i + 1]);
            }
            this.servlet = b.build();
            this.running = container.start(new Container.Deployment().servlet("r", servlet, "/r/*"));
        }

        int port() {
            return running.port();
        }

        GuardedUpstream guarded() {
            return servlet.client().upstream("r");
        }

        void assertNothingLeased() {
            Await.until("no upstream connection is leased and no call is in flight", SETTLE,
                    () -> servlet.client().poolStats().getLeased() == 0 && guarded().callsInFlight() == 0,
                    () -> servlet.client().poolStats() + ", in flight " + guarded().callsInFlight());
        }

        /** The single recorded call's outcome, once recorded. */
        String outcome() {
            Await.until("the call is on record", SETTLE, () -> !meters.find("upstream.guard.calls").timers().isEmpty());
            List<Timer> timers = List.copyOf(meters.find("upstream.guard.calls").timers());
            assertThat(timers).as("calls on record").hasSize(1);
            Timer t = timers.get(0);
            String fault = t.getId().getTag("fault");
            return t.getId().getTag("outcome") + (fault == null || fault.equals("none") ? "" : " " + fault);
        }

        long breakerFailures() {
            return guarded().circuitBreaker().orElseThrow().getMetrics().getNumberOfFailedCalls();
        }

        @Override
        public void close() {
            running.close();
            upstream.close();
        }
    }

    private static Socket connect(int port) throws IOException {
        Socket socket = new Socket(InetAddress.getLoopbackAddress(), port);
        socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
        return socket;
    }

    private static void send(Socket socket, int port, String method, String target, String... headers)
            throws IOException {
        socket.getOutputStream().write(RawClient.head(port, method, target, headers)
                .getBytes(StandardCharsets.ISO_8859_1));
        socket.getOutputStream().flush();
    }

    // --- the client hangs up mid-body -----------------------------------------------------------------------------

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientClosingMidDownloadOfAKnownLengthCutsTheUpstreamAndIsRecordedAsCancelled(Container container)
            throws Exception {
        CountDownLatch upstreamCut = new CountDownLatch(1);
        AtomicLong sent = new AtomicLong();
        try (Route route = new Route(container, RawUpstream.start(c -> {
            if (c.readRequest() == null) {
                return;
            }
            c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                    + (1L << 30) + "\r\n\r\n");
            byte[] data = new byte[64 * 1024];
            try {
                for (;;) {
                    c.write(data);
                    sent.addAndGet(data.length);
                }
            } catch (IOException cut) {
                upstreamCut.countDown();
            }
        }))) {
            try (Socket socket = connect(route.port())) {
                send(socket, route.port(), "GET", "/gw/r/big");
                InputStream in = socket.getInputStream();
                byte[] buffer = new byte[64 * 1024];
                long read = 0;
                while (read < 2 * 1024 * 1024) {
                    int n = in.read(buffer);
                    assertThat(n).isPositive();
                    read += n;
                }
                // An ordinary close (FIN), as a browser's cancelled download.
            }
            assertThat(upstreamCut.await(15, TimeUnit.SECONDS))
                    .as("the upstream connection is closed, not drained (sent %d bytes)", sent.get()).isTrue();
            assertThat(sent.get()).isLessThan(256L * 1024 * 1024);
            route.assertNothingLeased();
            assertThat(route.outcome()).isEqualTo("cancelled");
            assertThat(route.guarded().faultCounts()).isEmpty();
            assertThat(route.breakerFailures()).isZero();
        }
    }

    /**
     * A client that hangs up while the upstream is still working goes unnoticed until the answer comes (nothing reads
     * the client connection meanwhile); then a body too large for the container's buffer fails to reach it, and the
     * upstream exchange is cancelled: its connection closed, not drained, and the call on record as cancelled, not as
     * a fault of the upstream. A small answer the upstream completed is its success.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientGoneBeforeTheUpstreamAnswersIsNoFaultOfTheUpstream(Container container) throws Exception {
        for (int length : new int[] {4 * 1024 * 1024, 5}) {
            CountDownLatch requestRead = new CountDownLatch(1);
            CountDownLatch answer = new CountDownLatch(1);
            CountDownLatch upstreamCut = new CountDownLatch(1);
            try (Route route = new Route(container, RawUpstream.start(c -> {
                if (c.readRequest() == null) {
                    return;
                }
                requestRead.countDown();
                answer.await(30, TimeUnit.SECONDS);
                try {
                    c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                            + length + "\r\n\r\n");
                    byte[] data = new byte[Math.min(length, 64 * 1024)];
                    for (long left = length; left > 0; left -= data.length) {
                        c.write(data);
                    }
                    if (length > data.length) {
                        // All of it may fit the socket buffers: the proxy's close shows as the end of its input.
                        c.in().read();
                    }
                } catch (IOException cut) {
                    // The proxy closed the connection.
                }
                upstreamCut.countDown();
            }))) {
                try (Socket socket = connect(route.port())) {
                    send(socket, route.port(), "GET", "/gw/r/slow");
                    assertThat(requestRead.await(15, TimeUnit.SECONDS)).isTrue();
                    socket.setSoLinger(true, 0);
                }
                answer.countDown();
                assertThat(upstreamCut.await(15, TimeUnit.SECONDS)).as("the upstream is done").isTrue();
                route.assertNothingLeased();
                assertThat(route.outcome()).isEqualTo(length > 5 ? "cancelled" : "success");
                assertThat(route.guarded().faultCounts()).isEmpty();
                assertThat(route.breakerFailures()).isZero();
            }
        }
    }

    // --- a slow client ---------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientReadingMoreSlowlyThanTheResponseTimeoutGetsTheWholeBodyAndNothingIsBlamedOnTheUpstream(
            Container container) throws Exception {
        int length = 16 * 1024 * 1024;
        try (Route route = new Route(container, RawUpstream.start(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + length
                        + "\r\n\r\n");
                c.write(new byte[length]);
                c.stallUntilClosed();
            }
        }), "response-timeout", "300ms")) {
            // A small receive window, set before connecting: shrunk afterwards, under the window scale agreed in the
            // handshake, Linux may advertise a zero window for good and the connection stalls by itself.
            try (Socket socket = new Socket()) {
                socket.setReceiveBufferSize(16 * 1024);
                socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), route.port()));
                socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
                send(socket, route.port(), "GET", "/gw/r/slow");
                InputStream in = new BufferedInputStream(socket.getInputStream(), 1024);
                // Two stalls of a client busy elsewhere, each longer than the upstream's response timeout.
                String status = RawClient.line(in);
                assertThat(status).startsWith("HTTP/1.1 200");
                for (String l = RawClient.line(in); !l.isEmpty(); l = RawClient.line(in)) {
                    // the rest of the head
                }
                LockSupport.parkNanos(Duration.ofMillis(900).toNanos());
                long rest = in.readNBytes(64 * 1024).length;
                LockSupport.parkNanos(Duration.ofMillis(900).toNanos());
                rest += in.readNBytes(length - (int) rest).length;
                assertThat(rest).as("the whole body arrives").isGreaterThanOrEqualTo(length);
            }
            route.assertNothingLeased();
            assertThat(route.guarded().faultCounts()).isEmpty();
            assertThat(route.outcome()).isEqualTo("success");
        }
    }

    // --- a body that stalls after commit -----------------------------------------------------------------------------

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aBodyStallingAfterCommitIsAbortedAndRecordedAsAReadTimeout(Container container) throws Exception {
        try (Route route = new Route(container, RawUpstream.start(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n");
                c.write(new byte[64 * 1024]);
                c.stallUntilClosed();
            }
        }), "response-timeout", "400ms")) {
            RawClient.Response response = RawClient.request(route.port(), "GET", "/gw/r/stall");
            assertThat(response.status()).isEqualTo(200);
            assertThat(response.complete()).isFalse();
            route.assertNothingLeased();
            assertThat(route.outcome()).isEqualTo("fault connection_read_timeout");
            assertThat(route.guarded().faultCounts()).containsEntry(UpstreamFault.CONNECTION_READ_TIMEOUT, 1L);
            assertThat(route.breakerFailures()).isEqualTo(1);
        }
    }

    // --- surplus bytes ---------------------------------------------------------------------------------------------

    private static final String NEXT = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext";
    private static final String SMUGGLED = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!";

    private void assertSurplusGoesNowhere(Container container, String method, String first) throws Exception {
        try (Route route = new Route(container, RawUpstream.start(c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write(r.target().endsWith("/first") ? first : NEXT);
            }
        }))) {
            try (Socket socket = connect(route.port())) {
                InputStream in = new BufferedInputStream(socket.getInputStream());
                send(socket, route.port(), method, "/gw/r/first");
                RawClient.Response a = RawClient.read(in, method.equals("HEAD"));
                assertThat(a.status()).isEqualTo(200);
                send(socket, route.port(), "GET", "/gw/r/second");
                RawClient.Response b = RawClient.read(in, false);
                assertThat(b.status()).as("%s", b).isEqualTo(200);
                assertThat(b.bodyUtf8()).isEqualTo("next");
                send(socket, route.port(), "GET", "/gw/r/third");
                RawClient.Response c = RawClient.read(in, false);
                assertThat(c.bodyUtf8()).isEqualTo("next");
            }
            assertThat(route.upstream.connectionCount()).as("the upstream connection was not reused").isEqualTo(2);
            route.assertNothingLeased();
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aBodyLongerThanItsContentLengthNeverReachesTheClientConnection(Container container) throws Exception {
        assertSurplusGoesNowhere(container, "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + SMUGGLED);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aBodyBehindContentLengthZeroNeverReachesTheClientConnection(Container container) throws Exception {
        assertSurplusGoesNowhere(container, "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + SMUGGLED);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aBodyOnAHeadResponseNeverReachesTheClientConnection(Container container) throws Exception {
        assertSurplusGoesNowhere(container, "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aChunkedBodyOnAHeadResponseNeverReachesTheClientConnection(Container container) throws Exception {
        assertSurplusGoesNowhere(container, "HEAD",
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nevil!\r\n0\r\n\r\n");
    }

    // --- many small chunks --------------------------------------------------------------------------------------------

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void manySmallChunksThatArriveTogetherAreNotFlushedOneByOne(Container container) throws Exception {
        StringBuilder body = new StringBuilder("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 4000; i++) {
            body.append("10\r\n").append("0123456789abcdef").append("\r\n");
        }
        String all = body.append("0\r\n\r\n").toString();
        try (Route route = new Route(container, RawUpstream.start(c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write(all);
            }
        }))) {
            try (Socket socket = connect(route.port())) {
                InputStream in = new BufferedInputStream(socket.getInputStream());
                send(socket, route.port(), "GET", "/gw/r/many");
                String status = RawClient.line(in);
                assertThat(status).startsWith("HTTP/1.1 200");
                for (String l = RawClient.line(in); !l.isEmpty(); l = RawClient.line(in)) {
                    // head
                }
                int chunks = 0;
                long bytes = 0;
                for (;;) {
                    String size = RawClient.line(in);
                    long n = Long.parseLong(size.trim(), 16);
                    if (n == 0) {
                        RawClient.line(in);
                        break;
                    }
                    chunks++;
                    bytes += in.readNBytes((int) n).length;
                    RawClient.line(in);
                }
                assertThat(bytes).isEqualTo(4000 * 16);
                assertThat(chunks).as("chunks the client received for 64000 bytes").isLessThan(100);
            }
        }
    }

    // --- keep-alive after faults -----------------------------------------------------------------------------------

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theClientConnectionStaysUsableAfterEachFaultAnsweredBeforeCommit(Container container) throws Exception {
        try (Route route = new Route(container, RawUpstream.start(Behaviours.byPath("fine")),
                "response-timeout", "300ms", "retry.max-attempts", "1")) {
            try (Socket socket = connect(route.port())) {
                InputStream in = new BufferedInputStream(socket.getInputStream());
                for (String path : List.of("/reset", "/ok", "/not-http", "/ok", "/stall", "/ok", "/truncated", "/ok",
                        "/close", "/ok")) {
                    send(socket, route.port(), "GET", "/gw/r" + path);
                    RawClient.Response r = RawClient.read(in, false);
                    assertThat(r.complete()).as("%s: %s", path, r).isTrue();
                    if (path.equals("/ok")) {
                        assertThat(r.bodyUtf8()).isEqualTo("fine");
                    } else {
                        assertThat(r.status()).as("%s: %s", path, r).isIn(502, 503, 504);
                        assertThat(r.header("Connection")).as("%s: %s", path, r).isNull();
                    }
                }
            }
        }
    }

    // --- SSE, close-delimited ----------------------------------------------------------------------------------------

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anEventStreamDelimitedByTheCloseIsPassedOnEventByEvent(Container container) throws Exception {
        CountDownLatch clientSawFirstEvent = new CountDownLatch(1);
        try (Route route = new Route(container, RawUpstream.start(c -> {
            if (c.readRequest() == null) {
                return;
            }
            c.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                    + "data: first\n\n");
            if (clientSawFirstEvent.await(30, TimeUnit.SECONDS)) {
                c.write("data: second\n\n");
            }
        }))) {
            try (Socket socket = connect(route.port())) {
                send(socket, route.port(), "GET", "/gw/r/events");
                InputStream in = socket.getInputStream();
                StringBuilder seen = new StringBuilder();
                RawClient.readUntil(in, seen, "data: first"); // before the upstream sends more
                clientSawFirstEvent.countDown();
                RawClient.readUntil(in, seen, "data: second");
            }
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aKnownLengthBodyThatPausesIsPassedOnAsItArrives(Container container) throws Exception {
        CountDownLatch clientSawFirstPart = new CountDownLatch(1);
        try (Route route = new Route(container, RawUpstream.start(c -> {
            if (c.readRequest() == null) {
                return;
            }
            c.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nfirst");
            if (clientSawFirstPart.await(30, TimeUnit.SECONDS)) {
                c.write(" again");
            }
        }))) {
            try (Socket socket = connect(route.port())) {
                send(socket, route.port(), "GET", "/gw/r/progress");
                InputStream in = socket.getInputStream();
                socket.setSoTimeout(5000);
                RawClient.readUntil(in, new StringBuilder(), "\r\n\r\nfirst"); // before the upstream sends more
                clientSawFirstPart.countDown();
            }
        }
    }
}
