package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static dev.upstreamguard.client.FaultMatrixTest.post;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.FakeTime;
import dev.upstreamguard.testing.MockWebServers;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.Tag;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.stream.Collectors;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.classic.methods.HttpUriRequestBase;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The meters of DESIGN.md on a {@link SimpleMeterRegistry}: names, tags, values, and no URI in any tag. */
@Timeout(30)
class MetricsTest {

    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final FakeTime time = new FakeTime();
    private MockWebServer server;

    @BeforeEach
    void start() throws IOException {
        server = MockWebServers.start();
        MockWebServers.answer(server, request -> {
            String path = request.getTarget();
            int status = path.startsWith("/missing") ? 404 : path.startsWith("/broken") ? 500 : 200;
            return new MockResponse.Builder().code(status).body("status " + status).build();
        });
    }

    @AfterEach
    void stop() {
        server.close();
    }

    private static GuardPolicy.Builder policy() {
        return GuardPolicy.builder().connectTimeout(Duration.ofSeconds(2)).responseTimeout(Duration.ofSeconds(5));
    }

    private GuardedHttpClientBuilder builder() {
        return GuardedHttpClients.custom()
                .meterRegistry(registry)
                .ticker(time)
                .sleeper(time)
                .clock(time.clock())
                .upstream("inventory", "http://127.0.0.1:" + server.getPort(), policy().build());
    }

    private static int call(GuardedHttpClient client, ClassicHttpRequest request) throws IOException {
        return client.execute(request, r -> {
            EntityUtils.consume(r.getEntity());
            return r.getCode();
        });
    }

    private Timer calls(String upstream, String method, String outcome, String status, String fault) {
        return registry.find("upstream.guard.calls")
                .tags("upstream", upstream, "method", method, "outcome", outcome, "status", status, "fault", fault)
                .timer();
    }

    private long totalCalls() {
        return registry.find("upstream.guard.calls").timers().stream().mapToLong(Timer::count).sum();
    }

    @Test
    void recordsEveryCallOnceWithOutcomeStatusAndFaultTags() throws Exception {
        try (RawUpstream resetting = RawUpstream.start(Behaviours.resetBeforeResponse());
                GuardedHttpClient client = builder()
                        .upstream("payments", resetting.baseUrl(), policy().build())
                        .build()) {
            assertThat(call(client, new HttpGet(MockWebServers.uri(server, "/ok")))).isEqualTo(200);
            assertThat(call(client, new HttpGet(MockWebServers.uri(server, "/missing")))).isEqualTo(404);
            assertThat(call(client, new HttpGet(MockWebServers.uri(server, "/broken")))).isEqualTo(500);
            failure(client, post(resetting.uri("/pay")));

            assertThat(calls("inventory", "GET", "success", "200", "none")).isNotNull()
                    .satisfies(t -> assertThat(t.count()).isEqualTo(1));
            assertThat(calls("inventory", "GET", "client_error", "404", "none")).isNotNull()
                    .satisfies(t -> assertThat(t.count()).isEqualTo(1));
            assertThat(calls("inventory", "GET", "server_error", "500", "none")).isNotNull()
                    .satisfies(t -> assertThat(t.count()).isEqualTo(1));
            assertThat(calls("payments", "POST", "fault", "none", "connection_terminated")).isNotNull()
                    .satisfies(t -> assertThat(t.count()).isEqualTo(1));
            assertThat(totalCalls()).as("one sample per call, not per attempt").isEqualTo(4);
        }
    }

    @Test
    void rejectionsAreRecordedAsRejectedWithoutAStatus() throws Exception {
        GuardPolicy breakFast = policy().retryEnabled(false).minimumCalls(1).failureRateThreshold(50).build();
        try (RawUpstream resetting = RawUpstream.start(Behaviours.resetBeforeResponse());
                GuardedHttpClient client = builder().upstream("payments", resetting.baseUrl(), breakFast).build()) {
            failure(client, new HttpGet(resetting.uri("/")));
            UpstreamException rejected = failure(client, new HttpGet(resetting.uri("/")));
            assertThat(rejected.fault().type()).isEqualTo("destination_unavailable");

            assertThat(calls("payments", "GET", "rejected", "none", "destination_unavailable")).isNotNull()
                    .satisfies(t -> assertThat(t.count()).isEqualTo(1));
            assertThat(calls("payments", "GET", "fault", "none", "connection_terminated")).isNotNull()
                    .satisfies(t -> assertThat(t.count()).isEqualTo(1));
        }
    }

    @Test
    void countsRetriesByFaultAndBudgetExhaustion() throws Exception {
        try (RawUpstream flaky = RawUpstream.start(Behaviours.resetBeforeResponse(), Behaviours.ok("fine"));
                RawUpstream broken = RawUpstream.start(Behaviours.resetBeforeResponse());
                GuardedHttpClient client = builder()
                        .upstream("flaky", flaky.baseUrl(), policy().build())
                        .upstream("broken", broken.baseUrl(),
                                policy().budgetRatio(0).budgetMinPerSecond(0).build())
                        .build()) {
            assertThat(call(client, new HttpGet(flaky.uri("/")))).isEqualTo(200);
            assertThat(registry.get("upstream.guard.retries").tags("upstream", "flaky", "fault", "connection_terminated")
                    .counter().count()).isEqualTo(1);
            assertThat(calls("flaky", "GET", "success", "200", "none").count()).isEqualTo(1);

            UpstreamException e = failure(client, new HttpGet(broken.uri("/")));
            assertThat(e.attempts()).as("an empty budget allows no retry").isEqualTo(1);
            assertThat(registry.get("upstream.guard.retry.budget.exhausted").tags("upstream", "broken").counter().count())
                    .isEqualTo(1);
            assertThat(registry.find("upstream.guard.retries").tags("upstream", "broken").counters()).allSatisfy(
                    c -> assertThat(c.count()).isZero());
        }
    }

    @Test
    void faultsWhileReadingTheBodyAreRecordedToo() throws Exception {
        try (RawUpstream truncated = RawUpstream.start(Behaviours.truncatedBody());
                GuardedHttpClient client = builder().upstream("files", truncated.baseUrl(), policy().build()).build()) {
            ClassicHttpResponse response = client.executeOpen(null, new HttpGet(truncated.uri("/big")), null);
            try {
                assertThat(catchThrowable(() -> EntityUtils.toByteArray(response.getEntity())))
                        .isInstanceOf(UpstreamException.class);
            } finally {
                try {
                    response.close();
                } catch (IOException ignored) {
                    // Already failed.
                }
            }
            List<Timer> timers = registry.find("upstream.guard.calls").tags("upstream", "files").timers().stream()
                    .filter(t -> t.count() > 0).collect(Collectors.toList());
            assertThat(timers).singleElement().satisfies(t -> {
                assertThat(t.getId().getTag("outcome")).isEqualTo("fault");
                assertThat(t.getId().getTag("fault")).isEqualTo("http_response_incomplete");
                assertThat(t.count()).isEqualTo(1);
            });
            assertThat(client.upstream("files").faultCounts()).containsEntry(
                    dev.upstreamguard.UpstreamFault.HTTP_RESPONSE_INCOMPLETE, 1L);
        }
    }

    @Test
    void bindsResilience4jCircuitBreakerAndBulkheadMetersToTheSameRegistry() throws Exception {
        try (GuardedHttpClient client = builder().build()) {
            assertThat(call(client, new HttpGet(MockWebServers.uri(server, "/ok")))).isEqualTo(200);
            List<Meter> breaker = registry.getMeters().stream()
                    .filter(m -> m.getId().getName().startsWith("resilience4j.circuitbreaker."))
                    .filter(m -> "inventory".equals(m.getId().getTag("name")))
                    .collect(Collectors.toList());
            assertThat(breaker).extracting(m -> m.getId().getName())
                    .contains("resilience4j.circuitbreaker.state", "resilience4j.circuitbreaker.calls");
            assertThat(registry.getMeters()).anySatisfy(m -> {
                assertThat(m.getId().getName()).startsWith("resilience4j.bulkhead.");
                assertThat(m.getId().getTag("name")).isEqualTo("inventory");
            });
        }
    }

    /**
     * Regression: the method tag was taken from the upper-cased name, so a request with the method "get" was counted
     * as a GET. Method names are case-sensitive (RFC 9110 §9.1), and the client does not treat "get" as a GET (it is
     * never replayed): it is an extension method, tagged {@code OTHER} like the rest.
     */
    @Test
    void theMethodTagIsCaseSensitiveLikeTheMethodItself() throws Exception {
        try (GuardedHttpClient client = builder().build()) {
            assertThat(call(client, new HttpUriRequestBase("get", MockWebServers.uri(server, "/ok")))).isEqualTo(200);
            assertThat(call(client, new HttpGet(MockWebServers.uri(server, "/ok")))).isEqualTo(200);

            assertThat(calls("inventory", "OTHER", "success", "200", "none")).isNotNull()
                    .satisfies(t -> assertThat(t.count()).isEqualTo(1));
            assertThat(calls("inventory", "GET", "success", "200", "none")).isNotNull()
                    .satisfies(t -> assertThat(t.count()).isEqualTo(1));
        }
    }

    @Test
    void noTagValueEverContainsAPathOrQuery() throws Exception {
        try (RawUpstream resetting = RawUpstream.start(Behaviours.resetBeforeResponse());
                GuardedHttpClient client = builder().build()) {
            call(client, new HttpGet(MockWebServers.uri(server, "/ok/secret-path/42?token=s3cr3t")));
            call(client, new HttpGet(MockWebServers.uri(server, "/missing/secret-path?token=s3cr3t")));
            // An unnamed upstream: its name is scheme://host:port, never more.
            failure(client, new HttpGet(resetting.uri("/secret-path/7?token=s3cr3t")));
            call(client, new HttpUriRequestBase("SECRET-METHOD", MockWebServers.uri(server, "/ok/secret-path?token=s3cr3t")));

            List<String> values = registry.getMeters().stream()
                    .flatMap(m -> m.getId().getTags().stream())
                    .map(Tag::getValue)
                    .collect(Collectors.toList());
            assertThat(values).isNotEmpty().contains(resetting.baseUrl(), "OTHER");
            assertThat(values).noneSatisfy(v -> assertThat(v).containsAnyOf("secret", "s3cr3t", "?", "token"));
            assertThat(values).filteredOn(v -> v.startsWith("http")).allSatisfy(
                    v -> assertThat(v).matches("https?://[^/]+:\\d+"));
        }
    }
}
