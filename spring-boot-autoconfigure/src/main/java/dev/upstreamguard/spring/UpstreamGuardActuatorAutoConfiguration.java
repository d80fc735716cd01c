package dev.upstreamguard.spring;

import dev.upstreamguard.client.GuardedHttpClient;
import org.springframework.boot.actuate.autoconfigure.endpoint.condition.ConditionalOnAvailableEndpoint;
import org.springframework.boot.actuate.endpoint.annotation.Endpoint;
import org.springframework.boot.autoconfigure.AutoConfiguration;
import org.springframework.boot.autoconfigure.condition.ConditionalOnBean;
import org.springframework.boot.autoconfigure.condition.ConditionalOnClass;
import org.springframework.boot.autoconfigure.condition.ConditionalOnMissingBean;
import org.springframework.boot.health.autoconfigure.contributor.ConditionalOnEnabledHealthIndicator;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * Actuator support, when Actuator is present: the {@code upstreams} endpoint ({@link UpstreamsEndpoint}) and the
 * {@code upstreams} health contributor ({@link UpstreamsHealthContributor}, {@code management.health.upstreams.enabled}).
 */
@AutoConfiguration(after = UpstreamGuardAutoConfiguration.class)
@ConditionalOnClass(GuardedHttpClient.class)
@ConditionalOnBean(GuardedHttpClient.class)
public final class UpstreamGuardActuatorAutoConfiguration {

    /** The {@code upstreams} endpoint. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass({Endpoint.class, ConditionalOnAvailableEndpoint.class})
    @ConditionalOnAvailableEndpoint(UpstreamsEndpoint.class)
    static class EndpointConfiguration {

        @Bean
        @ConditionalOnMissingBean
        UpstreamsEndpoint upstreamsEndpoint(GuardedHttpClient client) {
            return new UpstreamsEndpoint(client);
        }
    }

    /** Health per upstream. */
    @Configuration(proxyBeanMethods = false)
    @ConditionalOnClass({HealthIndicator.class, ConditionalOnEnabledHealthIndicator.class})
    @ConditionalOnEnabledHealthIndicator("upstreams")
    static class HealthConfiguration {

        @Bean
        @ConditionalOnMissingBean(name = "upstreamsHealthContributor")
        UpstreamsHealthContributor upstreamsHealthContributor(GuardedHttpClient client) {
            return new UpstreamsHealthContributor(client);
        }
    }
}
