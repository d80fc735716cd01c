package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.RequestDispatcher;
import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.ServletResponseWrapper;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Answers an {@link UpstreamException} the way DESIGN.md says a gateway must, for both the filter and the proxy
 * servlet: the fault's status, {@code Proxy-Status} (RFC 9209), {@code Retry-After} on a 503 (1 s when unknown),
 * {@code Cache-Control: no-store}, and a body negotiated on {@code Accept} (RFC 9457 problem details, HTML or plain
 * text; none for HEAD). Whatever else the response held is replaced, except the fields it had when the request
 * reached the filter ({@link #rememberOuterFields}). It logs one WARN line per fault and counts the response in
 * {@code upstream.guard.responses}.
 *
 * <p>When the response is already committed nothing can be rendered: {@link #write} still logs and counts, and
 * aborts the client connection — or, where the container offers no way to, tells the caller to throw
 * {@link #abortion}, which makes the container abort it.
 *
 * <p>Thread-safe; one instance per filter or servlet.
 */
public final class FaultResponseWriter {

    /** The proxy name used when none is configured. */
    public static final String DEFAULT_PROXY_NAME = "upstream-guard";

    /** Problem types are this base followed by the RFC 9209 error type. */
    public static final String PROBLEM_TYPE_BASE = "https://upstreamguard.dev/problems/";

    /** The counter of generated responses, tagged {@code status} and {@code fault}. */
    public static final String RESPONSES_METER = "upstream.guard.responses";

    /**
     * The {@code nextHop} of a fault whose upstream is a stand-in named after the servlet (the application's own call,
     * an async timeout): no hop the gateway knows, so {@code Proxy-Status} names none.
     */
    public static final String NO_NEXT_HOP = "";

    /**
     * A fully qualified class name, with the {@code ": "} that {@code Throwable.toString()} puts before a message:
     * lower-case packages (two at least) and a capitalised class, which host names and file names are not.
     */
    private static final Pattern CLASS_NAME = Pattern.compile(
            "\\b(?:[a-z_][a-z0-9_]*\\.){2,}([A-Z][A-Za-z0-9_$]*)(?!\\.?[\\w$-])(: ?)?");
    private static final Logger LOG = LoggerFactory.getLogger("dev.upstreamguard.gateway");
    private static final String HANDLED_ATTRIBUTE = FaultResponseWriter.class.getName() + ".handled";
    private static final String ABORT_ATTRIBUTE = FaultResponseWriter.class.getName() + ".abort";
    private static final String ABORT_THROWN_ATTRIBUTE = FaultResponseWriter.class.getName() + ".abortThrown";
    private static final String OUTER_FIELDS_ATTRIBUTE = FaultResponseWriter.class.getName() + ".outerFields";
    /**
     * Fields never kept from before the filter: those of the replaced body or its caching, those the answer sets
     * itself, and those the container writes of its own accord (Jetty keeps Server and Date across reset(); set again
     * by a caller that captures the answer, such as the Spring module's handler, they would go out twice).
     */
    private static final Set<String> NOT_KEPT = Set.of("content-type", "content-length", "content-encoding",
            "content-language", "content-location", "content-range", "content-disposition", "content-md5",
            "content-digest", "repr-digest", "digest", "transfer-encoding", "trailer", "etag", "last-modified",
            "cache-control", "expires", "pragma", "age", "accept-ranges", "location", "retry-after", "proxy-status",
            "date", "server");
    /** Trailer fields of a body a fault cut short: none, since they would claim it whole (a checksum), but a failure. */
    private static final Supplier<Map<String, String>> CUT_SHORT = () -> {
        throw new IllegalStateException("A fault cut the body short: the stream is reset, not ended");
    };

    /** Browser security policies a fault's answer keeps whoever set them (see {@link #policyFields}). */
    private static final Set<String> POLICY_FIELDS = Set.of("strict-transport-security", "x-content-type-options",
            "x-frame-options", "content-security-policy", "content-security-policy-report-only", "referrer-policy",
            "permissions-policy", "cross-origin-opener-policy", "cross-origin-embedder-policy",
            "cross-origin-resource-policy", "x-xss-protection");
    private static final UpstreamFault[] FAULTS = UpstreamFault.values();
    private static final String ABORTED = "aborted";
    private static final int MAX_DETAILS = 256;
    private static final long MAX_DELTA_SECONDS = 1L << 31;

    private final String proxyName;
    private final String proxyStatusPrefix;
    private final boolean exposeDetails;
    private final MeterRegistry registry;
    /** Counters by fault: index {@code ordinal} for rendered responses, {@code FAULTS.length + ordinal} for aborts. */
    private final AtomicReferenceArray<Counter> counters = new AtomicReferenceArray<>(FAULTS.length * 2);

    /**
     * @param proxyName the name this gateway gives itself in {@code Proxy-Status}; printable ASCII
     * @param exposeDetails whether responses may carry exception messages, the upstream's host ({@code next-hop}) and
     *     upstream names that look like addresses; off by default because they leak topology
     * @param registry where {@code upstream.guard.responses} is counted, or {@code null} for nowhere
     * @throws IllegalArgumentException when {@code proxyName} is empty or not printable ASCII
     */
    public FaultResponseWriter(String proxyName, boolean exposeDetails, MeterRegistry registry) {
        this.proxyName = checkProxyName(proxyName);
        this.proxyStatusPrefix = StructuredFields.appendTokenOrString(new StringBuilder(), proxyName)
                .append("; error=").toString();
        this.exposeDetails = exposeDetails;
        this.registry = registry;
    }

    /** Validates a proxy name eagerly, naming the bad value. */
    public static String checkProxyName(String proxyName) {
        Objects.requireNonNull(proxyName, "proxy-name");
        if (proxyName.isBlank() || !StructuredFields.isPrintableAscii(proxyName)) {
            throw new IllegalArgumentException(
                    "proxy-name must be non-empty printable ASCII, was '" + proxyName + "'");
        }
        return proxyName;
    }

    /** The configured proxy name. */
    public String proxyName() {
        return proxyName;
    }

    /** Whether details are exposed. */
    public boolean exposeDetails() {
        return exposeDetails;
    }

    /**
     * Whether {@code fault} was already answered or aborted for this request, by this or another gateway component
     * (the proxy servlet under the filter), so that it is logged and counted once.
     */
    public static boolean isHandled(ServletRequest request, Throwable fault) {
        return fault instanceof ResponseAbortedException
                || (fault != null && request.getAttribute(HANDLED_ATTRIBUTE) == fault);
    }

    /**
     * Remembers the fields {@code response} holds as the request enters the fault filter: set by the container or by
     * filters before it (CORS, HSTS and other security headers, a session cookie), not by the application whose
     * response the fault replaces. {@link #write} keeps them, so that, say, a browser script may read the fault's
     * answer under CORS. Fields of the body or its caching are not kept. The first call for a request counts.
     */
    public static void rememberOuterFields(HttpServletRequest request, HttpServletResponse response) {
        if (request.getAttribute(OUTER_FIELDS_ATTRIBUTE) != null) {
            return;
        }
        // On every request, and most find no field to keep: no map for them.
        Map<String, List<String>> fields = Map.of();
        for (String name : response.getHeaderNames()) {
            String lower = name.toLowerCase(Locale.ROOT);
            // Named one by one: Content-Security-Policy, say, is no field of the body, and stays.
            if (!NOT_KEPT.contains(lower) && !fields.containsKey(name)) {
                if (fields.isEmpty()) {
                    fields = new LinkedHashMap<>();
                }
                fields.put(name, new ArrayList<>(response.getHeaders(name)));
            }
        }
        request.setAttribute(OUTER_FIELDS_ATTRIBUTE, fields);
    }

    /**
     * The fault whose committed response {@link #write} told its caller to abort by throwing {@link #abortion}, while
     * that has not been done: a framework between the caller and the container may swallow the exception (Spring MVC
     * does with one thrown by an {@code @ExceptionHandler}), and the outermost component still owes the abort.
     *
     * @return the fault, or {@code null} when no abort is owed
     */
    public static UpstreamException abortOwed(ServletRequest request) {
        Object fault = request.getAttribute(ABORT_ATTRIBUTE);
        return fault instanceof UpstreamException ? (UpstreamException) fault : null;
    }

    /** Marks the abort owed for this request as done: the exception is on its way to the container. */
    public static void abortThrown(ServletRequest request) {
        Object fault = request.getAttribute(ABORT_ATTRIBUTE);
        request.removeAttribute(ABORT_ATTRIBUTE);
        if (fault != null) {
            request.setAttribute(ABORT_THROWN_ATTRIBUTE, fault);
        }
    }

    /**
     * The fault whose abort was thrown towards the container, taken off the request: for a filter ahead of the fault
     * filter to throw {@link #abortion} again when the chain returned normally, because a filter in between swallowed
     * it (a war's {@code ErrorPageFilter} does so for Tomcat's {@code ClientAbortException}, and Tomcat then ends the
     * cut body as if it were whole). {@code null} when no abort was thrown.
     */
    public static UpstreamException abortSwallowed(ServletRequest request) {
        Object fault = request.getAttribute(ABORT_THROWN_ATTRIBUTE);
        if (!(fault instanceof UpstreamException)) {
            return null;
        }
        request.removeAttribute(ABORT_THROWN_ATTRIBUTE);
        return (UpstreamException) fault;
    }

    /**
     * The exception to throw when {@link #write} answered {@link Answer#THROW_TO_ABORT}. In Tomcat it is Tomcat's own
     * {@code ClientAbortException}, the one exception Tomcat aborts the connection on without logging it as a servlet
     * failure at SEVERE: the fault was logged once already, at WARN, as DESIGN.md asks.
     */
    public static IOException abortion(HttpServletResponse response, UpstreamException fault) {
        ResponseAbortedException aborted = new ResponseAbortedException(fault);
        ServletResponse unwrapped = unwrap(response);
        if (unwrapped.getClass().getName().startsWith("org.apache.catalina.")) {
            try {
                Class<?> type = Class.forName("org.apache.catalina.connector.ClientAbortException", false,
                        unwrapped.getClass().getClassLoader());
                Object quiet = type.getConstructor(Throwable.class).newInstance(aborted);
                if (quiet instanceof IOException) {
                    return (IOException) quiet;
                }
            } catch (ReflectiveOperationException | LinkageError notThisTomcat) {
                // The plain exception aborts as well; Tomcat just logs it.
            }
        }
        return aborted;
    }

    private static ServletResponse unwrap(ServletResponse response) {
        ServletResponse unwrapped = response;
        while (unwrapped instanceof ServletResponseWrapper) {
            unwrapped = ((ServletResponseWrapper) unwrapped).getResponse();
        }
        return unwrapped;
    }

    /** What {@link #write} did. */
    public enum Answer {
        /** The fault response was written. */
        RENDERED,
        /** The response was committed; the container was told to abort the client connection and did. */
        ABORTED,
        /** The response was committed; the caller must throw {@link #abortion} so that the container aborts. */
        THROW_TO_ABORT
    }

    /**
     * Answers {@code fault}: logs it, counts it and, unless the response is committed, replaces whatever the
     * response held with the generated one; when it is committed, aborts the client connection or says how to.
     *
     * @param nextHop the upstream's host (and port) for {@code next-hop} when details are exposed, {@code null} for
     *     the upstream's name (its host and port when the name is a URL), or {@link #NO_NEXT_HOP} for none
     */
    public Answer write(HttpServletRequest request, HttpServletResponse response, UpstreamException fault,
            String nextHop) throws IOException {
        return write(request, response, fault, nextHop, null);
    }

    /**
     * As {@link #write(HttpServletRequest, HttpServletResponse, UpstreamException, String)}, for a fault in a response
     * whose head carried {@code Proxy-Status} members of hops nearer the origin: they are kept before this gateway's
     * own (RFC 9209 §2), though the rest of that response is replaced; unless they do not parse as a structured-field
     * list, which would make a recipient ignore the whole field.
     *
     * @param earlierMembers the {@code Proxy-Status} lines of the upstream's response (or the one the application
     *     relayed) joined, or {@code null}
     */
    public Answer write(HttpServletRequest request, HttpServletResponse response, UpstreamException fault,
            String nextHop, String earlierMembers) throws IOException {
        request.setAttribute(HANDLED_ATTRIBUTE, fault);
        UpstreamFault type = fault.fault();
        boolean rendered = !response.isCommitted();
        Map<String, List<String>> policies = rendered ? policyFields(response) : Map.of();
        if (rendered) {
            try {
                response.reset();
            } catch (IllegalStateException committedMeanwhile) {
                rendered = false;
            }
        }
        log(request, fault, rendered ? Integer.toString(type.status()) : ABORTED + " " + response.getStatus());
        count(type, rendered);
        if (!rendered) {
            resetStreamAtTheEnd(request, response);
            if (abortConnection(response)) {
                return Answer.ABORTED;
            }
            // Committed for the application (Tomcat: the whole announced length written) need not mean on the wire:
            // Tomcat 10.1 answers the exception thrown next with a 400 error report (the fault's message and a stack
            // trace) in place of a head it has not sent. Sent now, the head and what the application wrote stand, and
            // the exception only cuts the connection.
            try {
                response.flushBuffer();
            } catch (IOException | IllegalStateException clientGoneOrClosed) {
                // Nothing more goes out; the abort still follows.
            }
            request.setAttribute(ABORT_ATTRIBUTE, fault);
            return Answer.THROW_TO_ABORT;
        }
        int status = type.status();
        response.setStatus(status);
        restoreOuterFields(request, response);
        restorePolicyFields(response, policies);
        String own = proxyStatus(fault, nextHop);
        String earlier = earlierMembers == null ? null : earlierMembers.trim();
        // A recipient parses the field whole: appended to members that do not parse, this gateway's would be lost too.
        response.setHeader("Proxy-Status", earlier != null && StructuredFields.isList(earlier) ? earlier + ", " + own
                : own);
        if (status == 503) {
            // When the time is unknown (a half-open circuit with its trial calls out, one forced open) the shortest
            // hint, as for a full bulkhead: without one, clients guess, and many retry at once.
            Duration after = fault.retryAfter().orElse(null);
            // Never 0: "now" from a gateway that is refusing calls has every client retry at once, in a loop. An
            // exception the application built itself may say no time, or less, is left.
            response.setHeader("Retry-After", after == null ? "1" : Long.toString(Math.max(1, seconds(after))));
        }
        response.setHeader("Cache-Control", "no-store");
        ProblemFormat format = ProblemFormat.negotiate(accept(request));
        byte[] body = body(format, request, fault).getBytes(StandardCharsets.UTF_8);
        response.setContentType(format.contentType());
        response.setContentLength(body.length);
        if (!"HEAD".equals(request.getMethod())) {
            try {
                ServletOutputStream out = response.getOutputStream();
                out.write(body);
            } catch (IllegalStateException writerInUse) {
                // The application took the writer before failing and the container kept that state across reset().
                response.getWriter().write(new String(body, StandardCharsets.UTF_8));
            }
        }
        response.flushBuffer();
        return Answer.RENDERED;
    }

    /**
     * {@code Proxy-Status} field lines as one list, for {@link #write}'s {@code earlierMembers}: blank lines left out,
     * {@code null} when none is left.
     */
    public static String joinedMembers(Iterable<String> lines) {
        String joined = null;
        for (String line : lines) {
            if (line != null && !line.isBlank()) {
                joined = joined == null ? line.trim() : joined + ", " + line.trim();
            }
        }
        return joined;
    }

    /** Sets again the fields {@link #rememberOuterFields} found, which {@code reset()} took off with the rest. */
    private static void restoreOuterFields(HttpServletRequest request, HttpServletResponse response) {
        Object remembered = request.getAttribute(OUTER_FIELDS_ATTRIBUTE);
        if (!(remembered instanceof Map)) {
            return;
        }
        for (Map.Entry<?, ?> field : ((Map<?, ?>) remembered).entrySet()) {
            String name = (String) field.getKey();
            boolean first = true;
            for (Object value : (List<?>) field.getValue()) {
                // Set, then added: a field the container kept across reset() is not doubled.
                if (first) {
                    response.setHeader(name, (String) value);
                    first = false;
                } else {
                    response.addHeader(name, (String) value);
                }
            }
        }
    }

    /**
     * The CORS fields ({@code Access-Control-*}) and browser security policies ({@link #POLICY_FIELDS}) on
     * {@code response}, whoever set them: in Spring Boot the fault filter runs before Spring Security's CORS and
     * header writer, a {@code CorsFilter} and {@code @CrossOrigin}, which all set theirs after it. They say who may read
     * the response and how a browser must treat it, not what it holds: without the CORS fields a browser script sees a
     * CORS error instead of the fault's answer, and without the policies the gateway's answer is the one page of the
     * site without HSTS or {@code nosniff}.
     */
    private static Map<String, List<String>> policyFields(HttpServletResponse response) {
        Map<String, List<String>> fields = Map.of();
        for (String name : response.getHeaderNames()) {
            if ((name.regionMatches(true, 0, "Access-Control-", 0, 15)
                    || POLICY_FIELDS.contains(name.toLowerCase(Locale.ROOT))) && !fields.containsKey(name)) {
                if (fields.isEmpty()) {
                    fields = new LinkedHashMap<>();
                }
                fields.put(name, new ArrayList<>(response.getHeaders(name)));
            }
        }
        return fields;
    }

    /** Sets again the policy fields {@code reset()} took off, unless the outer fields already brought them back. */
    private static void restorePolicyFields(HttpServletResponse response, Map<String, List<String>> fields) {
        for (Map.Entry<String, List<String>> field : fields.entrySet()) {
            if (response.containsHeader(field.getKey())) {
                continue;
            }
            for (String value : field.getValue()) {
                response.addHeader(field.getKey(), value);
            }
        }
    }

    /**
     * Over HTTP/2 Tomcat ends the stream cleanly (END_STREAM) whatever is thrown after the commit, so a body of no
     * stated length cut short by a fault would reach the client as a whole, shorter one. A trailer supplier that fails,
     * set now (Tomcat takes one until the stream has ended), makes it reset the stream instead (RST_STREAM): the abort
     * an HTTP/1.1 client gets from the closed connection. Set only on a cut: a supplier set up front would change the
     * frames of every whole response (an empty trailer section after the body, none of it on the last DATA frame).
     */
    private static void resetStreamAtTheEnd(HttpServletRequest request, HttpServletResponse response) {
        if (!HopByHop.framesBodiesByStream(request.getProtocol())) {
            return;
        }
        try {
            response.setTrailerFields(CUT_SHORT);
        } catch (IllegalStateException | UnsupportedOperationException notHere) {
            // The stream already ended, or a container that aborts by other means (Jetty: sendError(-1), below).
        }
    }

    /**
     * Aborts the client connection where the container offers a way to: Jetty treats {@code sendError(-1)} as "abort
     * the connection" even when committed (its own proxy servlet relies on this). Only Jetty's own response is asked,
     * past any wrappers, since a wrapper may swallow the call. Tomcat and containers following the specification
     * refuse {@code sendError} once committed; they abort on the exception the caller throws instead
     * ({@link #abortion}).
     *
     * @return whether the container took the abort
     */
    private static boolean abortConnection(HttpServletResponse response) {
        ServletResponse unwrapped = unwrap(response);
        if (!(unwrapped instanceof HttpServletResponse)
                || !unwrapped.getClass().getName().startsWith("org.eclipse.jetty.")) {
            return false;
        }
        try {
            ((HttpServletResponse) unwrapped).sendError(-1, "Upstream fault after the response was committed");
            return true;
        } catch (IllegalStateException | IOException refused) {
            return false;
        }
    }

    /**
     * Every {@code Accept} field line as one list (RFC 9110 §5.3): {@code getHeader} gives only the first, and a client
     * may split its preferences over several lines. What the answer's format is negotiated from.
     */
    public static String accept(HttpServletRequest request) {
        Enumeration<String> lines = request.getHeaders("Accept");
        if (lines == null || !lines.hasMoreElements()) {
            return null;
        }
        String first = lines.nextElement();
        if (!lines.hasMoreElements()) {
            return first;
        }
        StringBuilder all = new StringBuilder(first);
        while (lines.hasMoreElements()) {
            all.append(',').append(lines.nextElement());
        }
        return all.toString();
    }

    /**
     * The {@code Proxy-Status} member of this gateway: its name, the error type, {@code alert-id} and
     * {@code alert-message} when the upstream's TLS alert is known, and {@code next-hop} and {@code details} only
     * when details are exposed.
     */
    String proxyStatus(UpstreamException fault, String nextHop) {
        StringBuilder sb = new StringBuilder(proxyStatusPrefix.length() + 64).append(proxyStatusPrefix)
                .append(fault.fault().type());
        if (fault.fault() == UpstreamFault.TLS_ALERT_RECEIVED) {
            // RFC 9209's parameters of tls_alert_received: an alert of the registry tells nothing of the topology.
            TlsAlerts.Alert alert = TlsAlerts.received(fault);
            if (alert != null) {
                sb.append("; alert-id=").append(alert.id());
                StructuredFields.appendString(sb.append("; alert-message="), alert.name());
            }
        }
        if (exposeDetails) {
            String hop = nextHop != null ? nextHop : addressOf(fault.upstream());
            if (hop != null && !hop.isEmpty()) {
                StructuredFields.appendTokenOrString(sb.append("; next-hop="), hop);
            }
            String message = fault.getMessage();
            if (message != null && !message.isEmpty()) {
                StructuredFields.appendString(sb.append("; details="), exposable(message));
            }
        }
        return sb.toString();
    }

    private String body(ProblemFormat format, HttpServletRequest request, UpstreamException fault) {
        UpstreamFault type = fault.fault();
        String detail = FaultTexts.detail(type);
        if (exposeDetails && fault.getMessage() != null) {
            detail = detail + " " + exposable(fault.getMessage());
        }
        String upstream = publicUpstream(fault.upstream());
        int status = type.status();
        switch (format) {
            case JSON: {
                StringBuilder sb = new StringBuilder(320);
                sb.append("{\"type\":");
                Json.string(sb, PROBLEM_TYPE_BASE + type.type());
                sb.append(",\"title\":");
                Json.string(sb, FaultTexts.title(type));
                sb.append(",\"status\":").append(status).append(",\"detail\":");
                Json.string(sb, detail);
                sb.append(",\"instance\":");
                Json.string(sb, originalUri(request));
                if (upstream != null) {
                    sb.append(",\"upstream\":");
                    Json.string(sb, upstream);
                }
                sb.append(",\"fault\":");
                Json.string(sb, type.type());
                sb.append(",\"attempts\":").append(fault.attempts()).append('}');
                return sb.toString();
            }
            case HTML: {
                String heading = status + " " + FaultTexts.reason(status);
                StringBuilder sb = new StringBuilder(900);
                sb.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
                        .append("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">")
                        .append("<title>").append(heading).append("</title><style>")
                        .append("body{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;")
                        .append("color:#222;line-height:1.5}h1{font-size:1.6em}p.meta{color:#666;font-size:.9em}")
                        .append("</style></head>\n<body><h1>").append(heading).append("</h1><p><strong>");
                Html.escape(sb, FaultTexts.title(type)).append(".</strong> ");
                Html.escape(sb, detail).append("</p><p class=\"meta\">Fault <code>").append(type.type())
                        .append("</code>");
                if (upstream != null) {
                    Html.escape(sb.append(" from upstream <code>"), upstream).append("</code>");
                }
                sb.append(" after ").append(fault.attempts()).append(fault.attempts() == 1 ? " attempt" : " attempts")
                        .append(".</p></body></html>\n");
                return sb.toString();
            }
            default: {
                StringBuilder sb = new StringBuilder(200);
                sb.append(status).append(' ').append(FaultTexts.reason(status)).append('\n')
                        .append(detail).append('\n')
                        .append("fault: ").append(type.type()).append('\n');
                if (upstream != null) {
                    sb.append("upstream: ").append(upstream).append('\n');
                }
                sb.append("attempts: ").append(fault.attempts()).append('\n');
                return sb.toString();
            }
        }
    }

    /** The upstream's name as a client may see it: names that look like addresses are hidden unless exposed. */
    private String publicUpstream(String name) {
        if (exposeDetails || (name.indexOf(':') < 0 && name.indexOf('/') < 0)) {
            return name;
        }
        return null;
    }

    /** {@code host:port} from an unnamed upstream's {@code scheme://host:port} name, or {@code null}. */
    private static String addressOf(String upstream) {
        int scheme = upstream.indexOf("://");
        return scheme < 0 ? upstream : upstream.substring(scheme + 3);
    }

    private void log(HttpServletRequest request, UpstreamException fault, String response) {
        if (LOG.isWarnEnabled()) {
            LOG.warn(logLine(request.getMethod(), originalUri(request), fault, response));
        }
    }

    /**
     * The one WARN line per fault, in the spirit of nginx's "upstream prematurely closed connection": upstream, fault,
     * attempts, elapsed time, the root cause's class, what the client got, and the request (never its query).
     */
    static String logLine(String method, String uri, UpstreamException fault, String response) {
        return "Upstream fault: upstream=" + fault.upstream() + " fault=" + fault.fault().type() + " attempts="
                + fault.attempts() + " elapsed_ms=" + fault.elapsed().toMillis() + " root_cause="
                + rootCauseClass(fault) + " response=" + response + " request=\"" + method + " " + uri + "\"";
    }

    /**
     * The path the client asked for, also on a forward, async or error dispatch; never the query, which can hold
     * secrets.
     */
    static String originalUri(HttpServletRequest request) {
        Object uri = null;
        if (request.getDispatcherType() == DispatcherType.ERROR) {
            uri = request.getAttribute(RequestDispatcher.ERROR_REQUEST_URI);
        } else if (request.getDispatcherType() == DispatcherType.ASYNC) {
            uri = request.getAttribute(AsyncContext.ASYNC_REQUEST_URI);
        } else if (request.getDispatcherType() == DispatcherType.FORWARD) {
            // The request URI is the forward's target by now, a path the client never asked for.
            uri = request.getAttribute(RequestDispatcher.FORWARD_REQUEST_URI);
        }
        return withoutSessionId(uri instanceof String ? (String) uri : request.getRequestURI(),
                sessionParameter(request));
    }

    /** The name of the path parameter a session id travels in: the session cookie's name, lower case. */
    private static String sessionParameter(HttpServletRequest request) {
        try {
            String name = request.getServletContext().getSessionCookieConfig().getName();
            return name == null || name.isEmpty() ? "jsessionid" : name.toLowerCase(Locale.ROOT);
        } catch (RuntimeException noContext) {
            return "jsessionid";
        }
    }

    /**
     * {@code path} without the session id a client sent in it ({@code ;jsessionid=...}): like the query, it is a
     * secret, and the problem body and the log would otherwise repeat it.
     */
    static String withoutSessionId(String path, String parameter) {
        if (path == null || path.indexOf(';') < 0) {
            return path;
        }
        StringBuilder sb = new StringBuilder(path.length());
        int i = 0;
        while (i < path.length()) {
            int semicolon = path.indexOf(';', i);
            if (semicolon < 0) {
                sb.append(path, i, path.length());
                break;
            }
            sb.append(path, i, semicolon);
            int end = semicolon + 1;
            while (end < path.length() && path.charAt(end) != ';' && path.charAt(end) != '/') {
                end++;
            }
            String param = path.substring(semicolon + 1, end);
            if (!param.regionMatches(true, 0, parameter + "=", 0, parameter.length() + 1)
                    && !param.equalsIgnoreCase(parameter)) {
                sb.append(path, semicolon, end);
            }
            i = end;
        }
        return sb.toString();
    }

    /** The class of the deepest cause, or {@code none} for a rejection the library made itself. */
    static String rootCauseClass(Throwable fault) {
        Throwable root = null;
        Throwable t = fault.getCause();
        for (int depth = 0; t != null && depth < 32; depth++, t = t.getCause()) {
            root = t;
        }
        return root == null ? "none" : root.getClass().getName();
    }

    private void count(UpstreamFault fault, boolean rendered) {
        if (registry == null) {
            return;
        }
        int index = rendered ? fault.ordinal() : FAULTS.length + fault.ordinal();
        Counter counter = counters.get(index);
        if (counter == null) {
            counter = Counter.builder(RESPONSES_METER)
                    .description("Responses the gateway generated for upstream faults; status 'aborted' when the "
                            + "response was already committed and the client connection was aborted")
                    .tag("status", rendered ? Integer.toString(fault.status()) : ABORTED)
                    .tag("fault", fault.type())
                    .register(registry);
            counters.set(index, counter);
        }
        counter.increment();
    }

    /**
     * Whole seconds, rounded up, as Retry-After wants them; at most 2^31, the value RFC 9111 §1.2.2 has recipients
     * take for any larger delta-seconds (rounding up {@code Long.MAX_VALUE} seconds overflowed to a negative value).
     */
    static long seconds(Duration d) {
        if (d.isNegative() || d.isZero()) {
            return 0;
        }
        long s = d.getSeconds();
        if (s >= MAX_DELTA_SECONDS) {
            return MAX_DELTA_SECONDS;
        }
        return d.getNano() > 0 ? s + 1 : s;
    }

    private static String truncate(String message) {
        return message.length() <= MAX_DETAILS ? message : message.substring(0, MAX_DETAILS) + "...";
    }

    /**
     * {@code message} as a client may see it: without the class names of the causes it quotes (the client describes
     * a cause with its {@code toString()}), which tell a client how the gateway is built, its internals included,
     * not what failed; the text each cause gave stays. A cause without text keeps its class's simple name, unless
     * it is one of the gateway's own. The log keeps the whole message.
     */
    static String exposable(String message) {
        Matcher m = CLASS_NAME.matcher(message);
        if (!m.find()) {
            return truncate(message);
        }
        StringBuilder sb = new StringBuilder(message.length());
        do {
            String replacement = "";
            if (m.group(2) == null && !m.group().startsWith("dev.upstreamguard.")) {
                replacement = m.group(1);
            }
            m.appendReplacement(sb, Matcher.quoteReplacement(replacement));
        } while (m.find());
        m.appendTail(sb);
        return truncate(sb.toString());
    }

    /** JSON string escaping (RFC 8259). */
    static final class Json {
        private Json() {
        }

        static StringBuilder string(StringBuilder sb, String value) {
            sb.append('"');
            for (int i = 0; i < value.length(); i++) {
                char c = value.charAt(i);
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20 || c == 0x2028 || c == 0x2029) {
                            sb.append(String.format("\\u%04x", (int) c));
                        } else {
                            sb.append(c);
                        }
                }
            }
            return sb.append('"');
        }
    }

    /** HTML text escaping. */
    static final class Html {
        private Html() {
        }

        static StringBuilder escape(StringBuilder sb, String value) {
            for (int i = 0; i < value.length(); i++) {
                char c = value.charAt(i);
                switch (c) {
                    case '<': sb.append("&lt;"); break;
                    case '>': sb.append("&gt;"); break;
                    case '&': sb.append("&amp;"); break;
                    case '"': sb.append("&quot;"); break;
                    case '\'': sb.append("&#39;"); break;
                    default: sb.append(c);
                }
            }
            return sb;
        }
    }
}
