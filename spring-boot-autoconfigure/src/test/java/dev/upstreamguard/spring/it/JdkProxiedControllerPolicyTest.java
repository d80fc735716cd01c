package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.spring.UpstreamPolicy;
import java.io.IOException;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.lang.reflect.Proxy;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.aopalliance.intercept.MethodInterceptor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.aop.framework.autoproxy.DefaultAdvisorAutoProxyCreator;
import org.springframework.aop.support.DefaultPointcutAdvisor;
import org.springframework.aop.support.annotation.AnnotationMatchingPointcut;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.annotation.Bean;
import org.springframework.http.ResponseEntity;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.bind.annotation.ControllerAdvice;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.RestClient;
import org.springframework.web.client.RestClientResponseException;

/**
 * A controller Spring MVC maps as a JDK proxy (an advisor of the application's, {@code proxy-target-class=false}, the
 * request mappings on the interface it implements): its {@code @UpstreamPolicy} on the implementation applies, and is
 * checked at start-up.
 */
@SpringBootTest(classes = JdkProxiedControllerPolicyTest.App.class,
        webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT, properties = "spring.aop.proxy-target-class=false")
class JdkProxiedControllerPolicyTest {

    private static TestUpstream upstream;

    @LocalServerPort
    int port;

    @Autowired
    StockApi stock;

    /** Calls through the application's advisor. */
    static final AtomicInteger AUDITED = new AtomicInteger();

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        upstream = new TestUpstream();
        registry.add("test.upstream", upstream::url);
        registry.add("upstream-guard.upstreams.backend.url", upstream::url);
        registry.add("upstream-guard.upstreams.backend.retry.max-attempts", () -> "3");
        registry.add("upstream-guard.upstreams.backend.retry.initial-backoff", () -> "1ms");
        registry.add("upstream-guard.upstreams.backend.retry.max-backoff", () -> "2ms");
        registry.add("upstream-guard.upstreams.backend.retry.budget-ratio", () -> "1");
        registry.add("upstream-guard.upstreams.backend.retry.budget-min-per-second", () -> "1000");
        registry.add("upstream-guard.upstreams.backend.circuit-breaker.enabled", () -> "false");
        TestUpstream.registerDead(registry);
    }

    @AfterAll
    static void close() {
        upstream.close();
    }

    /** What the application's advisor applies to, as {@code @Transactional} would. */
    @Retention(RetentionPolicy.RUNTIME)
    @Target(ElementType.TYPE)
    @interface Audited {
    }

    /** The request mappings, on the interface: Spring MVC maps the JDK proxy through it. */
    @RestController
    interface StockApi {
        @GetMapping("/jdk/flaky")
        String flaky();

        @GetMapping("/jdk/flaky-on-method")
        String flakyOnMethod();
    }

    /** A mapping whose controller lets the fault of a refused upstream escape. */
    @RestController
    interface DeadApi {
        @GetMapping("/jdk/dead")
        String dead();
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class App {

        @RestController
        @Audited
        static class DeadController implements DeadApi {
            private final RestClient dead;

            DeadController(RestClient.Builder builder, @Value("${test.dead}") String url) {
                this.dead = builder.baseUrl(url).build();
            }

            @Override
            public String dead() {
                return dead.get().uri("/x").retrieve().body(String.class);
            }
        }

        /** The application's own answer to upstream faults, for that controller only. */
        @ControllerAdvice(assignableTypes = DeadController.class)
        static class DeadControllerFaults {
            @ExceptionHandler(UpstreamException.class)
            ResponseEntity<String> fault(UpstreamException e) {
                return ResponseEntity.status(297).body("the controller's own answer");
            }
        }

        @ControllerAdvice
        static class CatchAll {
            @ExceptionHandler(Exception.class)
            ResponseEntity<String> any(Exception e) {
                return ResponseEntity.status(500).body("catch-all");
            }
        }

        @Bean
        static DefaultAdvisorAutoProxyCreator auditProxies() {
            DefaultAdvisorAutoProxyCreator creator = new DefaultAdvisorAutoProxyCreator();
            creator.setProxyTargetClass(false);
            return creator;
        }

        @Bean
        static DefaultPointcutAdvisor auditAdvisor() {
            MethodInterceptor audit = invocation -> {
                AUDITED.incrementAndGet();
                return invocation.proceed();
            };
            return new DefaultPointcutAdvisor(new AnnotationMatchingPointcut(Audited.class, true), audit);
        }

        @RestController
        @Audited
        @UpstreamPolicy(maxAttempts = 1)
        static class StockController implements StockApi {
            private final RestClient backend;

            StockController(RestClient.Builder builder, @Value("${test.upstream}") String url) {
                this.backend = builder.baseUrl(url).build();
            }

            @Override
            public String flaky() {
                return call();
            }

            @Override
            @UpstreamPolicy(maxAttempts = 2)
            public String flakyOnMethod() {
                return call();
            }

            private String call() {
                try {
                    return backend.get().uri("/flaky").retrieve().body(String.class);
                } catch (RestClientResponseException e) {
                    return "upstream said " + e.getStatusCode().value();
                }
            }
        }
    }

    private String get(String path) throws Exception {
        HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).build();
        return HttpClient.newHttpClient().send(request, HttpResponse.BodyHandlers.ofString()).body();
    }

    /** Regression: the request-time lookup read the proxy's class and the interface's method, which declare nothing. */
    @Test
    void aJdkProxiedControllersDeclarationOnItsClassAndMethodsApplies() throws Exception {
        assertThat(Proxy.isProxyClass(stock.getClass())).as("the controller is a JDK proxy").isTrue();
        int audited = AUDITED.get();

        int before = upstream.flakyHits.get();
        assertThat(get("/jdk/flaky")).isEqualTo("upstream said 503");
        assertThat(upstream.flakyHits.get() - before).as("attempts under the class's maxAttempts = 1").isEqualTo(1);

        before = upstream.flakyHits.get();
        assertThat(get("/jdk/flaky-on-method")).isEqualTo("upstream said 503");
        assertThat(upstream.flakyHits.get() - before).as("attempts under the method's maxAttempts = 2").isEqualTo(2);
        assertThat(AUDITED.get() - audited).as("calls through the advisor").isEqualTo(2);
    }

    /**
     * Regression: advice of the application for some controllers, with its own answer to upstream faults, was matched
     * against the JDK proxy's class, which it does not name, so the gateway's 502 answered instead of it (Spring's own
     * resolver matches advice against the class behind the proxy).
     */
    @Test
    void adviceScopedToAJdkProxiedControllerAnswersItsFaults() throws Exception {
        HttpResponse<String> response = TestUpstream.getJson(port, "/jdk/dead");
        assertThat(response.statusCode()).as(response.body()).isEqualTo(297);
        assertThat(response.body()).isEqualTo("the controller's own answer");
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class BadApp {

        @Bean
        static DefaultAdvisorAutoProxyCreator auditProxies() {
            return App.auditProxies();
        }

        @Bean
        static DefaultPointcutAdvisor auditAdvisor() {
            return new DefaultPointcutAdvisor(new AnnotationMatchingPointcut(Audited.class, true),
                    (MethodInterceptor) invocation -> invocation.proceed());
        }

        @RestController
        @Audited
        static class BadController implements StockApi {
            @Override
            @UpstreamPolicy(responseTimeout = "soon")
            public String flaky() {
                return "";
            }

            @Override
            public String flakyOnMethod() {
                return "";
            }
        }
    }

    /** Regression: the start-up check skipped proxy classes, so a bad value waited for the first request. */
    @Test
    void aBadValueOnAJdkProxiedControllerFailsStartUpNamingTheMethod() {
        SpringApplicationBuilder app = new SpringApplicationBuilder(BadApp.class)
                .properties("server.port=0", "spring.aop.proxy-target-class=false",
                        "upstream-guard.upstreams.backend.url=" + upstream.url());
        assertThatThrownBy(() -> app.run().close()).hasStackTraceContaining("@UpstreamPolicy on " + BadApp.BadController.class.getName()
                + "#flaky");
    }
}
