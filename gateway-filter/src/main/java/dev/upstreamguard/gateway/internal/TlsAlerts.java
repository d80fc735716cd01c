package dev.upstreamguard.gateway.internal;

import java.util.Locale;
import javax.net.ssl.SSLException;

/**
 * The TLS alert an upstream ended the handshake with, for RFC 9209's {@code alert-id} and {@code alert-message}
 * parameters of {@code tls_alert_received}. The JDK reports a received alert only in its exception's message
 * ("Received fatal alert: handshake_failure", "(certificate_required) Received fatal alert: ...", "received handshake
 * warning: unrecognized_name", "Received close_notify during handshake"), so the alert's name is read from there, and
 * only a name of the TLS alert registry is taken.
 */
final class TlsAlerts {

    private static final String[] RECEIVED = {"Received fatal alert: ", "received handshake warning: "};

    private TlsAlerts() {
    }

    /** A received alert: its registry name and id. */
    record Alert(String name, int id) {
    }

    /** The alert the upstream sent, from the first TLS exception in {@code fault}'s cause chain, or {@code null}. */
    static Alert received(Throwable fault) {
        Throwable t = fault;
        // Bounded rather than cycle-checked, as UpstreamException.find is.
        for (int depth = 0; t != null && depth < 64; depth++, t = t.getCause()) {
            if (t instanceof SSLException && t.getMessage() != null) {
                return parse(t.getMessage());
            }
        }
        return null;
    }

    static Alert parse(String message) {
        String name = null;
        if (message.contains("Received close_notify during handshake")) {
            name = "close_notify";
        }
        for (int i = 0; name == null && i < RECEIVED.length; i++) {
            int at = message.indexOf(RECEIVED[i]);
            if (at >= 0) {
                int start = at + RECEIVED[i].length();
                int end = start;
                while (end < message.length() && (Character.isLetter(message.charAt(end))
                        || message.charAt(end) == '_')) {
                    end++;
                }
                name = message.substring(start, end).toLowerCase(Locale.ROOT);
            }
        }
        int id = dev.upstreamguard.internal.TlsAlerts.id(name);
        return id < 0 ? null : new Alert(name, id);
    }
}
