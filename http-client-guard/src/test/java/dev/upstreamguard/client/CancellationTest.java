package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.assertFault;
import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.Blackhole;
import dev.upstreamguard.testing.FakeTime;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

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
        assertThat(client.poolStats().getLeased()).isZero();
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

    /** Regression: a cancel that cut a connect short read as connection_refused, a fault the caller did not meet. */
    @Test
    void aRequestCancelledWhileConnectingEndsAsCancelledNotAsARefusedConnection() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (Blackhole blackhole = Blackhole.open();
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                        .defaults(GuardPolicy.builder().connectTimeout(Duration.ofSeconds(20)).build()).build()) {
            HttpGet get = new HttpGet(blackhole.uri("/items"));
            // Threads of their own: with few cores the common pool may have one thread, which the call would hold.
            ExecutorService caller = Executors.newSingleThreadExecutor();
            ScheduledExecutorService canceller = Executors.newSingleThreadScheduledExecutor();
            UpstreamException e;
            try {
                Future<UpstreamException> call = caller.submit(() -> failure(client, get));
                // Whether the cancel lands before the connect or during it, the outcome is the same.
                canceller.schedule(get::cancel, 300, TimeUnit.MILLISECONDS);
                e = call.get(15, TimeUnit.SECONDS);
            } finally {
                caller.shutdownNow();
                canceller.shutdownNow();
            }
            assertThat(e.fault().type()).isEqualTo("connection_terminated");
            assertThat(e.elapsed()).isLessThan(Duration.ofSeconds(10));
            assertLeftNothingBehind(client, "http://127.0.0.1:" + blackhole.port(), meters);
        }
    }
}
