package dev.upstreamguard.spring.internal;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.spring.UpstreamExceptionHandler;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.commons.logging.Log;
import org.apache.commons.logging.LogFactory;
import org.springframework.aop.support.AopUtils;
import org.springframework.core.annotation.AnnotatedElementUtils;
import org.springframework.http.MediaType;
import org.springframework.web.HttpMediaTypeNotAcceptableException;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.client.ResourceAccessException;
import org.springframework.web.client.RestClientException;
import org.springframework.web.context.request.RequestAttributes;
import org.springframework.web.context.request.ServletWebRequest;
import org.springframework.web.method.ControllerAdviceBean;
import org.springframework.web.method.HandlerMethod;
import org.springframework.web.method.annotation.ExceptionHandlerMappingInfo;
import org.springframework.web.method.annotation.ExceptionHandlerMethodResolver;
import org.springframework.web.method.support.ModelAndViewContainer;
import org.springframework.web.servlet.HandlerExceptionResolver;
import org.springframework.web.servlet.HandlerMapping;
import org.springframework.web.servlet.ModelAndView;
import org.springframework.web.servlet.View;
import org.springframework.web.servlet.mvc.method.annotation.ExceptionHandlerExceptionResolver;
import org.springframework.web.servlet.mvc.method.annotation.ServletInvocableHandlerMethod;
import org.springframework.web.servlet.mvc.support.RedirectAttributes;
import org.springframework.web.servlet.support.RequestContextUtils;
import org.springframework.web.util.DisconnectedClientHelper;

/**
 * Spring's {@code @ExceptionHandler} resolution, run just before Spring's own, for the one case the advice order cannot
 * express: an upstream fault of a controller that advice of the application covering only some controllers answers
 * itself, while {@link UpstreamExceptionHandler} sorts before it. Spring picks the first applicable advice with a
 * matching handler, and one order for the library's advice cannot be both behind such scoped advice and ahead of an
 * unordered catch-all for the other controllers (it would tie with the catch-all). So the library's advice keeps its
 * place and, for exactly those controllers, this resolver answers with the first such advice behind it (over a
 * catch-all between them, as if the library's advice sorted just before the catch-all); for everything else it
 * resolves nothing and Spring's resolver goes on as usual.
 *
 * <p>Not an {@link ExceptionHandlerExceptionResolver} itself, so that code looking for Spring's in the resolver list
 * finds Spring's: it reads that one's advice, content negotiation, argument resolvers and return value handlers as
 * each fault arrives, and so sees them as the application left them.
 */
public final class FaultAdviceDeferral implements HandlerExceptionResolver {

    private static final Log logger = LogFactory.getLog(FaultAdviceDeferral.class);

    private static final DisconnectedClientHelper DISCONNECTED_CLIENT =
            new DisconnectedClientHelper(FaultAdviceDeferral.class.getName() + ".DisconnectedClient");

    private final ExceptionHandlerExceptionResolver spring;
    private final Map<Class<?>, ExceptionHandlerMethodResolver> controllers = new ConcurrentHashMap<>();

    private FaultAdviceDeferral(ExceptionHandlerExceptionResolver spring) {
        this.spring = spring;
    }

    /**
     * Puts a deferral just before Spring's {@link ExceptionHandlerExceptionResolver} in {@code resolvers} (what
     * {@code WebMvcConfigurer.extendHandlerExceptionResolvers} is given): the first one that has been initialised, as
     * Spring's has by then. One added by hand and never initialised knows no advice: the deferral goes behind it.
     */
    public static void insertBeforeSpringsResolver(List<HandlerExceptionResolver> resolvers) {
        for (int i = 0; i < resolvers.size(); i++) {
            if (resolvers.get(i) instanceof ExceptionHandlerExceptionResolver spring
                    && spring.getArgumentResolvers() != null) {
                resolvers.add(i, new FaultAdviceDeferral(spring));
                return;
            }
        }
    }

    @Override
    public ModelAndView resolveException(HttpServletRequest request, HttpServletResponse response, Object handler,
            Exception exception) {
        if (!(handler instanceof HandlerMethod handlerMethod) || !isUpstreamFault(exception)) {
            return null;
        }
        ServletWebRequest webRequest = new ServletWebRequest(request, response);
        ServletInvocableHandlerMethod answer = deferredHandler(handlerMethod, exception, webRequest);
        return answer == null ? null : invoke(answer, handlerMethod, exception, webRequest);
    }

    /** The advice handler to answer with instead of the library's; {@code null} when Spring's resolver decides. */
    private ServletInvocableHandlerMethod deferredHandler(HandlerMethod handlerMethod, Exception exception,
            ServletWebRequest webRequest) {
        List<MediaType> accepted = acceptedMediaTypes(webRequest);
        Class<?> controller = handlerMethod.getBeanType();
        // The controller's own @ExceptionHandler comes before any advice: Spring's resolver finds it.
        if (mapping(controllers.computeIfAbsent(controller, ExceptionHandlerMethodResolver::new), exception,
                accepted) != null) {
            return null;
        }
        if (Proxy.isProxyClass(controller)) {
            // As Spring's own resolver does: advice names the class behind a JDK proxy, not the proxy's (the
            // controller's own handlers it looks up on the proxy's class, as Spring does, above).
            controller = AopUtils.getTargetClass(handlerMethod.getBean());
        }
        // Behind the library's advice, the first advice for this controller with its own answer to upstream faults
        // wins over it, as it would if the library's advice had sorted behind it: before a catch-all between them.
        boolean afterLibrary = false;
        for (Map.Entry<ControllerAdviceBean, ExceptionHandlerMethodResolver> entry
                : spring.getExceptionHandlerAdviceCache().entrySet()) {
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
                if (mapping(entry.getValue(), exception, accepted) != null) {
                    return null;
                }
                continue;
            }
            ExceptionHandlerMappingInfo handler = faultHandler(entry.getValue(), exception, accepted);
            if (handler != null) {
                if (!handler.getProducibleTypes().isEmpty()) {
                    // What Spring's resolver does for a handler declaring produces: its answer is written in those.
                    webRequest.setAttribute(HandlerMapping.PRODUCIBLE_MEDIA_TYPES_ATTRIBUTE,
                            handler.getProducibleTypes(), RequestAttributes.SCOPE_REQUEST);
                }
                return new ServletInvocableHandlerMethod(advice.resolveBean(), handler.getHandlerMethod(),
                        spring.getApplicationContext());
            }
        }
        return null;
    }

    /** The client's acceptable media types, as Spring's resolver reads them to pick a handler by its produces. */
    private List<MediaType> acceptedMediaTypes(ServletWebRequest webRequest) {
        try {
            return spring.getContentNegotiationManager().resolveMediaTypes(webRequest);
        } catch (HttpMediaTypeNotAcceptableException e) {
            return List.of(MediaType.ALL);
        }
    }

    /** Spring's own choice among {@code resolver}'s handlers: by media type first, then along the cause chain. */
    private static ExceptionHandlerMappingInfo mapping(ExceptionHandlerMethodResolver resolver, Throwable exception,
            List<MediaType> accepted) {
        for (MediaType mediaType : accepted) {
            ExceptionHandlerMappingInfo mapping = resolver.resolveExceptionMapping(exception, mediaType);
            if (mapping != null) {
                return mapping;
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
    private static ExceptionHandlerMappingInfo faultHandler(ExceptionHandlerMethodResolver resolver,
            Throwable exception, List<MediaType> accepted) {
        for (MediaType mediaType : accepted) {
            for (Throwable t = exception; t != null; t = t.getCause() == t ? null : t.getCause()) {
                ExceptionHandlerMappingInfo mapping = resolver.resolveExceptionMappingByExceptionType(t.getClass(),
                        mediaType);
                if (mapping != null && handlesUpstreamFaults(mapping.getHandlerMethod())) {
                    return mapping;
                }
            }
        }
        return null;
    }

    /** Runs {@code answer} as Spring's resolver runs the handler it picks, with that resolver's own machinery. */
    private ModelAndView invoke(ServletInvocableHandlerMethod answer, HandlerMethod handlerMethod, Exception exception,
            ServletWebRequest webRequest) {
        answer.setHandlerMethodArgumentResolvers(spring.getArgumentResolvers());
        answer.setHandlerMethodReturnValueHandlers(spring.getReturnValueHandlers());
        ModelAndViewContainer mavContainer = new ModelAndViewContainer();
        // Spring offers the exception, each of its causes and the handler method as arguments.
        List<Object> arguments = new ArrayList<>();
        for (Throwable t = exception; t != null; t = t.getCause() == t ? null : t.getCause()) {
            arguments.add(t);
        }
        int causes = arguments.size();
        arguments.add(handlerMethod);
        try {
            answer.invokeAndHandle(webRequest, mavContainer, arguments.toArray());
        } catch (Throwable failure) {
            webRequest.removeAttribute(HandlerMapping.PRODUCIBLE_MEDIA_TYPES_ATTRIBUTE, RequestAttributes.SCOPE_REQUEST);
            if (DISCONNECTED_CLIENT.checkAndLogClientDisconnectedException(failure)) {
                // As Spring's resolver: the exchange is over; no other handler answers the fault again.
                return new ModelAndView();
            }
            if (!arguments.subList(0, causes).contains(failure)) {
                logger.warn("Failure in @ExceptionHandler " + answer, failure);
            }
            // As Spring's resolver does: the original exception goes on to the next resolver.
            return null;
        }
        if (mavContainer.isRequestHandled()) {
            return new ModelAndView();
        }
        ModelAndView mav = new ModelAndView(mavContainer.getViewName(), mavContainer.getModel(),
                mavContainer.getStatus());
        if (!mavContainer.isViewReference()) {
            mav.setView((View) mavContainer.getView());
        }
        if (mavContainer.getModel() instanceof RedirectAttributes redirect) {
            RequestContextUtils.getOutputFlashMap(webRequest.getRequest()).putAll(redirect.getFlashAttributes());
        }
        return mav;
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
     * either included, or for {@link RestClientException}: what those clients throw for any failure, so a handler for it
     * is the application's answer to its calls failing, not a catch-all.
     */
    public static boolean handlesUpstreamFaults(Method method) {
        for (Class<?> type : handledTypes(method)) {
            if (UpstreamException.class.isAssignableFrom(type) || ResourceAccessException.class.isAssignableFrom(type)
                    || type == RestClientException.class) {
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
