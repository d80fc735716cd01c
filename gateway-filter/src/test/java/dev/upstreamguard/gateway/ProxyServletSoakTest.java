package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Many clients at once through one proxy servlet to an upstream that mixes healthy keep-alive answers with every way
 * of breaking, through a small pool and bulkhead, with clients that read every answer or hang up after its status
 * line. Whatever the interleaving, each client gets the answer its path calls for (or an honest 503 from the full
 * bulkhead or pool), a healthy body is never corrupted, and afterwards no upstream connection or permit is held.
 */
class ProxyServletSoakTest {

    private static final String BODY = "y".repeat(3000);
    private static final String[] PATHS = {"/ok", "/ok", "/ok", "/chunked", "/reset", "/close", "/truncated",
        "/not-http", "/stall", "/unavailable"};

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    @Timeout(180)
    void mixedFaultsFromManyClientsAreEachAnsweredRightAndLeakNothing(Container container) throws Exception {
        List<String> wrong = new CopyOnWriteArrayList<>();
        AtomicInteger limited = new AtomicInteger();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.byPath(BODY))) {
            UpstreamProxyServlet servlet = UpstreamProxyServlet.builder(upstream.baseUrl())
                    .proxyName("soak")
                    .set("response-timeout", "1s") // a healthy answer on a loaded 2-core machine can take 300 ms
                    .set("pool-timeout", "500ms")
                    .set("max-connections", "4")
                    .set("bulkhead.max-concurrent-calls", "7")
                    .set("circuit-breaker.enabled", "false")
                    .set("retry.budget-min-per-second", "1000")
                    .set("retry.initial-backoff", "1ms")
                    .set("retry.max-backoff", "5ms")
                    .meterRegistry(null)
                    .build();
            try (Container.Running running = container.start(new Container.Deployment()
                    .servlet("soak", servlet, "/soak/*"))) {
                int port = running.port();
                ExecutorService clients = Executors.newFixedThreadPool(8);
                for (int t = 0; t < 8; t++) {
                    Random random = new Random(t);
                    clients.execute(() -> {
                        for (int i = 0; i < 50; i++) {
                            String path = PATHS[random.nextInt(PATHS.length)];
                            String method = random.nextInt(3) == 0 ? "POST" : "GET";
                            if (random.nextInt(4) == 0) {
                                hangUpAfterTheStatusLine(port, method, path, wrong);
                            } else {
                                check(port, method, path, wrong, limited);
                            }
                        }
                    });
                }
                clients.shutdown();
                assertThat(clients.awaitTermination(150, TimeUnit.SECONDS)).isTrue();

                assertThat(wrong).isEmpty();
                assertThat(limited.get()).as("answers from a full bulkhead or pool, not from the upstream")
                        .isLessThan(150);
                Await.until("no upstream connection is leased and no call is in flight", Duration.ofSeconds(15),
                        () -> servlet.client().poolStats().getLeased() == 0
                                && servlet.client().upstream("soak").callsInFlight() == 0,
                        () -> servlet.client().poolStats() + ", in flight "
                                + servlet.client().upstream("soak").callsInFlight());
                RawClient.Response last = RawClient.request(port, "GET", "/gw/soak/ok");
                assertThat(last.status()).isEqualTo(200);
                assertThat(last.bodyUtf8()).isEqualTo(BODY);
            }
        }
    }

    private static void check(int port, String method, String path, List<String> wrong, AtomicInteger limited) {
        String what = method + " " + path;
        RawClient.Response r;
        try {
            r = RawClient.send(port, RawClient.head(port, method, "/gw/soak" + path,
                    method.equals("POST") ? "Content-Length: 7" : "Content-Length: 0"),
                    method.equals("POST") ? "order=1".getBytes(StandardCharsets.US_ASCII) : null);
        } catch (IOException e) {
            if (!path.equals("/truncated")) { // committed, then aborted: the client sees the connection cut
                wrong.add(what + ": " + e);
            }
            return;
        }
        String proxyStatus = r.header("Proxy-Status");
        if (r.status() == 503 && "soak; error=connection_limit_reached".equals(proxyStatus)) {
            limited.incrementAndGet();
            return; // the small bulkhead or pool was full: an honest answer for any path
        }
        boolean right = switch (path) {
            case "/ok", "/chunked" -> r.status() == 200 && r.complete() && BODY.equals(r.bodyUtf8());
            case "/unavailable" -> r.status() == 503 && proxyStatus == null && "30".equals(r.header("Retry-After"));
            case "/reset", "/close" -> r.status() == 502 && "soak; error=connection_terminated".equals(proxyStatus);
            case "/truncated" -> (r.status() == 502 && "soak; error=http_response_incomplete".equals(proxyStatus))
                    || (r.status() == 200 && !r.complete());
            case "/not-http" -> r.status() == 502 && "soak; error=http_protocol_error".equals(proxyStatus);
            case "/stall" -> r.status() == 504 && "soak; error=connection_read_timeout".equals(proxyStatus);
            default -> false;
        };
        if (!right) {
            wrong.add(what + ": " + r.status() + " " + proxyStatus + " complete=" + r.complete() + " body of "
                    + r.body().length + " bytes");
        }
    }

    /** A client that goes away once the status line arrived, mid-download or while the gateway is still trying. */
    private static void hangUpAfterTheStatusLine(int port, String method, String path, List<String> wrong) {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(RawClient.head(port, method, "/gw/soak" + path, "Content-Length: 0")
                    .getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            RawClient.line(new BufferedInputStream(socket.getInputStream()));
        } catch (IOException e) {
            if (!path.equals("/truncated")) {
                wrong.add(method + " " + path + " (hung up): " + e);
            }
        }
    }
}
