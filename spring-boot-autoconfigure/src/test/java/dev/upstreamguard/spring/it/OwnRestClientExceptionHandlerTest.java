package dev.upstreamguard.spring.it;

import java.io.IOException;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.annotation.Import;
import org.springframework.http.ResponseEntity;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.bind.annotation.ControllerAdvice;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.client.RestClientException;

/**
 * An application that answers every failure of its REST calls itself, with advice for the common supertype of what a
 * RestClient or RestTemplate throws (the fault's ResourceAccessException, a status error).
 */
@SpringBootTest(classes = OwnRestClientExceptionHandlerTest.App.class,
        webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class OwnRestClientExceptionHandlerTest {

    @LocalServerPort
    int port;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        TestUpstream.registerDead(registry);
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    @Import(OwnResourceAccessHandlerTest.App.RefusedController.class)
    static class App {

        /** Written before Upstream Guard was added; not ordered. */
        @ControllerAdvice
        static class FailedCallAdvice {
            @ExceptionHandler(RestClientException.class)
            ResponseEntity<String> failedCall(RestClientException e) {
                return ResponseEntity.status(298).body("the application's own answer");
            }
        }
    }

    /**
     * Regression: only a handler for ResourceAccessException itself (or a subtype) counted as the application's answer
     * to upstream faults, so one for RestClientException, what Spring's REST clients throw for any failure, was
     * silently replaced by the gateway's 502.
     */
    @Test
    void theApplicationsOwnHandlerForEveryRestClientFailureKeepsItsAnswer() throws Exception {
        OwnResourceAccessHandlerTest.assertTheApplicationsOwnAnswer(port);
    }
}
