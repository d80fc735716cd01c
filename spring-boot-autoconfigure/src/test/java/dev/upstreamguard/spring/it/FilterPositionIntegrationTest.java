package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Await;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import jakarta.servlet.Filter;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.context.TestConfiguration;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.core.Ordered;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * Where the fault filter sits among Spring Boot's own filters, in a running application: inside the observation filter
 * that records {@code http.server.requests}, and after filters the application orders first.
 */
@SpringBootTest(classes = {TestApplication.class, FilterPositionIntegrationTest.Extra.class},
        webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class FilterPositionIntegrationTest {

    @LocalServerPort
    int port;

    @Autowired
    MeterRegistry meterRegistry;

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        deadUpstreams(registry);
    }

    /** Every upstream the test application names, at a closed port. */
    static void deadUpstreams(DynamicPropertyRegistry registry) throws IOException {
        String dead = "http://127.0.0.1:" + TestUpstream.closedPort();
        registry.add("test.upstream", () -> dead);
        registry.add("test.dead", () -> dead);
        registry.add("test.fragile", () -> dead);
        registry.add("test.closing", () -> dead);
        registry.add("upstream-guard.upstreams.backend.url", () -> dead);
        registry.add("spring.http.serviceclient.backend.base-url", () -> dead);
        registry.add("upstream-guard.upstreams.dead.url", () -> dead);
        registry.add("upstream-guard.upstreams.dead.retry.enabled", () -> "false");
    }

    /** A servlet of the application's own that lets a fault escape, and a filter it orders before the fault filter. */
    @TestConfiguration(proxyBeanMethods = false)
    static class Extra {

        @Bean
        ServletRegistrationBean<HttpServlet> escapingServlet() {
            return new ServletRegistrationBean<>(new HttpServlet() {
                @Override
                protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                    throw new UpstreamException(UpstreamFault.CONNECTION_REFUSED, "inventory", 1, null, 0,
                            "Connection refused", null);
                }
            }, "/escaping/*");
        }

        /** Where Spring Security's header writer sits (-100), after the fault filter. */
        @Bean
        FilterRegistrationBean<Filter> securityHeadersFilter() {
            FilterRegistrationBean<Filter> registration = new FilterRegistrationBean<>((req, res, chain) -> {
                HttpServletResponse response = (HttpServletResponse) res;
                response.setHeader("Strict-Transport-Security", "max-age=31536000 ; includeSubDomains");
                response.setHeader("X-Content-Type-Options", "nosniff");
                response.setHeader("X-Frame-Options", "DENY");
                chain.doFilter(req, res);
            });
            registration.setOrder(-100);
            registration.addUrlPatterns("/plain/refused");
            return registration;
        }

        @Bean
        FilterRegistrationBean<Filter> cookieFilter() {
            FilterRegistrationBean<Filter> registration = new FilterRegistrationBean<>((req, res, chain) -> {
                HttpServletResponse response = (HttpServletResponse) res;
                response.addHeader("Set-Cookie", "session=1; Path=/");
                response.addHeader("Set-Cookie", "theme=dark; Path=/");
                response.setHeader("Access-Control-Allow-Origin", "https://app.example");
                chain.doFilter(req, res);
            });
            registration.setOrder(Ordered.HIGHEST_PRECEDENCE);
            registration.addUrlPatterns("/plain/refused");
            return registration;
        }
    }

    private HttpResponse<String> get(String path) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).header("Accept", "application/json").build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private String recordedStatuses(String uri) {
        return meterRegistry.find("http.server.requests").tag("uri", uri).timers().stream()
                .map(t -> t.getId().getTag("status") + "x" + t.count()).sorted().collect(Collectors.joining(","));
    }

    /**
     * Regression: the fault filter ran outside Spring's {@code ServerHttpObservationFilter}, which records a 500 for
     * any exception passing through it, before the filter answered the client 502.
     */
    @Test
    void aFaultEscapingToTheFilterIsRecordedInHttpServerRequestsWithTheStatusTheClientGets() throws Exception {
        HttpResponse<String> response = get("/escaping/x");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("upstream-guard; error=connection_refused");
        assertThat(response.headers().firstValue("Content-Type")).hasValue("application/problem+json");
        assertThat(response.body()).contains("\"status\":502");
        // The observation stops after the response went out: poll for it. The servlet's path is no template: UNKNOWN.
        Await.until("http.server.requests recorded", Duration.ofSeconds(10),
                () -> meterRegistry.find("http.server.requests").tag("uri", "UNKNOWN").timers().stream()
                        .mapToLong(Timer::count).sum() > 0,
                () -> recordedStatuses("UNKNOWN"));
        assertThat(recordedStatuses("UNKNOWN")).isEqualTo("502x1");
    }

    /**
     * Regression: the answer Spring MVC renders for a controller's fault was captured with one value per field, so the
     * two {@code Set-Cookie} fields a filter before the fault filter had set collapsed to the last.
     */
    @Test
    void everyValueOfAFieldSetByAFilterBeforeTheFaultFilterReachesTheClientOfAControllersFault() throws Exception {
        HttpResponse<String> response = get("/plain/refused");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Content-Type")).hasValue("application/problem+json");
        assertThat(response.headers().allValues("Set-Cookie"))
                .containsExactly("session=1; Path=/", "theme=dark; Path=/");
        // Restored as a field of a filter before it and as a CORS field: once.
        assertThat(response.headers().allValues("Access-Control-Allow-Origin")).containsExactly("https://app.example");
    }

    /**
     * Regression: the answer to a fault dropped the browser security policies Spring Security's header writer sets
     * after the fault filter (HSTS, nosniff, X-Frame-Options), so the gateway's 502 was the one page without them.
     */
    @Test
    void theBrowserSecurityPoliciesOfAFilterAfterTheFaultFilterStayOnAFaultsAnswer() throws Exception {
        HttpResponse<String> response = get("/plain/refused");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().allValues("Strict-Transport-Security"))
                .containsExactly("max-age=31536000 ; includeSubDomains");
        assertThat(response.headers().allValues("X-Content-Type-Options")).containsExactly("nosniff");
        assertThat(response.headers().allValues("X-Frame-Options")).containsExactly("DENY");
    }
}
