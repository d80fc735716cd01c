/**
 * Spring Boot support: {@link dev.upstreamguard.spring.UpstreamGuardAutoConfiguration} (properties
 * {@link dev.upstreamguard.spring.UpstreamGuardProperties}, the shared guarded client, guarded {@code RestClient} and
 * {@code RestTemplate}, the fault filter, proxy routes, Spring MVC problem rendering), the
 * {@link dev.upstreamguard.spring.UpstreamPolicy} annotation, and Actuator's {@code upstreams} endpoint and health.
 */
package dev.upstreamguard.spring;
