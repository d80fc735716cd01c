package dev.upstreamguard.client;

import dev.upstreamguard.FaultClassifier;
import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.internal.Call;
import dev.upstreamguard.internal.CancellableCopy;
import dev.upstreamguard.internal.ConnectPhaseOperator;
import dev.upstreamguard.internal.DeadlineTimer;
import dev.upstreamguard.internal.FollowUpSentAgain;
import dev.upstreamguard.internal.GuardedConnection;
import dev.upstreamguard.internal.GuardedEntity;
import dev.upstreamguard.internal.HandshakeWatch;
import dev.upstreamguard.internal.Redaction;
import dev.upstreamguard.internal.ResponseCheck;
import dev.upstreamguard.internal.RetryAfter;
import dev.upstreamguard.internal.RetryRules;
import dev.upstreamguard.internal.UploadWatch;
import dev.upstreamguard.internal.UpstreamGuard;
import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import java.io.IOException;
import java.net.URISyntaxException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import org.apache.hc.client5.http.ClientProtocolException;
import org.apache.hc.client5.http.classic.methods.HttpUriRequestBase;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.impl.classic.CloseableHttpClient;
import org.apache.hc.client5.http.impl.classic.CloseableHttpResponse;
import org.apache.hc.client5.http.impl.io.PoolingHttpClientConnectionManager;
import org.apache.hc.client5.http.io.HttpClientConnectionManager;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.client5.http.protocol.RedirectLocations;
import org.apache.hc.client5.http.routing.RoutingSupport;
import org.apache.hc.core5.concurrent.CancellableDependency;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpEntity;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpHeaders;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.http.HttpStatus;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.apache.hc.core5.io.CloseMode;
import org.apache.hc.core5.net.URIAuthority;
import org.apache.hc.core5.pool.PoolStats;
import org.apache.hc.core5.util.Timeout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An Apache HttpClient 5 classic client whose every call runs through the upstream's policy:
 * {@code deadline → bulkhead → circuit breaker → retry (budgeted, with backoff) → attempt timeout → transport}.
 *
 * <p>Every failure surfaces as an {@link UpstreamException} naming its {@link UpstreamFault}, including failures
 * while the caller reads the response body. Valid upstream responses of any status are returned unchanged. Create
 * one with {@link GuardedHttpClients}.
 *
 * <p>The deadline ({@code total-timeout}) bounds the time until the response head arrives, over every attempt and
 * backoff; reading the body is bounded by the response timeout per read, so a large download is not cut off.
 */
public final class GuardedHttpClient extends CloseableHttpClient {

    /** {@link HttpContext} attribute: the name (a {@code String}) of the upstream a call belongs to. */
    public static final String UPSTREAM_ATTRIBUTE = "dev.upstreamguard.upstream";

    /**
     * {@link HttpContext} attribute: a {@link GuardPolicy} whose timeouts and retry settings replace the upstream's for
     * one call. The upstream's circuit breaker, bulkhead and retry budget still apply. A value of any other type fails
     * the call with an {@link IllegalArgumentException} before any upstream is called.
     */
    public static final String POLICY_ATTRIBUTE = "dev.upstreamguard.policy";

    /**
     * {@link HttpContext} attribute: how far the latest exchange of an attempt got, a {@link Stage}; absent until it
     * has a connection.
     */
    static final String STAGE_ATTRIBUTE = GuardedHttpClient.class.getName() + ".stage";

    /** How far an exchange got, which tells whose failure it is. */
    enum Stage {
        /**
         * Connected, and the request is going through the request interceptors: a failure now (HttpClient refusing
         * the request, as a TRACE with a body; the caller's own interceptor throwing) comes before a byte is sent,
         * and is the caller's, not the upstream's.
         */
        PREPARING,
        /** Past every request interceptor, HttpClient's checks included: what fails now is the exchange's. */
        REQUEST_READY,
        /**
         * The head of the latest response has arrived: HttpClient may still fail after that, reading a body it does
         * not pass on (a redirect's, or one in a coding it cannot decode, which it drains to keep the connection).
         * Such a failure came after the response began, not before it.
         */
        HEAD_RECEIVED
    }

    private static final int MAX_CACHED_HOSTS = 1024;

    /**
     * When our own full bulkhead or pool will have room again, or a half-open circuit's trial calls end, is unknown,
     * but DESIGN.md answers its 503 with a Retry-After: the smallest one, a second, asks callers to back off briefly
     * without keeping them away.
     */
    private static final Duration LIMIT_RETRY_AFTER = Duration.ofSeconds(1);

    private static final String SOURCE_FAILED = "reading the request body from its source failed";

    private static final String NO_TIME_LEFT = "the deadline leaves no time for another attempt";

    private static final String CIRCUIT_OPENED = "the upstream's circuit breaker opened meanwhile";

    /** Headers HttpClient sets from the entity and refuses on a request that sets them itself. */
    private static final String[] FRAMING_HEADERS = {HttpHeaders.CONTENT_LENGTH, HttpHeaders.TRANSFER_ENCODING};

    /** Headers that describe a coded body and not its decoding: gone once the client decoded it. */
    private static final String[] CODED_BODY_HEADERS = {HttpHeaders.CONTENT_ENCODING, HttpHeaders.CONTENT_LENGTH,
        "Content-MD5"};

    private static final Logger LOG = LoggerFactory.getLogger(GuardedHttpClient.class);

    private final CloseableHttpClient delegate;
    private final HttpClientConnectionManager connectionManager;
    private final Map<String, UpstreamGuard> byName;
    private final Map<String, UpstreamGuard> byOrigin;
    /** The same lookup keyed by the caller's {@link HttpHost}, so the hot path builds no origin string. */
    private final Map<HttpHost, UpstreamGuard> byHost = new ConcurrentHashMap<>();
    private final Function<String, UpstreamGuard> unnamed;
    /** The unnamed upstreams by origin: the ones that may be forgotten once there are more than the cap. */
    private final Map<String, UpstreamGuard> unnamedByOrigin = new ConcurrentHashMap<>();
    private final int maxUnnamed;
    private final RequestConfig baseConfig;
    private final Ticker ticker;
    private final Clock clock;
    private final Sleeper sleeper;
    private final DeadlineTimer deadlines = new DeadlineTimer();
    private volatile boolean closed;

    GuardedHttpClient(CloseableHttpClient delegate, HttpClientConnectionManager connectionManager,
            Map<String, UpstreamGuard> named, Map<String, UpstreamGuard> byOrigin,
            Function<String, UpstreamGuard> unnamed, int maxUnnamed, RequestConfig baseConfig, Ticker ticker,
            Clock clock, Sleeper sleeper) {
        this.delegate = delegate;
        this.connectionManager = connectionManager;
        this.byName = new ConcurrentHashMap<>(named);
        this.byOrigin = new ConcurrentHashMap<>(byOrigin);
        this.unnamed = unnamed;
        this.maxUnnamed = maxUnnamed;
        this.baseConfig = baseConfig;
        this.ticker = ticker;
        this.clock = clock;
        this.sleeper = sleeper;
    }

    /**
     * The live state of a named upstream, or of an unnamed one already called ({@code http://host:port}).
     *
     * @throws IllegalArgumentException when no such upstream exists
     */
    public GuardedUpstream upstream(String name) {
        UpstreamGuard guard = byName.get(name);
        if (guard == null) {
            throw new IllegalArgumentException("No upstream named '" + name + "'; known: " + byName.keySet());
        }
        return guard;
    }

    /**
     * Every named upstream and every unnamed upstream called so far, except unnamed ones forgotten while idle (see
     * {@link GuardedHttpClientBuilder#maxUnnamedUpstreams(int)}).
     */
    public Collection<GuardedUpstream> upstreams() {
        return Collections.unmodifiableCollection(new ArrayList<>(byName.values()));
    }

    /** Totals of the connection pool (leased, available, pending), or {@code null} for a non-pooling manager. */
    public PoolStats poolStats() {
        return connectionManager instanceof PoolingHttpClientConnectionManager
                ? ((PoolingHttpClientConnectionManager) connectionManager).getTotalStats() : null;
    }

    @Override
    protected CloseableHttpResponse doExecute(HttpHost target, ClassicHttpRequest request, HttpContext context)
            throws IOException {
        if (closed) {
            // The application's mistake, not a fault of any upstream: no upstream is created, blamed or metered.
            throw new IllegalStateException("This GuardedHttpClient is closed");
        }
        long start = ticker.nanoTime();
        HttpClientContext ctx = context == null ? HttpClientContext.create() : HttpClientContext.castOrCreate(context);
        ctx.setAttribute(HandshakeWatch.TIMER_ATTRIBUTE, deadlines);
        ConnectPhaseOperator.newCall(ctx);
        HttpHost host = target != null ? target : targetOf(request);
        URIAuthority authority = request.getAuthority();
        if (authority != null && authority.getUserInfo() != null) {
            // HttpClient refuses to send it (RFC 9110 §4.2.4), which would read as the upstream's protocol error.
            throw new IllegalArgumentException("The request's URI has a userinfo component, which is never sent: "
                    + Redaction.redact(request.getScheme() + "://"
                            + new URIAuthority(authority.getHostName(), authority.getPort()) + request.getPath())
                    + " (credentials go in an Authorization header)");
        }
        if (host != null && host.getPort() == 0) {
            // Port 0 is no port a server listens on: it would be refused on every attempt, and be counted against the
            // scheme's default port, whose upstream it names once the port is filled in (origin()).
            throw new IllegalArgumentException("Invalid port 0 in the request's target " + host.toURI()
                    + " (request URI '" + Redaction.redact(uriOf(request)) + "')");
        }
        for (String framing : FRAMING_HEADERS) {
            if (request.containsHeader(framing)) {
                // HttpClient frames the body from the entity and refuses, before sending anything, a request that
                // frames it too; that ClientProtocolException would read as the upstream's protocol error.
                throw new IllegalArgumentException("The request sets its own " + framing + " header, which HttpClient "
                        + "refuses to send: the body's framing comes from its entity (remove the header, as when "
                        + "copying the headers of another request)");
            }
        }
        if (request.getEntity() != null && "TRACE".equalsIgnoreCase(request.getMethod())) {
            // HttpClient refuses it as it copies the request (an IllegalStateException), which would read as our
            // internal error, metered against the upstream.
            throw new IllegalArgumentException("A TRACE request must not carry a body (RFC 9110 §9.3.8), and "
                    + "HttpClient refuses to send one: remove the entity");
        }
        Object override = ctx.getAttribute(POLICY_ATTRIBUTE);
        if (override != null && !(override instanceof GuardPolicy)) {
            // Ignored, it ran the call on the upstream's own timeouts and retries as if none had been given (a
            // GuardPolicy.Builder not built, a map of settings): the caller's mistake, told before any upstream is called.
            throw new IllegalArgumentException("The HttpContext attribute '" + POLICY_ATTRIBUTE + "' must be a "
                    + "GuardPolicy, was a " + override.getClass().getName());
        }
        UpstreamGuard upstream = resolve(host, ctx, start);
        GuardPolicy policy = override != null ? (GuardPolicy) override : upstream.policy();
        // As sent: method names are case-sensitive, so "get" is an extension method (tagged OTHER), not a GET.
        String method = request.getMethod();

        Bulkhead bulkhead = upstream.bulkhead();
        if (bulkhead != null && !tryAcquire(bulkhead)) {
            throw rejected(upstream, method, start, UpstreamFault.CONNECTION_LIMIT_REACHED, LIMIT_RETRY_AFTER,
                    bulkhead.getBulkheadConfig().getMaxConcurrentCalls());
        }
        CircuitBreaker breaker = upstream.breaker();
        if (breaker != null && !breaker.tryAcquirePermission()) {
            if (bulkhead != null) {
                bulkhead.onComplete();
            }
            CircuitBreaker.State state = breaker.getState();
            // Half-open with every trial call in flight: when they end is unknown, so the shortest hint, as for a full
            // bulkhead; so too for an opening not yet noted (another thread's call is opening it right now). Forced
            // open by an operator: no time is known at all.
            Duration retryAfter = upstream.retryAfter()
                    .orElse(state == CircuitBreaker.State.FORCED_OPEN ? null : LIMIT_RETRY_AFTER);
            throw rejected(upstream, method, start, UpstreamFault.DESTINATION_UNAVAILABLE, retryAfter, state);
        }
        AtomicBoolean deadlineExpired = new AtomicBoolean();
        AtomicBoolean uploadStalled = new AtomicBoolean();
        AtomicBoolean callersDoing = new AtomicBoolean();
        // Set when the deadline or a stalled upload, not the caller, marked the request cancelled.
        AtomicBoolean cancelledByGuard = new AtomicBoolean();
        // The caller's doing: its own cancel (the deadline and a stalled upload cancel the request too), a deadline that
        // ran out while the request waited for the caller's own body (a proxy's client stalling mid-upload), an
        // interrupt of the caller's thread, or the application closing the client under the call (which breaks its
        // connection: that says nothing about the upstream).
        ClassicHttpRequest exchange = request instanceof CancellableDependency ? request : CancellableCopy.of(request);
        Call call = new Call(upstream, method, start, ticker, breaker != null, bulkhead != null,
                () -> callersDoing.get() || closed
                        || !deadlineExpired.get() && !uploadStalled.get() && isCancelled(exchange));
        ClassicHttpResponse response;
        try {
            response = attempts(host, exchange, ctx, policy, method, call, deadlineExpired, uploadStalled,
                    callersDoing, cancelledByGuard);
        } catch (UpstreamException e) {
            call.failed(e.fault(), e);
            if (cancelledByGuard.get() && request instanceof HttpUriRequestBase) {
                // The cancel was ours, to end this call; left in place it would fail the caller's next use of the
                // request object at once, as if the caller had cancelled it.
                ((HttpUriRequestBase) request).reset();
            }
            throw e;
        } catch (IOException | RuntimeException | Error e) {
            // Not the upstream's: a bug, or the caller's own (its interceptor, a request refused before sending).
            call.failed(UpstreamFault.PROXY_INTERNAL_ERROR, e);
            throw e;
        }
        call.responded(response.getCode());
        Object check = ctx.getAttribute(ResponseCheck.ATTRIBUTE);
        ResponseCheck.Refusal refusal;
        try {
            refusal = check instanceof ResponseCheck ? ((ResponseCheck) check).check(response) : null;
        } catch (RuntimeException | Error e) {
            abort(response);
            call.failed(UpstreamFault.PROXY_INTERNAL_ERROR, e);
            throw e;
        }
        if (refusal != null) {
            // Not read, so not drained: the connection is closed rather than kept for a body nobody wants.
            abort(response);
            UpstreamException e = failure(call, refusal.fault(), refusal.why(), null, null);
            call.failed(e.fault(), e);
            throw e;
        }
        HttpEntity entity = response.getEntity();
        if (entity != null && GuardedEntity.isDecoded(entity)) {
            // HttpClient 5.6 decodes the body but, unlike 5.1 to 5.3, leaves the coded body's headers in place: the
            // caller read "Content-Encoding: gzip" and the coded length over plain content, and one passing them on
            // (a gateway copying headers) had its client decode it again or wait for bytes that never come.
            for (String coded : CODED_BODY_HEADERS) {
                response.removeHeaders(coded);
            }
        }
        long maxBody = policy.maxResponseBody();
        if (entity == null) {
            call.succeeded();
        } else if (entity.getContentLength() > maxBody) {
            abort(response);
            UpstreamException e = failure(call, UpstreamFault.HTTP_RESPONSE_BODY_SIZE, "its Content-Length of "
                    + entity.getContentLength() + " bytes is over max-response-body ("
                    + GuardPolicy.formatBytes(maxBody) + ")", null, null);
            call.failed(e.fault(), e);
            throw e;
        } else {
            // A body of known length within the limit cannot outgrow it: only one without a length is counted.
            long limit = entity.getContentLength() < 0 ? maxBody : Long.MAX_VALUE;
            ClassicHttpResponse head = response;
            response.setEntity(new GuardedEntity(entity, call, limit, () -> abort(head)));
        }
        return response instanceof CloseableHttpResponse ? (CloseableHttpResponse) response
                : CloseableHttpResponse.adapt(response);
    }

    private ClassicHttpResponse attempts(HttpHost host, ClassicHttpRequest request, HttpClientContext ctx,
            GuardPolicy policy, String method, Call call, AtomicBoolean deadlineExpired, AtomicBoolean uploadStalled,
            AtomicBoolean callersDoing, AtomicBoolean cancelledByGuard) throws IOException {
        UpstreamGuard upstream = call.upstream();
        GuardPolicy.Retry retry = policy.retry();
        int maxAttempts = retry.enabled() ? retry.maxAttempts() : 1;
        boolean idempotent = RetryRules.isIdempotent(request);
        HttpEntity body = request.getEntity();
        boolean replayable = body == null || body.isRepeatable();
        // A request that cannot be retried cannot shrug off a pooled connection the upstream closed while it idled.
        boolean probeReused = !(idempotent && replayable && maxAttempts > 1);
        boolean ranged = request.containsHeader(HttpHeaders.RANGE);
        RequestConfig base = requestConfigOf(request, ctx);
        long deadline = call.startNanos() + policy.totalTimeout().toNanos();
        List<Throwable> earlier = null;
        upstream.budget().onCall();
        if (maxAttempts > 1) {
            ctx.setAttribute(FollowUpSentAgain.ALLOWED_ATTRIBUTE, Boolean.TRUE);
        } else {
            ctx.removeAttribute(FollowUpSentAgain.ALLOWED_ATTRIBUTE);
        }
        // The attempt whose request was sent again after a pooled connection was found closed under it, and whether
        // the next pass through the loop is that sending (the same attempt) rather than the next attempt.
        int sentAgainOn = 0;
        boolean sendAgain = false;
        for (int attempt = 1; ; attempt = sendAgain ? attempt : attempt + 1) {
            // Sending again, any pooled connection is probed first: the upstream may have closed the others too.
            boolean probe = probeReused || sendAgain;
            sendAgain = false;
            if (call.cancelledByCaller() || interrupted(callersDoing)) {
                // Cancelled (or interrupted) before the call or while waiting to retry: this attempt is never made
                // (HttpClient would fail it with a state error, which is no internal error), so it is not counted.
                throw failure(call, UpstreamFault.CONNECTION_TERMINATED, gaveUpHow(), null, earlier);
            }
            call.attempt(attempt);
            long remaining = deadline - ticker.nanoTime();
            if (remaining <= 0) {
                throw deadlineRanOut(call, policy, null, earlier);
            }
            RequestConfig config = attemptConfig(upstream, base, policy, remaining);
            if (ranged && config.isContentCompressionEnabled()) {
                // A range is a slice of the coded representation (Content-Range counts coded bytes: a precompressed
                // file, an object stored gzipped), which no decoder can start in the middle of: a valid 206 failed as
                // http_response_content_coding. As OkHttp does, a request for a range is neither offered a coding
                // nor decoded: the caller gets the bytes it asked for, with the headers that describe them.
                config = RequestConfig.copy(config).setContentCompressionEnabled(false).build();
            }
            applyAttemptConfig(request, ctx, config);
            ctx.setRedirectLocations(null); // this attempt's redirects only, see followedRedirect
            ctx.removeAttribute(STAGE_ATTRIBUTE);
            GuardedConnection.forgetSwitch(ctx);
            GuardedConnection.forgetConnection(ctx);
            ClassicHttpResponse response;
            // Write timeouts do not exist for sockets: this bounds a body write the upstream stopped taking.
            UploadWatch upload = body != null && request instanceof CancellableDependency ? new UploadWatch(body,
                    policy.responseTimeout().toNanos(), () -> {
                        uploadStalled.set(true);
                        cancelOwn(request, cancelledByGuard);
                    }) : null;
            // Read timeouts bound each silence; this bounds the whole head, however slowly it trickles in.
            DeadlineTimer.Handle timer = request instanceof CancellableDependency
                    ? deadlines.arm(() -> {
                        boolean onSource = upload != null && upload.waitingOnSource();
                        if (onSource) {
                            // Still waiting for the caller's body, not for the upstream: the time ran out on the
                            // caller's side, which says nothing about the upstream's health.
                            callersDoing.set(true);
                        }
                        deadlineExpired.set(true);
                        cancelOwn(request, cancelledByGuard);
                        if (onSource) {
                            // The cancel frees the connection, but the caller's thread stays blocked in its own
                            // source until that returns (a gateway's silent client: until the container's read
                            // timeout, up to a minute), and with it the bulkhead and any half-open trial permit; one
                            // silent client could hold a route's every permit. The call is over at its deadline:
                            // finished here, once, as the caller's thread would finish it (its later failure is then
                            // a no-op).
                            call.failed(UpstreamFault.HTTP_RESPONSE_TIMEOUT, null);
                        }
                    }, remaining)
                    : null;
            if (upload != null) {
                request.setEntity(upload);
                upload.start(deadlines);
            }
            if (probe) {
                GuardedConnection.probeBeforeReuse(true);
            }
            try {
                response = delegate.executeOpen(host, request, ctx);
            } catch (RuntimeException e) {
                if (deadlineExpired.get()) {
                    // The deadline's cancel landed in a wait HttpClient ends with a runtime exception (for a pooled
                    // connection: CancellationException): the deadline ran out, as on any other path, but in a wait
                    // for our own pool, which says nothing about the upstream's health.
                    call.endedInOwnWait();
                    throw deadlineRanOut(call, policy, e, earlier);
                }
                if (call.cancelledByCaller() || interrupted(callersDoing)) {
                    // A cancel racing the start of the attempt, or an interrupt while it waits for a pooled connection,
                    // makes HttpClient throw a state error: the caller's doing.
                    throw failure(call, UpstreamFault.CONNECTION_TERMINATED, gaveUpHow(), e, earlier);
                }
                if (upload != null && upload.sourceFailed()) {
                    callersDoing.set(true);
                    throw failure(call, UpstreamFault.CONNECTION_TERMINATED, SOURCE_FAILED, e, earlier);
                }
                if (ctx.getAttribute(STAGE_ATTRIBUTE) == Stage.PREPARING) {
                    // The caller's own request interceptor threw: its exception, kept off the upstream's record.
                    callersDoing.set(true);
                    throw e;
                }
                // HttpClient's own state errors (a closed pool, a broken interceptor) are bugs, not upstream faults,
                // but the caller still gets the one exception type it handles, with the original as cause.
                throw failure(call, UpstreamFault.PROXY_INTERNAL_ERROR, "the client failed internally", e, earlier);
            } catch (IOException e) {
                if (timer != null) {
                    // Disarmed before any backoff: the next attempt arms its own.
                    timer.cancel();
                }
                if (ctx.getAttribute(STAGE_ATTRIBUTE) == Stage.PREPARING && !deadlineExpired.get()
                        && !call.cancelledByCaller() && !interrupted(callersDoing)) {
                    // Failed in the request interceptors, so before a byte was sent: nothing the upstream did, and not
                    // retried. An HttpException (wrapped by HttpClient) refuses the request: the caller's mistake, like
                    // the refusals checked up front; anything else is the caller's own interceptor's, as thrown.
                    callersDoing.set(true);
                    if (e instanceof ClientProtocolException && e.getCause() instanceof HttpException) {
                        throw new IllegalArgumentException("The request was refused before it was sent: "
                                + e.getCause().getMessage(), e);
                    }
                    throw e;
                }
                if (GuardedConnection.switchedProtocols(ctx) && !deadlineExpired.get() && !call.cancelledByCaller()) {
                    // The upstream agreed to the protocol switch the request asked for, which this client cannot make:
                    // the request's doing, not a fault of the upstream's (no retry, no breaker, recorded as cancelled).
                    callersDoing.set(true);
                    throw new IllegalArgumentException("The upstream answered 101 Switching Protocols to the request's"
                            + " Upgrade; the guarded client speaks HTTP/1.1 only and cannot switch protocols", e);
                }
                // Once a head arrived, a broken connection is a response cut short, not one that never began.
                UpstreamFault fault = ctx.getAttribute(STAGE_ATTRIBUTE) == Stage.HEAD_RECEIVED
                        ? FaultClassifier.classifyBodyFailure(e) : FaultClassifier.classify(e);
                if (deadlineExpired.get() || cappedByDeadline(fault, policy, remaining)) {
                    // The attempt timed out on the time the deadline left it, not on its own timeout.
                    if (deadlineExpired.get() && callersDoing.get()) {
                        // Set by the deadline while the body waited for its source: told to a proxy through the
                        // context, on this thread rather than the timer's.
                        UploadWatch.noteDeadlineOnSource(ctx);
                    }
                    if (fault == UpstreamFault.CONNECTION_LIMIT_REACHED) {
                        // In our own pool's queue: nothing the upstream did (a 504 all the same, never retried).
                        call.endedInOwnWait();
                    }
                    fault = UpstreamFault.HTTP_RESPONSE_TIMEOUT;
                } else if (uploadStalled.get()) {
                    fault = UpstreamFault.CONNECTION_WRITE_TIMEOUT;
                } else if (call.cancelledByCaller() || interrupted(callersDoing)) {
                    // Whatever the cancel broke (a connect in progress reads as refused), the call ended the same way;
                    // an interrupt ends a wait for a pooled connection as "Request aborted".
                    fault = UpstreamFault.CONNECTION_TERMINATED;
                } else if (upload != null && upload.sourceFailed()) {
                    // The caller's own body failed to be read (its stream threw): the upstream did nothing wrong.
                    callersDoing.set(true);
                    fault = UpstreamFault.CONNECTION_TERMINATED;
                }
                // Why the request may not go out again at all, whatever attempts are left.
                String whyNotAgain = deadlineExpired.get() ? "the total deadline ran out"
                        // The watch cancelled the request to break the write; it cannot be sent again.
                        : uploadStalled.get() ? "the upstream stopped taking the request body"
                        : upload != null && upload.sourceFailed() ? SOURCE_FAILED
                        // A cancelled request is over: the caller does not want an answer any more.
                        : isCancelled(request) || callersDoing.get() || closed ? gaveUpHow()
                        : RetryRules.whyNotRetry(fault, followedRedirect(ctx), idempotent, replayable, retry);
                if (whyNotAgain == null && fault == UpstreamFault.CONNECTION_TERMINATED && !probeReused
                        && sentAgainOn != attempt && !followedRedirect(ctx)
                        && GuardedConnection.droppedUnderRequest(ctx)) {
                    // RFC 9112 §9.3.1: a request that failed on a reused connection before any response, the pool's
                    // race with an upstream closing it while it idled, may be sent again when it may be retried at
                    // all (idempotent, replayable, retries on). The upstream took no request, so this is no attempt:
                    // at once, on a fresh connection, without spending the retry budget, once per attempt.
                    LOG.debug("Sending {} to upstream '{}' again on a fresh connection: the pooled one was closed "
                            + "(attempt {} of {})", method, upstream.name(), attempt, maxAttempts);
                    sentAgainOn = attempt;
                    sendAgain = true;
                    continue;
                }
                String why = attempt >= maxAttempts ? "no attempts are left" : whyNotAgain;
                Duration wait = why == null ? backoff(attempt, retry) : Duration.ZERO;
                if (why == null && ticker.nanoTime() + wait.toNanos() >= deadline) {
                    why = NO_TIME_LEFT;
                }
                if (why == null && circuitOpen(call)) {
                    why = CIRCUIT_OPENED;
                }
                if (why == null && !upstream.budget().tryRetry()) {
                    upstream.metrics().recordBudgetExhausted();
                    why = "the retry budget is spent";
                }
                if (why != null) {
                    throw failure(call, fault, why, e, earlier);
                }
                LOG.debug("Retrying {} to upstream '{}' after {} (attempt {} of {}, waiting {} ms)", method,
                        upstream.name(), fault.type(), attempt, maxAttempts, wait.toMillis());
                // A retry not made after the wait gives its budget token back: it sent the upstream nothing.
                if (!pause(wait)) {
                    // Interrupted: the caller gave up, as by a cancel landing here, whatever the attempt met.
                    callersDoing.set(true);
                    upstream.budget().giveBack();
                    throw failure(call, fault, "interrupted while waiting to retry", e, earlier);
                }
                if (outlasted(deadline)) {
                    // The wait overran (a busy machine): no attempt timed out, the last one's fault is the call's.
                    upstream.budget().giveBack();
                    throw failure(call, fault, NO_TIME_LEFT, e, earlier);
                }
                if (circuitOpen(call)) {
                    // Other calls' failures opened it during the wait.
                    upstream.budget().giveBack();
                    throw failure(call, fault, CIRCUIT_OPENED, e, earlier);
                }
                earlier = remember(earlier, e);
                upstream.metrics().recordRetry(fault.type());
                continue;
            } finally {
                if (timer != null) {
                    timer.cancel();
                }
                if (upload != null) {
                    upload.stop();
                    request.setEntity(body);
                }
                if (probe) {
                    GuardedConnection.probeBeforeReuse(false);
                }
            }
            if (deadlineExpired.get()) {
                // The head arrived just as the deadline cancelled the exchange: its body can no longer be read.
                discard(response);
                throw deadlineRanOut(call, policy, null, earlier);
            }
            HttpEntity entity = response.getEntity();
            if (entity != null && entity.isStreaming()
                    && config.getResponseTimeout().toMilliseconds() < policy.responseTimeout().toMillis()) {
                // The read timeout was cut to what the deadline left, to end a silent head at the deadline; the body is
                // bounded by the response timeout alone. A streamed entity still holds its connection: it is ours.
                GuardedConnection.readTimeout(ctx, Timeout.of(policy.responseTimeout()));
            }
            int status = response.getCode();
            if (status == HttpStatus.SC_REQUEST_TIMEOUT && GuardedConnection.timedOutWhileIdle(ctx)
                    && maxAttempts > 1 && replayable && (idempotent || !followedRedirect(ctx))) {
                // A 408 as the first thing on a connection reused from the pool is the upstream closing it for idling
                // as the request went out: the same race as a close at that moment, which a fresh connection avoids,
                // so the request is sent again in the same way, as no attempt of its own. RFC 9110 §15.5.9: the
                // upstream did not receive the request whole, and the client may repeat it; that says more than a bare
                // close, so any method goes again, as browsers do. The connection is closed, not drained: the upstream
                // is closing it.
                if (sentAgainOn != attempt) {
                    LOG.debug("Sending {} to upstream '{}' again on a fresh connection: the pooled one was timed out "
                            + "with a 408 (attempt {} of {})", method, upstream.name(), attempt, maxAttempts);
                    abort(response);
                    sentAgainOn = attempt;
                    sendAgain = true;
                    continue;
                }
                // Met again by the sending again: a retry like any other, at once (the upstream is not busy).
                boolean mayRetry = attempt < maxAttempts && !circuitOpen(call);
                if (mayRetry && upstream.budget().tryRetry()) {
                    LOG.debug("Retrying {} to upstream '{}' after a 408 on a connection that had idled (attempt {} of "
                            + "{})", method, upstream.name(), attempt, maxAttempts);
                    abort(response);
                    upstream.metrics().recordRetry("status_" + status);
                    continue;
                }
                if (mayRetry) {
                    upstream.metrics().recordBudgetExhausted();
                }
                return response;
            }
            if (attempt < maxAttempts && retry.enabled() && idempotent && replayable
                    && retry.statuses().contains(status)) {
                Duration retryAfter = RetryAfter.of(response, clock.instant());
                if (retryAfter != null && retryAfter.compareTo(retry.maxRetryAfter()) > 0) {
                    // The upstream asks for a longer pause than we may wait: the caller gets its answer at once.
                    return response;
                }
                Duration wait = retryAfter != null ? retryAfter : backoff(attempt, retry);
                if (ticker.nanoTime() + wait.toNanos() >= deadline || circuitOpen(call)) {
                    return response;
                }
                if (!upstream.budget().tryRetry()) {
                    upstream.metrics().recordBudgetExhausted();
                    return response;
                }
                LOG.debug("Retrying {} to upstream '{}' after status {} (attempt {} of {}, waiting {} ms)", method,
                        upstream.name(), status, attempt, maxAttempts, wait.toMillis());
                // Kept until the wait is over: if it is cut short, or overran the deadline, the upstream's own answer is
                // the call's answer.
                if (!pause(wait) || outlasted(deadline) || circuitOpen(call)) {
                    upstream.budget().giveBack();
                    return response;
                }
                discard(response);
                upstream.metrics().recordRetry("status_" + status);
                continue;
            }
            return response;
        }
    }

    /**
     * Whether the failed attempt had followed a redirect: HttpClient's redirect handling (on in the default client)
     * runs inside one attempt, so a failure to reach the redirect's target comes after the first upstream answered.
     */
    private static boolean followedRedirect(HttpClientContext ctx) {
        RedirectLocations redirects = ctx.getRedirectLocations();
        return redirects != null && redirects.size() > 0;
    }

    private static boolean cappedByDeadline(UpstreamFault fault, GuardPolicy policy, long remainingNanos) {
        switch (fault) {
            case CONNECTION_READ_TIMEOUT:
                return remainingNanos < policy.responseTimeout().toNanos();
            case DNS_TIMEOUT: // the lookup is bounded by the connect timeout, capped alike
            case CONNECTION_TIMEOUT:
                return remainingNanos < policy.connectTimeout().toNanos();
            case CONNECTION_LIMIT_REACHED:
                return remainingNanos < policy.poolTimeout().toNanos();
            default:
                return false;
        }
    }

    /**
     * Whether the upstream's circuit is open now. A call takes one breaker permit for all its attempts, but once other
     * calls' failures have opened the circuit (or an operator forced it open), a retry would send the upstream the very
     * load the open circuit turns away: the call ends with what its last attempt got instead. So too once the circuit
     * opened and half-opened again since the call began: the upstream is to get the trial calls only. A trial call
     * itself, which took its permit half-open, keeps its retries.
     */
    private static boolean circuitOpen(Call call) {
        UpstreamGuard upstream = call.upstream();
        CircuitBreaker breaker = upstream.breaker();
        if (breaker == null) {
            return false;
        }
        CircuitBreaker.State state = breaker.getState();
        return state == CircuitBreaker.State.OPEN || state == CircuitBreaker.State.FORCED_OPEN
                || state == CircuitBreaker.State.HALF_OPEN && call.breakerChangedSincePermit();
    }

    /** Whether the deadline has passed, as it may during a wait that fitted it but overran. */
    private boolean outlasted(long deadline) {
        return ticker.nanoTime() - deadline >= 0;
    }

    /** Waits before a retry; {@code false}, with the thread's interrupt status kept, when interrupted. */
    private boolean pause(Duration wait) {
        try {
            sleeper.sleep(wait);
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private UpstreamException deadlineRanOut(Call call, GuardPolicy policy, Throwable cause, List<Throwable> earlier) {
        return failure(call, UpstreamFault.HTTP_RESPONSE_TIMEOUT, "the total deadline of "
                + GuardPolicy.format(policy.totalTimeout()) + " ran out", cause, earlier);
    }

    private UpstreamException failure(Call call, UpstreamFault fault, String why, Throwable cause,
            List<Throwable> earlier) {
        String upstream = call.upstream().name();
        Duration retryAfter = fault == UpstreamFault.CONNECTION_LIMIT_REACHED ? LIMIT_RETRY_AFTER : null;
        UpstreamException e = new UpstreamException(fault, upstream, call.attempts(), retryAfter, call.elapsedNanos(),
                "Upstream '" + upstream + "' failed: " + fault.type() + " after " + call.attempts()
                        + (call.attempts() == 1 ? " attempt" : " attempts") + "; not retried because " + why
                        + (cause == null ? "" : " (" + Redaction.describe(cause) + ")"),
                cause);
        if (earlier != null) {
            for (Throwable t : earlier) {
                e.addSuppressed(t);
            }
        }
        return e;
    }

    private UpstreamException rejected(UpstreamGuard upstream, String method, long start, UpstreamFault fault,
            Duration retryAfter, Object detail) {
        long nanos = ticker.nanoTime() - start;
        upstream.countFault(fault);
        upstream.metrics().recordCall(method, "rejected", 0, fault, nanos);
        return new Rejection(fault, upstream.name(), retryAfter, nanos, detail);
    }

    private UpstreamGuard resolve(HttpHost host, HttpClientContext ctx, long start) throws UpstreamException {
        Object name = ctx.getAttribute(UPSTREAM_ATTRIBUTE);
        if (name != null) {
            UpstreamGuard guard = byName.get(name.toString());
            if (guard == null) {
                throw new UpstreamException(UpstreamFault.PROXY_CONFIGURATION_ERROR, name.toString(), 0, null,
                        ticker.nanoTime() - start, "No upstream named '" + name + "' is configured; known: "
                                + byName.keySet(), null);
            }
            return guard;
        }
        if (host == null) {
            throw new UpstreamException(UpstreamFault.DESTINATION_NOT_FOUND, "unknown", 0, null,
                    ticker.nanoTime() - start, "The request names no target host", null);
        }
        String scheme = host.getSchemeName();
        if (!"http".equalsIgnoreCase(scheme) && !"https".equalsIgnoreCase(scheme)) {
            throw new UpstreamException(UpstreamFault.PROXY_CONFIGURATION_ERROR, host.toHostString(), 0, null,
                    ticker.nanoTime() - start, "Only http and https upstreams are supported, not '" + scheme + "'",
                    null);
        }
        UpstreamGuard cached = byHost.get(host);
        if (cached != null) {
            cached.used(start);
            return cached;
        }
        String origin = origin(host.getSchemeName(), host.getHostName(), host.getPort());
        UpstreamGuard guard = byOrigin.get(origin);
        if (guard == null) {
            guard = byOrigin.computeIfAbsent(origin, o -> {
                UpstreamGuard g = unnamed.apply(o);
                byName.putIfAbsent(o, g);
                unnamedByOrigin.put(o, g);
                return g;
            });
            if (unnamedByOrigin.size() > maxUnnamed) {
                forgetIdleUnnamed(guard);
            }
        }
        guard.used(start);
        if (byHost.size() < MAX_CACHED_HOSTS) {
            byHost.put(host, guard);
            if (byOrigin.get(origin) != guard) {
                // Forgotten meanwhile: forgetting removes it from byOrigin before it clears this cache.
                byHost.remove(host, guard);
            }
        }
        return guard;
    }

    /**
     * Keeps a client that calls an open-ended set of hosts (webhooks, a crawler) from holding a breaker, a bulkhead
     * and meters for every host it ever called: past {@code maxUnnamed}, the unnamed upstreams idle longest are
     * forgotten, meters included. Only idle ones (circuit closed, nothing in flight) go, so an open circuit keeps
     * protecting its upstream; when none is idle the cap is exceeded rather than a call refused.
     */
    private synchronized void forgetIdleUnnamed(UpstreamGuard keep) {
        while (unnamedByOrigin.size() > maxUnnamed) {
            UpstreamGuard oldest = null;
            for (UpstreamGuard g : unnamedByOrigin.values()) {
                if (g != keep && g.isIdle() && (oldest == null || g.lastUsedNanos() - oldest.lastUsedNanos() < 0)) {
                    oldest = g;
                }
            }
            if (oldest == null) {
                return;
            }
            UpstreamGuard forgotten = oldest;
            String origin = forgotten.name();
            byOrigin.remove(origin, forgotten);
            byName.remove(origin, forgotten);
            unnamedByOrigin.remove(origin, forgotten);
            byHost.values().removeIf(g -> g == forgotten);
            forgotten.close();
            LOG.debug("Forgot idle unnamed upstream '{}': more than {} unnamed upstreams", origin, maxUnnamed);
        }
    }

    /**
     * {@code scheme://host:port} with the scheme's default port filled in: the key of an unnamed upstream. An IPv6
     * literal is bracketed as in a URI whether or not it came so: a URI gives {@code [::1]}, while an {@link HttpHost}
     * built by hand holds {@code ::1}, and both must reach the same upstream.
     */
    static String origin(String scheme, String host, int port) {
        String s = scheme == null ? "http" : scheme.toLowerCase(Locale.ROOT);
        int p = port > 0 ? port : ("https".equals(s) ? 443 : 80);
        String h = host.toLowerCase(Locale.ROOT);
        return s + "://" + (h.indexOf(':') >= 0 && !h.startsWith("[") ? "[" + h + "]" : h) + ":" + p;
    }

    /**
     * The host HttpClient itself would call when given none: from the request's authority, not from
     * {@code java.net.URI}, which has no host for names HttpClient calls (an underscore, as in Compose service names).
     */
    private static HttpHost targetOf(ClassicHttpRequest request) {
        try {
            return RoutingSupport.determineHost(request);
        } catch (HttpException e) {
            return null;
        }
    }

    private static String uriOf(ClassicHttpRequest request) {
        try {
            return request.getUri().toString();
        } catch (URISyntaxException e) {
            return request.getRequestUri();
        }
    }

    private RequestConfig requestConfigOf(ClassicHttpRequest request, HttpClientContext ctx) {
        if (request instanceof HttpUriRequestBase && ((HttpUriRequestBase) request).getConfig() != null) {
            return ((HttpUriRequestBase) request).getConfig();
        }
        RequestConfig fromContext = ctx.getRequestConfig();
        return fromContext != null && fromContext != RequestConfig.DEFAULT ? fromContext : baseConfig;
    }

    /**
     * The request config of one attempt: the base with the policy's timeouts, each capped by the time the deadline
     * leaves. The usual case — the upstream's own policy, the client's base config, no cap — is built once.
     */
    @SuppressWarnings("deprecation") // RequestConfig's connect timeout is the only per-attempt one; it caps by the deadline
    private RequestConfig attemptConfig(UpstreamGuard upstream, RequestConfig base, GuardPolicy policy,
            long remainingNanos) {
        boolean usual = base == baseConfig && policy == upstream.policy()
                && remainingNanos > policy.responseTimeout().toNanos()
                && remainingNanos > policy.connectTimeout().toNanos()
                && remainingNanos > policy.poolTimeout().toNanos();
        if (usual && upstream.attemptConfig() != null) {
            return upstream.attemptConfig();
        }
        RequestConfig config = RequestConfig.copy(base)
                .setResponseTimeout(cap(policy.responseTimeout(), remainingNanos))
                .setConnectTimeout(cap(policy.connectTimeout(), remainingNanos))
                .setConnectionRequestTimeout(cap(policy.poolTimeout(), remainingNanos))
                .build();
        if (usual) {
            upstream.attemptConfig(config);
        }
        return config;
    }

    private static void applyAttemptConfig(ClassicHttpRequest request, HttpClientContext ctx, RequestConfig config) {
        if (request instanceof HttpUriRequestBase && ((HttpUriRequestBase) request).getConfig() != null) {
            // HttpClient prefers the request's own config over the context's.
            ((HttpUriRequestBase) request).setConfig(config);
        }
        ctx.setRequestConfig(config);
    }

    private static Timeout cap(Duration timeout, long remainingNanos) {
        long millis = Math.max(1, Math.min(timeout.toMillis(), TimeUnit.NANOSECONDS.toMillis(remainingNanos)));
        return Timeout.ofMilliseconds(millis);
    }

    /**
     * Takes a bulkhead permit without waiting. Resilience4j's zero-wait acquire still throws on an interrupted thread and
     * reports it as a full bulkhead; a pending interrupt is the caller's business, so it is set aside for the attempt
     * and restored.
     */
    private static boolean tryAcquire(Bulkhead bulkhead) {
        boolean interrupted = Thread.interrupted();
        try {
            return bulkhead.tryAcquirePermission();
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Whether the calling thread was interrupted: its caller has given up, as by cancelling (HttpClient ends a wait for
     * a pooled connection on it); noted in {@code callersDoing} so that the call is recorded as cancelled.
     */
    private static boolean interrupted(AtomicBoolean callersDoing) {
        if (!Thread.currentThread().isInterrupted()) {
            return false;
        }
        callersDoing.set(true);
        return true;
    }

    private String gaveUpHow() {
        return closed ? "the client was closed"
                : Thread.currentThread().isInterrupted() ? "the caller's thread was interrupted"
                : "the caller cancelled the request";
    }

    private static void cancelOwn(ClassicHttpRequest request, AtomicBoolean cancelledByGuard) {
        // Marked before the cancel: cancelling breaks the connection, and the caller's thread, failing at once, must
        // find the mark to take its own cancel off the request again; set after, it lost that race under load. Under
        // the lock: the upload watch and the deadline may both fire, and the one whose cancel comes second must not
        // take back the first one's mark.
        synchronized (cancelledByGuard) {
            boolean before = cancelledByGuard.getAndSet(true);
            if (!((CancellableDependency) request).cancel()) {
                cancelledByGuard.set(before); // cancelled already, and not by the guard
            }
        }
    }

    private static boolean isCancelled(ClassicHttpRequest request) {
        return request instanceof CancellableDependency && ((CancellableDependency) request).isCancelled();
    }

    /** Exponential backoff with full jitter: uniformly random below {@code min(max, initial × 2^(attempt-1))}. */
    private static Duration backoff(int attempt, GuardPolicy.Retry retry) {
        long initial = retry.initialBackoff().toNanos();
        long cap = retry.maxBackoff().toNanos();
        int doublings = Math.min(attempt - 1, 62);
        // Compared before shifting: initial × 2^n past the cap may be past what a long holds, too.
        long ceiling = initial > cap >> doublings ? cap : initial << doublings;
        return Duration.ofNanos(ceiling <= 0 ? 0 : ThreadLocalRandom.current().nextLong(ceiling + 1));
    }

    /** Closes the connection under a response without reading what is left of its body. */
    private static void abort(ClassicHttpResponse response) {
        if (response instanceof CloseableHttpResponse) {
            ((CloseableHttpResponse) response).close(CloseMode.IMMEDIATE);
        } else {
            try {
                response.close();
            } catch (IOException ignored) {
                // closing is all that was wanted
            }
        }
    }

    private static void discard(ClassicHttpResponse response) {
        HttpEntity entity = response.getEntity();
        long length = entity == null ? -1 : entity.getContentLength();
        if (length >= 0 && length <= 16 * 1024) {
            try {
                // A small body already received is read so the connection can be reused for the retry. One still
                // arriving is not waited for: nothing but the per-read timeout would bound that wait, and an upstream
                // trickling it would hold the call past its deadline; a fresh connection costs less.
                if (entity.getContent().available() >= length) {
                    EntityUtils.consume(entity);
                    response.close();
                    return;
                }
            } catch (IOException e) {
                // Unreadable after all: the connection goes instead.
            }
        }
        abort(response);
    }

    private static List<Throwable> remember(List<Throwable> earlier, Throwable e) {
        List<Throwable> list = earlier == null ? new ArrayList<>(2) : earlier;
        list.add(e);
        return list;
    }

    /**
     * Closes the client and its connections. Calls still in flight end with {@code connection_terminated} as their
     * connections close (one waiting to retry makes no further attempt), recorded as cancelled, not as a fault of their
     * upstream; a call made afterwards fails with an {@link IllegalStateException}.
     */
    @Override
    public void close() throws IOException {
        closed = true;
        deadlines.close();
        delegate.close();
    }

    /** As {@link #close()}, whatever the mode: HttpClient closes leased connections either way. */
    @Override
    public void close(CloseMode closeMode) {
        closed = true;
        deadlines.close();
        delegate.close(closeMode);
    }

    /** A rejection made before any attempt: no stack trace, it is not a bug and happens at high rates. */
    private static final class Rejection extends UpstreamException {
        private static final long serialVersionUID = 1L;

        private final Object detail;

        Rejection(UpstreamFault fault, String upstream, Duration retryAfter, long nanos, Object detail) {
            super(fault, upstream, 0, retryAfter, nanos, null, null, false);
            this.detail = detail;
        }

        @Override
        public String getMessage() {
            // Built only when someone reads it: an open circuit can reject many thousand calls a second.
            return fault() == UpstreamFault.CONNECTION_LIMIT_REACHED
                    ? "Upstream '" + upstream() + "' already has " + detail + " calls in flight (bulkhead full)"
                    : "Upstream '" + upstream() + "' is unavailable: its circuit breaker is " + detail;
        }

        @Override
        public synchronized Throwable fillInStackTrace() {
            return this;
        }
    }
}
