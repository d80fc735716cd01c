package dev.upstreamguard.spring.internal;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.spring.UpstreamExceptionHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.springframework.aop.support.AopUtils;
import org.springframework.core.annotation.AnnotatedElementUtils;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.client.ResourceAccessException;
import org.springframework.web.context.request.ServletWebRequest;
import org.springframework.web.method.ControllerAdviceBean;
import org.springframework.web.method.HandlerMethod;
import org.springframework.web.method.annotation.ExceptionHandlerMethodResolver;
import org.springframework.web.servlet.HandlerExceptionResolver;
import org.springframework.web.servlet.mvc.method.annotation.ExceptionHandlerExceptionResolver;
import org.springframework.web.servlet.mvc.method.annotation.ServletInvocableHandlerMethod;

/**
 * Spring's {@code @ExceptionHandler} resolution, run just before Spring's own, for the one case the advice order cannot
 * express: an upstream fault of a controller that advice of the application covering only some controllers answers
 * itself, while {@link UpstreamExceptionHandler} sorts before it. Spring picks the first applicable advice with a
 * matching handler, and one order for the library's advice cannot be both behind such scoped advice and ahead of an
 * unordered catch-all for the other controllers (it would tie with the catch-all). So the library's advice keeps its
 * place and, for exactly those controllers, this resolver answers with the first such advice behind it (over a
 * catch-all between them, as if the library's advice sorted just before the catch-all); for everything else it
 * resolves nothing and Spring's resolver goes on as usual.
 */
public final class FaultAdviceDeferral extends ExceptionHandlerExceptionResolver {

    private final Map<Class<?>, ExceptionHandlerMethodResolver> controllers = new ConcurrentHashMap<>();

    private FaultAdviceDeferral() {
    }

    /**
     * Puts a deferral just before Spring's {@link ExceptionHandlerExceptionResolver} in {@code resolvers} (what
     * {@code WebMvcConfigurer.extendHandlerExceptionResolvers} is given), configured as that one is.
     */
    public static void insertBeforeSpringsResolver(List<HandlerExceptionResolver> resolvers) {
        for (int i = 0; i < resolvers.size(); i++) {
            if (resolvers.get(i) instanceof ExceptionHandlerExceptionResolver spring) {
                FaultAdviceDeferral deferral = new FaultAdviceDeferral();
                // The handlers Spring built already hold the application's converters and body advice.
                deferral.setArgumentResolvers(spring.getArgumentResolvers().getResolvers());
                deferral.setReturnValueHandlers(spring.getReturnValueHandlers().getHandlers());
                deferral.setMessageConverters(spring.getMessageConverters());
                deferral.setContentNegotiationManager(spring.getContentNegotiationManager());
                deferral.setErrorResponseInterceptors(spring.getErrorResponseInterceptors());
                deferral.setApplicationContext(spring.getApplicationContext());
                deferral.afterPropertiesSet();
                resolvers.add(i, deferral);
                return;
            }
        }
    }

    @Override
    protected ServletInvocableHandlerMethod getExceptionHandlerMethod(HandlerMethod handlerMethod, Exception exception,
            ServletWebRequest webRequest) {
        if (handlerMethod == null || !isUpstreamFault(exception)) {
            return null;
        }
        Class<?> controller = handlerMethod.getBeanType();
        if (Proxy.isProxyClass(controller)) {
            // As Spring's own resolver does: advice names the class behind a JDK proxy, not the proxy's (the
            // controller's own handlers it looks up on the proxy's class, as Spring does, below).
            controller = AopUtils.getTargetClass(handlerMethod.getBean());
        }
        // The controller's own @ExceptionHandler comes before any advice: Spring's resolver finds it.
        if (controllers.computeIfAbsent(handlerMethod.getBeanType(), ExceptionHandlerMethodResolver::new)
                .resolveMethodByThrowable(exception) != null) {
            return null;
        }
        // Behind the library's advice, the first advice for this controller with its own answer to upstream faults
        // wins over it, as it would if the library's advice had sorted behind it: before a catch-all between them.
        boolean afterLibrary = false;
        for (Map.Entry<ControllerAdviceBean, ExceptionHandlerMethodResolver> entry
                : getExceptionHandlerAdviceCache().entrySet()) {
            ControllerAdviceBean advice = entry.getKey();
            Class<?> adviceType = advice.getBeanType();
            if (adviceType != null && UpstreamExceptionHandler.class.isAssignableFrom(adviceType)) {
                afterLibrary = true;
                continue;
            }
            if (!advice.isApplicableToBeanType(controller)) {
                continue;
            }
            if (!afterLibrary) {
                // Ahead of the library's advice: Spring's resolver picks it, whatever it handles.
                if (entry.getValue().resolveMethodByThrowable(exception) != null) {
                    return null;
                }
                continue;
            }
            Method method = faultHandler(entry.getValue(), exception);
            if (method != null) {
                return new ServletInvocableHandlerMethod(advice.resolveBean(), method, getApplicationContext());
            }
        }
        return null;
    }

    /**
     * The advice's handler for the fault or an exception wrapping it, when that handler is the application's answer to
     * upstream faults; {@code null} for a catch-all, which the library's advice comes before. By exception type along
     * the cause chain, so that an advice's {@code @ExceptionHandler(UpstreamException.class)} is found beside its
     * catch-all for the {@code ResourceAccessException} wrapping the fault (Spring hands every cause to the method).
     */
    private static Method faultHandler(ExceptionHandlerMethodResolver resolver, Throwable exception) {
        for (Throwable t = exception; t != null; t = t.getCause() == t ? null : t.getCause()) {
            Method method = resolver.resolveMethodByExceptionType(t.getClass());
            if (method != null && handlesUpstreamFaults(method)) {
                return method;
            }
        }
        return null;
    }

    private static boolean isUpstreamFault(Throwable exception) {
        for (Throwable t = exception; t != null; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof UpstreamException) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether {@code method} is an {@code @ExceptionHandler} for {@link UpstreamException} or Spring's
     * {@link ResourceAccessException} (what a guarded {@code RestClient} or {@code RestTemplate} throws), a subtype of
     * either included.
     */
    public static boolean handlesUpstreamFaults(Method method) {
        for (Class<?> type : handledTypes(method)) {
            if (UpstreamException.class.isAssignableFrom(type) || ResourceAccessException.class.isAssignableFrom(type)) {
                return true;
            }
        }
        return false;
    }

    /** The exception types {@code method} is an {@code @ExceptionHandler} for; none when it is not one. */
    public static Class<?>[] handledTypes(Method method) {
        ExceptionHandler handler = AnnotatedElementUtils.findMergedAnnotation(method, ExceptionHandler.class);
        if (handler == null) {
            return new Class<?>[0];
        }
        // Without a value, Spring maps the method's Throwable parameters.
        return handler.value().length > 0 ? handler.value() : method.getParameterTypes();
    }
}
