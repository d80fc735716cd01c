package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.client.GuardedHttpClient;
import java.io.IOException;
import java.net.http.HttpResponse;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.junit.jupiter.api.Test;
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
import org.springframework.web.client.ResourceAccessException;
import org.springframework.web.client.RestClient;

/**
 * The common global handler: one unordered advice for every controller with a handler for what a RestClient throws
 * ({@code ResourceAccessException}) beside a catch-all for {@code Exception}.
 */
@SpringBootTest(classes = CatchAllBesideOwnFaultHandlerTest.App.class,
        webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class CatchAllBesideOwnFaultHandlerTest {

    @LocalServerPort
    int port;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        TestUpstream.registerDead(registry);
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class App {

        @RestController
        static class RefusedController {
            private final RestClient rest;
            private final GuardedHttpClient client;
            private final String dead;

            RefusedController(RestClient.Builder builder, GuardedHttpClient client, @Value("${test.dead}") String dead) {
                this.rest = builder.baseUrl(dead).build();
                this.client = client;
                this.dead = dead;
            }

            @GetMapping("/rest")
            String rest() {
                return rest.get().uri("/x").retrieve().body(String.class);
            }

            /** The guarded client used directly: its UpstreamException escapes unwrapped. */
            @GetMapping("/direct")
            String direct() throws IOException {
                return client.execute(new HttpGet(dead + "/x"), response -> "unreachable");
            }
        }

        @ControllerAdvice
        static class GlobalAdvice {
            @ExceptionHandler(ResourceAccessException.class)
            ResponseEntity<String> unreachable(ResourceAccessException e) {
                return ResponseEntity.status(298).body("the application's own answer");
            }

            @ExceptionHandler(Exception.class)
            ResponseEntity<String> anything(Exception e) {
                return ResponseEntity.status(500).body("catch-all");
            }
        }
    }

    private HttpResponse<String> get(String path) throws Exception {
        return TestUpstream.getJson(port, path);
    }

    @Test
    void theApplicationsHandlerForWhatItsRestClientThrowsKeepsItsAnswer() throws Exception {
        HttpResponse<String> response = get("/rest");
        assertThat(response.statusCode()).as(response.body()).isEqualTo(298);
    }

    /**
     * Regression: the library's handler sorted behind the whole advice because of its ResourceAccessException handler,
     * so the advice's catch-all answered a fault thrown unwrapped (the guarded client used directly) with a 500.
     */
    @Test
    void aFaultThrownUnwrappedIsTheGatewaysAnswerNotTheCatchAlls() throws Exception {
        HttpResponse<String> response = get("/direct");
        assertThat(response.statusCode()).as(response.body()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status")).hasValueSatisfying(
                v -> assertThat(v).contains("error=connection_refused"));
    }
}
