package dev.upstreamguard.spring;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.NestedConfigurationProperty;

/**
 * The {@code upstream-guard.*} properties: the gateway's name, the policy every upstream inherits, named upstreams and
 * in-app proxy routes.
 *
 * <p>Every policy setting left unset inherits: {@code upstreams.<name>.*} from {@code defaults.*}, and
 * {@code defaults.*} from the library's documented defaults ({@link dev.upstreamguard.GuardPolicy}). Values are
 * checked by {@link dev.upstreamguard.GuardPolicy.Builder} when the application starts; a bad one fails start-up
 * naming the property and the value. So does a key under {@code upstream-guard} that names no setting: a misspelt
 * {@code respons-timeout} would otherwise leave the upstream silently on the default.
 */
@ConfigurationProperties(prefix = "upstream-guard", ignoreUnknownFields = false)
public class UpstreamGuardProperties {

    /**
     * Whether Upstream Guard is auto-configured at all: off, Spring's HTTP clients, filters and form handling stay as
     * Spring Boot configures them and no upstream-guard.* value is read.
     */
    private boolean enabled = true;

    /**
     * Name this gateway gives itself in the Proxy-Status header (RFC 9209), such as "edge-1".
     */
    private String proxyName = "upstream-guard";

    /**
     * Whether generated responses reveal topology: Proxy-Status next-hop and details, the failure's own message in the
     * body, and the address an unnamed upstream is named after (http://host:port) where a body names the upstream; a
     * configured upstream or route name is always shown. Off by default because they can leak internal host names.
     */
    private boolean exposeDetails;

    /**
     * The policy every upstream inherits, including upstreams called without being configured here.
     */
    @NestedConfigurationProperty
    private final Policy defaults = new Policy();

    /**
     * Named upstreams: calls to an upstream's scheme, host and port use its policy, circuit breaker, bulkhead and
     * retry budget.
     */
    private final Map<String, Upstream> upstreams = new LinkedHashMap<>();

    /**
     * In-app reverse-proxy routes, each served by its own proxy servlet; a route to a uri may set its own policy.
     */
    private final Map<String, Route> routes = new LinkedHashMap<>();

    public boolean isEnabled() {
        return enabled;
    }

    public void setEnabled(boolean enabled) {
        this.enabled = enabled;
    }

    public String getProxyName() {
        return proxyName;
    }

    public void setProxyName(String proxyName) {
        this.proxyName = proxyName;
    }

    public boolean isExposeDetails() {
        return exposeDetails;
    }

    public void setExposeDetails(boolean exposeDetails) {
        this.exposeDetails = exposeDetails;
    }

    public Policy getDefaults() {
        return defaults;
    }

    public Map<String, Upstream> getUpstreams() {
        return upstreams;
    }

    public Map<String, Route> getRoutes() {
        return routes;
    }

    /** Timeouts, retry, circuit breaker and bulkhead of an upstream; unset values inherit. */
    public static class Policy {

        /**
         * Time allowed to establish a TCP (and TLS) connection. Library default: 2s.
         */
        private Duration connectTimeout;

        /**
         * Longest silence tolerated while waiting for or reading the response, per attempt. Library default: 10s.
         */
        private Duration responseTimeout;

        /**
         * Total time for a call, every attempt and backoff included, until the response head arrives. Library
         * default: 30s.
         */
        private Duration totalTimeout;

        /**
         * Time allowed to lease a pooled connection before failing with connection_limit_reached. Library default: 2s.
         */
        private Duration poolTimeout;

        /**
         * Most pooled connections to the upstream. Library default: 200.
         */
        private Integer maxConnections;

        /**
         * Largest response body accepted: 65536, 64KB, 10MB, 1GB (binary multiples) or unlimited; a larger body
         * fails the call with http_response_body_size and its connection is closed. Library default: unlimited.
         */
        private String maxResponseBody;

        /**
         * Retry settings.
         */
        @NestedConfigurationProperty
        private final Retry retry = new Retry();

        /**
         * Circuit breaker settings.
         */
        @NestedConfigurationProperty
        private final CircuitBreaker circuitBreaker = new CircuitBreaker();

        /**
         * Bulkhead settings.
         */
        @NestedConfigurationProperty
        private final Bulkhead bulkhead = new Bulkhead();

        public String getMaxResponseBody() {
            return maxResponseBody;
        }

        public void setMaxResponseBody(String maxResponseBody) {
            this.maxResponseBody = maxResponseBody;
        }

        public Duration getConnectTimeout() {
            return connectTimeout;
        }

        public void setConnectTimeout(Duration connectTimeout) {
            this.connectTimeout = connectTimeout;
        }

        public Duration getResponseTimeout() {
            return responseTimeout;
        }

        public void setResponseTimeout(Duration responseTimeout) {
            this.responseTimeout = responseTimeout;
        }

        public Duration getTotalTimeout() {
            return totalTimeout;
        }

        public void setTotalTimeout(Duration totalTimeout) {
            this.totalTimeout = totalTimeout;
        }

        public Duration getPoolTimeout() {
            return poolTimeout;
        }

        public void setPoolTimeout(Duration poolTimeout) {
            this.poolTimeout = poolTimeout;
        }

        public Integer getMaxConnections() {
            return maxConnections;
        }

        public void setMaxConnections(Integer maxConnections) {
            this.maxConnections = maxConnections;
        }

        public Retry getRetry() {
            return retry;
        }

        public CircuitBreaker getCircuitBreaker() {
            return circuitBreaker;
        }

        public Bulkhead getBulkhead() {
            return bulkhead;
        }
    }

    /** Retry settings; unset values inherit. */
    public static class Retry {

        /**
         * Whether failed attempts are retried at all. Library default: true.
         */
        private Boolean enabled;

        /**
         * Most attempts per call, the first included. Library default: 3.
         */
        private Integer maxAttempts;

        /**
         * Backoff cap before the first retry; doubles per retry, with full jitter below the cap. Library default:
         * 50ms.
         */
        private Duration initialBackoff;

        /**
         * Largest backoff cap. Library default: 2s.
         */
        private Duration maxBackoff;

        /**
         * A 503 or 429 asking for a longer Retry-After goes back to the caller at once instead of being retried.
         * Library default: 2s.
         */
        private Duration maxRetryAfter;

        /**
         * Retries allowed as a share (0 to 1) of recent calls to the upstream. Library default: 0.2.
         */
        private Double budgetRatio;

        /**
         * Retries always allowed per second, so low traffic can still retry. Library default: 5.
         */
        private Integer budgetMinPerSecond;

        /**
         * Whether response timeouts are retried (idempotent requests only). Library default: false.
         */
        private Boolean onResponseTimeout;

        /**
         * Upstream statuses retried for idempotent requests, or "none" (an empty value too) to retry no response and
         * only transport faults. Library default: 429,502,503,504.
         */
        private List<String> statuses;

        public Boolean getEnabled() {
            return enabled;
        }

        public void setEnabled(Boolean enabled) {
            this.enabled = enabled;
        }

        public Integer getMaxAttempts() {
            return maxAttempts;
        }

        public void setMaxAttempts(Integer maxAttempts) {
            this.maxAttempts = maxAttempts;
        }

        public Duration getInitialBackoff() {
            return initialBackoff;
        }

        public void setInitialBackoff(Duration initialBackoff) {
            this.initialBackoff = initialBackoff;
        }

        public Duration getMaxBackoff() {
            return maxBackoff;
        }

        public void setMaxBackoff(Duration maxBackoff) {
            this.maxBackoff = maxBackoff;
        }

        public Duration getMaxRetryAfter() {
            return maxRetryAfter;
        }

        public void setMaxRetryAfter(Duration maxRetryAfter) {
            this.maxRetryAfter = maxRetryAfter;
        }

        public Double getBudgetRatio() {
            return budgetRatio;
        }

        public void setBudgetRatio(Double budgetRatio) {
            this.budgetRatio = budgetRatio;
        }

        public Integer getBudgetMinPerSecond() {
            return budgetMinPerSecond;
        }

        public void setBudgetMinPerSecond(Integer budgetMinPerSecond) {
            this.budgetMinPerSecond = budgetMinPerSecond;
        }

        public Boolean getOnResponseTimeout() {
            return onResponseTimeout;
        }

        public void setOnResponseTimeout(Boolean onResponseTimeout) {
            this.onResponseTimeout = onResponseTimeout;
        }

        public List<String> getStatuses() {
            return statuses;
        }

        public void setStatuses(List<String> statuses) {
            this.statuses = statuses;
        }
    }

    /** Circuit breaker settings; unset values inherit. */
    public static class CircuitBreaker {

        /**
         * Whether the upstream has a circuit breaker. Library default: true.
         */
        private Boolean enabled;

        /**
         * Failure percentage (above 0, at most 100) that opens the circuit. Library default: 50.
         */
        private Float failureRateThreshold;

        /**
         * Calls needed in the window before the failure rate is judged. Library default: 20.
         */
        private Integer minimumCalls;

        /**
         * Sliding time window the failure rate is computed over, at least 1s. Library default: 30s.
         */
        private Duration window;

        /**
         * How long the circuit stays open before trial calls are let through. Library default: 10s.
         */
        private Duration openFor;

        /**
         * Trial calls let through while half-open. Library default: 5.
         */
        private Integer halfOpenCalls;

        /**
         * Upstream statuses counted as failures, or "none" (an empty value too) to count transport faults only, which
         * always are. Library default: 502,503,504.
         */
        private List<String> recordStatuses;

        public Boolean getEnabled() {
            return enabled;
        }

        public void setEnabled(Boolean enabled) {
            this.enabled = enabled;
        }

        public Float getFailureRateThreshold() {
            return failureRateThreshold;
        }

        public void setFailureRateThreshold(Float failureRateThreshold) {
            this.failureRateThreshold = failureRateThreshold;
        }

        public Integer getMinimumCalls() {
            return minimumCalls;
        }

        public void setMinimumCalls(Integer minimumCalls) {
            this.minimumCalls = minimumCalls;
        }

        public Duration getWindow() {
            return window;
        }

        public void setWindow(Duration window) {
            this.window = window;
        }

        public Duration getOpenFor() {
            return openFor;
        }

        public void setOpenFor(Duration openFor) {
            this.openFor = openFor;
        }

        public Integer getHalfOpenCalls() {
            return halfOpenCalls;
        }

        public void setHalfOpenCalls(Integer halfOpenCalls) {
            this.halfOpenCalls = halfOpenCalls;
        }

        public List<String> getRecordStatuses() {
            return recordStatuses;
        }

        public void setRecordStatuses(List<String> recordStatuses) {
            this.recordStatuses = recordStatuses;
        }
    }

    /** Bulkhead settings; unset values inherit. */
    public static class Bulkhead {

        /**
         * Whether concurrent calls to the upstream are limited. Library default: true.
         */
        private Boolean enabled;

        /**
         * Most calls in flight to the upstream; the next is rejected at once with connection_limit_reached. Library
         * default: 200.
         */
        private Integer maxConcurrentCalls;

        public Boolean getEnabled() {
            return enabled;
        }

        public void setEnabled(Boolean enabled) {
            this.enabled = enabled;
        }

        public Integer getMaxConcurrentCalls() {
            return maxConcurrentCalls;
        }

        public void setMaxConcurrentCalls(Integer maxConcurrentCalls) {
            this.maxConcurrentCalls = maxConcurrentCalls;
        }
    }

    /** A named upstream: its base URL and any settings that differ from {@code defaults}. */
    public static class Upstream extends Policy {

        /**
         * Base URL of the upstream, such as "http://inventory:8080"; calls to its scheme, host and port belong to it.
         */
        private String url;

        /** Same as url, the name a route gives its base URI; set one of them. */
        private String uri;

        public String getUrl() {
            return url;
        }

        public void setUrl(String url) {
            this.url = url;
        }

        public String getUri() {
            return uri;
        }

        public void setUri(String uri) {
            this.uri = uri;
        }
    }

    /**
     * An in-app proxy route: requests under {@code path} are forwarded to a named upstream or a URI. A route to a URI
     * may set policy settings of its own (timeouts, retry, circuit breaker, bulkhead, body limit) over
     * {@code defaults}: it is then an upstream of its own, named after the route. A route to a named upstream runs
     * under that upstream's settings.
     */
    public static class Route extends Policy {

        /**
         * Request path served by the route: an exact path ("/health") or a prefix ending in "/**"
         * ("/api/inventory/**").
         */
        private String path;

        /**
         * Name of a configured upstream to forward to (its url, policy, circuit breaker and bulkhead). Set this or
         * uri.
         */
        private String upstream;

        /**
         * Base URI to forward to, such as "http://127.0.0.1:9000"; the route is then an upstream named after the route,
         * with the default policy and any policy setting of the route's own. Set this or upstream.
         */
        private String uri;

        /** Same as uri, the name an upstream gives its base URL; set one of them. */
        private String url;

        /**
         * Leading path segments removed before forwarding: with path "/api/inventory/**" and 2, "/api/inventory/items"
         * is forwarded as "/items".
         */
        private int stripPrefix;

        /**
         * Forwarding headers added to each request: "both" (Forwarded and X-Forwarded-For/Proto/Host/Port),
         * "forwarded" (RFC 7239 Forwarded only) or "x-forwarded". Via is always added.
         */
        private String forwardedHeaders = "both";

        /**
         * Whether the client's Host header is sent upstream instead of the upstream's own host and port.
         */
        private boolean preserveHost;

        /**
         * Request bodies up to this size are buffered, so that idempotent requests can be retried; larger ones stream
         * and are never retried: 65536, 64KiB, 1MiB. Default: 64KiB.
         */
        private String maxBufferedRequestBody;

        public String getUrl() {
            return url;
        }

        public void setUrl(String url) {
            this.url = url;
        }

        public boolean isPreserveHost() {
            return preserveHost;
        }

        public void setPreserveHost(boolean preserveHost) {
            this.preserveHost = preserveHost;
        }

        public String getMaxBufferedRequestBody() {
            return maxBufferedRequestBody;
        }

        public void setMaxBufferedRequestBody(String maxBufferedRequestBody) {
            this.maxBufferedRequestBody = maxBufferedRequestBody;
        }

        public String getForwardedHeaders() {
            return forwardedHeaders;
        }

        public void setForwardedHeaders(String forwardedHeaders) {
            this.forwardedHeaders = forwardedHeaders;
        }

        public String getPath() {
            return path;
        }

        public void setPath(String path) {
            this.path = path;
        }

        public String getUpstream() {
            return upstream;
        }

        public void setUpstream(String upstream) {
            this.upstream = upstream;
        }

        public String getUri() {
            return uri;
        }

        public void setUri(String uri) {
            this.uri = uri;
        }

        public int getStripPrefix() {
            return stripPrefix;
        }

        public void setStripPrefix(int stripPrefix) {
            this.stripPrefix = stripPrefix;
        }
    }
}
