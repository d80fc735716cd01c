package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.assertFault;
import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.FakeTime;
import dev.upstreamguard.testing.RawUpstream;
import dev.upstreamguard.testing.TestTls;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.ByteArrayInputStream;
import java.net.Socket;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.classic.methods.HttpHead;
import org.apache.hc.client5.http.classic.methods.HttpPost;
import org.apache.hc.client5.http.classic.methods.HttpPut;
import org.apache.hc.client5.http.classic.methods.HttpUriRequestBase;
import org.apache.hc.client5.http.impl.io.PoolingHttpClientConnectionManager;
import org.apache.hc.client5.http.ssl.DefaultClientTlsStrategy;
import org.apache.hc.client5.http.ssl.TlsSocketStrategy;
import org.apache.hc.core5.http.ContentType;
import org.apache.hc.core5.http.io.entity.ByteArrayEntity;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.apache.hc.core5.http.io.entity.InputStreamEntity;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Pooled keep-alive connections over real sockets: a connection is reused only while requests and responses on it
 * still line up (RFC 9112 §9.2: responses match requests by order alone), and a connection the upstream closed while
 * idle costs a request no more than the design allows.
 */
@Timeout(30)
class ConnectionReuseTest {

    private static final String SECOND = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";

    private static final String REQUEST_TIMEOUT = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
            + "Content-Length: 7\r\n\r\ntimeout";

    private final FakeTime time = new FakeTime();

    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();

    private GuardedHttpClient client(int maxAttempts) {
        return client(GuardPolicy.builder().maxAttempts(maxAttempts));
    }

    private GuardedHttpClient client(GuardPolicy.Builder policy) {
        return GuardedHttpClients.custom().defaults(policy.connectTimeout(Duration.ofSeconds(5))
                .responseTimeout(Duration.ofSeconds(5)).initialBackoff(Duration.ofMillis(1))
                .maxBackoff(Duration.ofMillis(5)).build()).ticker(time).sleeper(time).meterRegistry(meters).build();
    }

    private double retries() {
        return meters.find("upstream.guard.retries").counters().stream().mapToDouble(Counter::count).sum();
    }

    /**
     * The first connection answers its first request with {@code first} (in one write, so the surplus is on the
     * connection before the next request is sent) and every later request with {@link #SECOND}; later connections
     * answer everything with {@link #SECOND}.
     */
    private static RawUpstream upstream(String first) throws Exception {
        RawUpstream.Behaviour keepAlive = c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write(r.index() == 0 ? first : SECOND);
            }
        };
        return RawUpstream.start(keepAlive);
    }

    static Stream<Arguments> outOfStep() {
        return Stream.of(
                Arguments.of("body longer than its Content-Length", "GET",
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 200),
                Arguments.of("a whole response smuggled after the body", "GET",
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                                + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!", 200),
                Arguments.of("bytes after the last chunk", "GET",
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nEXTRA", 200),
                Arguments.of("a body on a 304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\nok", 304),
                Arguments.of("a body on a 204", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\nok", 204),
                Arguments.of("a body on a HEAD response", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                        200));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("outOfStep")
    void bytesTheUpstreamSentBeyondItsResponseNeverBecomeTheNextRequestsResponse(String what, String method,
            String first, int status) throws Exception {
        try (RawUpstream upstream = upstream(first); GuardedHttpClient client = client(1)) {
            HttpUriRequestBase request = "HEAD".equals(method) ? new HttpHead(upstream.uri("/1"))
                    : new HttpGet(upstream.uri("/1"));
            int seen = client.execute(request, r -> {
                EntityUtils.consume(r.getEntity());
                return r.getCode();
            });
            assertThat(seen).isEqualTo(status);

            String next = client.execute(new HttpGet(upstream.uri("/2")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(next).isEqualTo("200 second");
            assertThat(upstream.requests().get(1).connectionIndex()).as("the out-of-step connection was dropped")
                    .isEqualTo(1);
        }
    }

    /**
     * Regression: over TLS the surplus is still encrypted on the TCP socket when the next request leases the
     * connection (the TLS socket counts only bytes it has decrypted), so the smuggled response answered that request.
     * The surplus goes out as its own TLS record, written once the first response is out.
     */
    @Test
    void aResponseSmuggledInItsOwnTlsRecordNeverBecomesTheNextRequestsResponse() throws Exception {
        CountDownLatch smuggled = new CountDownLatch(1);
        RawUpstream.Behaviour keepAlive = c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                if (r.index() == 0) {
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!");
                    smuggled.countDown();
                } else {
                    c.write(SECOND);
                }
            }
        };
        // The TCP socket under the TLS one, so the test can wait until the surplus has arrived (loopback delivery
        // can lag the upstream's write on a loaded machine); the pool must then notice it without a probe.
        AtomicReference<Socket> tcp = new AtomicReference<>();
        TlsSocketStrategy tls = new DefaultClientTlsStrategy(TestTls.clientContext());
        PoolingHttpClientConnectionManager manager = GuardedHttpClients.connectionManagerBuilder()
                .setTlsSocketStrategy((socket, target, port, attachment, context) -> {
                    tcp.set(socket);
                    return tls.upgrade(socket, target, port, attachment, context);
                }).build();
        try (RawUpstream upstream = RawUpstream.startTls(false, keepAlive);
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(GuardPolicy.builder()
                        .connectTimeout(Duration.ofSeconds(10)).responseTimeout(Duration.ofSeconds(5)).maxAttempts(3)
                        .build()).connectionManager(manager).ticker(time).sleeper(time).build()) {
            String first = client.execute(new HttpGet(upstream.baseUrl() + "/1"),
                    r -> EntityUtils.toString(r.getEntity()));
            assertThat(first).isEqualTo("ok");
            assertThat(smuggled.await(10, TimeUnit.SECONDS)).isTrue();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (tcp.get().getInputStream().available() == 0) {
                assertThat(System.nanoTime()).as("the surplus arrived").isLessThan(deadline);
                LockSupport.parkNanos(1_000_000);
            }
            String next = client.execute(new HttpGet(upstream.baseUrl() + "/2"),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(next).isEqualTo("200 second");
        }
    }

    /** Looking at the TCP socket under TLS finds nothing on a healthy connection: it stays in the pool. */
    @Test
    void aWellFramedTlsResponseLeavesItsConnectionInThePool() throws Exception {
        RawUpstream.Behaviour keepAlive = c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write(SECOND);
            }
        };
        try (RawUpstream upstream = RawUpstream.startTls(false, keepAlive);
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(GuardPolicy.builder()
                        .connectTimeout(Duration.ofSeconds(10)).responseTimeout(Duration.ofSeconds(5)).build())
                        .sslContext(TestTls.clientContext()).ticker(time).sleeper(time).build()) {
            for (int i = 0; i < 3; i++) {
                String seen = client.execute(new HttpGet(upstream.baseUrl() + "/" + i),
                        r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
                assertThat(seen).isEqualTo("200 second");
            }
            assertThat(upstream.connectionCount()).isEqualTo(1);
        }
    }

    static Stream<Arguments> wellFramed() {
        return Stream.of(
                Arguments.of("Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
                Arguments.of("chunked with trailers",
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"),
                Arguments.of("304 with the representation's Content-Length",
                        "HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\n\r\n"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("wellFramed")
    void aWellFramedResponseLeavesItsConnectionInThePool(String what, String first) throws Exception {
        try (RawUpstream upstream = upstream(first); GuardedHttpClient client = client(1)) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> {
                EntityUtils.consume(r.getEntity());
                return null;
            });
            String next = client.execute(new HttpGet(upstream.uri("/2")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(next).isEqualTo("200 second");
            assertThat(upstream.connectionCount()).isEqualTo(1);
        }
    }

    @Test
    void aGetOnAConnectionTheUpstreamClosedWhileIdleIsRetriedTransparently() throws Exception {
        Semaphore closed = new Semaphore(0);
        try (RawUpstream upstream = RawUpstream.start(answerOnceThenClose(closed), keepAliveSecond());
                GuardedHttpClient client = client(3)) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(closed.tryAcquire(10, TimeUnit.SECONDS)).isTrue();

            String next = client.execute(new HttpGet(upstream.uri("/2")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(next).isEqualTo("200 second");
        }
    }

    /**
     * A POST is never replayed (RFC 9110 §9.2.2), so it must not be sent on a connection the upstream already closed:
     * requests that could not be retried have the pooled connection probed for a close first, once it has idled as
     * long as a server's keep-alive timeout could be.
     */
    @Test
    void aPostAfterTheUpstreamClosedTheIdleConnectionGoesOutOnAFreshConnection() throws Exception {
        Semaphore closed = new Semaphore(0);
        try (RawUpstream upstream = RawUpstream.start(answerOnceThenClose(closed), keepAliveSecond());
                GuardedHttpClient client = client(3)) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(closed.tryAcquire(10, TimeUnit.SECONDS)).isTrue();
            time.advance(Duration.ofMillis(150));

            String seen = client.execute(FaultMatrixTest.post(upstream.uri("/orders")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(seen).isEqualTo("200 second");
            assertThat(upstream.requests()).hasSize(2);
            assertThat(upstream.requests().get(1).connectionIndex()).isEqualTo(1);
        }
    }

    /** The same for a GET that may not be retried: with one attempt there is nothing to recover with. */
    @Test
    void aGetThatMayNotBeRetriedAlsoAvoidsAConnectionTheUpstreamClosed() throws Exception {
        Semaphore closed = new Semaphore(0);
        try (RawUpstream upstream = RawUpstream.start(answerOnceThenClose(closed), keepAliveSecond());
                GuardedHttpClient client = client(1)) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(closed.tryAcquire(10, TimeUnit.SECONDS)).isTrue();
            time.advance(Duration.ofMillis(150));

            String seen = client.execute(new HttpGet(upstream.uri("/2")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(seen).isEqualTo("200 second");
        }
    }

    /** A POST the upstream took and then dropped without an answer may have been acted on: it is not replayed. */
    @Test
    void aPostWhoseConnectionBrokeAfterItWasSentIsNotReplayed() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.closeBeforeResponse(), keepAliveSecond());
                GuardedHttpClient client = client(3)) {
            assertFault(failure(client, FaultMatrixTest.post(upstream.uri("/orders"))), "connection_terminated", 502,
                    1);
            assertThat(upstream.requestCount()).isEqualTo(1);
        }
    }

    /**
     * An upstream that closes after every response without saying {@code Connection: close} (RFC 9112 §9.6 asks it
     * to) drops each pooled connection before its next request. The first reuse that finds a connection dropped
     * teaches the client to stop reusing connections to that address; a POST is never sent on one.
     */
    @Test
    void noPostToAnUpstreamThatClosesAfterEveryResponseIsLost() throws Exception {
        Semaphore closed = new Semaphore(0);
        try (RawUpstream upstream = RawUpstream.start(answerOnceThenClose(closed));
                GuardedHttpClient client = client(3)) {
            for (int i = 0; i < 6; i++) {
                String seen = client.execute(FaultMatrixTest.post(upstream.uri("/orders/" + i)),
                        r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
                assertThat(seen).as("POST #%d", i).isEqualTo("200 first");
                assertThat(closed.tryAcquire(10, TimeUnit.SECONDS)).isTrue();
            }
            assertThat(upstream.requests()).extracting(RawUpstream.Request::connectionIndex)
                    .containsExactly(0, 1, 2, 3, 4, 5);
            assertThat(retries()).isZero();
        }
    }

    /** The same upstream costs GETs one request sent again in all, not one per request, and no retry. */
    @Test
    void getsToAnUpstreamThatClosesAfterEveryResponseAreSentAgainOnceInAllAndNeverRetried() throws Exception {
        Semaphore closed = new Semaphore(0);
        try (RawUpstream upstream = RawUpstream.start(answerOnceThenClose(closed));
                GuardedHttpClient client = client(3)) {
            for (int i = 0; i < 6; i++) {
                String seen = client.execute(new HttpGet(upstream.uri("/items/" + i)),
                        r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
                assertThat(seen).as("GET #%d", i).isEqualTo("200 first");
                assertThat(closed.tryAcquire(10, TimeUnit.SECONDS)).isTrue();
            }
            assertThat(upstream.requestCount()).isEqualTo(6);
            assertThat(upstream.connectionCount()).isEqualTo(6);
            assertThat(retries()).isZero();
        }
    }

    /**
     * Regression: an upstream that answers 503 (or 429) and then closes, without {@code Connection: close}, left each
     * answered connection in the pool; the retry went out on it, failed before any response, and that failure took one
     * of the call's attempts. Three attempts reached the upstream twice. A request the upstream never received on a
     * connection it had closed is sent again at once on a fresh connection, and is no attempt of its own.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"503", "429"})
    void anUpstreamClosingAfterEachAnswerReceivesEveryAttempt(int status) throws Exception {
        String answer = "HTTP/1.1 " + status + " X\r\nContent-Length: 2\r\n\r\nok";
        try (RawUpstream upstream = RawUpstream.start(Behaviours.respond(answer)); GuardedHttpClient client = client(3)) {
            int seen = statusOf(client, new HttpGet(upstream.uri("/items")));

            assertThat(seen).isEqualTo(status);
            assertThat(upstream.requestCount()).isEqualTo(3);
            assertThat(retries()).isEqualTo(2);
            assertThat(meters.find("upstream.guard.retries").tag("fault", "connection_terminated").counter())
                    .isNull();
        }
    }

    /**
     * The last attempt's request sent on a connection the upstream had closed is sent again too, so the caller gets
     * the upstream's answer (a 429, no failure for the breaker) instead of a {@code connection_terminated} fault the
     * upstream never caused, counted against it.
     */
    @Test
    void aLastAttemptOnAConnectionTheUpstreamClosedIsSentAgainNotFailed() throws Exception {
        String answer = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\nok";
        try (RawUpstream upstream = RawUpstream.start(Behaviours.respond(answer)); GuardedHttpClient client = client(2)) {
            int seen = statusOf(client, new HttpGet(upstream.uri("/items")));

            assertThat(seen).isEqualTo(429);
            assertThat(upstream.requestCount()).isEqualTo(2);
            CircuitBreaker breaker = client.upstream(upstream.baseUrl()).circuitBreaker().orElseThrow();
            assertThat(breaker.getMetrics().getNumberOfFailedCalls()).isZero();
            assertThat(client.upstream(upstream.baseUrl()).faultCounts()).isEmpty();
            assertThat(meters.find("upstream.guard.calls").tag("outcome", "fault").timer()).isNull();
        }
    }

    /**
     * Sending again on a fresh connection is not an attempt: when the fresh connection then fails, that failure is
     * the attempt's, and the call still has its other attempts.
     */
    @Test
    void aFreshConnectionFailingAfterTheSendAgainIsTheAttemptsFailureAndIsRetried() throws Exception {
        Semaphore closed = new Semaphore(0);
        try (RawUpstream upstream = RawUpstream.start(answerOnceThenClose(closed), Behaviours.closeBeforeResponse(),
                keepAliveSecond()); GuardedHttpClient client = client(2)) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(closed.tryAcquire(10, TimeUnit.SECONDS)).isTrue();

            String seen = client.execute(new HttpGet(upstream.uri("/2")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));

            assertThat(seen).isEqualTo("200 second");
            assertThat(upstream.requests()).extracting(RawUpstream.Request::connectionIndex).containsExactly(0, 1, 2);
            assertThat(retries()).isEqualTo(1);
        }
    }

    /**
     * The same when the closed connection breaks while the body is being written (a large PUT meets the reset of an
     * upstream that had closed it), not only when the response is awaited.
     */
    @Test
    void aLargePutWhoseBodyMeetsTheCloseOfAReusedConnectionIsSentAgainNotRetried() throws Exception {
        Semaphore closed = new Semaphore(0);
        try (RawUpstream upstream = RawUpstream.start(answerOnceThenClose(closed), keepAliveSecond());
                GuardedHttpClient client = client(3)) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(closed.tryAcquire(10, TimeUnit.SECONDS)).isTrue();

            HttpPut put = new HttpPut(upstream.uri("/2"));
            put.setEntity(new ByteArrayEntity(new byte[4 * 1024 * 1024], ContentType.APPLICATION_OCTET_STREAM));
            String seen = client.execute(put, r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));

            assertThat(seen).isEqualTo("200 second");
            assertThat(upstream.requests()).extracting(RawUpstream.Request::connectionIndex).containsExactly(0, 1);
            assertThat(retries()).isZero();
        }
    }

    /**
     * An upstream that reads the request on a reused connection and then closes or resets it without an answer (a
     * worker recycled between requests) is the same race; over TLS the break surfaces as the TLS socket's own
     * exception, and is sent again all the same.
     */
    @ParameterizedTest(name = "TLS={0}, {1}")
    @CsvSource({"false, close", "false, reset", "true, close", "true, reset"})
    void aReusedConnectionBrokenUnderTheRequestIsSentAgainOverPlainAndTlsConnections(boolean tls, String how)
            throws Exception {
        RawUpstream.Behaviour answerOnceThenBreak = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
            }
            if (c.readRequest() != null) {
                if ("reset".equals(how)) {
                    c.reset();
                } else {
                    c.close();
                }
            }
        };
        try (RawUpstream upstream = tls ? RawUpstream.startTls(false, answerOnceThenBreak, keepAliveSecond())
                : RawUpstream.start(answerOnceThenBreak, keepAliveSecond());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(GuardPolicy.builder()
                        .connectTimeout(Duration.ofSeconds(10)).responseTimeout(Duration.ofSeconds(5)).build())
                        .sslContext(TestTls.clientContext()).ticker(time).sleeper(time).meterRegistry(meters)
                        .build()) {
            client.execute(new HttpGet(upstream.baseUrl() + "/1"), r -> EntityUtils.toString(r.getEntity()));

            String seen = client.execute(new HttpGet(upstream.baseUrl() + "/2"),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));

            assertThat(seen).isEqualTo("200 second");
            assertThat(upstream.requests()).extracting(RawUpstream.Request::connectionIndex).containsExactly(0, 0, 1);
            assertThat(retries()).isZero();
        }
    }

    /**
     * A POST is never sent again (RFC 9110 §9.2.2), even on a connection reused at once from an upstream whose reused
     * connections have answered before (so it was not probed): once written, nothing tells a request the upstream never
     * saw from one it acted on.
     */
    @Test
    void aPostOnAConnectionTheUpstreamClosedIsNeverSentAgain() throws Exception {
        Semaphore closed = new Semaphore(0);
        RawUpstream.Behaviour answerTwiceThenClose = c -> {
            for (int i = 0; i < 2 && c.readRequest() != null; i++) {
                c.write(SECOND);
            }
            c.close();
            closed.release();
        };
        try (RawUpstream upstream = RawUpstream.start(answerTwiceThenClose, keepAliveSecond());
                GuardedHttpClient client = client(3)) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> EntityUtils.toString(r.getEntity()));
            client.execute(new HttpGet(upstream.uri("/2")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(closed.tryAcquire(10, TimeUnit.SECONDS)).isTrue();

            assertFault(failure(client, FaultMatrixTest.post(upstream.uri("/orders"))), "connection_terminated", 502,
                    1);
            assertThat(upstream.connectionCount()).isEqualTo(1);
            assertThat(retries()).isZero();
        }
    }

    /**
     * A dropped connection may also mean the upstream restarted: the lesson lapses, and once a reused connection
     * answers again, connections are kept as usual.
     */
    @Test
    void reuseResumesOnceTheLessonLapsesAndAReusedConnectionAnswers() throws Exception {
        Semaphore closed = new Semaphore(0);
        try (RawUpstream upstream = RawUpstream.start(answerOnceThenClose(closed), keepAliveSecond());
                GuardedHttpClient client = client(3)) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(closed.tryAcquire(10, TimeUnit.SECONDS)).isTrue();
            // Reuses the dropped connection, learns, and is sent again on connection 1.
            client.execute(new HttpGet(upstream.uri("/2")), r -> EntityUtils.toString(r.getEntity()));
            // Connection 1 is alive, but not reused while the lesson holds.
            client.execute(new HttpGet(upstream.uri("/3")), r -> EntityUtils.toString(r.getEntity()));

            time.advance(Duration.ofSeconds(61));
            client.execute(new HttpGet(upstream.uri("/4")), r -> EntityUtils.toString(r.getEntity()));
            client.execute(FaultMatrixTest.post(upstream.uri("/5")), r -> EntityUtils.toString(r.getEntity()));

            assertThat(upstream.requests()).extracting(RawUpstream.Request::connectionIndex)
                    .containsExactly(0, 1, 2, 2, 2);
            assertThat(retries()).isZero();
        }
    }

    /**
     * Regression: an upstream that closes a connection idle for its keep-alive timeout may first answer 408 Request
     * Timeout (RFC 9110 §15.5.9), and a request sent at that moment reads that 408 as its answer. The caller got the
     * 408 though the upstream never took the request; it is the same race as a close, and the RFC lets the client
     * repeat the request: it goes out again on a fresh connection, POST included, as browsers do, and like a request
     * sent again after a close it is no retry: the retry budget (none here) does not stop it and no retry is counted.
     */
    @ParameterizedTest(name = "{0}, Connection: close={1}")
    @CsvSource({"GET, true", "POST, true", "GET, false", "POST, false"})
    void a408FromAnUpstreamTimingOutTheIdleConnectionIsSentAgainOnAFreshOneWithoutARetry(String method,
            boolean saysClose) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(answerThenTimeOut("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                + "first", saysClose), keepAliveSecond());
                GuardedHttpClient client = client(GuardPolicy.builder().maxAttempts(3).budgetRatio(0)
                        .budgetMinPerSecond(0))) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> EntityUtils.toString(r.getEntity()));
            time.advance(Duration.ofMillis(500));

            HttpUriRequestBase second = "GET".equals(method) ? new HttpGet(upstream.uri("/2"))
                    : FaultMatrixTest.post(upstream.uri("/2"));
            String seen = client.execute(second, r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));

            assertThat(seen).isEqualTo("200 second");
            assertThat(upstream.requests()).extracting(RawUpstream.Request::connectionIndex).containsExactly(0, 0, 1);
            assertThat(retries()).isZero();
            assertThat(meters.find("upstream.guard.retry.budget.exhausted").counter().count()).isZero();
        }
    }

    /**
     * Regression: the 408 of an upstream timing out the pooled connection took one of the call's attempts. With two
     * attempts, a 503 retried on its kept-alive connection met that 408, and the caller got the 408 as the last
     * attempt's answer: a request the upstream never took. It is sent again on a fresh connection within the attempt.
     */
    @Test
    void a408TimingOutTheConnectionOfTheLastAttemptIsSentAgainNotTheAnswer() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(answerThenTimeOut(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", true), keepAliveSecond());
                GuardedHttpClient client = client(2)) {
            String seen = client.execute(new HttpGet(upstream.uri("/items")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));

            assertThat(seen).isEqualTo("200 second");
            assertThat(upstream.requests()).extracting(RawUpstream.Request::connectionIndex).containsExactly(0, 0, 1);
            assertThat(retries()).isEqualTo(1);
            assertThat(meters.find("upstream.guard.retries").tag("fault", "status_408").counter()).isNull();
        }
    }

    /** With retries off a request is never sent twice: the 408 is the upstream's answer. */
    @Test
    void a408TimingOutTheConnectionIsTheAnswerWhenRetriesAreOff() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(answerThenTimeOut(SECOND, true), keepAliveSecond());
                GuardedHttpClient client = client(1)) {
            client.execute(new HttpGet(upstream.uri("/1")), r -> EntityUtils.toString(r.getEntity()));

            String seen = client.execute(new HttpGet(upstream.uri("/2")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));

            assertThat(seen).isEqualTo("408 timeout");
            assertThat(upstream.requests()).extracting(RawUpstream.Request::connectionIndex).containsExactly(0, 0);
        }
    }

    /**
     * A 408 on a fresh connection, or on a reused one for a request that cannot be sent again, is the upstream's answer
     * and reaches the caller.
     */
    @Test
    void a408OnAFreshConnectionOrForABodyThatCannotBeReplayedIsTheAnswer() throws Exception {
        RawUpstream.Behaviour timesOut = c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                if (r.target().equals("/ok")) {
                    c.write(SECOND);
                } else {
                    c.write(REQUEST_TIMEOUT);
                    return;
                }
            }
        };
        try (RawUpstream upstream = RawUpstream.start(timesOut); GuardedHttpClient client = client(3)) {
            String fresh = client.execute(new HttpGet(upstream.uri("/slow")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(fresh).isEqualTo("408 timeout");

            client.execute(new HttpGet(upstream.uri("/ok")), r -> EntityUtils.toString(r.getEntity()));
            HttpPost oneShot = new HttpPost(upstream.uri("/upload"));
            oneShot.setEntity(new InputStreamEntity(new ByteArrayInputStream(new byte[] {1, 2, 3}), 3,
                    ContentType.APPLICATION_OCTET_STREAM));
            String reused = client.execute(oneShot, r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(reused).isEqualTo("408 timeout");
            assertThat(upstream.requests()).extracting(RawUpstream.Request::connectionIndex).containsExactly(0, 1, 1);
            assertThat(retries()).isZero();
        }
    }

    private static int statusOf(GuardedHttpClient client, HttpGet get) throws Exception {
        return client.execute(get, r -> {
            EntityUtils.consume(r.getEntity());
            return r.getCode();
        });
    }

    private static RawUpstream.Behaviour answerOnceThenClose(Semaphore closed) {
        return c -> {
            if (c.readRequest() != null) {
                // No "Connection: close": a server may close an idle connection at any time (RFC 9112 §9.5).
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
            }
            c.close();
            closed.release();
        };
    }


    /**
     * Answers the first request with {@code first}, then times the connection out as the second request arrives: a
     * 408, saying {@code Connection: close} or not, and the close.
     */
    private static RawUpstream.Behaviour answerThenTimeOut(String first, boolean saysClose) {
        return c -> {
            if (c.readRequest() == null) {
                return;
            }
            c.write(first);
            if (c.readRequest() != null) {
                // Without "Connection: close" the pool must still not hand the connection on.
                c.write(saysClose ? REQUEST_TIMEOUT : "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n");
            }
        };
    }

    private static RawUpstream.Behaviour keepAliveSecond() {
        return c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write(SECOND);
            }
        };
    }
}
