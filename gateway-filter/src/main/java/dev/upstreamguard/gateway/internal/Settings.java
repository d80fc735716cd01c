package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.GuardPolicy;
import java.util.Locale;

/** Parses the gateway's own settings (init-params), naming the setting in every error. */
public final class Settings {

    private Settings() {
    }

    /** {@code true} or {@code false}, ignoring case. */
    public static boolean bool(String name, String value) {
        String v = value.trim();
        if (v.equalsIgnoreCase("true")) {
            return true;
        }
        if (v.equalsIgnoreCase("false")) {
            return false;
        }
        throw new IllegalArgumentException("Setting '" + name + "' must be true or false, was '" + value + "'");
    }

    /**
     * Which forwarding headers a proxy adds: {@code both}, {@code forwarded} or {@code x-forwarded}, any case; returned
     * in lower case.
     */
    public static String forwardedHeaders(String name, String value) {
        String v = String.valueOf(value).toLowerCase(Locale.ROOT);
        if (v.equals("both") || v.equals("forwarded") || v.equals("x-forwarded")) {
            return v;
        }
        throw new IllegalArgumentException(name + " must be both, forwarded or x-forwarded, was '" + value + "'");
    }

    /** A byte count as {@link GuardPolicy#parseBytes} reads it: {@code 65536}, {@code 64KiB}, {@code 1MiB}. */
    public static long bytes(String name, String value) {
        try {
            return GuardPolicy.parseBytes(value);
        } catch (IllegalArgumentException e) {
            throw invalidBytes(name, value);
        }
    }

    private static IllegalArgumentException invalidBytes(String name, String value) {
        return new IllegalArgumentException(
                "Setting '" + name + "' must be a byte count such as 65536, 64KiB or 1MiB, was '" + value + "'");
    }
}
