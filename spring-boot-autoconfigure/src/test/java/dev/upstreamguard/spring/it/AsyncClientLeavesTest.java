package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
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
 * Spring MVC's async error (the container saw the client go) while a {@code WebAsyncTask} on a platform thread waits
 * for a pooled connection to an upstream: Spring interrupts the task, which ends that wait at once.
 */
@SpringBootTest(classes = AsyncClientLeavesTest.App.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class AsyncClientLeavesTest {

    private static final ClientLeaving LEAVING = new ClientLeaving();

    private static RawUpstream stalling;

    @LocalServerPort
    int port;

    @Autowired
    MeterRegistry meters;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        stalling = RawUpstream.start(Behaviours.stall());
        registry.add("test.stalling", stalling::baseUrl);
        registry.add("upstream-guard.upstreams.stalling.url", stalling::baseUrl);
        // One connection: the call of /hold keeps it, so the call of /client-leaves waits for it.
        registry.add("upstream-guard.upstreams.stalling.max-connections", () -> "1");
        registry.add("upstream-guard.upstreams.stalling.pool-timeout", () -> "60s");
        registry.add("upstream-guard.upstreams.stalling.response-timeout", () -> "60s");
        registry.add("upstream-guard.upstreams.stalling.total-timeout", () -> "120s");
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

            @GetMapping("/hold")
            WebAsyncTask<String> hold() {
                return new WebAsyncTask<>(120_000L, () -> stalling.get().uri("/hold").retrieve().body(String.class));
            }

            @GetMapping("/client-leaves")
            WebAsyncTask<String> clientLeaves() {
                return new WebAsyncTask<>(120_000L, () -> stalling.get().uri("/x").retrieve().body(String.class));
            }
        }
    }

    /**
     * Regression: the task's wait, ended by the interrupt Spring sends on an async error as at the timeout, was
     * answered, logged and counted as the gateway's 504 to a client that had left (see {@link ClientLeaving}).
     */
    @Test
    void aClientThatLeavesWhileAGuardedCallWaitsForAConnectionIsNoUpstreamTimeout() throws Exception {
        double before = timeouts();
        try (Socket holder = send("/hold"); Socket client = send("/client-leaves")) {
            assertThat(stalling.awaitRequests(1, Duration.ofSeconds(30))).as("the connection taken").isTrue();
            Await.until("the task to wait for a pooled connection", Duration.ofSeconds(30), () -> {
                Thread task = LEAVING.task.get();
                return task != null && Arrays.stream(task.getStackTrace())
                        .anyMatch(f -> f.getClassName().contains("PoolingHttpClientConnectionManager"));
            });
            client.close();
            LEAVING.containerSeesTheClientGo();
            assertThat(LEAVING.completed.await(30, TimeUnit.SECONDS)).as("request completed").isTrue();
        }
        assertThat(timeouts()).as("504 http_response_timeout answered").isEqualTo(before);
    }

    private Socket send(String path) throws IOException {
        Socket socket = new Socket(InetAddress.getLoopbackAddress(), port);
        socket.getOutputStream().write(("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
        socket.getOutputStream().flush();
        return socket;
    }

    private double timeouts() {
        return meters.find("upstream.guard.responses").tag("fault", "http_response_timeout").counters().stream()
                .mapToDouble(Counter::count).sum();
    }
}
