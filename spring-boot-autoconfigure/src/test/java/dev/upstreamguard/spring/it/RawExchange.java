package dev.upstreamguard.spring.it;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * One HTTP/1.1 GET over a plain socket to 127.0.0.1 on a kept-alive connection, reporting whether the response ended
 * properly (its {@code Content-Length} or its last chunk arrived) or the connection was cut: the one thing a client
 * library hides.
 */
final class RawExchange {

    private RawExchange() {
    }

    /** The status line and header section, and whether the body that followed was complete. */
    record Result(String head, long bodyBytes, boolean complete) {
    }

    static Result get(int port, String path) throws IOException {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(30_000);
            socket.getOutputStream().write(("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\n\r\n")
                    .getBytes(StandardCharsets.ISO_8859_1));
            InputStream in = new BufferedInputStream(socket.getInputStream());
            StringBuilder head = new StringBuilder();
            for (String line = line(in); line != null && !line.isEmpty(); line = line(in)) {
                head.append(line).append('\n');
            }
            String lower = head.toString().toLowerCase(Locale.ROOT);
            if (lower.contains("transfer-encoding: chunked")) {
                long total = 0;
                try {
                    for (String size = line(in); size != null; size = line(in)) {
                        long n = Long.parseLong(size.split(";")[0].trim(), 16);
                        if (n == 0) {
                            return new Result(head.toString(), total, true);
                        }
                        in.skipNBytes(n);
                        total += n;
                        if (line(in) == null) {
                            break;
                        }
                    }
                } catch (IOException | NumberFormatException cut) {
                    // A reset or garbage where a chunk was due: not a proper end.
                }
                return new Result(head.toString(), total, false);
            }
            int at = lower.indexOf("content-length:");
            long length = at < 0 ? 0 : Long.parseLong(lower.substring(at + 15, lower.indexOf('\n', at)).trim());
            long read = 0;
            try {
                while (read < length && in.read() >= 0) {
                    read++;
                }
            } catch (IOException cut) {
                // Cut short.
            }
            return new Result(head.toString(), read, read == length);
        }
    }

    private static String line(InputStream in) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int b = in.read(); b >= 0; b = in.read()) {
            if (b == '\n') {
                return sb.toString().strip();
            }
            sb.append((char) b);
        }
        return sb.length() == 0 ? null : sb.toString();
    }
}
