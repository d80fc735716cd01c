package dev.upstreamguard.gateway;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.gateway.internal.ClientAnswers;
import dev.upstreamguard.gateway.internal.FaultGuardedRequest;
import dev.upstreamguard.gateway.internal.FaultGuardedResponse;
import dev.upstreamguard.gateway.internal.FaultResponseWriter;
import dev.upstreamguard.gateway.internal.OutboundFailure;
import dev.upstreamguard.gateway.internal.Settings;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Metrics;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.FilterConfig;
import jakarta.servlet.RequestDispatcher;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.time.Duration;
import java.util.Enumeration;
import java.util.concurrent.TimeUnit;

/**
 * Turns an {@link UpstreamException} escaping the application into the response a gateway owes its client: the fault's
 * 502/503/504 status, {@code Proxy-Status} (RFC 9209), {@code Retry-After} on a 503 when known,
 * {@code Cache-Control: no-store}, and an RFC 9457 problem, HTML or plain-text body chosen by {@code Accept} (none for
 * HEAD). It replaces whatever the application had put on the response, keeping only the fields the response had as
 * the request reached the filter (set by filters before it, such as CORS), other than those of a body or its caching,
 * the CORS fields ({@code Access-Control-*}) and browser security policies (HSTS, {@code nosniff}, CSP…) whoever set
 * them, and the application's {@code Proxy-Status} members
 * (RFC 9209 §2). The exception is found anywhere in the cause
 * chain ({@code ServletException}, {@code CompletionException}, Spring's {@code ResourceAccessException}…), also
 * when it is a checked exception thrown undeclared. A call the application made without the guarded client (its own
 * HttpClient, the JDK's {@code java.net.http} client…) is answered the same way when what escaped can only be an
 * outbound call's failure — a refused or timed-out connect, an unresolved name, a TLS handshake, a read timeout, an
 * HTTP client library's I/O failure — classified by {@link dev.upstreamguard.FaultClassifier} as one attempt on an
 * upstream named after the servlet. A fault that only carries the container's failure reading the client's own
 * request body (the application streamed it upstream, and the client broke it) is the client's: the container gets
 * its own exception back. Each fault is logged once at WARN and counted in
 * {@code upstream.guard.responses{status,fault}}. Stack traces, exception messages and internal host names never
 * reach the client unless {@code expose-details} is on.
 *
 * <p>When the response is already committed (a streamed body broke half way) the status cannot change: the filter
 * still logs and counts, then throws so that the container aborts the client connection and the client sees an
 * incomplete response, never a clean one (a body of unknown length goes to an HTTP/1.1 client that asked to close in
 * chunks, so that a cut one shows; an HTTP/2 response gets trailer fields that fail once it is cut, so that Tomcat
 * resets the stream rather than ending it). An error the application sent with {@code sendError} before the fault escaped
 * does not count as committed: the filter holds it until the chain returns (one sent by a task run with
 * {@link AsyncContext#start}, until the task ends or ends the async cycle), and the fault's answer replaces it.
 *
 * <p>Register it first in the chain, with {@code asyncSupported} and the dispatcher types {@code REQUEST},
 * {@code ASYNC} and {@code ERROR}: a fault thrown after {@code startAsync()}, by a task run with
 * {@link AsyncContext#start}, or by a non-blocking {@code WriteListener} or {@code ReadListener}, is answered and
 * the async cycle completed; a fault an async worker hands back to be rethrown on an async dispatch (as Spring MVC
 * does) is answered on that dispatch; an async timeout that none of the application's listeners answered is a 504
 * ({@code http_response_timeout}, the upstream named after the servlet) instead of the container's 500, or a 408 when
 * the application was still waiting for its client's request body; a fault the container carries to an error page
 * (a dispatch the filter did not see thrown) is answered instead of the page.
 * Mapped for {@code INCLUDE} too, it leaves a fault in an included servlet to the including dispatch, where the status
 * can still be set. Configure it with {@link #builder()}, or with the init-params {@value #PROXY_NAME} (default
 * {@code upstream-guard}) and {@value #EXPOSE_DETAILS} (default {@code false}) when the container creates it (any
 * other init-param, or an invalid value, fails {@code init} naming it); a filter made by the builder ignores
 * init-params.
 */
public class UpstreamFaultFilter implements Filter {

    /** Init-param: the name this gateway gives itself in {@code Proxy-Status}. */
    public static final String PROXY_NAME = "proxy-name";

    /** Init-param: whether responses may carry exception messages and upstream addresses ({@code true}/{@code false}). */
    public static final String EXPOSE_DETAILS = "expose-details";

    /**
     * How long the answer to an async timeout waits for a read of the client's body still blocked on another thread
     * to end (the client closing after the 408 ends it): bounded, since a client may keep the connection open.
     */
    private static final Duration READS_ENDED_WAIT = Duration.ofSeconds(10);

    private final boolean configured;
    private final MeterRegistry registry;
    private volatile FaultResponseWriter writer;

    /** A filter configured by its init-params, counting in Micrometer's global registry. */
    public UpstreamFaultFilter() {
        this.configured = false;
        this.registry = Metrics.globalRegistry;
        this.writer = new FaultResponseWriter(FaultResponseWriter.DEFAULT_PROXY_NAME, false, registry);
    }

    private UpstreamFaultFilter(Builder builder) {
        this.configured = true;
        this.registry = builder.registry;
        this.writer = new FaultResponseWriter(builder.proxyName, builder.exposeDetails, builder.registry);
    }

    /** A builder for a filter configured in code. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public void init(FilterConfig config) throws ServletException {
        if (configured) {
            return;
        }
        String proxyName = null;
        String expose = null;
        boolean proxyNameGiven = false;
        boolean exposeGiven = false;
        for (Enumeration<String> names = config.getInitParameterNames(); names != null && names.hasMoreElements();) {
            String given = names.nextElement();
            // Blanks around a name are ignored, as the proxy servlet ignores them (a web.xml laid out by hand).
            String param = given.trim();
            boolean twice;
            if (param.equals(PROXY_NAME)) {
                twice = proxyNameGiven;
                proxyNameGiven = true;
                proxyName = config.getInitParameter(given);
            } else if (param.equals(EXPOSE_DETAILS)) {
                twice = exposeGiven;
                exposeGiven = true;
                expose = config.getInitParameter(given);
            } else {
                // A misspelt setting would otherwise be ignored without a word, leaving the default in force.
                throw new ServletException("Filter '" + config.getFilterName() + "': init-param '" + param
                        + "' is unknown; the filter takes '" + PROXY_NAME + "' and '" + EXPOSE_DETAILS + "'");
            }
            if (twice) {
                throw new ServletException("Filter '" + config.getFilterName() + "': init-param '" + param
                        + "' is given twice, with blanks around its name");
            }
        }
        String current = PROXY_NAME;
        try {
            String name = proxyName == null ? FaultResponseWriter.DEFAULT_PROXY_NAME : proxyName.trim();
            FaultResponseWriter.checkProxyName(name);
            current = EXPOSE_DETAILS;
            boolean exposeDetails = expose != null && Settings.bool(EXPOSE_DETAILS, expose);
            writer = new FaultResponseWriter(name, exposeDetails, registry);
        } catch (IllegalArgumentException e) {
            throw new ServletException("Filter '" + config.getFilterName() + "': init-param '" + current
                    + "' is invalid: " + e.getMessage(), e);
        }
    }

    @Override
    public void doFilter(ServletRequest req, ServletResponse res, FilterChain chain)
            throws IOException, ServletException {
        if (!(req instanceof HttpServletRequest) || !(res instanceof HttpServletResponse)) {
            chain.doFilter(req, res);
            return;
        }
        HttpServletRequest request = (HttpServletRequest) req;
        HttpServletResponse response = (HttpServletResponse) res;
        if (request.getDispatcherType() == DispatcherType.INCLUDE) {
            // An included servlet can set neither status nor headers: a fault answered here would end up as a 200
            // with the problem inside the including page. It goes on to the including dispatch, answered there.
            chain.doFilter(req, res);
            return;
        }
        if (request.getDispatcherType() == DispatcherType.ERROR && answerErrorDispatch(request, response)) {
            return;
        }
        throwOwedAbort(request, response);
        if (request.getDispatcherType() == DispatcherType.REQUEST) {
            FaultResponseWriter.rememberOuterFields(request, response);
        }
        FaultGuardedResponse guardedResponse = new FaultGuardedResponse(request, response);
        FaultGuardedRequest.FailureHandler handler = new FaultGuardedRequest.FailureHandler() {
            @Override
            public boolean answer(AsyncContext async, Throwable thrown) {
                return answerTask(request, response, guardedResponse, async, thrown);
            }

            @Override
            public void timedOut(AsyncContext async) {
                answerTimeout(request, response, async);
            }
        };
        FaultGuardedRequest guarded = new FaultGuardedRequest(request, guardedResponse, handler);
        try {
            chain.doFilter(guarded, guardedResponse);
        } catch (Exception e) {
            // Any exception: a checked one thrown undeclared (Kotlin, Lombok's @SneakyThrows) reaches Jetty as it is.
            answer(request, response, guardedResponse, e);
            return;
        } catch (Error e) {
            // Not the filter's business, but an error the application sent before it must not be lost.
            guardedResponse.sendHeldError();
            throw e;
        }
        guardedResponse.sendHeldError();
        throwOwedAbort(request, response);
        guarded.watchUnanswered();
    }

    /**
     * Throws the abort of a committed response that the fault's answer called for but that never reached the
     * container: swallowed on the way out (Spring MVC does so with an exception from an {@code @ExceptionHandler},
     * and Tomcat then ends the response cleanly, as if complete), or owed by a task run with
     * {@link AsyncContext#start}, which dispatches here for it.
     */
    private static void throwOwedAbort(HttpServletRequest request, HttpServletResponse response) throws IOException {
        UpstreamException owed = FaultResponseWriter.abortOwed(request);
        if (owed != null) {
            FaultResponseWriter.abortThrown(request);
            throw FaultResponseWriter.abortion(response, owed);
        }
    }

    /** Answers an error dispatch the container started for an upstream fault this filter did not see thrown. */
    private boolean answerErrorDispatch(HttpServletRequest request, HttpServletResponse response) throws IOException {
        Object error = request.getAttribute(RequestDispatcher.ERROR_EXCEPTION);
        UpstreamException fault = error instanceof Throwable ? unanswered(request, (Throwable) error) : null;
        if (fault == null) {
            return false;
        }
        // When already committed the container is failing the request anyway and closes the connection.
        writer.write(request, response, fault, nextHop(request, fault), proxyStatusSet(response));
        return true;
    }

    private void answer(HttpServletRequest request, HttpServletResponse response,
            FaultGuardedResponse guardedResponse, Exception thrown) throws IOException, ServletException {
        UpstreamException fault = unanswered(request, thrown);
        if (fault == null) {
            guardedResponse.sendHeldError();
            // An abort owed for a committed response wins over whatever exception came out instead of it.
            throwOwedAbort(request, response);
            // The container's own report of its client's broken body, which it answers as it would without the
            // upstream call that carried it here (Jetty: 400 for a malformed body); it fails no upstream.
            IOException inbound = FaultGuardedRequest.inboundFailure(request, thrown);
            rethrow(inbound != null ? inbound : thrown);
            return;
        }
        // The fault is the answer, not the error the application sent before it.
        guardedResponse.dropHeldError();
        FaultResponseWriter.Answer answer = writer.write(request, response, fault, nextHop(request, fault),
                proxyStatusSet(response));
        if (answer == FaultResponseWriter.Answer.THROW_TO_ABORT) {
            FaultResponseWriter.abortThrown(request);
            throw FaultResponseWriter.abortion(response, fault);
        }
        if (answer == FaultResponseWriter.Answer.RENDERED && request.isAsyncStarted()) {
            try {
                complete(request.getAsyncContext());
            } catch (IllegalStateException completedMeanwhile) {
                // Nothing left to complete.
            }
        }
    }

    /**
     * Answers what a task run by {@link AsyncContext#start} threw, on the container thread that ran it, where no
     * exception reaches a filter: the answer is written and the async cycle completed. A committed response that
     * only an escaping exception can abort (Tomcat) is dispatched back to this filter, which throws there.
     */
    private boolean answerTask(HttpServletRequest request, HttpServletResponse response,
            FaultGuardedResponse guardedResponse, AsyncContext async, Throwable thrown) {
        IOException inbound = FaultGuardedRequest.inboundFailure(request, thrown);
        if (inbound != null && ClientAnswers.isClientTimeout(inbound)) {
            // A ReadListener's client went silent mid-body (the container's read timeout came before the async one):
            // the same 408 as for an async timeout while the application waits for that body.
            answerRequestTimeout(request, response, async);
            return true;
        }
        UpstreamException fault = unanswered(request, thrown);
        if (fault == null) {
            return false;
        }
        // The fault is the answer, not the error the task sent before it.
        guardedResponse.dropHeldError();
        try {
            if (writer.write(request, response, fault, nextHop(request, fault), proxyStatusSet(response))
                    == FaultResponseWriter.Answer.THROW_TO_ABORT) {
                async.dispatch();
                return true;
            }
        } catch (IOException | IllegalStateException clientGoneOrCycleOver) {
            // Nobody is left to answer, or the application ended the cycle itself; completing is all there is to do.
        }
        complete(async);
        return true;
    }

    /**
     * The application was waiting for its client's own body, not an upstream: RFC 9110 §15.5.9's 408, as the proxy
     * servlet answers a stalled upload, with the connection closed since the rest of the body is unread. Neither logged
     * nor counted as a fault; a committed response is ended as it is.
     */
    private static void answerRequestTimeout(HttpServletRequest request, HttpServletResponse response,
            AsyncContext async) {
        try {
            ClientAnswers.requestTimeout(response);
            // Out now, so that the client, told to close, ends a read a task is still blocked in (below).
            response.flushBuffer();
        } catch (IOException | IllegalStateException clientGoneOrWriterTaken) {
            // Nothing more to say to this client; the cycle still ends below.
        }
        FaultGuardedRequest.awaitClientReadsEnded(request, READS_ENDED_WAIT);
        complete(async);
    }

    /**
     * Answers an async timeout that no listener of the application answered as the gateway timeout it is — the
     * application was still waiting for its upstream, named after the servlet (as proxy servlets are) — instead of
     * the container's 500. A committed response is aborted: Jetty would otherwise end it cleanly, as if complete.
     */
    private void answerTimeout(HttpServletRequest request, HttpServletResponse response, AsyncContext async) {
        // Also after a read of that body failed: an application that gave up on it without ending the cycle was
        // stopped by its client, not by an upstream.
        if (FaultGuardedRequest.awaitsClientBody(request) || FaultGuardedRequest.clientBodyFailed(request)) {
            answerRequestTimeout(request, response, async);
            return;
        }
        long timeoutMillis = async.getTimeout();
        // One attempt: the call the application was waiting for when the time ran out.
        UpstreamException fault = new UpstreamException(UpstreamFault.HTTP_RESPONSE_TIMEOUT, servletName(request), 1,
                null, TimeUnit.MILLISECONDS.toNanos(timeoutMillis), "No response within the async timeout of "
                + timeoutMillis + " ms", null);
        try {
            if (writer.write(request, response, fault, FaultResponseWriter.NO_NEXT_HOP, proxyStatusSet(response))
                    == FaultResponseWriter.Answer.THROW_TO_ABORT) {
                // Tomcat closes the connection of a committed response whose timeout stays unanswered.
                return;
            }
        } catch (IOException clientGone) {
            // Nobody left to answer; the cycle still ends below.
        }
        complete(async);
    }

    /**
     * The {@code Proxy-Status} members the application set before the fault, or {@code null}: those of hops nearer
     * the origin whose answer it was relaying. RFC 9209 §2 has them kept before this gateway's own, although the
     * rest of the response is replaced.
     */
    private static String proxyStatusSet(HttpServletResponse response) {
        return FaultResponseWriter.joinedMembers(response.getHeaders("Proxy-Status"));
    }

    /**
     * {@code next-hop} as the guarded client names the upstream (RFC 9209 §2.1.2 allows a name or alias; the filter
     * knows no address), and none for a stand-in named after the servlet, which is no hop.
     */
    private static String nextHop(HttpServletRequest request, UpstreamException fault) {
        return OutboundFailure.isStandIn(request, fault) ? FaultResponseWriter.NO_NEXT_HOP : null;
    }

    private static String servletName(HttpServletRequest request) {
        try {
            String name = request.getHttpServletMapping().getServletName();
            return name == null || name.isBlank() ? "upstream" : name;
        } catch (RuntimeException noMapping) {
            return "upstream";
        }
    }

    /**
     * The upstream fault in {@code thrown}'s cause chain, unless there is none, it was answered already, or it only
     * carries the failure of the client's own request body, which the application was streaming upstream.
     */
    private static UpstreamException unanswered(HttpServletRequest request, Throwable thrown) {
        if (FaultResponseWriter.isHandled(request, thrown)
                || FaultGuardedRequest.inboundFailure(request, thrown) != null) {
            return null;
        }
        UpstreamException fault = UpstreamException.find(thrown)
                .orElseGet(() -> OutboundFailure.find(request, thrown, servletName(request)));
        return fault == null || FaultResponseWriter.isHandled(request, fault) ? null : fault;
    }

    private static void complete(AsyncContext async) {
        try {
            async.complete();
        } catch (IllegalStateException alreadyCompleted) {
            // Someone else completed it first; the response is what it is.
        }
    }

    private static void rethrow(Exception e) throws IOException, ServletException {
        if (e instanceof IOException) {
            throw (IOException) e;
        }
        if (e instanceof ServletException) {
            throw (ServletException) e;
        }
        if (e instanceof RuntimeException) {
            throw (RuntimeException) e;
        }
        throw UpstreamFaultFilter.<RuntimeException>undeclared(e);
    }

    /** Rethrows a checked exception that came out undeclared, unchanged. */
    @SuppressWarnings("unchecked")
    private static <T extends Exception> T undeclared(Exception e) throws T {
        throw (T) e;
    }

    /** Configures an {@link UpstreamFaultFilter} in code; every setter validates at once. */
    public static final class Builder {
        private String proxyName = FaultResponseWriter.DEFAULT_PROXY_NAME;
        private boolean exposeDetails;
        private MeterRegistry registry = Metrics.globalRegistry;

        private Builder() {
        }

        /** The name this gateway gives itself in {@code Proxy-Status}; default {@code upstream-guard}. */
        public Builder proxyName(String name) {
            this.proxyName = FaultResponseWriter.checkProxyName(name);
            return this;
        }

        /**
         * Whether responses may carry exception messages ({@code details}), the upstream's address ({@code next-hop})
         * and upstream names that look like addresses; default {@code false}, since they leak topology.
         */
        public Builder exposeDetails(boolean expose) {
            this.exposeDetails = expose;
            return this;
        }

        /** Where {@code upstream.guard.responses} is counted; default Micrometer's global registry, {@code null} for nowhere. */
        public Builder meterRegistry(MeterRegistry registry) {
            this.registry = registry;
            return this;
        }

        /** Builds the filter. */
        public UpstreamFaultFilter build() {
            return new UpstreamFaultFilter(this);
        }
    }
}
