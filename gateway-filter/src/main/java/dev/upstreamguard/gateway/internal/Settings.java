package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.GuardPolicy;

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
