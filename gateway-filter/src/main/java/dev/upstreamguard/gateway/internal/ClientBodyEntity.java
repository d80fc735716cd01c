package dev.upstreamguard.gateway.internal;

import java.io.ByteArrayInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.SequenceInputStream;
import org.apache.hc.core5.concurrent.Cancellable;
import org.apache.hc.core5.http.io.entity.AbstractHttpEntity;

/**
 * A request body streamed from the client to the upstream as HttpClient writes the request: constant memory for
 * any size, and therefore not repeatable, so the guarded client never retries it. A failure reading from the client
 * (it hung up, or sent less than its {@code Content-Length}) is remembered, so that the proxy can tell it apart from
 * an upstream fault; the body is never silently truncated, the exchange fails instead.
 *
 * <p>Before such a failure is thrown, the upstream request is cancelled: the guarded client then records the call as
 * {@code cancelled} by its caller, outside the fault counts and the circuit breaker, so that clients abandoning uploads
 * cannot open the circuit for everyone.
 */
public final class ClientBodyEntity extends AbstractHttpEntity {

    private final Cancellable exchange;
    private final InputStream client;
    private final byte[] prefix;
    private final int prefixLength;
    private final long length;
    private volatile IOException clientFailure;
    private volatile boolean endedEarly;

    /**
     * @param exchange the upstream request, cancelled when the client fails
     * @param client the servlet's input stream
     * @param prefix bytes already read from {@code client} (while deciding whether the body was small), or {@code null}
     * @param prefixLength how many bytes of {@code prefix} count
     * @param length the whole body's length including the prefix, or -1 when unknown (sent chunked)
     */
    public ClientBodyEntity(Cancellable exchange, InputStream client, byte[] prefix, int prefixLength, long length) {
        super((String) null, null, length < 0);
        this.exchange = exchange;
        this.client = client;
        this.prefix = prefix;
        this.prefixLength = prefix == null ? 0 : prefixLength;
        this.length = length;
    }

    /**
     * Whether the client's stream ended cleanly before the announced {@code Content-Length}. Containers fail the read
     * when a client hangs up mid-body, so a clean early end means the body was (partly) read before the proxy.
     */
    public boolean endedEarly() {
        return endedEarly;
    }

    /** The failure reading from the client, if there was one. */
    public IOException clientFailure() {
        return clientFailure;
    }

    @Override
    public long getContentLength() {
        return length;
    }

    @Override
    public InputStream getContent() {
        InputStream head = new ByteArrayInputStream(prefix == null ? new byte[0] : prefix, 0, prefixLength);
        return new SequenceInputStream(head, client);
    }

    @Override
    public boolean isRepeatable() {
        return false;
    }

    @Override
    public boolean isStreaming() {
        return true;
    }

    @Override
    public void writeTo(OutputStream out) throws IOException {
        long written = 0;
        if (prefixLength > 0) {
            out.write(prefix, 0, prefixLength);
            written = prefixLength;
        }
        byte[] buffer = Buffers.get();
        for (;;) {
            int n;
            try {
                n = client.read(buffer);
            } catch (IOException e) {
                throw clientFailed(e);
            }
            if (n < 0) {
                break;
            }
            out.write(buffer, 0, n);
            written += n;
        }
        if (length >= 0 && written != length) {
            endedEarly = written < length;
            EOFException e = new EOFException(
                    "The client sent " + written + " of the " + length + " bytes its Content-Length announced");
            throw clientFailed(e);
        }
    }

    private IOException clientFailed(IOException e) {
        clientFailure = e;
        exchange.cancel();
        return e;
    }

    @Override
    public void close() {
        // The servlet container owns the client stream.
    }
}
