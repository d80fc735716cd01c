package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.context.TestConfiguration;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.boot.web.servlet.support.ErrorPageFilter;
import org.springframework.context.annotation.Bean;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The fault filter in a war, where Spring Boot's {@code ErrorPageFilter} ({@code HIGHEST_PRECEDENCE + 1}, registered by
 * {@code SpringBootServletInitializer}) runs outside it.
 */
@SpringBootTest(classes = {TestApplication.class, ErrorPageFilterIntegrationTest.War.class},
        webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class ErrorPageFilterIntegrationTest {

    @LocalServerPort
    int port;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        FilterPositionIntegrationTest.deadUpstreams(registry);
    }

    /** What a war has, and servlets of the application's own that let a fault escape before and after the commit. */
    @TestConfiguration(proxyBeanMethods = false)
    static class War {

        @Bean
        ErrorPageFilter errorPageFilter() {
            return new ErrorPageFilter();
        }

        @Bean
        ServletRegistrationBean<HttpServlet> faultingServlet() {
            return new ServletRegistrationBean<>(new HttpServlet() {
                @Override
                protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                    if (req.getPathInfo().equals("/after-commit")) {
                        resp.getOutputStream().write(new byte[50_000]);
                        resp.flushBuffer();
                        throw new UpstreamException(UpstreamFault.HTTP_RESPONSE_INCOMPLETE, "inventory", 1, null, 0,
                                "Premature end of chunk coded message body", null);
                    }
                    throw new UpstreamException(UpstreamFault.CONNECTION_REFUSED, "inventory", 1, null, 0,
                            "Connection refused", null);
                }
            }, "/faulting/*");
        }
    }

    /**
     * Regression: the war's {@code ErrorPageFilter} swallowed the exception with which the fault filter aborts a
     * committed response, so Tomcat ended a body a fault had cut short with its last chunk, as if it were whole.
     */
    @Test
    void aBodyCutByAFaultAfterTheCommitEndsIncomplete() throws Exception {
        RawExchange.Result result = RawExchange.get(port, "/faulting/after-commit");
        assertThat(result.head()).startsWith("HTTP/1.1 200");
        assertThat(result.complete()).as("the body's end").isFalse();
    }

    /** A fault before the commit is the fault filter's to answer, not the error page's (pinned). */
    @Test
    void aFaultBeforeTheCommitIsAnsweredByTheFaultFilter() throws Exception {
        HttpResponse<String> response = HttpClient.newHttpClient().send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/faulting/before-commit"))
                        .timeout(Duration.ofSeconds(30)).header("Accept", "application/json").build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("upstream-guard; error=connection_refused");
        assertThat(response.body()).contains("\"status\":502");
    }
}
