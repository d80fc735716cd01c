package dev.upstreamguard.spring.internal;

import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.lang.reflect.Method;
import org.springframework.aop.framework.AopProxyUtils;
import org.springframework.aop.support.AopUtils;
import org.springframework.web.method.HandlerMethod;
import org.springframework.web.servlet.AsyncHandlerInterceptor;

/**
 * Puts the {@code @UpstreamPolicy} of the controller method (over its class) handling a request in force on the
 * request thread until the handler completes.
 */
public final class InboundPolicyInterceptor implements AsyncHandlerInterceptor {

    /**
     * The request attribute holding the {@link PolicyOverride} of the handler, for the {@link CallablePolicyInterceptor}
     * to put in force on the thread that runs an async handler's {@code Callable}.
     */
    public static final String ATTRIBUTE = InboundPolicyInterceptor.class.getName() + ".policy";

    private final UpstreamPolicyResolver resolver;

    /** An interceptor resolving declarations with {@code resolver}. */
    public InboundPolicyInterceptor(UpstreamPolicyResolver resolver) {
        this.resolver = resolver;
    }

    @Override
    public boolean preHandle(HttpServletRequest request, HttpServletResponse response, Object handler) {
        if (handler instanceof HandlerMethod) {
            HandlerMethod method = (HandlerMethod) handler;
            Class<?> type = method.getBeanType();
            Method handling = method.getMethod();
            if (AopUtils.isJdkDynamicProxy(method.getBean())) {
                // Spring MVC maps a JDK-proxied controller by its proxy class and the interface's methods, which
                // declare nothing: the declaration is on the class behind the proxy and its implementing method.
                type = AopProxyUtils.ultimateTargetClass(method.getBean());
                handling = AopUtils.getMostSpecificMethod(handling, type);
            }
            PolicyOverride override = resolver.forHandler(handling, type);
            if (override != null) {
                request.setAttribute(ATTRIBUTE, override);
                CallScope.enterInbound(override);
            } else {
                CallScope.exitInbound();
            }
        }
        return true;
    }

    @Override
    public void afterCompletion(HttpServletRequest request, HttpServletResponse response, Object handler,
            Exception ex) {
        CallScope.exitInbound();
    }

    @Override
    public void afterConcurrentHandlingStarted(HttpServletRequest request, HttpServletResponse response,
            Object handler) {
        // The handler goes on on another thread, where this thread's override does not follow (a Callable's thread
        // gets it from the CallablePolicyInterceptor).
        CallScope.exitInbound();
    }
}
