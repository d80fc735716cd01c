package dev.upstreamguard.internal;

import java.net.URI;
import org.apache.hc.client5.http.impl.DefaultRedirectStrategy;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpRequest;
import org.apache.hc.core5.http.HttpResponse;
import org.apache.hc.core5.http.ProtocolException;
import org.apache.hc.core5.http.protocol.HttpContext;

/**
 * HttpClient's redirect strategy, refusing a {@code Location} with port 0 as it refuses one with a port over 65535.
 *
 * <p>No upstream listens on port 0, and HttpClient's route planner reads it as "no port": the follow-up would go to
 * the scheme's default port, another service than the one the upstream named. The upstream sent a target no request
 * can go to, a protocol error; a request URI with port 0 is refused the same way before it is sent.
 */
public final class RedirectTargets extends DefaultRedirectStrategy {

    /** The strategy the guarded client follows redirects with. */
    public static final RedirectTargets INSTANCE = new RedirectTargets();

    private RedirectTargets() {
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
