package dev.upstreamguard.client;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.internal.ConnectPhaseOperator;
import dev.upstreamguard.internal.ContentDecoders;
import dev.upstreamguard.internal.ExpectationSentAgain;
import dev.upstreamguard.internal.FaultSignal;
import dev.upstreamguard.internal.FollowUpSentAgain;
import dev.upstreamguard.internal.ForwardedUserAgent;
import dev.upstreamguard.internal.GuardedConnection;
import dev.upstreamguard.internal.HandshakeWatch;
import dev.upstreamguard.internal.NoCredentialsProtocolExec;
import dev.upstreamguard.internal.RedirectTargets;
import dev.upstreamguard.internal.TlsTransport;
import dev.upstreamguard.internal.TunnelWatch;
import dev.upstreamguard.internal.UpstreamGuard;
import dev.upstreamguard.internal.UriAuthorities;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.time.Clock;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLSocket;
import org.apache.hc.client5.http.DnsResolver;
import org.apache.hc.client5.http.HttpRoute;
import org.apache.hc.client5.http.SchemePortResolver;
import org.apache.hc.client5.http.config.ConnectionConfig;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.config.TlsConfig;
import org.apache.hc.client5.http.impl.ChainElement;
import org.apache.hc.client5.http.impl.classic.HttpClientBuilder;
import org.apache.hc.client5.http.impl.io.PoolingHttpClientConnectionManager;
import org.apache.hc.client5.http.impl.io.PoolingHttpClientConnectionManagerBuilder;
import org.apache.hc.client5.http.io.HttpClientConnectionManager;
import org.apache.hc.client5.http.io.HttpClientConnectionOperator;
import org.apache.hc.client5.http.io.ManagedHttpClientConnection;
import org.apache.hc.client5.http.ssl.DefaultClientTlsStrategy;
import org.apache.hc.client5.http.ssl.TlsSocketStrategy;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.http.config.Http1Config;
import org.apache.hc.core5.http.io.HttpConnectionFactory;
import org.apache.hc.core5.reactor.ssl.SSLBufferMode;
import org.apache.hc.core5.ssl.SSLContexts;
import org.apache.hc.core5.util.TimeValue;
import org.apache.hc.core5.util.Timeout;

/**
 * Configures a {@link GuardedHttpClient}: the default policy, named upstreams with their own policies, and the
 * HttpClient parts underneath. Obtain one from {@link GuardedHttpClients#custom()}.
 *
 * <p>Calls are matched to a named upstream by the scheme, host and port of its base URI; any other target becomes an
 * unnamed upstream {@code scheme://host:port} with the default policy and its own breaker, bulkhead and budget.
 */
public final class GuardedHttpClientBuilder {

    static final int DEFAULT_MAX_HEADER_SIZE = 16 * 1024;
    static final int DEFAULT_MAX_HEADER_COUNT = 256;
    static final int DEFAULT_MAX_HEADER_SECTION_SIZE = 64 * 1024;
    static final int DEFAULT_MAX_UNNAMED_UPSTREAMS = 1000;
    private static final int MAX_CACHED_CONNECTION_CONFIGS = 1024;

    private final Map<String, Named> upstreams = new LinkedHashMap<>();
    private GuardPolicy defaults = GuardPolicy.ofDefaults();
    private HttpClientBuilder httpClientBuilder;
    private HttpClientConnectionManager connectionManager;
    private SSLContext sslContext;
    private String[] tlsProtocols;
    private String[] tlsCipherSuites;
    private RequestConfig requestConfig = RequestConfig.DEFAULT;
    private MeterRegistry meterRegistry;
    private Ticker ticker = Ticker.system();
    private Clock clock = Clock.systemUTC();
    private Sleeper sleeper = Sleeper.system();
    private int maxHeaderSize = DEFAULT_MAX_HEADER_SIZE;
    private int maxHeaderCount = DEFAULT_MAX_HEADER_COUNT;
    private int maxHeaderSectionSize = DEFAULT_MAX_HEADER_SECTION_SIZE;
    private boolean contentCompression = true;
    private boolean redirects = true;
    private boolean defaultUserAgent = true;
    private Boolean cookieManagement;
    private int maxUnnamedUpstreams = DEFAULT_MAX_UNNAMED_UPSTREAMS;

    GuardedHttpClientBuilder() {
    }

    /** The policy of every upstream not configured by name. */
    public GuardedHttpClientBuilder defaults(GuardPolicy policy) {
        this.defaults = Objects.requireNonNull(policy, "policy");
        return this;
    }

    /** A named upstream with the default policy; calls to its scheme, host and port use it. */
    public GuardedHttpClientBuilder upstream(String name, String baseUri) {
        return upstream(name, baseUri, null);
    }

    /**
     * A named upstream with its own policy; calls to its scheme, host and port use it.
     *
     * @throws IllegalArgumentException when the name is blank or taken, or the URI is not an absolute http(s) URI with
     *     a valid port and no userinfo
     */
    public GuardedHttpClientBuilder upstream(String name, String baseUri, GuardPolicy policy) {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("An upstream needs a name");
        }
        if (upstreams.containsKey(name)) {
            throw new IllegalArgumentException("Upstream '" + name + "' is configured twice");
        }
        upstreams.put(name, new Named(name, parse(name, baseUri), policy));
        return this;
    }

    /**
     * The HttpClient builder to start from, for interceptors, proxies, cookies and the like. Its automatic retries are
     * disabled, because this client runs the one retry loop (it knows the budget, the deadline and idempotency keys;
     * HttpClient's would multiply attempts behind its back); its connection manager is replaced unless you also set
     * {@link #connectionManager}; set request defaults through {@link #requestConfig}, since timeouts are per attempt.
     */
    public GuardedHttpClientBuilder httpClientBuilder(HttpClientBuilder builder) {
        this.httpClientBuilder = Objects.requireNonNull(builder, "builder");
        return this;
    }

    /**
     * A connection manager of your own. Build it with {@link GuardedHttpClients#connectionManagerBuilder()} to keep
     * the strict response parser and the connection checks; otherwise HttpClient's lenient parser decides, so some
     * malformed responses are classified less precisely ({@code connection_terminated} for bytes that are not HTTP)
     * and some are even accepted (a head cut short, {@code Content-Length} with {@code Transfer-Encoding}), and
     * per-upstream {@code max-connections} is not applied. This builder's {@link #sslContext}, {@link #tlsOptions} and
     * response head limits configure the pool it builds itself: with a manager of your own, set them on its builder
     * ({@code setTlsSocketStrategy}).
     */
    public GuardedHttpClientBuilder connectionManager(HttpClientConnectionManager manager) {
        this.connectionManager = Objects.requireNonNull(manager, "manager");
        return this;
    }

    /** The TLS context for https upstreams (its trust material decides which certificates are accepted). */
    public GuardedHttpClientBuilder sslContext(SSLContext context) {
        this.sslContext = Objects.requireNonNull(context, "context");
        return this;
    }

    /**
     * The TLS protocol versions (such as {@code "TLSv1.3"}) and cipher suites offered to https upstreams, as a Spring
     * SSL bundle's {@code options} name them; {@code null} for either keeps the TLS context's own (weak ones left
     * out, as HttpClient does). Applies to the builder's TLS strategy, with or without {@link #sslContext}.
     */
    public GuardedHttpClientBuilder tlsOptions(String[] protocols, String[] cipherSuites) {
        this.tlsProtocols = protocols == null ? null : nonEmpty("TLS protocols", protocols);
        this.tlsCipherSuites = cipherSuites == null ? null : nonEmpty("TLS cipher suites", cipherSuites);
        return this;
    }

    private static String[] nonEmpty(String what, String[] values) {
        if (values.length == 0 || Arrays.stream(values).anyMatch(v -> v == null || v.isBlank())) {
            throw new IllegalArgumentException(what + " must name at least one, and no blank one, was "
                    + Arrays.toString(values));
        }
        return values.clone();
    }

    /** The request settings every call starts from (redirects, cookie spec…); timeouts come from the policy. */
    public GuardedHttpClientBuilder requestConfig(RequestConfig config) {
        this.requestConfig = Objects.requireNonNull(config, "config");
        return this;
    }

    /** Where the meters go; without one, nothing is recorded. */
    public GuardedHttpClientBuilder meterRegistry(MeterRegistry registry) {
        this.meterRegistry = registry;
        return this;
    }

    /** The monotonic time source for deadlines and the retry budget. */
    public GuardedHttpClientBuilder ticker(Ticker ticker) {
        this.ticker = Objects.requireNonNull(ticker, "ticker");
        return this;
    }

    /** The wall clock for the circuit breaker and {@code Retry-After} dates. */
    public GuardedHttpClientBuilder clock(Clock clock) {
        this.clock = Objects.requireNonNull(clock, "clock");
        return this;
    }

    /** How the client waits between attempts. */
    public GuardedHttpClientBuilder sleeper(Sleeper sleeper) {
        this.sleeper = Objects.requireNonNull(sleeper, "sleeper");
        return this;
    }

    /** Longest response header line, in characters (default 16 KiB); longer is {@code http_response_header_size}. */
    public GuardedHttpClientBuilder maxResponseHeaderSize(int chars) {
        this.maxHeaderSize = positive("maxResponseHeaderSize", chars);
        return this;
    }

    /** Most response header fields (default 256); more is {@code http_response_header_section_size}. */
    public GuardedHttpClientBuilder maxResponseHeaderCount(int count) {
        this.maxHeaderCount = positive("maxResponseHeaderCount", count);
        return this;
    }

    /**
     * Largest response head, in characters (default 64 KiB); larger is {@code http_response_header_section_size}. A
     * chunked body's trailer section is held to it too; larger is {@code http_response_trailer_section_size}.
     */
    public GuardedHttpClientBuilder maxResponseHeaderSectionSize(int chars) {
        this.maxHeaderSectionSize = positive("maxResponseHeaderSectionSize", chars);
        return this;
    }

    /**
     * Whether gzip/deflate response bodies are decoded (default true); a decoded response comes without the
     * {@code Content-Encoding}, {@code Content-Length} and {@code Content-MD5} of the coded body. A request for a
     * range ({@code Range} header) is neither offered a coding nor decoded. A proxy passes codings through: false.
     */
    public GuardedHttpClientBuilder contentCompression(boolean decode) {
        this.contentCompression = decode;
        return this;
    }

    /** Whether redirects are followed (default true). A proxy passes them to its client: false. */
    public GuardedHttpClientBuilder redirects(boolean follow) {
        this.redirects = follow;
        return this;
    }

    /**
     * Whether a request without a {@code User-Agent} gets HttpClient's ({@code Apache-HttpClient/5.x}; default true). A
     * proxy forwards its clients' own, and adds none where they sent none: false. The gateway's
     * {@code UpstreamProxyServlet} on a shared client that keeps the default still adds none to what it forwards.
     */
    public GuardedHttpClientBuilder defaultUserAgent(boolean send) {
        this.defaultUserAgent = send;
        return this;
    }

    /**
     * Whether HttpClient keeps a cookie store (default: off, unless you bring your own {@link #httpClientBuilder}).
     * A guarded client usually serves many callers at once; a shared cookie jar would hand one caller's session to
     * the next, and a proxy must pass {@code Set-Cookie} through rather than keep it.
     */
    public GuardedHttpClientBuilder cookieManagement(boolean manage) {
        this.cookieManagement = manage;
        return this;
    }

    /**
     * How many unnamed upstreams (each {@code scheme://host:port} called that no named upstream covers) keep their
     * own breaker, bulkhead, budget and meters at once; default {@value #DEFAULT_MAX_UNNAMED_UPSTREAMS}. Past it, the
     * ones idle longest — circuit closed, no call in flight — are forgotten with their meters, and start afresh if
     * called again; an upstream whose circuit is open is never forgotten. Named upstreams are never forgotten.
     */
    public GuardedHttpClientBuilder maxUnnamedUpstreams(int max) {
        this.maxUnnamedUpstreams = positive("maxUnnamedUpstreams", max);
        return this;
    }

    /** Builds the client; it owns the connection manager it created and closes it on close. */
    public GuardedHttpClient build() {
        Map<String, UpstreamGuard> byName = new LinkedHashMap<>();
        Map<String, UpstreamGuard> byOrigin = new LinkedHashMap<>();
        for (Named n : upstreams.values()) {
            UpstreamGuard guard = new UpstreamGuard(n.name, n.policy(defaults), ticker, clock, meterRegistry);
            byName.put(n.name, guard);
            byOrigin.putIfAbsent(n.origin, guard);
        }
        HttpClientConnectionManager manager = connectionManager != null ? connectionManager : pool();
        HttpClientBuilder builder = httpClientBuilder != null ? httpClientBuilder : HttpClientBuilder.create();
        builder.disableAutomaticRetries();
        if (cookieManagement == null ? httpClientBuilder == null : !cookieManagement) {
            builder.disableCookieManagement();
        }
        if (httpClientBuilder == null) {
            // Without credentials there is nothing to cache; it only costs a lookup per request.
            builder.disableAuthCaching();
            if (NoCredentialsProtocolExec.available()) {
                // ProtocolExec parses every request's path for an authentication scope that, without credentials,
                // is never used; a caller's context with credentials still gets ProtocolExec (see the class).
                builder.setDefaultCredentialsProvider(NoCredentialsProtocolExec.NO_CREDENTIALS);
                builder.replaceExecInterceptor(ChainElement.PROTOCOL.name(), new NoCredentialsProtocolExec());
            }
        }
        builder.setConnectionManager(manager);
        // Around the caller's interceptors and HttpClient's checks (added here, so first of the firsts and last of the
        // lasts), for every request of an attempt, a redirect's too; then every final response head marks its
        // arrival. See GuardedHttpClient.Stage.
        builder.addRequestInterceptorFirst((request, entity, context) ->
                context.setAttribute(GuardedHttpClient.STAGE_ATTRIBUTE, GuardedHttpClient.Stage.PREPARING));
        builder.addRequestInterceptorLast((request, entity, context) ->
                context.setAttribute(GuardedHttpClient.STAGE_ATTRIBUTE, GuardedHttpClient.Stage.REQUEST_READY));
        builder.addResponseInterceptorLast((response, entity, context) ->
                context.setAttribute(GuardedHttpClient.STAGE_ATTRIBUTE, GuardedHttpClient.Stage.HEAD_RECEIVED));
        if (httpClientBuilder == null) {
            // Lets a proxy ask whether a body of unknown length has ended, before it commits (see GuardedConnection).
            builder.setRequestExecutor(GuardedConnection.notingExecutor());
        }
        builder.setDefaultRequestConfig(requestConfig);
        // A proxy's CONNECT is part of connecting (see TunnelWatch).
        builder.addExecInterceptorBefore(ChainElement.CONNECT.name(), TunnelWatch.class.getName() + ".around",
                TunnelWatch.around());
        builder.addExecInterceptorAfter(ChainElement.CONNECT.name(), TunnelWatch.class.getName() + ".within",
                TunnelWatch.within());
        // Below the redirect handler and within the attempt, as FollowUpSentAgain; with a builder of one's own too.
        builder.addExecInterceptorBefore(ChainElement.PROTOCOL.name(), ExpectationSentAgain.class.getName(),
                new ExpectationSentAgain());
        if (!redirects) {
            builder.disableRedirectHandling();
        } else if (httpClientBuilder == null) {
            // Below the redirect handler, where HttpClient's own retries (disabled) would be. It needs the connection
            // the noting executor records, which a builder of the caller's own does not have.
            builder.addExecInterceptorBefore(ChainElement.PROTOCOL.name(), FollowUpSentAgain.class.getName(),
                    new FollowUpSentAgain());
            // A builder of the caller's own keeps the strategy it was given.
            builder.setRedirectStrategy(RedirectTargets.INSTANCE);
        }
        if (!defaultUserAgent) {
            builder.disableDefaultUserAgent();
        } else {
            builder.addRequestInterceptorLast(ForwardedUserAgent.REMOVE_DEFAULT);
        }
        if (!contentCompression) {
            builder.disableContentCompression();
        } else if (httpClientBuilder == null) {
            // A builder of the caller's own keeps the decoders it was given.
            builder.setContentDecoderRegistry(ContentDecoders.registry());
        }
        GuardPolicy fallback = defaults;
        Ticker t = ticker;
        Clock c = clock;
        MeterRegistry registry = meterRegistry;
        Function<String, UpstreamGuard> unnamed = origin -> new UpstreamGuard(origin, fallback, t, c, registry);
        return new GuardedHttpClient(builder.build(), manager, byName, byOrigin, unnamed, maxUnnamedUpstreams,
                requestConfig, ticker, clock, sleeper);
    }

    private PoolingHttpClientConnectionManager pool() {
        Map<String, GuardPolicy> policies = new LinkedHashMap<>();
        // Counted in a long: a few upstreams allowed Integer.MAX_VALUE connections each wrapped around to a pool of 800.
        long total = defaults.maxConnections();
        for (Named n : upstreams.values()) {
            GuardPolicy p = n.policy(defaults);
            policies.putIfAbsent(n.origin, p);
            total += p.maxConnections();
        }
        Map<HttpHost, ConnectionConfig> connectionConfigs = new ConcurrentHashMap<>();
        PoolingHttpClientConnectionManagerBuilder builder = connectionManagerBuilder(maxHeaderSize, maxHeaderCount,
                maxHeaderSectionSize, ticker)
                .setMaxConnTotal((int) Math.min(Integer.MAX_VALUE, Math.max(total, 4L * defaults.maxConnections())))
                .setMaxConnPerRoute(defaults.maxConnections())
                // Resolved on every lease: cached per host so no origin string is built per request, up to a
                // bound, so that a client calling ever new hosts does not grow the cache without end.
                .setConnectionConfigResolver(route -> {
                    HttpHost host = route.getTargetHost();
                    ConnectionConfig config = connectionConfigs.get(host);
                    if (config == null) {
                        config = connectionConfig(policyOf(host, policies));
                        if (connectionConfigs.size() < MAX_CACHED_CONNECTION_CONFIGS) {
                            connectionConfigs.put(host, config);
                        }
                    }
                    return config;
                })
                .setTlsConfigResolver(host -> TlsConfig.custom()
                        .setHandshakeTimeout(timeout(policyOf(host, policies).connectTimeout().toMillis()))
                        .build());
        if (sslContext != null || tlsProtocols != null || tlsCipherSuites != null) {
            // As HttpClient's own default strategy when no context is given: the JDK's default trust.
            builder.setTlsSocketStrategy(new DefaultClientTlsStrategy(
                    sslContext != null ? sslContext : SSLContexts.createDefault(), tlsProtocols, tlsCipherSuites,
                    SSLBufferMode.STATIC, null));
        }
        PoolingHttpClientConnectionManager manager = builder.build();
        // Upstreams behind one scheme://host:port share its pool: it holds as many as the largest of them may, so that
        // none is held below its own max-connections by another configured after it with fewer.
        Map<HttpRoute, Integer> perRoute = new LinkedHashMap<>();
        for (Named n : upstreams.values()) {
            perRoute.merge(new HttpRoute(n.host, null, "https".equals(n.host.getSchemeName())),
                    n.policy(defaults).maxConnections(), Math::max);
        }
        perRoute.forEach(manager::setMaxPerRoute);
        return manager;
    }

    private GuardPolicy policyOf(HttpHost host, Map<String, GuardPolicy> policies) {
        GuardPolicy p = policies.get(GuardedHttpClient.origin(host.getSchemeName(), host.getHostName(), host.getPort()));
        return p != null ? p : defaults;
    }

    /** Every connection config of ours starts here: GuardedConnection decides staleness on every lease. */
    private static ConnectionConfig.Builder guardedConnectionConfig() {
        // Its check is cheap until a connection has idled, so the pool may ask it every time.
        return ConnectionConfig.custom().setValidateAfterInactivity(TimeValue.ZERO_MILLISECONDS);
    }

    private static ConnectionConfig connectionConfig(GuardPolicy policy) {
        return guardedConnectionConfig()
                .setConnectTimeout(timeout(policy.connectTimeout().toMillis()))
                // Bounds reads before the per-attempt response timeout applies, e.g. during the TLS handshake.
                .setSocketTimeout(timeout(policy.responseTimeout().toMillis()))
                .build();
    }

    static PoolingHttpClientConnectionManagerBuilder connectionManagerBuilder(int maxHeaderSize, int maxHeaderCount,
            int maxSectionSize, Ticker ticker) {
        HttpConnectionFactory<ManagedHttpClientConnection> factory = GuardedConnection.factory(
                Http1Config.custom().setMaxLineLength(maxHeaderSize).setMaxHeaderCount(maxHeaderCount).build(),
                maxHeaderCount, maxSectionSize, ticker);
        PoolingHttpClientConnectionManagerBuilder builder = new PoolingHttpClientConnectionManagerBuilder() {
            @Override
            protected HttpClientConnectionOperator createConnectionOperator(SchemePortResolver schemePortResolver,
                    DnsResolver dnsResolver, TlsSocketStrategy tlsSocketStrategy) {
                // Knows whether a failed connect got as far as a TCP connection (see ConnectPhaseOperator). The TLS
                // strategy is whichever was set on this builder, the caller's own included (build() passes HttpClient's
                // default when none was): its handshake failures are classified the same way.
                return new ConnectPhaseOperator(schemePortResolver, dnsResolver,
                        classifiedHandshakeFailures(tlsSocketStrategy), ticker);
            }
        };
        return builder.setConnectionFactory(factory)
                .setDefaultConnectionConfig(guardedConnectionConfig().build());
    }

    /**
     * The TLS handshake is part of connecting, before any request byte is sent, but the JDK reports two of its
     * failures as if a request were in flight; only here is it known which phase failed. A stalled handshake is a plain
     * read timeout, and one trickling in past the handshake timeout is cut off by a {@link HandshakeWatch}: both are
     * RFC 9209 {@code connection_timeout}. A reset during the handshake is a plain socket error, which would read as
     * {@code connection_terminated} (the upstream may have acted); it is a TLS failure like the clean close at the same
     * point (JSSE's "Remote host terminated the handshake"): {@code tls_protocol_error} — unless the upstream sent an
     * alert before it closed, which JSSE leaves unread when its own write failed first: {@code tls_alert_received}.
     * The handshake runs over a {@link TlsTransport}, which also lets the connection tell a {@code close_notify} from a
     * bare TCP close.
     */
    private static TlsSocketStrategy classifiedHandshakeFailures(TlsSocketStrategy tls) {
        if (tls == null) {
            return null;
        }
        return (socket, target, port, attachment, context) -> {
            HandshakeWatch watch = HandshakeWatch.start(socket, attachment, context);
            TlsTransport transport = TlsTransport.over(socket, context);
            SSLSocket upgraded;
            try {
                upgraded = tls.upgrade(transport, target, port, attachment, context);
            } catch (IOException e) {
                if (watch.stop() || e instanceof SocketTimeoutException) {
                    throw handshakeTimedOut(target, port, e);
                }
                if (e instanceof SocketException) {
                    String alert = transport.discardedAlert();
                    if (alert != null) {
                        // A TLS 1.2 server refusing the client's certificate (or its absence) alerts and closes while
                        // the client still writes its flight: the alert, not the broken pipe, is what happened. The
                        // alert goes in the cause as the JDK words a received one, where a gateway reads RFC 9209's
                        // alert-id and alert-message from.
                        SSLHandshakeException received = new SSLHandshakeException("Received fatal alert: " + alert);
                        received.initCause(e);
                        throw new FaultSignal(UpstreamFault.TLS_ALERT_RECEIVED, "TLS handshake with " + target + ":"
                                + port + " ended by a TLS alert from the upstream (" + alert + ")", received);
                    }
                    throw new FaultSignal(UpstreamFault.TLS_PROTOCOL_ERROR,
                            "TLS handshake with " + target + ":" + port + " was cut off by the upstream", e);
                }
                throw e;
            }
            if (watch.stop()) {
                // Done just as the watch closed its socket: the connection is gone all the same.
                throw handshakeTimedOut(target, port, null);
            }
            return upgraded;
        };
    }

    private static FaultSignal handshakeTimedOut(String target, int port, IOException cause) {
        return new FaultSignal(UpstreamFault.CONNECTION_TIMEOUT,
                "TLS handshake with " + target + ":" + port + " timed out", cause);
    }

    private static Timeout timeout(long millis) {
        return Timeout.ofMilliseconds(Math.max(1, millis));
    }

    private static int positive(String what, int value) {
        if (value < 1) {
            throw new IllegalArgumentException(what + " must be at least 1, was " + value);
        }
        return value;
    }

    private static HttpHost parse(String name, String baseUri) {
        if (baseUri == null) {
            // As the Javadoc promises for any URI that is no absolute http(s) one, naming the upstream: a bare "baseUri"
            // NullPointerException left the caller to guess which upstream's setting (an unset variable) was missing.
            throw new IllegalArgumentException("Upstream '" + name + "' needs an absolute http or https URI, was null");
        }
        URI uri;
        try {
            uri = URI.create(baseUri);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("Upstream '" + name + "' has an invalid URI '" + baseUri + "'", e);
        }
        String scheme = uri.getScheme();
        UriAuthorities.HostPort authority = UriAuthorities.of(uri);
        String host = authority == null ? null : authority.host();
        int port = authority == null ? -1 : authority.port();
        if (host == null || !("http".equalsIgnoreCase(scheme) || "https".equalsIgnoreCase(scheme))) {
            throw new IllegalArgumentException("Upstream '" + name + "' needs an absolute http or https URI, was '"
                    + baseUri + "'");
        }
        if (uri.getRawAuthority().indexOf('@') >= 0) {
            // HttpClient would refuse every request to it; the credentials stay out of the message.
            throw new IllegalArgumentException("Upstream '" + name + "' has a userinfo component in its URI ("
                    + scheme + "://" + host + "), which is never sent: credentials go in an Authorization header");
        }
        if (port == 0 || port > 65535) {
            // Port 0 would otherwise become the scheme's default port, an upstream other than the one written.
            throw new IllegalArgumentException("Upstream '" + name + "' has an invalid port " + port
                    + " in '" + baseUri + "'");
        }
        port = port > 0 ? port : ("https".equalsIgnoreCase(scheme) ? 443 : 80);
        return new HttpHost(scheme.toLowerCase(java.util.Locale.ROOT), host, port);
    }

    private static final class Named {
        final String name;
        final HttpHost host;
        final String origin;
        final GuardPolicy policy;

        Named(String name, HttpHost host, GuardPolicy policy) {
            this.name = name;
            this.host = host;
            this.origin = GuardedHttpClient.origin(host.getSchemeName(), host.getHostName(), host.getPort());
            this.policy = policy;
        }

        GuardPolicy policy(GuardPolicy defaults) {
            return policy != null ? policy : defaults;
        }
    }
}
