package dev.upstreamguard.spring.internal;

import dev.upstreamguard.gateway.UpstreamProxyServlet;
import jakarta.servlet.ServletRegistration;
import jakarta.servlet.http.HttpServletMapping;
import jakarta.servlet.http.HttpServletRequest;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.springframework.boot.servlet.filter.OrderedFormContentFilter;
import org.springframework.util.ClassUtils;

/**
 * Spring Boot's {@code FormContentFilter} (which parses the form body of a PUT, PATCH or DELETE for Spring MVC), except
 * for requests a proxy route serves: it would read their body, and the route would then forward an empty one. A proxy
 * passes bodies through unread.
 */
public final class RouteSkippingFormContentFilter extends OrderedFormContentFilter {

    private final Map<String, Boolean> proxyServlets = new ConcurrentHashMap<>();

    @Override
    protected boolean shouldNotFilter(HttpServletRequest request) {
        HttpServletMapping mapping = request.getHttpServletMapping();
        String servlet = mapping == null ? null : mapping.getServletName();
        return servlet != null && proxyServlets.computeIfAbsent(servlet, name -> isProxy(request, name));
    }

    private static boolean isProxy(HttpServletRequest request, String servletName) {
        ServletRegistration registration = request.getServletContext().getServletRegistration(servletName);
        if (registration == null || registration.getClassName() == null) {
            return false;
        }
        try {
            return UpstreamProxyServlet.class.isAssignableFrom(
                    ClassUtils.forName(registration.getClassName(), request.getServletContext().getClassLoader()));
        } catch (ClassNotFoundException | LinkageError e) {
            return false;
        }
    }
}
