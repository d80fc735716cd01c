package dev.upstreamguard.spring;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.springframework.core.annotation.AliasFor;

/**
 * Selects the upstream policy, and overrides parts of it, for one endpoint.
 *
 * <ul>
 * <li>On a controller class or handler method (inbound): every guarded call made on the request thread while that
 *     handler runs uses it.
 * <li>On a Spring {@code @HttpExchange} interface or method (outbound): every call through that method uses it.
 * </ul>
 *
 * <p>Precedence, per setting (a setting left empty here falls through to the next level): {@code @HttpExchange} method,
 * {@code @HttpExchange} interface, controller method, controller class, {@code upstream-guard.upstreams.<name>.*},
 * {@code upstream-guard.defaults.*}, the library defaults. Overrides replace timeouts and retry settings for the call;
 * the upstream's circuit breaker, bulkhead and retry budget stay shared.
 *
 * <p>Values are checked when the application starts: an unknown upstream name or an invalid duration fails start-up
 * naming the annotated method, and so does a declaration elsewhere (on a service bean's method, say), where it would
 * never apply. Durations are written like {@code 500ms} or {@code 3s}, and may be placeholders such as
 * {@code ${inventory.timeout:2s}}.
 */
@Target({ElementType.TYPE, ElementType.METHOD})
@Retention(RetentionPolicy.RUNTIME)
@Documented
public @interface UpstreamPolicy {

    /** Alias for {@link #upstream()}. */
    @AliasFor("upstream")
    String value() default "";

    /**
     * The name of an upstream configured under {@code upstream-guard.upstreams}: its circuit breaker, bulkhead, retry
     * budget and policy apply to the calls. Empty: the upstream each call's URL belongs to.
     */
    @AliasFor("value")
    String upstream() default "";

    /** Overrides {@code connect-timeout}, e.g. {@code 500ms}. */
    String connectTimeout() default "";

    /** Overrides {@code response-timeout}, e.g. {@code 2s}. */
    String responseTimeout() default "";

    /** Overrides {@code total-timeout}, the deadline over every attempt, e.g. {@code 5s}. */
    String totalTimeout() default "";

    /** Overrides {@code max-response-body}, e.g. {@code 64KB}, {@code 10MB} or {@code unlimited}. */
    String maxResponseBody() default "";

    /** Overrides {@code retry.max-attempts} (the first attempt included); 0 leaves it unchanged. */
    int maxAttempts() default 0;

    /** Overrides {@code retry.enabled}. */
    Retry retry() default Retry.INHERIT;

    /** Whether calls are retried. */
    enum Retry {
        /** As configured at the next level down. */
        INHERIT,
        /** Retried, under the usual safety rules and budget. */
        ENABLED,
        /** Never retried. */
        DISABLED
    }
}
