package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.assertFault;
import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.Blackhole;
import dev.upstreamguard.testing.FakeTime;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.io.CloseMode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A call its caller cancels ({@code request.cancel()}) ends the same way whenever the cancel lands: an
 * {@code UpstreamException} with {@code connection_terminated}, counting only the attempts really made, recorded as
 * {@code cancelled}, kept out of the breaker and the fault counts, and holding no permit or connection.
 */
@Timeout(30)
class CancellationTest {

    private static void assertLeftNothingBehind(GuardedHttpClient client, String upstream, SimpleMeterRegistry meters) {
        GuardedUpstream state = client.upstream(upstream);
        assertThat(state.faultCounts()).isEmpty();
        assertThat(state.callsInFlight()).isZero();
        assertThat(state.circuitBreaker()).hasValueSatisfying(cb -> {
            assertThat(cb.getMetrics().getNumberOfFailedCalls()).isZero();
            assertThat(cb.getMetrics().getNumberOfSuccessfulCalls()).isZero();
        });
        // A cancel from another thread returns the connection on that thread, maybe just after the caller's failure.
        Await.until("the connection is back in the pool", Duration.ofSeconds(10),
                () -> client.poolStats().getLeased() == 0);
        assertThat(meters.find("upstream.guard.calls").timers()).singleElement().satisfies(t -> {
            assertThat(t.getId().getTag("outcome")).isEqualTo("cancelled");
            assertThat(t.getId().getTag("fault")).isEqualTo("none");
            assertThat(t.count()).isEqualTo(1);
        });
    }

    /** Regression: HttpClient refused the cancelled request with an IllegalStateException, answered as a 500. */
    @Test
    void aRequestCancelledBeforeItIsExecutedIsNeverSentAndIsNoInternalError() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"));
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters).build()) {
            HttpGet get = new HttpGet(upstream.uri("/items"));
            get.cancel();
            UpstreamException e = failure(client, get);
            assertFault(e, "connection_terminated", 502, 0);
            assertThat(upstream.connectionCount()).isZero();
            assertLeftNothingBehind(client, upstream.baseUrl(), meters);
        }
    }

    /** Regression: the retry that the cancel prevented was counted as an attempt made. */
    @Test
    void aRequestCancelledWhileWaitingToRetryCountsOnlyTheAttemptMade() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        FakeTime time = new FakeTime();
        HttpGet[] get = new HttpGet[1];
        time.onSleep(d -> get[0].cancel());
        try (RawUpstream upstream = RawUpstream.start(Behaviours.resetBeforeResponse(), Behaviours.ok("fine"));
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                        .ticker(time).sleeper(time).clock(time.clock()).build()) {
            get[0] = new HttpGet(upstream.uri("/items"));
            UpstreamException e = failure(client, get[0]);
            assertFault(e, "connection_terminated", 502, 1);
            assertThat(time.sleeps()).hasSize(1);
            assertThat(e.getSuppressed()).hasSize(1);
            assertThat(upstream.connectionCount()).isEqualTo(1);
            assertLeftNothingBehind(client, upstream.baseUrl(), meters);
        }
    }

    /**
     * Regression: an interrupt that landed while the call waited to retry ended it as a fault of the upstream
     * (counted, and a failure for its breaker), where a cancel landing there ends it as cancelled, and the README counts
     * an interrupt of the calling thread as the caller giving up.
     */
    @Test
    void aCallerInterruptedWhileWaitingToRetryEndsAsCancelled() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        Sleeper interruptedMidWait = d -> {
            Thread.currentThread().interrupt(); // Future.cancel(true) landing during the backoff
            new CountDownLatch(1).await(d.toNanos(), TimeUnit.NANOSECONDS);
        };
        try (RawUpstream upstream = RawUpstream.start(Behaviours.resetBeforeResponse(), Behaviours.ok("fine"));
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                        .sleeper(interruptedMidWait).build()) {
            UpstreamException e = failure(client, new HttpGet(upstream.uri("/items")));
            assertThat(Thread.interrupted()).as("interrupt status kept").isTrue();
            assertFault(e, "connection_terminated", 502, 1);
            assertThat(upstream.connectionCount()).isEqualTo(1);
            assertLeftNothingBehind(client, upstream.baseUrl(), meters);
        }
    }

    /** Regression: a cancel that cut a connect short read as connection_refused, a fault the caller did not meet. */
    @Test
    void aRequestCancelledWhileConnectingEndsAsCancelledNotAsARefusedConnection() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (Blackhole blackhole = Blackhole.open();
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                        .defaults(GuardPolicy.builder().connectTimeout(Duration.ofSeconds(20)).build()).build()) {
            // Whether the cancel lands before the connect or during it, the outcome is the same.
            UpstreamException e = cancelledAfter300Millis(client, new HttpGet(blackhole.uri("/items")));
            assertThat(e.fault().type()).isEqualTo("connection_terminated");
            assertThat(e.elapsed()).isLessThan(Duration.ofSeconds(10));
            assertLeftNothingBehind(client, "http://127.0.0.1:" + blackhole.port(), meters);
        }
    }

    /**
     * Regression: a cancel that cut short the connect to a host's first address did not end the connect: the next
     * address was tried with what was left of the connect timeout, so the cancelled call went on for seconds.
     */
    @Test
    void aRequestCancelledWhileConnectingToOneOfSeveralAddressesTriesNoOther() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (Blackhole first = Blackhole.open(InetAddress.getByName("127.0.0.2"), 0);
                Blackhole second = Blackhole.open(InetAddress.getByName("127.0.0.3"), first.port());
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                        .defaults(GuardPolicy.builder().connectTimeout(Duration.ofSeconds(20)).build())
                        .connectionManager(GuardedHttpClients.connectionManagerBuilder()
                                .setDnsResolver(ConnectTargetTest.resolver("127.0.0.2", "127.0.0.3")).build())
                        .build()) {
            // The first address has 10 s of the 20 s budget: the cancel lands while it connects, or before.
            UpstreamException e = cancelledAfter300Millis(client,
                    new HttpGet("http://two-silent.test:" + first.port() + "/items"));
            assertThat(e.fault().type()).isEqualTo("connection_terminated");
            assertThat(e.elapsed()).as("no second address tried").isLessThan(Duration.ofSeconds(5));
            assertLeftNothingBehind(client, "http://two-silent.test:" + first.port(), meters);
        }
    }

    /**
     * Regression: a caller whose thread had its interrupt status set (an executor shutting down,
     * {@code Future.cancel(true)}, an interrupt not dealt with yet) was refused as "bulkhead full" — Resilience4j's
     * zero-wait acquire still throws on an interrupted thread — so it got {@code connection_limit_reached}, a 503
     * counted as a fault, with nothing in flight; past the bulkhead, HttpClient ended the wait for a pooled connection
     * with a {@code CancellationException}, answered {@code proxy_internal_error}. An interrupted caller has given up,
     * like one that cancels: the call ends as cancelled, sends nothing, and the interrupt status is kept.
     */
    @Test
    void aCallerWithAPendingInterruptEndsAsCancelledNotAsAFullBulkheadOrAnInternalError() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"));
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters).build()) {
            UpstreamException e;
            Thread.currentThread().interrupt();
            try {
                e = failure(client, new HttpGet(upstream.uri("/items")));
            } finally {
                assertThat(Thread.interrupted()).as("interrupt status kept").isTrue();
            }
            assertThat(e.fault().type()).isEqualTo("connection_terminated");
            assertThat(e.getMessage()).contains("interrupted");
            assertThat(upstream.requestCount()).isZero();
            assertLeftNothingBehind(client, upstream.baseUrl(), meters);
        }
    }

    /**
     * Regression: a caller whose thread was interrupted while it read the body (the read itself goes on: classic
     * socket reads ignore interrupts) had the read's eventual failure counted as a fault of the upstream, in its
     * breaker and fault counts, while an interrupt before the head ended the call as cancelled, as the README says of
     * an interrupt of the calling thread. The body's failure on an interrupted thread is the caller giving up too.
     */
    @Test
    void aCallerInterruptedWhileReadingTheBodyEndsAsCancelled() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        RawUpstream.Behaviour stallsMidBody = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly sixteen b..");
                c.stallUntilClosed();
            }
        };
        try (RawUpstream upstream = RawUpstream.start(stallsMidBody);
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                        .defaults(GuardPolicy.builder().responseTimeout(Duration.ofSeconds(1)).build()).build()) {
            AtomicBoolean interruptKept = new AtomicBoolean();
            Throwable thrown = catchThrowable(() -> client.execute(new HttpGet(upstream.uri("/items")), r -> {
                Thread.currentThread().interrupt(); // Future.cancel(true), an executor shutting down
                try {
                    return r.getEntity().getContent().readAllBytes();
                } finally {
                    interruptKept.set(Thread.interrupted());
                }
            }));

            assertThat(interruptKept).isTrue();
            assertThat(thrown).isInstanceOf(UpstreamException.class);
            assertLeftNothingBehind(client, upstream.baseUrl(), meters);
        }
    }

    /** An interrupt (say {@code Future.cancel(true)}) that lands while the call waits for a pooled connection. */
    @Test
    void aCallerInterruptedWhileWaitingForAPooledConnectionEndsAsCancelled() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"));
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                        .defaults(GuardPolicy.builder().maxConnections(1).poolTimeout(Duration.ofSeconds(20)).build())
                        .build()) {
            AtomicReference<Throwable> outcome = new AtomicReference<>();
            AtomicBoolean interruptKept = new AtomicBoolean();
            Thread caller = new Thread(() -> {
                outcome.set(catchThrowable(() -> client.execute(new HttpGet(upstream.uri("/items")), r -> r.getCode())));
                interruptKept.set(Thread.currentThread().isInterrupted());
            }, "interrupted-caller");
            try (ClassicHttpResponse holdsTheOnlyConnection = client.executeOpen(null,
                    new HttpGet(upstream.uri("/items")), null)) {
                caller.start();
                assertThat(awaitPendingLease(client, Duration.ofSeconds(10))).isTrue();
                caller.interrupt();
                caller.join(TimeUnit.SECONDS.toMillis(10));
                assertThat(caller.isAlive()).isFalse();
            }
            assertThat(interruptKept).isTrue();
            assertThat(outcome.get()).isInstanceOf(UpstreamException.class);
            UpstreamException e = (UpstreamException) outcome.get();
            assertFault(e, "connection_terminated", 502, 1);
            assertThat(e.getMessage()).contains("interrupted");
            GuardedUpstream state = client.upstream(upstream.baseUrl());
            assertThat(state.faultCounts()).isEmpty();
            assertThat(state.circuitBreaker()).hasValueSatisfying(
                    cb -> assertThat(cb.getMetrics().getNumberOfFailedCalls()).isZero());
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "cancelled").timer().count()).isEqualTo(1);
            assertThat(state.callsInFlight()).isZero();
            assertThat(upstream.requestCount()).isEqualTo(1);
        }
    }

    /**
     * Regression: closing the client under a call waiting for its response head broke the call's connection, which was
     * retried as {@code connection_terminated} and then failed on the shut pool as {@code proxy_internal_error}, a
     * fault of the upstream's in the fault counts and the meters. The application gave up on the call: it ends at
     * once, not retried, as cancelled.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"close()", "GRACEFUL", "IMMEDIATE"})
    void closingTheClientUnderACallWaitingForItsResponseEndsItAsCancelled(String how) throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        CountDownLatch inFlight = new CountDownLatch(1);
        try (RawUpstream upstream = RawUpstream.start(Behaviours.stall(inFlight))) {
            GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters).build();
            UpstreamException e = failureOfACallClosedUnder(client, new HttpGet(upstream.uri("/items")), inFlight, how);
            assertFault(e, "connection_terminated", 502, 1);
            assertThat(e.getMessage()).contains("the client was closed");
            assertThat(upstream.connectionCount()).isEqualTo(1);
            assertThat(meters.find("upstream.guard.retries").counters()).allSatisfy(c -> assertThat(c.count()).isZero());
            assertLeftNothingBehind(client, upstream.baseUrl(), meters);
        }
    }

    /**
     * Closing the client under a call waiting for a forward proxy's answer to its CONNECT is not taken for the proxy
     * dropping the CONNECT (connection_refused, a fault counted against the upstream): the application gave up on the
     * call, which ends cancelled, as anywhere else (pinned: already right).
     */
    @Test
    void closingTheClientUnderACallWaitingForAForwardProxysConnectEndsItAsCancelled() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        CountDownLatch connectSent = new CountDownLatch(1);
        try (RawUpstream proxy = RawUpstream.start(Behaviours.stall(connectSent))) {
            GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                    .defaults(GuardPolicy.builder().connectTimeout(Duration.ofSeconds(20)).build())
                    .httpClientBuilder(org.apache.hc.client5.http.impl.classic.HttpClients.custom()
                            .setProxy(new org.apache.hc.core5.http.HttpHost("http", "127.0.0.1", proxy.port())))
                    .build();
            UpstreamException e = failureOfACallClosedUnder(client, new HttpGet("https://localhost:9/items"),
                    connectSent, "IMMEDIATE");
            assertFault(e, "connection_terminated", 502, 1);
            assertThat(e.getMessage()).contains("the client was closed");
            assertThat(proxy.requests()).extracting(RawUpstream.Request::method).containsExactly("CONNECT");
            assertLeftNothingBehind(client, "https://localhost:9", meters);
        }
    }

    /** The same for a body being read when the client is closed: the read fails, but the upstream is not blamed. */
    @Test
    void closingTheClientUnderABodyBeingReadEndsItAsCancelled() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        CountDownLatch done = new CountDownLatch(1);
        RawUpstream.Behaviour endlessBody = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + "x".repeat(1000));
                done.await(20, TimeUnit.SECONDS);
            }
        };
        try (RawUpstream upstream = RawUpstream.start(endlessBody)) {
            GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters).build();
            try {
                ClassicHttpResponse response = client.executeOpen(null, new HttpGet(upstream.uri("/download")), null);
                InputStream body = response.getEntity().getContent();
                assertThat(body.readNBytes(1000)).hasSize(1000);
                client.close();
                assertThat(catchThrowable(() -> body.readNBytes(1000))).isInstanceOf(IOException.class);
                response.close();
            } finally {
                done.countDown();
                client.close();
            }
            GuardedUpstream state = client.upstream(upstream.baseUrl());
            assertThat(state.faultCounts()).isEmpty();
            assertThat(state.callsInFlight()).isZero();
            assertThat(state.circuitBreaker()).hasValueSatisfying(
                    cb -> assertThat(cb.getMetrics().getNumberOfFailedCalls()).isZero());
            assertThat(meters.get("upstream.guard.calls").tag("outcome", "cancelled").timer().count()).isEqualTo(1);
        }
    }

    /** Runs {@code request} on another thread, closes the client {@code how} once {@code inFlight}, and the call's end. */
    private static UpstreamException failureOfACallClosedUnder(GuardedHttpClient client, HttpGet request,
            CountDownLatch inFlight, String how) throws Exception {
        ExecutorService caller = Executors.newSingleThreadExecutor();
        try {
            Future<UpstreamException> call = caller.submit(() -> failure(client, request));
            assertThat(inFlight.await(10, TimeUnit.SECONDS)).isTrue();
            close(client, how);
            return call.get(15, TimeUnit.SECONDS);
        } finally {
            caller.shutdownNow();
            client.close();
        }
    }

    private static void close(GuardedHttpClient client, String how) throws IOException {
        if (how.equals("close()")) {
            client.close();
        } else {
            client.close(CloseMode.valueOf(how));
        }
    }

    /** Waits, bounded, until a call is queued for a pooled connection (the pool has no signal to wait on). */
    private static boolean awaitPendingLease(GuardedHttpClient client, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (client.poolStats().getPending() == 0) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(5));
        }
        return true;
    }

    /** Calls on a thread of its own and cancels the request 300 ms later; the call's failure. */
    private static UpstreamException cancelledAfter300Millis(GuardedHttpClient client, HttpGet get) throws Exception {
        // Threads of their own: with few cores the common pool may have one thread, which the call would hold.
        ExecutorService caller = Executors.newSingleThreadExecutor();
        ScheduledExecutorService canceller = Executors.newSingleThreadScheduledExecutor();
        try {
            Future<UpstreamException> call = caller.submit(() -> failure(client, get));
            canceller.schedule(get::cancel, 300, TimeUnit.MILLISECONDS);
            return call.get(25, TimeUnit.SECONDS);
        } finally {
            caller.shutdownNow();
            canceller.shutdownNow();
        }
    }
}
