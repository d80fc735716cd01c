package dev.upstreamguard.internal;

import org.apache.hc.core5.http.HttpResponse;

/**
 * A caller's listener for the interim (1xx) responses of an exchange, set in the exchange's context under
 * {@link #ATTRIBUTE}: a gateway passes them on to its own client, as RFC 9110 §15.2 asks of a proxy for 1xx
 * responses it did not ask for itself (103 Early Hints). Told of every interim response but {@code 100 Continue},
 * which HttpCore consumes, on the thread that reads the response, before the final response arrives; only with the
 * client's own request executor (not with a caller's HttpClient builder).
 */
@FunctionalInterface
public interface InterimResponseListener {

    /** The context attribute holding the listener of an exchange. */
    String ATTRIBUTE = InterimResponseListener.class.getName();

    /** One interim response; should not throw, and must not block for long: the upstream's answer waits. */
    void interim(HttpResponse response);
}
