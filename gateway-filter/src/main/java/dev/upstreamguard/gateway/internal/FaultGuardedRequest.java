package dev.upstreamguard.gateway.internal;

import jakarta.servlet.AsyncContext;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;

/**
 * The request as the fault filter passes it down the chain: the async contexts it starts run their
 * {@link AsyncContext#start(Runnable) start()}ed tasks under the filter's fault handling. Without it, an exception
 * escaping such a task reaches no filter at all: the container logs it and, depending on when it happened, closes the
 * connection, answers 500 or leaves the request hanging until the async timeout.
 */
public final class FaultGuardedRequest extends HttpServletRequestWrapper {

    /** Answers what a {@code start()}ed task threw. */
    @FunctionalInterface
    public interface TaskFailureHandler {
        /**
         * Answers {@code thrown} and ends the async cycle of {@code async}.
         *
         * @return {@code false} when {@code thrown} is none of the handler's business and must propagate
         */
        boolean answer(AsyncContext async, Throwable thrown);
    }

    private final TaskFailureHandler handler;
    private volatile GuardedContext current;

    /** Wraps {@code request}; failures of its async tasks go to {@code handler}. */
    public FaultGuardedRequest(HttpServletRequest request, TaskFailureHandler handler) {
        super(request);
        this.handler = handler;
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

    /** Delegates everything; only {@code start()} adds the fault handling. */
    private static final class GuardedContext implements AsyncContext {
        private final AsyncContext async;
        private final TaskFailureHandler handler;

        GuardedContext(AsyncContext async, TaskFailureHandler handler) {
            this.async = async;
            this.handler = handler;
        }

        @Override
        public void start(Runnable task) {
            async.start(() -> {
                try {
                    task.run();
                } catch (Throwable thrown) {
                    if (!handler.answer(async, thrown)) {
                        throw thrown;
                    }
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
            async.dispatch();
        }

        @Override
        public void dispatch(String path) {
            async.dispatch(path);
        }

        @Override
        public void dispatch(ServletContext context, String path) {
            async.dispatch(context, path);
        }

        @Override
        public void complete() {
            async.complete();
        }

        @Override
        public void addListener(AsyncListener listener) {
            async.addListener(listener);
        }

        @Override
        public void addListener(AsyncListener listener, ServletRequest request, ServletResponse response) {
            async.addListener(listener, request, response);
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
