package dev.upstreamguard.internal;

import java.util.regex.Pattern;

/**
 * Describes a cause for an {@code UpstreamException}'s message without the secrets URIs carry. HttpClient names the
 * URI in some of its messages (a circular redirect, an invalid {@code Location}), and a query string often holds a
 * token or a signature; the message is logged, and a gateway may show it. The cause itself keeps the whole text.
 */
public final class Redaction {

    /** A query (or fragment) right after a non-space character: everything up to the next space or quote. */
    private static final Pattern QUERY = Pattern.compile("(?<=\\S)[?#][^\\s'\"<>]+");
    /** The userinfo of an absolute URI. */
    private static final Pattern USERINFO = Pattern.compile("(?<=//)[^/\\s'\"<>@]*@");

    private Redaction() {
    }

    /** {@code cause.toString()}, {@linkplain #redact(String) redacted}. */
    public static String describe(Throwable cause) {
        return redact(cause.toString());
    }

    /** {@code text} with every query, fragment and userinfo of a URI in it replaced by an ellipsis. */
    public static String redact(String text) {
        if (text.indexOf('?') < 0 && text.indexOf('#') < 0 && text.indexOf('@') < 0) {
            return text;
        }
        return USERINFO.matcher(QUERY.matcher(text).replaceAll("?…")).replaceAll("…@");
    }
}
