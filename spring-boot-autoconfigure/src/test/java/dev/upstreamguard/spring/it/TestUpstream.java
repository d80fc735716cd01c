package dev.upstreamguard.spring.it;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A small real upstream on 127.0.0.1: {@code /flaky} always answers 503 and counts the requests it received,
 * {@code /stall} never answers (until {@link #close()}), {@code /echo-body} answers 200 with the request body it
 * received, {@code /echo-host} with the Host header it received, anything else answers 200 with the path it received.
 */
final class TestUpstream implements AutoCloseable {

    final AtomicInteger flakyHits = new AtomicInteger();
    final AtomicReference<String> lastPath = new AtomicReference<>();
    private final CountDownLatch release = new CountDownLatch(1);
    private final HttpServer server;
    private final ExecutorService executor = Executors.newCachedThreadPool();

    TestUpstream() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 50);
        server.setExecutor(executor);
        server.createContext("/", this::handle);
        server.start();
    }

    String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    /**
     * Registers an upstream named {@code dead} on a port nothing listens on, without retries, and its URL as
     * {@code test.dead}: the fault-advice tests' one refused upstream.
     */
    static void registerDead(org.springframework.test.context.DynamicPropertyRegistry registry) throws IOException {
        String dead = "http://127.0.0.1:" + closedPort();
        registry.add("test.dead", () -> dead);
        registry.add("upstream-guard.upstreams.dead.url", () -> dead);
        registry.add("upstream-guard.upstreams.dead.retry.enabled", () -> "false");
    }

    /** A GET of {@code path} on the application at {@code port}, asking for JSON. */
    static java.net.http.HttpResponse<String> getJson(int port, String path) throws IOException, InterruptedException {
        java.net.http.HttpRequest request = java.net.http.HttpRequest.newBuilder(
                java.net.URI.create("http://127.0.0.1:" + port + path))
                .timeout(java.time.Duration.ofSeconds(30)).header("Accept", "application/json").build();
        return java.net.http.HttpClient.newHttpClient().send(request, java.net.http.HttpResponse.BodyHandlers.ofString());
    }

    /** A port nothing listens on. */
    static int closedPort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    private void handle(HttpExchange exchange) throws IOException {
        String path = exchange.getRequestURI().getRawPath();
        byte[] body = exchange.getRequestBody().readAllBytes();
        if (path.equals("/echo-body")) {
            send(exchange, 200, new String(body, StandardCharsets.UTF_8));
            return;
        }
        if (path.equals("/echo-host")) {
            send(exchange, 200, exchange.getRequestHeaders().getFirst("Host"));
            return;
        }
        if (path.equals("/flaky")) {
            flakyHits.incrementAndGet();
            send(exchange, 503, "busy");
            return;
        }
        if (path.equals("/stall")) {
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            exchange.close();
            return;
        }
        lastPath.set(path);
        exchange.getResponseHeaders().set("X-Seen-Path", path);
        send(exchange, 200, "ok " + path);
    }

    private static void send(HttpExchange exchange, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "text/plain");
        exchange.sendResponseHeaders(status, bytes.length);
        exchange.getResponseBody().write(bytes);
        exchange.close();
    }

    @Override
    public void close() {
        release.countDown();
        server.stop(0);
        executor.shutdownNow();
    }
}
