package dev.upstreamguard.gateway.internal;

import static dev.upstreamguard.gateway.internal.ContainerReflection.field;
import static dev.upstreamguard.gateway.internal.ContainerReflection.invoke;
import static dev.upstreamguard.gateway.internal.ContainerReflection.publicMethod;

import jakarta.servlet.DispatcherType;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import java.lang.reflect.Method;

/**
 * Puts a relayed {@code Content-Type} on the wire as the upstream wrote it. Both containers rewrite the value given
 * to {@code setContentType} (the only way the servlet API sets it): Tomcat rebuilds a type with a charset (spaces
 * dropped, the charset moved last and unquoted), Jetty writes the types it knows in its own spelling
 * ({@code Text/HTML} as {@code text/html}). The type is set through the API first, so that filters and the
 * container's own state see it, and then, where the container rewrote it, its field is replaced in the container's
 * own response through its types by reflection, as {@link ContainerLimits} reads limits; another container, or a
 * version whose types differ, keeps its rewritten (equivalent) value. In Tomcat the charset then lives in the type
 * alone, so {@code getCharacterEncoding()} reports the default: the proxy writes the upstream's bytes, never through a
 * writer.
 */
public final class VerbatimContentType {

    private static final Class<?>[] STRING_STRING = {String.class, String.class};

    private VerbatimContentType() {
    }

    /**
     * Sets {@code value} on {@code response}, verbatim where the container allows it and nobody else has a say: not in
     * an include (the including page's type stands, as the container keeps it), and not through a response wrapper
     * other than the fault filter's (a filter's wrapper may type the response its own way). Never throws for that part.
     */
    public static void set(ServletRequest request, ServletResponse response, String value) {
        response.setContentType(value);
        if (!hasCharset(value)) {
            // Jetty infers one for text/html (utf-8), text/plain (iso-8859-1)…; a label the origin did not give
            // overrides the page's own <meta charset> in browsers. Before the field is restored: Jetty rewrites it here.
            response.setCharacterEncoding((String) null);
        }
        if (value.equals(response.getContentType()) || request.getDispatcherType() == DispatcherType.INCLUDE) {
            return;
        }
        ServletResponse own = response;
        while (own instanceof FaultGuardedResponse) {
            own = ((FaultGuardedResponse) own).getResponse();
        }
        String type = own.getClass().getName();
        try {
            if (type.startsWith("org.apache.catalina.")) {
                tomcat(own, value);
            } else if (type.startsWith("org.eclipse.jetty.")) {
                jetty(own, value);
            }
        } catch (ReflectiveOperationException | RuntimeException | LinkageError notThisVersion) {
            // The container's rewritten value stands: the same type and parameters, spelt its way.
        }
    }

    /** Whether a media type has a {@code charset} parameter; most have no parameter at all. */
    private static boolean hasCharset(String contentType) {
        int semicolon = contentType.indexOf(';');
        if (semicolon < 0) {
            return false;
        }
        for (int i = semicolon + 1; i + 7 <= contentType.length(); i++) {
            if (contentType.regionMatches(true, i, "charset", 0, 7)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Tomcat writes its coyote response's type plus {@code ;charset=} and the charset it split off: the whole value as
     * the type without a charset, and no charset of its own.
     */
    private static void tomcat(ServletResponse facade, String value) throws ReflectiveOperationException {
        Object coyote = invoke(field(facade, "response"), "getCoyoteResponse");
        Method setType = publicMethod(coyote.getClass(), "setContentTypeNoCharset", String.class);
        Method setCharset = publicMethod(coyote.getClass(), "setCharacterEncoding", String.class);
        if (setType == null || setCharset == null) {
            return; // both or neither: the type alone would be written with the charset a second time
        }
        setType.invoke(coyote, value);
        setCharset.invoke(coyote, (Object) null);
    }

    /**
     * Jetty's servlet response keeps its fields in a wrapper that rewrites a {@code Content-Type} put there; the core
     * response under it writes what it holds.
     */
    private static void jetty(ServletResponse apiResponse, String value) throws ReflectiveOperationException {
        Object servletResponse = invoke(apiResponse, "getResponse");
        Object core = invoke(servletResponse, "getWrapped");
        Object fields = invoke(core, "getHeaders");
        invoke(fields, "put", STRING_STRING, "Content-Type", value);
    }
}
