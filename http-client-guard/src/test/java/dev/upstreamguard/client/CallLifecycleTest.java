package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.assertFault;
import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.internal.ResponseCheck;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.Blackhole;
import dev.upstreamguard.testing.FakeTime;
import dev.upstreamguard.testing.MockWebServers;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import java.io.InputStream;
import java.time.Duration;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.classic.methods.HttpHead;
import org.apache.hc.client5.http.impl.classic.HttpClientBuilder;
import org.apache.hc.client5.http.impl.classic.HttpClients;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * When a call ends and what it holds until then (bulkhead permit, pooled connection), how a caller steers one call
 * (upstream and policy attributes, cancel), and the less common shapes of a response: no body, a body that stalls, a
 * {@code Retry-After} date, a keep-alive connection the upstream already closed.
 */
@Timeout(30)
class CallLifecycleTest {

    private static GuardPolicy.Builder policy() {
        return GuardPolicy.builder().connectTimeout(Duration.ofSeconds(2)).responseTimeout(Duration.ofSeconds(5))
                .initialBackoff(Duration.ofMillis(1)).maxBackoff(Duration.ofMillis(5));
    }

    @Test
    void closingAResponseWithoutReadingItsBodyReleasesTheBulkheadPermitAndTheConnection() throws Exception {
        try (MockWebServer server = MockWebServers.start();
                GuardedHttpClient client = GuardedHttpClients.custom()
                        .defaults(policy().maxConcurrentCalls(1).maxConnections(1).build()).build()) {
            MockWebServers.always(server, new MockResponse.Builder().body("x".repeat(100_000)).build());
            for (int i = 0; i < 5; i++) {
                ClassicHttpResponse response = client.executeOpen(null, new HttpGet(MockWebServers.uri(server, "/")), null);
                assertThat(response.getCode()).isEqualTo(200);
                assertThat(client.upstream("http://127.0.0.1:" + server.getPort()).callsInFlight()).isEqualTo(1);
                response.close();
                assertThat(client.upstream("http://127.0.0.1:" + server.getPort()).callsInFlight()).isZero();
            }
            assertThat(server.getRequestCount()).isEqualTo(5);
            assertThat(client.poolStats().getLeased()).isZero();
        }
    }

    /**
     * A caller that cannot use the response head it got (a gateway whose container cannot write it) refuses it through
     * the exchange's {@link ResponseCheck}: the call ends as the upstream's fault, with the real attempt count, counted
     * by the breaker and the meters, the connection closed; a response without a body, which would otherwise end the
     * call at once as a success, too.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"GET", "HEAD"})
    void aResponseTheCallerRefusesEndsTheCallAsTheUpstreamsFault(String method) throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(
                        Behaviours.respond("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
                        Behaviours.ok("refused"));
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy().build()).meterRegistry(meters)
                        .build()) {
            HttpClientContext context = HttpClientContext.create();
            context.setAttribute(ResponseCheck.ATTRIBUTE, (ResponseCheck) response -> response.getCode() == 200
                    ? new ResponseCheck.Refusal(UpstreamFault.HTTP_RESPONSE_HEADER_SIZE, "the caller cannot use it")
                    : null);
            ClassicHttpRequest request = method.equals("GET") ? new HttpGet(upstream.uri("/"))
                    : new HttpHead(upstream.uri("/"));

            Throwable thrown = catchThrowable(() -> client.executeOpen(null, request, context));

            assertThat(thrown).isInstanceOf(UpstreamException.class);
            UpstreamException e = (UpstreamException) thrown;

            assertThat(e.fault()).isEqualTo(UpstreamFault.HTTP_RESPONSE_HEADER_SIZE);
            assertThat(e.attempts()).isEqualTo(2);
            assertThat(e).hasMessageContaining("the caller cannot use it");
            GuardedUpstream guarded = client.upstream(upstream.baseUrl());
            assertThat(guarded.faultCounts()).containsEntry(UpstreamFault.HTTP_RESPONSE_HEADER_SIZE, 1L);
            assertThat(guarded.circuitBreaker().orElseThrow().getMetrics().getNumberOfFailedCalls()).isEqualTo(1);
            assertThat(guarded.callsInFlight()).isZero();
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "fault")
                    .tag("fault", UpstreamFault.HTTP_RESPONSE_HEADER_SIZE.type()).timer().count()).isEqualTo(1);
            assertThat(client.poolStats().getLeased()).isZero();
        }
    }

    /**
     * Regression: reading a body after closing it (or its response) failed with an UpstreamException, "upstream failed
     * while sending the response body: http_response_incomplete", though the upstream had sent all of it. The caller
     * gets HttpClient's own closed-stream IOException, and the call stays a success.
     */
    @ParameterizedTest(name = "close the {0}")
    @ValueSource(strings = {"response", "stream"})
    void readingABodyAfterClosingItIsNoFaultOfTheUpstream(String what) throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("the whole body"));
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters).build()) {
            ClassicHttpResponse response = client.executeOpen(null, new HttpGet(upstream.uri("/")), null);
            InputStream body = response.getEntity().getContent();
            if (what.equals("response")) {
                response.close();
            } else {
                body.close();
            }
            Throwable thrown = catchThrowable(() -> body.read());
            assertThat(thrown).isInstanceOf(java.io.IOException.class).isNotInstanceOf(UpstreamException.class);
            assertThat(client.upstream(upstream.baseUrl()).faultCounts()).isEmpty();
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "success").timer().count()).isEqualTo(1);
            response.close();
        }
    }

    @Test
    void closingAResponseWhoseBodyTheUpstreamCutShortFailsAsAnIncompleteResponseNotAnUnclassifiedException()
            throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.truncatedBody());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy().build())
                        .meterRegistry(meters).build()) {
            for (boolean readSome : new boolean[] {false, true}) {
                ClassicHttpResponse response = client.executeOpen(null, new HttpGet(upstream.uri("/")), null);
                if (readSome) {
                    assertThat(response.getEntity().getContent().read(new byte[4])).isEqualTo(4);
                }
                // Closing drains the rest of the body to keep the connection: that read meets the cut.
                Throwable thrown = catchThrowable(response::close);
                assertThat(thrown).isInstanceOf(UpstreamException.class);
                assertFault((UpstreamException) thrown, "http_response_incomplete", 502, 1);
            }
            GuardedUpstream guarded = client.upstream(upstream.baseUrl());
            assertThat(guarded.faultCounts()).containsEntry(UpstreamFault.HTTP_RESPONSE_INCOMPLETE, 2L);
            assertThat(guarded.callsInFlight()).isZero();
            assertThat(meters.find("upstream.guard.calls").tag("outcome", "success").timer()).isNull();
            assertThat(client.poolStats().getLeased()).isZero();
        }
    }

    @Test
    void responsesWithoutABodyFinishTheCallAtOnce() throws Exception {
        try (MockWebServer server = MockWebServers.start();
                GuardedHttpClient client = GuardedHttpClients.custom()
                        .defaults(policy().maxConcurrentCalls(1).build()).build()) {
            MockWebServers.answer(server, r -> r.getMethod().equals("HEAD")
                    ? new MockResponse.Builder().code(200).build()
                    : new MockResponse.Builder().code(204).build());
            for (int i = 0; i < 3; i++) {
                try (ClassicHttpResponse head = client.executeOpen(null, new HttpHead(MockWebServers.uri(server, "/")),
                        null)) {
                    assertThat(head.getCode()).isEqualTo(200);
                }
                ClassicHttpResponse noContent = client.executeOpen(null, new HttpGet(MockWebServers.uri(server, "/")),
                        null);
                // Not even closed: a 204 has no body to wait for, so the call is already over.
                assertThat(noContent.getCode()).isEqualTo(204);
                assertThat(client.upstream("http://127.0.0.1:" + server.getPort()).callsInFlight()).isZero();
                noContent.close();
            }
        }
    }

    @Test
    void bodyThatStallsHalfWayFailsWhileReadingWithAReadTimeout() throws Exception {
        RawUpstream.Behaviour halfBody = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nthe first few bytes");
                c.stallUntilClosed();
            }
        };
        try (RawUpstream upstream = RawUpstream.start(halfBody);
                GuardedHttpClient client = GuardedHttpClients.custom()
                        .defaults(policy().responseTimeout(Duration.ofMillis(500)).build()).build()) {
            ClassicHttpResponse response = client.executeOpen(null, new HttpGet(upstream.uri("/")), null);
            try {
                InputStream in = response.getEntity().getContent();
                assertThat(in.readNBytes(19)).asString().isEqualTo("the first few bytes");
                Throwable thrown = catchThrowable(in::read);
                assertThat(thrown).isInstanceOf(UpstreamException.class);
                assertFault((UpstreamException) thrown, "connection_read_timeout", 504, 1);
            } finally {
                try {
                    response.close();
                } catch (java.io.IOException ignored) {
                    // Already failed.
                }
            }
        }
    }

    @Test
    void theTotalDeadlineBoundsTheHeadButNotASlowBody() throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        RawUpstream.Behaviour slowBody = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
                for (int i = 0; i < 5 && !done.await(700, TimeUnit.MILLISECONDS); i++) {
                    c.write("x");
                }
            }
        };
        GuardPolicy policy = policy().totalTimeout(Duration.ofSeconds(3)).responseTimeout(Duration.ofSeconds(5)).build();
        try (RawUpstream upstream = RawUpstream.start(slowBody);
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy).build()) {
            long start = System.nanoTime();
            String body = client.execute(new HttpGet(upstream.uri("/")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(body).isEqualTo("xxxxx");
            assertThat(Duration.ofNanos(System.nanoTime() - start)).isGreaterThan(Duration.ofSeconds(3));
        } finally {
            done.countDown();
        }
    }

    /**
     * Regression: the deadline ends a call by cancelling its request, and the mark stayed on the request object, so
     * sending the same request again failed at once as {@code connection_terminated} after 0 attempts, "the caller
     * cancelled the request", though the caller had cancelled nothing.
     */
    @Test
    void aRequestWhoseDeadlineRanOutCanBeSentAgain() throws Exception {
        CountDownLatch stalled = new CountDownLatch(1);
        GuardPolicy policy = policy().totalTimeout(Duration.ofMillis(300)).build();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.stall(stalled), Behaviours.ok("fine"));
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy).build()) {
            HttpGet get = new HttpGet(upstream.uri("/items"));
            assertFault(failure(client, get), "http_response_timeout", 504, 1);
            assertThat(get.isCancelled()).isFalse();

            String body = client.execute(get, r -> EntityUtils.toString(r.getEntity()));
            assertThat(body).isEqualTo("fine");
        }
    }

    /** The caller's own cancel, unlike the deadline's, stays: the request is over until the caller resets it. */
    @Test
    void aRequestTheCallerCancelledStaysCancelled() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            HttpGet get = new HttpGet(upstream.uri("/items"));
            get.cancel();
            assertFault(failure(client, get), "connection_terminated", 502, 0);
            assertThat(get.isCancelled()).isTrue();
        }
    }

    /**
     * Regression: an attempt's read timeout was capped by the time the deadline left, to end a silent head at the
     * deadline, and the cap stayed on the connection for the body: a body pausing for longer than that (here 1.5 s,
     * within the 5 s response timeout, on a 1 s deadline) failed with {@code connection_read_timeout}, though the body
     * is bounded by the response timeout alone. After a retry the cap can be a few milliseconds.
     */
    @Test
    void theBodyGetsTheWholeResponseTimeoutPerReadWhateverTheDeadlineLeftTheAttempt() throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        RawUpstream.Behaviour pausingBody = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nx");
                if (!done.await(1500, TimeUnit.MILLISECONDS)) {
                    c.write("y");
                }
            }
        };
        GuardPolicy policy = policy().totalTimeout(Duration.ofSeconds(1)).responseTimeout(Duration.ofSeconds(5))
                .build();
        try (RawUpstream upstream = RawUpstream.start(pausingBody);
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy).build()) {
            String body = client.execute(new HttpGet(upstream.uri("/")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(body).isEqualTo("xy");
        } finally {
            done.countDown();
        }
    }

    @Test
    void aDeadlineShorterThanTheConnectTimeoutEndsEvenAPostAtTheDeadlineAsAResponseTimeout() throws Exception {
        GuardPolicy policy = policy().connectTimeout(Duration.ofSeconds(10)).totalTimeout(Duration.ofMillis(500))
                .build();
        try (Blackhole blackhole = Blackhole.open();
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy).build()) {
            long start = System.nanoTime();
            UpstreamException e = failure(client, FaultMatrixTest.post(blackhole.uri("/orders")));
            Duration took = Duration.ofNanos(System.nanoTime() - start);
            assertFault(e, "http_response_timeout", 504, 1);
            assertThat(took).isGreaterThanOrEqualTo(Duration.ofMillis(450)).isLessThan(Duration.ofSeconds(5));
        }
    }

    /**
     * Regression: a deadline that ran out while the attempt waited for a pooled connection cancelled the wait, HttpClient
     * then failed with a {@code CancellationException} (a runtime exception, not an I/O one), and the call failed as
     * {@code proxy_internal_error} (a 500, as if the library had a bug) instead of the 504 of a deadline. The pool wait
     * is capped by the time left when the attempt starts, so it is the deadline that ends it whenever anything before
     * the lease (here a request interceptor taking 150 ms) took time.
     */
    @Test
    void aDeadlineRunningOutWhileWaitingForAPooledConnectionIsAResponseTimeoutNotAnInternalError() throws Exception {
        HttpClientBuilder slowInterceptor = HttpClients.custom().addRequestInterceptorFirst((request, entity, context) -> {
            if (request.containsHeader("X-Slow")) {
                try {
                    new CountDownLatch(1).await(150, TimeUnit.MILLISECONDS); // an interceptor that takes its time
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
        GuardPolicy policy = policy().maxConnections(1).poolTimeout(Duration.ofSeconds(5))
                .totalTimeout(Duration.ofMillis(300)).build();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"));
                GuardedHttpClient client = GuardedHttpClients.custom().httpClientBuilder(slowInterceptor)
                        .defaults(policy).build();
                ClassicHttpResponse holdsTheOnlyConnection = client.executeOpen(null, new HttpGet(upstream.uri("/")),
                        null)) {
            assertThat(holdsTheOnlyConnection.getCode()).isEqualTo(200);
            HttpGet get = new HttpGet(upstream.uri("/"));
            get.setHeader("X-Slow", "1");
            assertFault(failure(client, get), "http_response_timeout", 504, 1);
            assertThat(upstream.requestCount()).isEqualTo(1);
            // Regression: the wait for our own pool counted as a failure of the upstream in its breaker.
            CircuitBreaker.Metrics breaker = client.upstream(upstream.baseUrl()).circuitBreaker().orElseThrow()
                    .getMetrics();
            assertThat(breaker.getNumberOfFailedCalls()).isZero();
        }
    }

    @Test
    void closingTheClientStopsItsDeadlineThread() throws Exception {
        java.util.Set<Thread> before = deadlineThreads();
        GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy().build()).build();
        java.util.Set<Thread> ours;
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"))) {
            String body = client.execute(new HttpGet(upstream.uri("/")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(body).isEqualTo("fine");
            ours = deadlineThreads();
            ours.removeAll(before);
        } finally {
            client.close();
        }
        // A library thread outliving its client would pin a redeployed web application's class loader.
        assertThat(ours).as("the call started the client's deadline thread").isNotEmpty();
        for (Thread t : ours) {
            t.join(10_000);
            assertThat(t.isAlive()).as("%s still alive after close", t).isFalse();
        }
    }

    private static java.util.Set<Thread> deadlineThreads() {
        java.util.Set<Thread> threads = new java.util.HashSet<>();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith("upstream-guard-deadline")) {
                threads.add(t);
            }
        }
        return threads;
    }

    @Test
    void upstreamAttributeChoosesTheNamedUpstreamAndAnUnknownNameIsAConfigurationError() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.resetBeforeResponse());
                GuardedHttpClient client = GuardedHttpClients.custom()
                        .upstream("inventory", "http://inventory.internal:8080", policy().maxAttempts(2).build())
                        .build()) {
            HttpClientContext context = HttpClientContext.create();
            context.setAttribute(GuardedHttpClient.UPSTREAM_ATTRIBUTE, "inventory");
            UpstreamException e = (UpstreamException) catchThrowable(
                    () -> client.execute(new HttpGet(upstream.uri("/")), context, r -> null));
            assertFault(e, "connection_terminated", 502, 2);
            assertThat(e.upstream()).isEqualTo("inventory");
            assertThat(client.upstream("inventory").faultCounts()).isNotEmpty();

            HttpClientContext unknown = HttpClientContext.create();
            unknown.setAttribute(GuardedHttpClient.UPSTREAM_ATTRIBUTE, "nowhere");
            UpstreamException misconfigured = (UpstreamException) catchThrowable(
                    () -> client.execute(new HttpGet(upstream.uri("/")), unknown, r -> null));
            assertFault(misconfigured, "proxy_configuration_error", 500, 0);
            assertThat(upstream.requestCount()).isEqualTo(2);
        }
    }

    @Test
    void policyAttributeOverridesRetriesForOneCall() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.resetBeforeResponse());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy().build()).build()) {
            HttpClientContext context = HttpClientContext.create();
            context.setAttribute(GuardedHttpClient.POLICY_ATTRIBUTE, policy().retryEnabled(false).build());
            UpstreamException once = (UpstreamException) catchThrowable(
                    () -> client.execute(new HttpGet(upstream.uri("/")), context, r -> null));
            assertFault(once, "connection_terminated", 502, 1);
            assertThat(upstream.requestCount()).isEqualTo(1);

            assertFault(failure(client, new HttpGet(upstream.uri("/"))), "connection_terminated", 502, 3);
            assertThat(upstream.requestCount()).isEqualTo(4);
        }
    }

    @Test
    void retryAfterGivenAsAnHttpDateIsHonouredOnTheInjectedClock() throws Exception {
        FakeTime time = new FakeTime();
        String inTwoSeconds = DateTimeFormatter.RFC_1123_DATE_TIME
                .format(FakeTime.EPOCH.plusSeconds(2).atOffset(ZoneOffset.UTC));
        try (MockWebServer server = MockWebServers.start();
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy().build())
                        .ticker(time).sleeper(time).clock(time.clock()).build()) {
            server.enqueue(new MockResponse.Builder().code(503).setHeader("Retry-After", inTwoSeconds).build());
            server.enqueue(new MockResponse.Builder().code(200).body("done").build());
            String body = client.execute(new HttpGet(MockWebServers.uri(server, "/")),
                    r -> EntityUtils.toString(r.getEntity()));
            assertThat(body).isEqualTo("done");
            assertThat(time.sleeps()).containsExactly(Duration.ofSeconds(2));
        }
    }

    @Test
    void getOnAKeepAliveConnectionTheUpstreamAlreadyClosedSucceeds() throws Exception {
        // Answers without "Connection: close" and then closes: the client pools a connection that is already dead.
        try (RawUpstream upstream = RawUpstream.start(Behaviours.respond("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy().build()).build()) {
            for (int i = 0; i < 5; i++) {
                String body = client.execute(new HttpGet(upstream.uri("/")), r -> EntityUtils.toString(r.getEntity()));
                assertThat(body).isEqualTo("ok");
            }
            assertThat(upstream.requestCount()).isEqualTo(5);
        }
    }

    /**
     * Regression: a cancelled GET was retried, and HttpClient then failed the retry with an
     * {@code IllegalStateException} ("Endpoint not acquired / already released") instead of an UpstreamException.
     */
    @Test
    void cancellingAnInFlightCallIsNotRetriedAndDoesNotCountAgainstTheUpstream() throws Exception {
        CountDownLatch inFlight = new CountDownLatch(1);
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.stall(inFlight));
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy().build())
                        .meterRegistry(meters).build()) {
            HttpGet get = new HttpGet(upstream.uri("/slow"));
            CompletableFuture<Throwable> call = CompletableFuture.supplyAsync(
                    () -> catchThrowable(() -> client.execute(get, r -> EntityUtils.toString(r.getEntity()))));
            assertThat(inFlight.await(10, TimeUnit.SECONDS)).isTrue();
            get.cancel();
            Throwable thrown = call.get(20, TimeUnit.SECONDS);
            assertThat(thrown).isInstanceOf(UpstreamException.class);
            assertThat(((UpstreamException) thrown).attempts()).isEqualTo(1);
            assertThat(upstream.requestCount()).isEqualTo(1);
            assertThat(client.upstream(upstream.baseUrl()).circuitBreaker()).hasValueSatisfying(cb -> {
                assertThat(cb.getMetrics().getNumberOfFailedCalls()).isZero();
                assertThat(cb.getMetrics().getNumberOfSuccessfulCalls()).isZero();
            });
            assertThat(client.upstream(upstream.baseUrl()).callsInFlight()).isZero();
            assertRecordedAsCancelled(client.upstream(upstream.baseUrl()), meters, "none");
        }
    }

    @Test
    void closingAResponseAfterCancellingItMidBodyIsQuietAndRecordedAsCancelled() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(endlessBody());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy().build())
                        .meterRegistry(meters).build()) {
            HttpGet get = new HttpGet(upstream.uri("/download"));
            ClassicHttpResponse response = client.executeOpen(null, get, null);
            assertThat(response.getEntity().getContent().readNBytes(1000)).hasSize(1000);
            get.cancel();
            // The cancel closed the connection: closing neither drains the rest nor reports a fault.
            response.close();
            assertThat(client.upstream(upstream.baseUrl()).callsInFlight()).isZero();
            assertThat(client.poolStats().getLeased()).isZero();
            assertRecordedAsCancelled(client.upstream(upstream.baseUrl()), meters, "200");
        }
    }

    /** Announces a megabyte, sends a kilobyte of it, then sends nothing more until the client closes. */
    private static RawUpstream.Behaviour endlessBody() {
        return c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + "x".repeat(1000));
                c.stallUntilClosed();
            }
        };
    }

    /** A cancelled call is on record, but as the caller's doing: no fault of the upstream's to count or alert on. */
    private static void assertRecordedAsCancelled(GuardedUpstream upstream, SimpleMeterRegistry meters,
            String status) {
        assertThat(upstream.faultCounts()).isEmpty();
        assertThat(meters.find("upstream.guard.calls").timers()).singleElement().satisfies(t -> {
            assertThat(t.getId().getTag("outcome")).isEqualTo("cancelled");
            assertThat(t.getId().getTag("fault")).isEqualTo("none");
            assertThat(t.getId().getTag("status")).isEqualTo(status);
            assertThat(t.count()).isEqualTo(1);
        });
    }

    @Test
    void cancellingWhileReadingTheBodyDoesNotCountAgainstTheUpstream() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(endlessBody());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy().build())
                        .meterRegistry(meters).build()) {
            HttpGet get = new HttpGet(upstream.uri("/download"));
            ClassicHttpResponse response = client.executeOpen(null, get, null);
            try {
                InputStream in = response.getEntity().getContent();
                assertThat(in.readNBytes(1000)).hasSize(1000);
                get.cancel();
                Throwable thrown = catchThrowable(() -> in.readNBytes(1000));
                assertThat(thrown).isInstanceOf(UpstreamException.class);
            } finally {
                try {
                    response.close();
                } catch (java.io.IOException ignored) {
                    // Already failed.
                }
            }
            assertThat(client.upstream(upstream.baseUrl()).circuitBreaker()).hasValueSatisfying(
                    cb -> assertThat(cb.getMetrics().getNumberOfFailedCalls()).isZero());
            assertThat(client.upstream(upstream.baseUrl()).callsInFlight()).isZero();
            assertRecordedAsCancelled(client.upstream(upstream.baseUrl()), meters, "200");
        }
    }
}
