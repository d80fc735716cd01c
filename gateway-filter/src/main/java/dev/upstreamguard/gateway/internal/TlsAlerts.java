package dev.upstreamguard.gateway.internal;

import java.util.Locale;
import java.util.Map;
import javax.net.ssl.SSLException;

/**
 * The TLS alert an upstream ended the handshake with, for RFC 9209's {@code alert-id} and {@code alert-message}
 * parameters of {@code tls_alert_received}. The JDK reports a received alert only in its exception's message
 * ("Received fatal alert: handshake_failure", "(certificate_required) Received fatal alert: ...", "received handshake
 * warning: unrecognized_name", "Received close_notify during handshake"), so the alert's name is read from there, and
 * only a name of the TLS alert registry is taken.
 */
final class TlsAlerts {

    /** IANA's TLS Alerts registry (RFC 8446 §6 and earlier TLS versions), by the names the JDK reports. */
    private static final Map<String, Integer> IDS = Map.ofEntries(
            Map.entry("close_notify", 0), Map.entry("unexpected_message", 10), Map.entry("bad_record_mac", 20),
            Map.entry("decryption_failed", 21), Map.entry("record_overflow", 22),
            Map.entry("decompression_failure", 30), Map.entry("handshake_failure", 40),
            Map.entry("no_certificate", 41), Map.entry("bad_certificate", 42),
            Map.entry("unsupported_certificate", 43), Map.entry("certificate_revoked", 44),
            Map.entry("certificate_expired", 45), Map.entry("certificate_unknown", 46),
            Map.entry("illegal_parameter", 47), Map.entry("unknown_ca", 48), Map.entry("access_denied", 49),
            Map.entry("decode_error", 50), Map.entry("decrypt_error", 51), Map.entry("export_restriction", 60),
            Map.entry("protocol_version", 70), Map.entry("insufficient_security", 71),
            Map.entry("internal_error", 80), Map.entry("inappropriate_fallback", 86), Map.entry("user_canceled", 90),
            Map.entry("no_renegotiation", 100), Map.entry("missing_extension", 109),
            Map.entry("unsupported_extension", 110), Map.entry("certificate_unobtainable", 111),
            Map.entry("unrecognized_name", 112), Map.entry("bad_certificate_status_response", 113),
            Map.entry("bad_certificate_hash_value", 114), Map.entry("unknown_psk_identity", 115),
            Map.entry("certificate_required", 116), Map.entry("no_application_protocol", 120),
            Map.entry("ech_required", 121));

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
        Integer id = name == null ? null : IDS.get(name);
        return id == null ? null : new Alert(name, id);
    }
}
