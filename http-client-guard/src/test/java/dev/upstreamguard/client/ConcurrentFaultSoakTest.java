package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import dev.upstreamguard.testing.TestTls;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.classic.methods.HttpPost;
import org.apache.hc.client5.http.classic.methods.HttpUriRequestBase;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.io.entity.StringEntity;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Timeout;

/**
 * Many callers at once against one upstream that mixes healthy keep-alive answers with every way of breaking, through
 * a small pool and bulkhead, over plain HTTP and TLS, with callers that read bodies fully, partly or not at all.
 * Whatever the interleaving: every failure is a classified {@link UpstreamException}, a healthy response is never corrupted by what an earlier
 * exchange left on a reused connection, a POST is never retried after the upstream may have acted, and afterwards no
 * connection or bulkhead permit is held.
 */
@Timeout(120)
class ConcurrentFaultSoakTest {

    private static final String BODY = "x".repeat(3000);
    private static final GuardPolicy STALL_POLICY = policy("300ms");
    private static final String[] PATHS = {"/ok", "/ok", "/ok", "/chunked", "/reset", "/close", "/truncated",
        "/not-http", "/stall", "/unavailable"};

    @ParameterizedTest(name = "tls={0}")
    @ValueSource(booleans = {false, true})
    void mixedFaultsFromManyThreadsLeakNothingAndNeverCorruptAHealthyResponse(boolean tls) throws Exception {
        List<String> wrong = new CopyOnWriteArrayList<>();
        GuardedHttpClientBuilder builder = GuardedHttpClients.custom();
        if (tls) {
            builder.sslContext(TestTls.clientContext());
        }
        RawUpstream.Behaviour byPath = Behaviours.byPath(BODY);
        try (RawUpstream upstream = tls ? RawUpstream.startTls(false, byPath) : RawUpstream.start(byPath);
                GuardedHttpClient client = builder
                        .defaults(policy("10s"))
                        .build()) {
            ExecutorService callers = Executors.newFixedThreadPool(8);
            for (int t = 0; t < 8; t++) {
                Random random = new Random(t);
                callers.execute(() -> {
                    for (int i = 0; i < 100; i++) {
                        call(client, upstream, PATHS[random.nextInt(PATHS.length)], random.nextInt(3) == 0,
                                random.nextInt(3), wrong);
                    }
                });
            }
            callers.shutdown();
            assertThat(callers.awaitTermination(100, TimeUnit.SECONDS)).isTrue();

            assertThat(wrong).isEmpty();
            assertThat(client.poolStats().getLeased()).isZero();
            assertThat(client.upstream(upstream.baseUrl()).callsInFlight()).isZero();
            try (ClassicHttpResponse response = client.executeOpen(null, new HttpGet(upstream.uri("/ok")), null)) {
                assertThat(response.getCode()).isEqualTo(200);
            }
        }
    }

    /**
     * The soak's policy. Healthy exchanges get a response-timeout no loaded machine outlasts (at 300 ms they timed out
     * under a load of 30, failing the test for no fault of the client); only calls to {@code /stall} run on a short one
     * (per call), so the soak stays quick.
     */
    private static GuardPolicy policy(String responseTimeout) {
        return GuardPolicy.builder()
                .set("response-timeout", responseTimeout)
                .set("pool-timeout", "500ms")
                .set("max-connections", "4")
                .set("bulkhead.max-concurrent-calls", "6")
                .set("circuit-breaker.enabled", "false")
                .set("retry.budget-min-per-second", "1000")
                .set("retry.initial-backoff", "1ms")
                .set("retry.max-backoff", "5ms")
                .build();
    }

    /** One call; {@code read} 0 reads the body fully, 1 reads a little then closes, 2 closes without reading. */
    private static void call(GuardedHttpClient client, RawUpstream upstream, String path, boolean post, int read,
            List<String> wrong) {
        HttpUriRequestBase request = post ? new HttpPost(upstream.uri(path)) : new HttpGet(upstream.uri(path));
        if (post) {
            request.setEntity(new StringEntity("order=1"));
        }
        String what = request.getMethod() + " " + path + " read=" + read;
        HttpClientContext context = HttpClientContext.create();
        if (path.equals("/stall")) {
            context.setAttribute(GuardedHttpClient.POLICY_ATTRIBUTE, STALL_POLICY);
        }
        try (ClassicHttpResponse response = client.executeOpen(null, request, context)) {
            if (read == 0) {
                byte[] body = response.getEntity().getContent().readAllBytes();
                if (response.getCode() == 200 && !BODY.equals(new String(body, StandardCharsets.ISO_8859_1))) {
                    wrong.add(what + ": a 200 with a body of " + body.length + " bytes that is not the upstream's");
                }
            } else if (read == 1) {
                InputStream in = response.getEntity().getContent();
                in.read(new byte[100]);
            }
        } catch (UpstreamException e) {
            boolean healthy = path.equals("/ok") || path.equals("/chunked") || path.equals("/unavailable");
            if (healthy && e.fault() != UpstreamFault.CONNECTION_LIMIT_REACHED) {
                wrong.add(what + ": " + e);
            }
            if (post && e.fault().upstreamMayHaveActed() && e.attempts() != 1) {
                wrong.add(what + ": a POST retried after the upstream may have acted: " + e);
            }
        } catch (Exception e) {
            wrong.add(what + ": not an UpstreamException: " + e);
        }
    }
}
