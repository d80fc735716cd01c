package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.UpstreamException;
import java.io.IOException;

/**
 * Thrown to the servlet container when an upstream fault happened after the response was committed: the status can
 * no longer change, and an exception escaping the request is the one portable way to make a container abort the
 * client connection instead of finishing the response cleanly (Tomcat closes it at once, Jetty aborts the stream).
 *
 * <p>The fault has already been logged and counted, so this carries neither a stack trace nor the original cause:
 * the container's own log entry for it stays one line.
 */
public final class ResponseAbortedException extends IOException {

    private static final long serialVersionUID = 1L;

    /** Creates the exception for a fault that was already handled. */
    public ResponseAbortedException(UpstreamException fault) {
        super("Upstream " + fault.upstream() + " failed with " + fault.fault().type()
                + " after the response was committed; the client connection is aborted");
        setStackTrace(new StackTraceElement[0]);
    }

    @Override
    public synchronized Throwable fillInStackTrace() {
        return this;
    }
}
