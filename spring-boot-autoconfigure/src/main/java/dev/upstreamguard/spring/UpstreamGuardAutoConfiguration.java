package dev.upstreamguard.spring;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClientBuilder;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.gateway.UpstreamFaultFilter;
import dev.upstreamguard.gateway.UpstreamProxyServlet;
import dev.upstreamguard.gateway.internal.FaultResponseWriter;
import dev.upstreamguard.spring.internal.AsyncUpstreamCalls;
import dev.upstreamguard.spring.internal.CallablePolicyInterceptor;
import dev.upstreamguard.spring.internal.EnvironmentVariableCheck;
import dev.upstreamguard.spring.internal.ExchangePolicyProcessor;
import dev.upstreamguard.spring.internal.FaultAdviceDeferral;
import dev.upstreamguard.spring.internal.GuardBypassCheck;
import dev.upstreamguard.spring.internal.InboundPolicyInterceptor;
import dev.upstreamguard.spring.internal.OnUpstreamGuardEnabled;
import dev.upstreamguard.spring.internal.RouteSkippingFormContentFilter;
import dev.upstreamguard.spring.internal.UpstreamPolicyResolver;
import dev.upstreamguard.spring.internal.UpstreamPolicyValidator;
import dev.upstreamguard.spring.internal.UpstreamRouteRegistrar;
import io.micrometer.core.instrument.MeterRegistry;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import jakarta.servlet.http.HttpServletResponse;
import java.util.List;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.beans.factory.annotation.Qualifier;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnBooleanProperty;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingFilterBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnWebApplication;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.boot.context.properties.source.InvalidConfigurationPropertyValueException;
import org.springframework.boot.restclient.RestClientCustomizer;
import org.springframework.boot.restclient.RestTemplateCustomizer;
import org.springframework.boot.servlet.filter.OrderedFormContentFilter;
import org.springframework.boot.ssl.SslBundle;
import org.springframework.boot.ssl.SslBundles;
import org.springframework.boot.ssl.SslOptions;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.boot.web.servlet.support.ErrorPageFilter;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Conditional;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.Ordered;
import org.springframework.core.env.Environment;
import org.springframework.http.client.HttpComponentsClientHttpRequestFactory;
import org.springframework.web.client.support.RestClientHttpServiceGroupConfigurer;
import org.springframework.web.filter.FormContentFilter;
import org.springframework.web.service.invoker.HttpRequestValues;
import org.springframework.web.servlet.DispatcherServlet;
import org.springframework.web.servlet.HandlerExceptionResolver;
import org.springframework.web.servlet.config.annotation.AsyncSupportConfigurer;
import org.springframework.web.servlet.config.annotation.InterceptorRegistry;
import org.springframework.web.servlet.config.annotation.WebMvcConfigurationSupport;
import org.springframework.web.servlet.config.annotation.WebMvcConfigurer;

/**
 * Auto-configuration of Upstream Guard: the {@link UpstreamRegistry} built from {@code upstream-guard.*}, the shared
 * {@link GuardedHttpClient} (metered in the application's {@link MeterRegistry}), guarded {@code RestClient.Builder}s and
 * {@code RestTemplateBuilder}s, {@link UpstreamPolicy} for controllers and {@code @HttpExchange} clients, and in a
 * servlet web application the {@link UpstreamFaultFilter} (first in the chain but for Spring Boot's observation
 * filter), one proxy servlet per route and a
 * {@link UpstreamExceptionHandler} for Spring MVC. Every bean backs off when the application defines its own;
 * {@code upstream-guard.enabled=false} switches it all off.
 */
@AutoConfiguration(afterName = {
        "org.springframework.boot.micrometer.metrics.autoconfigure.MetricsAutoConfiguration",
        "org.springframework.boot.micrometer.metrics.autoconfigure.CompositeMeterRegistryAutoConfiguration",
        "org.springframework.boot.autoconfigure.ssl.SslAutoConfiguration"},
        beforeName = {
        "org.springframework.boot.http.client.autoconfigure.imperative.ImperativeHttpClientAutoConfiguration",
        "org.springframework.boot.restclient.autoconfigure.RestClientAutoConfiguration",
        "org.springframework.boot.restclient.autoconfigure.RestTemplateAutoConfiguration",
        "org.springframework.boot.webmvc.autoconfigure.WebMvcAutoConfiguration"})
@ConditionalOnClass(GuardedHttpClient.class)
@Conditional(OnUpstreamGuardEnabled.class)
@EnableConfigurationProperties(UpstreamGuardProperties.class)
public final class UpstreamGuardAutoConfiguration {

    @Bean
    @ConditionalOnMissingBean
    UpstreamRegistry upstreamRegistry(UpstreamGuardProperties properties, Environment environment) {
        // Spring Boot leaves environment variables out of its check for unknown keys: a misspelt one, or an upstream or
        // route declared with the prefix spelt UPSTREAM_GUARD_, would be silently ignored.
        EnvironmentVariableCheck.check(environment, properties);
        return UpstreamRegistry.from(properties);
    }

    /** Spring Boot's SSL bundle for its HTTP clients, which the guarded client stands in for. */
    static final String SSL_BUNDLE_PROPERTY = "spring.http.clients.ssl.bundle";

    @Bean
    @ConditionalOnMissingBean
    GuardedHttpClient guardedHttpClient(UpstreamRegistry registry, ObjectProvider<MeterRegistry> meterRegistry,
            ObjectProvider<GuardedHttpClientCustomizer> customizers, ObjectProvider<SslBundles> sslBundles,
            Environment environment) {
        // One client for the application's calls and the proxy routes, so that an upstream has one circuit breaker,
        // bulkhead and retry budget. Proxies must pass content codings and redirects through untouched.
        GuardedHttpClientBuilder builder = GuardedHttpClients.custom().defaults(registry.defaults())
                .contentCompression(false).redirects(false);
        registry.upstreams().values()
                .forEach(u -> builder.upstream(u.name(), u.url().toString(), u.policy()));
        registry.routeUpstreams().values()
                .forEach(u -> builder.upstream(u.name(), u.url().toString(), u.policy()));
        meterRegistry.ifAvailable(builder::meterRegistry);
        String bundle = environment.getProperty(SSL_BUNDLE_PROPERTY);
        if (bundle != null && !bundle.isBlank()) {
            // The trust and key material the application gave Spring's clients: ignoring it would turn every call to
            // an upstream with a private CA, or one asking for a client certificate, into a TLS fault.
            SslBundles bundles = sslBundles.getIfAvailable();
            if (bundles == null) {
                throw new InvalidConfigurationPropertyValueException(SSL_BUNDLE_PROPERTY, bundle,
                        "no SslBundles bean is available to look the bundle up in");
            }
            SslBundle ssl = bundles.getBundle(bundle.trim());
            builder.sslContext(ssl.createSslContext());
            SslOptions options = ssl.getOptions();
            if (options != null && options.isSpecified()) {
                // A bundle limited to TLS 1.3, or to approved cipher suites, is a policy: offer only what it names.
                builder.tlsOptions(options.getEnabledProtocols(), options.getCiphers());
            }
        }
        customizers.orderedStream().forEach(c -> c.customize(builder));
        return builder.build();
    }

    @Bean
    @ConditionalOnMissingBean
    UpstreamPolicyResolver upstreamPolicyResolver(UpstreamRegistry registry, Environment environment) {
        return new UpstreamPolicyResolver(registry, environment);
    }

    @Bean
    @ConditionalOnMissingBean
    UpstreamPolicyValidator upstreamPolicyValidator(ConfigurableListableBeanFactory beanFactory,
            UpstreamPolicyResolver resolver) {
        return new UpstreamPolicyValidator(beanFactory, resolver);
    }

    /** Spring's HTTP clients over the guarded client. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass(HttpComponentsClientHttpRequestFactory.class)
    static class ClientConfiguration {

        @Bean
        @ConditionalOnMissingBean
        GuardedClientHttpRequestFactory guardedClientHttpRequestFactory(GuardedHttpClient client,
                UpstreamPolicyResolver resolver) {
            return new GuardedClientHttpRequestFactory(client, resolver);
        }
    }

    /**
     * Every {@code RestClient.Builder} of the context uses the guarded client and honours {@code @UpstreamPolicy}; a
     * client whose builder was given another request factory afterwards warns once per address it calls.
     */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass({HttpComponentsClientHttpRequestFactory.class, RestClientCustomizer.class})
    static class RestClientConfiguration {

        @Bean
        @ConditionalOnMissingBean(name = "upstreamGuardRestClientCustomizer")
        RestClientCustomizer upstreamGuardRestClientCustomizer(GuardedClientHttpRequestFactory requestFactory) {
            // The application's own requestFactory(...) on the builder wins, as explicit settings do in Spring Boot;
            // the check makes the loss of the guard visible instead of silent. No interceptor of ours: any would make
            // the client buffer every request body.
            GuardBypassCheck bypassCheck = new GuardBypassCheck();
            return builder -> builder.requestFactory(requestFactory).requestInitializer(bypassCheck);
        }
    }

    /** Every {@code RestTemplate} built by the context's {@code RestTemplateBuilder} uses the guarded client. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass({HttpComponentsClientHttpRequestFactory.class, RestTemplateCustomizer.class})
    static class RestTemplateConfiguration {

        @Bean
        @ConditionalOnMissingBean(name = "upstreamGuardRestTemplateCustomizer")
        RestTemplateCustomizer upstreamGuardRestTemplateCustomizer(GuardedClientHttpRequestFactory requestFactory) {
            return restTemplate -> restTemplate.setRequestFactory(requestFactory);
        }
    }

    /** {@code @UpstreamPolicy} on {@code @HttpExchange} interfaces. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass(HttpRequestValues.class)
    static class HttpExchangeConfiguration {

        /** Add it to a hand-built {@code HttpServiceProxyFactory} with {@code httpRequestValuesProcessor(...)}. */
        @Bean
        @ConditionalOnMissingBean(name = "upstreamPolicyHttpExchangeProcessor")
        HttpRequestValues.Processor upstreamPolicyHttpExchangeProcessor(UpstreamPolicyResolver resolver) {
            return new ExchangePolicyProcessor(resolver);
        }
    }

    /** The same for the HTTP service groups Spring Boot builds ({@code @ImportHttpServices}). */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass({HttpRequestValues.class, RestClientHttpServiceGroupConfigurer.class})
    static class HttpServiceGroupConfiguration {

        @Bean
        @ConditionalOnMissingBean(name = "upstreamGuardHttpServiceGroupConfigurer")
        RestClientHttpServiceGroupConfigurer upstreamGuardHttpServiceGroupConfigurer(
                @Qualifier("upstreamPolicyHttpExchangeProcessor") ObjectProvider<HttpRequestValues.Processor> processor) {
            return groups -> groups.forEachProxyFactory(
                    (group, factory) -> processor.ifAvailable(factory::httpRequestValuesProcessor));
        }
    }

    /** The fault filter and the proxy routes of a servlet web application. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnWebApplication(type = ConditionalOnWebApplication.Type.SERVLET)
    @ConditionalOnClass({Filter.class, FilterRegistrationBean.class, UpstreamFaultFilter.class})
    static class ServletConfiguration {

        /**
         * Just inside Spring Boot's {@code ServerHttpObservationFilter} ({@code HIGHEST_PRECEDENCE + 1}, REQUEST and
         * ASYNC dispatches), which records {@code http.server.requests} with a 500 for any exception passing through
         * it: from outside, the filter's 502/503/504 came after that record. Inside, the observation sees the status
         * the client gets, and the fault is logged within its scope. Only the character-encoding filter (which sets
         * no field), {@code ForwardedHeaderFilter} with {@code server.forward-headers-strategy=framework} (which
         * rewrites only redirects) and, in a war, {@code ErrorPageFilter} come before it too (see
         * {@link #upstreamFaultAbortKeeper}); Spring Security ({@code -100}), CORS and the request-wrapping filters stay
         * after it, so their fields are kept and their errors answered as before.
         */
        private static final int FAULT_FILTER_ORDER = Ordered.HIGHEST_PRECEDENCE + 2;

        @Bean
        @ConditionalOnMissingBean
        FaultResponseWriter upstreamFaultResponseWriter(UpstreamRegistry registry,
                ObjectProvider<MeterRegistry> meterRegistry) {
            return new FaultResponseWriter(registry.proxyName(), registry.exposeDetails(),
                    meterRegistry.getIfAvailable());
        }

        @Bean
        @ConditionalOnMissingFilterBean(UpstreamFaultFilter.class)
        FilterRegistrationBean<UpstreamFaultFilter> upstreamFaultFilter(UpstreamRegistry registry,
                ObjectProvider<MeterRegistry> meterRegistry) {
            UpstreamFaultFilter filter = UpstreamFaultFilter.builder().proxyName(registry.proxyName())
                    .exposeDetails(registry.exposeDetails()).meterRegistry(meterRegistry.getIfAvailable()).build();
            FilterRegistrationBean<UpstreamFaultFilter> registration = new FilterRegistrationBean<>(filter);
            registration.setName("upstreamFaultFilter");
            registration.setOrder(FAULT_FILTER_ORDER);
            registration.setAsyncSupported(true);
            registration.setDispatcherTypes(DispatcherType.REQUEST, DispatcherType.ASYNC, DispatcherType.ERROR);
            registration.addUrlPatterns("/*");
            return registration;
        }

        /**
         * In a war, where Spring Boot's {@code ErrorPageFilter} ({@code HIGHEST_PRECEDENCE + 1}) runs outside the fault
         * filter: it swallows the exception that aborts a committed response (quietly for Tomcat's
         * {@code ClientAbortException}), and Tomcat would end a cut body as if it were whole. First in the chain, this
         * throws that abort again when the chain returned normally after it.
         */
        @Bean
        @ConditionalOnBean(ErrorPageFilter.class)
        FilterRegistrationBean<Filter> upstreamFaultAbortKeeper() {
            FilterRegistrationBean<Filter> registration = new FilterRegistrationBean<>((request, response, chain) -> {
                chain.doFilter(request, response);
                UpstreamException swallowed = FaultResponseWriter.abortSwallowed(request);
                if (swallowed != null) {
                    throw FaultResponseWriter.abortion((HttpServletResponse) response, swallowed);
                }
            });
            registration.setName("upstreamFaultAbortKeeper");
            registration.setOrder(Ordered.HIGHEST_PRECEDENCE);
            registration.setAsyncSupported(true);
            registration.setDispatcherTypes(DispatcherType.REQUEST, DispatcherType.ASYNC);
            registration.addUrlPatterns("/*");
            return registration;
        }

        @Bean
        @ConditionalOnMissingBean
        static UpstreamRouteRegistrar upstreamRouteRegistrar() {
            return new UpstreamRouteRegistrar();
        }
    }

    /**
     * Spring Boot's {@code formContentFilter}, replaced (under the same name and conditions) by one that leaves the
     * bodies of proxy routes unread: it would consume the form body of a PUT, PATCH or DELETE, and the route would
     * forward an empty one. An application's own {@code FormContentFilter} still wins.
     */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnWebApplication(type = ConditionalOnWebApplication.Type.SERVLET)
    @ConditionalOnClass({DispatcherServlet.class, OrderedFormContentFilter.class, UpstreamProxyServlet.class})
    @ConditionalOnMissingBean(WebMvcConfigurationSupport.class)
    static class FormContentConfiguration {

        @Bean
        @ConditionalOnMissingBean(FormContentFilter.class)
        @ConditionalOnBooleanProperty(name = "spring.mvc.formcontent.filter.enabled", matchIfMissing = true)
        OrderedFormContentFilter formContentFilter() {
            return new RouteSkippingFormContentFilter();
        }
    }

    /** {@code @UpstreamPolicy} on controllers, and problem rendering, in Spring MVC. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnWebApplication(type = ConditionalOnWebApplication.Type.SERVLET)
    @ConditionalOnClass({DispatcherServlet.class, UpstreamFaultFilter.class})
    static class WebMvcConfiguration {

        @Bean
        @ConditionalOnMissingBean
        UpstreamExceptionHandler upstreamExceptionHandler(FaultResponseWriter writer) {
            return new UpstreamExceptionHandler(writer);
        }

        /** The application's own fault advice for some controllers answers theirs: see {@link FaultAdviceDeferral}. */
        @Bean
        WebMvcConfigurer upstreamFaultAdviceDeferral() {
            return new WebMvcConfigurer() {
                @Override
                public void extendHandlerExceptionResolvers(List<HandlerExceptionResolver> resolvers) {
                    FaultAdviceDeferral.insertBeforeSpringsResolver(resolvers);
                }
            };
        }

        @Bean
        @ConditionalOnMissingBean(name = "upstreamPolicyWebMvcConfigurer")
        WebMvcConfigurer upstreamPolicyWebMvcConfigurer(UpstreamPolicyResolver resolver) {
            InboundPolicyInterceptor interceptor = new InboundPolicyInterceptor(resolver);
            return new WebMvcConfigurer() {
                @Override
                public void addInterceptors(InterceptorRegistry registry) {
                    registry.addInterceptor(interceptor);
                }

                @Override
                public void configureAsyncSupport(AsyncSupportConfigurer configurer) {
                    // A Callable runs on the async executor, where the request thread's declaration does not follow;
                    // and an async timeout while it waits for an upstream is the gateway's 504, not Spring's 503.
                    configurer.registerCallableInterceptors(new CallablePolicyInterceptor(), new AsyncUpstreamCalls());
                }
            };
        }
    }
}
