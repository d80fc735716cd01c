package dev.upstreamguard.spring;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.gateway.internal.FaultGuardedRequest;
import dev.upstreamguard.gateway.internal.FaultResponseWriter;
import dev.upstreamguard.gateway.internal.ProblemFormat;
import dev.upstreamguard.spring.internal.CapturedFaultResponse;
import dev.upstreamguard.spring.internal.FaultAdviceDeferral;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.lang.reflect.Method;
import org.springframework.context.ApplicationContext;
import org.springframework.context.ApplicationContextAware;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.AnnotatedElementUtils;
import org.springframework.core.annotation.OrderUtils;
import org.springframework.http.MediaType;
import org.springframework.http.ProblemDetail;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ControllerAdvice;
import org.springframework.util.ClassUtils;
import org.springframework.util.ReflectionUtils;
import org.springframework.web.ErrorResponse;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.ResponseStatus;
import org.springframework.web.client.ResourceAccessException;

/**
 * Spring MVC's answer to an {@link UpstreamException} thrown by a controller, directly or as the cause of another
 * exception (Spring's {@code ResourceAccessException} from a guarded {@code RestClient} or {@code RestTemplate}): the
 * same status, {@code Proxy-Status}, {@code Retry-After} and {@code Cache-Control} as the gateway filter, with the body
 * rendered as a {@link ProblemDetail} through the application's message converters for clients asking for JSON, and
 * the filter's HTML page or plain text for browsers and everything else. Logged once at WARN and counted in
 * {@code upstream.guard.responses}, like the filter. A fault inside an exception of the application's that states its
 * own status ({@link ErrorResponse}, {@link ResponseStatus}) is left to Spring's resolvers, as the application's answer.
 *
 * <p>Ordered after advice the application orders explicitly, before unordered advice, so an application's own
 * catch-all {@code @ExceptionHandler(Exception.class)} does not swallow upstream faults. Advice of the application
 * with an {@code @ExceptionHandler} for {@link UpstreamException} itself (or a subtype) or for Spring's
 * {@link ResourceAccessException} (what a guarded {@code RestClient} or {@code RestTemplate} throws), or for
 * {@code RestClientException} (what they throw for any failure) always wins,
 * ordered or not, for the controllers it advises: the application's own answer to upstream faults. For advice of every
 * controller this handler sorts behind it; for advice of some controllers it keeps its place and defers to it for
 * those controllers only.
 */
@ControllerAdvice
public class UpstreamExceptionHandler implements Ordered, ApplicationContextAware {

    /** Before unordered advice: after the application's explicit orders, ahead of its catch-alls. */
    private static final int DEFAULT_ORDER = Ordered.LOWEST_PRECEDENCE - 1000;

    private final FaultResponseWriter writer;
    private ApplicationContext context;
    private volatile Integer order;

    /** A handler rendering with {@code writer}, the one the filter uses. */
    public UpstreamExceptionHandler(FaultResponseWriter writer) {
        this.writer = writer;
    }

    @Override
    public void setApplicationContext(ApplicationContext context) {
        this.context = context;
    }

    /**
     * {@value #DEFAULT_ORDER}, or just after the application's last advice for every controller that handles
     * {@link UpstreamException} itself or {@link ResourceAccessException}. Spring asks once, when it sorts the advice
     * beans.
     */
    @Override
    public int getOrder() {
        Integer resolved = order;
        if (resolved == null) {
            int after = DEFAULT_ORDER;
            if (context != null) {
                // Not ControllerAdviceBean.findAnnotatedBeans: it sorts the advice, which would ask this bean again.
                for (String name : context.getBeanNamesForAnnotation(ControllerAdvice.class)) {
                    Class<?> type = ClassUtils.getUserClass(context.getType(name, false));
                    if (type != null && !UpstreamExceptionHandler.class.isAssignableFrom(type)
                            && handlesUpstreamFaults(type)) {
                        int theirs = Ordered.class.isAssignableFrom(type) ? ((Ordered) context.getBean(name)).getOrder()
                                : OrderUtils.getOrder(type, Ordered.LOWEST_PRECEDENCE);
                        after = Math.max(after, theirs == Ordered.LOWEST_PRECEDENCE ? theirs : theirs + 1);
                    }
                }
            }
            order = resolved = after;
        }
        return resolved;
    }

    /**
     * Whether {@code adviceType} advises every controller and declares an {@code @ExceptionHandler} for
     * {@link UpstreamException} or Spring's {@link ResourceAccessException} (a subtype of either included). Advice for
     * some controllers only does not move this one: behind it, an unordered catch-all of the application's would tie
     * with this handler for all the other controllers. For the controllers it advises, {@link FaultAdviceDeferral}
     * answers with it instead.
     */
    private static boolean handlesUpstreamFaults(Class<?> adviceType) {
        if (!appliesToEveryController(adviceType)) {
            return false;
        }
        boolean handles = false;
        for (Method method : ReflectionUtils.getUniqueDeclaredMethods(adviceType)) {
            if (catchesAll(method)) {
                // Behind it, its catch-all would take a fault thrown unwrapped (the guarded client used directly): this
                // handler keeps its place, and FaultAdviceDeferral answers with the advice's own fault handlers.
                return false;
            }
            handles |= FaultAdviceDeferral.handlesUpstreamFaults(method);
        }
        return handles;
    }

    /** Whether {@code method} is an {@code @ExceptionHandler} for a supertype of {@link UpstreamException}. */
    private static boolean catchesAll(Method method) {
        for (Class<?> type : FaultAdviceDeferral.handledTypes(method)) {
            if (type != UpstreamException.class && type.isAssignableFrom(UpstreamException.class)) {
                return true;
            }
        }
        return false;
    }

    private static boolean appliesToEveryController(Class<?> adviceType) {
        ControllerAdvice advice = AnnotatedElementUtils.findMergedAnnotation(adviceType, ControllerAdvice.class);
        return advice != null && advice.basePackages().length == 0 && advice.basePackageClasses().length == 0
                && advice.assignableTypes().length == 0 && advice.annotations().length == 0;
    }

    /**
     * Answers the fault, unless the controller caught it and threw an exception of its own that states the status to
     * answer with (a {@code ResponseStatusException} or other {@link ErrorResponse}, or a class annotated
     * {@link ResponseStatus}) wrapping it: that is the application's answer, which Spring's own resolvers give. Spring
     * hands the method the exception thrown as {@code thrown} and the first {@link UpstreamException} of its cause
     * chain as {@code fault}.
     */
    @ExceptionHandler(UpstreamException.class)
    public ResponseEntity<ProblemDetail> handle(UpstreamException fault, Throwable thrown, HttpServletRequest request,
            HttpServletResponse response) throws Exception {
        if (thrown instanceof Exception own && statesItsOwnStatus(own, fault)) {
            // Thrown from here, Spring goes on with the original exception to its next resolvers, which answer it.
            throw own;
        }
        return handle(fault, request, response);
    }

    /**
     * Whether an exception between {@code thrown} and the {@code fault} it wraps says with what status to answer, as
     * Spring's {@code ResponseStatusExceptionResolver} and {@code DefaultHandlerExceptionResolver} read it (without
     * {@code spring.mvc.problemdetails.enabled}, which answers an {@link ErrorResponse} before this advice).
     */
    private static boolean statesItsOwnStatus(Throwable thrown, UpstreamException fault) {
        for (Throwable t = thrown; t != null && t != fault; t = t.getCause() == t ? null : t.getCause()) {
            if (t instanceof ErrorResponse
                    || AnnotatedElementUtils.findMergedAnnotation(t.getClass(), ResponseStatus.class) != null) {
                return true;
            }
        }
        return false;
    }

    /** Answers the fault; {@code null} when the body was written directly (HTML, plain text). */
    public ResponseEntity<ProblemDetail> handle(UpstreamException fault, HttpServletRequest request,
            HttpServletResponse response) throws IOException {
        IOException inbound = FaultGuardedRequest.inboundFailure(request, fault);
        if (inbound != null) {
            // The client broke its own request body, which the controller was streaming upstream: the container's to
            // answer (400, 408), as the fault filter leaves it, not a gateway fault naming the upstream. Thrown from
            // here, Spring goes on with the original exception, which reaches the filter and then the container.
            throw inbound;
        }
        if (ProblemFormat.negotiate(FaultResponseWriter.accept(request)) != ProblemFormat.JSON) {
            if (writer.write(request, response, fault, null) == FaultResponseWriter.Answer.THROW_TO_ABORT) {
                throw FaultResponseWriter.abortion(response, fault);
            }
            return null;
        }
        CapturedFaultResponse captured = CapturedFaultResponse.capture(writer, request, response, fault);
        if (captured == null) {
            throw FaultResponseWriter.abortion(response, fault);
        }
        if (captured.problem() == null) {
            // HEAD: no body, but the headers a GET would get (RFC 9110 §9.3.2), as the filter and the routes send them.
            return ResponseEntity.status(captured.status()).headers(captured.headers())
                    .contentType(MediaType.APPLICATION_PROBLEM_JSON).build();
        }
        return ResponseEntity.status(captured.status()).headers(captured.headers()).body(captured.problem());
    }
}
