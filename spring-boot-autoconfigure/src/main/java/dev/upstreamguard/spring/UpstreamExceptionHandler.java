package dev.upstreamguard.spring;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.gateway.internal.FaultResponseWriter;
import dev.upstreamguard.gateway.internal.ProblemFormat;
import dev.upstreamguard.spring.internal.CapturedFaultResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.Order;
import org.springframework.http.MediaType;
import org.springframework.http.ProblemDetail;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.ControllerAdvice;
import org.springframework.web.bind.annotation.ExceptionHandler;

/**
 * Spring MVC's answer to an {@link UpstreamException} thrown by a controller, directly or as the cause of another
 * exception (Spring's {@code ResourceAccessException} from a guarded {@code RestClient} or {@code RestTemplate}): the
 * same status, {@code Proxy-Status}, {@code Retry-After} and {@code Cache-Control} as the gateway filter, with the body
 * rendered as a {@link ProblemDetail} through the application's message converters for clients asking for JSON, and
 * the filter's HTML page or plain text for browsers and everything else. Logged once at WARN and counted in
 * {@code upstream.guard.responses}, like the filter.
 *
 * <p>Ordered after advice the application orders explicitly, before unordered advice, so an application's own
 * catch-all {@code @ExceptionHandler(Exception.class)} does not swallow upstream faults.
 */
@ControllerAdvice
@Order(Ordered.LOWEST_PRECEDENCE - 1000)
public class UpstreamExceptionHandler {

    private final FaultResponseWriter writer;

    /** A handler rendering with {@code writer}, the one the filter uses. */
    public UpstreamExceptionHandler(FaultResponseWriter writer) {
        this.writer = writer;
    }

    /** Answers the fault; {@code null} when the body was written directly (HTML, plain text). */
    @ExceptionHandler(UpstreamException.class)
    public ResponseEntity<ProblemDetail> handle(UpstreamException fault, HttpServletRequest request,
            HttpServletResponse response) throws IOException {
        if (ProblemFormat.negotiate(request.getHeader("Accept")) != ProblemFormat.JSON) {
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
