package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.ParseException;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The bulkhead under real concurrency: exactly its limit reaches the upstream, the rest is rejected at once. */
@Timeout(30)
class ConcurrencyTest {

    @Test
    void aFullBulkheadLetsExactlyItsLimitThroughAndRejectsTheRestAtOnce() throws Exception {
        int limit = 3;
        int callers = 10;
        GuardPolicy policy = GuardPolicy.builder().maxConcurrentCalls(limit).responseTimeout(Duration.ofSeconds(20))
                .connectTimeout(Duration.ofSeconds(5)).build();
        ExecutorService pool = Executors.newFixedThreadPool(callers, r -> {
            Thread t = new Thread(r, "caller");
            t.setDaemon(true);
            return t;
        });
        RawUpstream upstream = RawUpstream.start(Behaviours.stall());
        CountDownLatch rejections = new CountDownLatch(callers - limit);
        try (GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy).build()) {
            List<Future<Throwable>> calls = new ArrayList<>();
            for (int i = 0; i < callers; i++) {
                calls.add(pool.submit(() -> {
                    Throwable t = catchThrowable(() -> client.execute(new HttpGet(upstream.uri("/")),
                            r -> EntityUtils.toString(r.getEntity())));
                    if (t instanceof UpstreamException
                            && ((UpstreamException) t).fault() == UpstreamFault.CONNECTION_LIMIT_REACHED) {
                        rejections.countDown();
                    }
                    return t;
                }));
            }
            // The rejected callers return at once, while the admitted ones are still stalled at the upstream.
            assertThat(rejections.await(10, TimeUnit.SECONDS)).isTrue();
            assertThat(upstream.awaitRequests(limit, Duration.ofSeconds(10))).isTrue();
            assertThat(upstream.requestCount()).isEqualTo(limit);
            assertThat(client.upstream(upstream.baseUrl()).callsInFlight()).isEqualTo(limit);

            upstream.close();
            int limited = 0;
            for (Future<Throwable> call : calls) {
                Throwable t = call.get(20, TimeUnit.SECONDS);
                assertThat(t).isInstanceOf(UpstreamException.class);
                if (((UpstreamException) t).fault() == UpstreamFault.CONNECTION_LIMIT_REACHED) {
                    assertThat(((UpstreamException) t).attempts()).isZero();
                    limited++;
                }
            }
            assertThat(limited).isEqualTo(callers - limit);
            assertThat(client.upstream(upstream.baseUrl()).callsInFlight()).isZero();
        } finally {
            upstream.close();
            pool.shutdownNow();
        }
    }

    /**
     * A permit lost on any path would, one call at a time, leave the upstream refusing everything as "bulkhead full".
     * Each way a call can end runs more often than the bulkhead has permits; afterwards the whole capacity is there,
     * and every call was counted once in the metrics.
     */
    @Test
    void everyWayACallCanEndGivesItsBulkheadPermitBackAndIsCountedOnce() throws Exception {
        int limit = 2;
        GuardPolicy policy = GuardPolicy.builder().maxConcurrentCalls(limit).responseTimeout(Duration.ofSeconds(10))
                .retryEnabled(false).circuitBreakerEnabled(false).build();
        ClosedPort closed = ClosedPort.find();
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.byPath("x".repeat(100)));
                GuardedHttpClient client = GuardedHttpClients.custom()
                        .upstream("inventory", upstream.baseUrl(), policy)
                        .upstream("fragile", closed.baseUrl(), policy.toBuilder().circuitBreakerEnabled(true)
                                .minimumCalls(1).build())
                        .meterRegistry(registry)
                        .build()) {
            List<Callable<?>> endings = List.of(
                    () -> client.execute(new HttpGet(upstream.uri("/ok")), r -> {
                        throw new IllegalStateException("a bug in the caller's handler");
                    }),
                    () -> client.execute(new HttpGet(upstream.uri("/ok")), r -> {
                        throw new IOException("the caller's own I/O failed");
                    }),
                    () -> {
                        client.executeOpen(null, new HttpGet(upstream.uri("/ok")), null).close();
                        return null;
                    },
                    () -> client.executeOpen(null, new HttpGet(upstream.uri("/ok")),
                            with(policy.toBuilder().maxResponseBody(10).build())),
                    () -> client.execute(new HttpGet(upstream.uri("/chunked")),
                            with(policy.toBuilder().maxResponseBody(10).build()), ConcurrencyTest::read),
                    () -> client.execute(new HttpGet(upstream.uri("/truncated")), ConcurrencyTest::read),
                    () -> {
                        HttpGet cancelled = new HttpGet(upstream.uri("/ok"));
                        cancelled.cancel();
                        return client.executeOpen(null, cancelled, null);
                    },
                    () -> {
                        HttpGet get = new HttpGet(upstream.uri("/ok"));
                        try (ClassicHttpResponse response = client.executeOpen(null, get, null)) {
                            response.getEntity().getContent().read(new byte[10]);
                            get.cancel();
                        }
                        return null;
                    },
                    () -> client.executeOpen(null, new HttpGet(upstream.uri("/reset")), null),
                    () -> client.executeOpen(null, new HttpGet(upstream.uri("/not-http")), null),
                    () -> client.executeOpen(null, new HttpGet(upstream.uri("/stall")),
                            with(policy.toBuilder().totalTimeout(Duration.ofMillis(200)).build())),
                    () -> client.executeOpen(null, new HttpGet(closed.uri("/")), null));
            for (int round = 0; round <= limit; round++) {
                for (Callable<?> ending : endings) {
                    Object result = catchThrowable(ending::call);
                    if (result == null) {
                        continue;
                    }
                    assertThat(result).isInstanceOfAny(UpstreamException.class, IOException.class,
                            IllegalStateException.class);
                }
            }
            // And each of them was counted, exactly once.
            assertThat(callsCounted(registry, "inventory")).isEqualTo((endings.size() - 1) * (limit + 1));
            assertThat(callsCounted(registry, "fragile")).isEqualTo(limit + 1);
            assertThat(client.upstream("fragile").circuitState()).isEqualTo("OPEN");
            assertThat(client.upstream("fragile").callsInFlight()).isZero();
            GuardedUpstream inventory = client.upstream("inventory");
            assertThat(inventory.callsInFlight()).isZero();

            List<ClassicHttpResponse> held = new ArrayList<>();
            try {
                for (int i = 0; i < limit; i++) {
                    held.add(client.executeOpen(null, new HttpGet(upstream.uri("/ok")), null));
                }
                assertThat(held).allSatisfy(r -> assertThat(r.getCode()).isEqualTo(200));
                UpstreamException full = (UpstreamException) catchThrowable(
                        () -> client.executeOpen(null, new HttpGet(upstream.uri("/ok")), null));
                assertThat(full.fault()).isEqualTo(UpstreamFault.CONNECTION_LIMIT_REACHED);
                assertThat(full.retryAfter()).contains(Duration.ofSeconds(1));
            } finally {
                for (ClassicHttpResponse r : held) {
                    r.close();
                }
            }
            assertThat(inventory.callsInFlight()).isZero();
        }
    }

    private static String read(ClassicHttpResponse response) throws IOException, ParseException {
        return EntityUtils.toString(response.getEntity());
    }

    private static long callsCounted(SimpleMeterRegistry registry, String upstream) {
        return registry.find("upstream.guard.calls").tag("upstream", upstream).timers().stream()
                .mapToLong(Timer::count).sum();
    }

    private static HttpClientContext with(GuardPolicy policy) {
        HttpClientContext context = HttpClientContext.create();
        context.setAttribute(GuardedHttpClient.POLICY_ATTRIBUTE, policy);
        return context;
    }
}
