package dev.upstreamguard.internal;

import dev.upstreamguard.FaultClassifier;
import dev.upstreamguard.UpstreamFault;
import java.io.EOFException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import org.apache.hc.core5.http.HttpEntity;
import org.apache.hc.core5.http.io.entity.HttpEntityWrapper;

/**
 * Wraps a response body so that faults while reading it — a truncated body, broken chunking, broken gzip — surface
 * as a classified {@code UpstreamException} and finish the {@link Call} (metrics, breaker, bulkhead) just like a
 * fault before the response head. They happen after HttpClient's execution chain has returned, where nothing else
 * could see them.
 */
public final class GuardedEntity extends HttpEntityWrapper {

    private final Call call;
    private final boolean decoded;
    private final long maxBytes;
    private final Runnable abort;
    private InputStream content;
    private long bytesRead;
    private volatile boolean aborted;
    /** Set once the caller closed the body or its response: a read after that fails on the caller's account. */
    private volatile boolean closed;

    /**
     * @param maxBytes most bytes the caller may read ({@link Long#MAX_VALUE}: no limit); one more fails the call with
     *     {@code http_response_body_size}
     * @param abort closes the connection without draining it, when the body is over the limit
     */
    public GuardedEntity(HttpEntity wrapped, Call call, long maxBytes, Runnable abort) {
        super(wrapped);
        this.call = call;
        this.decoded = isDecoded(wrapped);
        this.maxBytes = maxBytes;
        this.abort = abort;
    }

    /** Whether {@code entity} is HttpClient's decoding of a body in a content coding (gzip, deflate…). */
    @SuppressWarnings("deprecation")
    public static boolean isDecoded(HttpEntity entity) {
        return entity instanceof org.apache.hc.client5.http.entity.compress.DecompressingEntity
                || entity instanceof org.apache.hc.client5.http.entity.DecompressingEntity;
    }

    @Override
    public InputStream getContent() throws IOException {
        if (content == null || !isRepeatable()) {
            InputStream raw;
            try {
                raw = super.getContent();
            } catch (IOException e) {
                throw fail(e);
            }
            content = raw == null ? null : new GuardedStream(raw);
            if (raw == null) {
                call.succeeded();
            }
        }
        return content;
    }

    @Override
    public void writeTo(OutputStream out) throws IOException {
        // Not delegated: the wrapped entity would read its raw stream and bypass the classification.
        try (InputStream in = getContent()) {
            if (in != null) {
                in.transferTo(out);
            }
        }
    }

    @Override
    public void close() throws IOException {
        try {
            if (!aborted) {
                try {
                    // HttpClient drains what is left of the body here, to reuse the connection: a body cut short fails
                    // now, and is the upstream's fault like any other, not an unclassified exception from close().
                    super.close();
                } catch (IOException e) {
                    failUnlessCancelled(e);
                }
            }
        } finally {
            closed = true;
        }
        call.succeeded();
    }

    /** A failed close after the caller's own cancel is what the caller asked for: recorded as such, not thrown. */
    private void failUnlessCancelled(IOException e) throws IOException {
        IOException classified = fail(e);
        if (!call.cancelledByCaller()) {
            throw classified;
        }
    }

    /**
     * A failed read: the upstream's fault, unless the caller had closed the body already (HttpClient's closed-stream
     * exception then tells the caller so, whatever the upstream sent).
     */
    private IOException readFailure(IOException e) {
        return closed ? e : fail(e);
    }

    private IOException fail(IOException e) {
        if (Thread.currentThread().isInterrupted()) {
            // As before the head: an interrupted reader has given up (classic socket reads go on regardless, so the
            // failure is whatever ended the read), and that says nothing about the upstream.
            call.callerGaveUp();
        }
        UpstreamFault fault = FaultClassifier.classifyBodyFailure(e);
        if (decoded && e instanceof EOFException) {
            // The transport reports a short body as ConnectionClosedException; an EOF can only come from the decoder.
            fault = UpstreamFault.HTTP_RESPONSE_CONTENT_CODING;
        }
        return call.bodyFailure(fault, e);
    }

    private final class GuardedStream extends FilterInputStream {

        GuardedStream(InputStream in) {
            super(in);
        }

        @Override
        public int read() throws IOException {
            int b;
            try {
                b = in.read();
            } catch (IOException e) {
                throw readFailure(e);
            }
            if (b == -1) {
                call.succeeded();
            } else {
                counted(1);
            }
            return b;
        }

        @Override
        public int read(byte[] buf, int off, int len) throws IOException {
            int n;
            try {
                n = in.read(buf, off, len);
            } catch (IOException e) {
                throw readFailure(e);
            }
            if (n == -1) {
                call.succeeded();
            } else {
                counted(n);
            }
            return n;
        }

        private void counted(long n) throws IOException {
            if (maxBytes == Long.MAX_VALUE) {
                return;
            }
            bytesRead += n;
            if (bytesRead > maxBytes) {
                // Closed, not drained: an upstream sending too much must not be read to its end. Closing the
                // response afterwards then has nothing left to do (and nothing to fail on).
                aborted = true;
                abort.run();
                throw call.bodyFailure(UpstreamFault.HTTP_RESPONSE_BODY_SIZE, new IOException(
                        "The response body is over max-response-body (" + maxBytes + " bytes)"));
            }
        }

        @Override
        public long skip(long n) throws IOException {
            long skipped;
            try {
                skipped = in.skip(n);
            } catch (IOException e) {
                throw readFailure(e);
            }
            counted(skipped);
            return skipped;
        }

        @Override
        public int available() throws IOException {
            try {
                return in.available();
            } catch (IOException e) {
                throw readFailure(e);
            }
        }

        @Override
        public void close() throws IOException {
            try {
                if (!aborted) {
                    try {
                        in.close(); // drains the rest of the body, as above
                    } catch (IOException e) {
                        failUnlessCancelled(e);
                    }
                }
            } finally {
                closed = true;
            }
            // Closing early is the caller's choice, not the upstream's fault: the call ends with the status it had.
            call.succeeded();
        }
    }
}
