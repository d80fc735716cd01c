package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.classic.methods.HttpGet;
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
}
