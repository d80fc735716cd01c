package dev.upstreamguard.spring.internal;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpStatusCode;
import org.springframework.http.client.ClientHttpRequest;
import org.springframework.http.client.ClientHttpResponse;
import org.springframework.web.context.request.NativeWebRequest;
import org.springframework.web.context.request.RequestAttributes;
import org.springframework.web.context.request.async.AsyncWebRequest;
import org.springframework.web.context.request.async.CallableProcessingInterceptor;

/**
 * Answers Spring MVC's async request timeout with the gateway's 504 when the timeout ended a {@code Callable} (or
 * {@code WebAsyncTask}) of a controller while it was waiting for an upstream: from the client's side the gateway gave
 * up on the upstream, so the answer is {@code http_response_timeout} with {@code Proxy-Status}, not Spring's own 503,
 * which says the application itself is unavailable. A timeout during other work keeps Spring's answer, and so does a
 * {@code WebAsyncTask}'s own timeout callback, which runs first. {@code DeferredResult} and {@code CompletableFuture}
 * are completed on threads of the application's own, whose calls cannot be told apart from other work.
 *
 * <p>The guarded request factory's requests made on the {@code Callable}'s thread are {@linkplain #execute tracked}
 * from {@code execute()} until the response is closed, the body included. Spring interrupts the {@code Callable} at the
 * timeout, before it asks this interceptor; a call that ends on that interrupt (a virtual thread's socket read, a wait
 * for a pooled connection) stays tracked, and the {@code Callable}'s own result becomes the same 504, so that whichever
 * of the two threads answers first, the answer is the gateway's timeout. Spring interrupts the {@code Callable} on an
 * async error too (the container saw the client go): then no 504 is made up, logged or counted for a client that left.
 */
public final class AsyncUpstreamCalls implements CallableProcessingInterceptor {

    private static final String ATTRIBUTE = AsyncUpstreamCalls.class.getName() + ".calls";

    private static final ThreadLocal<InFlight> CURRENT = new ThreadLocal<>();

    /**
     * Longest a task cut by an interrupt waits to learn whether it was Spring's timeout or error: Spring's handler
     * comes right after its interrupt, so this bounds only an interrupt of the application's own.
     */
    private static final Duration SETTLE_WAIT = Duration.ofSeconds(5);

    @Override
    public <T> void beforeConcurrentHandling(NativeWebRequest request, Callable<T> task) {
        InFlight calls = new InFlight();
        request.setAttribute(ATTRIBUTE, calls, RequestAttributes.SCOPE_REQUEST);
        if (request instanceof AsyncWebRequest async) {
            // Run after Spring's own handlers, which interrupt the task and then set the request's answer.
            async.addTimeoutHandler(() -> calls.settle(Ending.TIMEOUT));
            async.addErrorHandler(error -> calls.settle(Ending.ERROR));
        }
    }

    @Override
    public <T> void preProcess(NativeWebRequest request, Callable<T> task) {
        Object calls = request.getAttribute(ATTRIBUTE, RequestAttributes.SCOPE_REQUEST);
        if (calls instanceof InFlight inFlight) {
            CURRENT.set(inFlight);
        }
    }

    @Override
    public <T> void postProcess(NativeWebRequest request, Callable<T> task, Object concurrentResult)
            throws UpstreamException {
        InFlight calls = CURRENT.get();
        // The executor's thread goes back to its pool: nothing may stay in force on it.
        CURRENT.remove();
        Call cut = calls == null ? null : calls.cutByInterrupt();
        if (cut != null && calls.awaitEnding() == Ending.TIMEOUT) {
            // Spring's chain takes an exception thrown here as the task's result; the timeout's answer, set first, wins
            // anyway, but the task must not answer differently should it ever come first.
            throw timeout(cut, concurrentResult instanceof Throwable ? (Throwable) concurrentResult : null);
        }
        // Spring's async error (the client went away): nobody receives an answer, so no upstream timeout is made up
        // for it. An interrupt of the application's own keeps the call's own fault.
    }

    @Override
    public <T> Object handleTimeout(NativeWebRequest request, Callable<T> task) {
        Object calls = request.getAttribute(ATTRIBUTE, RequestAttributes.SCOPE_REQUEST);
        Call call = calls instanceof InFlight ? ((InFlight) calls).any() : null;
        return call == null ? RESULT_NONE : timeout(call, null);
    }

    private static UpstreamException timeout(Call call, Throwable cause) {
        long elapsed = System.nanoTime() - call.startNanos;
        return new UpstreamException(UpstreamFault.HTTP_RESPONSE_TIMEOUT, call.upstream, 1, null, elapsed,
                "Spring MVC's async request timeout ended the request after " + Duration.ofNanos(elapsed).toMillis()
                        + " ms waiting for upstream '" + call.upstream + "'", cause);
    }

    /**
     * Executes {@code request}, tracked until its response is closed as a call to {@code upstream} when it is made on
     * the thread of a controller's {@code Callable}.
     */
    public static ClientHttpResponse execute(ClientHttpRequest request, String upstream) throws IOException {
        InFlight calls = CURRENT.get();
        if (calls == null) {
            return request.execute();
        }
        Call call = new Call(upstream);
        calls.calls.put(call, Boolean.TRUE);
        try {
            return new TrackedResponse(request.execute(), calls, call);
        } catch (IOException | RuntimeException | Error e) {
            calls.end(call);
            throw e;
        }
    }

    /** Whether guarded calls made now are tracked: only on the thread of a controller's {@code Callable}. */
    public static boolean tracking() {
        return CURRENT.get() != null;
    }

    /** How Spring ended the request while the task ran, if it did. */
    private enum Ending { TIMEOUT, ERROR }

    /** The calls of one request in flight. */
    private static final class InFlight {
        private final Map<Call, Boolean> calls = new ConcurrentHashMap<>();
        private final CountDownLatch settled = new CountDownLatch(1);
        private volatile Ending ending;

        void settle(Ending how) {
            ending = how;
            settled.countDown();
        }

        /**
         * How Spring ended the request, once its handler has answered it; {@code null} when the interrupt was not
         * Spring's. Spring interrupts the task before it asks the interceptors, so the task may get here first.
         */
        Ending awaitEnding() {
            // The interrupt is still pending on this thread: it would end the wait at once.
            boolean interrupted = Thread.interrupted();
            try {
                settled.await(SETTLE_WAIT.toMillis(), TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                interrupted = true;
            } finally {
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
            return ending;
        }

        Call any() {
            return calls.keySet().stream().findFirst().orElse(null);
        }

        /** Ends {@code call}, unless an interrupt of this thread (Spring's, at the timeout) is what ended it. */
        void end(Call call) {
            if (Thread.currentThread().isInterrupted()) {
                call.cutByInterrupt = true;
            } else {
                calls.remove(call);
            }
        }

        Call cutByInterrupt() {
            return calls.keySet().stream().filter(c -> c.cutByInterrupt).findFirst().orElse(null);
        }
    }

    private static final class Call {
        final String upstream;
        final long startNanos = System.nanoTime();
        volatile boolean cutByInterrupt;

        Call(String upstream) {
            this.upstream = upstream;
        }
    }

    private static final class TrackedResponse implements ClientHttpResponse {
        private final ClientHttpResponse delegate;
        private final InFlight calls;
        private final Call call;

        TrackedResponse(ClientHttpResponse delegate, InFlight calls, Call call) {
            this.delegate = delegate;
            this.calls = calls;
            this.call = call;
        }

        @Override
        public HttpStatusCode getStatusCode() throws IOException {
            return delegate.getStatusCode();
        }

        @Override
        public String getStatusText() throws IOException {
            return delegate.getStatusText();
        }

        @Override
        public InputStream getBody() throws IOException {
            return delegate.getBody();
        }

        @Override
        public HttpHeaders getHeaders() {
            return delegate.getHeaders();
        }

        @Override
        public void close() {
            calls.end(call);
            delegate.close();
        }
    }
}
