package dev.upstreamguard.internal;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamFault;
import org.apache.hc.core5.http.HttpRequest;

/**
 * The retry rule, as one guard clause per reason (in the manner of OkHttp's {@code RetryAndFollowUpInterceptor}).
 * Each clause says why a fault is or is not retried.
 */
public final class RetryRules {

    private RetryRules() {
    }

    /**
     * Whether {@code request} may be sent more than once: an idempotent method (RFC 9110 §9.2.2; method names are
     * case-sensitive, so "get" is a method of unknown semantics, not GET), or an {@code Idempotency-Key} header.
     */
    public static boolean isIdempotent(HttpRequest request) {
        switch (request.getMethod()) {
            case "GET": case "HEAD": case "OPTIONS": case "TRACE": case "PUT": case "DELETE":
                return true;
            default:
                return request.containsHeader("Idempotency-Key");
        }
    }

    /**
     * Why a failed attempt must not be retried, or {@code null} when it may be (budget and deadline permitting).
     *
     * @param redirected the attempt followed a redirect before it failed: an upstream answered the request, so it
     *     may have acted on it even when the fault itself is one the redirect's target never saw
     * @param idempotent the method is idempotent, or the request carries an {@code Idempotency-Key}
     * @param replayable the request has no body or a repeatable one
     */
    public static String whyNotRetry(UpstreamFault fault, boolean redirected, boolean idempotent, boolean replayable,
            GuardPolicy.Retry retry) {
        switch (fault) {
            case CONNECTION_LIMIT_REACHED:
                // The limit is our own pool: waiting again for the same saturated pool only queues more work.
                return "a local connection limit was reached";
            case DESTINATION_NOT_FOUND:
            case DESTINATION_UNAVAILABLE:
            case PROXY_CONFIGURATION_ERROR:
            case PROXY_LOOP_DETECTED:
                // Configuration or an open circuit: nothing changes within a backoff.
                return "the destination is not available to this client";
            case DNS_ERROR:
                // A name that did not resolve will not resolve 50 ms later; the JVM caches the negative answer anyway.
                return "the host name does not resolve";
            case TLS_CERTIFICATE_ERROR:
            case TLS_ALERT_RECEIVED:
            case TLS_PROTOCOL_ERROR:
                // A handshake fails the same way every time against the same peer.
                return "the TLS handshake failed";
            case CONNECTION_WRITE_TIMEOUT:
                // The upstream stopped reading the body; the request was cancelled to break the write, and an upstream
                // that takes no data is a busy one: sending it the body again would only add to its load.
                return "the upstream stopped taking the request body";
            case HTTP_RESPONSE_TIMEOUT:
                // The call's deadline is spent: there is no time left for another attempt.
                return "the total deadline was exceeded";
            default:
                break;
        }
        if (!fault.upstreamMayHaveActed() && !redirected) {
            // Refused, connect timeout, DNS timeout: the request never left, so any method (and any body) is safe.
            return null;
        }
        if (!fault.upstreamMayHaveActed()) {
            // The redirect's target never saw it, but the upstream that redirected did: a retry replays the request to
            // it, so the request must be one that may be replayed (RFC 9110 §9.2.2).
            return !idempotent ? "the request is not idempotent and an upstream already answered it with a redirect"
                    : !replayable ? "the request body cannot be replayed" : null;
        }
        if (!idempotent) {
            // RFC 9110 §9.2.2: a proxy must not automatically retry a request that may not be idempotent.
            return "the request is not idempotent";
        }
        if (!replayable) {
            // The body was (partly) sent and cannot be produced again.
            return "the request body cannot be replayed";
        }
        if (fault == UpstreamFault.CONNECTION_READ_TIMEOUT) {
            // A slow upstream is usually a busy one: retrying multiplies its load, so it is opt-in.
            return retry.onResponseTimeout() ? null : "response timeouts are not retried unless enabled";
        }
        if (fault != UpstreamFault.CONNECTION_TERMINATED && fault != UpstreamFault.HTTP_RESPONSE_INCOMPLETE) {
            // Malformed or oversized responses: a broken upstream stays broken from one attempt to the next.
            return "the upstream's response was invalid";
        }
        // A connection closed under the request is typically a stale keep-alive connection: a fresh one usually works.
        return null;
    }
}
