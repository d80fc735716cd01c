package dev.upstreamguard.gateway.internal;

import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;
import org.apache.hc.core5.http.Header;

/**
 * Hop-by-hop header fields (RFC 9110 §7.6.1), which a proxy must not forward in either direction: {@code Connection}
 * and every field it names, {@code Keep-Alive}, {@code TE}, {@code Trailer}, {@code Transfer-Encoding},
 * {@code Upgrade}, {@code Proxy-Connection}, {@code Proxy-Authenticate}, {@code Proxy-Authorization} and
 * {@code HTTP2-Settings}.
 * {@code Trailer} is end-to-end in RFC 9110 (§6.6.2) but only means something with the trailer section it announces:
 * the proxy servlet passes it on only where it relays that section.
 */
public final class HopByHop {

    private HopByHop() {
    }

    /** Whether {@code name} is always hop-by-hop; compared without case and without allocating. */
    public static boolean isHopByHop(String name) {
        switch (name.length()) {
            case 2:
                return name.equalsIgnoreCase("TE");
            case 7:
                return name.equalsIgnoreCase("Trailer") || name.equalsIgnoreCase("Upgrade");
            case 10:
                return name.equalsIgnoreCase("Connection") || name.equalsIgnoreCase("Keep-Alive");
            case 14:
                // Connection-specific whether or not Connection names it (RFC 7540 §3.2.1): only the h2c upgrade of
                // the connection it came on can use it.
                return name.equalsIgnoreCase("HTTP2-Settings");
            case 16:
                return name.equalsIgnoreCase("Proxy-Connection");
            case 17:
                return name.equalsIgnoreCase("Transfer-Encoding");
            case 18:
                return name.equalsIgnoreCase("Proxy-Authenticate");
            case 19:
                return name.equalsIgnoreCase("Proxy-Authorization");
            default:
                return false;
        }
    }

    /** The field names listed by request {@code Connection} headers, or {@code null} when there are none. */
    public static List<String> connectionTokens(Enumeration<String> connectionValues) {
        List<String> tokens = null;
        while (connectionValues != null && connectionValues.hasMoreElements()) {
            tokens = addTokens(tokens, connectionValues.nextElement());
        }
        return tokens;
    }

    /** Whether request {@code Connection} headers carry the {@code close} option. */
    public static boolean hasClose(Enumeration<String> connectionValues) {
        while (connectionValues != null && connectionValues.hasMoreElements()) {
            String value = connectionValues.nextElement();
            for (int start = 0, len = value.length(); start < len;) {
                int comma = value.indexOf(',', start);
                int end = comma < 0 ? len : comma;
                int from = start;
                int to = end;
                while (from < to && (value.charAt(from) == ' ' || value.charAt(from) == '\t')) {
                    from++;
                }
                while (to > from && (value.charAt(to - 1) == ' ' || value.charAt(to - 1) == '\t')) {
                    to--;
                }
                if (to - from == 5 && value.regionMatches(true, from, "close", 0, 5)) {
                    return true;
                }
                start = end + 1;
            }
        }
        return false;
    }

    /** The field names listed by response {@code Connection} headers, or {@code null} when there are none. */
    public static List<String> connectionTokens(Header[] connectionHeaders) {
        List<String> tokens = null;
        for (Header h : connectionHeaders) {
            tokens = addTokens(tokens, h.getValue());
        }
        return tokens;
    }

    private static List<String> addTokens(List<String> tokens, String value) {
        if (value == null) {
            return tokens;
        }
        int start = 0;
        int len = value.length();
        while (start < len) {
            int comma = value.indexOf(',', start);
            int end = comma < 0 ? len : comma;
            String token = value.substring(start, end).trim();
            // "close" and "keep-alive" name no field that is not already hop-by-hop.
            if (!token.isEmpty() && !token.equalsIgnoreCase("close") && !token.equalsIgnoreCase("keep-alive")) {
                if (tokens == null) {
                    tokens = new ArrayList<>(2);
                }
                tokens.add(token);
            }
            start = end + 1;
        }
        return tokens;
    }

    /** Whether {@code name} is hop-by-hop or one of the {@code connectionTokens}. */
    public static boolean isExcluded(String name, List<String> connectionTokens) {
        return isHopByHop(name) || isNamedBy(name, connectionTokens);
    }

    /** Whether {@code name} is one of the {@code connectionTokens} (which may be {@code null}). */
    public static boolean isNamedBy(String name, List<String> connectionTokens) {
        if (connectionTokens != null) {
            for (String token : connectionTokens) {
                if (token.equalsIgnoreCase(name)) {
                    return true;
                }
            }
        }
        return false;
    }

    /**
     * Whether a connection of {@code protocol} ends a message body with its stream when no length is given, as chunks
     * end one in HTTP/1.1: HTTP/2 and later.
     */
    public static boolean framesBodiesByStream(String protocol) {
        return protocol != null && protocol.length() > 5 && protocol.startsWith("HTTP/")
                && protocol.charAt(5) >= '2' && protocol.charAt(5) <= '9';
    }
}
