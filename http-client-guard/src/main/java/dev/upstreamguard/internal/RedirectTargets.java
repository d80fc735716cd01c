package dev.upstreamguard.internal;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hc.client5.http.impl.DefaultRedirectStrategy;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpHeaders;
import org.apache.hc.core5.http.HttpRequest;
import org.apache.hc.core5.http.HttpResponse;
import org.apache.hc.core5.http.ProtocolException;
import org.apache.hc.core5.http.protocol.HttpContext;

/**
 * HttpClient's redirect strategy, refusing a {@code Location} with port 0 as it refuses one with a port over 65535, and
 * leaving a redirect to a scheme other than http and https unfollowed.
 *
 * <p>A redirect to {@code ftp:} or {@code mailto:} is a valid response this client cannot follow, not a broken
 * upstream: it is returned as it is, as a 3xx without a {@code Location} is (HttpClient failed it as a protocol error).
 *
 * <p>No upstream listens on port 0, and HttpClient's route planner reads it as "no port": the follow-up would go to
 * the scheme's default port, another service than the one the upstream named. The upstream sent a target no request
 * can go to, a protocol error; a request URI with port 0 is refused the same way before it is sent.
 *
 * <p>A {@code Location} with characters not allowed in a URI reference (a raw space, {@code |}, {@code "}, non-ASCII
 * bytes) is percent-encoded and followed, as browsers, curl and OkHttp do: HttpClient failed it as a protocol error.
 * A malformed escape ({@code %zz}) is not guessed at and stays one.
 */
public final class RedirectTargets extends DefaultRedirectStrategy {

    /** The scheme of a URI reference (RFC 3986 §3.1); a relative reference has none. */
    private static final Pattern SCHEME = Pattern.compile("([A-Za-z][A-Za-z0-9+.-]*):");
    private static final Set<String> FOLLOWED = Set.of("http", "https");
    /** Besides ASCII letters and digits, what a URI reference may hold (RFC 3986 §2): reserved, unreserved and '%'. */
    private static final String ALLOWED = "-._~:/?#[]@!$&'()*+,;=%";
    private static final char[] HEX = "0123456789ABCDEF".toCharArray();

    /** The strategy the guarded client follows redirects with. */
    public static final RedirectTargets INSTANCE = new RedirectTargets();

    private RedirectTargets() {
    }

    @Override
    public boolean isRedirected(HttpRequest request, HttpResponse response, HttpContext context)
            throws ProtocolException {
        if (!super.isRedirected(request, response, context)) {
            return false;
        }
        Header location = response.getFirstHeader(HttpHeaders.LOCATION);
        Matcher scheme = location == null ? null : SCHEME.matcher(location.getValue().trim());
        return scheme == null || !scheme.lookingAt() || FOLLOWED.contains(scheme.group(1).toLowerCase(Locale.ROOT));
    }

    @Override
    protected URI createLocationURI(String location) throws ProtocolException {
        return super.createLocationURI(encodeInvalid(location));
    }

    /**
     * {@code location} with each byte not allowed in a URI reference (RFC 3986 §4.1) as a {@code %XX} escape; a second
     * {@code #}, and a {@code [} or {@code ]} in the path, are escaped too. The scheme and authority are left as they are: a host name with such characters is no
     * host to escape into one, and stays a protocol error. The header's characters are its bytes as received (ISO-8859-1), so the UTF-8 an upstream
     * sends is escaped byte for byte, as browsers read it; a character past U+00FF, which no received header holds, is
     * escaped as its UTF-8. An existing {@code %} is kept, whether or not a valid escape follows.
     */
    static String encodeInvalid(String location) {
        StringBuilder out = null;
        boolean fragment = false;
        boolean path = true;
        for (int i = afterAuthority(location); i < location.length(); i++) {
            char c = location.charAt(i);
            // '[' and ']' delimit an IPv6 host; a path may not hold them, though a query or fragment may (as the JDK's
            // URI and browsers take them).
            boolean valid = c < 0x80 && (ALLOWED.indexOf(c) >= 0 || Character.isLetterOrDigit(c))
                    && !(c == '#' && fragment) && !(path && (c == '[' || c == ']'));
            fragment |= c == '#';
            path &= c != '?' && c != '#';
            if (valid) {
                if (out != null) {
                    out.append(c);
                }
                continue;
            }
            if (out == null) {
                out = new StringBuilder(location.length() + 16).append(location, 0, i);
            }
            byte[] bytes = c <= 0xFF ? new byte[] {(byte) c} : String.valueOf(c).getBytes(StandardCharsets.UTF_8);
            if (Character.isHighSurrogate(c) && i + 1 < location.length()
                    && Character.isLowSurrogate(location.charAt(i + 1))) {
                bytes = location.substring(i, i + 2).getBytes(StandardCharsets.UTF_8);
                i++;
            }
            for (byte b : bytes) {
                out.append('%').append(HEX[(b >> 4) & 0xF]).append(HEX[b & 0xF]);
            }
        }
        return out == null ? location : out.toString();
    }

    /** Where the path of {@code location} starts: after its scheme and authority, if it has them. */
    private static int afterAuthority(String location) {
        Matcher scheme = SCHEME.matcher(location);
        int i = scheme.lookingAt() ? scheme.end() : 0;
        if (!location.startsWith("//", i)) {
            return i;
        }
        for (i += 2; i < location.length(); i++) {
            char c = location.charAt(i);
            if (c == '/' || c == '?' || c == '#') {
                break;
            }
        }
        return i;
    }

    @Override
    public URI getLocationURI(HttpRequest request, HttpResponse response, HttpContext context) throws HttpException {
        URI location = super.getLocationURI(request, response, context);
        if (location.getPort() == 0) {
            throw new ProtocolException("Redirect URI does not specify a valid port: " + location);
        }
        return location;
    }
}
