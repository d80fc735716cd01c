package dev.upstreamguard.spring;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import java.io.IOException;
import org.junit.jupiter.api.Test;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;
import org.springframework.core.Ordered;
import org.springframework.core.annotation.Order;
import org.springframework.web.bind.annotation.ControllerAdvice;
import org.springframework.web.bind.annotation.ExceptionHandler;

/** Where the library's advice sorts among the application's: before its catch-alls, after its own fault handlers. */
class UpstreamExceptionHandlerOrderTest {

    @ControllerAdvice
    static class CatchAll {
        @ExceptionHandler(Exception.class)
        String any(Exception e) {
            return "any";
        }

        @ExceptionHandler
        String io(IOException e) {
            return "io";
        }
    }

    @ControllerAdvice
    @Order(5)
    static class OrderedFaultHandler {
        @ExceptionHandler(UpstreamException.class)
        String fault(UpstreamException e) {
            return "fault";
        }
    }

    @ControllerAdvice
    @Order(Ordered.LOWEST_PRECEDENCE - 10)
    static class LateFaultHandler {
        @ExceptionHandler(UpstreamException.class)
        String fault(UpstreamException e) {
            return "fault";
        }
    }

    @ControllerAdvice
    static class UnorderedFaultHandler {
        @ExceptionHandler
        String fault(UpstreamException e) {
            return "fault";
        }
    }

    /** What a guarded RestClient or RestTemplate throws, handled for every controller. */
    @ControllerAdvice
    static class ResourceAccessHandler {
        @ExceptionHandler(org.springframework.web.client.ResourceAccessException.class)
        String unreachable(Exception e) {
            return "unreachable";
        }
    }

    /** The same for one controller only. */
    @ControllerAdvice(assignableTypes = String.class)
    static class ScopedResourceAccessHandler {
        @ExceptionHandler(org.springframework.web.client.ResourceAccessException.class)
        String unreachable(Exception e) {
            return "unreachable";
        }
    }

    private static int orderAmong(Class<?>... advice) {
        try (AnnotationConfigApplicationContext context = new AnnotationConfigApplicationContext()) {
            context.register(advice);
            context.registerBean(UpstreamExceptionHandler.class, () -> new UpstreamExceptionHandler(null));
            context.refresh();
            return context.getBean(UpstreamExceptionHandler.class).getOrder();
        }
    }

    @Test
    void catchAllsOfTheApplicationComeAfterIt() {
        assertThat(orderAmong(CatchAll.class)).isEqualTo(Ordered.LOWEST_PRECEDENCE - 1000);
    }

    @Test
    void theApplicationsOwnUpstreamFaultHandlersComeBeforeItOrderedOrNot() {
        assertThat(orderAmong(CatchAll.class, OrderedFaultHandler.class)).isEqualTo(Ordered.LOWEST_PRECEDENCE - 1000);
        assertThat(orderAmong(LateFaultHandler.class)).isEqualTo(Ordered.LOWEST_PRECEDENCE - 9);
        assertThat(orderAmong(UnorderedFaultHandler.class, CatchAll.class)).isEqualTo(Ordered.LOWEST_PRECEDENCE);
    }

    /**
     * Advice for every controller handling what a guarded client throws is the application's answer; for some
     * controllers only, moving behind it would let an unordered catch-all tie with the library's handler for all the
     * others, so it does not move.
     */
    @Test
    void theApplicationsOwnResourceAccessHandlerForEveryControllerComesBeforeIt() {
        assertThat(orderAmong(ResourceAccessHandler.class, CatchAll.class)).isEqualTo(Ordered.LOWEST_PRECEDENCE);
        assertThat(orderAmong(ScopedResourceAccessHandler.class, CatchAll.class))
                .isEqualTo(Ordered.LOWEST_PRECEDENCE - 1000);
    }
}
