package dev.upstreamguard.spring.internal;

import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.gateway.UpstreamProxyServlet;
import dev.upstreamguard.spring.UpstreamGuardProperties;
import dev.upstreamguard.spring.UpstreamRegistry;
import io.micrometer.core.instrument.MeterRegistry;
import java.util.Map;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.beans.factory.support.BeanDefinitionRegistry;
import org.springframework.beans.factory.support.BeanDefinitionRegistryPostProcessor;
import org.springframework.beans.factory.support.RootBeanDefinition;
import org.springframework.boot.context.properties.source.InvalidConfigurationPropertyValueException;
import org.springframework.boot.context.properties.bind.Bindable;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.EnvironmentAware;
import org.springframework.core.ResolvableType;
import org.springframework.core.env.Environment;

/**
 * Registers one {@code ServletRegistrationBean<UpstreamProxyServlet>} per {@code upstream-guard.routes.<name>}, as the
 * bean {@code upstreamGuardRoute.<name>} (an application bean of that name replaces it). Each servlet forwards through
 * the shared {@link GuardedHttpClient} under the route's upstream; the route's settings are read from the
 * {@link UpstreamRegistry}, which validated them.
 */
public final class UpstreamRouteRegistrar implements BeanDefinitionRegistryPostProcessor, EnvironmentAware {

    /** Prefix of the bean name of each route's registration. */
    public static final String BEAN_NAME_PREFIX = "upstreamGuardRoute.";

    private Environment environment;

    @Override
    public void setEnvironment(Environment environment) {
        this.environment = environment;
    }

    @Override
    public void postProcessBeanDefinitionRegistry(BeanDefinitionRegistry registry) {
        Map<String, UpstreamGuardProperties.Route> routes = Binder.get(environment)
                .bind("upstream-guard.routes", Bindable.mapOf(String.class, UpstreamGuardProperties.Route.class))
                .orElse(Map.of());
        if (!(registry instanceof ConfigurableListableBeanFactory)) {
            return;
        }
        ConfigurableListableBeanFactory beanFactory = (ConfigurableListableBeanFactory) registry;
        for (String route : routes.keySet()) {
            String beanName = BEAN_NAME_PREFIX + route;
            if (registry.containsBeanDefinition(beanName)) {
                continue;
            }
            RootBeanDefinition definition = new RootBeanDefinition();
            definition.setTargetType(ResolvableType.forClassWithGenerics(ServletRegistrationBean.class,
                    UpstreamProxyServlet.class));
            definition.setInstanceSupplier(() -> registration(beanFactory, route));
            registry.registerBeanDefinition(beanName, definition);
        }
    }

    @Override
    public void postProcessBeanFactory(ConfigurableListableBeanFactory beanFactory) {
    }

    private static ServletRegistrationBean<UpstreamProxyServlet> registration(ConfigurableListableBeanFactory beanFactory,
            String name) {
        UpstreamRegistry registry = beanFactory.getBean(UpstreamRegistry.class);
        UpstreamRegistry.Route route = registry.routes().stream().filter(r -> r.name().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalStateException("No route named '" + name + "'"));
        GuardedHttpClient client = beanFactory.getBean(GuardedHttpClient.class);
        try {
            client.upstream(route.upstream());
        } catch (IllegalArgumentException e) {
            // Only an application's own client can miss it: the auto-configured one is given every route's upstream.
            // Said now, naming the route, rather than as the container initializes the servlet.
            throw new InvalidConfigurationPropertyValueException("upstream-guard.routes." + name, route.upstream(),
                    "route '" + name + "' runs as upstream '" + route.upstream() + "', which the application's own "
                            + "GuardedHttpClient bean does not know: give that client the upstream "
                            + "(GuardedHttpClientBuilder.upstream(\"" + route.upstream() + "\", ...)), or adjust the "
                            + "auto-configured client with a GuardedHttpClientCustomizer bean instead");
        }
        UpstreamProxyServlet.Builder builder = UpstreamProxyServlet.builder(route.target().toString())
                .client(client, route.upstream())
                .proxyName(registry.proxyName())
                .exposeDetails(registry.exposeDetails())
                .forwardedHeaders(route.forwardedHeaders())
                .preserveHost(route.preserveHost())
                .meterRegistry(beanFactory.getBeanProvider(MeterRegistry.class).getIfAvailable());
        if (route.maxBufferedRequestBody() != null) {
            builder.maxBufferedRequestBody(route.maxBufferedRequestBody());
        }
        UpstreamProxyServlet servlet = builder.build();
        ServletRegistrationBean<UpstreamProxyServlet> registration = new ServletRegistrationBean<>(servlet,
                route.servletMapping());
        registration.setName(BEAN_NAME_PREFIX + name);
        registration.setAsyncSupported(true);
        registration.setLoadOnStartup(1);
        return registration;
    }
}
