package dev.upstreamguard;

import java.time.Duration;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.BiConsumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The immutable policy of one upstream: timeouts, retry, circuit breaker and bulkhead. Applied as
 * {@code deadline → bulkhead → circuit breaker → retry → attempt timeout → transport}, outermost first.
 *
 * <p>Every setting has a property-style key, the same one used by {@code upstream-guard.defaults.*} in Spring Boot
 * and by the proxy servlet's init-params ({@code connect-timeout}, {@code retry.max-attempts}, …); see
 * {@link Builder#set(String, String)}. The defaults, and why they were chosen:
 * <ul>
 * <li>{@code connect-timeout} 2s: a healthy upstream on the same network connects in milliseconds.
 * <li>{@code response-timeout} 10s: the longest silence tolerated while reading; a slow read is usually a busy upstream.
 * <li>{@code total-timeout} 30s: caps the whole call, every retry and backoff included, until the response head.
 * <li>{@code pool-timeout} 2s: waiting longer for a pooled connection only queues work behind an overloaded pool.
 * <li>{@code max-connections} 200: per upstream; matches the bulkhead so neither is the hidden bottleneck.
 * <li>{@code max-response-body} unlimited: a library cannot know how large a body may be; set it where an upstream
 *     must not be able to fill memory or disk ({@code http_response_body_size} when exceeded).
 * <li>{@code retry.max-attempts} 3, {@code retry.initial-backoff} 50ms, {@code retry.max-backoff} 2s: enough to ride out
 *     a stale keep-alive connection or a rolling restart without multiplying an outage.
 * <li>{@code retry.max-retry-after} 2s: a 503/429 asking for a longer pause goes back to the caller at once.
 * <li>{@code retry.budget-ratio} 0.2 and {@code retry.budget-min-per-second} 5: retries stay under 20 % of recent
 *     calls (plus a small floor for low traffic), so retries cannot multiply load during an outage.
 * <li>{@code retry.on-response-timeout} false: retrying a slow upstream adds load exactly when it is overloaded.
 * <li>{@code retry.statuses} 429,502,503,504: responses retried for idempotent requests.
 * <li>{@code circuit-breaker.*}: opens at a 50 % failure rate over a 30s window once 20 calls were seen, stays open
 *     10s, then lets 5 trial calls through; upstream 502/503/504 count as failures, 4xx never do.
 * <li>{@code bulkhead.max-concurrent-calls} 200: at most that many calls in flight per upstream, the next rejected at
 *     once. It keeps a slow upstream from taking every container thread only when set below the container's
 *     thread count (Tomcat's and Jetty's default is 200 too): with several upstreams behind one container, give each
 *     less than that.
 * </ul>
 */
public final class GuardPolicy {

    private static final GuardPolicy DEFAULTS = new Builder().build();

    private final Duration connectTimeout;
    private final Duration responseTimeout;
    private final Duration totalTimeout;
    private final Duration poolTimeout;
    private final int maxConnections;
    private final long maxResponseBody;
    private final Retry retry;
    private final CircuitBreaker circuitBreaker;
    private final Bulkhead bulkhead;

    private GuardPolicy(Builder b) {
        this.connectTimeout = b.connectTimeout;
        this.responseTimeout = b.responseTimeout;
        this.totalTimeout = b.totalTimeout;
        this.poolTimeout = b.poolTimeout;
        this.maxConnections = b.maxConnections;
        this.maxResponseBody = b.maxResponseBody;
        this.retry = new Retry(b.retryEnabled, b.maxAttempts, b.initialBackoff, b.maxBackoff, b.maxRetryAfter,
                b.budgetRatio, b.budgetMinPerSecond, b.retryOnResponseTimeout, b.retryStatuses);
        this.circuitBreaker = new CircuitBreaker(b.breakerEnabled, b.failureRateThreshold, b.minimumCalls, b.window,
                b.openFor, b.halfOpenCalls, b.recordStatuses);
        this.bulkhead = new Bulkhead(b.bulkheadEnabled, b.maxConcurrentCalls);
    }

    /** The documented defaults. */
    public static GuardPolicy ofDefaults() {
        return DEFAULTS;
    }

    /** A builder starting from the documented defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /** A builder starting from this policy, for overrides. */
    public Builder toBuilder() {
        return new Builder(this);
    }

    /** Time allowed to establish a TCP (and TLS) connection. */
    public Duration connectTimeout() {
        return connectTimeout;
    }

    /** Longest silence tolerated while waiting for or reading the response, per attempt. */
    public Duration responseTimeout() {
        return responseTimeout;
    }

    /** Total time for the call, every attempt and backoff included, until the response head arrives. */
    public Duration totalTimeout() {
        return totalTimeout;
    }

    /** Time allowed to lease a pooled connection before failing with {@link UpstreamFault#CONNECTION_LIMIT_REACHED}. */
    public Duration poolTimeout() {
        return poolTimeout;
    }

    /** Most pooled connections to this upstream. */
    public int maxConnections() {
        return maxConnections;
    }

    /**
     * Largest response body accepted, in bytes; {@link Long#MAX_VALUE} (the default) for no limit. A response whose
     * {@code Content-Length} is larger fails at once; one without a length fails as soon as more is read. Either way
     * the call fails with {@link UpstreamFault#HTTP_RESPONSE_BODY_SIZE} and the connection is closed, not drained.
     * Counted as the caller reads the body, after decoding where the client decodes content codings.
     */
    public long maxResponseBody() {
        return maxResponseBody;
    }

    /** The retry settings. */
    public Retry retry() {
        return retry;
    }

    /** The circuit breaker settings. */
    public CircuitBreaker circuitBreaker() {
        return circuitBreaker;
    }

    /** The bulkhead settings. */
    public Bulkhead bulkhead() {
        return bulkhead;
    }

    /** Every setting by its key, in a stable order: what {@link Builder#set} accepts. */
    public Map<String, String> asProperties() {
        Map<String, String> map = new LinkedHashMap<>();
        map.put("connect-timeout", format(connectTimeout));
        map.put("response-timeout", format(responseTimeout));
        map.put("total-timeout", format(totalTimeout));
        map.put("pool-timeout", format(poolTimeout));
        map.put("max-connections", Integer.toString(maxConnections));
        map.put("max-response-body", formatBytes(maxResponseBody));
        map.put("retry.enabled", Boolean.toString(retry.enabled()));
        map.put("retry.max-attempts", Integer.toString(retry.maxAttempts()));
        map.put("retry.initial-backoff", format(retry.initialBackoff()));
        map.put("retry.max-backoff", format(retry.maxBackoff()));
        map.put("retry.max-retry-after", format(retry.maxRetryAfter()));
        map.put("retry.budget-ratio", Double.toString(retry.budgetRatio()));
        map.put("retry.budget-min-per-second", Integer.toString(retry.budgetMinPerSecond()));
        map.put("retry.on-response-timeout", Boolean.toString(retry.onResponseTimeout()));
        map.put("retry.statuses", join(retry.statuses()));
        map.put("circuit-breaker.enabled", Boolean.toString(circuitBreaker.enabled()));
        map.put("circuit-breaker.failure-rate-threshold", Float.toString(circuitBreaker.failureRateThreshold()));
        map.put("circuit-breaker.minimum-calls", Integer.toString(circuitBreaker.minimumCalls()));
        map.put("circuit-breaker.window", format(circuitBreaker.window()));
        map.put("circuit-breaker.open-for", format(circuitBreaker.openFor()));
        map.put("circuit-breaker.half-open-calls", Integer.toString(circuitBreaker.halfOpenCalls()));
        map.put("circuit-breaker.record-statuses", join(circuitBreaker.recordStatuses()));
        map.put("bulkhead.enabled", Boolean.toString(bulkhead.enabled()));
        map.put("bulkhead.max-concurrent-calls", Integer.toString(bulkhead.maxConcurrentCalls()));
        return Collections.unmodifiableMap(map);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GuardPolicy && asProperties().equals(((GuardPolicy) o).asProperties());
    }

    @Override
    public int hashCode() {
        return asProperties().hashCode();
    }

    @Override
    public String toString() {
        return "GuardPolicy" + asProperties();
    }

    /**
     * Retry settings.
     *
     * @param enabled whether failed attempts are retried at all
     * @param maxAttempts most attempts per call, the first included
     * @param initialBackoff the backoff cap before the first retry; doubles per retry (full jitter below the cap)
     * @param maxBackoff the largest backoff cap
     * @param maxRetryAfter a 503/429 asking for a longer Retry-After is returned at once instead of retried
     * @param budgetRatio retries allowed as a share of recent calls to the upstream
     * @param budgetMinPerSecond retries always allowed per second, so low traffic can still retry
     * @param onResponseTimeout whether response timeouts are retried (idempotent requests only)
     * @param statuses upstream statuses retried for idempotent requests
     */
    public record Retry(boolean enabled, int maxAttempts, Duration initialBackoff, Duration maxBackoff,
            Duration maxRetryAfter, double budgetRatio, int budgetMinPerSecond, boolean onResponseTimeout,
            Set<Integer> statuses) {
    }

    /**
     * Circuit breaker settings.
     *
     * @param enabled whether the upstream has a circuit breaker
     * @param failureRateThreshold failure percentage (1-100) that opens the circuit
     * @param minimumCalls calls needed in the window before the rate is judged
     * @param window the sliding time window the rate is computed over
     * @param openFor how long the circuit stays open before trial calls are let through
     * @param halfOpenCalls trial calls in the half-open state
     * @param recordStatuses upstream statuses counted as failures (transport faults always are)
     */
    public record CircuitBreaker(boolean enabled, float failureRateThreshold, int minimumCalls, Duration window,
            Duration openFor, int halfOpenCalls, Set<Integer> recordStatuses) {
    }

    /**
     * Bulkhead settings.
     *
     * @param enabled whether concurrent calls are limited
     * @param maxConcurrentCalls most calls in flight to the upstream; the next is rejected at once
     */
    public record Bulkhead(boolean enabled, int maxConcurrentCalls) {
    }

    /** Builds a {@link GuardPolicy}; every setter validates at once and names the setting in its message. */
    public static final class Builder {

        private static final Map<String, BiConsumer<Builder, String>> SETTERS = new LinkedHashMap<>();

        static {
            SETTERS.put("connect-timeout", (b, v) -> b.connectTimeout(duration("connect-timeout", v)));
            SETTERS.put("response-timeout", (b, v) -> b.responseTimeout(duration("response-timeout", v)));
            SETTERS.put("total-timeout", (b, v) -> b.totalTimeout(duration("total-timeout", v)));
            SETTERS.put("pool-timeout", (b, v) -> b.poolTimeout(duration("pool-timeout", v)));
            SETTERS.put("max-connections", (b, v) -> b.maxConnections(integer("max-connections", v)));
            SETTERS.put("max-response-body", (b, v) -> b.maxResponseBody(bytes("max-response-body", v)));
            SETTERS.put("retry.enabled", (b, v) -> b.retryEnabled(bool("retry.enabled", v)));
            SETTERS.put("retry.max-attempts", (b, v) -> b.maxAttempts(integer("retry.max-attempts", v)));
            SETTERS.put("retry.initial-backoff", (b, v) -> b.initialBackoff(duration("retry.initial-backoff", v)));
            SETTERS.put("retry.max-backoff", (b, v) -> b.maxBackoff(duration("retry.max-backoff", v)));
            SETTERS.put("retry.max-retry-after", (b, v) -> b.maxRetryAfter(duration("retry.max-retry-after", v)));
            SETTERS.put("retry.budget-ratio", (b, v) -> b.budgetRatio(decimal("retry.budget-ratio", v)));
            SETTERS.put("retry.budget-min-per-second",
                    (b, v) -> b.budgetMinPerSecond(integer("retry.budget-min-per-second", v)));
            SETTERS.put("retry.on-response-timeout",
                    (b, v) -> b.retryOnResponseTimeout(bool("retry.on-response-timeout", v)));
            SETTERS.put("retry.statuses", (b, v) -> b.retryStatuses(statuses("retry.statuses", v)));
            SETTERS.put("circuit-breaker.enabled", (b, v) -> b.circuitBreakerEnabled(bool("circuit-breaker.enabled", v)));
            SETTERS.put("circuit-breaker.failure-rate-threshold",
                    (b, v) -> b.failureRateThreshold((float) decimal("circuit-breaker.failure-rate-threshold", v)));
            SETTERS.put("circuit-breaker.minimum-calls",
                    (b, v) -> b.minimumCalls(integer("circuit-breaker.minimum-calls", v)));
            SETTERS.put("circuit-breaker.window", (b, v) -> b.window(duration("circuit-breaker.window", v)));
            SETTERS.put("circuit-breaker.open-for", (b, v) -> b.openFor(duration("circuit-breaker.open-for", v)));
            SETTERS.put("circuit-breaker.half-open-calls",
                    (b, v) -> b.halfOpenCalls(integer("circuit-breaker.half-open-calls", v)));
            SETTERS.put("circuit-breaker.record-statuses",
                    (b, v) -> b.recordStatuses(statuses("circuit-breaker.record-statuses", v)));
            SETTERS.put("bulkhead.enabled", (b, v) -> b.bulkheadEnabled(bool("bulkhead.enabled", v)));
            SETTERS.put("bulkhead.max-concurrent-calls",
                    (b, v) -> b.maxConcurrentCalls(integer("bulkhead.max-concurrent-calls", v)));
        }

        private Duration connectTimeout = Duration.ofSeconds(2);
        private Duration responseTimeout = Duration.ofSeconds(10);
        private Duration totalTimeout = Duration.ofSeconds(30);
        private Duration poolTimeout = Duration.ofSeconds(2);
        private int maxConnections = 200;
        private long maxResponseBody = Long.MAX_VALUE;
        private boolean retryEnabled = true;
        private int maxAttempts = 3;
        private Duration initialBackoff = Duration.ofMillis(50);
        private Duration maxBackoff = Duration.ofSeconds(2);
        private Duration maxRetryAfter = Duration.ofSeconds(2);
        private double budgetRatio = 0.2;
        private int budgetMinPerSecond = 5;
        private boolean retryOnResponseTimeout;
        // Sorted like every set the builder accepts, so equals, hashCode and asProperties are stable.
        private Set<Integer> retryStatuses = statusSet("retry.statuses", Set.of(429, 502, 503, 504));
        private boolean breakerEnabled = true;
        private float failureRateThreshold = 50;
        private int minimumCalls = 20;
        private Duration window = Duration.ofSeconds(30);
        private Duration openFor = Duration.ofSeconds(10);
        private int halfOpenCalls = 5;
        private Set<Integer> recordStatuses = statusSet("circuit-breaker.record-statuses", Set.of(502, 503, 504));
        private boolean bulkheadEnabled = true;
        private int maxConcurrentCalls = 200;

        private Builder() {
        }

        private Builder(GuardPolicy p) {
            connectTimeout = p.connectTimeout;
            responseTimeout = p.responseTimeout;
            totalTimeout = p.totalTimeout;
            poolTimeout = p.poolTimeout;
            maxConnections = p.maxConnections;
            maxResponseBody = p.maxResponseBody;
            retryEnabled = p.retry.enabled();
            maxAttempts = p.retry.maxAttempts();
            initialBackoff = p.retry.initialBackoff();
            maxBackoff = p.retry.maxBackoff();
            maxRetryAfter = p.retry.maxRetryAfter();
            budgetRatio = p.retry.budgetRatio();
            budgetMinPerSecond = p.retry.budgetMinPerSecond();
            retryOnResponseTimeout = p.retry.onResponseTimeout();
            retryStatuses = p.retry.statuses();
            breakerEnabled = p.circuitBreaker.enabled();
            failureRateThreshold = p.circuitBreaker.failureRateThreshold();
            minimumCalls = p.circuitBreaker.minimumCalls();
            window = p.circuitBreaker.window();
            openFor = p.circuitBreaker.openFor();
            halfOpenCalls = p.circuitBreaker.halfOpenCalls();
            recordStatuses = p.circuitBreaker.recordStatuses();
            bulkheadEnabled = p.bulkhead.enabled();
            maxConcurrentCalls = p.bulkhead.maxConcurrentCalls();
        }

        /** Every key {@link #set} accepts. */
        public static Set<String> keys() {
            return Collections.unmodifiableSet(SETTERS.keySet());
        }

        /**
         * Sets one setting by its property-style key ({@code connect-timeout}, {@code retry.max-attempts}…). Durations
         * are written {@code 500ms}, {@code 3s}, {@code 1m}, or in ISO-8601 ({@code PT3S}); lists of statuses
         * comma-separated.
         *
         * @throws IllegalArgumentException naming the key when the key is unknown or the value invalid
         */
        public Builder set(String key, String value) {
            Objects.requireNonNull(key, "key");
            BiConsumer<Builder, String> setter = SETTERS.get(key.trim());
            if (setter == null) {
                throw new IllegalArgumentException("Unknown upstream policy setting '" + key + "'; known settings: "
                        + String.join(", ", SETTERS.keySet()));
            }
            if (value == null || value.isBlank()) {
                throw new IllegalArgumentException("Upstream policy setting '" + key + "' has no value");
            }
            setter.accept(this, value.trim());
            return this;
        }

        /** Applies every entry of {@code settings} through {@link #set}. */
        public Builder setAll(Map<String, String> settings) {
            settings.forEach(this::set);
            return this;
        }

        /** See {@link GuardPolicy#connectTimeout()}. */
        public Builder connectTimeout(Duration value) {
            connectTimeout = positive("connect-timeout", value);
            return this;
        }

        /** See {@link GuardPolicy#responseTimeout()}. */
        public Builder responseTimeout(Duration value) {
            responseTimeout = positive("response-timeout", value);
            return this;
        }

        /** See {@link GuardPolicy#totalTimeout()}. */
        public Builder totalTimeout(Duration value) {
            totalTimeout = positive("total-timeout", value);
            return this;
        }

        /** See {@link GuardPolicy#poolTimeout()}. */
        public Builder poolTimeout(Duration value) {
            poolTimeout = positive("pool-timeout", value);
            return this;
        }

        /** See {@link GuardPolicy#maxConnections()}. */
        public Builder maxConnections(int value) {
            maxConnections = atLeast("max-connections", value, 1);
            return this;
        }

        /** See {@link GuardPolicy#maxResponseBody()}; {@link Long#MAX_VALUE} for no limit. */
        public Builder maxResponseBody(long bytes) {
            if (bytes < 1) {
                throw invalid("max-response-body", bytes, "must be at least 1 byte");
            }
            maxResponseBody = bytes;
            return this;
        }

        /** See {@link Retry#enabled()}. */
        public Builder retryEnabled(boolean value) {
            retryEnabled = value;
            return this;
        }

        /** See {@link Retry#maxAttempts()}. */
        public Builder maxAttempts(int value) {
            maxAttempts = atLeast("retry.max-attempts", value, 1);
            return this;
        }

        /** See {@link Retry#initialBackoff()}. */
        public Builder initialBackoff(Duration value) {
            initialBackoff = notNegative("retry.initial-backoff", value);
            return this;
        }

        /** See {@link Retry#maxBackoff()}. */
        public Builder maxBackoff(Duration value) {
            maxBackoff = notNegative("retry.max-backoff", value);
            return this;
        }

        /** See {@link Retry#maxRetryAfter()}. */
        public Builder maxRetryAfter(Duration value) {
            maxRetryAfter = notNegative("retry.max-retry-after", value);
            return this;
        }

        /** See {@link Retry#budgetRatio()}. */
        public Builder budgetRatio(double value) {
            if (!(value >= 0 && value <= 1)) {
                throw invalid("retry.budget-ratio", value, "must be between 0 and 1");
            }
            budgetRatio = value;
            return this;
        }

        /** See {@link Retry#budgetMinPerSecond()}. */
        public Builder budgetMinPerSecond(int value) {
            budgetMinPerSecond = atLeast("retry.budget-min-per-second", value, 0);
            return this;
        }

        /** See {@link Retry#onResponseTimeout()}. */
        public Builder retryOnResponseTimeout(boolean value) {
            retryOnResponseTimeout = value;
            return this;
        }

        /** See {@link Retry#statuses()}. */
        public Builder retryStatuses(Set<Integer> value) {
            retryStatuses = statusSet("retry.statuses", value);
            return this;
        }

        /** See {@link CircuitBreaker#enabled()}. */
        public Builder circuitBreakerEnabled(boolean value) {
            breakerEnabled = value;
            return this;
        }

        /** See {@link CircuitBreaker#failureRateThreshold()}. */
        public Builder failureRateThreshold(float value) {
            if (!(value > 0 && value <= 100)) {
                throw invalid("circuit-breaker.failure-rate-threshold", value, "must be above 0 and at most 100");
            }
            failureRateThreshold = value;
            return this;
        }

        /** See {@link CircuitBreaker#minimumCalls()}. */
        public Builder minimumCalls(int value) {
            minimumCalls = atLeast("circuit-breaker.minimum-calls", value, 1);
            return this;
        }

        /** See {@link CircuitBreaker#window()}. */
        public Builder window(Duration value) {
            Duration checked = positive("circuit-breaker.window", value);
            if (checked.toMillis() < 1000) {
                throw invalid("circuit-breaker.window", value, "must be at least 1s");
            }
            if (checked.toNanos() % 1_000_000_000L != 0) {
                // Resilience4j's time window counts whole seconds: 1500ms would silently be a window of 1s.
                throw invalid("circuit-breaker.window", value, "must be a whole number of seconds");
            }
            if (checked.compareTo(MAX_WINDOW) > 0) {
                // The breaker keeps a bucket per second of its window: a day of them is about 14 MB per upstream.
                throw invalid("circuit-breaker.window", value, "must be at most 1h (the breaker keeps one bucket per "
                        + "second of its window)");
            }
            window = checked;
            return this;
        }

        /** See {@link CircuitBreaker#openFor()}. */
        public Builder openFor(Duration value) {
            Duration checked = positive("circuit-breaker.open-for", value);
            if (checked.toMillis() < 1) {
                // Resilience4j counts the open state in milliseconds and refuses less, when the breaker is built.
                throw invalid("circuit-breaker.open-for", format(checked), "must be at least 1ms");
            }
            openFor = checked;
            return this;
        }

        /** See {@link CircuitBreaker#halfOpenCalls()}. */
        public Builder halfOpenCalls(int value) {
            int checked = atLeast("circuit-breaker.half-open-calls", value, 1);
            if (checked > MAX_HALF_OPEN_CALLS) {
                // Resilience4j allocates a slot per trial call as the circuit half-opens: a huge count failed that
                // call with an OutOfMemoryError (and kept its bulkhead permit), long after the policy was accepted.
                throw invalid("circuit-breaker.half-open-calls", value, "must be at most " + MAX_HALF_OPEN_CALLS
                        + " (the breaker keeps one slot per trial call)");
            }
            halfOpenCalls = checked;
            return this;
        }

        /** See {@link CircuitBreaker#recordStatuses()}. */
        public Builder recordStatuses(Set<Integer> value) {
            recordStatuses = statusSet("circuit-breaker.record-statuses", value);
            return this;
        }

        /** See {@link Bulkhead#enabled()}. */
        public Builder bulkheadEnabled(boolean value) {
            bulkheadEnabled = value;
            return this;
        }

        /** See {@link Bulkhead#maxConcurrentCalls()}. */
        public Builder maxConcurrentCalls(int value) {
            maxConcurrentCalls = atLeast("bulkhead.max-concurrent-calls", value, 1);
            return this;
        }

        /**
         * Builds the policy.
         *
         * @throws IllegalArgumentException when settings contradict each other, naming them
         */
        public GuardPolicy build() {
            if (maxBackoff.compareTo(initialBackoff) < 0) {
                throw new IllegalArgumentException("Upstream policy setting 'retry.max-backoff' (" + format(maxBackoff)
                        + ") must not be shorter than 'retry.initial-backoff' (" + format(initialBackoff) + ")");
            }
            return new GuardPolicy(this);
        }

        private static Duration positive(String key, Duration value) {
            if (value == null || value.isNegative() || value.isZero()) {
                throw invalid(key, value == null ? null : format(value), "must be a positive duration");
            }
            return atMostAYear(key, value);
        }

        private static Duration notNegative(String key, Duration value) {
            if (value == null || value.isNegative()) {
                throw invalid(key, value == null ? null : format(value), "must be a duration of 0 or more");
            }
            return atMostAYear(key, value);
        }

        /**
         * Calls count time in nanoseconds, which cannot hold much more than 292 years: a larger setting would fail
         * every call with an arithmetic overflow instead of failing here, naming itself. No timeout needs a year.
         */
        private static Duration atMostAYear(String key, Duration value) {
            if (value.compareTo(MAX_DURATION) > 0) {
                throw invalid(key, value, "must be at most 365d");
            }
            return value;
        }

        private static int atLeast(String key, int value, int min) {
            if (value < min) {
                throw invalid(key, value, "must be at least " + min);
            }
            return value;
        }

        private static Set<Integer> statusSet(String key, Set<Integer> value) {
            if (value == null) {
                throw invalid(key, null, "must be a set of statuses");
            }
            for (Integer status : value) {
                // A 1xx never ends an exchange, and retrying a 2xx or 3xx, or counting it as the upstream failing,
                // would throw away a good answer: surely a typo rather than a wish.
                if (status == null || status < 400 || status > 599) {
                    throw invalid(key, value, "must hold error statuses, between 400 and 599");
                }
            }
            return Collections.unmodifiableSet(new TreeSet<>(value));
        }

        private static IllegalArgumentException invalid(String key, Object value, String rule) {
            return new IllegalArgumentException(
                    "Upstream policy setting '" + key + "' " + rule + ", was '" + value + "'");
        }

        private static final Pattern DURATION = Pattern.compile("(-?\\d+)\\s*(ns|us|ms|s|m|h|d)?");
        private static final Duration MAX_DURATION = Duration.ofDays(365);
        private static final Duration MAX_WINDOW = Duration.ofHours(1);
        private static final int MAX_HALF_OPEN_CALLS = 1000;

        private static Duration duration(String key, String text) {
            Matcher m = DURATION.matcher(text.toLowerCase(Locale.ROOT));
            if (m.matches()) {
                long n;
                try {
                    n = Long.parseLong(m.group(1));
                } catch (NumberFormatException e) {
                    throw invalid(key, text, "must be a duration such as 500ms or 3s");
                }
                String unit = m.group(2) == null ? "ms" : m.group(2);
                try {
                    switch (unit) {
                        case "ns": return Duration.ofNanos(n);
                        case "us": return Duration.ofNanos(Math.multiplyExact(n, 1000L));
                        case "ms": return Duration.ofMillis(n);
                        case "s": return Duration.ofSeconds(n);
                        case "m": return Duration.ofMinutes(n);
                        case "h": return Duration.ofHours(n);
                        default: return Duration.ofDays(n);
                    }
                } catch (ArithmeticException e) {
                    throw invalid(key, text, "must be at most 365d");
                }
            }
            try {
                return Duration.parse(text);
            } catch (RuntimeException e) {
                throw invalid(key, text, "must be a duration such as 500ms or 3s");
            }
        }

        /** {@code unlimited}, or a size as {@link GuardPolicy#parseBytes} reads it. */
        private static long bytes(String key, String text) {
            if (text.equalsIgnoreCase("unlimited")) {
                return Long.MAX_VALUE;
            }
            try {
                return parseBytes(text);
            } catch (IllegalArgumentException e) {
                throw invalid(key, text, "must be a size such as 65536, 64KiB, 10MiB or unlimited");
            }
        }

        private static int integer(String key, String text) {
            try {
                return Integer.parseInt(text);
            } catch (NumberFormatException e) {
                throw invalid(key, text, "must be a whole number");
            }
        }

        private static double decimal(String key, String text) {
            try {
                return Double.parseDouble(text);
            } catch (NumberFormatException e) {
                throw invalid(key, text, "must be a number");
            }
        }

        private static boolean bool(String key, String text) {
            if (text.equalsIgnoreCase("true")) {
                return true;
            }
            if (text.equalsIgnoreCase("false")) {
                return false;
            }
            throw invalid(key, text, "must be true or false");
        }

        private static Set<Integer> statuses(String key, String text) {
            Set<Integer> set = new TreeSet<>();
            if (text.equalsIgnoreCase("none")) {
                return set;
            }
            // -1 keeps a trailing empty part: "503," is as malformed as ",503", not a list of one.
            for (String part : text.split(",", -1)) {
                try {
                    set.add(Integer.parseInt(part.trim()));
                } catch (NumberFormatException e) {
                    throw invalid(key, text, "must be a comma-separated list of statuses");
                }
            }
            return set;
        }
    }

    /** Formats a duration the way {@link Builder#set} reads it back: {@code 500ms}, {@code 3s}. */
    public static String format(Duration d) {
        if (d.abs().compareTo(Duration.ofDays(36_500)) > 0) {
            return d.toString(); // beyond what nanoseconds count: only ever an invalid value in a message
        }
        if (d.toNanos() % 1_000_000 != 0) {
            return d.toNanos() + "ns";
        }
        long ms = d.toMillis();
        return ms % 1000 == 0 ? (ms / 1000) + "s" : ms + "ms";
    }

    private static final Pattern BYTES = Pattern.compile("(\\d+)\\s*(b|kb|kib|k|mb|mib|m|gb|gib|g)?");

    /**
     * Reads a size: digits with an optional unit, {@code B}, {@code K}/{@code KB}/{@code KiB}, {@code M}/{@code MB}/
     * {@code MiB} or {@code G}/{@code GB}/{@code GiB}, all binary multiples, any case: {@code 65536}, {@code 64KiB},
     * {@code 10MB}. Shared by every size setting of the library, so they all read alike.
     *
     * @throws IllegalArgumentException when {@code text} is no such size or too large for a {@code long}
     */
    public static long parseBytes(String text) {
        Matcher m = BYTES.matcher(text.trim().toLowerCase(Locale.ROOT));
        if (m.matches()) {
            String unit = m.group(2) == null ? "b" : m.group(2);
            int shift = unit.startsWith("g") ? 30 : unit.startsWith("m") ? 20 : unit.startsWith("k") ? 10 : 0;
            try {
                return Math.multiplyExact(Long.parseLong(m.group(1)), 1L << shift);
            } catch (ArithmeticException | NumberFormatException e) {
                throw new IllegalArgumentException("Size too large: '" + text + "'", e);
            }
        }
        throw new IllegalArgumentException("Not a size: '" + text + "'");
    }

    /** Formats a byte count the way {@link Builder#set} reads it back: {@code 10MiB}, {@code 1500}, {@code unlimited}. */
    public static String formatBytes(long bytes) {
        if (bytes == Long.MAX_VALUE) {
            return "unlimited";
        }
        String[] units = {"GiB", "MiB", "KiB"};
        for (int i = 0; i < units.length; i++) {
            long unit = 1L << (30 - 10 * i);
            if (bytes % unit == 0) {
                return bytes / unit + units[i];
            }
        }
        return Long.toString(bytes);
    }

    private static String join(Set<Integer> statuses) {
        if (statuses.isEmpty()) {
            return "none";
        }
        List<String> parts = Arrays.asList(statuses.stream().map(String::valueOf).toArray(String[]::new));
        return String.join(",", parts);
    }
}
