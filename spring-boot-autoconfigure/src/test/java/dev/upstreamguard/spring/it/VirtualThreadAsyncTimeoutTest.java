package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledForJreRange;
import org.junit.jupiter.api.condition.JRE;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.annotation.Bean;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.RestClient;
import org.springframework.web.context.request.async.WebAsyncTask;
import org.springframework.web.servlet.config.annotation.AsyncSupportConfigurer;
import org.springframework.web.servlet.config.annotation.WebMvcConfigurer;

/**
 * Spring MVC's async timeout with {@code spring.threads.virtual.enabled=true}: Spring interrupts the task at the
 * timeout, and a virtual thread's socket read, unlike a platform thread's, ends at once on the interrupt (the JDK
 * closes the socket), so the task's guarded call fails while the timeout is being answered.
 */
@EnabledForJreRange(min = JRE.JAVA_21)
@SpringBootTest(classes = VirtualThreadAsyncTimeoutTest.App.class,
        webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"spring.threads.virtual.enabled=true", "spring.mvc.async.request-timeout=1s"})
class VirtualThreadAsyncTimeoutTest {

    private static RawUpstream stalling;

    private static final ClientLeaving LEAVING = new ClientLeaving();

    @LocalServerPort
    int port;

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        stalling = RawUpstream.start(Behaviours.stall());
        registry.add("test.stalling", stalling::baseUrl);
        registry.add("upstream-guard.proxy-name", () -> "test-gw");
        registry.add("upstream-guard.upstreams.stalling.url", stalling::baseUrl);
        registry.add("upstream-guard.upstreams.stalling.response-timeout", () -> "60s");
        registry.add("upstream-guard.upstreams.stalling.retry.enabled", () -> "false");
        registry.add("upstream-guard.upstreams.stalling.circuit-breaker.enabled", () -> "false");
    }

    @AfterAll
    static void stop() {
        stalling.close();
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class App {

        @Bean
        WebMvcConfigurer clientLeavesWatcher() {
            return new WebMvcConfigurer() {
                @Override
                public void configureAsyncSupport(AsyncSupportConfigurer configurer) {
                    configurer.registerCallableInterceptors(LEAVING);
                }
            };
        }

        @RestController
        static class SlowController {
            private final RestClient stalling;

            SlowController(RestClient.Builder builder, @Value("${test.stalling}") String stalling) {
                this.stalling = builder.baseUrl(stalling).build();
            }

            @GetMapping("/callable")
            java.util.concurrent.Callable<String> callable() {
                return () -> stalling.get().uri("/x").retrieve().body(String.class);
            }

            @GetMapping("/client-leaves")
            WebAsyncTask<String> clientLeaves() {
                return new WebAsyncTask<>(60_000L, () -> stalling.get().uri("/x").retrieve().body(String.class));
            }

            @GetMapping("/web-async-task")
            WebAsyncTask<String> webAsyncTask() {
                return new WebAsyncTask<>(1_000L, () -> stalling.get().uri("/x").retrieve().body(String.class));
            }
        }
    }

    /**
     * Regression: the interrupted call's own {@code 502 connection_terminated} reached the client (the upstream did
     * not close anything), or Spring's {@code 503}, instead of the gateway's {@code 504 http_response_timeout}.
     * Repeated: which of the two threads answers first is a race, and each must answer the same.
     */
    @RepeatedTest(3)
    void anAsyncTimeoutEndingAGuardedCallOnAVirtualThreadIsTheGatewaysTimeout() throws Exception {
        for (String path : new String[] {"/callable", "/web-async-task"}) {
            HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                    .timeout(Duration.ofSeconds(30)).header("Accept", "application/json").build();
            HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
            assertThat(response.statusCode()).as("%s %s", path, response.body()).isEqualTo(504);
            assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=http_response_timeout");
            assertThat(response.body()).contains("\"fault\":\"http_response_timeout\"", "\"upstream\":\"stalling\"");
        }
    }

    @Autowired
    MeterRegistry meters;

    /**
     * Regression: Spring interrupts the task on an async error (the container saw the client go) as it does at the
     * timeout, and the task's call ended on that interrupt was answered, logged and counted as the gateway's 504 to a
     * client that had left (see {@link ClientLeaving} for the container's notice and the task coming first). A
     * virtual thread's socket read ends on the interrupt; {@link AsyncClientLeavesTest} has a platform thread's wait
     * for a pooled connection.
     */
    @Test
    void aClientThatLeavesWhileAGuardedCallWaitsIsNoUpstreamTimeout() throws Exception {
        double before = timeouts();
        int requests = stalling.requestCount();
        try (Socket client = new Socket(InetAddress.getLoopbackAddress(), port)) {
            client.getOutputStream().write("GET /client-leaves HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n"
                    .getBytes(StandardCharsets.US_ASCII));
            client.getOutputStream().flush();
            assertThat(stalling.awaitRequests(requests + 1, Duration.ofSeconds(30))).isTrue();
        }
        LEAVING.containerSeesTheClientGo();
        assertThat(LEAVING.completed.await(30, TimeUnit.SECONDS)).as("request completed").isTrue();
        assertThat(timeouts()).as("504 http_response_timeout answered").isEqualTo(before);
    }

    private double timeouts() {
        return meters.find("upstream.guard.responses").tag("fault", "http_response_timeout").counters().stream()
                .mapToDouble(Counter::count).sum();
    }
}
