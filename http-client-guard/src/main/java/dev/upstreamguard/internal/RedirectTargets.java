package dev.upstreamguard.internal;

import java.net.URI;
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
 */
public final class RedirectTargets extends DefaultRedirectStrategy {

    /** The scheme of a URI reference (RFC 3986 §3.1); a relative reference has none. */
    private static final Pattern SCHEME = Pattern.compile("([A-Za-z][A-Za-z0-9+.-]*):");
    private static final Set<String> FOLLOWED = Set.of("http", "https");

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
    public URI getLocationURI(HttpRequest request, HttpResponse response, HttpContext context) throws HttpException {
        URI location = super.getLocationURI(request, response, context);
        if (location.getPort() == 0) {
            throw new ProtocolException("Redirect URI does not specify a valid port: " + location);
        }
        return location;
    }
}
