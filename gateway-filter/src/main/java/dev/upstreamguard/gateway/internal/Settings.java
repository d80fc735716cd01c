package dev.upstreamguard.gateway.internal;

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
     * A byte count: digits, optionally followed by {@code B}, {@code KB}/{@code KiB}/{@code K},
     * {@code MB}/{@code MiB}/{@code M} or {@code GB}/{@code GiB}/{@code G} (all binary multiples).
     */
    public static long bytes(String name, String value) {
        String v = value.trim().toLowerCase(Locale.ROOT);
        int end = 0;
        while (end < v.length() && Character.isDigit(v.charAt(end))) {
            end++;
        }
        if (end == 0) {
            throw invalidBytes(name, value);
        }
        long multiplier;
        switch (v.substring(end).trim()) {
            case "": case "b": multiplier = 1; break;
            case "k": case "kb": case "kib": multiplier = 1L << 10; break;
            case "m": case "mb": case "mib": multiplier = 1L << 20; break;
            case "g": case "gb": case "gib": multiplier = 1L << 30; break;
            default: throw invalidBytes(name, value);
        }
        try {
            return Math.multiplyExact(Long.parseLong(v.substring(0, end)), multiplier);
        } catch (NumberFormatException | ArithmeticException e) {
            throw invalidBytes(name, value);
        }
    }

    private static IllegalArgumentException invalidBytes(String name, String value) {
        return new IllegalArgumentException(
                "Setting '" + name + "' must be a byte count such as 65536, 64KiB or 1MiB, was '" + value + "'");
    }
}
