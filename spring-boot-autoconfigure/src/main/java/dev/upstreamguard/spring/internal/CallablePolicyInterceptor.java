package dev.upstreamguard.spring.internal;

import java.util.concurrent.Callable;
import org.springframework.web.context.request.NativeWebRequest;
import org.springframework.web.context.request.RequestAttributes;
import org.springframework.web.context.request.async.CallableProcessingInterceptor;

/**
 * Carries the inbound {@code @UpstreamPolicy} of a controller method that returns a {@code Callable} (or a
 * {@code WebAsyncTask}) onto the thread Spring MVC runs it on: the {@link InboundPolicyInterceptor} leaves it on the
 * request thread, but the calls are made later, on the async executor's thread.
 */
public final class CallablePolicyInterceptor implements CallableProcessingInterceptor {

    @Override
    public <T> void preProcess(NativeWebRequest request, Callable<T> task) {
        Object override = request.getAttribute(InboundPolicyInterceptor.ATTRIBUTE, RequestAttributes.SCOPE_REQUEST);
        if (override instanceof PolicyOverride) {
            CallScope.enterInbound((PolicyOverride) override);
        }
    }

    @Override
    public <T> void postProcess(NativeWebRequest request, Callable<T> task, Object concurrentResult) {
        // The executor's thread goes back to its pool: nothing may stay in force on it.
        CallScope.exitInbound();
    }
}
