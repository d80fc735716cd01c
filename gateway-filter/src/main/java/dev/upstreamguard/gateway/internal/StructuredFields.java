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

    /**
     * Whether {@code value} parses as an RFC 8941 List (with RFC 9651's Dates and Display Strings), as a recipient
     * would parse it. A field is parsed whole: one malformed member makes a recipient ignore every member, so members
     * another hop wrote are kept only when this holds.
     */
    public static boolean isList(String value) {
        if (value == null) {
            return false;
        }
        Parser p = new Parser(value);
        p.skipSpaces();
        if (p.atEnd()) {
            // An empty field value is no list to keep.
            return false;
        }
        while (true) {
            if (!p.itemOrInnerList()) {
                return false;
            }
            p.skipOws();
            if (p.atEnd()) {
                return true;
            }
            if (p.next() != ',') {
                return false;
            }
            p.skipOws();
            if (p.atEnd()) {
                return false;
            }
        }
    }

    /** RFC 8941 §4.2 parsing, answering only whether the input is well-formed. */
    private static final class Parser {
        private final String in;
        private int pos;

        Parser(String in) {
            this.in = in;
        }

        boolean atEnd() {
            return pos >= in.length();
        }

        char peek() {
            return atEnd() ? '\0' : in.charAt(pos);
        }

        char next() {
            return atEnd() ? '\0' : in.charAt(pos++);
        }

        void skipSpaces() {
            while (peek() == ' ') {
                pos++;
            }
        }

        void skipOws() {
            while (peek() == ' ' || peek() == '\t') {
                pos++;
            }
        }

        boolean itemOrInnerList() {
            if (peek() != '(') {
                return bareItem() && parameters();
            }
            pos++;
            while (true) {
                skipSpaces();
                if (peek() == ')') {
                    pos++;
                    return parameters();
                }
                if (!bareItem() || !parameters()) {
                    return false;
                }
                char c = peek();
                if (c != ' ' && c != ')') {
                    return false;
                }
            }
        }

        boolean parameters() {
            while (peek() == ';') {
                pos++;
                skipSpaces();
                if (!key()) {
                    return false;
                }
                if (peek() == '=') {
                    pos++;
                    if (!bareItem()) {
                        return false;
                    }
                }
            }
            return true;
        }

        boolean key() {
            char c = peek();
            if (!(c >= 'a' && c <= 'z') && c != '*') {
                return false;
            }
            pos++;
            for (c = peek(); (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'
                    || c == '*'; c = peek()) {
                pos++;
            }
            return true;
        }

        boolean bareItem() {
            char c = peek();
            if (c == '-' || (c >= '0' && c <= '9')) {
                return number();
            }
            if (c == '"') {
                return string();
            }
            if (isAlpha(c) || c == '*') {
                pos++;
                for (c = peek(); !atEnd() && (isTchar(c) || c == ':' || c == '/'); c = peek()) {
                    pos++;
                }
                return true;
            }
            if (c == ':') {
                pos++;
                for (c = next(); c != ':'; c = next()) {
                    if (!(isAlpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=')) {
                        return false;
                    }
                }
                return true;
            }
            if (c == '?') {
                pos++;
                c = next();
                return c == '0' || c == '1';
            }
            if (c == '@') {
                pos++;
                return integer();
            }
            if (c == '%') {
                pos++;
                return displayString();
            }
            return false;
        }

        boolean integer() {
            if (peek() == '-') {
                pos++;
            }
            int digits = 0;
            for (char c = peek(); c >= '0' && c <= '9'; c = peek()) {
                pos++;
                if (++digits > 15) {
                    return false;
                }
            }
            return digits > 0;
        }

        boolean number() {
            if (peek() == '-') {
                pos++;
            }
            if (!(peek() >= '0' && peek() <= '9')) {
                return false;
            }
            int digits = 0;
            int dot = -1;
            for (char c = peek(); (c >= '0' && c <= '9') || (c == '.' && dot < 0); c = peek()) {
                if (c == '.') {
                    if (digits > 12) {
                        return false;
                    }
                    dot = digits;
                } else {
                    digits++;
                }
                pos++;
                if (dot < 0 ? digits > 15 : digits > 15 || digits - dot > 3) {
                    return false;
                }
            }
            return digits > 0 && (dot < 0 || (digits > dot && in.charAt(pos - 1) != '.'));
        }

        boolean string() {
            pos++;
            while (true) {
                char c = next();
                if (c == '"') {
                    return true;
                }
                if (c == '\\') {
                    c = next();
                    if (c != '"' && c != '\\') {
                        return false;
                    }
                } else if (c < 0x20 || c > 0x7e) {
                    return false;
                }
            }
        }

        boolean displayString() {
            if (next() != '"') {
                return false;
            }
            while (true) {
                char c = next();
                if (c == '"') {
                    return true;
                }
                if (c == '%') {
                    for (int i = 0; i < 2; i++) {
                        char h = next();
                        if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f'))) {
                            return false;
                        }
                    }
                } else if (c < 0x20 || c > 0x7e) {
                    return false;
                }
            }
        }
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
