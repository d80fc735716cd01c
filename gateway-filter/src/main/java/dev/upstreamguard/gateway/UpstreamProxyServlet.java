package dev.upstreamguard.gateway;

import dev.upstreamguard.FaultClassifier;
import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.gateway.internal.Buffers;
import dev.upstreamguard.gateway.internal.ClientAddress;
import dev.upstreamguard.gateway.internal.ClientBodyEntity;
import dev.upstreamguard.gateway.internal.ClientAnswers;
import dev.upstreamguard.gateway.internal.ContainerLimits;
import dev.upstreamguard.gateway.internal.FaultResponseWriter;
import dev.upstreamguard.gateway.internal.ForwardedElement;
import dev.upstreamguard.gateway.internal.HopByHop;
import dev.upstreamguard.gateway.internal.Settings;
import dev.upstreamguard.gateway.internal.StructuredFields;
import dev.upstreamguard.gateway.internal.UpstreamTarget;
import dev.upstreamguard.gateway.internal.VerbatimContentType;
import dev.upstreamguard.internal.ForwardedUserAgent;
import dev.upstreamguard.internal.GuardedConnection;
import dev.upstreamguard.internal.InterimResponseListener;
import dev.upstreamguard.internal.ResponseCheck;
import dev.upstreamguard.internal.UploadWatch;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Metrics;
import jakarta.servlet.RequestDispatcher;
import jakarta.servlet.ServletConfig;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpServletResponseWrapper;
import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.apache.hc.client5.http.classic.methods.HttpUriRequestBase;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpEntity;
import org.apache.hc.core5.http.HttpResponse;
import org.apache.hc.core5.http.io.entity.ByteArrayEntity;
import org.apache.hc.core5.io.CloseMode;

/**
 * An in-application reverse proxy to one upstream, over the guarded client: every request below the servlet's mapping
 * is forwarded to the configured base URI (plus the request's path below the mapping and its query) under the
 * upstream's policy — deadline, bulkhead, circuit breaker, budgeted retries — and the upstream's answer is streamed
 * back.
 *
 * <ul>
 * <li>Bodies stream both ways through fixed 32 KiB buffers, so any size passes in constant memory. A request body up
 * to {@value #MAX_BUFFERED_REQUEST_BODY} (default 64 KiB) is buffered, which makes an idempotent request retryable;
 * a larger one streams and is never retried — nor ever truncated; a client uploading it so slowly that the upstream's
 * {@code total-timeout} runs out is answered 408, as one that stalls, not a 504 naming the upstream; a body that cannot
 * be read (malformed chunking) 400, without a stack trace and without a Proxy-Status. A client waiting
 * for 100 (Continue) before such a body is told to go on when the upstream is (the expectation is forwarded, RFC 9110
 * §10.1.1), so an upstream that refuses by the head (413, 401) costs no upload; Tomcat does so only with
 * {@code continueResponseTiming="onRead"}.
 * <li>Hop-by-hop headers (RFC 9110 §7.6.1) are dropped in both directions; {@code X-Forwarded-For/Proto/Host/Port},
 * {@code Forwarded} and {@code Via} are added; {@code Host} is the upstream's unless {@value #PRESERVE_HOST}.
 * <li>Any valid upstream response passes through unchanged — status, body, {@code Retry-After}, {@code Set-Cookie},
 * content codings (never decoded), a chunked body's trailer fields and a {@code 103 Early Hints} before the final
 * response (the trailers to HTTP/1.1 and HTTP/2 clients, the hints to HTTP/1.1 and later) — except that a
 * {@code Location} pointing at the upstream is rewritten to this gateway's URL. Responses with conflicting framing are rejected as {@code http_protocol_error}.
 * <li>A fault before the response is committed gets the same answer {@link UpstreamFaultFilter} gives (the filter is
 * not needed); a fault after it is committed aborts the client connection. When the client goes away, the upstream
 * exchange is cancelled, so its connection is released rather than drained.
 * <li>Only the configured upstream can be reached: request paths are normalized and confined to the base path, see
 * the 400 answers for {@code ..}, {@code %2e%2e}, {@code %2F} and the like. A request whose {@code Via} already
 * names this gateway five times has come round a forwarding loop and is answered 500
 * {@code proxy_loop_detected}.
 * </ul>
 *
 * <p>Configure it in code with {@link #builder(String)}, or with init-params when the container creates it:
 * {@value #UPSTREAM} (required), {@value #UPSTREAM_NAME} (default: the servlet's name), {@value #PROXY_NAME},
 * {@value #EXPOSE_DETAILS}, {@value #MAX_BUFFERED_REQUEST_BODY}, {@value #PRESERVE_HOST}, {@value #FORWARDED_HEADERS},
 * and every upstream policy
 * setting under its {@link GuardPolicy.Builder#set(String, String) key} ({@code connect-timeout},
 * {@code retry.max-attempts}, {@code circuit-breaker.open-for}, {@code bulkhead.max-concurrent-calls}…); an unknown
 * or invalid init-param fails {@link #init()} with a message naming it. Names are case-sensitive; blanks around a
 * name or a value are ignored. A servlet made by the builder ignores
 * init-params. Each servlet is its own upstream, with its own breaker, bulkhead and retry budget, unless it is given a
 * shared client.
 */
public class UpstreamProxyServlet extends HttpServlet {

    private static final long serialVersionUID = 1L;

    /** Init-param: the upstream's base URI, such as {@code http://inventory:8080/api}. Required. */
    public static final String UPSTREAM = "upstream";
    /** Init-param: the upstream's name in metrics, logs and responses; default the servlet's name. */
    public static final String UPSTREAM_NAME = "upstream-name";
    /**
     * Init-param: the name this gateway gives itself in {@code Proxy-Status} and {@code Via}; in {@code Via} only when
     * it is a token or a host and port, as RFC 9110 §7.6.3 allows there ({@code upstream-guard} otherwise).
     */
    public static final String PROXY_NAME = "proxy-name";
    /** Init-param: whether fault responses may carry exception messages and the upstream's address. */
    public static final String EXPOSE_DETAILS = "expose-details";
    /** Init-param: the largest request body buffered (and so retryable), such as {@code 64KiB}. */
    public static final String MAX_BUFFERED_REQUEST_BODY = "max-buffered-request-body";
    /** Init-param: whether the client's {@code Host} header is sent upstream instead of the upstream's own. */
    public static final String PRESERVE_HOST = "preserve-host";
    /**
     * Init-param: which forwarding headers are added: {@code both} (default: {@code Forwarded} and
     * {@code X-Forwarded-For/Proto/Host/Port}), {@code forwarded} (RFC 7239 only, as Jetty does), or
     * {@code x-forwarded}. {@code Via} is always added; forwarding headers of a kind not added are dropped, never passed
     * on from the client.
     */
    public static final String FORWARDED_HEADERS = "forwarded-headers";

    private static final long DEFAULT_MAX_BUFFERED_REQUEST_BODY = 64 * 1024;
    /**
     * Room a container's response head needs beyond the upstream's fields: status line, Date, Server, framing,
     * Connection, this hop's Via, a rewritten Location's growth.
     */
    private static final int CONTAINER_HEAD_ALLOWANCE = 512;
    /**
     * How often a request's {@code Via} may already name this gateway before it is taken for a forwarding loop (an
     * upstream that leads back here). Not 1: gateways left with the default name may legitimately be chained.
     */
    private static final int LOOP_VIA_ENTRIES = 5;
    /**
     * How long, from the first bytes of a body, a pause in it may be watched for the upstream's close before the
     * flush that commits the response. An upstream that dies mid-body sends its close right behind its last bytes,
     * but on a busy machine "right behind" can be milliseconds: watched only briefly, the cut came after the commit,
     * and the client got a 200 and a broken connection where a clean 502 was due. Bounded once per response, so a
     * stream's first bytes are held at most this long; every later pause is flushed at once.
     */
    private static final long LOOK_FOR_A_CUT_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
    /** An empty body, which HttpClient sends as {@code Content-Length: 0}; immutable, so one serves every request. */
    private static final HttpEntity NO_CONTENT = new ByteArrayEntity(new byte[0], null);
    /** Asks for chunked framing of a response: containers chunk a body that may carry trailers. */
    private static final Supplier<Map<String, String>> NO_TRAILERS = Map::of;
    private static final List<String> OWN_SETTINGS = Arrays.asList(UPSTREAM, UPSTREAM_NAME, PROXY_NAME,
            EXPOSE_DETAILS, MAX_BUFFERED_REQUEST_BODY, PRESERVE_HOST, FORWARDED_HEADERS);

    private final transient Builder preset;
    private transient volatile Runtime runtime;

    /** A servlet configured by its init-params (for {@code web.xml} or {@code ServletContext.addServlet(name, class)}). */
    public UpstreamProxyServlet() {
        this.preset = null;
    }

    private UpstreamProxyServlet(Builder builder) {
        this.preset = builder.copy();
    }

    /**
     * A builder for a servlet configured in code.
     *
     * @param upstreamUri the upstream's base URI, such as {@code http://inventory:8080/api}
     * @throws IllegalArgumentException unless it is an absolute http(s) URI without user info, query or fragment
     */
    public static Builder builder(String upstreamUri) {
        return new Builder(upstreamUri);
    }

    @Override
    public void init() throws ServletException {
        Builder b = preset != null ? preset : fromInitParams(getServletConfig());
        try {
            ServletContext context = getServletConfig().getServletContext();
            runtime = new Runtime(b, getServletName(), context != null && Runtime.removesHeaders(context));
        } catch (RuntimeException e) {
            throw new ServletException("Servlet '" + getServletName() + "': " + e.getMessage(), e);
        }
    }

    private static Builder fromInitParams(ServletConfig config) throws ServletException {
        String name = config.getServletName();
        // Blanks around a name are ignored, as GuardPolicy ignores them around a policy setting's: a name written
        // " proxy-name " must not fail as an unknown policy setting while " connect-timeout " works.
        Map<String, String> params = new LinkedHashMap<>();
        for (Enumeration<String> names = config.getInitParameterNames(); names.hasMoreElements();) {
            String given = names.nextElement();
            if (params.put(given.trim(), config.getInitParameter(given)) != null) {
                throw new ServletException("Servlet '" + name + "': init-param '" + given.trim()
                        + "' is given twice, with blanks around its name");
            }
        }
        String upstream = params.get(UPSTREAM);
        if (upstream == null || upstream.isBlank()) {
            throw new ServletException("Servlet '" + name + "': init-param '" + UPSTREAM
                    + "' (the upstream's base URI) is required");
        }
        String current = UPSTREAM;
        try {
            Builder b = new Builder(upstream);
            for (Map.Entry<String, String> param : params.entrySet()) {
                current = param.getKey();
                String value = param.getValue();
                switch (current) {
                    case UPSTREAM:
                        break;
                    case UPSTREAM_NAME:
                        b.upstreamName(value);
                        break;
                    case PROXY_NAME:
                        b.proxyName(value.trim());
                        break;
                    case EXPOSE_DETAILS:
                        b.exposeDetails(Settings.bool(current, value));
                        break;
                    case MAX_BUFFERED_REQUEST_BODY:
                        b.maxBufferedRequestBody(Settings.bytes(current, value));
                        break;
                    case PRESERVE_HOST:
                        b.preserveHost(Settings.bool(current, value));
                        break;
                    case FORWARDED_HEADERS:
                        b.forwardedHeaders(value.trim());
                        break;
                    default:
                        if (!GuardPolicy.Builder.keys().contains(current)) {
                            // Named with the servlet's own too: "proxy-nam" is more likely a typo of one of them.
                            throw new IllegalArgumentException("unknown: neither one of the servlet's own ("
                                    + String.join(", ", OWN_SETTINGS) + ") nor an upstream policy setting ("
                                    + String.join(", ", GuardPolicy.Builder.keys()) + ")");
                        }
                        b.set(current, value);
                }
            }
            // Past the loop no single init-param is at fault: settings that contradict each other (the message
            // names them), which read as "init-param 'the upstream policy'", a name no web.xml holds.
            current = null;
            return b.copy();
        } catch (IllegalArgumentException e) {
            throw new ServletException("Servlet '" + name + "': " + (current == null
                    ? "its init-params contradict each other: " : "init-param '" + current + "' is invalid: ")
                    + e.getMessage(), e);
        }
    }

    /** The client this servlet forwards with (for its pool statistics and upstream state). */
    public GuardedHttpClient client() {
        return runtime().client;
    }

    /** The upstream's name: in metrics, logs, and the guarded client. */
    public String upstreamName() {
        return runtime().upstreamName;
    }

    private Runtime runtime() {
        Runtime rt = runtime;
        if (rt == null) {
            throw new IllegalStateException("The servlet is not initialized");
        }
        return rt;
    }

    @Override
    public void destroy() {
        Runtime rt = runtime;
        runtime = null;
        if (rt != null && rt.ownsClient) {
            rt.client.close(CloseMode.GRACEFUL);
        }
    }

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response)
            throws IOException, ServletException {
        runtime().proxy(request, response);
    }

    /** Everything a configured servlet needs per request, built once in {@link #init()}. */
    private static final class Runtime {
        private final UpstreamTarget target;
        private final String upstreamName;
        private final GuardedHttpClient client;
        private final boolean ownsClient;
        private final FaultResponseWriter writer;
        private final long maxBuffered;
        private final boolean preserveHost;
        private final boolean addForwarded;
        private final boolean addXForwarded;
        private final String viaName;
        private final String via11;
        private final String nextHop;
        /** The container can take relayed 103 Early Hints off the final answer again, see {@link #removesHeaders}. */
        private final boolean relaysEarlyHints;
        /** The container's response head limit: 0 until looked up on the first response, then bytes or UNKNOWN. */
        private volatile int responseHeadLimit;
        /** How long a buffered request body may take to arrive: the upstream's total-timeout, as a streamed one. */
        private final long bufferingNanos;
        /** The container's trailer section limit: 0 until looked up on the first trailers, then bytes or UNKNOWN. */
        private volatile int responseTrailerLimit;

        Runtime(Builder b, String servletName, boolean relaysEarlyHints) {
            this.relaysEarlyHints = relaysEarlyHints;
            this.target = b.target;
            this.upstreamName = b.upstreamName != null ? b.upstreamName : servletName;
            this.writer = new FaultResponseWriter(b.proxyName, b.exposeDetails, b.registry);
            this.maxBuffered = b.maxBufferedRequestBody;
            this.preserveHost = b.preserveHost;
            this.addForwarded = b.addForwarded;
            this.addXForwarded = b.addXForwarded;
            this.viaName = isViaReceivedBy(b.proxyName) ? b.proxyName : FaultResponseWriter.DEFAULT_PROXY_NAME;
            this.via11 = "1.1 " + viaName;
            this.nextHop = target.authority();
            if (b.sharedClient != null) {
                b.sharedClient.upstream(upstreamName); // fails when the shared client does not know the upstream
                this.client = b.sharedClient;
                this.ownsClient = false;
            } else {
                this.client = GuardedHttpClients.custom()
                        .upstream(upstreamName, target.origin(), b.policy)
                        .meterRegistry(b.registry)
                        .contentCompression(false)
                        .redirects(false)
                        .defaultUserAgent(false)
                        .build();
                this.ownsClient = true;
            }
            this.bufferingNanos = client.upstream(upstreamName).policy().totalTimeout().toNanos();
        }

        /**
         * Whether {@code name} can stand as {@code Via}'s received-by (RFC 9110 §7.6.3): a pseudonym (a token) or
         * {@code uri-host [":" port]}. Host names are taken as tokens, which leaves out the few sub-delims ({@code ;},
         * {@code ,}, {@code (}) that a reader of the list would take for its own syntax; an IP literal is bracketed.
         */
        static boolean isViaReceivedBy(String name) {
            int colon = name.lastIndexOf(':');
            int bracket = name.lastIndexOf(']');
            String host = name;
            if (colon > bracket) {
                String port = name.substring(colon + 1);
                if (port.isEmpty() || port.length() > 5 || !port.chars().allMatch(c -> c >= '0' && c <= '9')) {
                    return false;
                }
                host = name.substring(0, colon);
            }
            if (host.startsWith("[")) {
                return host.length() > 2 && host.endsWith("]") && host.substring(1, host.length() - 1).chars()
                        .allMatch(c -> c == ':' || c == '.' || Character.digit(c, 16) >= 0);
            }
            return StructuredFields.isHttpToken(host);
        }

        void proxy(HttpServletRequest request, HttpServletResponse response) throws IOException {
            long start = System.nanoTime();
            String method = request.getMethod();
            if (method.equals("CONNECT")) {
                // A tunnel is a forward proxy's (RFC 9110 §9.3.6), and HttpClient will not send one: passed on, the
                // refusal came back as a 502 blaming the upstream. Tomcat answers 501 itself; Jetty lets it through.
                // First: whatever its target or Via, a CONNECT is no request this gateway forwards.
                response.sendError(HttpServletResponse.SC_NOT_IMPLEMENTED, "This gateway does not tunnel (CONNECT)");
                return;
            }
            String pathAndQuery = target.pathAndQuery(request);
            if (pathAndQuery == null) {
                response.sendError(HttpServletResponse.SC_BAD_REQUEST,
                        "The request path leaves the route or hides a path separator, or the target is not UTF-8");
                return;
            }
            if (receivedBefore(request.getHeaders("Via"), viaName) >= LOOP_VIA_ENTRIES) {
                // Forwarded on, the request would come round again until its Via outgrew a container's head limit:
                // a hundred hops, and a 400 or 431 blaming the client for the gateway's configuration.
                fault(request, response, forwardingLoop(start));
                return;
            }
            // RFC 9110 §7.8: an Upgrade in an HTTP/1.0 request is ignored.
            if (!"HTTP/1.0".equals(request.getProtocol()) && asksForWebSocket(request.getHeaders("Upgrade"))) {
                // Upgrade is hop-by-hop and this gateway cannot tunnel: sent on, the handshake reached the upstream
                // as a plain GET, and its 200, 400 or 404 left the client guessing why the socket failed.
                response.sendError(HttpServletResponse.SC_NOT_IMPLEMENTED,
                        "This gateway cannot proxy WebSocket connections");
                return;
            }
            // RFC 9110 §7.6.2: an intermediary decrements Max-Forwards on TRACE and OPTIONS, and answers them itself
            // at zero; other methods may ignore it, and pass it on unchanged.
            long maxForwards = method.equals("OPTIONS") || method.equals("TRACE") ? maxForwards(request) : -1;
            if (maxForwards == 0) {
                answerAsFinalRecipient(request, response, method);
                return;
            }
            HttpUriRequestBase upstreamRequest = new HttpUriRequestBase(method, target.originUri());
            upstreamRequest.setPath(pathAndQuery);
            copyRequestHeaders(request, upstreamRequest);
            if (maxForwards > 0) {
                upstreamRequest.setHeader("Max-Forwards", Long.toString(maxForwards - 1));
            }

            ClientBodyEntity streamed = null;
            long contentLength = request.getContentLengthLong();
            // HTTP/2 and HTTP/3 may end a body of no stated length with its stream, as chunks end one in HTTP/1.1:
            // taken for no body, such an upload was forwarded empty.
            boolean framedByStream = contentLength < 0 && HopByHop.framesBodiesByStream(request.getProtocol());
            String transferCoding = request.getHeader("Transfer-Encoding");
            if (transferCoding != null && !onlyChunked(request.getHeaders("Transfer-Encoding"))) {
                // Jetty takes the chunks off and leaves any other coding (gzip) on the body; Transfer-Encoding being
                // hop-by-hop, the upstream got the coded bytes as the content. RFC 9112 §6.1: 501, as Tomcat answers.
                response.sendError(HttpServletResponse.SC_NOT_IMPLEMENTED,
                        "The request's transfer coding is not supported");
                return;
            }
            boolean chunked = transferCoding != null || framedByStream;
            boolean mayCarryContent = mayCarryContent(method, request);
            if (chunked && !mayCarryContent) {
                // Only the body tells whether chunks carry content: an empty one ("0" alone) is none, as with
                // Content-Length: 0, and the request goes on without a body rather than being refused.
                try {
                    chunked = request.getInputStream().read() >= 0;
                } catch (IOException clientFailure) {
                    answerUnreadBody(request, response, clientFailure);
                    return;
                }
            }
            if ((contentLength > 0 || chunked) && !mayCarryContent) {
                // HttpClient refuses to send these (RFC 9110 §9.3.7, §9.3.8). Sent on, the refusal would come back as
                // a 502 http_protocol_error blaming the upstream, counted against it, for the client's own mistake.
                response.sendError(HttpServletResponse.SC_BAD_REQUEST, method.equals("TRACE")
                        ? "A TRACE request must not have content" : "OPTIONS content needs a Content-Type");
                return;
            }
            if (contentLength > 0 || chunked) {
                HttpEntity body;
                try {
                    body = requestBody(request, upstreamRequest, contentLength, framedByStream, start);
                } catch (IOException clientFailure) {
                    answerUnreadBody(request, response, clientFailure);
                    return;
                }
                if (body == null) {
                    // A client that hangs up makes the containers' read fail; a clean end before the announced body
                    // means something ahead of the servlet read it. Returning quietly made the container send an
                    // empty 200 for a request that never reached the upstream.
                    fault(request, response, bodyTakenBeforeTheServlet(start));
                    return;
                }
                if (contentLength < 0 && body.getContentLength() == 0) {
                    // Chunks or a stream that ended at once: no content, sent on as none (a GET without a length).
                    body = null;
                } else if (body instanceof ClientBodyEntity) {
                    streamed = (ClientBodyEntity) body;
                    upstreamRequest.setEntity(streamed);
                    if (contentLength > 0 && expectsContinue(request)) {
                        // Nothing of it read yet, so the client has not been told to continue: the upstream decides
                        // (RFC 9110 §10.1.1). The container sends the client its 100 at the first read, when the
                        // upstream asked for the body; an upstream refusing by the head (413, 401) saves the upload.
                        upstreamRequest.setHeader("Expect", "100-continue");
                    }
                } else if (body != null) {
                    upstreamRequest.setEntity(body);
                }
            } else if (contentLength == 0 && mayCarryContent) {
                // "Content-Length: 0" on a TRACE, or an untyped OPTIONS, says there is no content: sent with an empty
                // entity, HttpClient refused them as if they had some, and the client got a 500 and a stack trace.
                upstreamRequest.setEntity(NO_CONTENT);
            }

            HttpClientContext context = HttpClientContext.create();
            context.setAttribute(GuardedHttpClient.UPSTREAM_ATTRIBUTE, upstreamName);
            if (request.getHeader("User-Agent") == null) {
                // A shared client (an application's own calls too) may add HttpClient's: not for a forwarded request.
                context.setAttribute(ForwardedUserAgent.NONE_SENT, Boolean.TRUE);
            }
            if (responseHeadLimit != ContainerLimits.UNKNOWN) {
                // Checked by the client before the call ends, so that a head the container cannot write is the
                // upstream's fault, with its breaker, meters and real attempt count, not a call the servlet cancelled.
                context.setAttribute(ResponseCheck.ATTRIBUTE,
                        (ResponseCheck) upstreamHead -> headTooLargeForContainer(request, upstreamHead));
            }
            if (relaysEarlyHints && request.getProtocol().startsWith("HTTP/")
                    && !"HTTP/1.0".equals(request.getProtocol())) {
                // RFC 9110 §15.2: a proxy forwards the 1xx responses it did not ask for (never to an HTTP/1.0 client).
                context.setAttribute(InterimResponseListener.ATTRIBUTE,
                        (InterimResponseListener) interim -> relayEarlyHints(request, response, interim));
            }
            ClassicHttpResponse upstreamResponse;
            try {
                upstreamResponse = client.executeOpen(target.host(), upstreamRequest, context);
            } catch (IOException e) {
                IOException clientFailure = streamed == null ? null : streamed.clientFailure();
                if (clientFailure != null) {
                    upstreamRequest.cancel();
                    if (streamed.endedEarly()) {
                        fault(request, response, bodyTakenBeforeTheServlet(start));
                        return;
                    }
                    answerUnreadBody(request, response, clientFailure);
                    return;
                }
                if (UploadWatch.deadlineRanOutOnSource(context)) {
                    // The total deadline ran out while the client was still uploading, each part in time for the
                    // container: its pace, not the upstream's (the call is on record as cancelled, not as a fault).
                    answerRequestTimeout(response);
                    return;
                }
                fault(request, response, asFault(e, start, false));
                return;
            }
            try {
                respond(request, response, upstreamRequest, upstreamResponse, context, start);
            } finally {
                closeQuietly(upstreamResponse);
            }
        }

        /**
         * Sends the client a {@code 103 Early Hints} the upstream sent (what servlet containers can send of the 1xx
         * responses: {@code sendError(103)} in Tomcat and Jetty), with its end-to-end fields, which are then taken off
         * the response again: hints are not part of the final answer. A client gone is found by the final write.
         */
        private void relayEarlyHints(HttpServletRequest request, HttpServletResponse wrapped, HttpResponse interim) {
            if (interim.getCode() != 103 || wrapped.isCommitted()) {
                return;
            }
            List<String> connectionTokens = connectionTokens(interim);
            int limit = responseHeadLimit(request);
            if (limit != ContainerLimits.UNKNOWN) {
                int perField = fieldOverhead(request);
                long section = 0;
                for (Header header : interim.getHeaders()) {
                    if (!HopByHop.isExcluded(header.getName(), connectionTokens) && belongsOnHints(header.getName())) {
                        section += header.getName().length() + header.getValue().length() + perField;
                    }
                }
                if (section > limit - CONTAINER_HEAD_ALLOWANCE) {
                    // More than the container writes in a head: Jetty throws from sendError, and the valid answer
                    // that follows became a 500. Hints are advisory; the final answer is what matters.
                    return;
                }
            }
            // Sent through the container's own response: a filter's wrapper may take any sendError for the final
            // answer (Spring Boot's ErrorPageFilter records it and renders an error page after the chain).
            HttpServletResponse response = containersOwn(wrapped);
            // By name without case (RFC 9110 §5.1): a field the upstream spelled two ways is one field, whose values
            // from before the first spelling are all a filter set.
            Map<String, List<String>> before = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
            for (Header header : interim.getHeaders()) {
                String name = header.getName();
                if (HopByHop.isExcluded(name, connectionTokens) || !belongsOnHints(name)) {
                    continue;
                }
                if (!before.containsKey(name)) {
                    // A field a filter already set on the response keeps its values for the final answer.
                    before.put(name, new ArrayList<>(response.getHeaders(name)));
                }
                response.addHeader(name, header.getValue());
            }
            try {
                response.sendError(103);
            } catch (IOException | IllegalStateException clientGoneOrUnsupported) {
                // Hints are advisory: the final response is what matters, and its write finds a client gone.
            }
            before.forEach((name, values) -> {
                response.setHeader(name, null);
                values.forEach(value -> response.addHeader(name, value));
            });
        }

        /**
         * Whether a field of a 103 is relayed with it: not the framing or type of content a 1xx does not have (RFC 9110
         * §8.6), which containers take as the final answer's (Jetty failed it for the length), nor {@code Date} and
         * {@code Server}, which containers set themselves and the final answer would then carry twice.
         */
        private static boolean belongsOnHints(String name) {
            return !(name.equalsIgnoreCase("Content-Length") || name.equalsIgnoreCase("Content-Type")
                    || isPresetByContainer(name));
        }

        /**
         * Whether the container removes a header set to {@code null}, which is how relayed hints are taken off the final
         * answer again: Servlet 6.1 requires it (Tomcat 11, Jetty ee11) and Jetty always did; Tomcat 10.1 (Servlet 6.0)
         * ignores the call, so the hints would stay on the final answer, and are not relayed there.
         */
        static boolean removesHeaders(ServletContext context) {
            int major = context.getMajorVersion();
            return major > 6 || major == 6 && context.getMinorVersion() >= 1
                    || context.getServerInfo().regionMatches(true, 0, "jetty", 0, 5);
        }

        /** The response inside any filters' wrappers. */
        private static HttpServletResponse containersOwn(HttpServletResponse response) {
            HttpServletResponse own = response;
            while (own instanceof HttpServletResponseWrapper
                    && ((HttpServletResponseWrapper) own).getResponse() instanceof HttpServletResponse) {
                own = (HttpServletResponse) ((HttpServletResponseWrapper) own).getResponse();
            }
            return own;
        }

        /**
         * A buffered (repeatable) entity, a streaming one, or {@code null} when the body announced is not there to be
         * read: already at its end (a filter called {@code getParameter} on a form, or read the stream), or ending
         * cleanly before its {@code Content-Length}.
         */
        private HttpEntity requestBody(HttpServletRequest request, HttpUriRequestBase upstreamRequest,
                long contentLength, boolean framedByStream, long start) throws IOException {
            if (contentLength > maxBuffered && expectsContinue(request)) {
                // The stream is opened at the first read, when the upstream asked for the body: Jetty tells the client
                // to continue as soon as it is opened. A body taken before the servlet ends early, reported so then.
                return new ClientBodyEntity(upstreamRequest, new InputOpenedOnRead(request), null, 0, contentLength);
            }
            ServletInputStream in = request.getInputStream();
            if (in.isFinished()) {
                // Nothing read yet, yet finished: read before the servlet. Checked first because for a chunked body
                // the first read alone cannot tell a consumed body from an empty one. A stream that ended with its
                // head (an HTTP/2 GET) had no body to take.
                return framedByStream ? NO_CONTENT : null;
            }
            if (contentLength > maxBuffered) {
                return new ClientBodyEntity(upstreamRequest, in, null, 0, contentLength);
            }
            // Buffered up to the limit (a body without a length may turn out larger: the rest then streams behind what
            // was read), grown as bytes arrive: a Content-Length alone, without its bytes, takes no memory.
            int limit = (int) Math.min(contentLength > 0 ? contentLength : maxBuffered, Integer.MAX_VALUE - 16);
            int room = contentLength > 0 ? limit : limit + 1;
            byte[] buffer = new byte[Math.min(room, 8192)];
            int n = 0;
            for (;;) {
                if (n == buffer.length) {
                    if (n == room) {
                        return contentLength > 0 ? new ByteArrayEntity(buffer, null)
                                : new ClientBodyEntity(upstreamRequest, in, buffer, n, -1);
                    }
                    buffer = Arrays.copyOf(buffer, (int) Math.min(buffer.length * 2L, room));
                }
                if (n > 0 && System.nanoTime() - start > bufferingNanos) {
                    // Read before the call begins, so no deadline of the call's bounds it: a client trickling its
                    // body would hold this thread for as long as each part comes within the container's timeout.
                    throw new SocketTimeoutException("The request body did not arrive within total-timeout");
                }
                int r = in.read(buffer, n, buffer.length - n);
                if (r < 0) {
                    // Short of its Content-Length and at a clean end: read before the servlet.
                    return contentLength > 0 ? null : new ByteArrayEntity(buffer, 0, n, null);
                }
                n += r;
            }
        }

        private UpstreamException bodyTakenBeforeTheServlet(long start) {
            return new UpstreamException(UpstreamFault.PROXY_CONFIGURATION_ERROR, upstreamName, 0, null,
                    System.nanoTime() - start, "The request body was read before the proxy servlet (a filter called "
                    + "getParameter on a form or read the input stream), so it cannot be forwarded", null);
        }

        /** Whether an HTTP/1.1 client waits for 100 (Continue) before it sends its body (RFC 9110 §10.1.1). */
        private static boolean expectsContinue(HttpServletRequest request) {
            String expect = request.getHeader("Expect");
            return expect != null && expect.trim().equalsIgnoreCase("100-continue")
                    && !"HTTP/1.0".equals(request.getProtocol());
        }

        /** Whether {@code Transfer-Encoding} names no coding but {@code chunked}, which the container undoes. */
        private static boolean onlyChunked(Enumeration<String> transferEncoding) {
            while (transferEncoding.hasMoreElements()) {
                for (String coding : transferEncoding.nextElement().split(",")) {
                    String name = coding.trim();
                    if (!name.isEmpty() && !name.equalsIgnoreCase("chunked")) {
                        return false;
                    }
                }
            }
            return true;
        }

        /** Whether an {@code Upgrade} field names {@code websocket} (RFC 6455), with or without a version. */
        private static boolean asksForWebSocket(Enumeration<String> upgrade) {
            while (upgrade != null && upgrade.hasMoreElements()) {
                for (String protocol : upgrade.nextElement().split(",")) {
                    String name = protocol.trim();
                    int slash = name.indexOf('/');
                    if ((slash < 0 ? name : name.substring(0, slash).trim()).equalsIgnoreCase("websocket")) {
                        return true;
                    }
                }
            }
            return false;
        }

        private UpstreamException forwardingLoop(long start) {
            return new UpstreamException(UpstreamFault.PROXY_LOOP_DETECTED, upstreamName, 0, null,
                    System.nanoTime() - start, "Forwarding loop: the request already passed through '" + viaName
                    + "' " + LOOP_VIA_ENTRIES + " times (Via); the upstream leads back to this gateway", null);
        }

        /**
         * How many {@code Via} entries name {@code receivedBy}: {@code received-protocol RWS received-by [RWS
         * comment]} (RFC 9110 §7.6.3), comments skipped.
         */
        private static int receivedBefore(Enumeration<String> viaValues, String receivedBy) {
            int count = 0;
            while (viaValues != null && viaValues.hasMoreElements()) {
                String via = viaValues.nextElement();
                int len = via.length();
                int i = 0;
                while (i < len) {
                    // One entry: skip its protocol, compare its received-by, then skip to the next top-level comma.
                    while (i < len && (via.charAt(i) == ' ' || via.charAt(i) == '\t' || via.charAt(i) == ',')) {
                        i++;
                    }
                    while (i < len && via.charAt(i) != ' ' && via.charAt(i) != '\t' && via.charAt(i) != ',') {
                        i++;
                    }
                    while (i < len && (via.charAt(i) == ' ' || via.charAt(i) == '\t')) {
                        i++;
                    }
                    int from = i;
                    while (i < len && via.charAt(i) != ' ' && via.charAt(i) != '\t' && via.charAt(i) != ','
                            && via.charAt(i) != '(') {
                        i++;
                    }
                    if (i - from == receivedBy.length() && via.regionMatches(true, from, receivedBy, 0, i - from)) {
                        count++;
                    }
                    for (int depth = 0; i < len && (depth > 0 || via.charAt(i) != ','); i++) {
                        char c = via.charAt(i);
                        depth += c == '(' ? 1 : c == ')' && depth > 0 ? -1 : 0;
                    }
                }
            }
            return count;
        }

        /**
         * 408 Request Timeout (RFC 9110 §15.5.9) for a client that stalled mid-body, or whose streamed upload outlasted
         * the upstream's total deadline, before anything was committed, instead of the container's own 400 or 500
         * (Jetty's names the exception) or a 504 naming the upstream. The connection closes: the rest of the body is
         * unread. Nothing upstream failed, so there is no Proxy-Status and no fault count.
         */
        private static void answerRequestTimeout(HttpServletResponse response) throws IOException {
            ClientAnswers.requestTimeout(response);
        }

        /**
         * The answer when reading the client's body failed: 408 for a client that went silent, else 400 — a malformed
         * chunked body, or a client that hung up, which will not read it. Rethrown, the container's failure reached
         * Tomcat's error page, which shows the client a stack trace by default.
         */
        private static void answerUnreadBody(HttpServletRequest request, HttpServletResponse response,
                IOException clientFailure) throws IOException {
            // Tomcat files its read failure as the request's error, which its error page renders with the stack trace
            // over any answer: the client's malformed body is no server exception to show it.
            request.removeAttribute(RequestDispatcher.ERROR_EXCEPTION);
            if (ClientAnswers.isClientTimeout(clientFailure)) {
                answerRequestTimeout(response);
                return;
            }
            try {
                ClientAnswers.unreadableBody(response);
            } catch (IOException clientGone) {
                // Nobody left to answer: the exchange is over either way.
            }
        }

        private void copyRequestHeaders(HttpServletRequest request, HttpUriRequestBase upstreamRequest) {
            List<String> connectionTokens = HopByHop.connectionTokens(request.getHeaders("Connection"));
            String forwardedFor = null;
            String forwarded = null;
            String via = null;
            for (Enumeration<String> names = request.getHeaderNames(); names.hasMoreElements();) {
                String name = names.nextElement();
                if (HopByHop.isExcluded(name, connectionTokens) || isReplacedRequestHeader(name)) {
                    continue;
                }
                // Headers this hop appends to rather than passes on.
                if (name.equalsIgnoreCase("X-Forwarded-For")) {
                    forwardedFor = join(request.getHeaders(name));
                    continue;
                }
                if (name.equalsIgnoreCase("Forwarded")) {
                    forwarded = joinClosed(request.getHeaders(name));
                    continue;
                }
                if (name.equalsIgnoreCase("Via")) {
                    via = joinClosed(request.getHeaders(name));
                    continue;
                }
                if (name.equalsIgnoreCase("Cookie") && HopByHop.framesBodiesByStream(request.getProtocol())) {
                    // HTTP/2 and HTTP/3 clients may split cookies into several fields; an HTTP/1.1 message carries
                    // one Cookie line (RFC 9113 §8.2.3), and many servers read only the first. Jetty leaves them apart.
                    upstreamRequest.addHeader(name, join(request.getHeaders(name), "; "));
                    continue;
                }
                for (Enumeration<String> values = request.getHeaders(name); values.hasMoreElements();) {
                    upstreamRequest.addHeader(name, values.nextElement());
                }
            }
            String clientHost = clientAuthority(request);
            if (preserveHost && clientHost != null) {
                upstreamRequest.setHeader("Host", clientHost);
            }
            // Containers spell IPv6 differently (Jetty adds brackets): one canonical form for both headers.
            String remote = ClientAddress.canonical(request.getRemoteAddr());
            String scheme = request.getScheme();
            if (addXForwarded) {
                upstreamRequest.addHeader("X-Forwarded-For",
                        forwardedFor == null ? remote : forwardedFor + ", " + remote);
                upstreamRequest.addHeader("X-Forwarded-Proto", scheme);
                if (clientHost != null && !clientHost.isEmpty()) {
                    // An empty Host stands for a target without an authority (RFC 9112 §3.2): there is none to name.
                    upstreamRequest.addHeader("X-Forwarded-Host", clientHost);
                }
                // Tomcat gives 0 for a Host with an empty port ("example.test:"), which RFC 3986 §3.2.3 reads as the
                // scheme's default: an upstream would build its links to port 0.
                int port = request.getServerPort();
                upstreamRequest.addHeader("X-Forwarded-Port",
                        Integer.toString(port > 0 ? port : "https".equalsIgnoreCase(scheme) ? 443 : 80));
            }
            if (addForwarded) {
                upstreamRequest.addHeader("Forwarded", ForwardedElement.of(forwarded, remote, scheme, clientHost));
            }
            String received = via(request.getProtocol());
            upstreamRequest.addHeader("Via", via == null ? received : via + ", " + received);
        }

        private void respond(HttpServletRequest request, HttpServletResponse response,
                HttpUriRequestBase upstreamRequest, ClassicHttpResponse upstreamResponse, HttpClientContext context,
                long start) throws IOException {
            List<String> connectionTokens = connectionTokens(upstreamResponse);
            response.setStatus(upstreamResponse.getCode());
            // A 205 has no content (RFC 9110 §15.3.6), so no chunks to carry trailers: asked for them, Tomcat
            // announced chunked framing and wrote not even the last chunk, and the client waited for a body that never
            // came. Content an upstream sends with one anyway is not passed on either (Jetty did, Tomcat dropped it).
            boolean mayHaveContent = upstreamResponse.getCode() != HttpServletResponse.SC_RESET_CONTENT;
            // A 204 has no content whatever its Content-Length says (RFC 9110 §8.6, §15.3.5); passing the length on
            // makes a container wait for body bytes that never come (Jetty answers 500).
            boolean framedByLength = upstreamResponse.getCode() != HttpServletResponse.SC_NO_CONTENT && mayHaveContent
                    && !upstreamResponse.containsHeader("Transfer-Encoding");
            if (!mayHaveContent) {
                // RFC 9110 §15.3.6: a 205 says explicitly that it is empty.
                response.setContentLength(0);
            }
            String via = null;
            // RFC 9110 §6.6.2 made Trailer end-to-end: it announces the trailer fields, so it goes along where they do.
            // HTTP/2 and later carry them as a HEADERS frame after the body (RFC 9113 §8.1); HTTP/1.0 cannot.
            boolean trailersRelayed = mayHaveContent && upstreamResponse.getEntity() != null
                    && upstreamResponse.getEntity().isChunked() && ("HTTP/1.1".equals(request.getProtocol())
                            || HopByHop.framesBodiesByStream(request.getProtocol()));
            for (Header header : upstreamResponse.getHeaders()) {
                String name = header.getName();
                if (trailersRelayed && name.equalsIgnoreCase("Trailer")
                        && !HopByHop.isNamedBy(name, connectionTokens)) {
                    String relayed = TrailerRelay.announced(header.getValue(), connectionTokens);
                    if (!relayed.isEmpty()) {
                        response.addHeader(name, relayed);
                    }
                    continue;
                }
                if (HopByHop.isExcluded(name, connectionTokens)) {
                    continue;
                }
                String value = header.getValue();
                if (name.equalsIgnoreCase("Content-Length")) {
                    if (framedByLength) {
                        try {
                            response.setContentLengthLong(Long.parseLong(value.trim()));
                        } catch (NumberFormatException ignored) {
                            // The strict parser rejects such responses; nothing to pass on if one slips through.
                        }
                    }
                    continue;
                }
                if (name.equalsIgnoreCase("Via")) {
                    via = via == null ? value : via + ", " + value;
                    continue;
                }
                if (name.equalsIgnoreCase("Location") || name.equalsIgnoreCase("Content-Location")) {
                    value = target.rewriteLocation(value, gatewayOrigin(request), gatewayPrefix(request));
                }
                if (name.equalsIgnoreCase("Content-Type")) {
                    VerbatimContentType.set(request, response, value);
                    continue;
                }
                if (isPresetByContainer(name)) {
                    // Single-valued (RFC 9110 §5.3), and Jetty presets its own: added, the client would get two.
                    response.setHeader(name, value);
                    continue;
                }
                response.addHeader(name, value);
            }
            String received = upstreamResponse.getVersion() == null ? via11
                    : via(upstreamResponse.getVersion().toString());
            response.setHeader("Via", via == null ? received : via + ", " + received);

            HttpEntity entity = upstreamResponse.getEntity();
            if (entity == null) {
                boolean lengthOfTheGet = request.getMethod().equals("HEAD")
                        || upstreamResponse.getCode() == HttpServletResponse.SC_NOT_MODIFIED;
                if (lengthOfTheGet && !upstreamResponse.containsHeader("Content-Length")) {
                    // Left to finish a response it saw no bytes of, Jetty states "Content-Length: 0", which to a HEAD
                    // or in a 304 gives the length of the GET's body (RFC 9110 §8.6): empty, it says. Committed now,
                    // the head goes out with no length the origin did not give.
                    response.flushBuffer();
                }
                return;
            }
            InputStream in;
            try {
                in = entity.getContent();
            } catch (IOException e) {
                upstreamRequest.cancel();
                fault(request, response, asFault(e, start, true), proxyStatusOf(upstreamResponse));
                return;
            }
            if (in == null) {
                return;
            }
            if (!mayHaveContent) {
                readOffContent(request, response, upstreamRequest, upstreamResponse, in, start);
                return;
            }
            ServletOutputStream out = response.getOutputStream();
            // Whatever reached the proxy is flushed to the client whenever the upstream pauses, so nothing waits in the
            // container's buffer: event streams and long polls (chunked or read to the close), and known-length bodies
            // an upstream sends in parts (progress, a slow origin). While the upstream keeps sending, the container's
            // buffer decides when to write; a body's last bytes need no flush, the response's end sends them.
            long length = entity.getContentLength();
            TrailerRelay trailers = null;
            if (trailersRelayed) {
                // The upstream's trailer section (checksums, Server-Timing) follows its last chunk; the container asks
                // for it when it ends the response, chunked (RFC 9112 §7.1.2). HTTP/1.0 has no trailers to carry them.
                int trailerLimit = responseTrailerLimit;
                if (trailerLimit == 0) {
                    trailerLimit = ContainerLimits.responseTrailerLimit(request);
                    responseTrailerLimit = trailerLimit;
                }
                trailers = new TrailerRelay(connectionTokens, trailerLimit);
                if (!setsTrailersLate(request)) {
                    response.setTrailerFields(trailers);
                }
                // Over HTTP/2 in Tomcat the relay is set only once the upstream's section is in (relayTrailers): set up
                // front it would put an empty trailer section after every body, and a body cut short must still get
                // the failing supplier that resets its stream. Jetty sends no section for an empty relay, but takes
                // none set after the commit.
            } else if (length < 0 && mayHaveContent && "HTTP/1.1".equals(request.getProtocol())
                    && HopByHop.hasClose(request.getHeaders("Connection"))) {
                // Chunked even for a client that asked to close, which Jetty would frame by the close: only chunks let
                // the client tell a body the upstream cut short from a whole one. (HTTP/1.0 has nothing to tell it.)
                response.setTrailerFields(NO_TRAILERS);
            }
            byte[] buffer = Buffers.get();
            long unread = length;
            long lookUntil = 0;
            for (;;) {
                int n;
                int next = -1;
                boolean ended = false;
                boolean drained;
                try {
                    n = in.read(buffer);
                    unread -= n;
                    if (lookUntil == 0 && n > 0) {
                        lookUntil = System.nanoTime() + LOOK_FOR_A_CUT_NANOS;
                    }
                    if (n > 0 && length >= 0 && unread <= 0) {
                        // The container ends a response once its Content-Length is written, so the client could have
                        // the whole answer and send its next request before the call was on record: a failure status
                        // that opens the circuit let that request through to the upstream, or got it a Retry-After of
                        // 1 for an opening still under way. Read to the end first, and the call ends before its answer.
                        next = in.read();
                        ended = next < 0;
                    }
                    drained = n > 0 && (length < 0 || unread > 0) && in.available() <= 0
                            && !noPauseHere(response, context, lookUntil);
                } catch (IOException e) {
                    // Cancel first: the upstream connection is closed now, not drained or left to a timeout.
                    upstreamRequest.cancel();
                    fault(request, response, asFault(e, start, true), proxyStatusOf(upstreamResponse));
                    return;
                }
                if (n < 0) {
                    if (trailers != null) {
                        relayTrailers(request, response, trailers, entity);
                    }
                    return;
                }
                try {
                    out.write(buffer, 0, n);
                    if (next >= 0) {
                        out.write(next); // only if the stream runs past its length, which HttpClient's does not
                        unread--;
                    }
                    if (ended) {
                        if (trailers != null) {
                            relayTrailers(request, response, trailers, entity);
                        }
                        return;
                    }
                    if (drained) {
                        // Nothing more is waiting upstream: let the client have what arrived (streams, events).
                        out.flush();
                    }
                } catch (IOException clientGone) {
                    upstreamRequest.cancel();
                    throw clientGone;
                }
            }
        }

        /** Whether the trailer relay is set once the upstream's section is in, not before the response is sent. */
        private static boolean setsTrailersLate(HttpServletRequest request) {
            return HopByHop.framesBodiesByStream(request.getProtocol())
                    && ContainerLimits.takesTrailersAfterTheCommit(request);
        }

        /** Takes the upstream's trailer section once its body ended, setting the relay now where it was held back. */
        private static void relayTrailers(HttpServletRequest request, HttpServletResponse response,
                TrailerRelay trailers, HttpEntity entity) {
            trailers.take(entity);
            if (setsTrailersLate(request) && !trailers.get().isEmpty()) {
                try {
                    response.setTrailerFields(trailers);
                } catch (IllegalStateException | UnsupportedOperationException notAfterTheCommit) {
                    // A container that takes trailers only before the commit: they may be discarded (RFC 9110 §6.5).
                }
            }
        }

        /**
         * Reads off content a 205 must not have, unsent: read to its end, its connection stays in step for the next
         * request (left unread, HttpClient's close would drain any amount of it); more than one buffer of it is not
         * read at all, and its connection is closed instead. A body that fails before its end is the upstream's fault,
         * as in any other response.
         */
        private void readOffContent(HttpServletRequest request, HttpServletResponse response,
                HttpUriRequestBase upstreamRequest, ClassicHttpResponse upstreamResponse, InputStream in, long start)
                throws IOException {
            byte[] buffer = Buffers.get();
            long read = 0;
            try {
                for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                    read += n;
                    if (read > buffer.length) {
                        upstreamRequest.cancel();
                        return;
                    }
                }
            } catch (IOException e) {
                upstreamRequest.cancel();
                fault(request, response, asFault(e, start, true), proxyStatusOf(upstreamResponse));
            }
        }

        /**
         * Whether what looks like a pause in the body is none, before the flush that would commit the response: more
         * of the body is already here (the chunked stream only reports up to its chunk's end), or the upstream closed
         * right there. A body cut off is then read to its fault first and answered with a clean 502, not a 200 and a
         * cut connection; a body delimited by the close simply ends. The look for a close (until {@code lookUntil},
         * {@link #LOOK_FOR_A_CUT_NANOS} after the body's first bytes, then 1 ms) is made only until the response is
         * committed: a cut after that can only be an abort anyway.
         */
        private static boolean noPauseHere(HttpServletResponse response, HttpClientContext context, long lookUntil) {
            if (response.isCommitted()) {
                // Chunks that arrived together (the chunked stream reads only to its chunk's end) are no pause: one
                // flush each made as many writes and client-side chunks as the upstream sent, thousands for a body
                // of small chunks. Only a look at what is buffered, without a read.
                return GuardedConnection.inputWaiting(context);
            }
            return GuardedConnection.inputWaitingOrEnded(context, lookUntil - System.nanoTime());
        }

        /** Answers a fault, or aborts the client connection when the response is already committed. */
        private void fault(HttpServletRequest request, HttpServletResponse response, UpstreamException fault)
                throws IOException {
            fault(request, response, fault, null);
        }

        /** As above, for a fault in a response whose {@code Proxy-Status} members (or {@code null}) are kept. */
        private void fault(HttpServletRequest request, HttpServletResponse response, UpstreamException fault,
                String upstreamProxyStatus) throws IOException {
            if (writer.write(request, response, fault, nextHop, upstreamProxyStatus)
                    == FaultResponseWriter.Answer.THROW_TO_ABORT) {
                throw FaultResponseWriter.abortion(response, fault);
            }
        }

        private UpstreamException asFault(IOException e, long start, boolean inBody) {
            if (e instanceof UpstreamException) {
                return (UpstreamException) e;
            }
            UpstreamException found = UpstreamException.find(e).orElse(null);
            if (found != null) {
                return found;
            }
            UpstreamFault fault = inBody ? FaultClassifier.classifyBodyFailure(e) : FaultClassifier.classify(e);
            return new UpstreamException(fault, upstreamName, 1, null, System.nanoTime() - start,
                    "Upstream '" + upstreamName + "' failed: " + fault.type() + " (" + e + ")", e);
        }

        /**
         * The container's response head limit in bytes for {@code request}'s connection, or
         * {@link ContainerLimits#UNKNOWN}; the container's setting is looked up once.
         */
        private int responseHeadLimit(HttpServletRequest request) {
            if (!ContainerLimits.headLimitApplies(request)) {
                return ContainerLimits.UNKNOWN;
            }
            int limit = responseHeadLimit;
            if (limit == 0) {
                limit = ContainerLimits.responseHeadLimit(request);
                responseHeadLimit = limit;
            }
            return limit;
        }

        /**
         * What a field counts beyond its name and value against the container's head limit: the ": " and CRLF of an
         * HTTP/1.1 line, or over HTTP/2, where a limit that holds (Jetty's) bounds the header list, 32 bytes (RFC 9113
         * §6.5.2), so that many small fields within the HTTP/1.1 limit are over it.
         */
        private static int fieldOverhead(HttpServletRequest request) {
            return HopByHop.framesBodiesByStream(request.getProtocol()) ? 32 : 4;
        }

        /**
         * Why the head to pass on is larger than the container can write, or {@code null}. Passed on, the container
         * would fail it at the commit — possibly after the servlet returned — and answer a bare 500 of its own,
         * without {@code Proxy-Status}; this answers 502 as nginx does ("upstream sent too big header").
         */
        private ResponseCheck.Refusal headTooLargeForContainer(HttpServletRequest request,
                HttpResponse upstreamResponse) {
            int limit = responseHeadLimit(request);
            if (limit == ContainerLimits.UNKNOWN) {
                return null;
            }
            List<String> connectionTokens = connectionTokens(upstreamResponse);
            int perField = fieldOverhead(request);
            long section = 0;
            int longest = 0;
            for (Header header : upstreamResponse.getHeaders()) {
                if (!HopByHop.isExcluded(header.getName(), connectionTokens)) {
                    int line = header.getName().length() + header.getValue().length() + perField;
                    section += line;
                    longest = Math.max(longest, line);
                }
            }
            int room = limit - CONTAINER_HEAD_ALLOWANCE;
            if (section <= room) {
                return null;
            }
            UpstreamFault fault = longest > room ? UpstreamFault.HTTP_RESPONSE_HEADER_SIZE
                    : UpstreamFault.HTTP_RESPONSE_HEADER_SECTION_SIZE;
            return new ResponseCheck.Refusal(fault, "its " + section + " bytes of header fields are more than the "
                    + "servlet container writes (a response head of at most " + limit + " bytes)");
        }

        /** The upstream response's {@code Proxy-Status} lines as one list, or {@code null} when it has none. */
        private static String proxyStatusOf(HttpResponse upstreamResponse) {
            List<String> lines = new ArrayList<>();
            for (Header header : upstreamResponse.getHeaders("Proxy-Status")) {
                lines.add(header.getValue());
            }
            return FaultResponseWriter.joinedMembers(lines);
        }

        /** The fields the upstream's {@code Connection} header names, which are not passed on, or {@code null}. */
        private static List<String> connectionTokens(HttpResponse upstreamResponse) {
            Header[] connection = upstreamResponse.getHeaders("Connection");
            return connection.length == 0 ? null : HopByHop.connectionTokens(connection);
        }

        /** A single valid {@code Max-Forwards} (1*DIGIT, capped), or -1 when absent or invalid: then ignored. */
        private static long maxForwards(HttpServletRequest request) {
            Enumeration<String> values = request.getHeaders("Max-Forwards");
            if (values == null || !values.hasMoreElements()) {
                return -1;
            }
            String value = values.nextElement().trim();
            if (values.hasMoreElements() || value.isEmpty()) {
                return -1;
            }
            for (int i = 0; i < value.length(); i++) {
                if (value.charAt(i) < '0' || value.charAt(i) > '9') {
                    return -1;
                }
            }
            // The largest value this hop supports; a longer number is forwarded as this, less one.
            return value.length() > 9 ? 999_999_999L : Long.parseLong(value);
        }

        /**
         * The gateway's own answer when {@code Max-Forwards} ran out (RFC 9110 §9.3.7, §9.3.8): an empty 200 to OPTIONS,
         * and to TRACE the request as received, as {@code message/http}, without the fields that carry credentials.
         */
        private static void answerAsFinalRecipient(HttpServletRequest request, HttpServletResponse response,
                String method) throws IOException {
            response.setStatus(HttpServletResponse.SC_OK);
            if (method.equals("OPTIONS")) {
                response.setContentLength(0);
                return;
            }
            StringBuilder echo = new StringBuilder(256).append(method).append(' ').append(request.getRequestURI());
            if (request.getQueryString() != null) {
                echo.append('?').append(request.getQueryString());
            }
            echo.append(' ').append(request.getProtocol()).append("\r\n");
            for (Enumeration<String> names = request.getHeaderNames(); names.hasMoreElements();) {
                String name = names.nextElement();
                if (name.equalsIgnoreCase("Cookie") || name.equalsIgnoreCase("Authorization")
                        || name.equalsIgnoreCase("Proxy-Authorization")) {
                    continue;
                }
                for (Enumeration<String> values = request.getHeaders(name); values.hasMoreElements();) {
                    echo.append(name).append(": ").append(values.nextElement()).append("\r\n");
                }
            }
            byte[] body = echo.append("\r\n").toString().getBytes(StandardCharsets.ISO_8859_1);
            response.setContentType("message/http");
            response.setContentLength(body.length);
            response.getOutputStream().write(body);
        }

        /** Whether a request of {@code method} may carry content: never for TRACE, for OPTIONS only with its type. */
        private static boolean mayCarryContent(String method, HttpServletRequest request) {
            if (method.equals("TRACE")) {
                return false;
            }
            return !method.equals("OPTIONS") || request.getHeader("Content-Type") != null;
        }

        /** {@code Date} and {@code Server}: the origin's replace the container's (RFC 9110 §6.6.1, §10.2.4). */
        private static boolean isPresetByContainer(String name) {
            return name.equalsIgnoreCase("Date") || name.equalsIgnoreCase("Server");
        }

        /**
         * Request fields this hop sets itself, or drops: {@code X-Forwarded-Ssl} and {@code X-Forwarded-Prefix} are
         * never added here, yet upstreams that trust forwarding headers (Spring's {@code ForwardedHeaderFilter}) build
         * their links from them, so a client's own would pass as this gateway's word; so would a client's
         * {@code X-Real-IP} (nginx's single client address, which upstreams read for rate limits and logs).
         */
        private static boolean isReplacedRequestHeader(String name) {
            switch (name.length()) {
                case 4:
                    return name.equalsIgnoreCase("Host");
                case 9:
                    return name.equalsIgnoreCase("X-Real-IP");
                case 6:
                    return name.equalsIgnoreCase("Expect");
                case 14:
                    return name.equalsIgnoreCase("Content-Length");
                case 15:
                    return name.equalsIgnoreCase("X-Forwarded-Ssl");
                case 16:
                    return name.equalsIgnoreCase("X-Forwarded-Host") || name.equalsIgnoreCase("X-Forwarded-Port");
                case 17:
                    return name.equalsIgnoreCase("X-Forwarded-Proto");
                case 18:
                    return name.equalsIgnoreCase("X-Forwarded-Prefix");
                default:
                    return false;
            }
        }

        /**
         * The authority the client addressed: its {@code Host}, or over HTTP/2 and later, where it comes as
         * {@code :authority} and Tomcat has no {@code Host} field for it, the server name and port the container took
         * from it (RFC 9113 §8.3.1: a {@code Host} generated for HTTP/1.1 takes the {@code :authority}).
         */
        private static String clientAuthority(HttpServletRequest request) {
            String host = request.getHeader("Host");
            if (host != null || !HopByHop.framesBodiesByStream(request.getProtocol())) {
                return host;
            }
            String name = request.getServerName();
            if (name == null || name.isEmpty()) {
                return null;
            }
            if (name.indexOf(':') >= 0 && !name.startsWith("[")) {
                name = "[" + name + "]";
            }
            int port = request.getServerPort();
            int defaultPort = "https".equalsIgnoreCase(request.getScheme()) ? 443 : 80;
            return port <= 0 || port == defaultPort ? name : name + ":" + port;
        }

        private static String gatewayOrigin(HttpServletRequest request) {
            String host = request.getHeader("Host");
            if (host == null || host.isEmpty()) {
                host = request.getServerName() + ":" + request.getServerPort();
            }
            return request.getScheme() + "://" + host;
        }

        private static String gatewayPrefix(HttpServletRequest request) {
            return request.getContextPath() + UpstreamTarget.mappedPrefix(request);
        }

        /** This hop's {@code Via} entry for a message received over {@code protocol}. */
        private String via(String protocol) {
            if ("HTTP/1.1".equals(protocol)) {
                return via11;
            }
            String version = protocol.startsWith("HTTP/") ? protocol.substring(5) : protocol;
            if (version.length() == 3 && version.endsWith(".0") && version.charAt(0) >= '2') {
                // Containers report "HTTP/2.0"; HTTP/2 and HTTP/3 have no minor version, and RFC 9110 §7.6.3 names
                // the received protocol as its own version does: "2".
                version = version.substring(0, 1);
            }
            return version + " " + viaName;
        }

        private static String join(Enumeration<String> values) {
            return join(values, ", ");
        }

        private static String join(Enumeration<String> values, String separator) {
            String joined = null;
            while (values.hasMoreElements()) {
                String v = values.nextElement();
                joined = joined == null ? v : joined + separator + v;
            }
            return joined;
        }

        /**
         * The lines of a list this hop appends its own element to, but not a line that leaves a quoted string or a
         * comment open ({@code for="x}, {@code 1.1 x (note}): the element appended after it would read as part of
         * it, and the upstream would not see this gateway's {@code for=}, nor loop detection its {@code Via} entry.
         */
        private static String joinClosed(Enumeration<String> values) {
            String joined = null;
            while (values.hasMoreElements()) {
                String v = values.nextElement();
                if (closesWhatItOpens(v)) {
                    joined = joined == null ? v : joined + ", " + v;
                }
            }
            return joined;
        }

        /** Whether every quoted string and (nested) comment in {@code value} ends, a backslash escaping one character. */
        private static boolean closesWhatItOpens(String value) {
            boolean quoted = false;
            int comments = 0;
            for (int i = 0; i < value.length(); i++) {
                char c = value.charAt(i);
                if (c == '\\' && (quoted || comments > 0)) {
                    i++;
                } else if (c == '"' && comments == 0) {
                    quoted = !quoted;
                } else if (!quoted && c == '(') {
                    comments++;
                } else if (!quoted && c == ')' && comments > 0) {
                    comments--;
                }
            }
            return !quoted && comments == 0;
        }

        private static void closeQuietly(ClassicHttpResponse response) {
            try {
                response.close();
            } catch (IOException ignored) {
                // Releasing the connection failed: it is discarded either way.
            }
        }
    }

    /**
     * A request's input stream, opened at the first read: containers send a client waiting for 100 (Continue) its go
     * ahead when the stream is opened (Jetty) or first read (Tomcat with {@code continueResponseTiming="onRead"}).
     */
    private static final class InputOpenedOnRead extends InputStream {
        private final HttpServletRequest request;
        private InputStream in;

        InputOpenedOnRead(HttpServletRequest request) {
            this.request = request;
        }

        private InputStream in() throws IOException {
            if (in == null) {
                try {
                    in = request.getInputStream();
                } catch (IllegalStateException readerTaken) {
                    // A filter took the body as a reader: nothing left to forward, which ends the body early.
                    in = InputStream.nullInputStream();
                }
            }
            return in;
        }

        @Override
        public int read() throws IOException {
            return in().read();
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            return in().read(b, off, len);
        }
    }

    /**
     * The upstream's trailer fields for the container to write after the last chunk: taken once the body has been read
     * to its end, without the fields a trailer must not carry (framing and how to process the content, RFC 9110
     * §6.5.1) or this hop's own (§7.6.1), and with a field's repeated lines joined into one list (§5.3).
     */
    private static final class TrailerRelay implements Supplier<Map<String, String>> {
        /**
         * Fields a trailer must not carry (RFC 9110 §6.5.1): framing, routing, request modifiers, authentication,
         * response controls and content metadata, which a recipient needs before the content or would apply to it
         * afterwards; this hop's own. Tomcat drops most of them itself and Jetty none: now both relay the same.
         * {@code Authentication-Info} may be a trailer (RFC 7615 §3), and passes.
         */
        private static final Set<String> NOT_TRAILERS = Set.of("content-length", "content-type",
                "content-encoding", "content-range", "content-location", "transfer-encoding", "trailer", "host",
                "max-forwards", "expect", "range", "te", "authorization", "proxy-authorization", "cookie",
                "www-authenticate", "proxy-authenticate", "set-cookie", "cache-control", "expires", "pragma", "age",
                "vary", "warning", "location", "retry-after", "date", "server", "proxy-status", "via");

        /** Room for the last chunk's line and the section's end in the container's trailer buffer. */
        private static final int LAST_CHUNK_ALLOWANCE = 64;

        private final List<String> connectionTokens;
        /** The largest section the container writes, or {@link ContainerLimits#UNKNOWN}. */
        private final int containerLimit;
        private volatile Map<String, String> fields = Map.of();

        TrailerRelay(List<String> connectionTokens, int containerLimit) {
            this.connectionTokens = connectionTokens;
            this.containerLimit = containerLimit;
        }

        void take(HttpEntity entity) {
            org.apache.hc.core5.function.Supplier<List<? extends Header>> supplier = entity.getTrailers();
            List<? extends Header> headers = supplier == null ? null : supplier.get();
            if (headers == null || headers.isEmpty()) {
                return;
            }
            Map<String, String> taken = new LinkedHashMap<>();
            for (Header header : headers) {
                String name = header.getName();
                if (HopByHop.isExcluded(name, connectionTokens) || !mayBeTrailer(name)) {
                    continue;
                }
                taken.merge(name.toLowerCase(Locale.ROOT), header.getValue(), (a, b) -> a + ", " + b);
            }
            if (containerLimit != ContainerLimits.UNKNOWN) {
                long section = 0;
                for (Map.Entry<String, String> field : taken.entrySet()) {
                    section += field.getKey().length() + field.getValue().length() + 4; // ": " and CRLF
                }
                if (section > containerLimit - LAST_CHUNK_ALLOWANCE) {
                    // Jetty would fail the response after its body, cutting a valid answer off; a recipient that
                    // removes the chunked coding may discard trailer fields (RFC 9112 §7.1.2). All of them: a part of
                    // a section (one checksum of two) could mislead more than none.
                    return;
                }
            }
            fields = taken;
        }

        @Override
        public Map<String, String> get() {
            return fields;
        }

        /** The names of an announcement ({@code Trailer}) of fields this relay passes on, in order; maybe none. */
        static String announced(String value, List<String> connectionTokens) {
            StringBuilder relayed = new StringBuilder(value.length());
            for (String token : value.split(",")) {
                String name = token.trim();
                if (!name.isEmpty() && !HopByHop.isExcluded(name, connectionTokens) && mayBeTrailer(name)) {
                    relayed.append(relayed.length() == 0 ? "" : ", ").append(name);
                }
            }
            return relayed.toString();
        }

        private static boolean mayBeTrailer(String name) {
            return !NOT_TRAILERS.contains(name.toLowerCase(Locale.ROOT));
        }
    }

    /**
     * Configures an {@link UpstreamProxyServlet} in code; every setter validates at once and names the bad value.
     */
    public static final class Builder {
        private final UpstreamTarget target;
        private String upstreamName;
        private GuardPolicy.Builder policyBuilder = GuardPolicy.builder();
        private GuardPolicy policy;
        private String proxyName = FaultResponseWriter.DEFAULT_PROXY_NAME;
        private boolean exposeDetails;
        private long maxBufferedRequestBody = DEFAULT_MAX_BUFFERED_REQUEST_BODY;
        private boolean preserveHost;
        private boolean addForwarded = true;
        private boolean addXForwarded = true;
        private MeterRegistry registry = Metrics.globalRegistry;
        private GuardedHttpClient sharedClient;

        private Builder(String upstreamUri) {
            this.target = UpstreamTarget.parse(upstreamUri);
        }

        /** The upstream's name in metrics, logs and responses; default the servlet's name. */
        public Builder upstreamName(String name) {
            if (name == null || name.isBlank()) {
                throw new IllegalArgumentException(UPSTREAM_NAME + " must not be blank");
            }
            String trimmed = name.trim();
            // Written as it is into every fault's log line and the meters' tags: a line break would forge a log line.
            if (trimmed.chars().anyMatch(Character::isISOControl)) {
                throw new IllegalArgumentException(UPSTREAM_NAME + " must not hold a control character, was '"
                        + trimmed.replaceAll("(?U)\\p{Cntrl}", "?") + "'");
            }
            this.upstreamName = trimmed;
            return this;
        }

        /** The upstream's policy; default {@link GuardPolicy#ofDefaults()}. Replaces earlier {@link #set} calls. */
        public Builder policy(GuardPolicy policy) {
            this.policyBuilder = Objects.requireNonNull(policy, "policy").toBuilder();
            return this;
        }

        /**
         * One policy setting by its key, as {@link GuardPolicy.Builder#set(String, String)} takes it
         * ({@code connect-timeout}, {@code retry.max-attempts}…), applied on top of {@link #policy}. Settings that
         * contradict each other are reported by {@link #build()}.
         *
         * @throws IllegalArgumentException naming the key when it is unknown or the value invalid
         */
        public Builder set(String key, String value) {
            if (OWN_SETTINGS.contains(key)) {
                throw new IllegalArgumentException("'" + key + "' is not a policy setting; use its own builder method");
            }
            policyBuilder.set(key, value);
            return this;
        }

        /** The name this gateway gives itself in {@code Proxy-Status} and {@code Via}; default {@code upstream-guard}. */
        public Builder proxyName(String name) {
            this.proxyName = FaultResponseWriter.checkProxyName(name);
            return this;
        }

        /**
         * Whether fault responses may carry exception messages ({@code details}) and the upstream's address
         * ({@code next-hop}); default {@code false}, since they leak topology.
         */
        public Builder exposeDetails(boolean expose) {
            this.exposeDetails = expose;
            return this;
        }

        /**
         * The largest request body buffered in memory, default 64 KiB. Buffered bodies can be replayed, so idempotent
         * requests carrying them are retried; larger bodies stream and are never retried.
         */
        public Builder maxBufferedRequestBody(long bytes) {
            if (bytes < 0 || bytes > Integer.MAX_VALUE - 16) {
                throw new IllegalArgumentException(
                        MAX_BUFFERED_REQUEST_BODY + " must be between 0 and 2 GiB, was " + bytes);
            }
            this.maxBufferedRequestBody = bytes;
            return this;
        }

        /** Whether the client's {@code Host} header is sent upstream; default {@code false} (the upstream's own). */
        public Builder preserveHost(boolean preserve) {
            this.preserveHost = preserve;
            return this;
        }

        /**
         * Which forwarding headers are added: {@code both} (default), {@code forwarded} or {@code x-forwarded}; see
         * {@link #FORWARDED_HEADERS}. Fewer headers are less work for the upstream on every request.
         *
         * @throws IllegalArgumentException naming the setting for any other value
         */
        public Builder forwardedHeaders(String kinds) {
            String kind = Settings.forwardedHeaders(FORWARDED_HEADERS, kinds);
            addForwarded = !kind.equals("x-forwarded");
            addXForwarded = !kind.equals("forwarded");
            return this;
        }

        /**
         * Where the client's meters and {@code upstream.guard.responses} go; default Micrometer's global registry,
         * {@code null} for nowhere.
         */
        public Builder meterRegistry(MeterRegistry registry) {
            this.registry = registry;
            return this;
        }

        /**
         * Forwards with an existing client (for instance one shared by a Spring application) under the upstream
         * {@code upstreamName}, which that client must know; the servlet then neither builds nor closes a client,
         * and the client's policy for that upstream applies ({@link #policy} is ignored). Build the client with
         * content compression and redirects disabled, as a proxy must pass both through. Its default
         * {@code User-Agent}, if it keeps one for the application's own calls, is never added to a forwarded request.
         */
        public Builder client(GuardedHttpClient client, String upstreamName) {
            this.sharedClient = Objects.requireNonNull(client, "client");
            return upstreamName(upstreamName);
        }

        /**
         * Builds the servlet; its client is created when the container initializes it.
         *
         * @throws IllegalArgumentException when policy settings contradict each other
         */
        public UpstreamProxyServlet build() {
            return new UpstreamProxyServlet(this);
        }

        private Builder copy() {
            Builder b = new Builder(target);
            b.upstreamName = upstreamName;
            b.policy = policyBuilder.build();
            b.proxyName = proxyName;
            b.exposeDetails = exposeDetails;
            b.maxBufferedRequestBody = maxBufferedRequestBody;
            b.preserveHost = preserveHost;
            b.addForwarded = addForwarded;
            b.addXForwarded = addXForwarded;
            b.registry = registry;
            b.sharedClient = sharedClient;
            return b;
        }

        private Builder(UpstreamTarget target) {
            this.target = target;
        }
    }
}
