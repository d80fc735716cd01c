package dev.upstreamguard.gateway;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * An HTTP/1.1 client over a plain socket to 127.0.0.1, so tests can send exactly the bytes they mean (hop-by-hop
 * headers, {@code ..} in paths, absolute-form targets) and see exactly what came back, including whether the
 * response ended properly or the connection was cut.
 */
final class RawClient {

    static final int READ_TIMEOUT_MILLIS = 30_000;

    private RawClient() {
    }

    /** A response as read off the wire. */
    record Response(int status, Map<String, List<String>> headers, byte[] body, boolean complete,
            Map<String, List<String>> trailers) {

        Response(int status, Map<String, List<String>> headers, byte[] body, boolean complete) {
            this(status, headers, body, complete, Map.of());
        }

        String header(String name) {
            List<String> values = headers.get(name.toLowerCase(Locale.ROOT));
            return values == null || values.isEmpty() ? null : values.get(0);
        }

        List<String> headers(String name) {
            List<String> values = headers.get(name.toLowerCase(Locale.ROOT));
            return values == null ? List.of() : values;
        }

        String bodyUtf8() {
            return new String(body, StandardCharsets.UTF_8);
        }

        @Override
        public String toString() {
            return status + " " + headers + " complete=" + complete + " body=" + bodyUtf8()
                    + (trailers.isEmpty() ? "" : " trailers=" + trailers);
        }
    }

    /**
     * {@code method target} with the given extra header lines and {@code Host}. The connection is kept alive (HTTP/1.1
     * default) so that the server must frame the body by length or chunks: a body delimited by closing the
     * connection could not show an abort.
     */
    static Response request(int port, String method, String target, String... headerLines) throws IOException {
        return send(port, head(port, method, target, headerLines), null);
    }

    static String head(int port, String method, String target, String... headerLines) {
        StringBuilder sb = new StringBuilder();
        sb.append(method).append(' ').append(target).append(" HTTP/1.1\r\n");
        sb.append("Host: 127.0.0.1:").append(port).append("\r\n");
        for (String line : headerLines) {
            sb.append(line).append("\r\n");
        }
        sb.append("\r\n");
        return sb.toString();
    }

    /** Sends {@code head} (and {@code body}), reads one response. */
    static Response send(int port, String head, byte[] body) throws IOException {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(head.getBytes(StandardCharsets.ISO_8859_1));
            if (body != null) {
                out.write(body);
            }
            out.flush();
            boolean isHead = head.startsWith("HEAD ");
            return read(new BufferedInputStream(socket.getInputStream()), isHead);
        }
    }

    /** Reads one response (skipping interim 1xx responses) from {@code in}. */
    static Response read(InputStream in, boolean isHead) throws IOException {
        for (;;) {
            String statusLine = line(in);
            if (statusLine == null) {
                throw new EOFException("The connection closed before a response");
            }
            String[] parts = statusLine.split(" ", 3);
            int status = Integer.parseInt(parts[1]);
            Map<String, List<String>> headers = new LinkedHashMap<>();
            for (String l = line(in); l != null && !l.isEmpty(); l = line(in)) {
                int colon = l.indexOf(':');
                headers.computeIfAbsent(l.substring(0, colon).trim().toLowerCase(Locale.ROOT), k -> new ArrayList<>())
                        .add(l.substring(colon + 1).trim());
            }
            if (status >= 100 && status < 200) {
                continue;
            }
            Map<String, List<String>> fixed = Collections.unmodifiableMap(headers);
            if (isHead || status == 204 || status == 304) {
                return new Response(status, fixed, new byte[0], true);
            }
            List<String> te = headers.get("transfer-encoding");
            List<String> cl = headers.get("content-length");
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            boolean complete;
            Map<String, List<String>> trailers = new LinkedHashMap<>();
            if (te != null && te.get(te.size() - 1).toLowerCase(Locale.ROOT).contains("chunked")) {
                complete = chunked(in, body, trailers);
            } else if (cl != null) {
                long length = Long.parseLong(cl.get(0));
                complete = copy(in, body, length) == length;
            } else {
                copy(in, body, Long.MAX_VALUE);
                complete = true;
            }
            return new Response(status, fixed, body.toByteArray(), complete, Collections.unmodifiableMap(trailers));
        }
    }

    private static boolean chunked(InputStream in, ByteArrayOutputStream body, Map<String, List<String>> trailers)
            throws IOException {
        try {
            for (;;) {
                String sizeLine = line(in);
                if (sizeLine == null) {
                    return false;
                }
                int semicolon = sizeLine.indexOf(';');
                long size = Long.parseLong((semicolon < 0 ? sizeLine : sizeLine.substring(0, semicolon)).trim(), 16);
                if (size == 0) {
                    for (String l = line(in); l != null && !l.isEmpty(); l = line(in)) {
                        int colon = l.indexOf(':');
                        trailers.computeIfAbsent(l.substring(0, colon).trim().toLowerCase(Locale.ROOT),
                                k -> new ArrayList<>()).add(l.substring(colon + 1).trim());
                    }
                    return true;
                }
                if (copy(in, body, size) < size) {
                    return false;
                }
                if (line(in) == null) {
                    return false;
                }
            }
        } catch (IOException | NumberFormatException cut) {
            // A reset or garbage where a chunk was due: the response did not end properly.
            return false;
        }
    }

    /** Copies up to {@code max} bytes; stops early at EOF or a reset. Returns the bytes copied. */
    private static long copy(InputStream in, ByteArrayOutputStream body, long max) {
        byte[] buffer = new byte[16 * 1024];
        long total = 0;
        try {
            while (total < max) {
                int n = in.read(buffer, 0, (int) Math.min(buffer.length, max - total));
                if (n < 0) {
                    break;
                }
                body.write(buffer, 0, n);
                total += n;
            }
        } catch (IOException reset) {
            // The connection was cut: what arrived is what there is.
        }
        return total;
    }

    /**
     * Reads what arrives into {@code seen} (as ISO-8859-1) until it ends with or contains {@code text}: a streamed part
     * the proxy must pass on before the upstream sends more. End of input first is an {@link EOFException}.
     */
    static void readUntil(InputStream in, StringBuilder seen, String text) throws IOException {
        byte[] buffer = new byte[4096];
        while (seen.indexOf(text) < 0) {
            int n = in.read(buffer);
            if (n < 0) {
                throw new EOFException("Input ended before \"" + text + "\" arrived; got: " + seen);
            }
            seen.append(new String(buffer, 0, n, StandardCharsets.ISO_8859_1));
        }
    }

    /** One CRLF- (or LF-) terminated line as ISO-8859-1, or {@code null} at EOF before any byte. */
    static String line(InputStream in) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (;;) {
            int b = in.read();
            if (b == -1) {
                if (sb.length() == 0) {
                    return null;
                }
                throw new EOFException("EOF in the middle of a line: " + sb);
            }
            if (b == '\n') {
                int len = sb.length();
                return len > 0 && sb.charAt(len - 1) == '\r' ? sb.substring(0, len - 1) : sb.toString();
            }
            sb.append((char) b);
        }
    }
}
