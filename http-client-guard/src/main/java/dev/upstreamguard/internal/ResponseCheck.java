package dev.upstreamguard.internal;

import dev.upstreamguard.UpstreamFault;
import org.apache.hc.core5.http.HttpResponse;

/**
 * A caller's last look at the response head, set in the exchange's context under {@link #ATTRIBUTE}: a response the
 * caller cannot pass on (a gateway whose container cannot write so large a head) ends the call as the upstream's fault,
 * with the breaker, the fault counts, the metrics and the attempt count of any other fault. Refused after the call has
 * returned, the response would only be closed, which reads as the caller cancelling.
 */
@FunctionalInterface
public interface ResponseCheck {

    /** The context attribute holding the check of an exchange. */
    String ATTRIBUTE = ResponseCheck.class.getName();

    /** Why {@code response} cannot be used, or {@code null} when it can. */
    Refusal check(HttpResponse response);

    /** The fault a refused response ends the call with, and why, for the exception's message. */
    record Refusal(UpstreamFault fault, String why) {
    }
}
