package dev.upstreamguard.internal;

import dev.upstreamguard.UpstreamFault;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.SocketException;
import java.util.ArrayList;
import java.util.List;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpHeaders;
import org.apache.hc.core5.http.HttpVersion;
import org.apache.hc.core5.http.MessageConstraintException;
import org.apache.hc.core5.http.NoHttpResponseException;
import org.apache.hc.core5.http.impl.io.DefaultClassicHttpResponseFactory;
import org.apache.hc.core5.http.impl.io.SessionInputBufferImpl;
import org.apache.hc.core5.http.io.HttpMessageParser;
import org.apache.hc.core5.http.io.SessionInputBuffer;
import org.apache.hc.core5.http.message.BasicHeader;
import org.apache.hc.core5.util.CharArrayBuffer;

/**
 * Parses an HTTP/1.x response head strictly and says exactly what is wrong with a bad one.
 *
 * <p>HttpClient's own parser is lenient: it skips lines that are not a status line, so a response that is not HTTP
 * at all, or has a malformed status line, ends as {@code NoHttpResponseException} — indistinguishable from a
 * connection closed before any response. A gateway must answer those differently, and must not pass on framing that
 * two parties could read differently (request smuggling, response splitting), so this parser rejects:
 * a status line that is not {@code HTTP/1.x NNN reason}; a header line without a token name and a colon;
 * control characters in values; conflicting or invalid {@code Content-Length}; {@code Content-Length} together with
 * {@code Transfer-Encoding}, or {@code Transfer-Encoding} in an HTTP/1.0 response; more than
 * {@value #MAX_INTERIM_RESPONSES} interim responses before the final one. It enforces the size limits with distinct
 * faults: one header field too long, on one line or folded over several ({@code http_response_header_size}), too
 * many headers or bytes in the section ({@code http_response_header_section_size}).
 */
public final class StrictResponseParser implements HttpMessageParser<ClassicHttpResponse> {

    private static final int MAX_EMPTY_LINES = 10;

    /**
     * Most interim (1xx) responses before the final one. RFC 9110 §15.2 has a client parse any number, but each one
     * restarts the read timeout, so an upstream sending them without end held a call until the total deadline (a 504
     * after 30 s by default) though it plainly was not going to answer. Real uses send a few (100 Continue, 103 Early
     * Hints) or one every few seconds (102 Processing), far below this; a flood reaches it in milliseconds and is
     * answered as the protocol error it is, as Go's client long did with a much lower cap (5).
     */
    static final int MAX_INTERIM_RESPONSES = 100;

    private final int maxFieldSize;
    private final int maxHeaderCount;
    private final int maxSectionSize;
    /** The connection's input buffer, as the last parse saw it: one parser serves one connection. */
    private SessionInputBuffer buffer;
    /** The connection's input stream, which {@link #buffer} fills from, as the last parse saw it. */
    private InputStream in;
    /** Interim (1xx) responses since the last final one: while there are any, the final one is still due. */
    private int interimResponses;
    /** The watch of the latest head, which goes on into the next head after an interim one. */
    private HeadWatch watch;

    /**
     * @param maxFieldSize most characters in one header field, the connection's line limit; 0 or less: none
     */
    StrictResponseParser(int maxFieldSize, int maxHeaderCount, int maxSectionSize) {
        this.maxFieldSize = maxFieldSize > 0 ? maxFieldSize : Integer.MAX_VALUE;
        this.maxHeaderCount = maxHeaderCount;
        this.maxSectionSize = maxSectionSize;
    }

    /** Whether an interim (1xx) response of the exchange arrived and its final response is still due. */
    boolean awaitingFinalResponse() {
        return interimResponses > 0;
    }

    /** The most characters in a head, which a chunked body's trailer section is held to as well. */
    int maxSectionSize() {
        return maxSectionSize;
    }

    /** Bytes received on the connection and not read yet. */
    int bufferedInput() {
        SessionInputBuffer b = buffer;
        return b == null ? 0 : b.length();
    }

    /**
     * Reads what has arrived on the connection into its buffer, waiting up to the socket's timeout for something:
     * the number of bytes read, or -1 at the end of input. {@code -2} when the buffer is not one that can be filled
     * from outside (the caller then makes do with HttpClient's own stale check).
     */
    int fillBuffer() throws IOException {
        SessionInputBuffer b = buffer;
        InputStream stream = in;
        if (!(b instanceof SessionInputBufferImpl) || stream == null) {
            return -2;
        }
        return ((SessionInputBufferImpl) b).fillBuffer(stream);
    }

    @Override
    public ClassicHttpResponse parse(SessionInputBuffer buffer, InputStream in) throws IOException, HttpException {
        this.buffer = buffer;
        this.in = in;
        CharArrayBuffer line = new CharArrayBuffer(64);
        int read = -1;
        // The bytes the stream delivers start the response when nothing is buffered; with bytes buffered, only the
        // watch that saw them arrive, following an interim head into this one, knows where in a head they leave off.
        HeadWatch watch = buffer.length() == 0 ? new HeadWatch() : this.watch != null && this.watch.following()
                ? this.watch : null;
        this.watch = watch;
        for (int n = 0; n < MAX_EMPTY_LINES; n++) {
            line.clear();
            boolean started = interimResponses > 0 || buffer.length() > 0;
            Arrival arrival = new Arrival(in, watch);
            read = readLine(buffer, arrival, line, "status line", started, arrival);
            checkLength(line, "status line");
            if (read > 0 && arrival.ended && couldStartStatusLine(line)) {
                // The line ended with the connection, not with a line break: the upstream began a status line and
                // went away. RFC 9209: an incomplete response, like a head cut off later; bytes that cannot begin a
                // status line are still "not HTTP" below.
                throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_INCOMPLETE,
                        "The upstream closed the connection in the middle of the status line");
            }
            if (read == -1) {
                if (interimResponses > 0) {
                    // RFC 9209: the upstream had begun to respond, so this is an incomplete response, not no response.
                    throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_INCOMPLETE,
                            "The upstream closed the connection after an interim response, before the final one");
                }
                throw new NoHttpResponseException("The upstream closed the connection before sending a response");
            }
            if (line.length() > 0) {
                break;
            }
        }
        if (line.length() == 0) {
            throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR, "Too many empty lines before the status line");
        }
        ClassicHttpResponse response = statusLine(line);
        // The whole head, each line with a CRLF: the status line, the fields, the empty line that ends them.
        int sectionSize = line.length() + 2;

        List<CharArrayBuffer> lines = new ArrayList<>();
        CharArrayBuffer previous = null;
        Arrival fields = new Arrival(in, watch);
        for (;;) {
            CharArrayBuffer current = new CharArrayBuffer(64);
            if (readLine(buffer, fields, current, "header", true, null) == -1
                    || fields.ended && current.length() > 0 && isFieldNameSoFar(current)) {
                // A line the close cut off is judged as far as it goes: "Content-Le" is a field line cut short, not
                // one without a colon.
                throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_INCOMPLETE,
                        "The upstream closed the connection in the middle of the response header section");
            }
            checkLength(current, "header");
            sectionSize += current.length() + 2;
            if (sectionSize > maxSectionSize) {
                throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_HEADER_SECTION_SIZE,
                        "Response header section is larger than " + maxSectionSize + " bytes");
            }
            if (current.length() == 0) {
                break;
            }
            char first = current.charAt(0);
            if (first == ' ' || first == '\t') {
                // RFC 9112 §5.2 lets a proxy replace obs-fold with spaces instead of rejecting the response.
                if (previous == null) {
                    throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                            "Response header section starts with a continuation line");
                }
                if (controlCharacterAt(current, 0) >= 0) {
                    throw controlCharacter(previous.substring(0, previous.indexOf(':')), "header");
                }
                previous.append(' ');
                int i = 0;
                while (i < current.length() && (current.charAt(i) == ' ' || current.charAt(i) == '\t')) {
                    i++;
                }
                previous.append(current, i, current.length() - i);
                if (previous.length() > maxFieldSize) {
                    // The line limit saw each folded line alone; joined, they are one field, held to the same limit.
                    throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_HEADER_SIZE,
                            "Response header folded over several lines is longer than the header size limit");
                }
                continue;
            }
            // Judged as it arrives: an upstream that sends a bad line and then nothing more would otherwise hold the
            // call until the response timeout, and one that then closes would read as an incomplete, retried response.
            checkFieldLine(current);
            checkContentLengthCharacters(current);
            lines.add(current);
            previous = current;
            if (lines.size() > maxHeaderCount) {
                throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_HEADER_SECTION_SIZE,
                        "Response has more than " + maxHeaderCount + " header fields");
            }
        }
        Header[] headers = new Header[lines.size()];
        for (int i = 0; i < headers.length; i++) {
            headers[i] = header(lines.get(i));
        }
        response.setHeaders(headers);
        checkFraming(response);
        joinContentCodings(response);
        if (response.getCode() >= 200) {
            interimResponses = 0;
        } else if (++interimResponses > MAX_INTERIM_RESPONSES) {
            throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                    "More than " + MAX_INTERIM_RESPONSES + " interim (1xx) responses without a final one");
        }
        return response;
    }

    /**
     * {@code started}: part of the response already arrived, so a connection that breaks leaves it incomplete; so it
     * does if {@code arrival} (when given) saw bytes of this line arrive before the break.
     */
    private static int readLine(SessionInputBuffer buffer, InputStream in, CharArrayBuffer line, String what,
            boolean started, Arrival arrival) throws IOException {
        try {
            return buffer.readLine(line, in);
        } catch (MessageConstraintException e) {
            // The session buffer's only constraint is the line length, so no message needs reading here.
            throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_HEADER_SIZE,
                    "Response " + what + " is longer than the header size limit", e);
        } catch (SocketException e) {
            if (!started && (arrival == null || arrival.bytes == 0)) {
                throw e;
            }
            // RFC 9209: reset after the response began is an incomplete response, like a close at the same point.
            throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_INCOMPLETE,
                    "The connection broke in the middle of the response head", e);
        }
    }

    /** The line limit is the longest line without its end; HttpCore's buffer, which counts the CR, stops one short. */
    private void checkLength(CharArrayBuffer line, String what) throws FaultSignal {
        if (line.length() > maxFieldSize) {
            throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_HEADER_SIZE,
                    "Response " + what + " is longer than the header size limit");
        }
    }

    /**
     * Whether {@code line} is the beginning of a status line ({@code HTTP/1.x NNN reason}) as far as it goes, so that
     * its end without a line break means it was cut short rather than that it is not HTTP.
     */
    private static boolean couldStartStatusLine(CharArrayBuffer line) {
        String pattern = "HTTP/1.D DDD ";
        for (int i = 0; i < line.length(); i++) {
            char c = line.charAt(i);
            char p = i < pattern.length() ? pattern.charAt(i) : 'R';
            boolean ok = p == 'D' ? isDigit(c) : p == 'R' ? c >= 0x20 && c != 0x7f || c == '\t' : c == p;
            if (!ok) {
                return false;
            }
        }
        return true;
    }

    /**
     * Whether {@code line} is a field name cut short: token characters and no colon yet. A line cut anywhere later
     * passes the checks of a field line as far as it goes, and then the end of input is found where the next line was
     * due.
     */
    private static boolean isFieldNameSoFar(CharArrayBuffer line) {
        return isFieldNameSoFar(line, 0);
    }

    /** Like {@link #isFieldNameSoFar(CharArrayBuffer)} for the line from {@code from} on, which is not empty. */
    static boolean isFieldNameSoFar(CharArrayBuffer line, int from) {
        if (line.length() <= from) {
            return false;
        }
        for (int i = from; i < line.length(); i++) {
            if (!isTokenChar(line.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    private static ClassicHttpResponse statusLine(CharArrayBuffer line) throws FaultSignal {
        // HTTP-version SP 3DIGIT SP [ reason-phrase ]  (RFC 9112 §4); a missing space before an empty reason is tolerated.
        int len = line.length();
        boolean ok = len >= 12 && line.charAt(0) == 'H' && line.charAt(1) == 'T' && line.charAt(2) == 'T'
                && line.charAt(3) == 'P' && line.charAt(4) == '/' && line.charAt(5) == '1' && line.charAt(6) == '.'
                && isDigit(line.charAt(7)) && line.charAt(8) == ' ' && isDigit(line.charAt(9))
                && isDigit(line.charAt(10)) && isDigit(line.charAt(11)) && (len == 12 || line.charAt(12) == ' ');
        if (ok) {
            for (int i = 13; i < len; i++) {
                char c = line.charAt(i);
                if ((c < 0x20 && c != '\t') || c == 0x7f) {
                    ok = false;
                    break;
                }
            }
        }
        int code = ok ? (line.charAt(9) - '0') * 100 + (line.charAt(10) - '0') * 10 + (line.charAt(11) - '0') : 0;
        if (!ok || code < 100 || code > 599) {
            throw malformedStatusLine(line);
        }
        String reason = len > 13 ? line.substring(13, len) : "";
        ClassicHttpResponse response = DefaultClassicHttpResponseFactory.INSTANCE.newHttpResponse(code, reason);
        response.setVersion(line.charAt(7) == '0' ? HttpVersion.HTTP_1_0 : HttpVersion.HTTP_1_1);
        return response;
    }

    /** A field line: a token name, a colon, a value without control characters. */
    private static void checkFieldLine(CharArrayBuffer line) throws FaultSignal {
        checkFieldLine(line, 0, "header");
    }

    /**
     * The field line from {@code from} on: a token name, a colon, a value without control characters; {@code what}
     * names the section in the message. Trailer fields follow the same rules (RFC 9112 §7.1.2).
     */
    static void checkFieldLine(CharArrayBuffer line, int from, String what) throws FaultSignal {
        int end = from;
        while (end < line.length() && isTokenChar(line.charAt(end))) {
            end++;
        }
        if (end == line.length() || line.charAt(end) != ':' || end == from) {
            throw malformedFieldLine(line.subSequence(from, end), end == line.length() ? '\n' : line.charAt(end), what);
        }
        if (controlCharacterAt(line, end + 1) >= 0) {
            throw controlCharacter(line.substring(from, end), what);
        }
    }

    /**
     * The fault for a field line whose name (token characters, {@code name}) is followed by {@code next}, which is not
     * the colon it needs: a line end (no colon), or a character no name has (whitespace before the colon, a known
     * smuggling vector RFC 9112 §5.1 requires rejecting). Only the name is quoted: a value may be a secret.
     */
    static FaultSignal malformedFieldLine(CharSequence name, char next, String what) {
        if (next == '\r' || next == '\n') {
            return new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                    "Malformed response " + what + " line: '" + printable(name, 64) + "'");
        }
        return new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR, "Malformed response " + what + " name: '"
                + printable(name, 64) + printable(String.valueOf(next), 1) + "'");
    }

    /**
     * The fault for a status line that is not {@code HTTP/1.x NNN[ reason]}, given as far as it is known (when judged
     * as it arrives, up to the byte that cannot be; a line end may follow): quoted up to that byte, the whole status
     * code at least, so the message does not depend on how the reads were split.
     */
    static FaultSignal malformedStatusLine(CharSequence line) {
        int len = line.length();
        int flaw = 0;
        String pattern = "HTTP/1.D DDD";
        while (flaw < len && flaw < pattern.length()) {
            char c = line.charAt(flaw);
            char p = pattern.charAt(flaw);
            if (!(p == 'D' ? isDigit(c) : c == p)) {
                break;
            }
            flaw++;
        }
        if (flaw < 5) {
            return new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                    "The upstream's response does not start with 'HTTP/': not an HTTP/1.x response");
        }
        if (flaw == pattern.length()) {
            int code = (line.charAt(9) - '0') * 100 + (line.charAt(10) - '0') * 10 + (line.charAt(11) - '0');
            if (code < 100 || code > 599) {
                flaw = 11;
            } else if (len > 12 && line.charAt(12) != ' ') {
                flaw = 12;
            } else {
                flaw = 13;
                while (flaw < len && !isControlChar(line.charAt(flaw))) {
                    flaw++;
                }
            }
        }
        // A line end where the line cannot end yet is not quoted: the line-at-a-time check never sees it.
        int end = flaw >= len || line.charAt(flaw) == '\r' || line.charAt(flaw) == '\n' ? Math.min(flaw, len)
                : flaw + 1;
        return new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                "Malformed response status line: '" + printable(line.subSequence(0, end), 64) + "'");
    }

    static boolean isControlChar(char c) {
        return (c < 0x20 && c != '\t') || c == 0x7f;
    }

    /**
     * A {@code Content-Length} line with a character no length or list of lengths has (a sign, a letter) is judged as
     * it arrives, as a malformed line is: followed by silence it would have been a read timeout, followed by a close an
     * incomplete response, retried. Whether the digits make one valid length is judged with the whole head.
     */
    private static void checkContentLengthCharacters(CharArrayBuffer line) throws FaultSignal {
        String name = HttpHeaders.CONTENT_LENGTH;
        if (line.length() <= name.length() || line.charAt(name.length()) != ':') {
            return;
        }
        for (int i = 0; i < name.length(); i++) {
            if (Character.toLowerCase(line.charAt(i)) != Character.toLowerCase(name.charAt(i))) {
                return;
            }
        }
        for (int i = name.length() + 1; i < line.length(); i++) {
            char c = line.charAt(i);
            if (!isDigit(c) && c != ',' && c != ' ' && c != '\t') {
                throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR, "Invalid response Content-Length '"
                        + printable(line.subSequence(name.length() + 1, line.length()).toString().trim(), 40) + "'");
            }
        }
    }

    /**
     * Where the first control character from {@code from} on is, or -1: in a field's value, or in a line continuing it
     * (obs-fold), a CR or NUL passed on could end a line early for the next recipient (RFC 9110 §5.5).
     */
    static int controlCharacterAt(CharArrayBuffer line, int from) {
        for (int i = from; i < line.length(); i++) {
            char c = line.charAt(i);
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return i;
            }
        }
        return -1;
    }

    static FaultSignal controlCharacter(String name, String what) {
        return new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                "Control character in response " + what + " '" + printable(name, 64) + "'");
    }

    /** A field line already checked by {@link #checkFieldLine}, folded lines joined. */
    private static Header header(CharArrayBuffer line) {
        int colon = line.indexOf(':');
        return new BasicHeader(line.substring(0, colon), line.substringTrimmed(colon + 1, line.length()));
    }

    /**
     * Several {@code Content-Encoding} lines are one list, in order (RFC 9110 §5.3): {@code gzip} twice is a body
     * gzipped twice. HttpClient's decoder reads only one line, so the decoding client undid one layer and handed the
     * caller the other as if it were the content. Joined into one line, every layer is undone (or an unknown one fails
     * as a content-coding fault); for anyone passing the response on, the joined line means the same.
     */
    private static void joinContentCodings(ClassicHttpResponse response) {
        if (response.countHeaders(HttpHeaders.CONTENT_ENCODING) < 2) {
            return;
        }
        StringBuilder joined = new StringBuilder();
        for (Header header : response.getHeaders(HttpHeaders.CONTENT_ENCODING)) {
            if (!header.getValue().isEmpty()) {
                joined.append(joined.length() == 0 ? "" : ", ").append(header.getValue());
            }
        }
        response.removeHeaders(HttpHeaders.CONTENT_ENCODING);
        response.addHeader(HttpHeaders.CONTENT_ENCODING, joined.toString());
    }

    private static void checkFraming(ClassicHttpResponse response) throws FaultSignal {
        Header[] lengths = response.getHeaders(HttpHeaders.CONTENT_LENGTH);
        boolean chunked = response.containsHeader(HttpHeaders.TRANSFER_ENCODING);
        if (chunked && response.getVersion() == HttpVersion.HTTP_1_0) {
            // RFC 9112 §6.1: HTTP/1.0 has no transfer codings, so the framing is faulty; a 1.0 hop would frame the body
            // by close or Content-Length while we read chunks, a smuggling seam.
            throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR, "HTTP/1.0 response with Transfer-Encoding");
        }
        if (lengths.length == 0) {
            return;
        }
        if (chunked) {
            throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                    "Response has both Content-Length and Transfer-Encoding");
        }
        if (lengths.length == 1 && isDigits(lengths[0].getValue())) {
            return; // the usual case: one plain value
        }
        String value = null;
        for (Header header : lengths) {
            for (String part : header.getValue().split(",", -1)) {
                String v = part.trim();
                if (!isDigits(v)) {
                    throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                            "Invalid response Content-Length '" + printable(header.getValue(), 40) + "'");
                }
                if (value != null && !value.equals(v)) {
                    throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                            "Response has conflicting Content-Length values " + value + " and " + v);
                }
                value = v;
            }
        }
        if (lengths.length > 1 || lengths[0].getValue().indexOf(',') >= 0) {
            // Identical repeats are tolerated (RFC 9110 §8.6) but collapsed so nobody downstream sees a list.
            response.removeHeaders(HttpHeaders.CONTENT_LENGTH);
            response.addHeader(HttpHeaders.CONTENT_LENGTH, value);
        }
    }

    /**
     * RFC 9112 §6.1: {@code chunked}, applied once, is the only transfer coding this client decodes. A response in
     * another one ({@code gzip, chunked}, a coding of the upstream's own) is well-formed but cannot be undone here,
     * {@code http_response_transfer_coding}, as a content coding the client cannot decode is
     * {@code http_response_content_coding}; chunked applied twice, or an empty list, is broken framing. For a
     * response that has a body: a {@code HEAD} or {@code 304} response may name the codings a {@code GET} would have.
     */
    static void checkTransferCodings(ClassicHttpResponse response) throws FaultSignal {
        Header[] fields = response.getHeaders(HttpHeaders.TRANSFER_ENCODING);
        if (fields.length == 1 && fields[0].getValue().equalsIgnoreCase("chunked")) {
            return; // the usual case
        }
        List<String> codings = new ArrayList<>();
        for (Header field : fields) {
            for (String part : field.getValue().split(",", -1)) {
                if (!part.trim().isEmpty()) {
                    codings.add(part.trim());
                }
            }
        }
        String listed = printable(String.join(", ", codings), 60);
        long chunkedTimes = codings.stream().filter(c -> c.equalsIgnoreCase("chunked")).count();
        if (codings.isEmpty() || chunkedTimes > 1) {
            throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR, codings.isEmpty()
                    ? "Response has an empty Transfer-Encoding" : "Response is chunked more than once: " + listed);
        }
        if (codings.size() > 1 || chunkedTimes == 0) {
            throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_TRANSFER_CODING,
                    "Response has a transfer coding the client does not decode: " + listed);
        }
        // Chunked alone, in more than one field or among empty list elements: HttpClient reads the first field only.
        response.removeHeaders(HttpHeaders.TRANSFER_ENCODING);
        response.addHeader(HttpHeaders.TRANSFER_ENCODING, "chunked");
    }

    /**
     * The connection's input while a line is read: whether it ended, and how many bytes arrived. The session buffer
     * returns a line cut off by the end of input as if it were complete, and keeps bytes of a line it has not finished
     * where nothing else can see them.
     */
    static final class Arrival extends FilterInputStream {
        long bytes;
        boolean ended;
        private final HeadWatch head;

        Arrival(InputStream in, HeadWatch head) {
            super(in);
            this.head = head;
        }

        /** The stream it watches. */
        InputStream source() {
            return in;
        }

        @Override
        public int read() throws IOException {
            int b = in.read();
            if (b != -1 && head != null) {
                head.check(new byte[] {(byte) b}, 0, 1);
            }
            counted(b == -1 ? -1 : 1);
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = in.read(b, off, len);
            if (n > 0 && head != null) {
                head.check(b, off, n);
            }
            return counted(n);
        }

        private int counted(int n) {
            if (n == -1) {
                ended = true;
            } else {
                bytes += n;
            }
            return n;
        }
    }

    /**
     * Checks the head byte by byte as it arrives: after any empty lines, {@code HTTP/1.x NNN}, then the end of the line
     * or a space and a reason without control characters; then field lines (a token name, a colon, a value without
     * control characters, or a continuation of the field before) up to the empty line, every line ended by LF or CRLF.
     * The session buffer waits for a line break before a line can be judged, so an upstream that answers with bytes
     * that are not HTTP/1.x and then keeps the connection open (an HTTP/2-only server's SETTINGS frame, which holds no
     * line break; lines ended by a bare CR, which is no line end; a NUL before a line break that never comes) would
     * otherwise hang the call until the response timeout and be reported as {@code connection_read_timeout}.
     * Everything rejected here {@link #statusLine} and {@link #checkFieldLine} would reject too, with the same message
     * (from the same helpers), however the reads were split.
     */
    private static final class HeadWatch {
        private static final String PATTERN = "HTTP/1.D DDD";
        /** Most characters kept of a status line or a field name: one more than a message quotes, for its "...". */
        private static final int KEPT = 65;
        private static final int LINE_START = 0;
        private static final int NAME = 1;
        private static final int VALUE = 2;
        /**
         * The status line so far; past it, the latest field name (a continuation line's fault names the field it
         * continues). Never a field value: a message quoting one could leak a secret (a cookie) into logs.
         */
        private final StringBuilder seen = new StringBuilder(KEPT);
        /** Characters of the status line's pattern matched; one more once the space before the reason is seen. */
        private int matched;
        private boolean afterCr;
        /** Past the status line: where in a field line the next byte falls; whether a field line came yet. */
        private boolean inFields;
        private int field = LINE_START;
        private boolean anyField;
        /** The status code, once its three digits arrived. */
        private int code;
        /** Past the end of a final head: what follows is a body, never scanned. */
        private boolean done;

        /** Whether it has seen every byte since the start of the head now arriving (an interim head came before). */
        boolean following() {
            return !done;
        }

        void check(byte[] b, int off, int n) throws FaultSignal {
            for (int i = off; i < off + n && !done; i++) {
                char c = (char) (b[i] & 0xff);
                if (!inFields && seen.length() < KEPT) {
                    seen.append(c);
                }
                if (afterCr || c == '\r' || c == '\n') {
                    lineBreak(c);
                } else if (inFields) {
                    field(c);
                } else if (matched < PATTERN.length()) {
                    char p = PATTERN.charAt(matched);
                    if (!(p == 'D' ? isDigit(c) : c == p)) {
                        throw malformedStatusLine(seen);
                    }
                    if (++matched == PATTERN.length()) {
                        code = (seen.charAt(9) - '0') * 100 + (seen.charAt(10) - '0') * 10 + (c - '0');
                        if (code < 100 || code > 599) {
                            throw malformedStatusLine(seen);
                        }
                    }
                } else if (matched == PATTERN.length()) {
                    if (c != ' ') {
                        throw malformedStatusLine(seen);
                    }
                    matched++;
                } else if (isControlChar(c)) {
                    throw malformedStatusLine(seen);
                }
            }
        }

        private void field(char c) throws FaultSignal {
            if (field == LINE_START) {
                if (isTokenChar(c)) {
                    field = NAME;
                    seen.setLength(0);
                    seen.append(c);
                    return;
                }
                if (c != ' ' && c != '\t') {
                    throw malformedFieldLine("", c, "header");
                }
                if (!anyField) {
                    throw new FaultSignal(UpstreamFault.HTTP_PROTOCOL_ERROR,
                            "Response header section starts with a continuation line");
                }
                field = VALUE; // the field before continues, under its name
                return;
            }
            if (field == NAME) {
                if (c == ':') {
                    field = VALUE;
                } else if (isTokenChar(c)) {
                    if (seen.length() < KEPT) {
                        seen.append(c);
                    }
                } else {
                    throw malformedFieldLine(seen, c, "header");
                }
            } else if (isControlChar(c)) {
                throw controlCharacter(seen.toString(), "header");
            }
        }

        /** A CR, an LF, or the byte after a CR: a line ends only with LF or CRLF (RFC 9112 §2.2). */
        private void lineBreak(char c) throws FaultSignal {
            if (afterCr && c != '\n' || !afterCr && c == '\r' && !mayEndHere()) {
                throw bareCrOrEarlyEnd();
            }
            afterCr = c == '\r';
            if (c != '\n') {
                return;
            }
            if (!mayEndHere()) {
                throw bareCrOrEarlyEnd();
            }
            if (!inFields) {
                if (matched > 0) {
                    inFields = true;
                }
                seen.setLength(0); // an empty line before the status line, or the status line judged whole
            } else if (field == LINE_START) {
                // The empty line that ends the head. An interim head has no body: the next head follows at once, and
                // may have come in the same read, where its parse cannot see it arrive. After a 101 the connection
                // speaks another protocol, which is no head (nor the watch's to judge).
                done = code >= 200 || code == 101;
                matched = 0;
                inFields = false;
                anyField = false;
                seen.setLength(0);
            } else {
                anyField = true;
                field = LINE_START;
            }
        }

        /** The fault the line check gives for a line with a CR not before its LF, or a line end it cannot have. */
        private FaultSignal bareCrOrEarlyEnd() {
            if (!inFields) {
                return malformedStatusLine(seen);
            }
            // A CR in a value is a control character in it; before a colon it ends the name as a line end would.
            return field == VALUE ? controlCharacter(seen.toString(), "header")
                    : malformedFieldLine(field == NAME ? seen : "", '\r', "header");
        }

        /** Whether the line so far may end at a line break. */
        private boolean mayEndHere() {
            return inFields ? field != NAME : matched == 0 || matched >= PATTERN.length();
        }
    }

    /**
     * {@code 1*DIGIT} whose value a {@code long} holds: at most 18 digits after any leading zeros, which do not change
     * the value (RFC 9110 §8.6 puts no bound on their number).
     */
    private static boolean isDigits(String v) {
        int n = v.length();
        if (n == 0) {
            return false;
        }
        int significant = 0;
        for (int i = 0; i < n; i++) {
            char c = v.charAt(i);
            if (!isDigit(c)) {
                return false;
            }
            if (c != '0' || significant > 0) {
                significant++;
            }
        }
        if (significant < 19) {
            return true;
        }
        // RFC 9110 §8.6: any length a long holds is a length (a body cut short of it is a truncation, not a malformed
        // head); one past it would overflow, and is refused rather than misread.
        try {
            Long.parseLong(v.substring(n - significant));
            return true;
        } catch (NumberFormatException overflow) {
            return false;
        }
    }

    private static boolean isDigit(int c) {
        return c >= '0' && c <= '9';
    }

    private static boolean isTokenChar(char c) {
        return c > 0x20 && c < 0x7f && "\"(),/:;<=>?@[\\]{}".indexOf(c) < 0;
    }

    static String printable(CharSequence text, int max) {
        StringBuilder sb = new StringBuilder(Math.min(text.length(), max));
        for (int i = 0; i < text.length() && i < max; i++) {
            char c = text.charAt(i);
            sb.append(c >= 0x20 && c < 0x7f ? c : '?');
        }
        return text.length() > max ? sb.append("...").toString() : sb.toString();
    }
}
