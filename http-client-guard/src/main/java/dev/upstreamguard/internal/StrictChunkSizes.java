package dev.upstreamguard.internal;

import dev.upstreamguard.UpstreamFault;
import java.io.IOException;
import java.io.InputStream;
import org.apache.hc.core5.http.MalformedChunkCodingException;
import org.apache.hc.core5.http.MessageConstraintException;
import org.apache.hc.core5.http.TruncatedChunkException;
import org.apache.hc.core5.http.config.Http1Config;
import org.apache.hc.core5.http.impl.io.ChunkedInputStream;
import org.apache.hc.core5.http.io.HttpTransportMetrics;
import org.apache.hc.core5.http.io.SessionInputBuffer;
import org.apache.hc.core5.util.CharArrayBuffer;

/**
 * The connection's input buffer as HttpClient's chunked decoder sees it, with each chunk-size line checked against
 * RFC 9112 §7.1 ({@code 1*HEXDIG [ BWS ";" chunk-ext ]}, no control character in the extension) before the decoder
 * parses it.
 *
 * <p>The decoder parses sizes with {@code Long.parseLong(s, 16)} on the trimmed line, which also takes {@code +5} and
 * {@code " 5"}: framing another parser on the path would reject or read differently, the seam response smuggling
 * uses. The decoder reads a size line, the chunk, the line ending the chunk, the next size line…, and after the size 0
 * the trailer section: size and trailer lines are read here byte by byte and judged as they arrive; the line ending a
 * chunk is only watched for the end of input, which the decoder would call malformed rather than cut off.
 *
 * <p>The trailer section is held to the head's limits, its field count by the decoder, its line length and size here;
 * a trailer over them is reported as RFC 9209's trailer faults, not as the head's or as broken framing.
 */
final class StrictChunkSizes implements SessionInputBuffer {

    /**
     * HttpClient's chunked decoder reading through the size check, its trailer limits reported as trailer faults.
     *
     * @param config the limits: the longest line (with its CR) and one more than the most trailer fields, since the
     *     decoder refuses a section once it has as many fields as its limit
     * @param maxSectionSize the most characters in the trailer section, counted as in the head: each line with its
     *     CRLF, the empty line that ends the section included
     */
    static InputStream decoder(SessionInputBuffer buffer, InputStream in, Http1Config config, int maxSectionSize) {
        StrictChunkSizes sizes = new StrictChunkSizes(buffer, config.getMaxLineLength(), maxSectionSize);
        return new ChunkedInputStream(sizes, in, config) {
            @Override
            public int read() throws IOException {
                try {
                    return super.read();
                } catch (MessageConstraintException e) {
                    throw sizes.trailerFault(e);
                }
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                try {
                    return super.read(b, off, len);
                } catch (MessageConstraintException e) {
                    throw sizes.trailerFault(e);
                }
            }
        };
    }

    private final SessionInputBuffer buffer;
    /** The buffer's own line limit, which a size line read here byte by byte is held to as the buffer would hold it. */
    private final int maxLineLength;
    private final int maxSectionSize;
    /** Characters of the trailer section read so far. */
    private long trailerSectionSize;
    private boolean sizeLineNext = true;
    private boolean lastChunkSeen;
    /** The name of the latest trailer field, which a continuation line (obs-fold) continues. */
    private String trailerName;
    /** Whether the latest size or trailer line ended with the input rather than with a line break. */
    private boolean lineEnded;

    StrictChunkSizes(SessionInputBuffer buffer, int maxLineLength, int maxSectionSize) {
        this.buffer = buffer;
        this.maxLineLength = maxLineLength;
        this.maxSectionSize = maxSectionSize;
    }

    @Override
    public int readLine(CharArrayBuffer line, InputStream in) throws IOException {
        int start = line.length();
        boolean trailer = lastChunkSeen;
        boolean sizeLine = sizeLineNext && !lastChunkSeen;
        int n = sizeLine || trailer ? readJudgedLine(line, in, start, trailer) : readDataEnd(in);
        if (n >= 0 && sizeLine && lineEnded && digitsOnly(line, start)) {
            // The buffer returns a line the close cut off as if whole: "0" may have been the start of "0400", so the
            // body is not known to be complete; a size that went on past its digits ("0;ext") is.
            throw new TruncatedChunkException("The connection ended in the middle of a chunk-size line");
        }
        if (n > 0 && lineEnded && trailer && StrictResponseParser.isFieldNameSoFar(line, start)) {
            // "X-T" is a trailer field cut before its colon, as "X-T: a" is one cut after it.
            throw new TruncatedChunkException("The connection ended in the response's trailer section");
        }
        if (n == -1 && !lastChunkSeen && !sizeLineNext) {
            // The connection ended where the line end closing a chunk was due: the body was cut off there, as it can
            // be anywhere else, not malformed (HttpClient calls it "CRLF expected", a protocol error).
            throw new TruncatedChunkException("The connection ended after a chunk's data, before its line end");
        }
        if (n == -1 && trailer && trailerSectionSize > 0) {
            // The decoder takes the end of input as the end of the trailer section, so the last field, cut anywhere,
            // would pass as whole. Only an empty section may lack its end: the content is whole, no field in doubt.
            throw new TruncatedChunkException("The connection ended in the response's trailer section");
        }
        if (n >= 0 && !lastChunkSeen) {
            if (sizeLineNext) {
                check(line, start);
            }
            sizeLineNext = !sizeLineNext;
        }
        if (n >= 0 && trailer) {
            // The decoder keeps every trailer field: held to the count and the line length alone, an upstream could
            // have it hold 256 lines of 16 KiB with each response.
            trailerSectionSize += line.length() - start + 2;
            if (trailerSectionSize > maxSectionSize) {
                throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_TRAILER_SECTION_SIZE,
                        "Response trailer section is larger than " + maxSectionSize + " bytes");
            }
            if (line.length() > start) {
                checkTrailerLine(line, start);
            }
        }
        return n;
    }

    /**
     * A trailer field line, held to the rules of a header field line (RFC 9112 §7.1.2). HttpClient's decoder took names
     * with spaces in them and values with a CR, a NUL or any other control character, and a proxy relays trailers:
     * a bare CR passed on is a line break to some recipients, the seam response splitting uses.
     */
    private void checkTrailerLine(CharArrayBuffer line, int start) throws FaultSignal {
        char first = line.charAt(start);
        if (first == ' ' || first == '\t') {
            if (trailerName == null) {
                throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                        "Response trailer section starts with a continuation line");
            }
            if (StrictResponseParser.controlCharacterAt(line, start) >= 0) {
                throw StrictResponseParser.controlCharacter(trailerName, "trailer");
            }
            return;
        }
        StrictResponseParser.checkFieldLine(line, start, "trailer");
        trailerName = line.substring(start, line.indexOf(':', start, line.length()));
    }

    /**
     * Reads a chunk-size or trailer line as the buffer's {@code readLine} would (LF or CRLF ends it, the end of input
     * too), byte by byte so that each byte is judged as it arrives, those buffered with what came before included: a
     * line that cannot be valid followed by silence would otherwise hold the read until the response timeout. These
     * lines are short and come once per chunk or after the body, so reading them a byte at a time costs little; chunk
     * data is never read here.
     */
    private int readJudgedLine(CharArrayBuffer line, InputStream in, int start, boolean trailer) throws IOException {
        lineEnded = false;
        boolean cr = false;
        int phase = trailer ? LINE_START : DIGITS;
        for (;;) {
            int b = buffer.read(in);
            if (b == -1) {
                lineEnded = true;
                return line.length() == start && !cr ? -1 : line.length() - start;
            }
            if (b == '\n') {
                return line.length() - start;
            }
            if (cr) {
                line.append('\r'); // a CR not before the LF: within the line, a control character
                phase = trailer ? judgeTrailer(line, start, '\r', phase) : judge(line, start, '\r', phase);
            }
            cr = b == '\r';
            if (cr && trailer && phase == NAME) {
                // A name the line ends after, or a bare CR in it: no field line either way.
                throw StrictResponseParser.malformedFieldLine(line.subSequence(start, line.length()), '\r', "trailer");
            }
            if (!cr) {
                line.append((char) b);
                phase = trailer ? judgeTrailer(line, start, (char) b, phase) : judge(line, start, (char) b, phase);
            }
            if (maxLineLength > 0 && line.length() - start + (cr ? 1 : 0) >= maxLineLength) {
                throw new MessageConstraintException("Maximum line length limit exceeded");
            }
        }
    }

    /**
     * The line end closing a chunk's data, judged as it arrives as the size lines are: anything but CRLF or LF there,
     * followed by silence, would otherwise hold the read until the response timeout. The end of input here is a body
     * cut off (-1), a CR before it included.
     */
    private int readDataEnd(InputStream in) throws IOException {
        int b = buffer.read(in);
        if (b == '\r') {
            b = buffer.read(in);
        }
        if (b == -1) {
            return -1;
        }
        if (b != '\n') {
            throw new MalformedChunkCodingException("CRLF expected at end of chunk");
        }
        return 0;
    }

    private static final int DIGITS = 0;
    private static final int SPACE = 1;
    private static final int EXTENSION = 2;
    private static final int LINE_START = 3;
    private static final int NAME = 4;
    private static final int VALUE = 5;
    private static final int CONTINUATION = 6;

    /** {@code c}, just appended to a trailer line: a fault as {@link #checkTrailerLine} gives it, or the next phase. */
    private int judgeTrailer(CharArrayBuffer line, int start, char c, int phase) throws FaultSignal {
        switch (phase) {
            case LINE_START:
                if (c == ' ' || c == '\t') {
                    if (trailerName == null) {
                        throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                                "Response trailer section starts with a continuation line");
                    }
                    return CONTINUATION;
                }
                if (StrictResponseParser.isFieldNameSoFar(line, start)) {
                    return NAME;
                }
                throw StrictResponseParser.malformedFieldLine("", c, "trailer");
            case NAME:
                if (c == ':') {
                    return VALUE;
                }
                if (!StrictResponseParser.isFieldNameSoFar(line, line.length() - 1)) {
                    throw StrictResponseParser.malformedFieldLine(
                            line.subSequence(start, line.length() - 1), c, "trailer");
                }
                return NAME;
            case VALUE:
                if (StrictResponseParser.isControlChar(c)) {
                    throw StrictResponseParser.controlCharacter(
                            line.substring(start, line.indexOf(':', start, line.length())), "trailer");
                }
                return VALUE;
            default:
                if (StrictResponseParser.isControlChar(c)) {
                    throw StrictResponseParser.controlCharacter(trailerName, "trailer");
                }
                return CONTINUATION;
        }
    }

    /** {@code c}, just appended: the line so far fails {@link #check} as the whole line will, or the next phase. */
    private int judge(CharArrayBuffer line, int start, char c, int phase) throws MalformedChunkCodingException {
        boolean digits = line.length() - start > 1 || Character.digit(c, 16) >= 0;
        boolean ok;
        int next = phase;
        if (phase == EXTENSION) {
            ok = !StrictResponseParser.isControlChar(c);
        } else if (phase == DIGITS && Character.digit(c, 16) >= 0) {
            ok = true;
        } else if (c == ' ' || c == '\t') {
            ok = digits;
            next = SPACE;
        } else if (c == ';') {
            ok = line.length() - start > 1;
            next = EXTENSION;
        } else {
            ok = false;
        }
        if (!ok) {
            check(line, start);
        }
        return next;
    }

    /** A limit the decoder hit: past the last chunk, in the trailer section, where it is the trailer's fault. */
    private IOException trailerFault(MessageConstraintException e) {
        if (!lastChunkSeen) {
            return e;
        }
        // HttpCore says which limit only in its message: "Maximum header count exceeded" or "Maximum line length…".
        String message = e.getMessage() == null ? "" : e.getMessage();
        return message.contains("count")
                ? new FaultSignal(UpstreamFault.HTTP_RESPONSE_TRAILER_SECTION_SIZE,
                        "The response's trailer section has more fields than allowed", e)
                : new FaultSignal(UpstreamFault.HTTP_RESPONSE_TRAILER_SIZE,
                        "A trailer field of the response is longer than allowed", e);
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
        int flaw = !digits || i < line.length() && line.charAt(i) != ';' ? i
                : StrictResponseParser.controlCharacterAt(line, i);
        if (flaw >= 0) {
            // No chunk extension holds a control character (RFC 9112 §7.1.1: tokens and quoted strings); a bare CR in
            // one ends the line early for some parsers, which then frame the chunks differently from this client.
            // Quoted up to the flaw, as far as a line judged byte by byte arrives before it fails.
            throw new MalformedChunkCodingException("Bad chunk header: "
                    + StrictResponseParser.printable(line.subSequence(start, Math.min(line.length(), flaw + 1)), 64));
        }
        lastChunkSeen = zero;
    }

    private static boolean digitsOnly(CharArrayBuffer line, int start) {
        for (int i = start; i < line.length(); i++) {
            if (Character.digit(line.charAt(i), 16) < 0) {
                return false;
            }
        }
        return true;
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
