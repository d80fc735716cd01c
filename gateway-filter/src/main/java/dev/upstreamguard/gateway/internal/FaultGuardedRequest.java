package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.UpstreamException;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import jakarta.servlet.http.HttpServletResponse;
import java.io.BufferedReader;
import java.io.IOException;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The request as the fault filter passes it down the chain: the async contexts it starts run their
 * {@link AsyncContext#start(Runnable) start()}ed tasks under the filter's fault handling. Without it, an exception
 * escaping such a task reaches no filter at all: the container logs it and, depending on when it happened, closes the
 * connection, answers 500 or leaves the request hanging until the async timeout. An error such a task sends is held
 * until it ends, as on the filter's thread ({@link FaultGuardedResponse}); so that this holds for the context's own
 * response too, a context started without arguments hands out that response wrapped. An async timeout nobody answers
 * goes to the filter as well, and so does an upstream fault the container reports as an async error, such as one a
 * {@code WriteListener} or {@code ReadListener} threw ({@link #watchUnanswered}; Jetty reports a {@code ReadListener}'s
 * failure to that listener only, so the body's stream hands it on as well). Reads of the client's body, through its
 * stream or its reader, are watched for the client's own failure ({@link #inboundFailure}).
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

    private static final String INBOUND_FAILURE = FaultGuardedRequest.class.getName() + ".inboundFailure";
    private static final String BODY_WAIT = FaultGuardedRequest.class.getName() + ".bodyWait";

    private final FailureHandler handler;
    private final FaultGuardedResponse response;
    private volatile GuardedContext current;
    private volatile ServletInputStream input;
    private volatile ServletInputStream guardedInput;
    private volatile BufferedReader reader;
    private volatile BufferedReader guardedReader;

    /**
     * Wraps {@code request}; failures of its async tasks go to {@code handler}, and errors they send are held by
     * {@code response}, the chain's.
     */
    public FaultGuardedRequest(HttpServletRequest request, FaultGuardedResponse response, FailureHandler handler) {
        super(request);
        this.handler = handler;
        this.response = response;
    }

    /**
     * Once the dispatch that started async returned to the filter: has a timeout of that async cycle that no other
     * listener answers go to the handler, instead of becoming the container's 500, and so an async error carrying a
     * fault (thrown by the application's non-blocking {@code WriteListener} or {@code ReadListener}), which the
     * containers otherwise end with a closed connection or an empty 200. Called then, not at {@code startAsync()}, so
     * that the listener comes after the application's own (Spring MVC's, a {@code DeferredResult}'s timeout handler),
     * which are notified first and keep their say.
     */
    public void watchUnanswered() {
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
                    guarded.answerFailure(event.getThrowable());
                }

                @Override
                public void onStartAsync(AsyncEvent event) {
                }
            });
        } catch (IllegalStateException cycleOver) {
            // Completed or dispatched meanwhile: there is no timeout left to watch.
        }
    }

    /**
     * The body's stream, whose {@code ReadListener} has a failure it threw handed to the filter once the listener has
     * had it (Jetty tells no {@code AsyncListener} of it, and the request would hang until the async timeout), and
     * whose reads are watched: for a failure of the client's body ({@link #inboundFailure}) and for an async timeout
     * while the application waits for that body ({@link #awaitsClientBody}).
     */
    @Override
    public ServletInputStream getInputStream() throws IOException {
        ServletInputStream in = super.getInputStream();
        if (in != input) {
            // Under a lock: an AsyncContext.start task and the container's thread may both ask, and two BodyWaits
            // would hide one's reads from awaitsClientBody.
            synchronized (this) {
                if (in != input) {
                    guardedInput = new ListenerGuardedInput(in, bodyWait());
                    input = in;
                }
            }
        }
        return guardedInput;
    }

    /**
     * The body's reader, whose reads are watched as those of {@link #getInputStream()} are: an application may read
     * its client's body as text, and a client breaking it off then is no more an upstream's fault.
     */
    @Override
    public BufferedReader getReader() throws IOException {
        BufferedReader in = super.getReader();
        if (in != reader) {
            synchronized (this) {
                if (in != reader) {
                    guardedReader = new GuardedReader(in, bodyWait());
                    reader = in;
                }
            }
        }
        return guardedReader;
    }

    /** A read of the client's body that yields a count or a byte. */
    private interface IntRead {
        int run() throws IOException;
    }

    /** Any other read of the client's body (a line, a skip). */
    private interface Read<T> {
        T run() throws IOException;
    }

    /** Runs {@code read} counted as under way in {@code wait}, its failure noted as the client's. */
    private int watched(BodyWait wait, IntRead read) throws IOException {
        wait.reads.incrementAndGet();
        try {
            return read.run();
        } catch (IOException e) {
            throw noted(e);
        } finally {
            wait.readEnded();
        }
    }

    /**
     * {@link #watched} for a read that yields an object. Two methods, not one generic one: the int reads run per byte
     * and per buffer of the body, where a boxed count would be an allocation each.
     */
    private <T> T watchedRead(BodyWait wait, Read<T> read) throws IOException {
        wait.reads.incrementAndGet();
        try {
            return read.run();
        } catch (IOException e) {
            throw noted(e);
        } finally {
            wait.readEnded();
        }
    }

    /** Notes a failure of the client's body for {@link #inboundFailure}; an attribute, seen on every dispatch. */
    private IOException noted(IOException e) {
        try {
            setAttribute(INBOUND_FAILURE, e);
        } catch (RuntimeException requestRecycled) {
            // The exchange ended while a task still read (Jetty recycles the request then): nobody is left to
            // answer, and the reader gets the read's own failure rather than the container's complaint.
        }
        return e;
    }

    /** Whether a read of the client's body failed in this request (noted for {@link #inboundFailure}). */
    public static boolean clientBodyFailed(ServletRequest request) {
        return request.getAttribute(INBOUND_FAILURE) instanceof IOException;
    }

    /**
     * The failure the container reported reading the client's own request body, when it is in {@code thrown}'s cause
     * chain, or {@code null}. An application streaming that body to an upstream through the guarded client gets it
     * back inside an {@code UpstreamException}, but the client broke it (a malformed or stalled upload, a hang-up),
     * not the upstream: it is the container's to answer, as if no client had been in between.
     */
    public static IOException inboundFailure(ServletRequest request, Throwable thrown) {
        Object failure = request.getAttribute(INBOUND_FAILURE);
        if (!(failure instanceof IOException)) {
            return null;
        }
        // Bounded rather than cycle-checked, as UpstreamException.find is.
        Throwable t = thrown;
        for (int depth = 0; t != null && depth < 64; depth++, t = t.getCause()) {
            if (t == failure) {
                return (IOException) failure;
            }
        }
        return null;
    }

    /**
     * Whether the application is waiting for its client's request body: a read of it is under way, or a
     * {@code ReadListener} is waiting for more of it (nothing delivered yet, or {@code isReady()} said there is none
     * now). An async timeout then is the client's, not an upstream's; an application that holds a body it has been
     * given (waiting on an upstream that stopped taking it) is not waiting for its client.
     */
    public static boolean awaitsClientBody(ServletRequest request) {
        Object wait = request.getAttribute(BODY_WAIT);
        return wait instanceof BodyWait && ((BodyWait) wait).waiting();
    }

    private synchronized BodyWait bodyWait() {
        Object wait = getAttribute(BODY_WAIT);
        if (wait instanceof BodyWait) {
            return (BodyWait) wait;
        }
        BodyWait fresh = new BodyWait();
        setAttribute(BODY_WAIT, fresh);
        return fresh;
    }

    /** How the application stands with its client's body; per request, since any dispatch may read it. */
    private static final class BodyWait {
        private final AtomicInteger reads = new AtomicInteger();
        private volatile boolean listening;
        /** The container has nothing ready for the listener: set until it next calls onDataAvailable. */
        private volatile boolean starved;

        boolean waiting() {
            return reads.get() > 0 || listening && starved;
        }

        // A lock, not a monitor: on JDK 21 to 23 a virtual thread waiting on a monitor holds its carrier, and this
        // wait lasts up to seconds on the container's thread.
        private final ReentrantLock lock = new ReentrantLock();
        private final Condition noReads = lock.newCondition();

        void readEnded() {
            if (reads.decrementAndGet() == 0) {
                lock.lock();
                try {
                    noReads.signalAll();
                } finally {
                    lock.unlock();
                }
            }
        }

        void awaitNoReads(long nanos) {
            lock.lock();
            try {
                long left = nanos;
                while (reads.get() > 0 && left > 0) {
                    left = noReads.awaitNanos(left);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                lock.unlock();
            }
        }
    }

    /**
     * Waits, at most {@code max}, until no read of the client's body is under way on another thread (a task blocked
     * in one when the async timeout was answered). The cycle must not end before: Tomcat recycles the request for the
     * next exchange, and the read, failing once the connection closes, reports its failure to that exchange (a 400
     * with this one's {@code EOFException}, or a read timeout taken for an upstream's). The answer already went out
     * with {@code Connection: close}, so the client closing after it ends the read.
     */
    public static void awaitClientReadsEnded(ServletRequest request, Duration max) {
        Object wait = request.getAttribute(BODY_WAIT);
        if (wait instanceof BodyWait) {
            ((BodyWait) wait).awaitNoReads(max.toNanos());
        }
    }

    @Override
    public AsyncContext startAsync() {
        AsyncContext async = super.startAsync();
        // The container's own response, which the chain's wrapper does not reach.
        ServletResponse own = async.getResponse();
        return guard(async, own instanceof HttpServletResponse
                ? new FaultGuardedResponse(this, (HttpServletResponse) own, response) : own);
    }

    @Override
    public AsyncContext startAsync(ServletRequest request, ServletResponse response) {
        // The application's choice, handed back as it is (it may cast it to its own wrapper).
        return guard(super.startAsync(request, response), response);
    }

    @Override
    public AsyncContext getAsyncContext() {
        AsyncContext async = super.getAsyncContext();
        GuardedContext guarded = current;
        return guarded != null && guarded.async == async ? guarded : async;
    }

    private AsyncContext guard(AsyncContext async, ServletResponse contextResponse) {
        GuardedContext guarded = new GuardedContext(async, contextResponse, response, handler);
        current = guarded;
        response.onWriteListenerFailure(guarded::answerFailure);
        return guarded;
    }

    /**
     * Delegates everything; a failure of the application's {@code ReadListener} then goes to the filter too, and a
     * failure reading the body is noted for {@link #inboundFailure}.
     */
    private final class ListenerGuardedInput extends ServletInputStream {
        private final ServletInputStream in;
        private final BodyWait wait;

        ListenerGuardedInput(ServletInputStream in, BodyWait wait) {
            this.in = in;
            this.wait = wait;
        }

        @Override
        public void setReadListener(ReadListener listener) {
            boolean wasListening = wait.listening;
            boolean wasStarved = wait.starved;
            wait.starved = true;
            wait.listening = true;
            try {
                in.setReadListener(guarded(listener));
            } catch (RuntimeException refused) {
                // Not async, or a listener already set: nothing will be delivered through this one; one set before
                // is still live.
                wait.listening = wasListening;
                wait.starved = wasStarved;
                throw refused;
            }
        }

        private ReadListener guarded(ReadListener listener) {
            return new ReadListener() {
                @Override
                public void onDataAvailable() throws IOException {
                    wait.starved = false;
                    listener.onDataAvailable();
                }

                @Override
                public void onAllDataRead() throws IOException {
                    wait.listening = false;
                    listener.onAllDataRead();
                }

                @Override
                public void onError(Throwable thrown) {
                    wait.listening = false;
                    if (thrown instanceof IOException && UpstreamException.find(thrown).isEmpty()) {
                        // The container's failure reading the body (a client that stalled or broke it), not a fault
                        // the listener threw while it streamed the body on: the client's, as a failed read() is.
                        noted((IOException) thrown);
                    }
                    try {
                        listener.onError(thrown);
                    } finally {
                        GuardedContext guarded = current;
                        if (guarded != null) {
                            guarded.answerFailure(thrown);
                        }
                    }
                }
            };
        }

        @Override
        public boolean isFinished() {
            return in.isFinished();
        }

        @Override
        public boolean isReady() {
            boolean ready = in.isReady();
            if (!ready) {
                wait.starved = true;
            }
            return ready;
        }

        @Override
        public int read() throws IOException {
            return watched(wait, () -> in.read());
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            return watched(wait, () -> in.read(b, off, len));
        }

        @Override
        public int readLine(byte[] b, int off, int len) throws IOException {
            return watched(wait, () -> in.readLine(b, off, len));
        }

        @Override
        public int available() throws IOException {
            return in.available();
        }

        @Override
        public long skip(long n) throws IOException {
            return in.skip(n);
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }

    /** Delegates everything; a failure reading the body is noted for {@link #inboundFailure}, as the stream's is. */
    private final class GuardedReader extends BufferedReader {
        private final BufferedReader in;
        private final BodyWait wait;

        GuardedReader(BufferedReader in, BodyWait wait) {
            // Reads go to the container's reader, which buffers: this one's own buffer stays unused.
            super(in, 1);
            this.in = in;
            this.wait = wait;
        }

        @Override
        public int read() throws IOException {
            return watched(wait, () -> in.read());
        }

        @Override
        public int read(char[] cbuf, int off, int len) throws IOException {
            return watched(wait, () -> in.read(cbuf, off, len));
        }

        @Override
        public String readLine() throws IOException {
            return watchedRead(wait, () -> in.readLine());
        }

        @Override
        public long skip(long n) throws IOException {
            return watchedRead(wait, () -> in.skip(n));
        }

        @Override
        public boolean ready() throws IOException {
            return in.ready();
        }

        @Override
        public boolean markSupported() {
            return in.markSupported();
        }

        @Override
        public void mark(int readAheadLimit) throws IOException {
            in.mark(readAheadLimit);
        }

        @Override
        public void reset() throws IOException {
            in.reset();
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
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

    /**
     * Delegates everything; {@code start()} adds the fault handling and holds the task's errors, and ending the
     * cycle is noted.
     */
    private static final class GuardedContext implements AsyncContext {
        private final AsyncContext async;
        private final ServletResponse response;
        private final FaultGuardedResponse holding;
        private final FailureHandler handler;
        private final Set<Thread> tasks = ConcurrentHashMap.newKeySet();
        private volatile boolean ended;

        GuardedContext(AsyncContext async, ServletResponse response, FaultGuardedResponse holding,
                FailureHandler handler) {
            this.async = async;
            this.response = response;
            this.holding = holding;
            this.handler = handler;
        }

        @Override
        public void start(Runnable task) {
            async.start(() -> {
                tasks.add(Thread.currentThread());
                holding.holdOnThisThread();
                try {
                    task.run();
                    releaseHeldError();
                } catch (Throwable thrown) {
                    if (!ended && handler.answer(async, thrown)) {
                        ended = true;
                        return;
                    }
                    releaseHeldError();
                    // The client has its answer, and the request and response may already serve another exchange:
                    // a late upstream fault is dropped, since escaping it would make Tomcat fail whichever request
                    // that is.
                    if (ended && UpstreamException.find(thrown).isPresent()) {
                        return;
                    }
                    throw thrown;
                } finally {
                    tasks.remove(Thread.currentThread());
                }
            });
        }

        /** Answers a failure the container reports for the cycle, unless it ended or the failure is no fault. */
        void answerFailure(Throwable thrown) {
            if (!ended && thrown != null && handler.answer(async, thrown)) {
                ended = true;
            }
        }

        /**
         * Sends the error the current task held, if it is a task: before the cycle ends, which would otherwise end
         * the response without it, or as the task ends without a fault.
         */
        private void releaseHeldError() {
            if (!tasks.contains(Thread.currentThread())) {
                return;
            }
            if (ended) {
                // Over without it (a timeout answered meanwhile): the response may already serve another exchange.
                holding.forgetHeldError();
                return;
            }
            try {
                holding.sendHeldError();
            } catch (IOException clientGone) {
                // Nobody is left to tell.
            }
        }

        @Override
        public ServletRequest getRequest() {
            return async.getRequest();
        }

        @Override
        public ServletResponse getResponse() {
            return response;
        }

        @Override
        public boolean hasOriginalRequestAndResponse() {
            return async.hasOriginalRequestAndResponse();
        }

        @Override
        public void dispatch() {
            releaseHeldError();
            ended = true;
            async.dispatch();
        }

        @Override
        public void dispatch(String path) {
            releaseHeldError();
            ended = true;
            async.dispatch(path);
        }

        @Override
        public void dispatch(ServletContext context, String path) {
            releaseHeldError();
            ended = true;
            async.dispatch(context, path);
        }

        @Override
        public void complete() {
            releaseHeldError();
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
