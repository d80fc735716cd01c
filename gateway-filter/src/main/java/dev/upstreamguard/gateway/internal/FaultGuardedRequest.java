package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.UpstreamException;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import java.io.IOException;

/**
 * The request as the fault filter passes it down the chain: the async contexts it starts run their
 * {@link AsyncContext#start(Runnable) start()}ed tasks under the filter's fault handling. Without it, an exception
 * escaping such a task reaches no filter at all: the container logs it and, depending on when it happened, closes the
 * connection, answers 500 or leaves the request hanging until the async timeout. An async timeout nobody answers
 * goes to the filter as well ({@link #watchTimeout}).
 */
public final class FaultGuardedRequest extends HttpServletRequestWrapper {

    /** Answers what a {@code start()}ed task threw, and async timeouts nobody else answered. */
    public interface FailureHandler {
        /**
         * Answers {@code thrown} and ends the async cycle of {@code async}.
         *
         * @return {@code false} when {@code thrown} is none of the handler's business and must propagate
         */
        boolean answer(AsyncContext async, Throwable thrown);

        /** Answers the timeout of {@code async}, which no other listener completed or dispatched. */
        void timedOut(AsyncContext async);
    }

    private final FailureHandler handler;
    private volatile GuardedContext current;

    /** Wraps {@code request}; failures of its async tasks go to {@code handler}. */
    public FaultGuardedRequest(HttpServletRequest request, FailureHandler handler) {
        super(request);
        this.handler = handler;
    }

    /**
     * Once the dispatch that started async returned to the filter: has a timeout of that async cycle that no other
     * listener answers go to the handler, instead of becoming the container's 500. Called then, not at
     * {@code startAsync()}, so that the listener comes after the application's own (Spring MVC's, a
     * {@code DeferredResult}'s timeout handler), which are notified first and keep their say.
     */
    public void watchTimeout() {
        GuardedContext guarded = current;
        if (guarded == null || !isAsyncStarted() || guarded.async != super.getAsyncContext()) {
            return;
        }
        try {
            guarded.async.addListener(new AsyncListener() {
                @Override
                public void onTimeout(AsyncEvent event) {
                    if (!guarded.ended) {
                        guarded.ended = true;
                        handler.timedOut(guarded.async);
                    }
                }

                @Override
                public void onComplete(AsyncEvent event) {
                }

                @Override
                public void onError(AsyncEvent event) {
                }

                @Override
                public void onStartAsync(AsyncEvent event) {
                }
            });
        } catch (IllegalStateException cycleOver) {
            // Completed or dispatched meanwhile: there is no timeout left to watch.
        }
    }

    @Override
    public AsyncContext startAsync() {
        return guard(super.startAsync());
    }

    @Override
    public AsyncContext startAsync(ServletRequest request, ServletResponse response) {
        return guard(super.startAsync(request, response));
    }

    @Override
    public AsyncContext getAsyncContext() {
        AsyncContext async = super.getAsyncContext();
        GuardedContext guarded = current;
        return guarded != null && guarded.async == async ? guarded : async;
    }

    private AsyncContext guard(AsyncContext async) {
        GuardedContext guarded = new GuardedContext(async, handler);
        current = guarded;
        return guarded;
    }

    /**
     * Hands the application's listener events that carry the guarded context, so that a timeout it ends with
     * {@code event.getAsyncContext().complete()} is seen as ended. A restart of async is a new cycle with a context
     * of its own, passed on as it is.
     */
    private static final class Relay implements AsyncListener {
        private final AsyncListener listener;
        private final GuardedContext guarded;

        Relay(AsyncListener listener, GuardedContext guarded) {
            this.listener = listener;
            this.guarded = guarded;
        }

        private AsyncEvent guarded(AsyncEvent event) {
            return new AsyncEvent(guarded, event.getSuppliedRequest(), event.getSuppliedResponse(),
                    event.getThrowable());
        }

        @Override
        public void onComplete(AsyncEvent event) throws IOException {
            listener.onComplete(guarded(event));
        }

        @Override
        public void onTimeout(AsyncEvent event) throws IOException {
            listener.onTimeout(guarded(event));
        }

        @Override
        public void onError(AsyncEvent event) throws IOException {
            listener.onError(guarded(event));
        }

        @Override
        public void onStartAsync(AsyncEvent event) throws IOException {
            listener.onStartAsync(event);
        }
    }

    /** Delegates everything; {@code start()} adds the fault handling, and ending the cycle is noted. */
    private static final class GuardedContext implements AsyncContext {
        private final AsyncContext async;
        private final FailureHandler handler;
        private volatile boolean ended;

        GuardedContext(AsyncContext async, FailureHandler handler) {
            this.async = async;
            this.handler = handler;
        }

        @Override
        public void start(Runnable task) {
            async.start(() -> {
                try {
                    task.run();
                } catch (Throwable thrown) {
                    if (ended) {
                        // The client has its answer, and the request and response may already serve another
                        // exchange: a late upstream fault is dropped, since escaping it would make Tomcat fail
                        // whichever request that is.
                        if (UpstreamException.find(thrown).isPresent()) {
                            return;
                        }
                        throw thrown;
                    }
                    if (!handler.answer(async, thrown)) {
                        throw thrown;
                    }
                    ended = true;
                }
            });
        }

        @Override
        public ServletRequest getRequest() {
            return async.getRequest();
        }

        @Override
        public ServletResponse getResponse() {
            return async.getResponse();
        }

        @Override
        public boolean hasOriginalRequestAndResponse() {
            return async.hasOriginalRequestAndResponse();
        }

        @Override
        public void dispatch() {
            ended = true;
            async.dispatch();
        }

        @Override
        public void dispatch(String path) {
            ended = true;
            async.dispatch(path);
        }

        @Override
        public void dispatch(ServletContext context, String path) {
            ended = true;
            async.dispatch(context, path);
        }

        @Override
        public void complete() {
            ended = true;
            async.complete();
        }

        @Override
        public void addListener(AsyncListener listener) {
            async.addListener(new Relay(listener, this));
        }

        @Override
        public void addListener(AsyncListener listener, ServletRequest request, ServletResponse response) {
            async.addListener(new Relay(listener, this), request, response);
        }

        @Override
        public <T extends AsyncListener> T createListener(Class<T> type) throws ServletException {
            return async.createListener(type);
        }

        @Override
        public void setTimeout(long timeout) {
            async.setTimeout(timeout);
        }

        @Override
        public long getTimeout() {
            return async.getTimeout();
        }
    }
}
