package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.internal.UriAuthorities;
import jakarta.servlet.http.HttpServletMapping;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.MappingMatch;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import org.apache.hc.core5.http.HttpHost;

/**
 * The one upstream a proxy servlet may reach, and the mapping of incoming request paths onto it.
 *
 * <p>The upstream URI is always the configured scheme, host and port, the configured base path, and the request's
 * path below the servlet's mapping, taken raw (still percent-encoded) and normalized here: dot segments — also
 * encoded ({@code %2e%2e}) or with parameters ({@code ..;x}) — are resolved, empty segments merged, and a path that
 * would climb above the mapping is rejected. A segment hiding a separator ({@code %2F}, {@code %5C}, {@code \}), a NUL
 * or a malformed escape is rejected too, since an upstream that decodes it could be walked out of the base path. As
 * the result is appended to a fixed origin, no {@code //host}, {@code @}, or absolute-form target can change the
 * scheme, host or port.
 */
public final class UpstreamTarget {

    private static final char[] HEX = "0123456789ABCDEF".toCharArray();

    private final URI baseUri;
    private final HttpHost host;
    private final String origin;
    private final String defaultPortOrigin;
    private final String basePath;
    private final String authority;

    private UpstreamTarget(URI baseUri, HttpHost host, String origin, String defaultPortOrigin, String basePath,
            String authority) {
        this.baseUri = baseUri;
        this.host = host;
        this.origin = origin;
        this.defaultPortOrigin = defaultPortOrigin;
        this.basePath = basePath;
        this.authority = authority;
    }

    /**
     * Parses a base URI such as {@code http://inventory:8080/api}.
     *
     * @throws IllegalArgumentException unless it is an absolute http(s) URI with a host and without user info, query
     *     or fragment
     */
    public static UpstreamTarget parse(String base) {
        if (base == null || base.isBlank()) {
            throw new IllegalArgumentException("upstream must be an absolute http(s) URI, was '" + shown(base) + "'");
        }
        URI uri;
        try {
            uri = new URI(base.trim());
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("upstream is not a valid URI: '" + shown(base) + "' (" + e.getReason()
                    + " at index " + e.getIndex() + ")");
        }
        String scheme = uri.getScheme() == null ? null : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!"http".equals(scheme) && !"https".equals(scheme)) {
            throw new IllegalArgumentException("upstream must be an http or https URI, was '" + shown(base) + "'");
        }
        // As HttpClient reads it: java.net.URI sees no host in Compose service names such as order_service.
        UriAuthorities.HostPort hostPort = UriAuthorities.of(uri);
        String host = hostPort == null ? null : hostPort.host();
        int configuredPort = hostPort == null ? -1 : hostPort.port();
        if (host == null || host.isEmpty()) {
            throw new IllegalArgumentException("upstream must name a host, was '" + shown(base) + "'");
        }
        if (configuredPort == 0 || configuredPort > 65535) {
            // URI takes port 0, which no upstream listens on: every request would fail as connection_refused.
            throw new IllegalArgumentException(
                    "upstream's port must be between 1 and 65535, was '" + shown(base) + "'");
        }
        if (uri.getRawUserInfo() != null || uri.getRawAuthority().indexOf('@') >= 0 || uri.getRawQuery() != null
                || uri.getRawFragment() != null) {
            throw new IllegalArgumentException(
                    "upstream must not have user info, a query or a fragment, was '" + shown(base) + "'");
        }
        String path = uri.getRawPath() == null ? "" : uri.getRawPath();
        String normalized = path.isEmpty() ? "" : normalizePath(path, 0);
        if (normalized == null || !stripSlash(normalized).equals(stripSlash(path))) {
            throw new IllegalArgumentException("upstream's path must be plain, without dot segments or encoded "
                    + "separators, was '" + shown(base) + "'");
        }
        String basePath = stripSlash(normalized);
        String hostName = host.toLowerCase(Locale.ROOT);
        int defaultPort = "https".equals(scheme) ? 443 : 80;
        int port = configuredPort < 0 ? defaultPort : configuredPort;
        String hostPart = hostName.indexOf(':') >= 0 && !hostName.startsWith("[") ? "[" + hostName + "]" : hostName;
        String authority = port == defaultPort && configuredPort < 0 ? hostPart : hostPart + ":" + port;
        String origin = scheme + "://" + hostPart + ":" + port;
        String defaultPortOrigin = port == defaultPort ? scheme + "://" + hostPart : null;
        URI originUri = URI.create(scheme + "://" + authority + "/");
        return new UpstreamTarget(originUri, new HttpHost(scheme, host, port), origin, defaultPortOrigin,
                basePath, authority);
    }

    /**
     * The configured URI as a message may repeat it: without the user info, which is refused but may hold a password
     * that a failed init would otherwise write to the container's log.
     */
    private static String shown(String base) {
        return base == null ? null : base.replaceAll("(?<=//)[^/?#]*@", "***@");
    }

    private static String stripSlash(String path) {
        return path.endsWith("/") ? path.substring(0, path.length() - 1) : path;
    }

    /** The origin as a URI ({@code scheme://host:port/}), for building requests. */
    public URI originUri() {
        return baseUri;
    }

    /** The upstream host for HttpClient. */
    public HttpHost host() {
        return host;
    }

    /** {@code scheme://host:port}. */
    public String origin() {
        return origin;
    }

    /** The base path without a trailing slash; empty for the root. */
    public String basePath() {
        return basePath;
    }

    /** {@code host[:port]} as configured: the Host header sent upstream and the {@code next-hop}. */
    public String authority() {
        return authority;
    }

    /**
     * The path and query to request upstream for {@code request}, or {@code null} when the request's path is unsafe
     * (it climbs above the mapping, hides a separator, or is malformed), or its query held a raw byte the container
     * could not decode, and the request must be rejected with 400.
     */
    public String pathAndQuery(HttpServletRequest request) {
        String raw = request.getRequestURI();
        if (raw == null) {
            return null;
        }
        if (!raw.startsWith("/")) {
            // An absolute-form target the container passed on: only its path counts, never its authority.
            int scheme = raw.indexOf("://");
            if (scheme < 0) {
                return null;
            }
            int slash = raw.indexOf('/', scheme + 3);
            raw = slash < 0 ? "/" : raw.substring(slash);
        }
        String contextPath = request.getContextPath();
        String mapped = mappedPrefix(request);
        // The usual path needs no normalizing: its rest after the prefix goes out as it came, without the walk below.
        String rest = raw;
        int restFrom = plainPrefixLength(raw, contextPath, mapped);
        if (restFrom < 0) {
            rest = remainder(raw, countSegments(contextPath) + countSegments(mapped), contextPath, mapped);
            if (rest == null) {
                return null;
            }
            restFrom = 0;
        }
        String query = request.getQueryString();
        if (query != null && query.indexOf('\uFFFD') >= 0) {
            // A raw byte that is not UTF-8, which Jetty decodes to U+FFFD (Tomcat refuses the request): forwarded, the
            // upstream would get that character's encoding instead of what the client sent.
            return null;
        }
        int restLength = rest.length() - restFrom;
        int length = basePath.length() + restLength + (query == null ? 0 : query.length() + 1);
        StringBuilder sb = new StringBuilder(length + 8);
        sb.append(basePath);
        if (restLength == 0) {
            if (basePath.isEmpty()) {
                sb.append('/');
            }
        } else {
            sb.append(rest, restFrom, rest.length());
        }
        if (query != null) {
            appendQuery(sb.append('?'), query);
        }
        return sb.toString();
    }

    /**
     * The servlet path when the servlet is mapped by path prefix or exactly, else the empty string (the path is
     * forwarded whole): the part of the path, after the context path, that the route's base path stands for.
     */
    public static String mappedPrefix(HttpServletRequest request) {
        if (request.getPathInfo() != null) {
            // Only a path-prefix match, or the context root's (whose servlet path is empty), leaves path info (Servlet
            // 6.1 §12.2), so the mapping is not asked for: Tomcat builds a new one, with three strings, per request.
            return request.getServletPath();
        }
        HttpServletMapping mapping = request.getHttpServletMapping();
        MappingMatch match = mapping == null ? null : mapping.getMappingMatch();
        if (match == MappingMatch.PATH || match == MappingMatch.EXACT) {
            return request.getServletPath();
        }
        return "";
    }

    /**
     * The length of the prefix ({@code contextPath + mapped}) when {@code rawPath} starts with it and needs no
     * normalizing — no escape, parameter, dot or empty segment, and nothing to percent-encode — so that
     * {@link #remainder} would return its rest unchanged; else -1, and the walk must decide.
     */
    static int plainPrefixLength(String rawPath, String contextPath, String mapped) {
        if (!isPlainPrefix(contextPath) || !isPlainPrefix(mapped)) {
            return -1;
        }
        int prefix = contextPath.length() + mapped.length();
        int len = rawPath.length();
        if (!rawPath.startsWith(contextPath) || !rawPath.startsWith(mapped, contextPath.length())
                || (prefix < len && rawPath.charAt(prefix) != '/') || len == 0 || rawPath.charAt(0) != '/') {
            return -1;
        }
        int segment = 1;
        for (int i = 1; i <= len; i++) {
            char c = i == len ? '/' : rawPath.charAt(i);
            if (c == '/') {
                int n = i - segment;
                if (n == 0 ? i < len : n <= 2 && rawPath.charAt(segment) == '.'
                        && rawPath.charAt(i - 1) == '.') {
                    // An empty segment inside the path, or a dot segment.
                    return -1;
                }
                segment = i + 1;
            } else if (c == ';' || !isPathChar(c)) {
                return -1;
            }
        }
        return prefix;
    }

    /** Empty, or '/' and segments without a trailing '/', so that a raw path starting with it matches its segments. */
    private static boolean isPlainPrefix(String path) {
        return path.isEmpty() || (path.charAt(0) == '/' && path.charAt(path.length() - 1) != '/');
    }

    /**
     * The normalized rest of {@code rawPath} after its first {@code skip} segments, starting with '/' (or empty), or
     * {@code null} when unsafe. The skipped segments must decode to {@code contextPath} followed by {@code mapped}.
     */
    static String remainder(String rawPath, int skip, String contextPath, String mapped) {
        int[] segments = new int[32];
        int depth = 0;
        boolean trailingSlash = false;
        int len = rawPath.length();
        int i = rawPath.startsWith("/") ? 1 : 0;
        while (i <= len) {
            int j = rawPath.indexOf('/', i);
            if (j < 0) {
                j = len;
            }
            if (j == i) {
                // Empty segment ("//"): merged, but a path ending in '/' keeps its trailing slash.
                trailingSlash = true;
            } else {
                int kind = segmentKind(rawPath, i, j);
                if (kind < 0) {
                    return null;
                }
                if (kind == 0) {
                    if (2 * depth + 2 > segments.length) {
                        segments = java.util.Arrays.copyOf(segments, segments.length * 2);
                    }
                    segments[2 * depth] = i;
                    segments[2 * depth + 1] = j;
                    depth++;
                    trailingSlash = false;
                } else {
                    if (kind == 2) {
                        if (depth == 0) {
                            return null;
                        }
                        depth--;
                    }
                    trailingSlash = true;
                }
            }
            i = j + 1;
        }
        if (depth < skip) {
            return null;
        }
        if (!prefixMatches(rawPath, segments, skip, contextPath, mapped)) {
            return null;
        }
        if (depth == skip) {
            return trailingSlash ? "/" : "";
        }
        StringBuilder sb = new StringBuilder(len);
        for (int s = skip; s < depth; s++) {
            sb.append('/');
            appendSegment(sb, rawPath, segments[2 * s], segments[2 * s + 1]);
        }
        if (trailingSlash) {
            sb.append('/');
        }
        return sb.toString();
    }

    /** Normalizes a whole raw path (no prefix), or {@code null} when unsafe; used for the configured base path. */
    static String normalizePath(String rawPath, int skip) {
        return remainder(rawPath, skip, "", "");
    }

    /**
     * 0 for an ordinary segment, 1 for {@code .}, 2 for {@code ..} (also percent-encoded, also with {@code ;params}),
     * -1 for a segment that must be rejected: an encoded {@code /} or {@code \}, a raw {@code \}, NUL or control
     * character, or a malformed escape.
     */
    static int segmentKind(String s, int from, int to) {
        int dots = 0;
        boolean onlyDots = true;
        boolean inParams = false;
        for (int i = from; i < to; i++) {
            char c = s.charAt(i);
            int decoded = c;
            if (c == '%') {
                if (i + 2 >= to) {
                    return -1;
                }
                int hi = Character.digit(s.charAt(i + 1), 16);
                int lo = Character.digit(s.charAt(i + 2), 16);
                if (hi < 0 || lo < 0) {
                    return -1;
                }
                decoded = hi * 16 + lo;
                i += 2;
                if (decoded == '/' || decoded == '\\' || decoded == 0) {
                    return -1;
                }
            } else if (c == '\\' || c < 0x20 || c == 0x7f) {
                return -1;
            }
            if (c == ';') {
                inParams = true;
            }
            if (!inParams) {
                if (decoded == '.') {
                    dots++;
                } else {
                    onlyDots = false;
                }
            }
        }
        if (onlyDots && (dots == 1 || dots == 2)) {
            return dots;
        }
        return 0;
    }

    /** Whether the first {@code skip} segments decode to the segments of {@code contextPath + mapped}. */
    private static boolean prefixMatches(String raw, int[] segments, int skip, String contextPath, String mapped) {
        int s = matchSegments(raw, segments, skip, 0, contextPath);
        return s >= 0 && matchSegments(raw, segments, skip, s, mapped) == skip;
    }

    /** The segment count after matching {@code expected}'s segments from segment {@code s}, or -1 on a mismatch. */
    private static int matchSegments(String raw, int[] segments, int skip, int s, String expected) {
        int i = expected.startsWith("/") ? 1 : 0;
        int len = expected.length();
        while (i < len) {
            int j = expected.indexOf('/', i);
            if (j < 0) {
                j = len;
            }
            if (j > i) {
                if (s >= skip || !segmentEquals(raw, segments[2 * s], segments[2 * s + 1], expected, i, j)) {
                    return -1;
                }
                s++;
            }
            i = j + 1;
        }
        return s;
    }

    private static boolean segmentEquals(String raw, int from, int to, String expected, int efrom, int eto) {
        int params = raw.indexOf(';', from);
        int end = params >= 0 && params < to ? params : to;
        boolean plain = raw.indexOf('%', from) < 0 || raw.indexOf('%', from) >= end;
        if (plain) {
            return end - from == eto - efrom && raw.regionMatches(from, expected, efrom, eto - efrom);
        }
        return decode(raw, from, end).equals(expected.substring(efrom, eto));
    }

    private static String decode(String s, int from, int to) {
        byte[] bytes = new byte[(to - from) * 3];
        int n = 0;
        for (int i = from; i < to; i++) {
            char c = s.charAt(i);
            if (c == '%' && i + 2 < to) {
                bytes[n++] = (byte) (Character.digit(s.charAt(i + 1), 16) * 16 + Character.digit(s.charAt(i + 2), 16));
                i += 2;
            } else {
                for (byte b : String.valueOf(c).getBytes(StandardCharsets.UTF_8)) {
                    bytes[n++] = b;
                }
            }
        }
        return new String(bytes, 0, n, StandardCharsets.UTF_8);
    }

    /** Appends a validated segment, percent-encoding anything a URI path may not hold as it is. */
    private static void appendSegment(StringBuilder sb, String s, int from, int to) {
        for (int i = from; i < to; i++) {
            char c = s.charAt(i);
            if (isPathChar(c) || c == '%') {
                sb.append(c);
            } else {
                percentEncode(sb, c);
            }
        }
    }

    /** Appends a raw query, percent-encoding anything a URI query may not hold (and stray '%'). */
    static void appendQuery(StringBuilder sb, String query) {
        int len = query.length();
        for (int i = 0; i < len; i++) {
            char c = query.charAt(i);
            if (c == '%') {
                boolean escape = i + 2 < len && Character.digit(query.charAt(i + 1), 16) >= 0
                        && Character.digit(query.charAt(i + 2), 16) >= 0;
                sb.append(escape ? "%" : "%25");
            } else if (isPathChar(c) || c == '/' || c == '?') {
                sb.append(c);
            } else {
                percentEncode(sb, c);
            }
        }
    }

    /** RFC 3986 pchar without '%': unreserved, sub-delims, ':' and '@'. */
    private static boolean isPathChar(char c) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            return true;
        }
        switch (c) {
            case '-': case '.': case '_': case '~':
            case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',': case ';':
            case '=': case ':': case '@':
                return true;
            default:
                return false;
        }
    }

    private static void percentEncode(StringBuilder sb, char c) {
        byte[] bytes = c < 0x80 ? new byte[] {(byte) c} : String.valueOf(c).getBytes(StandardCharsets.UTF_8);
        for (byte b : bytes) {
            sb.append('%').append(HEX[(b >> 4) & 0xF]).append(HEX[b & 0xF]);
        }
    }

    static int countSegments(String path) {
        int n = 0;
        int len = path.length();
        for (int i = 0; i < len; i++) {
            if (path.charAt(i) != '/' && (i == 0 || path.charAt(i - 1) == '/')) {
                n++;
            }
        }
        return n;
    }

    /**
     * Rewrites a {@code Location} pointing at the upstream (absolute, without a scheme, or a path under the base path)
     * to the gateway's own URL; any other value is returned unchanged.
     *
     * @param gatewayOrigin {@code scheme://host[:port]} the client used
     * @param gatewayPrefix the gateway path the base path maps to (context path plus servlet mapping)
     */
    public String rewriteLocation(String location, String gatewayOrigin, String gatewayPrefix) {
        String rest = null;
        if (location.startsWith("/") && !location.startsWith("//")) {
            rest = underBase(location, 0);
            return rest == null ? location : gatewayPrefix + rest;
        }
        // A network-path reference ("//host:port/path", RFC 3986 §4.2) takes the scheme of the request it answers, the
        // upstream's: with the upstream's authority it points at the upstream as much as an absolute URI does.
        int from = location.startsWith("//") ? origin.indexOf("//") : 0;
        if (location.regionMatches(true, 0, origin, from, origin.length() - from)) {
            rest = underBase(location, origin.length() - from);
        } else if (defaultPortOrigin != null
                && location.regionMatches(true, 0, defaultPortOrigin, from, defaultPortOrigin.length() - from)) {
            rest = underBase(location, defaultPortOrigin.length() - from);
        }
        if (rest == null) {
            return location;
        }
        return gatewayOrigin + gatewayPrefix + rest;
    }

    /** What follows the base path at {@code from}, or {@code null} when the location is not under it. */
    private String underBase(String location, int from) {
        if (!location.startsWith(basePath, from)) {
            return null;
        }
        int end = from + basePath.length();
        if (end == location.length()) {
            return "";
        }
        char next = location.charAt(end);
        return next == '/' || next == '?' || next == '#' ? location.substring(end) : null;
    }
}
