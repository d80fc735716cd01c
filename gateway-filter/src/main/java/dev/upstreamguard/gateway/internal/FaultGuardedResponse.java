package dev.upstreamguard.gateway.internal;

import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.WriteListener;
import jakarta.servlet.http.Cookie;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpServletResponseWrapper;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The response as the fault filter passes it down the chain: an error status the application sends with
 * {@code sendError} (or a redirect with any of the {@code sendRedirect} variants) on the filter's thread is held until the chain returns,
 * instead of going to the container at once. Tomcat and Jetty take {@code sendError} as the end of the response: it
 * then reports itself committed, refuses {@code reset()}, and an upstream fault thrown after it could only be
 * aborted (a connection closed without any answer in Jetty, a {@code 400} error report naming the upstream in
 * Tomcat). Held, the fault is answered as if the
 * application had not answered yet; without a fault the error is sent when the chain returns, as it would have been
 * (Spring Boot's {@code ErrorPageFilter} holds it the same way).
 *
 * <p>While an error is held the response behaves as the container's does after {@code sendError}: committed, with
 * its status, and body writes discarded; fields set meanwhile reach the container after the error, which keeps or
 * ignores them as it does after its own. A task run by {@link jakarta.servlet.AsyncContext#start} has its errors held
 * the same way until it ends ({@link #holdOnThisThread}). {@code 1xx} statuses ({@code sendError(103)}: early hints)
 * and calls from other threads (an async worker of the application's own) pass straight through.
 *
 * <p>It also has a body of unknown length sent in chunks to an HTTP/1.1 client that asked to close the connection (or
 * sent {@code Expect: 100-continue}), or whose response the application asked to close, so that the client can tell a
 * body a fault cut short from a whole one.
 */
public final class FaultGuardedResponse extends HttpServletResponseWrapper {

    private static final Method REDIRECT_STATUS = redirectVariant(String.class, int.class);
    private static final Method REDIRECT_CLEAR = redirectVariant(String.class, boolean.class);
    private static final Method REDIRECT_STATUS_CLEAR = redirectVariant(String.class, int.class, boolean.class);

    private final Hold hold;
    /** An HTTP/1.1 response that may have a body, which chunks can frame. */
    private final boolean chunkable;
    /**
     * The client asked to close, or sent {@code Expect: 100-continue}: Jetty closes the connection of a request whose
     * body the application may leave unread, and ends a body of unknown length by that close.
     */
    private final boolean closeFromRequest;
    private boolean framed;
    /** The trailer supplier that has the container chunk the body is this wrapper's, not the application's. */
    private boolean chunkedHere;
    private ServletOutputStream stream;
    private PrintWriter writer;

    /** Wraps {@code response} for the chain that the current thread is about to run for {@code request}. */
    public FaultGuardedResponse(HttpServletRequest request, HttpServletResponse response) {
        this(request, response, new Hold());
        hold.add(Thread.currentThread());
    }

    /**
     * Wraps {@code response}, the async context's own, for the tasks that context runs: an error either wrapper holds
     * is held for both, since both are the one exchange's response.
     */
    public FaultGuardedResponse(HttpServletRequest request, HttpServletResponse response,
            FaultGuardedResponse sibling) {
        this(request, response, sibling.hold);
    }

    private FaultGuardedResponse(HttpServletRequest request, HttpServletResponse response, Hold hold) {
        super(response);
        this.hold = hold;
        this.chunkable = "HTTP/1.1".equals(request.getProtocol()) && !"HEAD".equals(request.getMethod());
        String expect = request.getHeader("Expect");
        this.closeFromRequest = chunkable && (HopByHop.hasClose(request.getHeaders("Connection"))
                || expect != null && expect.trim().equalsIgnoreCase("100-continue"));
        if (chunkable && !hold.closeAsked) {
            // A filter before this one may have asked already.
            hold.closeAsked = responseAsksClose();
        }
    }

    private boolean responseAsksClose() {
        return HopByHop.hasClose(Collections.enumeration(super.getHeaders("Connection")));
    }

    @Override
    public void setHeader(String name, String value) {
        if (deferred(() -> setHeader(name, value))) {
            return;
        }
        super.setHeader(name, value);
        noteConnection(name);
    }

    @Override
    public void addHeader(String name, String value) {
        if (deferred(() -> addHeader(name, value))) {
            return;
        }
        super.addHeader(name, value);
        noteConnection(name);
    }

    @Override
    public void setIntHeader(String name, int value) {
        if (!deferred(() -> setIntHeader(name, value))) {
            super.setIntHeader(name, value);
        }
    }

    @Override
    public void addIntHeader(String name, int value) {
        if (!deferred(() -> addIntHeader(name, value))) {
            super.addIntHeader(name, value);
        }
    }

    @Override
    public void setTrailerFields(Supplier<Map<String, String>> supplier) {
        super.setTrailerFields(supplier);
        chunkedHere = false;
    }

    @Override
    public void setContentLength(int length) {
        if (!deferred(() -> setContentLength(length))) {
            super.setContentLength(length);
        }
    }

    @Override
    public void setContentLengthLong(long length) {
        if (!deferred(() -> setContentLengthLong(length))) {
            super.setContentLengthLong(length);
        }
    }

    @Override
    public void setDateHeader(String name, long date) {
        if (!deferred(() -> super.setDateHeader(name, date))) {
            super.setDateHeader(name, date);
        }
    }

    @Override
    public void addDateHeader(String name, long date) {
        if (!deferred(() -> super.addDateHeader(name, date))) {
            super.addDateHeader(name, date);
        }
    }

    @Override
    public void addCookie(Cookie cookie) {
        if (!deferred(() -> super.addCookie(cookie))) {
            super.addCookie(cookie);
        }
    }

    @Override
    public void setContentType(String type) {
        if (!deferred(() -> super.setContentType(type))) {
            super.setContentType(type);
        }
    }

    @Override
    public void setCharacterEncoding(String charset) {
        if (!deferred(() -> super.setCharacterEncoding(charset))) {
            super.setCharacterEncoding(charset);
        }
    }

    @Override
    public void setLocale(Locale locale) {
        if (!deferred(() -> super.setLocale(locale))) {
            super.setLocale(locale);
        }
    }

    /**
     * While an error is held, a field the application sets waits for the error to go to the container, which then
     * takes or ignores it as it does after its own {@code sendError} (Tomcat ignores it, Jetty keeps it); a fault's
     * answer drops it with the error.
     */
    private boolean deferred(Runnable change) {
        if (!hold.held) {
            return false;
        }
        hold.defer(change);
        return true;
    }

    /**
     * A response the application asks to close has a body of unknown length ended by the close in both containers,
     * as for a client that asked: framed the same way.
     */
    private void noteConnection(String name) {
        if (chunkable && "Connection".equalsIgnoreCase(name)) {
            hold.closeAsked = responseAsksClose();
        }
    }

    /**
     * Before the first byte of a body of unknown length goes to a client that asked to close the connection (or
     * whose response the application asked to close, or whose {@code Expect} may close it), or its
     * head is flushed ahead of any (an event stream's): has the body sent in chunks. Jetty would end such a body by
     * closing the connection, so that a body a fault then cuts short would reach the client looking whole, or empty;
     * only the missing last chunk tells it (Tomcat chunks anyway).
     */
    private void frameByChunks() {
        if (framed || !(closeFromRequest || chunkable && hold.closeAsked)) {
            return;
        }
        if (hasNoBody(getStatus())) {
            // No body to frame: a flushed 204 or 304 is whole as it is.
            return;
        }
        framed = true;
        // A supplier the application set (the proxy servlet relaying an upstream's trailers) chunks it already, and
        // so does a Transfer-Encoding it set itself; a Content-Length frames it as well.
        if (!super.isCommitted() && !containsHeader("Content-Length") && !containsHeader("Transfer-Encoding")
                && super.getTrailerFields() == null) {
            try {
                super.setTrailerFields(Map::of);
                chunkedHere = true;
            } catch (IllegalStateException | UnsupportedOperationException notHere) {
                // The body ends at the close, as it would have.
            }
        }
    }

    private static boolean hasNoBody(int status) {
        return status < 200 || status == SC_NO_CONTENT || status == SC_NOT_MODIFIED;
    }

    /**
     * Takes the chunked framing back while the head is not out: a 204 or 304 the application set after the first write
     * (and a {@code resetBuffer}) must not go out chunked (RFC 9112 §6.1; Tomcat would send the
     * {@code Transfer-Encoding}). A length set after the first write is not taken back so: Jetty would then end the
     * chunks without their last one; the body goes out chunked, whole.
     */
    private void unframe() {
        if (chunkedHere && !super.isCommitted()) {
            try {
                super.setTrailerFields(null);
            } catch (IllegalStateException | UnsupportedOperationException notHere) {
                return;
            }
            chunkedHere = false;
            framed = false;
        }
    }

    /**
     * Holds the errors sent on the current thread, a task of the async context, until it ends: as on the filter's
     * thread, a fault the task throws after {@code sendError} is then answered as the fault.
     */
    public void holdOnThisThread() {
        hold.add(Thread.currentThread());
    }

    /** Drops a held error: a fault answer replaces it. From now on every call passes straight through. */
    public void dropHeldError() {
        hold.clear();
        hold.held = false;
        hold.takeDeferred();
    }

    /**
     * Ends holding on the current thread: an error it held goes to the container now, as the application sent it.
     * From now on its calls pass straight through.
     */
    public void sendHeldError() throws IOException {
        Thread current = Thread.currentThread();
        hold.remove(current);
        if (hold.held && hold.heldOn == current) {
            hold.held = false;
            try {
                hold.sending.send();
            } catch (IllegalStateException committedMeanwhile) {
                // An async worker committed it meanwhile: the container would have refused the error then as well.
            }
            for (Runnable change : hold.takeDeferred()) {
                try {
                    change.run();
                } catch (RuntimeException refusedAfterTheError) {
                    // The container refuses it now, where it would have refused it when the application set it.
                }
            }
        }
    }

    /**
     * Where a failure of the application's {@code WriteListener} goes once the listener has had it: such a failure
     * ends the exchange, and an upstream fault among them is answered like one thrown anywhere else.
     */
    public void onWriteListenerFailure(Consumer<Throwable> answer) {
        hold.listenerFailures = answer;
    }

    /** Ends holding on the current thread, dropping an error it held: the exchange is over without it. */
    public void forgetHeldError() {
        Thread current = Thread.currentThread();
        hold.remove(current);
        if (hold.heldOn == current) {
            hold.held = false;
            hold.takeDeferred();
        }
    }

    private void sendErrorNow(int status, String message) throws IOException {
        super.sendError(status, message);
    }

    private void sendRedirectNow(String location) throws IOException {
        super.sendRedirect(location);
    }

    /**
     * Calls one of Servlet 6.1's {@code sendRedirect} variants on the wrapped response, as the 6.1 wrapper would: by
     * reflection, since the gateway compiles against the 6.0 API as well (where nobody can call them).
     */
    private void redirectNow(Method variant, Object... args) throws IOException {
        try {
            variant.invoke(getResponse(), args);
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException) {
                throw (IOException) cause;
            }
            if (cause instanceof RuntimeException) {
                throw (RuntimeException) cause;
            }
            if (cause instanceof Error) {
                throw (Error) cause;
            }
            throw new IOException(cause);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Method redirectVariant(Class<?>... parameters) {
        try {
            return HttpServletResponse.class.getMethod("sendRedirect", parameters);
        } catch (NoSuchMethodException servlet60) {
            return null;
        }
    }

    private boolean holds(int status) {
        return status >= 400 && hold.holds(Thread.currentThread()) && !super.isCommitted();
    }

    @Override
    public void sendError(int status) throws IOException {
        sendError(status, null);
    }

    @Override
    public void sendError(int status, String message) throws IOException {
        if (hold.held) {
            throw new IllegalStateException("An error was already sent");
        }
        if (!holds(status)) {
            super.sendError(status, message);
            return;
        }
        // The container clears the buffer when it takes sendError; what the application wrote before is not sent.
        super.resetBuffer();
        hold.status = status;
        hold.sending = () -> sendErrorNow(status, message);
        hold.heldOn = Thread.currentThread();
        hold.held = true;
    }

    @Override
    public boolean isCommitted() {
        return hold.held || super.isCommitted();
    }

    @Override
    public int getStatus() {
        return hold.held ? hold.status : super.getStatus();
    }

    @Override
    public void setStatus(int status) {
        if (!hold.held) {
            super.setStatus(status);
            if (hasNoBody(status)) {
                unframe();
            }
        }
    }

    /**
     * Held as {@code sendError} is, for the same reason: the containers take a redirect as the end of the response
     * too, and a fault thrown after it could only be aborted (Tomcat then sent a {@code 400} error report naming the
     * upstream, with the redirect's {@code Location}; Jetty the redirect, the fault lost).
     */
    @Override
    public void sendRedirect(String location) throws IOException {
        holdRedirect(location, SC_FOUND, true, () -> sendRedirectNow(location));
    }

    /**
     * Servlet 6.1's redirect with a status (a 303 after a POST), held as {@link #sendRedirect(String)} is. Not an
     * {@code @Override}: the gateway compiles against Servlet 6.0 too, where only a 6.1 application calls it.
     */
    public void sendRedirect(String location, int status) throws IOException {
        holdRedirect(location, status, true, () -> redirectNow(REDIRECT_STATUS, location, status));
    }

    /** Servlet 6.1's redirect that may keep the body written so far, held as {@link #sendRedirect(String)} is. */
    public void sendRedirect(String location, boolean clearBuffer) throws IOException {
        holdRedirect(location, SC_FOUND, clearBuffer, () -> redirectNow(REDIRECT_CLEAR, location, clearBuffer));
    }

    /** Servlet 6.1's redirect with a status, that may keep the body written so far; held as the others are. */
    public void sendRedirect(String location, int status, boolean clearBuffer) throws IOException {
        holdRedirect(location, status, clearBuffer,
                () -> redirectNow(REDIRECT_STATUS_CLEAR, location, status, clearBuffer));
    }

    private void holdRedirect(String location, int status, boolean clearBuffer, Sending now) throws IOException {
        if (hold.held) {
            throw new IllegalStateException("An error was already sent");
        }
        if (!hold.holds(Thread.currentThread()) || super.isCommitted()) {
            now.send();
            return;
        }
        if (clearBuffer) {
            super.resetBuffer();
        }
        // Where the redirect goes is visible at once, as after the container's own sendRedirect: a filter inside
        // this one may look at it on its way out. A fault's answer resets it with the rest.
        super.setHeader("Location", location);
        hold.status = status;
        hold.sending = now;
        hold.heldOn = Thread.currentThread();
        hold.held = true;
    }

    @Override
    public void reset() {
        if (hold.held) {
            throw new IllegalStateException("An error was already sent");
        }
        super.reset();
        // The framing went with the fields (the trailer supplier that chunks), and so did a Connection: close.
        framed = false;
        chunkedHere = false;
        if (chunkable) {
            hold.closeAsked = responseAsksClose();
        }
    }

    @Override
    public void resetBuffer() {
        if (hold.held) {
            throw new IllegalStateException("An error was already sent");
        }
        super.resetBuffer();
    }

    @Override
    public void flushBuffer() throws IOException {
        if (!hold.held) {
            frameByChunks();
            super.flushBuffer();
        }
    }

    @Override
    public ServletOutputStream getOutputStream() throws IOException {
        if (stream == null) {
            // Obtained before or after the error was sent, it discards writes while the error is held, as the
            // container's own stream does after sendError (a flush or close would otherwise commit the response).
            ServletOutputStream out = hold.held ? null : super.getOutputStream();
            stream = new ServletOutputStream() {
                @Override
                public void write(int b) throws IOException {
                    if (!hold.held) {
                        frameByChunks();
                        real().write(b);
                    }
                }

                @Override
                public void write(byte[] b, int off, int len) throws IOException {
                    if (!hold.held) {
                        if (len > 0) {
                            frameByChunks();
                        }
                        real().write(b, off, len);
                    }
                }

                @Override
                public void print(String text) throws IOException {
                    // The container's own, not ServletOutputStream's character by character.
                    if (!hold.held) {
                        if (text != null && !text.isEmpty()) {
                            frameByChunks();
                        }
                        real().print(text);
                    }
                }

                @Override
                public void flush() throws IOException {
                    if (!hold.held) {
                        frameByChunks();
                        real().flush();
                    }
                }

                @Override
                public void close() throws IOException {
                    if (!hold.held) {
                        real().close();
                    }
                }

                @Override
                public boolean isReady() {
                    return hold.held || out == null || out.isReady();
                }

                @Override
                public void setWriteListener(WriteListener listener) {
                    if (out == null) {
                        throw new IllegalStateException("An error was already sent");
                    }
                    out.setWriteListener(new WriteListener() {
                        @Override
                        public void onWritePossible() throws IOException {
                            listener.onWritePossible();
                        }

                        @Override
                        public void onError(Throwable thrown) {
                            try {
                                listener.onError(thrown);
                            } finally {
                                // Jetty tells no AsyncListener of a failure the listener threw.
                                Consumer<Throwable> answer = hold.listenerFailures;
                                if (answer != null) {
                                    answer.accept(thrown);
                                }
                            }
                        }
                    });
                }

                private ServletOutputStream real() throws IOException {
                    if (out == null) {
                        throw new IOException("An error was already sent");
                    }
                    return out;
                }
            };
        }
        return stream;
    }

    @Override
    public PrintWriter getWriter() throws IOException {
        if (writer == null) {
            PrintWriter real = hold.held ? null : super.getWriter();
            writer = new PrintWriter(new Writer() {
                @Override
                public void write(char[] chars, int off, int len) {
                    if (!hold.held && real != null) {
                        if (len > 0) {
                            frameByChunks();
                        }
                        real.write(chars, off, len);
                    }
                }

                @Override
                public void flush() {
                    if (!hold.held && real != null) {
                        frameByChunks();
                        real.flush();
                    }
                }

                @Override
                public void close() {
                    if (!hold.held && real != null) {
                        real.close();
                    }
                }
            }) {
                @Override
                public boolean checkError() {
                    return super.checkError() || (real != null && real.checkError());
                }
            };
        }
        return writer;
    }

    /** The container's call a held error or redirect makes once released. */
    private interface Sending {
        void send() throws IOException;
    }

    /** The held error, shared by the chain's wrapper and the async context's. */
    private static final class Hold {
        /**
         * The threads whose errors are held: the filter's while the chain runs ({@link #first}), and running async
         * tasks ({@link #more}, made only for them: most exchanges start none, and this is made for every request).
         */
        private volatile Thread first;
        private volatile Set<Thread> more;
        volatile boolean held;
        volatile Thread heldOn;
        volatile int status;
        /** Sends the held error or redirect to the container, as the application called for it. */
        volatile Sending sending;
        volatile Consumer<Throwable> listenerFailures;
        /** Whether the response asks to close the connection ({@code Connection: close}), whichever wrapper set it. */
        volatile boolean closeAsked;
        /**
         * The fields the application set while the error was held, in order ({@link #deferred}); made only for them,
         * as {@link #more} is.
         */
        private List<Runnable> afterError;

        synchronized void defer(Runnable change) {
            if (afterError == null) {
                afterError = new ArrayList<>();
            }
            afterError.add(change);
        }

        /** Takes the deferred fields, leaving none. */
        synchronized List<Runnable> takeDeferred() {
            List<Runnable> taken = afterError == null ? List.of() : afterError;
            afterError = null;
            return taken;
        }

        synchronized void add(Thread thread) {
            if (first == null) {
                first = thread;
            } else if (first != thread) {
                more().add(thread);
            }
        }

        boolean holds(Thread thread) {
            Set<Thread> tasks = more;
            return first == thread || tasks != null && tasks.contains(thread);
        }

        synchronized void remove(Thread thread) {
            if (first == thread) {
                first = null;
            }
            Set<Thread> tasks = more;
            if (tasks != null) {
                tasks.remove(thread);
            }
        }

        synchronized void clear() {
            first = null;
            Set<Thread> tasks = more;
            if (tasks != null) {
                tasks.clear();
            }
        }

        private Set<Thread> more() {
            if (more == null) {
                more = ConcurrentHashMap.newKeySet();
            }
            return more;
        }
    }
}
