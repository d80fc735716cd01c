package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.http.HttpResponse;
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

/** An application that answers unreachable upstreams itself, with advice for what its RestClient throws. */
@SpringBootTest(classes = OwnResourceAccessHandlerTest.App.class,
        webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class OwnResourceAccessHandlerTest {

    @LocalServerPort
    int port;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        TestUpstream.registerDead(registry);
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class App {

        /** A controller whose upstream refuses every connection (also {@link OwnRestClientExceptionHandlerTest}'s). */
        @RestController
        static class RefusedController {
            private final RestClient dead;

            RefusedController(RestClient.Builder builder, @Value("${test.dead}") String dead) {
                this.dead = builder.baseUrl(dead).build();
            }

            @GetMapping("/refused")
            String refused() {
                return dead.get().uri("/x").retrieve().body(String.class);
            }
        }

        /** Written before Upstream Guard was added; not ordered. */
        @ControllerAdvice
        static class UnreachableUpstreamAdvice {
            @ExceptionHandler(ResourceAccessException.class)
            ResponseEntity<String> unreachable(ResourceAccessException e) {
                return ResponseEntity.status(298).body("the application's own answer");
            }
        }
    }

    /**
     * Regression: the library's handler sorted before the application's unordered advice and matched the fault as the
     * cause of Spring's {@code ResourceAccessException}, so the application's own handler for that exception was
     * silently replaced by the gateway's 502.
     */
    @Test
    void theApplicationsOwnHandlerForResourceAccessExceptionKeepsItsAnswer() throws Exception {
        assertTheApplicationsOwnAnswer(port);
    }

    /** The refused call's answer is the application's advice's 298, not the gateway's 502. */
    static void assertTheApplicationsOwnAnswer(int port) throws Exception {
        HttpResponse<String> response = TestUpstream.getJson(port, "/refused");
        assertThat(response.statusCode()).as(response.body()).isEqualTo(298);
        assertThat(response.body()).isEqualTo("the application's own answer");
        assertThat(response.headers().firstValue("Proxy-Status")).isEmpty();
    }
}
