package dev.upstreamguard.internal;

import java.util.Locale;
import java.util.Map;

/** The names of TLS alert descriptions (RFC 8446 §6, RFC 5246 §7.2 and the IANA TLS Alerts registry). */
public final class TlsAlerts {

    private static final Map<Integer, String> NAMES = Map.ofEntries(
            Map.entry(0, "close_notify"),
            Map.entry(10, "unexpected_message"),
            Map.entry(20, "bad_record_mac"),
            Map.entry(21, "decryption_failed"),
            Map.entry(22, "record_overflow"),
            Map.entry(30, "decompression_failure"),
            Map.entry(40, "handshake_failure"),
            Map.entry(41, "no_certificate"),
            Map.entry(42, "bad_certificate"),
            Map.entry(43, "unsupported_certificate"),
            Map.entry(44, "certificate_revoked"),
            Map.entry(45, "certificate_expired"),
            Map.entry(46, "certificate_unknown"),
            Map.entry(47, "illegal_parameter"),
            Map.entry(48, "unknown_ca"),
            Map.entry(49, "access_denied"),
            Map.entry(50, "decode_error"),
            Map.entry(51, "decrypt_error"),
            Map.entry(60, "export_restriction"),
            Map.entry(70, "protocol_version"),
            Map.entry(71, "insufficient_security"),
            Map.entry(80, "internal_error"),
            Map.entry(86, "inappropriate_fallback"),
            Map.entry(90, "user_canceled"),
            Map.entry(100, "no_renegotiation"),
            Map.entry(109, "missing_extension"),
            Map.entry(110, "unsupported_extension"),
            Map.entry(111, "certificate_unobtainable"),
            Map.entry(112, "unrecognized_name"),
            Map.entry(113, "bad_certificate_status_response"),
            Map.entry(114, "bad_certificate_hash_value"),
            Map.entry(115, "unknown_psk_identity"),
            Map.entry(116, "certificate_required"),
            Map.entry(120, "no_application_protocol"),
            Map.entry(121, "ech_required"));

    private TlsAlerts() {
    }

    /** The alert's name, such as {@code bad_certificate} for 42, or {@code alert_<n>} for one not registered. */
    public static String name(int description) {
        String name = NAMES.get(description);
        return name != null ? name : "alert_" + description;
    }

    /** The description of the alert called {@code name} ({@code bad_certificate} → 42), or -1 for an unknown name. */
    public static int id(String name) {
        if (name == null) {
            return -1;
        }
        String wanted = name.trim().toLowerCase(Locale.ROOT);
        for (Map.Entry<Integer, String> e : NAMES.entrySet()) {
            if (e.getValue().equals(wanted)) {
                return e.getKey();
            }
        }
        return -1;
    }
}
