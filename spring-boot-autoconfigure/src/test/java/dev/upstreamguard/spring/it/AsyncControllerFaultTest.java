package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.http.ResponseEntity;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.bind.annotation.ControllerAdvice;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.RestClient;
import org.springframework.web.context.request.async.DeferredResult;
import org.springframework.web.context.request.async.WebAsyncTask;
import org.springframework.web.servlet.mvc.method.annotation.ResponseBodyEmitter;
import org.springframework.web.servlet.mvc.method.annotation.StreamingResponseBody;

/**
 * Upstream faults that escape Spring MVC's async return values — {@code Callable}, {@code DeferredResult},
 * {@code CompletableFuture}, {@code WebAsyncTask}, streamed bodies — answered exactly as a synchronous controller's,
 * over real sockets on 127.0.0.1 against an upstream that refuses connections.
 */
@SpringBootTest(classes = AsyncControllerFaultTest.App.class,
        webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class AsyncControllerFaultTest {

    private static final ExecutorService EXECUTOR = Executors.newCachedThreadPool();

    /** Spring MVC's async timeout of the tests that let it run out: ample for the call to be under way by then. */
    private static final long ASYNC_TIMEOUT_MILLIS = 2_000L;

    private static RawUpstream stalling;

    /** Never counted down: work of the application's own that outlasts the async timeout. */
    private static final CountDownLatch NEVER = new CountDownLatch(1);

    @LocalServerPort
    int port;

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        String dead = "http://127.0.0.1:" + TestUpstream.closedPort();
        registry.add("test.dead", () -> dead);
        registry.add("upstream-guard.proxy-name", () -> "test-gw");
        registry.add("upstream-guard.upstreams.dead.url", () -> dead);
        registry.add("upstream-guard.upstreams.dead.retry.enabled", () -> "false");
        registry.add("upstream-guard.upstreams.dead.circuit-breaker.enabled", () -> "false");
        stalling = RawUpstream.start(Behaviours.stall());
        registry.add("test.stalling", stalling::baseUrl);
        registry.add("upstream-guard.upstreams.stalling.url", stalling::baseUrl);
        registry.add("upstream-guard.upstreams.stalling.response-timeout", () -> "60s");
        registry.add("upstream-guard.upstreams.stalling.retry.enabled", () -> "false");
    }

    @AfterAll
    static void stop() {
        EXECUTOR.shutdownNow();
        NEVER.countDown();
        stalling.close();
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class App {

        @RestController
        static class AsyncController {
            private final RestClient dead;
            private final RestClient stalling;

            AsyncController(RestClient.Builder builder, @Value("${test.dead}") String dead,
                    @Value("${test.stalling}") String stalling) {
                this.dead = builder.clone().baseUrl(dead).build();
                this.stalling = builder.clone().baseUrl(stalling).build();
            }

            private String callDead() {
                return dead.get().uri("/x").retrieve().body(String.class);
            }

            @GetMapping("/async/callable")
            Callable<String> callable() {
                return this::callDead;
            }

            @GetMapping("/async/deferred")
            DeferredResult<String> deferred() {
                DeferredResult<String> result = new DeferredResult<>();
                EXECUTOR.execute(() -> {
                    try {
                        result.setResult(callDead());
                    } catch (RuntimeException e) {
                        result.setErrorResult(e);
                    }
                });
                return result;
            }

            @GetMapping("/async/future")
            CompletableFuture<String> future() {
                return CompletableFuture.supplyAsync(this::callDead, EXECUTOR);
            }

            @GetMapping("/async/web-async-task")
            WebAsyncTask<String> webAsyncTask() {
                return new WebAsyncTask<>(30_000L, this::callDead);
            }

            @GetMapping("/async/timeout-waiting-for-upstream")
            WebAsyncTask<String> timeoutWaitingForUpstream() {
                return new WebAsyncTask<>(ASYNC_TIMEOUT_MILLIS, () -> stalling.get().uri("/x").retrieve()
                        .body(String.class));
            }

            @GetMapping("/async/timeout-in-own-work")
            WebAsyncTask<String> timeoutInOwnWork() {
                return new WebAsyncTask<>(ASYNC_TIMEOUT_MILLIS, () -> {
                    // Work that does not stop when Spring interrupts it at the timeout, as a blocking read does not:
                    // an interrupted Callable would answer its InterruptedException, racing Spring's timeout.
                    long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                    while (NEVER.getCount() > 0 && System.nanoTime() < end) {
                        try {
                            NEVER.await(1, TimeUnit.SECONDS);
                        } catch (InterruptedException e) {
                            // carry on
                        }
                    }
                    return "late";
                });
            }

            @GetMapping("/async/timeout-callback-waiting-for-upstream")
            WebAsyncTask<String> timeoutCallbackWaitingForUpstream() {
                WebAsyncTask<String> task = new WebAsyncTask<>(ASYNC_TIMEOUT_MILLIS, () -> stalling.get().uri("/x")
                        .retrieve().body(String.class));
                task.onTimeout(() -> "the application's fallback");
                return task;
            }

            @GetMapping("/async/timeout-fallback")
            DeferredResult<String> timeoutFallback() {
                return new DeferredResult<>(300L, "the application's fallback");
            }

            @GetMapping("/sync/stream")
            void syncStream(HttpServletResponse response) throws IOException {
                response.getOutputStream().write(new byte[64 * 1024]);
                response.flushBuffer();
                callDead();
            }

            @GetMapping("/async/stream")
            StreamingResponseBody stream() {
                return out -> {
                    out.write(new byte[64 * 1024]);
                    out.flush();
                    callDead();
                };
            }

            @GetMapping("/async/emitter")
            ResponseBodyEmitter emitter() {
                ResponseBodyEmitter emitter = new ResponseBodyEmitter(30_000L);
                EXECUTOR.execute(() -> {
                    try {
                        emitter.send("x".repeat(64 * 1024));
                        callDead();
                        emitter.complete();
                    } catch (IOException | RuntimeException e) {
                        emitter.completeWithError(e);
                    }
                });
                return emitter;
            }
        }

        @RestController
        static class UserHandledController {
            private final RestClient dead;

            UserHandledController(RestClient.Builder builder, @Value("${test.dead}") String dead) {
                this.dead = builder.clone().baseUrl(dead).build();
            }

            @GetMapping("/user/sync")
            String sync() {
                return dead.get().uri("/x").retrieve().body(String.class);
            }

            @GetMapping("/user/callable")
            Callable<String> callable() {
                return this::sync;
            }
        }

        /**
         * The application's own answer to upstream faults, for one controller, not ordered: it still comes before
         * the library's handler, which takes its place after it.
         */
        @ControllerAdvice(assignableTypes = UserHandledController.class)
        static class UserAdvice {
            @ExceptionHandler(UpstreamException.class)
            ResponseEntity<String> handle(UpstreamException fault) {
                return ResponseEntity.status(299).body("handled by the application: " + fault.fault().type());
            }
        }
    }

    private HttpResponse<String> get(String path, String accept) throws Exception {
        HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).header("Accept", accept).build();
        return http.send(request, HttpResponse.BodyHandlers.ofString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"/async/callable", "/async/deferred", "/async/future", "/async/web-async-task"})
    void aFaultFromAnAsyncReturnValueIsAProblemWithTheFaultsStatus(String path) throws Exception {
        HttpResponse<String> json = get(path, "application/json");
        assertThat(json.statusCode()).as("%s %s", json.headers(), json.body()).isEqualTo(502);
        assertThat(json.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
        assertThat(json.headers().firstValue("Cache-Control")).hasValue("no-store");
        assertThat(json.headers().firstValue("Content-Type")).hasValue("application/problem+json");
        assertThat(json.body()).contains("\"status\":502", "\"fault\":\"connection_refused\"", "\"upstream\":\"dead\"",
                "\"instance\":\"" + path + "\"").doesNotContain("Exception", "127.0.0.1");

        HttpResponse<String> html = get(path, "text/html,application/xhtml+xml,*/*;q=0.8");
        assertThat(html.statusCode()).isEqualTo(502);
        assertThat(html.headers().firstValue("Content-Type")).hasValueSatisfying(v -> assertThat(v).startsWith(
                "text/html"));
        assertThat(html.body()).contains("502 Bad Gateway", "connection_refused");
    }

    @ParameterizedTest
    @ValueSource(strings = {"/async/stream", "/async/emitter", "/sync/stream"})
    void aFaultAfterAStreamedBodyWasCommittedCutsTheConnection(String path) throws Exception {
        RawExchange.Result result = RawExchange.get(port, path);
        assertThat(result.head()).startsWith("HTTP/1.1 200");
        assertThat(result.bodyBytes()).isGreaterThanOrEqualTo(64 * 1024);
        assertThat(result.complete()).as("the client must see an incomplete response").isFalse();
    }

    @ParameterizedTest
    @ValueSource(strings = {"/async/callable", "/async/deferred", "/async/future"})
    void aHeadRequestGetsTheFaultsStatusAndHeadersWithoutABody(String path) throws Exception {
        HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).method("HEAD", HttpRequest.BodyPublishers.noBody())
                .header("Accept", "application/json").build();
        HttpResponse<String> head = http.send(request, HttpResponse.BodyHandlers.ofString());
        assertThat(head.statusCode()).isEqualTo(502);
        assertThat(head.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
        assertThat(head.body()).isEmpty();
    }

    /**
     * Regression: Spring MVC's async timeout ending a {@code Callable} that was waiting for an upstream answered
     * Spring's own 503 without Proxy-Status, as if the application were unavailable; the gateway gave up on the
     * upstream, which is a 504 {@code http_response_timeout}.
     */
    @Test
    void anAsyncTimeoutWhileWaitingForAnUpstreamIsTheGatewaysTimeout() throws Exception {
        HttpResponse<String> response = get("/async/timeout-waiting-for-upstream", "application/json");
        assertThat(response.statusCode()).as(response.body()).isEqualTo(504);
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=http_response_timeout");
        assertThat(response.body()).contains("\"fault\":\"http_response_timeout\"", "\"upstream\":\"stalling\"");
    }

    @Test
    void anAsyncTimeoutDuringTheApplicationsOwnWorkOrWithItsOwnCallbackKeepsSpringsAnswer() throws Exception {
        HttpResponse<String> ownWork = get("/async/timeout-in-own-work", "application/json");
        assertThat(ownWork.statusCode()).isEqualTo(503);
        assertThat(ownWork.headers().firstValue("Proxy-Status")).isEmpty();
        HttpResponse<String> callback = get("/async/timeout-callback-waiting-for-upstream", "text/plain");
        assertThat(callback.statusCode()).isEqualTo(200);
        assertThat(callback.body()).isEqualTo("the application's fallback");
    }

    @Test
    void anAsyncTimeoutTheApplicationAnswersKeepsItsAnswer() throws Exception {
        HttpResponse<String> response = get("/async/timeout-fallback", "text/plain");
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.headers().firstValue("Proxy-Status")).isEmpty();
        assertThat(response.body()).isEqualTo("the application's fallback");
    }

    @Test
    void theApplicationsOwnHandlerForUpstreamFaultsWinsEvenUnorderedAlsoForAsyncResults() throws Exception {
        for (String path : new String[] {"/user/sync", "/user/callable"}) {
            HttpResponse<String> response = get(path, "application/json");
            assertThat(response.statusCode()).as(path).isEqualTo(299);
            assertThat(response.body()).isEqualTo("handled by the application: connection_refused");
        }
    }
}
