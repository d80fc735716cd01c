package dev.upstreamguard.spring.it;

import dev.upstreamguard.spring.internal.AsyncUpstreamCalls;
import dev.upstreamguard.testing.Await;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.http.HttpServletRequest;
import java.io.IOException;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.springframework.web.context.request.NativeWebRequest;
import org.springframework.web.context.request.async.CallableProcessingInterceptor;
import org.springframework.web.context.request.async.WebAsyncUtils;

/**
 * For the async task of {@code /client-leaves}: gives Spring the container's notice that the client went (Tomcat gives
 * none for a client that goes while nothing is written to it), and, registered ahead of the library's interceptor,
 * holds Spring's error handling until the task it interrupts has answered or waits in the library, so that the task
 * comes first, as it may on a loaded machine.
 */
final class ClientLeaving implements CallableProcessingInterceptor {

    final AtomicReference<NativeWebRequest> request = new AtomicReference<>();
    final AtomicReference<Thread> task = new AtomicReference<>();
    final CountDownLatch completed = new CountDownLatch(1);

    private static boolean leaving(NativeWebRequest request) {
        HttpServletRequest servlet = request.getNativeRequest(HttpServletRequest.class);
        return servlet != null && servlet.getRequestURI().equals("/client-leaves");
    }

    /** What the container does when it sees the client go: Spring's async error. */
    void containerSeesTheClientGo() throws IOException {
        NativeWebRequest leaving = request.get();
        ((AsyncListener) leaving).onError(new AsyncEvent(
                leaving.getNativeRequest(HttpServletRequest.class).getAsyncContext(), new IOException("the client left")));
    }

    @Override
    public <T> void beforeConcurrentHandling(NativeWebRequest request, Callable<T> callable) {
        if (leaving(request)) {
            this.request.set(request);
        }
    }

    @Override
    public <T> void preProcess(NativeWebRequest request, Callable<T> callable) {
        if (leaving(request)) {
            task.set(Thread.currentThread());
        }
    }

    @Override
    public <T> Object handleError(NativeWebRequest request, Callable<T> callable, Throwable t) {
        if (leaving(request)) {
            try {
                Await.until("the interrupted task to answer or wait in the library", Duration.ofSeconds(5), () -> {
                    Thread thread = task.get();
                    return WebAsyncUtils.getAsyncManager(request).hasConcurrentResult()
                            || (thread.getState() == Thread.State.WAITING
                                    || thread.getState() == Thread.State.TIMED_WAITING)
                            && Arrays.stream(thread.getStackTrace()).anyMatch(
                                    f -> f.getClassName().equals(AsyncUpstreamCalls.class.getName()));
                });
            } catch (AssertionError e) {
                // Let Spring go on: the test's assertions tell what happened.
            }
        }
        return RESULT_NONE;
    }

    @Override
    public <T> void afterCompletion(NativeWebRequest request, Callable<T> callable) {
        if (leaving(request)) {
            completed.countDown();
        }
    }
}
