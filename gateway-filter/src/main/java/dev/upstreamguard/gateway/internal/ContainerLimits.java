package dev.upstreamguard.gateway.internal;

import static dev.upstreamguard.gateway.internal.ContainerReflection.field;
import static dev.upstreamguard.gateway.internal.ContainerReflection.invoke;
import static dev.upstreamguard.gateway.internal.ContainerReflection.publicMethod;

import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletRequestWrapper;

/**
 * The largest response head the servlet container can write, where it can be found out: Tomcat's connector
 * {@code maxHttpResponseHeaderSize} (default 8 KiB) and Jetty's {@code HttpConfiguration} response header size (Jetty
 * 12.1: grows to {@code maxResponseHeaderSize}, default 16 KiB; over HTTP/2 the same bounds the header list, RFC 9113
 * §6.5.2).
 *
 * <p>A container that cannot write a head fails the response after the servlet has set it — at the commit, which may
 * come after the servlet returned — and answers 500 itself, when the response is already "committed" as far as the
 * servlet API can tell, so no {@code Proxy-Status} can be given any more. A proxy that knows the limit can answer such
 * an upstream response as {@code http_response_header_section_size} instead, as nginx does ("upstream sent too big
 * header"). Reached through each container's own types by reflection, since the servlet API has no such setting; any
 * other container, or a version whose types differ, gives "unknown" and the head is passed on as before.
 */
public final class ContainerLimits {

    /** The limit is not known. */
    public static final int UNKNOWN = -1;

    private ContainerLimits() {
    }

    /** The container's response head limit in bytes, or {@link #UNKNOWN}. Never throws. */
    public static int responseHeadLimit(ServletRequest request) {
        ServletRequest unwrapped = unwrap(request);
        String type = unwrapped.getClass().getName();
        try {
            if (type.startsWith("org.apache.catalina.")) {
                return tomcat(unwrapped);
            }
            if (type.startsWith("org.eclipse.jetty.")) {
                return jetty(unwrapped);
            }
        } catch (ReflectiveOperationException | RuntimeException | LinkageError notThisVersion) {
            // Unknown then: the head is passed on unchecked, as it was before the limit could be looked up.
        }
        return UNKNOWN;
    }

    /**
     * Whether {@link #responseHeadLimit} holds for {@code request}'s connection. Tomcat's is its HTTP/1.1 limit
     * ({@code maxHttpResponseHeaderSize}); over HTTP/2 it writes a head of any size, in CONTINUATION frames, so a
     * valid large head must not be refused there.
     */
    public static boolean headLimitApplies(ServletRequest request) {
        return !(containerClass(request).startsWith("org.apache.catalina.")
                && HopByHop.framesBodiesByStream(request.getProtocol()));
    }

    /**
     * Whether trailer fields set on {@code request}'s response after its commit still go out over HTTP/2. Tomcat asks
     * for them as it ends the stream; Jetty takes them from the response as it was committed, so a relay set once a
     * body larger than its buffer had been sent was dropped without a word.
     */
    public static boolean takesTrailersAfterTheCommit(ServletRequest request) {
        return !containerClass(request).startsWith("org.eclipse.jetty.");
    }

    private static String containerClass(ServletRequest request) {
        return unwrap(request).getClass().getName();
    }

    /** The container's own request under any wrappers of filters. */
    private static ServletRequest unwrap(ServletRequest request) {
        ServletRequest unwrapped = request;
        while (unwrapped instanceof ServletRequestWrapper) {
            unwrapped = ((ServletRequestWrapper) unwrapped).getRequest();
        }
        return unwrapped;
    }

    /**
     * The largest trailer section the container can write after a chunked body, or {@link #UNKNOWN}. Jetty writes it
     * into a buffer of its {@code responseHeaderSize} (8 KiB by default), which unlike the head's does not grow to
     * {@code maxResponseHeaderSize}, and fails the response, already sent up to its last chunk, when it does not fit.
     * Tomcat writes any. Never throws.
     */
    public static int responseTrailerLimit(ServletRequest request) {
        ServletRequest unwrapped = unwrap(request);
        if (!unwrapped.getClass().getName().startsWith("org.eclipse.jetty.")) {
            return UNKNOWN;
        }
        try {
            Object core = invoke(unwrapped, "getRequest");
            return positive(invoke(invoke(invoke(core, "getConnectionMetaData"), "getHttpConfiguration"),
                    "getResponseHeaderSize"));
        } catch (ReflectiveOperationException | RuntimeException | LinkageError notThisVersion) {
            return UNKNOWN;
        }
    }

    private static int tomcat(ServletRequest facade) throws ReflectiveOperationException {
        Object connector = invoke(field(facade, "request"), "getConnector");
        Object protocol = invoke(connector, "getProtocolHandler");
        return positive(invoke(protocol, "getMaxHttpResponseHeaderSize"));
    }

    private static int jetty(ServletRequest apiRequest) throws ReflectiveOperationException {
        Object core = invoke(apiRequest, "getRequest");
        Object configuration = invoke(invoke(core, "getConnectionMetaData"), "getHttpConfiguration");
        if (publicMethod(configuration.getClass(), "getMaxResponseHeaderSize") != null) {
            return positive(invoke(configuration, "getMaxResponseHeaderSize"));
        }
        return positive(invoke(configuration, "getResponseHeaderSize"));
    }

    private static int positive(Object size) {
        return size instanceof Integer && (Integer) size > 0 ? (Integer) size : UNKNOWN;
    }
}
