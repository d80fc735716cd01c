package dev.upstreamguard.testing;

import dev.upstreamguard.testing.RawUpstream.Behaviour;
import dev.upstreamguard.testing.RawUpstream.Request;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;

/**
 * Canned {@link RawUpstream} behaviours: one healthy upstream and every kind of broken one the fault tests need.
 *
 * <p>Unless said otherwise a behaviour first reads the whole request (so {@link RawUpstream#requestCount()} counts
 * what the upstream received), then answers once and closes the connection. The byte-exact responses are public
 * constants so that a test can say precisely what was on the wire.
 */
public final class Behaviours {

    /** A 256 KiB header value: far over any sane header line limit. */
    public static final int HUGE_HEADER_BYTES = 256 * 1024;

    /** How many header fields {@link #manyHeaders()} sends. */
    public static final int MANY_HEADERS = 2000;

    /** What an SSH server says first: certainly not HTTP. */
    public static final String NOT_HTTP = "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n";

    /** A status line with a two-digit status code. */
    public static final String MALFORMED_STATUS_LINE = "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok";

    /** Two different Content-Length values: the body could be framed two ways (response smuggling). */
    public static final String CONFLICTING_CONTENT_LENGTH =
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";

    /** Content-Length together with Transfer-Encoding (RFC 9112 §6.3: a smuggling signature). */
    public static final String CONTENT_LENGTH_AND_TRANSFER_ENCODING =
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";

    /** A response head cut off in the middle of the header section, then the connection closes. */
    public static final String TRUNCATED_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/pl";

    /** Announces 100 bytes, sends 16, then the connection closes. */
    public static final String TRUNCATED_BODY = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly sixteen b..";

    /** A chunk size that is not hexadecimal. */
    public static final String BAD_CHUNK =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";

    /** Announces a 0x64 (100) byte chunk, sends 16 bytes of it, then the connection closes. */
    public static final String TRUNCATED_CHUNK =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nonly sixteen b..";

    /** What a plain HTTP server answers to a TLS ClientHello (as nginx does). */
    public static final String PLAIN_HTTP_BAD_REQUEST =
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
                    + "bad request";

    private Behaviours() {
    }

    /**
     * A healthy keep-alive upstream: answers every request on the connection with 200 and {@code body} (as
     * {@code text/plain}), until the client closes it or sends {@code Connection: close}.
     */
    public static Behaviour ok(String body) {
        return status(200, body);
    }

    /** Like {@link #ok(String)} but with any status. */
    public static Behaviour status(int status, String body) {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        String head = "HTTP/1.1 " + status + " " + reason(status) + "\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + "Content-Length: " + bytes.length + "\r\n\r\n";
        return c -> {
            for (Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write(concat(head.getBytes(StandardCharsets.ISO_8859_1), bytes));
                if ("close".equalsIgnoreCase(r.header("Connection"))) {
                    return;
                }
            }
        };
    }

    /** Reads the request, writes {@code raw} exactly as given (ISO-8859-1), then closes the connection. */
    public static Behaviour respond(String raw) {
        return respond(raw.getBytes(StandardCharsets.ISO_8859_1));
    }

    /** Reads the request, writes {@code raw} exactly as given, then closes the connection. */
    public static Behaviour respond(byte[] raw) {
        return c -> {
            if (c.readRequest() != null) {
                c.write(raw);
            }
        };
    }

    /** Answers with bytes that are not HTTP at all. */
    public static Behaviour notHttp() {
        return respond(NOT_HTTP);
    }

    /** Answers with a malformed status line. */
    public static Behaviour malformedStatusLine() {
        return respond(MALFORMED_STATUS_LINE);
    }

    /** Answers with one {@value #HUGE_HEADER_BYTES}-byte header. */
    public static Behaviour hugeHeader() {
        StringBuilder sb = new StringBuilder(HUGE_HEADER_BYTES + 100).append("HTTP/1.1 200 OK\r\nX-Huge: ");
        char[] value = new char[HUGE_HEADER_BYTES];
        Arrays.fill(value, 'a');
        return respond(sb.append(value).append("\r\nContent-Length: 2\r\n\r\nok").toString());
    }

    /** Answers with {@value #MANY_HEADERS} small header fields. */
    public static Behaviour manyHeaders() {
        StringBuilder sb = new StringBuilder("HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < MANY_HEADERS; i++) {
            sb.append("X-Header-").append(i).append(": v\r\n");
        }
        return respond(sb.append("Content-Length: 2\r\n\r\nok").toString());
    }

    /** Answers with two different Content-Length headers. */
    public static Behaviour conflictingContentLength() {
        return respond(CONFLICTING_CONTENT_LENGTH);
    }

    /** Answers with both Content-Length and Transfer-Encoding. */
    public static Behaviour contentLengthAndTransferEncoding() {
        return respond(CONTENT_LENGTH_AND_TRANSFER_ENCODING);
    }

    /** A status line and part of a header, then the connection closes: the response started but is incomplete. */
    public static Behaviour truncatedHead() {
        return respond(TRUNCATED_HEAD);
    }

    /** A valid head announcing 100 bytes, 16 bytes of body, then the connection closes. */
    public static Behaviour truncatedBody() {
        return respond(TRUNCATED_BODY);
    }

    /** A valid chunked head, then a chunk size that is not hexadecimal. */
    public static Behaviour badChunk() {
        return respond(BAD_CHUNK);
    }

    /** A valid chunked head, then a chunk cut short by the connection closing. */
    public static Behaviour truncatedChunk() {
        return respond(TRUNCATED_CHUNK);
    }

    /**
     * A valid head with {@code Content-Encoding: gzip} and a correctly framed body that starts as gzip (valid
     * 10-byte header) but whose deflate data is corrupt.
     */
    public static Behaviour brokenGzip() {
        return respond(concat(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
                + "Content-Length: " + BROKEN_GZIP.length + "\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1),
                BROKEN_GZIP));
    }

    /** The body {@link #brokenGzip()} sends: a gzip header, then a deflate block of the invalid type 3. */
    public static final byte[] BROKEN_GZIP = brokenGzipBytes();

    private static byte[] brokenGzipBytes() {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.writeBytes(new byte[] {0x1f, (byte) 0x8b, 8, 0, 0, 0, 0, 0, 0, (byte) 0xff});
        byte[] garbage = new byte[32];
        Arrays.fill(garbage, (byte) 0xff);
        b.writeBytes(garbage);
        return b.toByteArray();
    }

    /** Reads the request, then closes the connection (FIN) without a byte of response. */
    public static Behaviour closeBeforeResponse() {
        return c -> {
            if (c.readRequest() != null) {
                c.close();
            }
        };
    }

    /** Reads the request, then resets the connection (RST) without a byte of response. */
    public static Behaviour resetBeforeResponse() {
        return c -> {
            if (c.readRequest() != null) {
                c.reset();
            }
        };
    }

    /**
     * Reads the request head only, writes {@code raw}, then closes with the body still unread — which makes the
     * kernel send an RST — or resets outright: how a server refuses a body half way (413, 401).
     */
    public static Behaviour answerBeforeTheBody(String raw, boolean reset) {
        return c -> {
            if (!c.skipHead()) {
                return;
            }
            c.write(raw);
            if (reset) {
                c.reset();
            } else {
                c.close();
            }
        };
    }

    /**
     * A keep-alive upstream that answers each request as the last segment of its path says: {@code /ok} (200 with
     * {@code body}, by Content-Length), {@code /chunked} (200 with {@code body}, chunked), {@code /unavailable} (503
     * with {@code Retry-After: 30}); and breaks the connection for {@code /reset}, {@code /truncated} (a 200 announcing more
     * than it sends), {@code /not-http}, {@code /stall} (never answers) and anything else (closed unanswered). For soak
     * tests that mix healthy and broken exchanges on the same connections.
     */
    public static Behaviour byPath(String body) {
        return c -> {
            for (Request r = c.readRequest(); r != null; r = c.readRequest()) {
                switch (r.target().substring(r.target().lastIndexOf('/'))) {
                    case "/ok" -> c.write("HTTP/1.1 200 OK\r\nContent-Length: " + body.length() + "\r\n\r\n" + body);
                    case "/chunked" -> c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + Integer.toHexString(body.length()) + "\r\n" + body + "\r\n0\r\n\r\n");
                    case "/unavailable" -> c.write("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\n"
                            + "Content-Length: 4\r\n\r\nbusy");
                    case "/reset" -> {
                        c.reset();
                        return;
                    }
                    case "/truncated" -> {
                        c.write("HTTP/1.1 200 OK\r\nContent-Length: " + (body.length() + 2000) + "\r\n\r\n" + body);
                        return;
                    }
                    case "/not-http" -> {
                        c.write(NOT_HTTP);
                        return;
                    }
                    case "/stall" -> {
                        c.stallUntilClosed();
                        return;
                    }
                    default -> {
                        return; // closed without an answer
                    }
                }
            }
        };
    }

    /** Reads the request and never answers, until the client or the upstream closes the connection. */
    public static Behaviour stall() {
        return c -> {
            if (c.readRequest() != null) {
                c.stallUntilClosed();
            }
        };
    }

    /**
     * Like {@link #stall()}, but counts {@code requestRead} down once the request was read, so a test can wait until a
     * call is surely in flight.
     */
    public static Behaviour stall(CountDownLatch requestRead) {
        return c -> {
            if (c.readRequest() != null) {
                requestRead.countDown();
                c.stallUntilClosed();
            }
        };
    }

    /**
     * What a plain HTTP server does when spoken TLS to: reads whatever arrived (the ClientHello), answers
     * {@link #PLAIN_HTTP_BAD_REQUEST} in plain text, and waits for the client to hang up.
     */
    public static Behaviour plainHttpToTls() {
        return c -> {
            byte[] buffer = new byte[16 * 1024];
            if (c.in().read(buffer) == -1) {
                return;
            }
            c.write(PLAIN_HTTP_BAD_REQUEST);
            c.stallUntilClosed();
        };
    }

    /**
     * A TLS record carrying a fatal {@code handshake_failure} alert (RFC 8446 §6): content type 21, TLS 1.2 record
     * version, length 2, level fatal (2), description 40.
     */
    public static final byte[] TLS_FATAL_HANDSHAKE_FAILURE_ALERT = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28};

    /**
     * A TLS server that refuses every handshake: reads the ClientHello and answers with
     * {@link #TLS_FATAL_HANDSHAKE_FAILURE_ALERT}, as a server does that shares no cipher suite or protocol version with
     * the client (mockwebserver3's {@code failHandshake()} sends a ClientHello instead, which is another fault).
     */
    public static Behaviour tlsFatalAlert() {
        return c -> {
            byte[] buffer = new byte[16 * 1024];
            if (c.in().read(buffer) == -1) {
                return;
            }
            c.write(TLS_FATAL_HANDSHAKE_FAILURE_ALERT);
            c.stallUntilClosed();
        };
    }

    /**
     * A forward proxy's tunnel: reads one {@code CONNECT host:port} request, connects to that loopback port, answers
     * 200 and then copies bytes both ways until either side closes (a close is passed on as a close, so a TLS
     * connection cut without close_notify reaches the client as such).
     */
    public static Behaviour connectTunnel() {
        return c -> {
            Request connect = c.readRequest();
            if (connect == null || !"CONNECT".equals(connect.method())) {
                return;
            }
            int port = Integer.parseInt(connect.target().substring(connect.target().lastIndexOf(':') + 1));
            try (java.net.Socket target = new java.net.Socket(java.net.InetAddress.getLoopbackAddress(), port)) {
                c.write("HTTP/1.1 200 Connection established\r\n\r\n");
                Thread up = new Thread(() -> {
                    try {
                        c.in().transferTo(target.getOutputStream());
                        target.shutdownOutput();
                    } catch (java.io.IOException closed) {
                        // Either side went away.
                    }
                }, "tunnel-up");
                up.setDaemon(true);
                up.start();
                target.getInputStream().transferTo(c.socket().getOutputStream());
                c.socket().shutdownOutput();
                c.stallUntilClosed();
            }
        };
    }

    /** A keep-alive upstream answering every request with 200 and the request's own body. */
    public static Behaviour echo() {
        return c -> {
            for (Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write(concat(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                        + r.body().length + "\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1), r.body()));
            }
        };
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] all = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    private static String reason(int status) {
        switch (status) {
            case 200: return "OK";
            case 404: return "Not Found";
            case 429: return "Too Many Requests";
            case 500: return "Internal Server Error";
            case 502: return "Bad Gateway";
            case 503: return "Service Unavailable";
            case 504: return "Gateway Timeout";
            default: return "Status";
        }
    }
}
