package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.Blackhole;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import dev.upstreamguard.testing.TestTls;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.URI;
import java.time.Duration;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * What a dashboard reads for each fault of the taxonomy, over real sockets: exactly one
 * {@code upstream.guard.calls} sample per call (not per attempt) with its outcome, status and fault, and one
 * {@code upstream.guard.retries} per retry, tagged with the fault that caused it.
 */
@Timeout(60)
class MetricsFaultMatrixTest {

    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();

    private static GuardPolicy.Builder fast() {
        return GuardPolicy.builder()
                .connectTimeout(Duration.ofSeconds(5))
                .responseTimeout(Duration.ofSeconds(5))
                .poolTimeout(Duration.ofMillis(300))
                .initialBackoff(Duration.ofMillis(1))
                .maxBackoff(Duration.ofMillis(5));
    }

    private GuardedHttpClient client(GuardPolicy policy) {
        return GuardedHttpClients.custom().meterRegistry(registry).defaults(policy)
                .sslContext(TestTls.clientContext()).build();
    }

    /** Every call sample, as "outcome status fault" with its count; samples of count 0 left out. */
    private Map<String, Long> calls() {
        return registry.find("upstream.guard.calls").timers().stream().filter(t -> t.count() > 0).collect(
                Collectors.toMap(t -> t.getId().getTag("outcome") + " " + t.getId().getTag("status") + " "
                        + t.getId().getTag("fault"), Timer::count, Long::sum, TreeMap::new));
    }

    private Map<String, Double> retries() {
        return registry.find("upstream.guard.retries").counters().stream().filter(c -> c.count() > 0).collect(
                Collectors.toMap(c -> c.getId().getTag("fault"), Counter::count, Double::sum, TreeMap::new));
    }

    private void assertOneCall(URI uri, GuardPolicy policy, String expected, Map<String, Double> retries)
            throws Exception {
        try (GuardedHttpClient client = client(policy)) {
            failure(client, new HttpGet(uri));
        }
        assertThat(calls()).containsExactly(Map.entry(expected, 1L));
        assertThat(retries()).isEqualTo(retries);
    }

    /**
     * Regression: the timer's description, the HELP line of every scrape, said "every attempt included", which reads
     * as one sample per attempt; a call is one sample whatever its attempts (retries have a counter of their own).
     */
    @Test
    void theCallTimersDescriptionSaysOneSamplePerCall() throws Exception {
        aRefusedConnectionIsOneFaultSampleAndTwoRetries();
        assertThat(registry.get("upstream.guard.calls").timer().getId().getDescription())
                .startsWith("Calls to an upstream: one sample per call whatever its attempts");
    }

    @Test
    void aRefusedConnectionIsOneFaultSampleAndTwoRetries() throws Exception {
        assertOneCall(ClosedPort.find().uri("/"), fast().build(), "fault none connection_refused",
                Map.of("connection_refused", 2.0));
    }

    @Test
    void anUnresolvableHostIsOneDnsErrorSampleAndNoRetry() throws Exception {
        assertOneCall(URI.create("http://nothing.invalid/"), fast().build(), "fault none dns_error", Map.of());
    }

    @Test
    void aConnectTimeoutIsOneFaultSampleAndTwoRetries() throws Exception {
        try (Blackhole blackhole = Blackhole.open()) {
            assertOneCall(blackhole.uri("/"), fast().connectTimeout(Duration.ofMillis(300)).build(),
                    "fault none connection_timeout", Map.of("connection_timeout", 2.0));
        }
    }

    @Test
    void aReadTimeoutAndTheTotalDeadlineAreOneSampleEach() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.stall())) {
            assertOneCall(upstream.uri("/"), fast().responseTimeout(Duration.ofMillis(300)).build(),
                    "fault none connection_read_timeout", Map.of());
        }
        registry.clear();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.stall())) {
            assertOneCall(upstream.uri("/"), fast().totalTimeout(Duration.ofMillis(400)).build(),
                    "fault none http_response_timeout", Map.of());
        }
    }

    @Test
    void invalidResponsesAreOneFaultSampleEach() throws Exception {
        Map<RawUpstream.Behaviour, String> faults = Map.of(
                Behaviours.notHttp(), "http_protocol_error",
                Behaviours.hugeHeader(), "http_response_header_size",
                Behaviours.resetBeforeResponse(), "connection_terminated");
        for (Map.Entry<RawUpstream.Behaviour, String> e : faults.entrySet()) {
            registry.clear();
            try (RawUpstream upstream = RawUpstream.start(e.getKey())) {
                assertOneCall(upstream.uri("/"), fast().build(), "fault none " + e.getValue(),
                        e.getValue().equals("connection_terminated") ? Map.of("connection_terminated", 2.0) : Map.of());
            }
        }
    }

    @Test
    void bodyFaultsAfterA200HeadAreOneFaultSampleWithTheStatus() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.brokenGzip())) {
            assertOneCall(upstream.uri("/"), fast().build(), "fault 200 http_response_content_coding", Map.of());
        }
        registry.clear();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("x".repeat(5000)))) {
            assertOneCall(upstream.uri("/"), fast().maxResponseBody(1024).build(), "fault 200 http_response_body_size",
                    Map.of());
        }
    }

    @Test
    void aTlsAlertIsOneFaultSample() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.tlsFatalAlert())) {
            assertOneCall(URI.create("https://127.0.0.1:" + upstream.port() + "/"), fast().build(),
                    "fault none tls_alert_received", Map.of());
        }
    }

    @Test
    void aFullBulkheadAndAnExhaustedPoolAreOneSampleEach() throws Exception {
        CountDownLatch inFlight = new CountDownLatch(1);
        try (RawUpstream upstream = RawUpstream.start(Behaviours.stall(inFlight));
                GuardedHttpClient client = client(fast().maxConcurrentCalls(1).responseTimeout(Duration.ofSeconds(20))
                        .build())) {
            CompletableFuture<Throwable> first = CompletableFuture.supplyAsync(
                    () -> failure(client, new HttpGet(upstream.uri("/"))));
            assertThat(inFlight.await(20, TimeUnit.SECONDS)).isTrue();
            UpstreamException e = failure(client, new HttpGet(upstream.uri("/")));
            assertThat(e.fault().type()).isEqualTo("connection_limit_reached");
            assertThat(calls()).containsExactly(Map.entry("rejected none connection_limit_reached", 1L));
            client.close();
            first.get(20, TimeUnit.SECONDS);
        }
        assertThat(calls()).containsOnlyKeys("rejected none connection_limit_reached", "cancelled none none");
        registry.clear();
        CountDownLatch leased = new CountDownLatch(1);
        try (RawUpstream upstream = RawUpstream.start(Behaviours.stall(leased));
                GuardedHttpClient client = client(fast().maxConnections(1).responseTimeout(Duration.ofSeconds(20))
                        .build())) {
            CompletableFuture<Throwable> first = CompletableFuture.supplyAsync(
                    () -> failure(client, new HttpGet(upstream.uri("/"))));
            assertThat(leased.await(20, TimeUnit.SECONDS)).isTrue();
            UpstreamException e = failure(client, new HttpGet(upstream.uri("/")));
            assertThat(e.fault().type()).isEqualTo("connection_limit_reached");
            assertThat(calls()).containsExactly(Map.entry("fault none connection_limit_reached", 1L));
            client.close();
            first.get(20, TimeUnit.SECONDS);
        }
    }

    @Test
    void aValid503IsAServerErrorWithoutAFault() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.status(503, "busy"));
                GuardedHttpClient client = client(fast().retryEnabled(false).build())) {
            int status = client.execute(new HttpGet(upstream.uri("/")), r -> {
                EntityUtils.consume(r.getEntity());
                return r.getCode();
            });
            assertThat(status).isEqualTo(503);
        }
        assertThat(calls()).containsExactly(Map.entry("server_error 503 none", 1L));
    }
}
