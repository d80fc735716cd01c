package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.FakeTime;
import dev.upstreamguard.testing.MockWebServers;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.config.MeterFilter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A client calling ever new hosts keeps state for at most {@code maxUnnamedUpstreams} unnamed upstreams: the ones
 * idle longest are forgotten, meters included, but never one whose circuit is open.
 */
@Timeout(30)
class UnnamedUpstreamLimitTest {

    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final FakeTime time = new FakeTime();
    private final List<MockWebServer> servers = new ArrayList<>();

    @BeforeEach
    void start() throws IOException {
        for (int i = 0; i < 3; i++) {
            MockWebServer server = MockWebServers.start();
            MockWebServers.always(server, new MockResponse.Builder().body("ok").build());
            servers.add(server);
        }
    }

    @AfterEach
    void stop() {
        servers.forEach(MockWebServer::close);
    }

    private GuardedHttpClient client(int maxUnnamed) {
        return GuardedHttpClients.custom()
                .defaults(GuardPolicy.builder()
                        .set("retry.enabled", "false")
                        .set("circuit-breaker.minimum-calls", "1")
                        .build())
                .maxUnnamedUpstreams(maxUnnamed)
                .meterRegistry(registry)
                .ticker(time)
                .sleeper(time)
                .clock(time.clock())
                .build();
    }

    private String origin(int server) {
        return "http://127.0.0.1:" + servers.get(server).getPort();
    }

    private void get(GuardedHttpClient client, String origin) throws IOException {
        client.execute(new HttpGet(origin + "/x"), r -> {
            EntityUtils.consume(r.getEntity());
            return r.getCode();
        });
        // Calls a second or more apart, so that "idle longest" is well defined on the fake ticker.
        time.advance(Duration.ofSeconds(2));
    }

    private static Set<String> names(GuardedHttpClient client) {
        return client.upstreams().stream().map(GuardedUpstream::name).collect(Collectors.toSet());
    }

    /** Every meter that names the upstream, ours ({@code upstream} tag) and Resilience4j's ({@code name} tag). */
    private List<Meter> metersOf(String upstream) {
        return registry.getMeters().stream()
                .filter(m -> upstream.equals(m.getId().getTag("upstream")) || upstream.equals(m.getId().getTag("name")))
                .collect(Collectors.toList());
    }

    @Test
    void pastTheCapTheUnnamedUpstreamIdleLongestIsForgottenWithItsMeters() throws IOException {
        try (GuardedHttpClient client = client(2)) {
            get(client, origin(0));
            get(client, origin(1));
            assertThat(metersOf(origin(0))).isNotEmpty();

            get(client, origin(2));

            assertThat(names(client)).containsExactlyInAnyOrder(origin(1), origin(2));
            assertThat(metersOf(origin(0))).isEmpty();
            assertThat(metersOf(origin(1))).isNotEmpty();
            assertThat(metersOf(origin(2))).isNotEmpty();
        }
    }

    @Test
    void aForgottenUpstreamCalledAgainStartsAfreshAndTheRecentlyUsedOneStays() throws IOException {
        try (GuardedHttpClient client = client(2)) {
            get(client, origin(0));
            get(client, origin(1));
            get(client, origin(0)); // now origin(1) is the one idle longest
            get(client, origin(2));
            assertThat(names(client)).containsExactlyInAnyOrder(origin(0), origin(2));

            get(client, origin(1));

            assertThat(names(client)).containsExactlyInAnyOrder(origin(2), origin(1));
            assertThat(registry.find("upstream.guard.calls").tag("upstream", origin(1)).timer().count())
                    .as("the forgotten upstream's count starts again").isEqualTo(1);
        }
    }

    @Test
    void anUpstreamWhoseCircuitIsOpenIsNeverForgotten() throws IOException {
        String refused = ClosedPort.find().baseUrl();
        try (GuardedHttpClient client = client(2)) {
            assertThatThrownBy(() -> get(client, refused)).isInstanceOf(UpstreamException.class);
            assertThat(client.upstream(refused).circuitState()).isEqualTo("OPEN");

            get(client, origin(0));
            get(client, origin(1));

            assertThat(names(client)).containsExactlyInAnyOrder(refused, origin(1));
            assertThat(client.upstream(refused).circuitState()).isEqualTo("OPEN");
            UpstreamException rejected = (UpstreamException) catchThrowable(
                    () -> get(client, refused));
            assertThat(rejected.fault()).isEqualTo(UpstreamFault.DESTINATION_UNAVAILABLE);
        }
    }

    /**
     * Regression: with the bulkhead disabled nothing counted the calls in flight, so an unnamed upstream whose response
     * was still being read looked idle and was forgotten with its meters; that call's sample was then dropped, and
     * {@code callsInFlight} read 0 for every upstream without a bulkhead.
     */
    @Test
    void anUpstreamWithACallInFlightIsNeverForgottenEvenWithoutABulkhead() throws IOException {
        try (GuardedHttpClient client = GuardedHttpClients.custom()
                .defaults(GuardPolicy.builder().set("bulkhead.enabled", "false").build())
                .maxUnnamedUpstreams(1)
                .meterRegistry(registry)
                .ticker(time)
                .sleeper(time)
                .clock(time.clock())
                .build()) {
            ClassicHttpResponse open = client.executeOpen(null, new HttpGet(origin(0) + "/x"), null);
            assertThat(client.upstream(origin(0)).callsInFlight()).isEqualTo(1);
            time.advance(Duration.ofSeconds(2));

            get(client, origin(1));

            assertThat(names(client)).containsExactlyInAnyOrder(origin(0), origin(1));
            EntityUtils.consume(open.getEntity());
            open.close();
            assertThat(client.upstream(origin(0)).callsInFlight()).isZero();
            assertThat(registry.find("upstream.guard.calls").tag("upstream", origin(0)).tag("outcome", "success")
                    .timer()).isNotNull().satisfies(t -> assertThat(t.count()).isEqualTo(1));
        }
    }

    /**
     * Regression: a finished call left the in-flight count before it was on record. In between, its upstream looked
     * idle and could be forgotten: the sample was dropped, or registered again after the upstream's meters had been
     * removed, for good. Whoever sees no call in flight can now rely on every finished call being on record.
     */
    @ParameterizedTest(name = "bulkhead enabled: {0}")
    @ValueSource(booleans = {true, false})
    void aFinishedCallIsOnRecordBeforeItStopsCountingAsInFlight(boolean bulkhead) throws IOException {
        AtomicReference<GuardedHttpClient> client = new AtomicReference<>();
        List<Integer> inFlightWhenRecorded = new CopyOnWriteArrayList<>();
        registry.config().meterFilter(new MeterFilter() {
            @Override
            public Meter.Id map(Meter.Id id) {
                if (id.getName().equals("upstream.guard.calls")) {
                    inFlightWhenRecorded.add(client.get().upstream(origin(0)).callsInFlight());
                }
                return id;
            }
        });
        try (GuardedHttpClient guarded = GuardedHttpClients.custom()
                .defaults(GuardPolicy.builder().set("bulkhead.enabled", Boolean.toString(bulkhead)).build())
                .meterRegistry(registry)
                .ticker(time)
                .sleeper(time)
                .clock(time.clock())
                .build()) {
            client.set(guarded);
            get(guarded, origin(0));

            assertThat(inFlightWhenRecorded).as("calls in flight as the call was recorded").containsExactly(1);
            assertThat(guarded.upstream(origin(0)).callsInFlight()).isZero();
        }
    }

    @Test
    void namedUpstreamsAreNeverForgottenAndDoNotCountAgainstTheCap() throws IOException {
        try (GuardedHttpClient client = GuardedHttpClients.custom()
                .upstream("first", origin(0))
                .maxUnnamedUpstreams(1)
                .meterRegistry(registry)
                .ticker(time)
                .clock(time.clock())
                .build()) {
            get(client, origin(0));
            get(client, origin(1));
            get(client, origin(2));

            assertThat(names(client)).containsExactlyInAnyOrder("first", origin(2));
        }
    }

    @Test
    void theCapMustBePositive() {
        assertThatThrownBy(() -> GuardedHttpClients.custom().maxUnnamedUpstreams(0))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("maxUnnamedUpstreams");
    }
}
