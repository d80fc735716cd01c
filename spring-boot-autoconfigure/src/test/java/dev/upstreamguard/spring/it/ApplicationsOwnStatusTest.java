package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.ClosedPort;
import java.net.http.HttpResponse;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.annotation.Import;
import org.springframework.http.HttpStatus;
import org.springframework.http.ProblemDetail;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.ErrorResponseException;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.ResponseStatus;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.ResourceAccessException;
import org.springframework.web.client.RestClient;
import org.springframework.web.server.ResponseStatusException;

/**
 * A controller that catches a guarded call's fault and throws an exception of its own stating the status to answer
 * with has answered: Spring's answer for that exception is the client's, not the gateway's answer for the fault inside.
 */
@SpringBootTest(classes = ApplicationsOwnStatusTest.App.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"upstream-guard.proxy-name=test-gw", "upstream-guard.upstreams.dead.retry.enabled=false"})
class ApplicationsOwnStatusTest {

    @LocalServerPort
    int port;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) {
        String dead = ClosedPort.find().baseUrl();
        registry.add("upstream-guard.upstreams.dead.url", () -> dead);
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    @Import(StockController.class)
    static class App {
    }

    @ResponseStatus(HttpStatus.NOT_FOUND)
    static class NoSuchStock extends RuntimeException {
        NoSuchStock(Throwable cause) {
            super("no such stock", cause);
        }
    }

    @RestController
    static class StockController {

        private final RestClient dead;

        StockController(RestClient.Builder builder, @Value("${upstream-guard.upstreams.dead.url}") String dead) {
            this.dead = builder.baseUrl(dead).build();
        }

        private void call() {
            dead.get().uri("/stock").retrieve().toBodilessEntity();
        }

        @GetMapping("/stock/response-status-exception")
        void responseStatusException() {
            try {
                call();
            } catch (ResourceAccessException e) {
                throw new ResponseStatusException(HttpStatus.SERVICE_UNAVAILABLE, "Stock unavailable", e);
            }
        }

        @GetMapping("/stock/error-response-exception")
        void errorResponseException() {
            try {
                call();
            } catch (ResourceAccessException e) {
                throw new ErrorResponseException(HttpStatus.NOT_FOUND,
                        ProblemDetail.forStatusAndDetail(HttpStatus.NOT_FOUND, "No stock"), e);
            }
        }

        @GetMapping("/stock/annotated-exception")
        void annotatedException() {
            try {
                call();
            } catch (ResourceAccessException e) {
                throw new NoSuchStock(e);
            }
        }

        @GetMapping("/stock/plain-wrapper")
        void plainWrapper() {
            try {
                call();
            } catch (ResourceAccessException e) {
                throw new IllegalStateException("stock lookup failed", e);
            }
        }
    }

    @Test
    void anExceptionOfTheApplicationsStatingItsOwnStatusOverAFaultIsAnsweredWithThatStatus() throws Exception {
        String[][] cases = {{"/stock/response-status-exception", "503"}, {"/stock/error-response-exception", "404"},
                {"/stock/annotated-exception", "404"}};
        for (String[] c : cases) {
            HttpResponse<String> response = TestUpstream.getJson(port, c[0]);
            assertThat(response.statusCode()).as(c[0]).isEqualTo(Integer.parseInt(c[1]));
            assertThat(response.headers().firstValue("Proxy-Status")).as(c[0]).isEmpty();
            assertThat(response.body()).as(c[0]).doesNotContain("connection_refused");
        }
        // Wrapped in an exception that states no status, the fault is still the gateway's to answer.
        HttpResponse<String> wrapped = TestUpstream.getJson(port, "/stock/plain-wrapper");
        assertThat(wrapped.statusCode()).isEqualTo(502);
        assertThat(wrapped.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
        assertThat(wrapped.body()).contains("\"fault\":\"connection_refused\"").contains("\"upstream\":\"dead\"");
    }
}
