package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.assertFault;
import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.SequenceInputStream;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.classic.methods.HttpPost;
import org.apache.hc.client5.http.classic.methods.HttpPut;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ContentType;
import org.apache.hc.core5.http.io.entity.ByteArrayEntity;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.apache.hc.core5.http.io.entity.InputStreamEntity;
import org.apache.hc.core5.http.io.support.ClassicRequestBuilder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Request bodies the upstream does not take, and bodies whose source is slow. */
@Timeout(60)
class UploadTest {

    /** Far more than the loopback socket buffers hold, so a write blocks once the upstream stops reading. */
    static final int BODY_BYTES = 16 * 1024 * 1024;

    private static GuardPolicy policy() {
        return GuardPolicy.builder().connectTimeout(Duration.ofSeconds(5)).responseTimeout(Duration.ofSeconds(1))
                .totalTimeout(Duration.ofSeconds(40)).build();
    }

    /** Reads the request head, then reads nothing more until the test ends (or 50 s pass). */
    private static RawUpstream.Behaviour readHeadThenStopReading(CountDownLatch testDone) {
        return c -> {
            if (c.skipHead()) {
                testDone.await(50, TimeUnit.SECONDS);
            }
        };
    }

    /**
     * Regression: a socket write has no timeout, and the response timeout is a read timeout, so an upload the upstream
     * stopped reading blocked until the total deadline (30 s by default) and was then blamed on it as
     * http_response_timeout.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"POST", "PUT", "built POST"})
    void anUploadTheUpstreamStopsReadingEndsWithinTheResponseTimeoutAsAWriteTimeout(String method) throws Exception {
        CountDownLatch testDone = new CountDownLatch(1);
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(readHeadThenStopReading(testDone));
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy()).meterRegistry(meters)
                        .build()) {
            ByteArrayEntity body = new ByteArrayEntity(new byte[BODY_BYTES], ContentType.APPLICATION_OCTET_STREAM);
            // Regression ("built POST"): HttpClient cannot cancel a request built with HttpCore's ClassicRequestBuilder,
            // so nothing ended its upload, which blocked until the upstream closed the connection.
            ClassicHttpRequest request = method.equals("built POST")
                    ? ClassicRequestBuilder.post(upstream.uri("/file")).setEntity(body).build()
                    : method.equals("PUT") ? new HttpPut(upstream.uri("/file")) : new HttpPost(upstream.uri("/file"));
            request.setEntity(body);
            long start = System.nanoTime();
            UpstreamException e = failure(client, request);
            long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertFault(e, "connection_write_timeout", 504, 1);
            assertThat(millis).as("ended after the 1 s response timeout, far from the 40 s deadline")
                    .isGreaterThanOrEqualTo(900).isLessThan(15_000);
            // Not replayed, not even the repeatable PUT: the upstream takes no data.
            assertThat(upstream.connectionCount()).isEqualTo(1);
            GuardedUpstream state = client.upstream(upstream.baseUrl());
            assertThat(state.faultCounts()).containsEntry(dev.upstreamguard.UpstreamFault.CONNECTION_WRITE_TIMEOUT, 1L);
            assertThat(state.callsInFlight()).isZero();
            // The timer that cancelled the exchange returns its connection, just after the caller saw it fail.
            Await.until("the connection is back in the pool", Duration.ofSeconds(10),
                    () -> client.poolStats().getLeased() == 0);
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "fault")
                    .tag("fault", "connection_write_timeout").timer().count()).isEqualTo(1);
        } finally {
            testDone.countDown();
        }
    }

    /**
     * Regression: the watch ends a stalled upload by cancelling the request, and the mark stayed on the request object:
     * sending it again, once the upstream took bodies again, failed at once as cancelled by the caller.
     */
    @Test
    void aRequestWhoseUploadStalledCanBeSentAgain() throws Exception {
        CountDownLatch testDone = new CountDownLatch(1);
        try (RawUpstream upstream = RawUpstream.start(readHeadThenStopReading(testDone), Behaviours.echo());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy()).build()) {
            HttpPut put = new HttpPut(upstream.uri("/file"));
            put.setEntity(new ByteArrayEntity(new byte[BODY_BYTES], ContentType.APPLICATION_OCTET_STREAM));
            assertFault(failure(client, put), "connection_write_timeout", 504, 1);
            assertThat(put.isCancelled()).isFalse();

            put.setEntity(new ByteArrayEntity("small".getBytes(java.nio.charset.StandardCharsets.UTF_8),
                    ContentType.TEXT_PLAIN));
            String answer = client.execute(put, r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(answer).isEqualTo("200 small");
        } finally {
            testDone.countDown();
        }
    }

    /**
     * Regression: a request body whose own source failed (the caller's stream threw: a disk error, a bug) was blamed on
     * the upstream, which had done nothing wrong: {@code connection_terminated} (or {@code proxy_internal_error} for a
     * runtime exception) counted as a fault and as a failure in the breaker. It is the caller's doing: recorded as
     * cancelled, with the source's exception as the cause.
     */
    @ParameterizedTest(name = "{0}, length {1}")
    @CsvSource({"IOException, -1", "IOException, 5000", "IllegalStateException, -1"})
    void aRequestBodyWhoseSourceFailsIsNotBlamedOnTheUpstream(String thrown, long length) throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        InputStream failing = new InputStream() {
            private int read;

            @Override
            public int read() throws IOException {
                if (read++ < 1000) {
                    return 'x';
                }
                if (thrown.equals("IOException")) {
                    throw new IOException("disk error");
                }
                throw new IllegalStateException("disk error");
            }
        };
        try (RawUpstream upstream = RawUpstream.start(Behaviours.echo());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy()).meterRegistry(meters)
                        .build()) {
            HttpPut put = new HttpPut(upstream.uri("/file"));
            put.setEntity(new InputStreamEntity(failing, length, ContentType.APPLICATION_OCTET_STREAM));
            UpstreamException e = failure(client, put);
            assertFault(e, "connection_terminated", 502, 1);
            assertThat(e.getCause()).hasMessage("disk error");
            assertThat(e.getMessage()).contains("request body");
            GuardedUpstream state = client.upstream(upstream.baseUrl());
            assertThat(state.faultCounts()).isEmpty();
            assertThat(state.circuitBreaker()).hasValueSatisfying(
                    cb -> assertThat(cb.getMetrics().getNumberOfFailedCalls()).isZero());
            assertThat(state.callsInFlight()).isZero();
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "cancelled").timer().count()).isEqualTo(1);
        }
    }

    /** Only a write the upstream blocks counts: a body whose own source pauses longer than the timeout still goes. */
    @Test
    void aBodyWhoseSourcePausesLongerThanTheResponseTimeoutIsStillSent() throws Exception {
        CountDownLatch never = new CountDownLatch(1);
        InputStream slowSource = new SequenceInputStream(new ByteArrayInputStream("first half, ".getBytes()),
                new InputStream() {
                    private InputStream rest;

                    @Override
                    public int read() throws IOException {
                        if (rest == null) {
                            try {
                                // The source pauses (a slow producer): 1.5 s, longer than the 1 s response timeout.
                                never.await(1500, TimeUnit.MILLISECONDS);
                            } catch (InterruptedException e) {
                                throw new java.io.InterruptedIOException();
                            }
                            rest = new ByteArrayInputStream("second half".getBytes());
                        }
                        return rest.read();
                    }
                });
        try (RawUpstream upstream = RawUpstream.start(Behaviours.echo());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy()).build()) {
            HttpPost post = new HttpPost(upstream.uri("/file"));
            post.setEntity(new InputStreamEntity(slowSource, -1, ContentType.TEXT_PLAIN));
            String echoed = client.execute(post, r -> EntityUtils.toString(r.getEntity()));
            assertThat(echoed).isEqualTo("first half, second half");
        }
    }

    /**
     * Regression: a proxy's client that stalls mid-upload keeps the upstream request waiting for its body; when the
     * deadline ran out, the call was counted as the upstream's http_response_timeout, a failure for its circuit breaker,
     * so slow clients could open the circuit for everyone.
     */
    @Test
    void aDeadlineThatRunsOutWhileTheCallersOwnBodyStallsIsNotCountedAgainstTheUpstream() throws Exception {
        CountDownLatch never = new CountDownLatch(1);
        InputStream stallingSource = new SequenceInputStream(new ByteArrayInputStream("first half, ".getBytes()),
                new InputStream() {
                    @Override
                    public int read() throws IOException {
                        try {
                            // The caller stops producing its body for 3 s, past the 1 s deadline.
                            never.await(3, TimeUnit.SECONDS);
                        } catch (InterruptedException e) {
                            throw new java.io.InterruptedIOException();
                        }
                        return -1;
                    }
                });
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.echo());
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                        .defaults(GuardPolicy.builder().responseTimeout(Duration.ofSeconds(10))
                                .totalTimeout(Duration.ofSeconds(1)).build()).build()) {
            HttpPost post = new HttpPost(upstream.uri("/file"));
            post.setEntity(new InputStreamEntity(stallingSource, -1, ContentType.TEXT_PLAIN));
            UpstreamException e = failure(client, post);
            assertFault(e, "http_response_timeout", 504, 1);
            GuardedUpstream state = client.upstream(upstream.baseUrl());
            assertThat(state.faultCounts()).isEmpty();
            assertThat(state.circuitBreaker()).hasValueSatisfying(
                    cb -> assertThat(cb.getMetrics().getNumberOfFailedCalls()).isZero());
            assertThat(state.callsInFlight()).isZero();
            // The timer that cancelled the exchange returns its connection, just after the caller saw it fail.
            Await.until("the connection is back in the pool", Duration.ofSeconds(10),
                    () -> client.poolStats().getLeased() == 0);
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "cancelled").timer().count()).isEqualTo(1);
        } finally {
            never.countDown();
        }
    }

    /**
     * Regression: a request expecting 100 (Continue) waited HttpClient's fixed 3 s for it before sending its body,
     * longer than the attempt's response timeout and here its deadline: an upstream that ignores the expectation (it
     * may, RFC 9110 §10.1.1) and waits for the body was failed as http_response_timeout, blamed for waiting on the
     * client. The wait is at most half the attempt's read timeout; then the body goes out and is answered.
     */
    @Test
    void anUpstreamThatIgnoresAnExpectationGetsTheBodyInTimeToAnswerIt() throws Exception {
        RawUpstream.Behaviour countsTheBody = c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                String length = Integer.toString(r.body().length);
                c.write("HTTP/1.1 200 OK\r\nContent-Length: " + length.length() + "\r\n\r\n" + length);
            }
        };
        GuardPolicy policy = GuardPolicy.builder().connectTimeout(Duration.ofSeconds(5))
                .responseTimeout(Duration.ofSeconds(1)).totalTimeout(Duration.ofMillis(2900)).build();
        try (RawUpstream upstream = RawUpstream.start(countsTheBody);
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy).build()) {
            HttpPost post = new HttpPost(upstream.uri("/file"));
            post.setEntity(new ByteArrayEntity(new byte[100_000], ContentType.APPLICATION_OCTET_STREAM));
            post.setHeader("Expect", "100-continue");

            String seen = client.execute(post, r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));

            assertThat(seen).isEqualTo("200 100000");
        }
    }
    /**
     * An upstream (or a hop before it, an HTTP/1.0 proxy) that does not support expectations, answering 417 to the
     * head, or to the whole request; it closes the connection after its 417, and answers a request without the
     * expectation with the length of the body it read.
     */
    private static RawUpstream.Behaviour refusesExpectations(boolean readBodyFirst) {
        return c -> {
            StringBuilder head = new StringBuilder();
            for (int b = c.in().read(); b != -1; b = c.in().read()) {
                head.append((char) b);
                if (head.toString().endsWith("\r\n\r\n")) {
                    break;
                }
            }
            String lower = head.toString().toLowerCase(java.util.Locale.ROOT);
            if (lower.contains("\r\nexpect: 100-continue\r\n")) {
                if (readBodyFirst) {
                    int at = lower.indexOf("content-length: ") + "content-length: ".length();
                    c.in().readNBytes(Integer.parseInt(lower.substring(at, lower.indexOf('\r', at))));
                }
                c.write("HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                c.close();
                return;
            }
            int at = lower.indexOf("content-length: ") + "content-length: ".length();
            int read = c.in().readNBytes(Integer.parseInt(lower.substring(at, lower.indexOf('\r', at)))).length;
            String length = Integer.toString(read);
            c.write("HTTP/1.1 200 OK\r\nContent-Length: " + length.length() + "\r\n\r\n" + length);
        };
    }

    /**
     * Regression: a 417 answering a request sent with {@code Expect: 100-continue} was returned to the caller, though
     * RFC 9110 §10.1.1 asks the client to send the request again without the expectation: the 417 only says that a hop
     * on the way does not support it. Sent again once, within the same attempt: a body that can be replayed, and a
     * one-shot body the 417 came before (the point of waiting for 100), whether the caller set the header or
     * HttpClient's {@code expectContinueEnabled} did.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"repeatable", "one-shot", "by config"})
    void aRequestWhoseExpectationFailedIsSentAgainWithoutIt(String body) throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(refusesExpectations(false));
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy()).meterRegistry(meters)
                        .build()) {
            HttpPost post = new HttpPost(upstream.uri("/file"));
            post.setEntity(body.equals("one-shot")
                    ? new InputStreamEntity(new ByteArrayInputStream(new byte[100_000]), 100_000,
                            ContentType.APPLICATION_OCTET_STREAM)
                    : new ByteArrayEntity(new byte[100_000], ContentType.APPLICATION_OCTET_STREAM));
            if (body.equals("by config")) {
                post.setConfig(org.apache.hc.client5.http.config.RequestConfig.custom().setExpectContinueEnabled(true)
                        .build());
            } else {
                post.setHeader("Expect", "100-continue");
            }

            String seen = client.execute(post, r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));

            assertThat(seen).isEqualTo("200 100000");
            assertThat(upstream.connectionCount()).isEqualTo(2);
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "success").timer().count()).isEqualTo(1);
            assertThat(meters.find("upstream.guard.retries").counter()).isNull();
        }
    }

    /** A one-shot body already sent when the 417 came cannot go again: the 417 is the answer. */
    @Test
    void aOneShotBodySentBeforeItsExpectationFailedIsNotSentAgain() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(refusesExpectations(true));
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(GuardPolicy.builder()
                        .connectTimeout(Duration.ofSeconds(5)).responseTimeout(Duration.ofMillis(400))
                        .totalTimeout(Duration.ofSeconds(40)).build()).build()) {
            HttpPost post = new HttpPost(upstream.uri("/file"));
            post.setEntity(new InputStreamEntity(new ByteArrayInputStream(new byte[100_000]), 100_000,
                    ContentType.APPLICATION_OCTET_STREAM));
            post.setHeader("Expect", "100-continue");

            int status = client.execute(post, r -> r.getCode());

            assertThat(status).isEqualTo(417);
            assertThat(upstream.connectionCount()).isEqualTo(1);
        }
    }

    /**
     * Regression: a call whose deadline ran out while its body waited for the caller's own source (a proxy's client
     * gone silent mid-upload) had its connection closed at the deadline but kept its bulkhead permit, and a half-open
     * circuit's trial permit, until the caller's blocking read of its source returned: for a gateway, until the
     * container's read timeout (30 s on Jetty, 60 s on Tomcat). One silent client took a route's whole bulkhead, or
     * every trial call, for that long. The call is over at its deadline: recorded once, as cancelled, and its permits
     * given back at once; the caller's thread, when its read returns, records and releases nothing more.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"bulkhead permit", "half-open trial permit"})
    void aCallWhoseCallerGoesSilentMidUploadGivesBackItsPermitsAtItsDeadline(String permit) throws Exception {
        boolean halfOpen = permit.startsWith("half-open");
        CountDownLatch testOver = new CountDownLatch(1);
        InputStream silentSource = new SequenceInputStream(new ByteArrayInputStream(new byte[5000]),
                new InputStream() {
                    @Override
                    public int read() throws IOException {
                        try {
                            // The caller goes silent until the test is over (a container's read timeout, in a gateway).
                            testOver.await();
                        } catch (InterruptedException e) {
                            throw new java.io.InterruptedIOException();
                        }
                        throw new IOException("the client went away");
                    }
                });
        GuardPolicy policy = GuardPolicy.builder().connectTimeout(Duration.ofSeconds(5))
                .responseTimeout(Duration.ofSeconds(10)).totalTimeout(Duration.ofMillis(1500)).retryEnabled(false)
                .maxConcurrentCalls(halfOpen ? 10 : 1).halfOpenCalls(1).build();
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        ExecutorService callers = Executors.newSingleThreadExecutor();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.echo());
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters).defaults(policy)
                        .build()) {
            // Makes the upstream known, so that its breaker can be put half-open before the silent call.
            int warmUp = client.execute(new HttpPut(upstream.uri("/warm-up")), r -> r.getCode());
            assertThat(warmUp).isEqualTo(200);
            GuardedUpstream state = client.upstream(upstream.baseUrl());
            if (halfOpen) {
                state.circuitBreaker().orElseThrow().transitionToOpenState();
                state.circuitBreaker().orElseThrow().transitionToHalfOpenState();
            }
            HttpPut silent = new HttpPut(upstream.uri("/silent"));
            silent.setEntity(new InputStreamEntity(silentSource, 100_000, ContentType.APPLICATION_OCTET_STREAM));
            Future<UpstreamException> silentCall = callers.submit(() -> failure(client, silent));

            Await.until("the silent call is recorded at its deadline", Duration.ofSeconds(15),
                    () -> meters.find("upstream.guard.calls").tag("outcome", "cancelled").timer() != null,
                    () -> "(calls in flight: " + state.callsInFlight() + ")");
            assertThat(state.callsInFlight()).isZero();
            HttpPut next = new HttpPut(upstream.uri("/next"));
            next.setEntity(new ByteArrayEntity("abc".getBytes(), ContentType.APPLICATION_OCTET_STREAM));
            String answer = client.execute(next, r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(answer).isEqualTo("200 abc");
            if (halfOpen) {
                assertThat(state.circuitState()).isEqualTo("CLOSED");
            }

            testOver.countDown();
            UpstreamException e = silentCall.get(30, TimeUnit.SECONDS);
            assertFault(e, "http_response_timeout", 504, 1);
            // The caller's thread, failing long after the deadline, recorded and released nothing more.
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "cancelled").timer().count()).isEqualTo(1);
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "success").timer().count()).isEqualTo(2);
            assertThat(meters.find("upstream.guard.calls").tag("outcome", "fault").timer()).isNull();
            assertThat(state.faultCounts()).isEmpty();
            assertThat(state.callsInFlight()).isZero();
            assertThat(state.circuitBreaker().orElseThrow().getMetrics().getNumberOfFailedCalls()).isZero();
        } finally {
            testOver.countDown();
            callers.shutdownNow();
        }
    }
}
