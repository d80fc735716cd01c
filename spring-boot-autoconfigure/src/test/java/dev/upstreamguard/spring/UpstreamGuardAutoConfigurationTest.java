package dev.upstreamguard.spring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.gateway.UpstreamFaultFilter;
import dev.upstreamguard.gateway.UpstreamProxyServlet;
import dev.upstreamguard.gateway.internal.FaultResponseWriter;
import dev.upstreamguard.spring.internal.FaultAdviceDeferral;
import dev.upstreamguard.spring.internal.RouteSkippingFormContentFilter;
import dev.upstreamguard.spring.internal.UpstreamPolicyResolver;
import dev.upstreamguard.spring.internal.UpstreamPolicyValidator;
import dev.upstreamguard.spring.internal.UpstreamRouteRegistrar;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import dev.upstreamguard.testing.TestTls;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import jakarta.servlet.DispatcherType;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import java.net.URI;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.springframework.boot.actuate.autoconfigure.endpoint.EndpointAutoConfiguration;
import org.springframework.boot.actuate.autoconfigure.endpoint.web.WebEndpointAutoConfiguration;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.AutoConfigurations;
import org.springframework.boot.autoconfigure.ssl.SslAutoConfiguration;
import org.springframework.boot.context.properties.source.InvalidConfigurationPropertyValueException;
import org.springframework.boot.health.autoconfigure.contributor.HealthContributorAutoConfiguration;
import org.springframework.boot.health.contributor.CompositeHealthContributor;
import org.springframework.boot.http.client.autoconfigure.HttpClientAutoConfiguration;
import org.springframework.boot.http.client.autoconfigure.imperative.ImperativeHttpClientAutoConfiguration;
import org.springframework.boot.http.converter.autoconfigure.HttpMessageConvertersAutoConfiguration;
import org.springframework.boot.micrometer.metrics.autoconfigure.CompositeMeterRegistryAutoConfiguration;
import org.springframework.boot.micrometer.metrics.autoconfigure.MetricsAutoConfiguration;
import org.springframework.boot.restclient.RestClientCustomizer;
import org.springframework.boot.restclient.RestTemplateBuilder;
import org.springframework.boot.restclient.RestTemplateCustomizer;
import org.springframework.boot.restclient.autoconfigure.RestClientAutoConfiguration;
import org.springframework.boot.restclient.autoconfigure.RestTemplateAutoConfiguration;
import org.springframework.boot.test.context.FilteredClassLoader;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;
import org.springframework.boot.test.context.runner.WebApplicationContextRunner;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.boot.webmvc.autoconfigure.WebMvcAutoConfiguration;
import org.springframework.boot.actuate.endpoint.annotation.Endpoint;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.Order;
import org.springframework.http.client.ClientHttpRequestFactory;
import org.springframework.web.client.RestClient;
import org.springframework.web.client.support.RestClientHttpServiceGroupConfigurer;
import org.springframework.web.filter.FormContentFilter;
import org.springframework.web.service.invoker.HttpRequestValues;
import org.springframework.web.servlet.DispatcherServlet;
import org.springframework.web.servlet.HandlerExceptionResolver;
import org.springframework.web.servlet.config.annotation.WebMvcConfigurer;
import org.springframework.web.servlet.handler.HandlerExceptionResolverComposite;
import org.springframework.web.servlet.mvc.method.annotation.ExceptionHandlerExceptionResolver;

class UpstreamGuardAutoConfigurationTest {

    static final AutoConfigurations AUTO_CONFIGURATIONS = AutoConfigurations.of(
            UpstreamGuardAutoConfiguration.class, UpstreamGuardActuatorAutoConfiguration.class,
            MetricsAutoConfiguration.class, CompositeMeterRegistryAutoConfiguration.class,
            HttpClientAutoConfiguration.class, ImperativeHttpClientAutoConfiguration.class,
            HttpMessageConvertersAutoConfiguration.class, RestClientAutoConfiguration.class,
            RestTemplateAutoConfiguration.class, EndpointAutoConfiguration.class, WebEndpointAutoConfiguration.class,
            HealthContributorAutoConfiguration.class);

    private final WebApplicationContextRunner web = new WebApplicationContextRunner()
            .withConfiguration(AUTO_CONFIGURATIONS)
            .withPropertyValues("management.endpoints.web.exposure.include=upstreams");

    private final ApplicationContextRunner plain = new ApplicationContextRunner().withConfiguration(AUTO_CONFIGURATIONS);

    @Test
    void createsTheRegistryTheGuardedClientAndEveryWebBeanInAServletApplication() {
        web.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9000",
                "upstream-guard.routes.c.strip-prefix=1").run(context -> {
                    assertThat(context).hasNotFailed();
                    assertThat(context).hasSingleBean(UpstreamRegistry.class).hasSingleBean(GuardedHttpClient.class)
                            .hasSingleBean(UpstreamPolicyResolver.class).hasSingleBean(UpstreamPolicyValidator.class)
                            .hasSingleBean(GuardedClientHttpRequestFactory.class)
                            .hasSingleBean(FaultResponseWriter.class).hasSingleBean(UpstreamExceptionHandler.class)
                            .hasSingleBean(UpstreamsEndpoint.class).hasSingleBean(UpstreamsHealthContributor.class)
                            .hasBean("upstreamGuardRestClientCustomizer").hasBean("upstreamGuardRestTemplateCustomizer")
                            .hasBean("upstreamPolicyHttpExchangeProcessor")
                            .hasBean("upstreamGuardHttpServiceGroupConfigurer")
                            .hasBean("upstreamPolicyWebMvcConfigurer").hasBean("upstreamFaultFilter")
                            .hasBean("upstreamGuardRoute.c");
                    // The guarded factory replaces the context's ClientHttpRequestFactory.
                    assertThat(context.getBean(ClientHttpRequestFactory.class))
                            .isInstanceOf(GuardedClientHttpRequestFactory.class);
                });
    }

    @Test
    void registersTheFaultFilterJustInsideTheObservationFilterForRequestAsyncAndErrorDispatches() {
        web.run(context -> {
            @SuppressWarnings("unchecked")
            FilterRegistrationBean<UpstreamFaultFilter> registration = context.getBean("upstreamFaultFilter",
                    FilterRegistrationBean.class);
            assertThat(registration.getFilter()).isInstanceOf(UpstreamFaultFilter.class);
            // Spring Boot's ServerHttpObservationFilter is HIGHEST_PRECEDENCE + 1.
            assertThat(registration.getOrder()).isEqualTo(Ordered.HIGHEST_PRECEDENCE + 2);
            assertThat(registration.isAsyncSupported()).isTrue();
            assertThat(registration.determineDispatcherTypes())
                    .isEqualTo(EnumSet.of(DispatcherType.REQUEST, DispatcherType.ASYNC, DispatcherType.ERROR));
            assertThat(registration.getUrlPatterns()).containsExactly("/*");
        });
    }

    /**
     * Regression: an upstream host name with an underscore (a Docker Compose service such as {@code order_service}),
     * which HttpClient calls, failed start-up as "must be an absolute http:// or https:// URI with a host".
     */
    @Test
    void anUpstreamOrRouteWhoseHostNameHasAnUnderscoreStarts() {
        web.withPropertyValues("upstream-guard.upstreams.orders.url=http://order_service:8081",
                "upstream-guard.upstreams.orders.response-timeout=3s",
                "upstream-guard.routes.orders.path=/orders/**", "upstream-guard.routes.orders.upstream=orders",
                "upstream-guard.routes.stock.path=/stock/**", "upstream-guard.routes.stock.uri=http://stock_service")
                .run(context -> {
                    assertThat(context).hasNotFailed();
                    UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
                    assertThat(registry.upstreamFor(URI.create("http://Order_Service:8081/x")))
                            .map(UpstreamRegistry.NamedUpstream::name).contains("orders");
                    assertThat(registry.policyFor(URI.create("http://order_service:8081/x")).responseTimeout())
                            .isEqualTo(Duration.ofSeconds(3));
                    assertThat(registry.routeUpstreams().get("stock").url()).isEqualTo(URI.create("http://stock_service:80"));
                    assertThat(context.getBean(GuardedHttpClient.class).upstream("stock").policy())
                            .isEqualTo(registry.defaults());
                });
        plain.withPropertyValues("upstream-guard.upstreams.orders.url=http://user@order_service:8081")
                .run(context -> assertThat(context.getStartupFailure()).rootCause()
                        .hasMessageContaining("upstream-guard.upstreams.orders.url"));
    }

    /**
     * An upstream's base is its {@code url}, a route's its {@code uri}: with strict binding, the other spelling used to
     * fail start-up as an unknown key. Each is accepted for both; both at once fail naming the second.
     */
    @Test
    void urlAndUriAreOneSettingForUpstreamsAndRoutes() {
        web.withPropertyValues("upstream-guard.upstreams.inventory.uri=http://127.0.0.1:8081/api",
                "upstream-guard.routes.inventory.path=/inventory/**", "upstream-guard.routes.inventory.upstream=inventory",
                "upstream-guard.routes.status.path=/status", "upstream-guard.routes.status.url=http://127.0.0.1:9000")
                .run(context -> {
                    assertThat(context).hasNotFailed();
                    UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
                    assertThat(registry.upstreams().get("inventory").url())
                            .isEqualTo(URI.create("http://127.0.0.1:8081/api"));
                    assertThat(registry.routes()).extracting(UpstreamRegistry.Route::target).containsExactly(
                            URI.create("http://127.0.0.1:8081/api/inventory"), URI.create("http://127.0.0.1:9000/status"));
                });
        plain.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081",
                "upstream-guard.upstreams.inventory.uri=http://127.0.0.1:8082")
                .run(context -> assertThat(context.getStartupFailure()).rootCause()
                        .hasMessageContaining("upstream-guard.upstreams.inventory.uri"));
        web.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:1",
                "upstream-guard.routes.c.url=http://127.0.0.1:2")
                .run(context -> assertThat(context.getStartupFailure()).rootCause()
                        .hasMessageContaining("upstream-guard.routes.c.url"));
    }

    @Test
    void registersOneProxyServletPerRouteMappedToItsPath() {
        web.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081/api",
                "upstream-guard.routes.inventory.path=/api/inventory/**",
                "upstream-guard.routes.inventory.upstream=inventory",
                "upstream-guard.routes.inventory.strip-prefix=1",
                "upstream-guard.routes.status.path=/status", "upstream-guard.routes.status.uri=http://127.0.0.1:9000")
                .run(context -> {
                    assertThat(context).hasNotFailed();
                    ServletRegistrationBean<?> inventory = context.getBean("upstreamGuardRoute.inventory",
                            ServletRegistrationBean.class);
                    assertThat(inventory.getServlet()).isInstanceOf(UpstreamProxyServlet.class);
                    assertThat(inventory.getUrlMappings()).containsExactly("/api/inventory/*");
                    ServletRegistrationBean<?> status = context.getBean("upstreamGuardRoute.status",
                            ServletRegistrationBean.class);
                    assertThat(status.getUrlMappings()).containsExactly("/status");
                    UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
                    assertThat(registry.routes()).extracting(UpstreamRegistry.Route::target).containsExactly(
                            URI.create("http://127.0.0.1:8081/api/inventory"), URI.create("http://127.0.0.1:9000/status"));
                    assertThat(registry.routes()).extracting(UpstreamRegistry.Route::upstream)
                            .containsExactly("inventory", "status");
                    // The shared client knows a plain-URI route's upstream by the route's name.
                    assertThat(context.getBean(GuardedHttpClient.class).upstream("status").policy())
                            .isEqualTo(registry.defaults());
                });
    }

    /**
     * Regression: a route to a uri had no policy of its own (only the defaults), and a policy setting under the route
     * failed start-up as unbound: in gateway mode no setting could apply to one route alone.
     */
    @Test
    void aRouteToAUriWithPolicySettingsIsAnUpstreamOfItsOwnWithThem() {
        web.withPropertyValues("upstream-guard.defaults.retry.max-attempts=4",
                "upstream-guard.upstreams.inventory.url=http://127.0.0.1:9000",
                "upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9000",
                "upstream-guard.routes.c.response-timeout=1s", "upstream-guard.routes.c.retry.enabled=false",
                "upstream-guard.routes.c.circuit-breaker.minimum-calls=2",
                "upstream-guard.routes.d.path=/d/**", "upstream-guard.routes.d.uri=http://127.0.0.1:9001",
                "upstream-guard.routes.e.path=/e/**", "upstream-guard.routes.e.uri=http://127.0.0.1:9002",
                "upstream-guard.routes.e.retry.max-attempts=1")
                .run(context -> {
                    assertThat(context).hasNotFailed();
                    UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
                    GuardPolicy c = registry.defaults().toBuilder().responseTimeout(Duration.ofSeconds(1))
                            .retryEnabled(false).minimumCalls(2).build();
                    // Its own upstream, although a named upstream has the same address: the settings are the route's.
                    assertThat(registry.routes()).extracting(UpstreamRegistry.Route::upstream)
                            .containsExactly("c", "d", "e");
                    GuardedHttpClient client = context.getBean(GuardedHttpClient.class);
                    assertThat(client.upstream("c").policy()).isEqualTo(c);
                    assertThat(client.upstream("d").policy()).isEqualTo(registry.defaults());
                    assertThat(client.upstream("inventory").policy()).isEqualTo(registry.defaults());
                    // A call of the application's own to a route's address runs as the route, and so resolves
                    // @UpstreamPolicy overrides over the route's policy; beside a named upstream, as that upstream.
                    assertThat(registry.policyFor(URI.create("http://127.0.0.1:9002/x"))).isEqualTo(
                            registry.defaults().toBuilder().maxAttempts(1).build());
                    assertThat(registry.calledAs(URI.create("http://127.0.0.1:9002/x")))
                            .hasValueSatisfying(u -> assertThat(u.name()).isEqualTo("e"));
                    assertThat(registry.calledAs(URI.create("http://127.0.0.1:9000/x")))
                            .hasValueSatisfying(u -> assertThat(u.name()).isEqualTo("inventory"));
                });
        // On a route to a named upstream the setting would be ignored, so it fails start-up naming it.
        plain.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:9000",
                "upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.upstream=inventory",
                "upstream-guard.routes.c.retry.max-attempts=1").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                            .hasMessageContaining("upstream-guard.routes.c.retry.max-attempts")
                            .hasMessageContaining("'1'")
                            .hasMessageContaining("upstream-guard.upstreams.inventory");
                });
        // Also when it repeats the upstream's value: it is set in the wrong place all the same.
        plain.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:9000",
                "upstream-guard.upstreams.inventory.retry.max-attempts=2",
                "upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.upstream=inventory",
                "upstream-guard.routes.c.retry.max-attempts=2").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.c.retry.max-attempts")
                            .hasMessageContaining("upstream-guard.upstreams.inventory");
                });
        // As on a route whose name an upstream of another address already has.
        plain.withPropertyValues("upstream-guard.upstreams.c.url=http://127.0.0.1:9000",
                "upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9001",
                "upstream-guard.routes.c.connect-timeout=1s").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.c.connect-timeout")
                            .hasMessageContaining("upstream-guard.routes.c.upstream=c");
                });
        // Setting it as an upstream of the route's name, without a url, points to the route.
        plain.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9",
                "upstream-guard.upstreams.c.response-timeout=1s").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.upstreams.c.url")
                            .hasMessageContaining("upstream-guard.routes.c.*");
                });
        // And a bad value names the route's property.
        plain.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9",
                "upstream-guard.routes.c.response-timeout=-1s").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.c.response-timeout")
                            .hasMessageContaining("-1s");
                });
    }

    @Test
    void bindsEveryDefaultsPropertyThroughThePolicyBuilder() {
        plain.withPropertyValues("upstream-guard.defaults.connect-timeout=1s",
                "upstream-guard.defaults.response-timeout=3s", "upstream-guard.defaults.total-timeout=7s",
                "upstream-guard.defaults.pool-timeout=500ms", "upstream-guard.defaults.max-connections=17",
                "upstream-guard.defaults.max-response-body=10MB", "upstream-guard.defaults.retry.enabled=false", "upstream-guard.defaults.retry.max-attempts=5",
                "upstream-guard.defaults.retry.initial-backoff=10ms", "upstream-guard.defaults.retry.max-backoff=1s",
                "upstream-guard.defaults.retry.max-retry-after=4s", "upstream-guard.defaults.retry.budget-ratio=0.5",
                "upstream-guard.defaults.retry.budget-min-per-second=9",
                "upstream-guard.defaults.retry.on-response-timeout=true",
                "upstream-guard.defaults.retry.statuses=503,504",
                "upstream-guard.defaults.circuit-breaker.enabled=false",
                "upstream-guard.defaults.circuit-breaker.failure-rate-threshold=25",
                "upstream-guard.defaults.circuit-breaker.minimum-calls=4",
                "upstream-guard.defaults.circuit-breaker.window=5s",
                "upstream-guard.defaults.circuit-breaker.open-for=3s",
                "upstream-guard.defaults.circuit-breaker.half-open-calls=2",
                "upstream-guard.defaults.circuit-breaker.record-statuses=500,503",
                "upstream-guard.defaults.bulkhead.enabled=false",
                "upstream-guard.defaults.bulkhead.max-concurrent-calls=12").run(context -> {
                    GuardPolicy expected = GuardPolicy.builder().connectTimeout(Duration.ofSeconds(1))
                            .responseTimeout(Duration.ofSeconds(3)).totalTimeout(Duration.ofSeconds(7))
                            .poolTimeout(Duration.ofMillis(500)).maxConnections(17).maxResponseBody(10L << 20)
                            .retryEnabled(false).maxAttempts(5)
                            .initialBackoff(Duration.ofMillis(10)).maxBackoff(Duration.ofSeconds(1))
                            .maxRetryAfter(Duration.ofSeconds(4)).budgetRatio(0.5).budgetMinPerSecond(9)
                            .retryOnResponseTimeout(true).retryStatuses(Set.of(503, 504)).circuitBreakerEnabled(false)
                            .failureRateThreshold(25).minimumCalls(4).window(Duration.ofSeconds(5))
                            .openFor(Duration.ofSeconds(3)).halfOpenCalls(2).recordStatuses(Set.of(500, 503))
                            .bulkheadEnabled(false).maxConcurrentCalls(12).build();
                    assertThat(context.getBean(UpstreamRegistry.class).defaults()).isEqualTo(expected);
                });
    }

    @Test
    void leavesTheLibraryDefaultsWhenNothingIsSet() {
        plain.run(context -> {
            UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
            assertThat(registry.defaults()).isEqualTo(GuardPolicy.ofDefaults());
            assertThat(registry.proxyName()).isEqualTo("upstream-guard");
            assertThat(registry.exposeDetails()).isFalse();
            assertThat(registry.upstreams()).isEmpty();
            assertThat(registry.routes()).isEmpty();
        });
    }

    @Test
    void anUpstreamInheritsTheDefaultsAndOverridesOnlyWhatItSets() {
        plain.withPropertyValues("upstream-guard.proxy-name=edge-1", "upstream-guard.expose-details=true",
                "upstream-guard.defaults.connect-timeout=1s", "upstream-guard.defaults.retry.max-attempts=2",
                "upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081",
                "upstream-guard.upstreams.inventory.response-timeout=2s",
                "upstream-guard.upstreams.inventory.bulkhead.max-concurrent-calls=7").run(context -> {
                    UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
                    assertThat(registry.proxyName()).isEqualTo("edge-1");
                    assertThat(registry.exposeDetails()).isTrue();
                    GuardPolicy inventory = registry.policy("inventory");
                    assertThat(inventory.connectTimeout()).isEqualTo(Duration.ofSeconds(1));
                    assertThat(inventory.retry().maxAttempts()).isEqualTo(2);
                    assertThat(inventory.responseTimeout()).isEqualTo(Duration.ofSeconds(2));
                    assertThat(inventory.bulkhead().maxConcurrentCalls()).isEqualTo(7);
                    assertThat(inventory.totalTimeout()).isEqualTo(GuardPolicy.ofDefaults().totalTimeout());
                    assertThat(registry.defaults().responseTimeout())
                            .isEqualTo(GuardPolicy.ofDefaults().responseTimeout());
                    GuardedHttpClient client = context.getBean(GuardedHttpClient.class);
                    assertThat(client.upstream("inventory").policy()).isEqualTo(inventory);
                    assertThat(registry.policyFor(URI.create("http://127.0.0.1:8081/x"))).isEqualTo(inventory);
                    assertThat(registry.policyFor(URI.create("http://127.0.0.1:8082/x"))).isEqualTo(registry.defaults());
                });
    }

    @Test
    void aNegativeTimeoutFailsStartUpNamingThePropertyAndTheValue() {
        plain.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081",
                "upstream-guard.upstreams.inventory.connect-timeout=-1s").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.upstreams.inventory.connect-timeout")
                            .hasMessageContaining("-1s");
                });
    }

    @Test
    void aZeroResponseBodyLimitFailsStartUpNamingTheProperty() {
        plain.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081",
                "upstream-guard.upstreams.inventory.max-response-body=0B").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.upstreams.inventory.max-response-body");
                });
    }

    /**
     * Regression: a status list could not say "no status": {@code none}, the library's own spelling, failed start-up
     * with a bare NumberFormatException, and a word in the list did not name the setting's rule.
     */
    @Test
    void noneOrAnEmptyValueMeansNoStatusAndAnythingElseThatIsNotAStatusFailsStartUpNamingIt() throws Exception {
        for (String none : new String[] {"none", "NONE", ""}) {
            plain.withPropertyValues("upstream-guard.defaults.retry.statuses=" + none,
                    "upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081",
                    "upstream-guard.upstreams.inventory.circuit-breaker.record-statuses=" + none).run(context -> {
                        assertThat(context).as(none).hasNotFailed();
                        UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
                        assertThat(registry.defaults().retry().statuses()).as(none).isEmpty();
                        assertThat(registry.defaults().circuitBreaker().recordStatuses()).containsExactly(502, 503, 504);
                        assertThat(registry.policy("inventory").retry().statuses()).isEmpty();
                        assertThat(registry.policy("inventory").circuitBreaker().recordStatuses()).as(none).isEmpty();
                    });
        }
        // YAML's empty list reaches the binder as an empty value; an upstream can restore statuses over "none".
        String yaml = "upstream-guard:\n  defaults:\n    retry: { statuses: [] }\n  upstreams:\n"
                + "    inventory: { url: \"http://127.0.0.1:8081\", retry: { statuses: [503] } }\n";
        org.springframework.core.env.EnumerablePropertySource<?> source = (org.springframework.core.env.EnumerablePropertySource<?>)
                new org.springframework.boot.env.YamlPropertySourceLoader().load("yaml",
                        new org.springframework.core.io.ByteArrayResource(yaml.getBytes(java.nio.charset.StandardCharsets.UTF_8)))
                        .get(0);
        plain.withPropertyValues(java.util.Arrays.stream(source.getPropertyNames())
                .map(n -> n + "=" + source.getProperty(n)).toArray(String[]::new)).run(context -> {
                    assertThat(context).hasNotFailed();
                    UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
                    assertThat(registry.defaults().retry().statuses()).isEmpty();
                    assertThat(registry.policy("inventory").retry().statuses()).containsExactly(503);
                });
        for (String bad : new String[] {"upstream-guard.defaults.retry.statuses=abc",
                "upstream-guard.defaults.retry.statuses=none,503",
                "upstream-guard.defaults.circuit-breaker.record-statuses=5xx",
                "upstream-guard.defaults.circuit-breaker.record-statuses=200"}) {
            plain.withPropertyValues(bad).run(context -> {
                assertThat(context).as(bad).hasFailed();
                assertThat(context.getStartupFailure()).as(bad).rootCause()
                        .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                        .hasMessageContaining(bad.substring(0, bad.indexOf('=')))
                        .hasMessageContaining("'" + bad.substring(bad.indexOf('=') + 1) + "'");
            });
        }
    }

    @Test
    void aBudgetRatioAboveOneFailsStartUpNamingThePropertyAndTheValue() {
        plain.withPropertyValues("upstream-guard.defaults.retry.budget-ratio=1.5").run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).rootCause()
                    .hasMessageContaining("upstream-guard.defaults.retry.budget-ratio").hasMessageContaining("1.5");
        });
    }

    @Test
    void aMaxBackoffShorterThanTheInitialBackoffFailsStartUpNamingBoth() {
        plain.withPropertyValues("upstream-guard.defaults.retry.initial-backoff=3s").run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).rootCause()
                    .hasMessageContaining("upstream-guard.defaults.retry.max-backoff")
                    .hasMessageContaining("retry.initial-backoff");
        });
    }

    @Test
    void aRouteWithNeitherUpstreamNorUriFailsStartUpNamingTheRoute() {
        plain.withPropertyValues("upstream-guard.routes.orders.path=/orders/**").run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).rootCause()
                    .hasMessageContaining("upstream-guard.routes.orders.upstream")
                    .hasMessageContaining("upstream-guard.routes.orders.uri");
        });
    }

    @Test
    void aRouteNamingAnUnknownUpstreamFailsStartUpNamingTheUpstream() {
        plain.withPropertyValues("upstream-guard.routes.orders.path=/orders/**",
                "upstream-guard.routes.orders.upstream=ordrs").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.orders.upstream")
                            .hasMessageContaining("ordrs");
                });
    }

    @Test
    void aRouteWithBothUpstreamAndUriFailsStartUp() {
        plain.withPropertyValues("upstream-guard.upstreams.orders.url=http://127.0.0.1:8081",
                "upstream-guard.routes.orders.path=/orders/**", "upstream-guard.routes.orders.upstream=orders",
                "upstream-guard.routes.orders.uri=http://127.0.0.1:8082").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.orders.uri")
                            .hasMessageContaining("http://127.0.0.1:8082");
                });
    }

    @Test
    void aStripPrefixLongerThanThePathFailsStartUp() {
        plain.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:1",
                "upstream-guard.routes.c.strip-prefix=2").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.c.strip-prefix").hasMessageContaining("2");
                });
    }

    @Test
    void aRouteChoosesItsForwardingHeadersAndAnUnknownChoiceFailsStartUp() {
        plain.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:1",
                "upstream-guard.routes.d.path=/d/**", "upstream-guard.routes.d.uri=http://127.0.0.1:1",
                "upstream-guard.routes.d.forwarded-headers=forwarded").run(context -> {
                    assertThat(context).hasNotFailed();
                    assertThat(context.getBean(UpstreamRegistry.class).routes())
                            .extracting(UpstreamRegistry.Route::forwardedHeaders).containsExactly("both", "forwarded");
                });
        plain.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:1",
                "upstream-guard.routes.c.forwarded-headers=all").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.c.forwarded-headers").hasMessageContaining("all");
                });
    }

    @Test
    void aRouteCanPreserveTheHostAndBufferLargerBodiesAndABadSizeFailsStartUp() {
        plain.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:1",
                "upstream-guard.routes.c.preserve-host=true", "upstream-guard.routes.c.max-buffered-request-body=1MiB",
                "upstream-guard.routes.d.path=/d/**", "upstream-guard.routes.d.uri=http://127.0.0.1:1").run(context -> {
                    assertThat(context).hasNotFailed();
                    assertThat(context.getBean(UpstreamRegistry.class).routes())
                            .extracting(UpstreamRegistry.Route::preserveHost, UpstreamRegistry.Route::maxBufferedRequestBody)
                            .containsExactly(org.assertj.core.groups.Tuple.tuple(true, 1L << 20),
                                    org.assertj.core.groups.Tuple.tuple(false, null));
                });
        for (String size : new String[] {"lots", "-1", "3GiB"}) {
            plain.withPropertyValues("upstream-guard.routes.c.path=/c/**",
                    "upstream-guard.routes.c.uri=http://127.0.0.1:1",
                    "upstream-guard.routes.c.max-buffered-request-body=" + size).run(context -> {
                        assertThat(context).as(size).hasFailed();
                        assertThat(context.getStartupFailure()).as(size).rootCause()
                                .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                                .hasMessageContaining("upstream-guard.routes.c.max-buffered-request-body")
                                .hasMessageContaining(size);
                    });
        }
    }

    @Test
    void aRoutePathWithAWildcardInTheMiddleFailsStartUp() {
        plain.withPropertyValues("upstream-guard.routes.c.path=/c/*/x", "upstream-guard.routes.c.uri=http://127.0.0.1:1")
                .run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.c.path").hasMessageContaining("/c/*/x");
                });
    }

    @Test
    void aRoutePathNoRequestCouldMatchOrThatCannotBeForwardedFailsStartUpNamingIt() {
        // Containers match the decoded path with dot segments resolved and ;parameters removed; a space cannot go into
        // the target URI.
        for (String path : new String[] {"/c/../d/**", "/c/./**", "/c/%2e%2e/**", "/c%2Fd", "/c;v=1/**", "/c d/**",
                "/c\\d", "/c/\"x\""}) {
            plain.withPropertyValues("upstream-guard.routes.c.path=" + path,
                    "upstream-guard.routes.c.uri=http://127.0.0.1:1").run(context -> {
                        assertThat(context).as(path).hasFailed();
                        assertThat(context.getStartupFailure()).as(path).rootCause()
                                .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                                .hasMessageContaining("upstream-guard.routes.c.path").hasMessageContaining(path);
                    });
        }
        plain.withPropertyValues("upstream-guard.routes.c.path=/v1.0/a-b_c~d@e:f/**",
                "upstream-guard.routes.c.uri=http://127.0.0.1:1", "upstream-guard.routes.c.strip-prefix=1")
                .run(context -> assertThat(context.getBean(UpstreamRegistry.class).routes().get(0).target())
                        .isEqualTo(URI.create("http://127.0.0.1:1/a-b_c~d@e:f")));
    }

    @Test
    void anUpstreamUrlWithAPortOutOfRangeFailsStartUpNamingTheProperty() {
        for (String url : new String[] {"http://127.0.0.1:0", "http://127.0.0.1:65536", "https://127.0.0.1:99999/api"}) {
            plain.withPropertyValues("upstream-guard.upstreams.inventory.url=" + url).run(context -> {
                assertThat(context).as(url).hasFailed();
                assertThat(context.getStartupFailure()).as(url).rootCause()
                        .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                        .hasMessageContaining("upstream-guard.upstreams.inventory.url").hasMessageContaining(url);
            });
            plain.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=" + url)
                    .run(context -> assertThat(context.getStartupFailure()).as(url).rootCause()
                            .hasMessageContaining("upstream-guard.routes.c.uri"));
        }
    }

    @Test
    void aBaseUrlWhosePathTheProxyCannotForwardToFailsStartUpNamingTheProperty() {
        // The proxy servlet refuses such a base when a route's servlet is built; this names the property instead.
        for (String url : new String[] {"http://127.0.0.1:8081/a/../b", "http://127.0.0.1:8081/a%2Fb",
                "http://127.0.0.1:8081/./a"}) {
            plain.withPropertyValues("upstream-guard.upstreams.inventory.url=" + url).run(context -> {
                assertThat(context).as(url).hasFailed();
                assertThat(context.getStartupFailure()).as(url).rootCause()
                        .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                        .hasMessageContaining("upstream-guard.upstreams.inventory.url").hasMessageContaining(url);
            });
            web.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=" + url)
                    .run(context -> assertThat(context.getStartupFailure()).as(url).rootCause()
                            .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                            .hasMessageContaining("upstream-guard.routes.c.uri"));
        }
        plain.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081/a%20b/")
                .run(context -> assertThat(context).hasNotFailed());
    }

    /**
     * Regression: Spring Boot matches property names whatever their case and dashes, but keeps a map key as written, so
     * {@code upstreams.Inventory.*} beside {@code upstreams.inventory.*} (a name given on the command line in capitals)
     * bound two upstreams of one address, each with the other's settings too: a phantom duplicate with a breaker,
     * bulkhead, health entry and meters of its own, which calls naming no upstream ran as.
     */
    @Test
    void anUpstreamOrRouteNameSpeltTwoWaysFailsStartUpNamingBothSpellings() {
        plain.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:9000",
                "upstream-guard.upstreams.Inventory.response-timeout=1s").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                            .hasMessageContaining("upstream-guard.upstreams.Inventory")
                            .hasMessageContaining("upstream-guard.upstreams.inventory");
                });
        plain.withPropertyValues("upstream-guard.routes.my-route.path=/c/**",
                "upstream-guard.routes.my-route.uri=http://127.0.0.1:9000",
                "upstream-guard.routes.myRoute.strip-prefix=1").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                            .hasMessageContaining("upstream-guard.routes.my-route")
                            .hasMessageContaining("upstream-guard.routes.myRoute");
                });
        // Regression (review): underscores are ignored alike, and the second spelling's address silently won.
        plain.withPropertyValues("upstream-guard.upstreams.svc_v2.url=http://127.0.0.1:9000",
                "upstream-guard.upstreams.svcv2.url=http://127.0.0.1:9001").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                            .hasMessageContaining("upstream-guard.upstreams.svc_v2")
                            .hasMessageContaining("upstream-guard.upstreams.svcv2");
                });
    }

    @Test
    void twoRoutesServingTheSamePathFailStartUpNamingBoth() {
        // "/c/**" and "/c/**", or "/c" and "/c": one servlet mapping, which the container would give to one of them.
        plain.withPropertyValues("upstream-guard.routes.a.path=/c", "upstream-guard.routes.a.uri=http://127.0.0.1:1",
                "upstream-guard.routes.b.path=/c", "upstream-guard.routes.b.uri=http://127.0.0.1:2").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.b.path").hasMessageContaining("'/c'")
                            .hasMessageContaining("route 'a'");
                });
        // "/c" and "/c/" are two requests, each served by the route that names it.
        plain.withPropertyValues("upstream-guard.routes.a.path=/c", "upstream-guard.routes.a.uri=http://127.0.0.1:1",
                "upstream-guard.routes.b.path=/c/", "upstream-guard.routes.b.uri=http://127.0.0.1:2")
                .run(context -> assertThat(context).hasNotFailed());
        plain.withPropertyValues("upstream-guard.routes.a.path=/c/**", "upstream-guard.routes.a.uri=http://127.0.0.1:1",
                "upstream-guard.routes.b.path=/c/**", "upstream-guard.routes.b.uri=http://127.0.0.1:2").run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .hasMessageContaining("upstream-guard.routes.b.path").hasMessageContaining("route 'a'");
                });
        plain.withPropertyValues("upstream-guard.routes.a.path=/c/**", "upstream-guard.routes.a.uri=http://127.0.0.1:1",
                "upstream-guard.routes.b.path=/c/d/**", "upstream-guard.routes.b.uri=http://127.0.0.1:2",
                "upstream-guard.routes.e.path=/c", "upstream-guard.routes.e.uri=http://127.0.0.1:3")
                .run(context -> assertThat(context).hasNotFailed());
    }

    @Test
    void anUpstreamUrlThatIsNotHttpFailsStartUp() {
        plain.withPropertyValues("upstream-guard.upstreams.inventory.url=ftp://127.0.0.1/").run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).rootCause()
                    .hasMessageContaining("upstream-guard.upstreams.inventory.url")
                    .hasMessageContaining("ftp://127.0.0.1/");
        });
    }

    @Test
    void aProxyNameThatCannotGoInAHeaderFailsStartUp() {
        plain.withPropertyValues("upstream-guard.proxy-name=edge\u00e9").run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).rootCause().hasMessageContaining("upstream-guard.proxy-name");
        });
    }

    @Test
    void aTimeoutThatIsNotADurationFailsStartUpNamingTheProperty() {
        plain.withPropertyValues("upstream-guard.defaults.response-timeout=soon").run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).hasStackTraceContaining("upstream-guard.defaults.response-timeout")
                    .hasStackTraceContaining("soon");
        });
    }

    @Test
    void aMisspeltKeyOrAnEmptyValueFailsStartUpNamingItInsteadOfLeavingTheDefault() {
        // An empty value (say ${INVENTORY_TIMEOUT:} with the variable unset) binds to nothing: left unbound as well.
        for (String typo : new String[] {"upstream-guard.proxy-nme=edge-1",
                "upstream-guard.defaults.respons-timeout=1s", "upstream-guard.defaults.retry.max-atempts=1",
                "upstream-guard.upstreams.inventory.circuit-breaker.open-fr=1m",
                "upstream-guard.routes.c.strip-prefx=1", "upstream-guard.upstreams.inventory.response-timeout=",
                "upstream-guard.defaults.retry.max-attempts="}) {
            plain.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081",
                    "upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9", typo)
                    .run(context -> {
                        assertThat(context).as(typo).hasFailed();
                        assertThat(context.getStartupFailure()).as(typo)
                                .hasStackTraceContaining(typo.substring(0, typo.indexOf('=')));
                    });
        }
        // Relaxed forms of known keys still bind.
        plain.withPropertyValues("upstream-guard.defaults.retry.maxAttempts=2",
                "upstream-guard.defaults.circuit_breaker.open_for=1m").run(context -> {
                    assertThat(context).hasNotFailed();
                    GuardPolicy defaults = context.getBean(UpstreamRegistry.class).defaults();
                    assertThat(defaults.retry().maxAttempts()).isEqualTo(2);
                    assertThat(defaults.circuitBreaker().openFor()).isEqualTo(Duration.ofMinutes(1));
                });
    }

    /**
     * Regression: Spring Boot leaves environment variables out of its check for unknown keys, so a misspelt
     * {@code UPSTREAMGUARD_DEFAULTS_RESPONSTIMEOUT} left the default in force, and an upstream or route declared as the
     * README's {@code UPSTREAM_GUARD_DEFAULTS_RESPONSE_TIMEOUT} example suggests ({@code UPSTREAM_GUARD_ROUTES_C_PATH}),
     * which Spring Boot cannot bind into a map, silently did not exist: the application started without it.
     */
    @Test
    void environmentVariablesThatNameNoSettingOrDeclareAnUpstreamSpringCannotBindFailStartUpNamingThem() {
        // Each: the variable the failure names, then the environment.
        String[][] failing = {
            {"UPSTREAMGUARD_DEFAULTS_RESPONSTIMEOUT", "UPSTREAMGUARD_DEFAULTS_RESPONSTIMEOUT=1s"},
            {"UPSTREAM_GUARD_DEFAULTS_RETRY_MAX_ATEMPTS", "UPSTREAM_GUARD_DEFAULTS_RETRY_MAX_ATEMPTS=1"},
            {"UPSTREAMGUARD_DEFAULTS_RESPONSE_TIMEOUT", "UPSTREAMGUARD_DEFAULTS_RESPONSE_TIMEOUT=1s"},
            {"UPSTREAMGUARD_UPSTREAMS_INVENTORY_RESPONSETIMEOUTT",
                "UPSTREAMGUARD_UPSTREAMS_INVENTORY_URL=http://127.0.0.1:8081",
                "UPSTREAMGUARD_UPSTREAMS_INVENTORY_RESPONSETIMEOUTT=1s"},
            {"UPSTREAM_GUARD_UPSTREAMS_INVENTORY_URL", "UPSTREAM_GUARD_UPSTREAMS_INVENTORY_URL=http://127.0.0.1:8081"},
            {"UPSTREAM_GUARD_ROUTES_C_", "UPSTREAM_GUARD_ROUTES_C_PATH=/c/**", "UPSTREAM_GUARD_ROUTES_C_URI=http://127.0.0.1:9"},
        };
        for (String[] c : failing) {
            withEnvironment(plain, java.util.Arrays.copyOfRange(c, 1, c.length)).run(context -> {
                assertThat(context).as(c[0]).hasFailed();
                assertThat(context.getStartupFailure()).as(c[0]).rootCause()
                        .isInstanceOf(InvalidConfigurationPropertyValueException.class).hasMessageContaining(c[0]);
            });
        }
        withEnvironment(plain, "UPSTREAM_GUARD_ROUTES_C_PATH=/c/**", "UPSTREAM_GUARD_ROUTES_C_URI=http://127.0.0.1:9")
                .run(context -> assertThat(context.getStartupFailure()).rootCause()
                        .hasMessageContaining("route 'c'").hasMessageContaining("UPSTREAMGUARD_ROUTES_C_"));
        // The forms Spring Boot binds still start, and bind.
        withEnvironment(plain.withPropertyValues("upstream-guard.upstreams.stock.url=http://127.0.0.1:8082",
                "upstream-guard.upstreams.order-service.url=http://127.0.0.1:8083"),
                "UPSTREAM_GUARD_UPSTREAMS_ORDER_SERVICE_RESPONSE_TIMEOUT=4s",
                "UPSTREAM_GUARD_PROXY_NAME=edge-2", "UPSTREAM_GUARD_DEFAULTS_RESPONSE_TIMEOUT=3s",
                "UPSTREAMGUARD_DEFAULTS_RETRY_MAXATTEMPTS=4", "UPSTREAMGUARD_DEFAULTS_RETRY_STATUSES_0_=503",
                "UPSTREAM_GUARD_DEFAULTS_CIRCUIT_BREAKER_RECORD_STATUSES_0=500",
                "UPSTREAMGUARD_UPSTREAMS_INVENTORY_URL=http://127.0.0.1:8081",
                "UPSTREAMGUARD_UPSTREAMS_INVENTORY_CIRCUITBREAKER_OPENFOR=1m",
                "UPSTREAM_GUARD_UPSTREAMS_STOCK_RETRY_MAX_ATTEMPTS=5",
                "UPSTREAMGUARD_ROUTES_C_PATH=/c/**", "UPSTREAMGUARD_ROUTES_C_URI=http://127.0.0.1:9",
                "UPSTREAMGUARD_ROUTES_C_STRIPPREFIX=1", "UPSTREAMGUARD_ROUTES_C_RETRY_MAXATTEMPTS=2", "OTHER_SETTING=x",
                // Kubernetes' links to a service named upstream-guard, and other variables outside the sections.
                "UPSTREAM_GUARD_SERVICE_HOST=10.0.0.1", "UPSTREAM_GUARD_SERVICE_PORT_HTTP=8080",
                "UPSTREAM_GUARD_PORT=tcp://10.0.0.1:8080", "UPSTREAM_GUARD_PORT_8080_TCP_ADDR=10.0.0.1",
                "UPSTREAM_GUARD_HOME=/opt/upstream-guard").run(context -> {
                    assertThat(context).hasNotFailed();
                    UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
                    assertThat(registry.proxyName()).isEqualTo("edge-2");
                    assertThat(registry.defaults().responseTimeout()).isEqualTo(Duration.ofSeconds(3));
                    assertThat(registry.defaults().retry().maxAttempts()).isEqualTo(4);
                    assertThat(registry.defaults().retry().statuses()).containsExactly(503);
                    assertThat(registry.defaults().circuitBreaker().recordStatuses()).containsExactly(500);
                    assertThat(registry.policy("inventory").circuitBreaker().openFor())
                            .isEqualTo(Duration.ofMinutes(1));
                    assertThat(registry.policy("stock").retry().maxAttempts()).isEqualTo(5);
                    assertThat(registry.policy("order-service").responseTimeout()).isEqualTo(Duration.ofSeconds(4));
                    assertThat(registry.routes()).extracting(UpstreamRegistry.Route::name, UpstreamRegistry.Route::stripPrefix)
                            .containsExactly(org.assertj.core.groups.Tuple.tuple("c", 1));
                    assertThat(registry.routes().get(0).policy().retry().maxAttempts()).isEqualTo(2);
                });
    }

    /** {@code runner} with {@code variables} (NAME=value) as the whole system environment. */
    private static <R extends org.springframework.boot.test.context.runner.AbstractApplicationContextRunner<R, ?, ?>> R
            withEnvironment(R runner, String... variables) {
        Map<String, Object> environment = new java.util.LinkedHashMap<>();
        for (String variable : variables) {
            int equals = variable.indexOf('=');
            environment.put(variable.substring(0, equals), variable.substring(equals + 1));
        }
        return runner.withInitializer(context -> context.getEnvironment().getPropertySources().replace(
                org.springframework.core.env.StandardEnvironment.SYSTEM_ENVIRONMENT_PROPERTY_SOURCE_NAME,
                new org.springframework.core.env.SystemEnvironmentPropertySource(
                        org.springframework.core.env.StandardEnvironment.SYSTEM_ENVIRONMENT_PROPERTY_SOURCE_NAME,
                        environment)));
    }

    @Test
    void theGuardedClientTrustsWhatSpringsHttpClientSslBundleTrusts() throws Exception {
        try (MockWebServer server = TestTls.httpsServer()) {
            server.enqueue(new MockResponse.Builder().body("ok").build());
            server.enqueue(new MockResponse.Builder().body("ok").build());
            String url = "https://localhost:" + server.getPort() + "/x";
            ApplicationContextRunner tls = plain.withConfiguration(AutoConfigurations.of(SslAutoConfiguration.class))
                    .withPropertyValues("spring.ssl.bundle.pem.upstreams.truststore.certificate="
                            + TestTls.rootCertificate().certificatePem());
            tls.withPropertyValues("spring.http.clients.ssl.bundle=upstreams").run(context -> {
                assertThat(context).hasNotFailed();
                String body = context.getBean(GuardedHttpClient.class).execute(new HttpGet(url),
                        r -> EntityUtils.toString(r.getEntity()));
                assertThat(body).isEqualTo("ok");
            });
            // Without the property the JVM's default trust applies, which does not know the made-up root.
            tls.run(context -> assertThatThrownBy(() -> context.getBean(GuardedHttpClient.class)
                    .execute(new HttpGet(url), r -> r.getCode())).isInstanceOfSatisfying(UpstreamException.class,
                            e -> assertThat(e.fault()).isEqualTo(UpstreamFault.TLS_CERTIFICATE_ERROR)));
            tls.withPropertyValues("spring.http.clients.ssl.bundle=nope").run(context -> {
                assertThat(context).hasFailed();
                assertThat(context.getStartupFailure()).hasStackTraceContaining("nope");
            });
        }
    }

    /**
     * Regression: only the bundle's trust and key material was used; its {@code options} (enabled protocols, ciphers)
     * were ignored, so a bundle limited to TLS 1.2 still spoke TLS 1.3 to an upstream.
     */
    @Test
    void theSslBundlesEnabledProtocolsAndCiphersAreTheOnlyOnesOffered() throws Exception {
        try (RawUpstream upstream = RawUpstream.startTls(false, new String[] {"TLSv1.3"}, Behaviours.ok("ok"))) {
            String url = upstream.baseUrl() + "/x";
            ApplicationContextRunner tls = plain.withConfiguration(AutoConfigurations.of(SslAutoConfiguration.class))
                    .withPropertyValues("spring.http.clients.ssl.bundle=upstreams",
                            "spring.ssl.bundle.pem.upstreams.truststore.certificate="
                                    + TestTls.rootCertificate().certificatePem());
            tls.withPropertyValues("spring.ssl.bundle.pem.upstreams.options.enabled-protocols=TLSv1.3").run(context -> {
                assertThat(context).hasNotFailed();
                String body = context.getBean(GuardedHttpClient.class).execute(new HttpGet(url),
                        r -> EntityUtils.toString(r.getEntity()));
                assertThat(body).isEqualTo("ok");
            });
            tls.withPropertyValues("spring.ssl.bundle.pem.upstreams.options.enabled-protocols=TLSv1.2").run(
                    context -> assertThatThrownBy(() -> context.getBean(GuardedHttpClient.class)
                            .execute(new HttpGet(url), r -> r.getCode()))
                            .isInstanceOfSatisfying(UpstreamException.class, e -> assertThat(e.fault())
                                    .isIn(UpstreamFault.TLS_ALERT_RECEIVED, UpstreamFault.TLS_PROTOCOL_ERROR)));
            // A TLS 1.3 suite the upstream speaks, then one it does not (TLS 1.3 has a fixed, small set).
            tls.withPropertyValues("spring.ssl.bundle.pem.upstreams.options.ciphers=TLS_AES_128_GCM_SHA256").run(
                    context -> {
                        int status = context.getBean(GuardedHttpClient.class).execute(new HttpGet(url),
                                r -> r.getCode());
                        assertThat(status).isEqualTo(200);
                    });
            tls.withPropertyValues("spring.ssl.bundle.pem.upstreams.options.ciphers="
                    + "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256").run(
                    context -> assertThatThrownBy(() -> context.getBean(GuardedHttpClient.class)
                            .execute(new HttpGet(url), r -> r.getCode())).isInstanceOf(UpstreamException.class));
        }
    }

    /**
     * Regression: {@code requestFactory(...)} on the context's {@code RestClient.Builder} after Upstream Guard set its
     * own took the client out of the guard without a word. It still wins (explicit settings do in Spring Boot), but one
     * warning per address says so. A {@code RestTemplate} from the context's builder keeps the guard, whatever factory
     * the builder was given: Spring Boot applies the customizers last.
     */
    @Test
    @org.junit.jupiter.api.extension.ExtendWith(org.springframework.boot.test.system.OutputCaptureExtension.class)
    void aRestClientGivenAnotherRequestFactoryWarnsOncePerAddressThatItIsNotGuarded(
            org.springframework.boot.test.system.CapturedOutput output) throws Exception {
        String warning = "A RestClient built from the application context's RestClient.Builder called ";
        try (RawUpstream own = RawUpstream.start(Behaviours.ok("ok"));
                RawUpstream guarded = RawUpstream.start(Behaviours.ok("ok"))) {
            plain.run(context -> {
                RestClient.Builder builder = context.getBean(RestClient.Builder.class);
                RestClient unguarded = builder.clone()
                        .requestFactory(new org.springframework.http.client.SimpleClientHttpRequestFactory()).build();
                assertThat(unguarded.get().uri(own.baseUrl() + "/a").retrieve().body(String.class)).isEqualTo("ok");
                assertThat(unguarded.get().uri(own.baseUrl() + "/b").retrieve().body(String.class)).isEqualTo("ok");
                assertThat(builder.build().get().uri(guarded.baseUrl() + "/a").retrieve().body(String.class))
                        .isEqualTo("ok");
                assertThat(context.getBean(RestTemplateBuilder.class)
                        .requestFactory(org.springframework.http.client.SimpleClientHttpRequestFactory.class).build()
                        .getRequestFactory()).isInstanceOf(GuardedClientHttpRequestFactory.class);
            });
            assertThat(output.getOut()).containsOnlyOnce(warning + own.baseUrl() + " without Upstream Guard")
                    .doesNotContain(warning + guarded.baseUrl());
        }
    }

    @Test
    void bindsTheGuardedClientToTheApplicationsMeterRegistry() {
        plain.withUserConfiguration(MeterRegistryConfiguration.class)
                .withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081").run(context -> {
                    MeterRegistry registry = context.getBean(MeterRegistry.class);
                    assertThat(registry.getMeters()).isNotEmpty();
                    assertThat(registry.getMeters()).anySatisfy(
                            m -> assertThat(m.getId().getTag("name")).isEqualTo("inventory"));
                });
    }

    @Test
    void everyBeanBacksOffWhenTheApplicationDefinesItsOwn() {
        web.withUserConfiguration(OwnBeans.class)
                .withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9")
                .run(context -> {
                    assertThat(context).hasNotFailed();
                    assertThat(context.getBean(UpstreamRegistry.class)).isSameAs(OwnBeans.REGISTRY);
                    assertThat(context.getBean(GuardedHttpClient.class)).isSameAs(OwnBeans.CLIENT);
                    assertThat(context.getBean(UpstreamPolicyResolver.class)).isSameAs(OwnBeans.RESOLVER);
                    assertThat(context).getBean(UpstreamPolicyValidator.class).isSameAs(context.getBean("ownValidator"));
                    assertThat(context).getBean(GuardedClientHttpRequestFactory.class)
                            .isSameAs(context.getBean("ownFactory"));
                    assertThat(context).getBean(FaultResponseWriter.class).isSameAs(context.getBean("ownWriter"));
                    assertThat(context).getBean(UpstreamExceptionHandler.class).isSameAs(context.getBean("ownHandler"));
                    assertThat(context).getBean(UpstreamsEndpoint.class).isSameAs(context.getBean("ownEndpoint"));
                    assertThat(context).getBean(UpstreamRouteRegistrar.class).isSameAs(context.getBean("ownRegistrar"));
                    assertThat(context.getBean("upstreamGuardRestClientCustomizer")).isSameAs(OwnBeans.REST_CLIENT);
                    assertThat(context.getBean("upstreamGuardRestTemplateCustomizer")).isSameAs(OwnBeans.REST_TEMPLATE);
                    assertThat(context.getBean("upstreamPolicyHttpExchangeProcessor")).isSameAs(OwnBeans.PROCESSOR);
                    assertThat(context.getBean("upstreamGuardHttpServiceGroupConfigurer")).isSameAs(OwnBeans.GROUPS);
                    assertThat(context.getBean("upstreamPolicyWebMvcConfigurer")).isSameAs(OwnBeans.MVC);
                    assertThat(context.getBean("upstreamsHealthContributor")).isSameAs(OwnBeans.HEALTH);
                    assertThat(context.getBeansOfType(FilterRegistrationBean.class)).containsOnlyKeys("ownFilter");
                    assertThat(context.getBean("upstreamGuardRoute.c")).isSameAs(OwnBeans.ROUTE);
                });
    }

    /**
     * Regression: with a {@code GuardedHttpClient} bean of the application's own that does not know a route's upstream,
     * start-up failed as the container initialized the route's servlet, with the client's bare "No upstream named 'c';
     * known: []", naming neither the route nor what to do.
     */
    @Test
    void aRouteWhoseUpstreamTheApplicationsOwnClientDoesNotKnowFailsStartUpNamingTheRouteAndTheRemedy() {
        web.withBean(GuardedHttpClient.class, GuardedHttpClients::createDefault)
                .withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9")
                .run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).rootCause()
                            .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                            .hasMessageContaining("upstream-guard.routes.c").hasMessageContaining("'c'")
                            .hasMessageContaining("GuardedHttpClientCustomizer");
                });
        // A client of the application's own that knows the upstream serves the route.
        web.withBean(GuardedHttpClient.class,
                () -> GuardedHttpClients.custom().upstream("c", "http://127.0.0.1:9").build())
                .withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9")
                .run(context -> assertThat(context).hasNotFailed());
    }

    @Test
    void springBootsFormContentFilterIsReplacedByOneThatSkipsRoutesUnlessTheApplicationHasItsOwn() {
        WebApplicationContextRunner mvc = web.withConfiguration(AutoConfigurations.of(WebMvcAutoConfiguration.class));
        mvc.run(context -> assertThat(context).getBean("formContentFilter")
                .isInstanceOf(RouteSkippingFormContentFilter.class));
        mvc.withBean("myFormContentFilter", FormContentFilter.class, FormContentFilter::new)
                .run(context -> assertThat(context).getBeans(FormContentFilter.class).containsOnlyKeys("myFormContentFilter"));
        mvc.withPropertyValues("spring.mvc.formcontent.filter.enabled=false")
                .run(context -> assertThat(context).doesNotHaveBean(FormContentFilter.class));
    }

    /**
     * Regression: the library's resolver for scoped fault advice was itself an {@code ExceptionHandlerExceptionResolver}
     * ahead of Spring's, so a configurer looking for Spring's (the first such in the list) found the library's.
     */
    @Test
    void aConfigurerLookingForSpringsExceptionHandlerResolverFindsSpringsOwn() {
        web.withConfiguration(AutoConfigurations.of(WebMvcAutoConfiguration.class, LateResolverConfigurer.class))
                .run(context -> {
                    assertThat(context).hasNotFailed();
                    assertThat(context.getBean(LateResolverConfigurer.class).first)
                            .isExactlyInstanceOf(ExceptionHandlerExceptionResolver.class);
                });
    }

    /**
     * Regression: an {@code ExceptionHandlerExceptionResolver} the application added ahead of Spring's without
     * initialising it failed start-up with a NullPointerException in the library's configurer.
     */
    @Test
    void anUninitialisedExceptionHandlerResolverAheadOfSpringsDoesNotStopStartUp() {
        web.withConfiguration(AutoConfigurations.of(WebMvcAutoConfiguration.class))
                .withUserConfiguration(EarlyUninitialisedResolver.class)
                .run(context -> {
                    assertThat(context).hasNotFailed();
                    assertThat(context.getBean("handlerExceptionResolver", HandlerExceptionResolverComposite.class)
                            .getExceptionResolvers()).hasAtLeastOneElementOfType(FaultAdviceDeferral.class);
                });
    }

    /** Another library's auto-configuration, run after the guard's, with a configurer looking for Spring's resolver. */
    @AutoConfiguration(after = UpstreamGuardAutoConfiguration.class)
    static class LateResolverConfigurer {
        HandlerExceptionResolver first;

        @Bean
        WebMvcConfigurer lateResolverLookup() {
            return new WebMvcConfigurer() {
                @Override
                public void extendHandlerExceptionResolvers(List<HandlerExceptionResolver> resolvers) {
                    first = resolvers.stream().filter(ExceptionHandlerExceptionResolver.class::isInstance).findFirst()
                            .orElse(null);
                }
            };
        }
    }

    @Configuration(proxyBeanMethods = false)
    static class EarlyUninitialisedResolver {
        @Bean
        @Order(Ordered.HIGHEST_PRECEDENCE)
        WebMvcConfigurer earlyResolver() {
            return new WebMvcConfigurer() {
                @Override
                public void extendHandlerExceptionResolvers(List<HandlerExceptionResolver> resolvers) {
                    resolvers.add(0, new ExceptionHandlerExceptionResolver());
                }
            };
        }
    }

    @Test
    void aRouteRegistrationOfTheSameNameReplacesTheAutoConfiguredOne() {
        web.withUserConfiguration(OwnRoute.class)
                .withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9")
                .run(context -> {
                    assertThat(context).hasNotFailed();
                    assertThat(context.getBean("upstreamGuardRoute.c")).isSameAs(OwnBeans.ROUTE);
                });
    }

    @Test
    void enabledFalseSwitchesEverythingOffAndReadsNoOtherValue() {
        web.withConfiguration(AutoConfigurations.of(WebMvcAutoConfiguration.class))
                .withPropertyValues("upstream-guard.enabled=false", "upstream-guard.defaults.response-timeout=-1s",
                        "upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9")
                .run(context -> {
                    assertThat(context).hasNotFailed().doesNotHaveBean(UpstreamRegistry.class)
                            .doesNotHaveBean(GuardedHttpClient.class).doesNotHaveBean("upstreamFaultFilter")
                            .doesNotHaveBean("upstreamGuardRoute.c").doesNotHaveBean(UpstreamExceptionHandler.class)
                            .doesNotHaveBean(UpstreamsEndpoint.class).doesNotHaveBean(UpstreamsHealthContributor.class)
                            .doesNotHaveBean("upstreamGuardRestClientCustomizer");
                    assertThat(context.getBean("formContentFilter"))
                            .isNotInstanceOf(RouteSkippingFormContentFilter.class);
                    assertThat(context.getBean(ClientHttpRequestFactory.class))
                            .isNotInstanceOf(GuardedClientHttpRequestFactory.class);
                });
        plain.withPropertyValues("upstream-guard.enabled=true")
                .run(context -> assertThat(context).hasNotFailed().hasSingleBean(GuardedHttpClient.class));
    }

    /**
     * Regression: any value of {@code upstream-guard.enabled} but "true" switched the guard off without a word, an
     * empty one (an unset {@code ${GUARD_ENABLED:}}) and a typo included, and with it every check of the other values.
     */
    @Test
    void anEnabledValueThatIsNotABooleanFailsStartUpNamingIt() {
        for (String value : new String[] {"", "maybe", "ture"}) {
            plain.withPropertyValues("upstream-guard.enabled=" + value).run(context -> {
                assertThat(context).as(value).hasFailed();
                assertThat(context.getStartupFailure()).as(value).rootCause()
                        .isInstanceOf(InvalidConfigurationPropertyValueException.class)
                        .hasMessageContaining("upstream-guard.enabled").hasMessageContaining("'" + value + "'");
            });
        }
        // Spring's other spellings of a boolean read as they do everywhere.
        plain.withPropertyValues("upstream-guard.enabled=yes")
                .run(context -> assertThat(context).hasNotFailed().hasSingleBean(GuardedHttpClient.class));
        plain.withPropertyValues("upstream-guard.enabled=off")
                .run(context -> assertThat(context).hasNotFailed().doesNotHaveBean(GuardedHttpClient.class));
    }

    @Test
    void aNonWebApplicationGetsTheClientButNoFilterServletOrMvcBeans() {
        plain.withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9")
                .run(context -> {
                    assertThat(context).hasNotFailed().hasSingleBean(GuardedHttpClient.class)
                            .hasBean("upstreamGuardRestClientCustomizer").doesNotHaveBean("upstreamFaultFilter")
                            .doesNotHaveBean(UpstreamExceptionHandler.class).doesNotHaveBean(UpstreamRouteRegistrar.class)
                            .doesNotHaveBean("upstreamGuardRoute.c").doesNotHaveBean("upstreamPolicyWebMvcConfigurer");
                });
    }

    @Test
    void withoutActuatorThereIsNoEndpointAndNoHealth() {
        web.withClassLoader(new FilteredClassLoader(Endpoint.class, HealthIndicator.class)).run(context -> {
            assertThat(context).hasNotFailed().hasSingleBean(GuardedHttpClient.class)
                    .doesNotHaveBean(UpstreamsEndpoint.class).doesNotHaveBean(UpstreamsHealthContributor.class);
        });
    }

    @Test
    void withoutMicrometerTheClientIsBuiltWithoutAMeterRegistry() {
        web.withClassLoader(new FilteredClassLoader("io.micrometer")).run(context -> {
            assertThat(context).hasNotFailed().hasSingleBean(GuardedHttpClient.class)
                    .doesNotHaveBean(MeterRegistry.class).hasBean("upstreamFaultFilter");
        });
    }

    @Test
    void withoutRestClientTheOtherBeansStillWork() {
        web.withClassLoader(new FilteredClassLoader(RestClient.class, RestClientCustomizer.class,
                RestClientHttpServiceGroupConfigurer.class)).run(context -> {
                    assertThat(context).hasNotFailed().hasSingleBean(GuardedHttpClient.class)
                            .doesNotHaveBean("upstreamGuardRestClientCustomizer")
                            .doesNotHaveBean("upstreamGuardHttpServiceGroupConfigurer")
                            .hasBean("upstreamGuardRestTemplateCustomizer").hasBean("upstreamFaultFilter");
                });
    }

    @Test
    void withoutRestTemplateBuilderThereIsNoRestTemplateCustomizer() {
        web.withClassLoader(new FilteredClassLoader(RestTemplateBuilder.class, RestTemplateCustomizer.class))
                .run(context -> assertThat(context).hasNotFailed().doesNotHaveBean("upstreamGuardRestTemplateCustomizer")
                        .hasBean("upstreamGuardRestClientCustomizer"));
    }

    @Test
    void withoutSpringMvcTheFilterAndRoutesRemainButNoMvcBeans() {
        web.withClassLoader(new FilteredClassLoader(DispatcherServlet.class))
                .withPropertyValues("upstream-guard.routes.c.path=/c/**", "upstream-guard.routes.c.uri=http://127.0.0.1:9")
                .run(context -> assertThat(context).hasNotFailed().hasBean("upstreamFaultFilter")
                        .hasBean("upstreamGuardRoute.c").doesNotHaveBean(UpstreamExceptionHandler.class)
                        .doesNotHaveBean("upstreamPolicyWebMvcConfigurer"));
    }

    @Test
    void withoutHttpComponentsFactoryNoSpringClientIsGuarded() {
        web.withClassLoader(new FilteredClassLoader(org.springframework.http.client.HttpComponentsClientHttpRequestFactory.class))
                .run(context -> assertThat(context).hasNotFailed().hasSingleBean(GuardedHttpClient.class)
                        .doesNotHaveBean(GuardedClientHttpRequestFactory.class)
                        .doesNotHaveBean("upstreamGuardRestClientCustomizer"));
    }

    @Test
    void theHealthContributorCanBeSwitchedOff() {
        web.withPropertyValues("management.health.upstreams.enabled=false")
                .run(context -> assertThat(context).hasNotFailed().doesNotHaveBean(UpstreamsHealthContributor.class));
    }

    @Test
    void theEndpointIsOnlyThereWhenExposed() {
        new WebApplicationContextRunner().withConfiguration(AUTO_CONFIGURATIONS)
                .run(context -> assertThat(context).hasNotFailed().doesNotHaveBean(UpstreamsEndpoint.class)
                        .hasSingleBean(UpstreamsHealthContributor.class));
    }

    @Test
    void theHealthContributorHasOneIndicatorPerUpstream() {
        web.withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081",
                "upstream-guard.upstreams.orders.url=http://127.0.0.1:8082", "upstream-guard.routes.c.path=/c/**",
                "upstream-guard.routes.c.uri=http://127.0.0.1:9000").run(context -> {
                    CompositeHealthContributor health = context.getBean(UpstreamsHealthContributor.class);
                    assertThat(health.stream().map(e -> e.name()))
                            .containsExactly("c", "inventory", "orders");
                    UpstreamsEndpoint endpoint = context.getBean(UpstreamsEndpoint.class);
                    assertThat(endpoint.upstream("c").name()).isEqualTo("c");
                    assertThat(endpoint.upstream("inventory").circuitState()).isEqualTo("CLOSED");
                    assertThat(endpoint.upstream("nope")).isNull();
                    assertThat(((HealthIndicator) health.getContributor("inventory")).health().getStatus().getCode())
                            .isEqualTo("UP");
                });
    }

    /**
     * Regression: health names replace the characters a URL path cannot carry, so {@code a b}, {@code a+b} and
     * {@code a-b} were all {@code a-b}: health showed one of them, and an open circuit of the others was invisible.
     * A name that needs no change keeps it; the others get the next free number.
     */
    @Test
    void upstreamsWhoseNamesReadAlikeInHealthAreEachReportedUnderANameOfTheirOwn() {
        web.withPropertyValues("upstream-guard.upstreams.[a b].url=http://127.0.0.1:8081",
                "upstream-guard.upstreams.[a+b].url=http://127.0.0.1:8082",
                "upstream-guard.upstreams.a-b.url=http://127.0.0.1:8083").run(context -> {
                    CompositeHealthContributor health = context.getBean(UpstreamsHealthContributor.class);
                    assertThat(health.stream().map(e -> e.name())).containsExactly("a-b", "a-b-2", "a-b-3");
                    assertThat(health.stream().map(e -> ((HealthIndicator) e.contributor()).health().getDetails()
                            .get("upstream"))).containsExactly("a-b", "a b", "a+b");
                    UpstreamsEndpoint endpoint = context.getBean(UpstreamsEndpoint.class);
                    assertThat(endpoint.upstream("a-b").name()).isEqualTo("a-b");
                    assertThat(endpoint.upstream("a-b-2").name()).isEqualTo("a b");
                    assertThat(endpoint.upstream("a+b").name()).isEqualTo("a+b");
                    assertThat(endpoint.upstream("a-b-4")).isNull();
                });
    }

    @Test
    void theAdditionalMetadataDefaultsAreTheLibraryDefaults() throws Exception {
        Map<String, String> documented = new java.util.TreeMap<>();
        try (var in = getClass().getResourceAsStream("/META-INF/additional-spring-configuration-metadata.json")) {
            Object parsed = org.springframework.boot.json.JsonParserFactory.getJsonParser()
                    .parseMap(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8)).get("properties");
            for (Object o : (java.util.List<?>) parsed) {
                Map<?, ?> p = (Map<?, ?>) o;
                String name = (String) p.get("name");
                if (name.startsWith("upstream-guard.defaults.")) {
                    Object v = p.get("defaultValue");
                    String value = v instanceof java.util.List ? String.join(",",
                            ((java.util.List<?>) v).stream().map(String::valueOf).toList()) : String.valueOf(v);
                    documented.put(name.substring("upstream-guard.defaults.".length()), value);
                }
            }
        }
        Map<String, String> library = new java.util.TreeMap<>(GuardPolicy.ofDefaults().asProperties());
        library.replaceAll(UpstreamGuardAutoConfigurationTest::normalize);
        documented.replaceAll(UpstreamGuardAutoConfigurationTest::normalize);
        assertThat(documented).isEqualTo(library);
    }

    @Test
    void theReadmesYamlBindsAsWrittenAndItsDefaultsAreTheLibraryDefaults() throws Exception {
        String readme = java.nio.file.Files.readString(java.nio.file.Path.of("../README.md"));
        int start = readme.indexOf("```yaml\n", readme.indexOf("## Spring Boot")) + "```yaml\n".length();
        String yaml = readme.substring(start, readme.indexOf("```", start));
        java.util.List<org.springframework.core.env.PropertySource<?>> sources =
                new org.springframework.boot.env.YamlPropertySourceLoader().load("README.md",
                        new org.springframework.core.io.ByteArrayResource(yaml.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        Map<String, Object> properties = new java.util.LinkedHashMap<>();
        for (String name : ((org.springframework.core.env.EnumerablePropertySource<?>) sources.get(0)).getPropertyNames()) {
            properties.put(name, String.valueOf(sources.get(0).getProperty(name)));
        }
        plain.withPropertyValues(properties.entrySet().stream().map(e -> e.getKey() + "=" + e.getValue())
                .toArray(String[]::new)).run(context -> {
                    assertThat(context).hasNotFailed();
                    UpstreamRegistry registry = context.getBean(UpstreamRegistry.class);
                    assertThat(registry.defaults()).isEqualTo(GuardPolicy.ofDefaults());
                    assertThat(registry.proxyName()).isEqualTo("edge-1");
                    assertThat(registry.routes()).extracting(UpstreamRegistry.Route::target)
                            .containsExactly(URI.create("http://inventory:8080"), URI.create("http://status:9000/status"));
                    assertThat(registry.routes().get(1).policy().responseTimeout()).isEqualTo(Duration.ofSeconds(1));
                });
        // The "Policy settings" table: "| `key` | default |", or "| `a` / `b` | x / y |" for two settings.
        Map<String, String> documented = new java.util.TreeMap<>();
        String table = readme.substring(readme.indexOf("## Policy settings"), readme.indexOf("## Metrics"));
        java.util.regex.Matcher row = java.util.regex.Pattern.compile("(?m)^\\| (`[^|]+`) \\| ([^|]+) \\|").matcher(table);
        while (row.find()) {
            String[] keys = row.group(1).split(" / ");
            String[] values = row.group(2).trim().split(" / ");
            for (int i = 0; i < keys.length; i++) {
                documented.put(keys[i].replace("`", ""), values[i].trim());
            }
        }
        Map<String, String> library = new java.util.TreeMap<>(GuardPolicy.ofDefaults().asProperties());
        library.replaceAll(UpstreamGuardAutoConfigurationTest::normalize);
        documented.replaceAll(UpstreamGuardAutoConfigurationTest::normalize);
        assertThat(documented).isEqualTo(library);
    }

    /** Sorts status lists and drops a trailing ".0", so that equal settings compare equal. */
    private static String normalize(String key, String value) {
        if (value.contains(",")) {
            return String.join(",", new java.util.TreeSet<>(java.util.Arrays.asList(value.split(","))));
        }
        return value.endsWith(".0") ? value.substring(0, value.length() - 2) : value;
    }

    @Configuration(proxyBeanMethods = false)
    static class MeterRegistryConfiguration {
        @Bean
        MeterRegistry meterRegistry() {
            return new SimpleMeterRegistry();
        }
    }

    @Configuration(proxyBeanMethods = false)
    static class OwnRoute {
        @Bean(name = "upstreamGuardRoute.c")
        ServletRegistrationBean<UpstreamProxyServlet> ownRoute() {
            return OwnBeans.ROUTE;
        }
    }

    @Configuration(proxyBeanMethods = false)
    static class OwnBeans {
        static final UpstreamRegistry REGISTRY = UpstreamRegistry.from(routeProperties());
        static final GuardedHttpClient CLIENT = GuardedHttpClients.custom()
                .upstream("http://127.0.0.1:9", "http://127.0.0.1:9").build();
        static final UpstreamPolicyResolver RESOLVER = new UpstreamPolicyResolver(REGISTRY, null);
        static final RestClientCustomizer REST_CLIENT = b -> { };
        static final RestTemplateCustomizer REST_TEMPLATE = t -> { };
        static final HttpRequestValues.Processor PROCESSOR = (m, p, a, b) -> { };
        static final RestClientHttpServiceGroupConfigurer GROUPS = g -> { };
        static final WebMvcConfigurer MVC = new WebMvcConfigurer() { };
        static final CompositeHealthContributor HEALTH = CompositeHealthContributor.fromMap(Map.of());
        static final ServletRegistrationBean<UpstreamProxyServlet> ROUTE = new ServletRegistrationBean<>(
                UpstreamProxyServlet.builder("http://127.0.0.1:9").build(), "/own/*");

        private static UpstreamGuardProperties routeProperties() {
            UpstreamGuardProperties p = new UpstreamGuardProperties();
            UpstreamGuardProperties.Route route = new UpstreamGuardProperties.Route();
            route.setPath("/c/**");
            route.setUri("http://127.0.0.1:9");
            p.getRoutes().put("c", route);
            return p;
        }

        @Bean
        UpstreamRegistry ownRegistry() {
            return REGISTRY;
        }

        @Bean
        GuardedHttpClient ownClient() {
            return CLIENT;
        }

        @Bean
        UpstreamPolicyResolver ownResolver() {
            return RESOLVER;
        }

        @Bean
        UpstreamPolicyValidator ownValidator(org.springframework.beans.factory.config.ConfigurableListableBeanFactory bf) {
            return new UpstreamPolicyValidator(bf, RESOLVER);
        }

        @Bean
        GuardedClientHttpRequestFactory ownFactory() {
            return new GuardedClientHttpRequestFactory(CLIENT, RESOLVER);
        }

        @Bean
        FaultResponseWriter ownWriter() {
            return new FaultResponseWriter("own", false, null);
        }

        @Bean
        UpstreamExceptionHandler ownHandler() {
            return new UpstreamExceptionHandler(new FaultResponseWriter("own", false, null));
        }

        @Bean
        UpstreamsEndpoint ownEndpoint() {
            return new UpstreamsEndpoint(CLIENT);
        }

        @Bean
        static UpstreamRouteRegistrar ownRegistrar() {
            return new UpstreamRouteRegistrar();
        }

        @Bean(name = "upstreamGuardRoute.c")
        ServletRegistrationBean<UpstreamProxyServlet> ownRoute() {
            return ROUTE;
        }

        @Bean
        FilterRegistrationBean<UpstreamFaultFilter> ownFilter() {
            return new FilterRegistrationBean<>(UpstreamFaultFilter.builder().build());
        }

        @Bean
        RestClientCustomizer upstreamGuardRestClientCustomizer() {
            return REST_CLIENT;
        }

        @Bean
        RestTemplateCustomizer upstreamGuardRestTemplateCustomizer() {
            return REST_TEMPLATE;
        }

        @Bean
        HttpRequestValues.Processor upstreamPolicyHttpExchangeProcessor() {
            return PROCESSOR;
        }

        @Bean
        RestClientHttpServiceGroupConfigurer upstreamGuardHttpServiceGroupConfigurer() {
            return GROUPS;
        }

        @Bean
        WebMvcConfigurer upstreamPolicyWebMvcConfigurer() {
            return MVC;
        }

        @Bean
        CompositeHealthContributor upstreamsHealthContributor() {
            return HEALTH;
        }
    }
}
