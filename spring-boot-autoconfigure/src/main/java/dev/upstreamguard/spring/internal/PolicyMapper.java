package dev.upstreamguard.spring.internal;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.spring.UpstreamGuardProperties;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.springframework.boot.context.properties.source.InvalidConfigurationPropertyValueException;

/**
 * Maps {@code upstream-guard.*} policy properties onto {@link GuardPolicy.Builder}, so every rule lives in the builder;
 * a value it rejects becomes an {@link InvalidConfigurationPropertyValueException} naming the full property.
 */
public final class PolicyMapper {

    private PolicyMapper() {
    }

    /** {@code base} with every setting of {@code p} that is set; {@code prefix} is e.g. {@code upstream-guard.defaults}. */
    public static GuardPolicy apply(GuardPolicy base, UpstreamGuardProperties.Policy p, String prefix) {
        GuardPolicy.Builder b = base.toBuilder();
        set(prefix, "connect-timeout", p.getConnectTimeout(), b::connectTimeout);
        set(prefix, "response-timeout", p.getResponseTimeout(), b::responseTimeout);
        set(prefix, "total-timeout", p.getTotalTimeout(), b::totalTimeout);
        set(prefix, "pool-timeout", p.getPoolTimeout(), b::poolTimeout);
        set(prefix, "max-connections", p.getMaxConnections(), b::maxConnections);
        if (p.getMaxResponseBody() != null) {
            // A string, not a DataSize, so that an upstream can set "unlimited" over a limit in the defaults.
            set(b, "max-response-body", p.getMaxResponseBody(), prefix + ".max-response-body");
        }
        UpstreamGuardProperties.Retry r = p.getRetry();
        set(prefix, "retry.enabled", r.getEnabled(), b::retryEnabled);
        set(prefix, "retry.max-attempts", r.getMaxAttempts(), b::maxAttempts);
        set(prefix, "retry.initial-backoff", r.getInitialBackoff(), b::initialBackoff);
        set(prefix, "retry.max-backoff", r.getMaxBackoff(), b::maxBackoff);
        set(prefix, "retry.max-retry-after", r.getMaxRetryAfter(), b::maxRetryAfter);
        set(prefix, "retry.budget-ratio", r.getBudgetRatio(), b::budgetRatio);
        set(prefix, "retry.budget-min-per-second", r.getBudgetMinPerSecond(), b::budgetMinPerSecond);
        set(prefix, "retry.on-response-timeout", r.getOnResponseTimeout(), b::retryOnResponseTimeout);
        statuses(b, "retry.statuses", r.getStatuses(), prefix);
        UpstreamGuardProperties.CircuitBreaker c = p.getCircuitBreaker();
        set(prefix, "circuit-breaker.enabled", c.getEnabled(), b::circuitBreakerEnabled);
        set(prefix, "circuit-breaker.failure-rate-threshold", c.getFailureRateThreshold(), b::failureRateThreshold);
        set(prefix, "circuit-breaker.minimum-calls", c.getMinimumCalls(), b::minimumCalls);
        set(prefix, "circuit-breaker.window", c.getWindow(), b::window);
        set(prefix, "circuit-breaker.open-for", c.getOpenFor(), b::openFor);
        set(prefix, "circuit-breaker.half-open-calls", c.getHalfOpenCalls(), b::halfOpenCalls);
        statuses(b, "circuit-breaker.record-statuses", c.getRecordStatuses(), prefix);
        UpstreamGuardProperties.Bulkhead h = p.getBulkhead();
        set(prefix, "bulkhead.enabled", h.getEnabled(), b::bulkheadEnabled);
        set(prefix, "bulkhead.max-concurrent-calls", h.getMaxConcurrentCalls(), b::maxConcurrentCalls);
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            // The only cross-setting rule: max-backoff must not be shorter than initial-backoff.
            Duration maxBackoff = r.getMaxBackoff() != null ? r.getMaxBackoff() : base.retry().maxBackoff();
            throw new InvalidConfigurationPropertyValueException(prefix + ".retry.max-backoff",
                    GuardPolicy.format(maxBackoff), e.getMessage());
        }
    }

    /**
     * The key of the first policy setting {@code p} sets ({@code retry.max-attempts}…), with its value; {@code null}
     * when it sets none. Whether a setting is given, not whether it differs from what it would inherit: a route that
     * writes down the default value means that value, not whatever an upstream of its address happens to have.
     */
    public static Map.Entry<String, String> firstSetting(UpstreamGuardProperties.Policy p) {
        UpstreamGuardProperties.Retry r = p.getRetry();
        UpstreamGuardProperties.CircuitBreaker c = p.getCircuitBreaker();
        UpstreamGuardProperties.Bulkhead h = p.getBulkhead();
        Object[] settings = {
            "connect-timeout", p.getConnectTimeout(), "response-timeout", p.getResponseTimeout(),
            "total-timeout", p.getTotalTimeout(), "pool-timeout", p.getPoolTimeout(),
            "max-connections", p.getMaxConnections(), "max-response-body", p.getMaxResponseBody(),
            "retry.enabled", r.getEnabled(), "retry.max-attempts", r.getMaxAttempts(),
            "retry.initial-backoff", r.getInitialBackoff(), "retry.max-backoff", r.getMaxBackoff(),
            "retry.max-retry-after", r.getMaxRetryAfter(), "retry.budget-ratio", r.getBudgetRatio(),
            "retry.budget-min-per-second", r.getBudgetMinPerSecond(),
            "retry.on-response-timeout", r.getOnResponseTimeout(), "retry.statuses", r.getStatuses(),
            "circuit-breaker.enabled", c.getEnabled(),
            "circuit-breaker.failure-rate-threshold", c.getFailureRateThreshold(),
            "circuit-breaker.minimum-calls", c.getMinimumCalls(), "circuit-breaker.window", c.getWindow(),
            "circuit-breaker.open-for", c.getOpenFor(), "circuit-breaker.half-open-calls", c.getHalfOpenCalls(),
            "circuit-breaker.record-statuses", c.getRecordStatuses(),
            "bulkhead.enabled", h.getEnabled(), "bulkhead.max-concurrent-calls", h.getMaxConcurrentCalls(),
        };
        for (int i = 0; i < settings.length; i += 2) {
            Object value = settings[i + 1];
            if (value != null) {
                String shown = value instanceof List<?> list
                        ? String.join(",", list.stream().map(String::valueOf).toList())
                        : String.valueOf(display(value));
                return Map.entry((String) settings[i], shown);
            }
        }
        return null;
    }

    /** Applies one setting by its key through {@link GuardPolicy.Builder#set}, naming {@code property} on failure. */
    public static void set(GuardPolicy.Builder b, String key, String value, String property) {
        try {
            b.set(key, value);
        } catch (IllegalArgumentException e) {
            throw new InvalidConfigurationPropertyValueException(property, value, e.getMessage());
        }
    }

    /**
     * A list of statuses, read by {@link GuardPolicy.Builder#set} so that "none" means no status as it does there. An
     * empty value means none as well: it is how YAML's {@code []} reaches the binder, so it cannot mean "unset".
     */
    private static void statuses(GuardPolicy.Builder b, String key, List<String> value, String prefix) {
        if (value == null) {
            return;
        }
        List<String> parts = value.stream().map(String::trim).filter(s -> !s.isEmpty()).toList();
        set(b, key, parts.isEmpty() ? "none" : String.join(",", parts), prefix + "." + key);
    }

    private static <T> void set(String prefix, String key, T value, Consumer<T> setter) {
        if (value == null) {
            return;
        }
        try {
            setter.accept(value);
        } catch (IllegalArgumentException e) {
            throw new InvalidConfigurationPropertyValueException(prefix + "." + key, display(value), e.getMessage());
        }
    }

    private static Object display(Object value) {
        if (value instanceof Duration) {
            return GuardPolicy.format((Duration) value);
        }
        if (value instanceof Set) {
            return String.join(",", ((Set<?>) value).stream().map(String::valueOf).toList());
        }
        return value;
    }
}
