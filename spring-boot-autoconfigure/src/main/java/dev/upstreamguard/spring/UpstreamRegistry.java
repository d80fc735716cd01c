package dev.upstreamguard.spring;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.gateway.UpstreamProxyServlet;
import dev.upstreamguard.gateway.internal.FaultResponseWriter;
import dev.upstreamguard.gateway.internal.Settings;
import dev.upstreamguard.gateway.internal.UpstreamTarget;
import dev.upstreamguard.internal.UriAuthorities;
import dev.upstreamguard.spring.internal.PolicyMapper;
import java.net.URI;
import java.net.URISyntaxException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import org.springframework.boot.context.properties.source.InvalidConfigurationPropertyValueException;

/**
 * The validated form of {@code upstream-guard.*}: the default policy, every named upstream with its resolved policy,
 * and every proxy route. Built once at start-up by {@link #from(UpstreamGuardProperties)}; an invalid value fails there
 * with an {@link InvalidConfigurationPropertyValueException} naming the property and the value.
 */
public final class UpstreamRegistry {

    private static final String PREFIX = "upstream-guard";

    /** A path segment of RFC 3986 pchar, less percent-encoding and ';' (see {@link #checkSegments}). */
    private static final Pattern SEGMENT = Pattern.compile("[A-Za-z0-9._~!$&'()+,=:@-]*");
    private static final Pattern DASH_OR_UNDERSCORE = Pattern.compile("[-_]");

    private final String proxyName;
    private final boolean exposeDetails;
    private final GuardPolicy defaults;
    private final Map<String, NamedUpstream> upstreams;
    private final List<Route> routes;
    /** Derived from the routes once: every application call to a route's address looks it up. */
    private final Map<String, NamedUpstream> routeUpstreams;

    private UpstreamRegistry(String proxyName, boolean exposeDetails, GuardPolicy defaults,
            Map<String, NamedUpstream> upstreams, List<Route> routes) {
        this.proxyName = proxyName;
        this.exposeDetails = exposeDetails;
        this.defaults = defaults;
        this.upstreams = Collections.unmodifiableMap(upstreams);
        this.routes = Collections.unmodifiableList(routes);
        Map<String, NamedUpstream> own = new LinkedHashMap<>();
        for (Route route : routes) {
            if (!upstreams.containsKey(route.upstream())) {
                own.putIfAbsent(route.upstream(),
                        new NamedUpstream(route.upstream(), URI.create(origin(route.target())), route.policy()));
            }
        }
        this.routeUpstreams = Collections.unmodifiableMap(own);
    }

    /**
     * Validates and resolves the properties.
     *
     * @throws InvalidConfigurationPropertyValueException naming the first invalid property and its value
     */
    public static UpstreamRegistry from(UpstreamGuardProperties properties) {
        String proxyName = properties.getProxyName();
        try {
            FaultResponseWriter.checkProxyName(proxyName);
        } catch (RuntimeException e) {
            throw new InvalidConfigurationPropertyValueException(PREFIX + ".proxy-name", proxyName, e.getMessage());
        }
        oneSpelling(properties.getUpstreams().keySet(), PREFIX + ".upstreams", "upstream");
        oneSpelling(properties.getRoutes().keySet(), PREFIX + ".routes", "route");
        GuardPolicy defaults = PolicyMapper.apply(GuardPolicy.ofDefaults(), properties.getDefaults(),
                PREFIX + ".defaults");
        Map<String, NamedUpstream> upstreams = new LinkedHashMap<>();
        properties.getUpstreams().forEach((name, u) -> {
            String prefix = PREFIX + ".upstreams." + name;
            String key = oneOf(prefix, "url", u.getUrl(), "uri", u.getUri());
            UpstreamGuardProperties.Route route = properties.getRoutes().get(name);
            if (u.getUrl() == null && u.getUri() == null && route != null && route.getUpstream() == null) {
                // The upstream a route to a uri is named after is the route's own: its policy goes with the route.
                throw new InvalidConfigurationPropertyValueException(prefix + ".url", null, "an absolute http:// or"
                        + " https:// URI is required; to set the policy of route '" + name + "', which forwards to a"
                        + " uri, use '" + PREFIX + ".routes." + name + ".*' instead of '" + prefix + ".*'");
            }
            URI url = httpUri(prefix + "." + key, key.equals("uri") ? u.getUri() : u.getUrl());
            upstreams.put(name, new NamedUpstream(name, url, PolicyMapper.apply(defaults, u, prefix)));
        });
        List<Route> routes = new ArrayList<>();
        Map<String, String> routeByMapping = new LinkedHashMap<>();
        properties.getRoutes().forEach((name, r) -> {
            Route route = route(name, r, defaults, upstreams);
            // Two servlets cannot share a mapping: the container would silently serve both paths with one of them.
            String other = routeByMapping.putIfAbsent(route.servletMapping(), name);
            if (other != null) {
                throw new InvalidConfigurationPropertyValueException(PREFIX + ".routes." + name + ".path", r.getPath(),
                        "serves the same requests as route '" + other + "' (path '"
                                + properties.getRoutes().get(other).getPath() + "'); give each route its own path");
            }
            routes.add(route);
        });
        return new UpstreamRegistry(proxyName, properties.isExposeDetails(), defaults, upstreams, routes);
    }

    /**
     * Rejects one name written two ways ({@code Inventory} and {@code inventory}, {@code my-route} and
     * {@code myRoute}, {@code svc_v2} and {@code svcv2}): Spring Boot matches property names whatever their case,
     * dashes and underscores, but keeps a map key as written, so each spelling becomes an entry of its own that also
     * takes the other's settings, a duplicate with a circuit breaker, bulkhead, health entry and meters of its own.
     * Two names in brackets ({@code upstreams[Inventory]}, which Spring Boot matches exactly) that differ only so are
     * refused too: to people and to environment variables they are one name. Other characters, which only names in
     * brackets hold ({@code [a b]}, {@code [a+b]}), tell names apart.
     */
    private static void oneSpelling(Set<String> names, String section, String what) {
        Map<String, String> seen = new HashMap<>();
        for (String name : names) {
            String other = seen.putIfAbsent(DASH_OR_UNDERSCORE.matcher(name.toLowerCase(Locale.ROOT)).replaceAll(""),
                    name);
            if (other != null) {
                throw new InvalidConfigurationPropertyValueException(section + "." + name, name, "is " + what + " '"
                        + other + "' written another way: Spring Boot matches property names whatever their case,"
                        + " dashes and underscores, so '" + section + "." + other + ".*' and '" + section + "." + name
                        + ".*' name one " + what + " (as an environment variable, which spells it in upper case"
                        + " without separators, does); write the name one way everywhere, or give two " + what
                        + "s names that differ in their letters or digits");
            }
        }
    }

    private static Route route(String name, UpstreamGuardProperties.Route r, GuardPolicy defaults,
            Map<String, NamedUpstream> upstreams) {
        String prefix = PREFIX + ".routes." + name;
        String mapping = servletMapping(prefix + ".path", r.getPath());
        boolean hasUpstream = r.getUpstream() != null && !r.getUpstream().isBlank();
        String uriKey = oneOf(prefix, "uri", r.getUri(), "url", r.getUrl());
        String uriValue = uriKey.equals("url") ? r.getUrl() : r.getUri();
        boolean hasUri = uriValue != null && !uriValue.isBlank();
        if (!hasUpstream && !hasUri) {
            throw new InvalidConfigurationPropertyValueException(prefix + ".upstream", null,
                    "route '" + name + "' needs either '" + prefix + ".upstream' or '" + prefix + ".uri'");
        }
        if (hasUpstream && hasUri) {
            throw new InvalidConfigurationPropertyValueException(prefix + "." + uriKey, uriValue,
                    "route '" + name + "' sets both upstream '" + r.getUpstream() + "' and a " + uriKey
                            + "; set only one");
        }
        // The servlet forwards what follows its mapping; the fixed segments of the path that are not stripped are
        // put back in front of it, so strip-prefix can only remove fixed segments.
        String fixed = mapping.endsWith("/*") ? mapping.substring(0, mapping.length() - 2) : mapping;
        checkSegments(prefix + ".path", r.getPath(), fixed);
        String[] segments = fixed.isEmpty() ? new String[0] : fixed.substring(1).split("/");
        if (r.getStripPrefix() < 0 || r.getStripPrefix() > segments.length) {
            throw new InvalidConfigurationPropertyValueException(prefix + ".strip-prefix", r.getStripPrefix(),
                    "must be between 0 and " + segments.length + ", the number of fixed segments of path '"
                            + r.getPath() + "'");
        }
        StringBuilder kept = new StringBuilder();
        for (int i = r.getStripPrefix(); i < segments.length; i++) {
            kept.append('/').append(segments[i]);
        }
        URI base;
        String upstream;
        GuardPolicy policy;
        if (hasUpstream) {
            NamedUpstream named = upstreams.get(r.getUpstream());
            if (named == null) {
                throw new InvalidConfigurationPropertyValueException(prefix + ".upstream", r.getUpstream(),
                        "no upstream named '" + r.getUpstream() + "' is configured under '" + PREFIX
                                + ".upstreams' (known: " + upstreams.keySet() + ")");
            }
            // The upstream's circuit breaker, bulkhead and budget are shared by all its calls, so its policy is set
            // in one place; ignoring the route's setting would leave the route silently on the upstream's.
            PolicyMapper.apply(named.policy(), r, prefix);
            Map.Entry<String, String> own = PolicyMapper.firstSetting(r);
            if (own != null) {
                throw new InvalidConfigurationPropertyValueException(prefix + "." + own.getKey(), own.getValue(),
                        "route '" + name + "' forwards to upstream '" + named.name() + "', whose policy is set under '"
                                + PREFIX + ".upstreams." + named.name() + "'; set it there, or give the route a uri"
                                + " instead of an upstream to make it an upstream of its own");
            }
            base = named.url();
            upstream = named.name();
            policy = named.policy();
        } else {
            base = httpUri(prefix + "." + uriKey, uriValue);
            String origin = origin(base);
            policy = PolicyMapper.apply(defaults, r, prefix);
            Map.Entry<String, String> own = PolicyMapper.firstSetting(r);
            if (own != null) {
                // Settings of its own make the route an upstream of its own, even beside a named upstream of the same
                // address: they apply to this route and no other.
                if (upstreams.containsKey(name)) {
                    throw new InvalidConfigurationPropertyValueException(prefix + "." + own.getKey(), own.getValue(),
                            "route '" + name + "' sets its own policy, which makes it an upstream named '" + name
                                    + "', but an upstream of that name is configured under '" + PREFIX
                                    + ".upstreams'; rename the route, or forward it with '" + prefix + ".upstream="
                                    + name + "' and set the policy there");
                }
                upstream = name;
            } else {
                // Named after the route, so that metrics, logs and problem bodies say which route failed; the origin
                // only when the route's name is taken by an upstream with another address.
                NamedUpstream sameOrigin = upstreams.values().stream().filter(u -> origin(u.url()).equals(origin))
                        .findFirst().orElse(null);
                upstream = sameOrigin != null ? sameOrigin.name() : upstreams.containsKey(name) ? origin : name;
                policy = sameOrigin != null ? sameOrigin.policy() : defaults;
            }
        }
        String basePath = base.getRawPath() == null ? "" : base.getRawPath();
        if (basePath.endsWith("/")) {
            basePath = basePath.substring(0, basePath.length() - 1);
        }
        URI target = URI.create(base.getScheme() + "://" + base.getRawAuthority() + basePath + kept);
        String forwardedHeaders = r.getForwardedHeaders() == null ? "both" : r.getForwardedHeaders().trim();
        try {
            // The proxy servlet's own rule, checked now rather than when the routes register.
            Settings.forwardedHeaders(prefix + ".forwarded-headers", forwardedHeaders);
        } catch (IllegalArgumentException e) {
            throw new InvalidConfigurationPropertyValueException(prefix + ".forwarded-headers", r.getForwardedHeaders(),
                    e.getMessage());
        }
        String buffered = r.getMaxBufferedRequestBody();
        Long maxBuffered = null;
        if (buffered != null) {
            try {
                // Parsed and range-checked by the proxy servlet's own builder, as its init-param would be.
                maxBuffered = Settings.bytes(prefix + ".max-buffered-request-body", buffered);
                UpstreamProxyServlet.builder(target.toString()).maxBufferedRequestBody(maxBuffered);
            } catch (IllegalArgumentException e) {
                throw new InvalidConfigurationPropertyValueException(prefix + ".max-buffered-request-body", buffered,
                        e.getMessage());
            }
        }
        return new Route(name, r.getPath(), mapping, target, upstream, r.getStripPrefix(), forwardedHeaders,
                r.isPreserveHost(), maxBuffered, policy);
    }

    private static String servletMapping(String property, String path) {
        if (path == null || !path.startsWith("/") || path.contains("?") || path.contains("#") || path.contains("//")) {
            throw new InvalidConfigurationPropertyValueException(property, path,
                    "must be an exact path such as /status or a prefix ending in /** such as /api/inventory/**");
        }
        if (path.endsWith("/**")) {
            String base = path.substring(0, path.length() - 3);
            if (base.contains("*")) {
                throw new InvalidConfigurationPropertyValueException(property, path,
                        "may contain a wildcard only as its final /**");
            }
            return base + "/*";
        }
        if (path.contains("*") || path.length() < 2) {
            throw new InvalidConfigurationPropertyValueException(property, path,
                    "must be an exact path such as /status or a prefix ending in /** such as /api/inventory/**");
        }
        // As written: an exact mapping matches only that path, so '/c/' without its slash would serve '/c' alone.
        return path;
    }

    /**
     * Rejects a path the container could never match, or that cannot go into the route's target URI: containers match
     * mappings against the decoded path with dot segments resolved and {@code ;parameters} removed, so a mapping holding
     * {@code %2F}, {@code ;v=1} or {@code ..} would serve no request.
     */
    private static void checkSegments(String property, String path, String fixed) {
        for (String segment : fixed.split("/")) {
            if (segment.equals(".") || segment.equals("..") || !SEGMENT.matcher(segment).matches()) {
                throw new InvalidConfigurationPropertyValueException(property, path, "segment '" + segment
                        + "' cannot be matched: a path may hold letters, digits and - . _ ~ ! $ & ' ( ) + , = : @,"
                        + " without percent-encoding, ';' or '.' and '..' segments");
            }
        }
    }

    /**
     * Which of two names for one setting is used ({@code name} when neither): each is accepted, since an upstream's
     * base is its {@code url} and a route's its {@code uri}, and one spelling for the other is an easy slip.
     */
    private static String oneOf(String prefix, String name, String value, String alias, String aliasValue) {
        if (aliasValue == null) {
            return name;
        }
        if (value != null) {
            throw new InvalidConfigurationPropertyValueException(prefix + "." + alias, aliasValue,
                    "'" + prefix + "." + name + "' is set too; they are one setting, set only one");
        }
        return alias;
    }

    private static URI httpUri(String property, String value) {
        if (value == null || value.isBlank()) {
            throw new InvalidConfigurationPropertyValueException(property, value,
                    "an absolute http:// or https:// URI is required");
        }
        try {
            URI uri = new URI(value.trim());
            String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
            if (!(scheme.equals("http") || scheme.equals("https")) || hostOf(uri) == null
                    || uri.getRawQuery() != null || uri.getRawFragment() != null
                    || uri.getRawAuthority().indexOf('@') >= 0) {
                throw new InvalidConfigurationPropertyValueException(property, value,
                        "must be an absolute http:// or https:// URI with a host and no user info, query or fragment");
            }
            int port = portOf(uri);
            if (port == 0 || port > 65535) {
                throw new InvalidConfigurationPropertyValueException(property, value,
                        "has port " + port + "; a port is between 1 and 65535");
            }
            try {
                // The proxy servlet's own rules for a base URI (a plain path: no dot segments, no encoded '/'),
                // checked now rather than when a route's servlet is built.
                UpstreamTarget.parse(value);
            } catch (IllegalArgumentException e) {
                throw new InvalidConfigurationPropertyValueException(property, value, e.getMessage());
            }
            return uri;
        } catch (URISyntaxException e) {
            throw new InvalidConfigurationPropertyValueException(property, value, "is not a URI: " + e.getReason());
        }
    }

    /** The name this gateway gives itself in Proxy-Status. */
    public String proxyName() {
        return proxyName;
    }

    /** Whether generated responses may reveal next-hop and details. */
    public boolean exposeDetails() {
        return exposeDetails;
    }

    /** The policy of every upstream not configured by name. */
    public GuardPolicy defaults() {
        return defaults;
    }

    /** Named upstreams, in configuration order. */
    public Map<String, NamedUpstream> upstreams() {
        return upstreams;
    }

    /** Proxy routes, in configuration order. */
    public List<Route> routes() {
        return routes;
    }

    /**
     * The configured policy of a named upstream, or of the upstream of a route to a uri ({@link #routeUpstreams}).
     *
     * @throws IllegalArgumentException when no upstream has that name
     */
    public GuardPolicy policy(String upstream) {
        NamedUpstream named = upstreams.containsKey(upstream) ? upstreams.get(upstream) : routeUpstreams.get(upstream);
        if (named == null) {
            throw new IllegalArgumentException("No upstream named '" + upstream + "' is configured under '" + PREFIX
                    + ".upstreams' (known: " + upstreams.keySet() + ")");
        }
        return named.policy();
    }

    /** The named upstream a URI belongs to (same scheme, host and port), if any. */
    public Optional<NamedUpstream> upstreamFor(URI uri) {
        if (uri == null || hostOf(uri) == null) {
            return Optional.empty();
        }
        String origin = origin(uri);
        return upstreams.values().stream().filter(u -> origin(u.url()).equals(origin)).findFirst();
    }

    /**
     * The upstreams of routes that forward to a plain {@code uri}, each named after its route (or by its origin,
     * {@code http://host:port}, when an upstream of another address has the route's name) unless a named upstream has
     * the same origin and the route sets no policy of its own: the guarded client must know them by name. Each has
     * its origin as url and the route's policy.
     */
    public Map<String, NamedUpstream> routeUpstreams() {
        return routeUpstreams;
    }

    /**
     * The upstream a call to {@code uri} that names none runs as, as the guarded client picks it: the first named
     * upstream of its scheme, host and port, else the first route upstream of them ({@link #routeUpstreams}); empty
     * when the call runs as an unnamed upstream with the defaults.
     */
    public Optional<NamedUpstream> calledAs(URI uri) {
        Optional<NamedUpstream> named = upstreamFor(uri);
        if (named.isPresent() || uri == null || hostOf(uri) == null) {
            return named;
        }
        String origin = origin(uri);
        return routeUpstreams.values().stream().filter(u -> origin(u.url()).equals(origin)).findFirst();
    }

    /** The policy a call to {@code uri} runs under, before any {@code @UpstreamPolicy} override. */
    public GuardPolicy policyFor(URI uri) {
        return calledAs(uri).map(NamedUpstream::policy).orElse(defaults);
    }

    private static String origin(URI uri) {
        String scheme = uri.getScheme() == null ? "http" : uri.getScheme().toLowerCase(Locale.ROOT);
        int port = portOf(uri) > 0 ? portOf(uri) : ("https".equals(scheme) ? 443 : 80);
        return scheme + "://" + hostOf(uri).toLowerCase(Locale.ROOT) + ":" + port;
    }

    /**
     * The host as HttpClient reads it: {@code java.net.URI} sees none in names HttpClient calls, such as Docker
     * Compose services with an underscore ({@code order_service}). {@code null} when there is none.
     */
    private static String hostOf(URI uri) {
        UriAuthorities.HostPort authority = UriAuthorities.of(uri);
        return authority == null ? null : authority.host();
    }

    /** The port as HttpClient reads it, -1 when none is given. */
    private static int portOf(URI uri) {
        UriAuthorities.HostPort authority = UriAuthorities.of(uri);
        return authority == null ? -1 : authority.port();
    }

    /**
     * A named upstream.
     *
     * @param name its name, used in metrics, Proxy-Status and {@code @UpstreamPolicy}
     * @param url its base URL
     * @param policy its resolved policy: its own settings over {@code defaults} over the library defaults
     */
    public record NamedUpstream(String name, URI url, GuardPolicy policy) {
    }

    /**
     * A proxy route.
     *
     * @param name the route's key under {@code upstream-guard.routes}
     * @param path the configured path pattern
     * @param servletMapping the servlet URL pattern serving it ({@code /api/inventory/*} for {@code /api/inventory/**})
     * @param target the base URI requests are forwarded to, followed by what comes after the servlet mapping (the
     *     fixed path segments not stripped are part of it)
     * @param upstream the upstream the guarded client calls it as: the named upstream, or for a route to a plain URI
     *     the named upstream with the same origin, else the route's own name
     * @param stripPrefix leading path segments removed before forwarding
     * @param forwardedHeaders which forwarding headers the route adds: {@code both}, {@code forwarded} or
     *     {@code x-forwarded}
     * @param preserveHost whether the client's {@code Host} is sent upstream
     * @param maxBufferedRequestBody request bodies up to this many bytes are buffered (and so can be retried);
     *     {@code null} for the proxy servlet's default
     * @param policy the policy of the route's upstream: the named upstream's, or for a route to a plain URI its own
     *     settings over {@code defaults}
     */
    public record Route(String name, String path, String servletMapping, URI target, String upstream,
            int stripPrefix, String forwardedHeaders, boolean preserveHost, Long maxBufferedRequestBody,
            GuardPolicy policy) {
    }
}
