package dev.upstreamguard.spring.internal;

import java.lang.reflect.Method;
import org.springframework.core.MethodParameter;
import org.springframework.web.service.invoker.HttpRequestValues;

/**
 * Attaches the {@code @UpstreamPolicy} of an {@code @HttpExchange} method (over its interface) to each request it
 * makes, as the request attribute {@link #ATTRIBUTE}, which the guarded request factory's requests read as they are
 * executed ({@link GuardedRequest}).
 */
public final class ExchangePolicyProcessor implements HttpRequestValues.Processor {

    /** The request attribute holding the {@link PolicyOverride} of the {@code @HttpExchange} method. */
    public static final String ATTRIBUTE = ExchangePolicyProcessor.class.getName() + ".policy";

    private final UpstreamPolicyResolver resolver;

    /** A processor resolving declarations with {@code resolver}. */
    public ExchangePolicyProcessor(UpstreamPolicyResolver resolver) {
        this.resolver = resolver;
    }

    @Override
    public void process(Method method, MethodParameter[] parameters, Object[] arguments,
            HttpRequestValues.Builder builder) {
        PolicyOverride override = resolver.forExchange(method);
        if (override != null) {
            builder.addAttribute(ATTRIBUTE, override);
        }
    }
}
