package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.restclient.RestTemplateBuilder;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.annotation.Import;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.RestClient;
import org.springframework.web.client.RestTemplate;

/**
 * An upstream fault met while a guarded client reads a JSON response body, in an application whose own advice, ordered
 * first, answers Spring MVC's exceptions: Spring wraps such a fault in the HttpMessageNotReadableException that advice
 * answers with 400 for an unreadable request, yet the fault must still be answered as the upstream's.
 */
@SpringBootTest(classes = ResponseBodyFaultTest.App.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class ResponseBodyFaultTest {

    private static RawUpstream upstream;

    @LocalServerPort
    int port;

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        // A JSON body announced as 100 bytes, cut short after 8.
        upstream = RawUpstream.start(Behaviours.respond("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + "Content-Length: 100\r\n\r\n{\"a\":\"bc"));
        registry.add("test.upstream", upstream::baseUrl);
        registry.add("upstream-guard.proxy-name", () -> "test-gw");
        registry.add("upstream-guard.upstreams.catalog.url", upstream::baseUrl);
    }

    @AfterAll
    static void stop() throws Exception {
        upstream.close();
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    @Import({CatalogController.class, ApiErrors.class})
    static class App {
    }

    /** The usual way to answer Spring MVC's own exceptions with problem details, ordered as many applications do. */
    @org.springframework.web.bind.annotation.ControllerAdvice
    @org.springframework.core.annotation.Order(0)
    static class ApiErrors extends org.springframework.web.servlet.mvc.method.annotation.ResponseEntityExceptionHandler {
    }

    @RestController
    static class CatalogController {

        private final RestClient client;
        private final RestTemplate restTemplate;
        private final String upstream;

        CatalogController(RestClient.Builder builder, RestTemplateBuilder restTemplateBuilder,
                @Value("${test.upstream}") String upstream) {
            this.client = builder.baseUrl(upstream).build();
            this.restTemplate = restTemplateBuilder.build();
            this.upstream = upstream;
        }

        @GetMapping("/catalog/rest-client")
        Map<?, ?> restClient() {
            return client.get().uri("/items").retrieve().body(Map.class);
        }

        @GetMapping("/catalog/rest-template")
        Map<?, ?> restTemplate() {
            return restTemplate.getForObject(upstream + "/items", Map.class);
        }

        @PostMapping("/catalog/echo")
        Map<?, ?> echo(@RequestBody Map<?, ?> body) {
            return body;
        }
    }

    private HttpResponse<String> send(HttpRequest.Builder request) throws Exception {
        return http.send(request.timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private HttpRequest.Builder request(String path) {
        return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .header("Accept", "application/json");
    }

    @Test
    void aBodyTheUpstreamCutShortIsItsFaultNotABadRequestForRestClientAndRestTemplate() throws Exception {
        for (String path : new String[] {"/catalog/rest-client", "/catalog/rest-template"}) {
            HttpResponse<String> response = send(request(path));
            assertThat(response.statusCode()).as(path).isEqualTo(502);
            assertThat(response.headers().firstValue("Proxy-Status")).as(path)
                    .hasValue("test-gw; error=http_response_incomplete");
            assertThat(response.headers().firstValue("Content-Type")).as(path).hasValue("application/problem+json");
            assertThat(response.body()).as(path)
                    .contains("\"type\":\"https://upstreamguard.dev/problems/http_response_incomplete\"")
                    .contains("\"status\":502").contains("\"instance\":\"" + path + "\"")
                    .contains("\"upstream\":\"catalog\"");
        }
    }

    @Test
    void aRequestBodyTheClientGotWrongIsStillABadRequest() throws Exception {
        HttpResponse<String> response = send(request("/catalog/echo").header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"a\":")));
        assertThat(response.statusCode()).isEqualTo(400);
        assertThat(response.headers().firstValue("Proxy-Status")).isEmpty();
    }
}
