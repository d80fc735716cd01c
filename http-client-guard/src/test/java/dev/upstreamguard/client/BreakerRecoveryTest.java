package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.FakeTime;
import dev.upstreamguard.testing.RawUpstream;
import java.time.Duration;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * A half-open circuit lets a few trial calls through; every way a trial call can end must hand its permit back or
 * record an outcome. A permit lost on any path leaves the circuit half-open for good, refusing every call to an
 * upstream that has long recovered.
 */
@Timeout(30)
class BreakerRecoveryTest {

    @Test
    void trialCallsThatAreCancelledOrClosedUnreadStillLetARecoveredUpstreamCloseItsCircuit() throws Exception {
        FakeTime time = new FakeTime();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.resetBeforeResponse());
                GuardedHttpClient client = GuardedHttpClients.custom()
                        .defaults(GuardPolicy.builder()
                                .set("retry.enabled", "false")
                                .set("circuit-breaker.minimum-calls", "2")
                                .set("circuit-breaker.open-for", "10s")
                                .set("circuit-breaker.half-open-calls", "2")
                                .build())
                        .clock(time.clock())
                        .build()) {
            for (int i = 0; i < 2; i++) {
                assertThat(catchThrowable(() -> client.executeOpen(null, new HttpGet(upstream.uri("/x")), null)))
                        .isInstanceOf(UpstreamException.class);
            }
            GuardedUpstream guarded = client.upstream(upstream.baseUrl());
            assertThat(guarded.circuitState()).isEqualTo("OPEN");

            upstream.behaviour(Behaviours.ok("fine"));
            time.advance(Duration.ofSeconds(11));
            for (int round = 0; round < 2; round++) {
                // A trial call its caller cancels: no outcome for the breaker, so its permit must come back.
                HttpGet cancelled = new HttpGet(upstream.uri("/x"));
                cancelled.cancel();
                assertThat(catchThrowable(() -> client.executeOpen(null, cancelled, null))).isNotNull();
            }
            // A trial call whose response is closed unread: the caller's choice, a success for the upstream.
            client.executeOpen(null, new HttpGet(upstream.uri("/x")), null).close();
            assertThat(guarded.circuitState()).isEqualTo("HALF_OPEN");
            try (ClassicHttpResponse read = client.executeOpen(null, new HttpGet(upstream.uri("/x")), null)) {
                read.getEntity().getContent().readAllBytes();
            }

            assertThat(guarded.circuitState()).isEqualTo("CLOSED");
            assertThat(guarded.callsInFlight()).isZero();
            assertThat(client.poolStats().getLeased()).isZero();
        }
    }
}
