package dev.upstreamguard.gateway.internal;

/**
 * Writes the few RFC 8941 structured-field items the gateway sends: tokens and strings, for {@code Proxy-Status}
 * (RFC 9209).
 */
public final class StructuredFields {

    private StructuredFields() {
    }

    /** Whether {@code value} is an sf-token: {@code ( ALPHA / "*" ) *( tchar / ":" / "/" )}. */
    public static boolean isToken(String value) {
        if (value == null || value.isEmpty()) {
            return false;
        }
        char first = value.charAt(0);
        if (!(isAlpha(first) || first == '*')) {
            return false;
        }
        for (int i = 1; i < value.length(); i++) {
            char c = value.charAt(i);
            if (!(isTchar(c) || c == ':' || c == '/')) {
                return false;
            }
        }
        return true;
    }

    /** Whether {@code value} is an RFC 9110 token ({@code 1*tchar}), as {@code Via} pseudonyms must be. */
    public static boolean isHttpToken(String value) {
        if (value == null || value.isEmpty()) {
            return false;
        }
        for (int i = 0; i < value.length(); i++) {
            if (!isTchar(value.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    /** Whether every character is printable ASCII, so that the value can be written as an sf-string. */
    public static boolean isPrintableAscii(String value) {
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c < 0x20 || c > 0x7e) {
                return false;
            }
        }
        return true;
    }

    /** Appends {@code value} as an sf-token when it is one, else as an sf-string. */
    public static StringBuilder appendTokenOrString(StringBuilder out, String value) {
        return isToken(value) ? out.append(value) : appendString(out, value);
    }

    /**
     * Appends {@code value} as an sf-string: quoted, with {@code "} and {@code \} escaped; characters outside printable
     * ASCII (which an sf-string cannot hold) become {@code ?}.
     */
    public static StringBuilder appendString(StringBuilder out, String value) {
        out.append('"');
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                out.append('?');
            } else {
                out.append(c);
            }
        }
        return out.append('"');
    }

    private static boolean isAlpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }

    private static boolean isTchar(char c) {
        if (isAlpha(c) || (c >= '0' && c <= '9')) {
            return true;
        }
        switch (c) {
            case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
            case '^': case '_': case '`': case '|': case '~':
                return true;
            default:
                return false;
        }
    }
}
