package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
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
 * An application answering upstream faults itself for one controller only, beside an unordered catch-all: its answer
 * for that controller, the gateway's for the others.
 */
@SpringBootTest(classes = ScopedUpstreamFaultAdviceTest.App.class,
        webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class ScopedUpstreamFaultAdviceTest {

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
        static class A {
            private final RestClient dead;

            A(RestClient.Builder builder, @Value("${test.dead}") String dead) {
                this.dead = builder.baseUrl(dead).build();
            }

            @GetMapping("/a")
            String a() {
                return dead.get().uri("/x").retrieve().body(String.class);
            }
        }

        @RestController
        static class B {
            private final RestClient dead;

            B(RestClient.Builder builder, @Value("${test.dead}") String dead) {
                this.dead = builder.baseUrl(dead).build();
            }

            @GetMapping("/b")
            String b() {
                return dead.get().uri("/x").retrieve().body(String.class);
            }
        }

        @RestController
        static class C {
            private final RestClient dead;

            C(RestClient.Builder builder, @Value("${test.dead}") String dead) {
                this.dead = builder.baseUrl(dead).build();
            }

            @GetMapping("/c")
            String c() {
                return dead.get().uri("/x").retrieve().body(String.class);
            }
        }

        @RestController
        static class D {
            private final RestClient dead;

            D(RestClient.Builder builder, @Value("${test.dead}") String dead) {
                this.dead = builder.baseUrl(dead).build();
            }

            @GetMapping("/d")
            String d() {
                return dead.get().uri("/x").retrieve().body(String.class);
            }
        }

        @RestController
        static class E {
            private final RestClient dead;

            E(RestClient.Builder builder, @Value("${test.dead}") String dead) {
                this.dead = builder.baseUrl(dead).build();
            }

            @GetMapping("/e")
            String e() {
                return dead.get().uri("/x").retrieve().body(String.class);
            }
        }

        /** A handler whose answer fails as one to a client that left fails (a broken pipe while it writes). */
        @ControllerAdvice(assignableTypes = E.class)
        static class EFaults {
            @ExceptionHandler(UpstreamException.class)
            void fault(UpstreamException e, HttpServletResponse response) throws IOException {
                response.setStatus(295);
                throw new IOException("Broken pipe");
            }
        }

        /** One answer per media type, as Spring picks among handlers by their produces. */
        @ControllerAdvice(assignableTypes = D.class)
        static class DFaults {
            @ExceptionHandler(value = UpstreamException.class, produces = "application/json")
            ResponseEntity<Map<String, String>> json(UpstreamException e) {
                return ResponseEntity.status(297).body(Map.of("answer", "d's json"));
            }

            @ExceptionHandler(value = UpstreamException.class, produces = "text/plain")
            ResponseEntity<String> plain(UpstreamException e) {
                return ResponseEntity.status(296).body("d's plain text");
            }
        }

        /** What a guarded RestClient throws, answered for one controller. */
        @ControllerAdvice(assignableTypes = C.class)
        static class CUnreachable {
            @ExceptionHandler(ResourceAccessException.class)
            ResponseEntity<String> unreachable(ResourceAccessException e) {
                return ResponseEntity.status(299).body("c's own answer");
            }
        }

        @ControllerAdvice(assignableTypes = A.class)
        static class AFaults {
            @ExceptionHandler(UpstreamException.class)
            ResponseEntity<String> fault(UpstreamException e) {
                return ResponseEntity.status(298).body("a's own answer");
            }
        }

        @ControllerAdvice
        static class CatchAll {
            @ExceptionHandler(Exception.class)
            ResponseEntity<String> any(Exception e) {
                return ResponseEntity.status(500).body("catch-all");
            }
        }
    }

    private HttpResponse<String> get(String path) throws Exception {
        return TestUpstream.getJson(port, path);
    }

    private HttpResponse<String> get(String path, String accept) throws Exception {
        HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).header("Accept", accept).build();
        return HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString());
    }

    /**
     * Regression: the library's handler moved behind the scoped advice for every controller, where it tied with the
     * unordered catch-all, which then answered both controllers' faults with 500.
     */
    @Test
    void aScopedFaultAdviceAnswersForItsControllerAndTheGatewayForTheOthersDespiteACatchAll() throws Exception {
        HttpResponse<String> a = get("/a");
        assertThat(a.statusCode()).as(a.body()).isEqualTo(298);
        assertThat(a.body()).isEqualTo("a's own answer");
        assertThat(a.headers().firstValue("Proxy-Status")).isEmpty();

        HttpResponse<String> b = get("/b");
        assertThat(b.statusCode()).as(b.body()).isEqualTo(502);
        assertThat(b.headers().firstValue("Proxy-Status")).isPresent();
    }

    @Test
    void aScopedHandlerForWhatAGuardedRestClientThrowsAnswersForItsController() throws Exception {
        HttpResponse<String> c = get("/c");
        assertThat(c.statusCode()).as(c.body()).isEqualTo(299);
        assertThat(c.body()).isEqualTo("c's own answer");
        assertThat(c.headers().firstValue("Proxy-Status")).isEmpty();
    }

    /** Regression: the deferral picked a scoped advice's fault handler by exception type alone, ignoring produces. */
    @Test
    void aScopedAdvicesFaultHandlerIsPickedByWhatItProducesAsSpringPicksIt() throws Exception {
        HttpResponse<String> plain = get("/d", "text/plain");
        assertThat(plain.statusCode()).as(plain.body()).isEqualTo(296);
        assertThat(plain.body()).isEqualTo("d's plain text");
        assertThat(plain.headers().firstValue("Content-Type")).hasValueSatisfying(
                v -> assertThat(v).startsWith("text/plain"));

        HttpResponse<String> json = get("/d", "application/json");
        assertThat(json.statusCode()).as(json.body()).isEqualTo(297);
        assertThat(json.body()).contains("d's json");
        assertThat(json.headers().firstValue("Proxy-Status")).isEmpty();
    }

    /**
     * Regression: a scoped advice's fault handler that failed as writing to a client that left fails was logged as a
     * failure, and the library's handler then answered the same fault a second time (logged and counted as a 502 for
     * a client that had left). Spring's resolver takes such a failure as the end of the exchange; so does the deferral.
     */
    @Test
    void aScopedFaultHandlerCutOffByTheClientsLeavingIsNotFollowedByTheGatewaysAnswer() throws Exception {
        HttpResponse<String> e = get("/e");
        assertThat(e.statusCode()).as(e.body()).isEqualTo(295);
        assertThat(e.headers().firstValue("Proxy-Status")).isEmpty();
    }
}
