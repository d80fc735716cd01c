package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.client.GuardedUpstream;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.apache.hc.core5.io.CloseMode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledForJreRange;
import org.junit.jupiter.api.condition.JRE;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The gateway in containers that serve each request on a virtual thread (Tomcat's {@code useVirtualThreads}, Jetty's
 * {@code VirtualThreadPool}): many concurrent calls to a stalled upstream, through the proxy servlet and through the
 * fault filter in front of a guarded client; each over its response timeout (a socket timeout) and over its deadline
 * (our timer). Skipped on runtimes without virtual threads.
 */
@EnabledForJreRange(min = JRE.JAVA_21)
class VirtualThreadGatewayTest {

    private static final int REQUESTS = 200;
    private static final int BULKHEAD = 50;
    private static final Duration RESPONSE_TIMEOUT = Duration.ofSeconds(1);
    /** Far past the 1 s timeouts, even on a loaded machine: an answer this late means a timer did not fire. */
    private static final Duration LATE = Duration.ofSeconds(10);

    private static final Map<String, String> POLICY = Map.of(
            "response-timeout", "1s",
            "bulkhead.max-concurrent-calls", Integer.toString(BULKHEAD),
            "max-connections", Integer.toString(BULKHEAD),
            "retry.enabled", "false",
            "circuit-breaker.enabled", "false");

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    @Timeout(120)
    void manyCallsToAStalledUpstreamOnVirtualThreadsAreRejectedOrTimedOutOnTimeAndLeakNothing(Container container)
            throws Exception {
        try (RawUpstream stalled = RawUpstream.start(Behaviours.stall())) {
            UpstreamProxyServlet.Builder builder = UpstreamProxyServlet.builder(stalled.baseUrl()).proxyName("vt")
                    .meterRegistry(null);
            POLICY.forEach(builder::set);
            UpstreamProxyServlet proxy = builder.build();
            // The deadline, unlike the response timeout, is no socket timeout: our timer thread ends the calls.
            UpstreamProxyServlet.Builder deadlined = UpstreamProxyServlet.builder(stalled.baseUrl()).proxyName("vt")
                    .upstreamName("deadlined").meterRegistry(null);
            POLICY.forEach(deadlined::set);
            UpstreamProxyServlet deadline = deadlined.set("response-timeout", "30s").set("total-timeout", "1s").build();
            GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(null)
                    .upstream("stalled", stalled.baseUrl(), policy()).build();
            try (Container.Running running = container.start(new Container.Deployment().virtualThreads()
                    .servlet("proxy", proxy, "/p/*")
                    .servlet("deadline", deadline, "/d/*")
                    .servlet("thread", new ThreadName(), "/thread")
                    .filter("guard", UpstreamFaultFilter.builder().proxyName("vt").meterRegistry(null).build(), "/f/*")
                    .servlet("app", new Application(client, stalled.baseUrl()), "/f/app"))) {
                assertThat(RawClient.request(running.port(), "GET", "/gw/thread").bodyUtf8())
                        .as("the container serves on virtual threads").startsWith("VirtualThread");
                for (String path : new String[] {"/gw/p/x", "/gw/f/app", "/gw/d/x"}) {
                    String timedOut = path.startsWith("/gw/d/") ? "504 vt; error=http_response_timeout"
                            : "504 vt; error=connection_read_timeout";
                    Map<String, Integer> answers = burst(running.port(), path);
                    assertThat(answers.keySet()).as("%s %s", path, answers).containsOnly(
                            "503 vt; error=connection_limit_reached", timedOut);
                    assertThat(answers.get(timedOut)).as("%s %s", path, answers).isGreaterThanOrEqualTo(BULKHEAD);
                    assertThat(answers.get("503 vt; error=connection_limit_reached")).as("%s %s", path, answers)
                            .isPositive();
                }
                Await.until("no upstream connection is leased and no call is in flight", Duration.ofSeconds(15),
                        () -> proxy.client().poolStats().getLeased() == 0
                                && proxy.client().upstream("proxy").callsInFlight() == 0
                                && deadline.client().poolStats().getLeased() == 0
                                && deadline.client().upstream("deadlined").callsInFlight() == 0
                                && client.poolStats().getLeased() == 0
                                && client.upstream("stalled").callsInFlight() == 0,
                        () -> proxy.client().poolStats() + ", " + deadline.client().poolStats() + ", "
                                + client.poolStats());
            } finally {
                client.close(CloseMode.IMMEDIATE);
            }
        }
    }

    /**
     * A virtual thread's socket read, unlike a platform thread's, ends on an interrupt (the JDK closes the socket):
     * the caller gave up, so the call is cancelled, not a {@code connection_terminated} of the upstream, and is not
     * sent again.
     */
    @Test
    @Timeout(60)
    void aVirtualThreadInterruptedWhileItsGuardedCallWaitsIsCancelledAndNotRetried() throws Exception {
        for (boolean midBody : new boolean[] {false, true}) {
            CountDownLatch requestRead = new CountDownLatch(1);
            SimpleMeterRegistry meters = new SimpleMeterRegistry();
            try (RawUpstream upstream = RawUpstream.start(c -> {
                if (c.readRequest() != null) {
                    if (midBody) {
                        c.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly sixteen b..");
                    }
                    requestRead.countDown();
                    c.stallUntilClosed();
                }
            }); GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                    .defaults(GuardPolicy.builder().responseTimeout(Duration.ofSeconds(30)).build()).build()) {
                AtomicReference<Throwable> thrown = new AtomicReference<>();
                // Through reflection: the tests compile for Java 17.
                Thread caller = (Thread) Thread.class.getMethod("startVirtualThread", Runnable.class).invoke(null,
                        (Runnable) () -> thrown.set(catchThrowable(() -> client.execute(
                                new HttpGet(upstream.uri("/items")), r -> EntityUtils.toString(r.getEntity())))));
                assertThat(requestRead.await(15, TimeUnit.SECONDS)).isTrue();
                caller.interrupt();
                caller.join(15_000);
                assertThat(caller.isAlive()).as("midBody=%s", midBody).isFalse();
                assertThat(thrown.get()).as("midBody=%s", midBody).isNotNull();
                assertThat(upstream.requestCount()).as("midBody=%s: sent again", midBody).isEqualTo(1);
                GuardedUpstream state = client.upstream(upstream.baseUrl());
                assertThat(state.faultCounts()).as("midBody=%s %s", midBody, thrown.get()).isEmpty();
                assertThat(state.circuitBreaker()).hasValueSatisfying(
                        cb -> assertThat(cb.getMetrics().getNumberOfFailedCalls()).isZero());
                Await.until("the connection is back", Duration.ofSeconds(10),
                        () -> client.poolStats().getLeased() == 0 && state.callsInFlight() == 0);
                assertThat(meters.find("upstream.guard.calls").timers()).singleElement().satisfies(t -> assertThat(
                        t.getId().getTag("outcome")).as("midBody=%s %s", midBody, thrown.get()).isEqualTo("cancelled"));
            }
        }
    }

    private static GuardPolicy policy() {
        return GuardPolicy.builder().setAll(POLICY).build();
    }

    /** Sends {@link #REQUESTS} requests at once; counts answers by status and {@code Proxy-Status}. */
    private static Map<String, Integer> burst(int port, String path) throws Exception {
        ExecutorService clients = Executors.newFixedThreadPool(REQUESTS);
        try {
            List<Future<String>> answers = new ArrayList<>();
            // All at once: the first BULKHEAD hold their slots for a second, so the rest find the bulkhead full.
            CountDownLatch ready = new CountDownLatch(REQUESTS);
            CountDownLatch go = new CountDownLatch(1);
            for (int i = 0; i < REQUESTS; i++) {
                answers.add(clients.submit(() -> {
                    ready.countDown();
                    go.await(30, TimeUnit.SECONDS);
                    long start = System.nanoTime();
                    RawClient.Response r = RawClient.request(port, "GET", path);
                    long took = System.nanoTime() - start;
                    // Less a few milliseconds: the socket timeout capped by the deadline is in whole milliseconds.
                    if (r.status() == 504 && took < RESPONSE_TIMEOUT.minusMillis(10).toNanos()) {
                        return "504 before the timeout: " + Duration.ofNanos(took);
                    }
                    if (took > LATE.toNanos()) {
                        return r.status() + " only after " + Duration.ofNanos(took);
                    }
                    return r.status() + " " + r.header("Proxy-Status");
                }));
            }
            assertThat(ready.await(30, TimeUnit.SECONDS)).isTrue();
            go.countDown();
            Map<String, Integer> counts = new TreeMap<>();
            for (Future<String> answer : answers) {
                counts.merge(answer.get(60, TimeUnit.SECONDS), 1, Integer::sum);
            }
            return counts;
        } finally {
            clients.shutdownNow();
        }
    }

    /** Answers the name of the thread serving the request. */
    private static final class ThreadName extends HttpServlet {
        @Override
        protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            resp.setContentType("text/plain");
            resp.getOutputStream().write(Thread.currentThread().toString().getBytes(StandardCharsets.UTF_8));
        }
    }

    /** An application calling its upstream with a guarded client, behind the fault filter. */
    private static final class Application extends HttpServlet {
        private final GuardedHttpClient client;
        private final String upstream;

        Application(GuardedHttpClient client, String upstream) {
            this.client = client;
            this.upstream = upstream;
        }

        @Override
        protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            String body = client.execute(new HttpGet(upstream + "/x"), r -> EntityUtils.toString(r.getEntity()));
            resp.getWriter().write(body);
        }
    }
}
