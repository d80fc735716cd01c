package dev.upstreamguard.internal;

import java.io.IOException;
import org.apache.hc.client5.http.classic.ExecChain;
import org.apache.hc.client5.http.classic.ExecChainHandler;
import org.apache.hc.client5.http.protocol.RedirectLocations;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.HttpEntity;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpStatus;
import org.apache.hc.core5.http.io.support.ClassicRequestBuilder;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sends a redirect's follow-up request again, once, on a fresh connection when the pooled connection it went out on
 * was closed under it before any response (RFC 9112 §9.3.1), or timed out with a 408 as the follow-up arrived (RFC 9110
 * §15.5.9), as the attempt loop does for the first request.
 *
 * <p>HttpClient follows redirects inside one attempt, and the follow-up usually reuses the connection the redirect came
 * on: an upstream closing it at that moment broke the follow-up, and the call could only be retried whole — never for
 * a POST answered with a 303, whose follow-up is a GET that may safely go out again. Only such follow-ups are sent
 * again: idempotent, with a body that can be replayed, in a call that may be retried at all
 * ({@link #ALLOWED_ATTRIBUTE}). It sits where HttpClient's own retry handler would, below the redirect handler.
 */
public final class FollowUpSentAgain implements ExecChainHandler {

    /** Context attribute set by the attempt loop: {@code Boolean.TRUE} when the call may be retried at all. */
    public static final String ALLOWED_ATTRIBUTE = FollowUpSentAgain.class.getName() + ".allowed";

    private static final Logger LOG = LoggerFactory.getLogger(FollowUpSentAgain.class);

    @Override
    public ClassicHttpResponse execute(ClassicHttpRequest request, ExecChain.Scope scope, ExecChain chain)
            throws IOException, HttpException {
        HttpContext context = scope.clientContext;
        RedirectLocations redirects = scope.clientContext.getRedirectLocations();
        if (redirects == null || redirects.size() == 0 || !Boolean.TRUE.equals(context.getAttribute(ALLOWED_ATTRIBUTE))
                || !RetryRules.isIdempotent(request)) {
            // The first request of an attempt is the attempt loop's to send again; other follow-ups may not go again.
            return chain.proceed(request, scope);
        }
        HttpEntity body = request.getEntity();
        if (body != null && !body.isRepeatable()) {
            return chain.proceed(request, scope);
        }
        // The request below is filled in as it is sent (Host, User-Agent…): the one sent again starts as this one did.
        ClassicHttpRequest pristine = ClassicRequestBuilder.copy(request).build();
        // Still the connection the redirect came on, back in the pool and maybe another call's by now: a follow-up
        // failing before its own connection is noted (a refused connect to another host) must not read its state.
        GuardedConnection.forgetConnection(context);
        ClassicHttpResponse response;
        try {
            response = chain.proceed(request, scope);
        } catch (IOException e) {
            if (scope.execRuntime.isExecutionAborted() || Thread.currentThread().isInterrupted()
                    || !GuardedConnection.droppedUnderRequest(context)) {
                throw e;
            }
            LOG.debug("Sending the redirect's follow-up {} again on a fresh connection: the pooled one was closed",
                    request.getMethod());
            return sendAgain(pristine, scope, chain);
        }
        if (response.getCode() != HttpStatus.SC_REQUEST_TIMEOUT || !GuardedConnection.timedOutWhileIdle(context)
                || scope.execRuntime.isExecutionAborted() || Thread.currentThread().isInterrupted()) {
            return response;
        }
        // The upstream timed out the pooled connection as the follow-up crossed it (RFC 9110 §15.5.9: it did not take
        // the request whole): the same race as a close at that moment, met the same way as for a first request. The
        // connection is closed, not drained: the upstream is closing it.
        LOG.debug("Sending the redirect's follow-up {} again on a fresh connection: the pooled one was timed out with "
                + "a 408", request.getMethod());
        scope.execRuntime.discardEndpoint();
        try {
            response.close();
        } catch (IOException ignored) {
            // closing is all that was wanted
        }
        return sendAgain(pristine, scope, chain);
    }

    private static ClassicHttpResponse sendAgain(ClassicHttpRequest pristine, ExecChain.Scope scope, ExecChain chain)
            throws IOException, HttpException {
        GuardedConnection.forgetConnection(scope.clientContext);
        // The upstream may have closed its other pooled connections too: whichever is leased is probed first.
        boolean probing = GuardedConnection.probingBeforeReuse();
        GuardedConnection.probeBeforeReuse(true);
        try {
            return chain.proceed(pristine, scope);
        } finally {
            GuardedConnection.probeBeforeReuse(probing);
        }
    }
}
