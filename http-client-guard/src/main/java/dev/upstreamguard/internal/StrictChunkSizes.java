package dev.upstreamguard.internal;

import java.io.IOException;
import java.io.InputStream;
import org.apache.hc.core5.http.MalformedChunkCodingException;
import org.apache.hc.core5.http.TruncatedChunkException;
import org.apache.hc.core5.http.io.HttpTransportMetrics;
import org.apache.hc.core5.http.io.SessionInputBuffer;
import org.apache.hc.core5.util.CharArrayBuffer;

/**
 * The connection's input buffer as HttpClient's chunked decoder sees it, with each chunk-size line checked against
 * RFC 9112 §7.1 ({@code 1*HEXDIG [ BWS ";" chunk-ext ]}) before the decoder parses it.
 *
 * <p>The decoder parses sizes with {@code Long.parseLong(s, 16)} on the trimmed line, which also takes {@code +5} and
 * {@code " 5"}: framing another parser on the path would reject or read differently, the seam response smuggling
 * uses. Only size lines are checked: the decoder reads a size line, the chunk, the line ending the chunk, the next
 * size line…, and after the size 0 the trailer section, which is left alone. The line ending a chunk is only watched
 * for the end of input, which the decoder would call malformed rather than cut off.
 */
final class StrictChunkSizes implements SessionInputBuffer {

    private final SessionInputBuffer buffer;
    private boolean sizeLineNext = true;
    private boolean lastChunkSeen;

    StrictChunkSizes(SessionInputBuffer buffer) {
        this.buffer = buffer;
    }

    @Override
    public int readLine(CharArrayBuffer line, InputStream in) throws IOException {
        int start = line.length();
        int n = buffer.readLine(line, in);
        if (n == -1 && !lastChunkSeen && !sizeLineNext) {
            // The connection ended where the line end closing a chunk was due: the body was cut off there, as it can
            // be anywhere else, not malformed (HttpClient calls it "CRLF expected", a protocol error).
            throw new TruncatedChunkException("The connection ended after a chunk's data, before its line end");
        }
        if (n >= 0 && !lastChunkSeen) {
            if (sizeLineNext) {
                check(line, start);
            }
            sizeLineNext = !sizeLineNext;
        }
        return n;
    }

    private void check(CharArrayBuffer line, int start) throws MalformedChunkCodingException {
        int i = start;
        boolean zero = true;
        while (i < line.length() && Character.digit(line.charAt(i), 16) >= 0) {
            zero &= line.charAt(i) == '0';
            i++;
        }
        boolean digits = i > start;
        while (i < line.length() && (line.charAt(i) == ' ' || line.charAt(i) == '\t')) {
            i++;
        }
        if (!digits || (i < line.length() && line.charAt(i) != ';')) {
            throw new MalformedChunkCodingException("Bad chunk header: " + line.substring(start, line.length()));
        }
        lastChunkSeen = zero;
    }

    @Override
    public int length() {
        return buffer.length();
    }

    @Override
    public int capacity() {
        return buffer.capacity();
    }

    @Override
    public int available() {
        return buffer.available();
    }

    @Override
    public int read(byte[] b, int off, int len, InputStream in) throws IOException {
        return buffer.read(b, off, len, in);
    }

    @Override
    public int read(byte[] b, InputStream in) throws IOException {
        return buffer.read(b, in);
    }

    @Override
    public int read(InputStream in) throws IOException {
        return buffer.read(in);
    }

    @Override
    public HttpTransportMetrics getMetrics() {
        return buffer.getMetrics();
    }
}
