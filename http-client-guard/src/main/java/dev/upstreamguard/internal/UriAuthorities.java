package dev.upstreamguard.internal;

import java.net.URI;
import java.net.URISyntaxException;
import org.apache.hc.core5.net.URIAuthority;

/**
 * An upstream URI's host and port as HttpClient reads them. {@code java.net.URI} finds no host in some names
 * HttpClient calls, such as Docker Compose services with an underscore ({@code order_service}): it parses their
 * authority as registry-based, so {@link URI#getHost()} is {@code null}.
 */
public final class UriAuthorities {

    private UriAuthorities() {
    }

    /** A host and the port written with it, -1 when none is (not range-checked: callers name a bad one). */
    public record HostPort(String host, int port) {
    }

    /**
     * The host and port of {@code uri}, or {@code null} when it names no host. User info is not part of the answer:
     * where {@code java.net.URI} cannot parse the authority, one with user info or a negative port is {@code null}.
     */
    public static HostPort of(URI uri) {
        if (uri.getHost() != null) {
            return new HostPort(uri.getHost(), uri.getPort());
        }
        String raw = uri.getRawAuthority();
        if (raw == null || raw.indexOf('@') >= 0 || raw.contains(":-")) {
            return null;
        }
        try {
            URIAuthority parsed = URIAuthority.create(raw);
            return parsed.getHostName().isEmpty() ? null : new HostPort(parsed.getHostName(), parsed.getPort());
        } catch (URISyntaxException | IllegalArgumentException e) {
            return null;
        }
    }
}
