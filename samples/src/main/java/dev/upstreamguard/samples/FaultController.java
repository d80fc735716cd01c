package dev.upstreamguard.samples;

import dev.upstreamguard.spring.UpstreamPolicy;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.http.HttpHeaders;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.RestClient;

/**
 * Calls the faulty upstream through the application's guarded {@link RestClient}. Faults become Spring's
 * {@code ResourceAccessException} with an {@code UpstreamException} cause, which Upstream Guard answers with the right
 * 502/503/504, {@code Proxy-Status} and a problem body; valid upstream responses (a 503 with Retry-After included) are
 * passed back as they are.
 *
 * <p>The class-level {@link UpstreamPolicy} puts every call under the {@code faulty} upstream; on {@code /api/{fault}}
 * the method-level one shortens the response timeout from the configured 2 s to 1 s, and on {@code /api/refused} it
 * names another upstream: method-level wins over class-level, and either over the properties.
 */
@RestController
@UpstreamPolicy("faulty")
@ConditionalOnProperty(EmbeddedUpstreamEnvironment.PORT_PROPERTY)
public class FaultController {

    private final RestClient faulty;
    private final RestClient refused;

    FaultController(RestClient.Builder builder, @Value("${upstream-guard.upstreams.faulty.url}") String faultyUrl,
            @Value("${sample.refused.url}") String refusedUrl) {
        this.faulty = builder.clone().baseUrl(faultyUrl).build();
        this.refused = builder.clone().baseUrl(refusedUrl).build();
    }

    /** One fault of the embedded upstream, through the guarded RestClient. */
    @GetMapping("/api/{fault}")
    @UpstreamPolicy(responseTimeout = "1s")
    ResponseEntity<String> call(@PathVariable String fault) {
        return passThrough(faulty, "/{fault}", fault);
    }

    /** A call to a port nothing listens on, under the {@code refused} upstream. */
    @GetMapping("/api/refused")
    @UpstreamPolicy("refused")
    ResponseEntity<String> refused() {
        return passThrough(refused, "/anything");
    }

    /**
     * Calls {@code uriTemplate}: a template, not a path built from the request, so that Spring's
     * {@code http.client.requests} meter is tagged {@code uri=/{fault}} rather than with every path a client tries.
     */
    private static ResponseEntity<String> passThrough(RestClient client, String uriTemplate, Object... variables) {
        return client.get().uri(uriTemplate, variables).exchange((request, response) -> {
            HttpHeaders headers = new HttpHeaders();
            response.getHeaders().forEach((name, values) -> {
                if (name.equalsIgnoreCase("Retry-After") || name.equalsIgnoreCase("Content-Type")) {
                    headers.addAll(name, values);
                }
            });
            return ResponseEntity.status(response.getStatusCode()).headers(headers)
                    .body(response.bodyTo(String.class));
        });
    }
}
