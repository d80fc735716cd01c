package dev.upstreamguard.gateway.internal;

import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeoutException;

/**
 * The gateway's answers to its own client's request, when the client and no upstream is at fault: a body that did not
 * arrive in time (408) or could not be read (400). No {@code Proxy-Status}, no fault count; the connection closes, the
 * rest of the body being unread. Shared by the proxy servlet and the fault filter.
 */
public final class ClientAnswers {

    private static final byte[] REQUEST_TIMEOUT =
            "408 Request Timeout\nThe request body did not arrive in time.\n".getBytes(StandardCharsets.UTF_8);
    private static final byte[] UNREADABLE_BODY =
            "400 Bad Request\nThe request body could not be read.\n".getBytes(StandardCharsets.UTF_8);

    private ClientAnswers() {
    }

    /** 408 Request Timeout (RFC 9110 §15.5.9), unless the response is committed. */
    public static void requestTimeout(HttpServletResponse response) throws IOException {
        answer(response, HttpServletResponse.SC_REQUEST_TIMEOUT, REQUEST_TIMEOUT);
    }

    /** 400 Bad Request for a body that could not be read (malformed chunking), unless the response is committed. */
    public static void unreadableBody(HttpServletResponse response) throws IOException {
        answer(response, HttpServletResponse.SC_BAD_REQUEST, UNREADABLE_BODY);
    }

    /** Whether reading the client's body failed because the client went silent past the container's timeout. */
    public static boolean isClientTimeout(Throwable failure) {
        Throwable t = failure;
        for (int depth = 0; t != null && depth < 32; depth++, t = t.getCause()) {
            // Tomcat: SocketTimeoutException (inside its BadRequestException); Jetty: TimeoutException.
            if (t instanceof SocketTimeoutException || t instanceof TimeoutException) {
                return true;
            }
        }
        return false;
    }

    private static void answer(HttpServletResponse response, int status, byte[] body) throws IOException {
        if (response.isCommitted()) {
            return;
        }
        response.reset();
        response.setStatus(status);
        response.setHeader("Connection", "close");
        response.setHeader("Cache-Control", "no-store");
        response.setContentType("text/plain;charset=utf-8");
        response.setContentLength(body.length);
        response.getOutputStream().write(body);
        response.flushBuffer();
    }
}
