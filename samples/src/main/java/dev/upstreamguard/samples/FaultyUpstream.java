package dev.upstreamguard.samples;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * An HTTP upstream that misbehaves on purpose, on a raw {@link ServerSocket} bound to 127.0.0.1, so that every way an
 * upstream can fail is one request away. The first path segment picks the behaviour:
 * <ul>
 * <li>{@code /ok}: 200 with a small body;
 * <li>{@code /slow}: reads the request and never answers (until the client gives up);
 * <li>{@code /reset}: resets the connection after reading the request;
 * <li>{@code /close}: closes the connection after reading the request, without a byte of response;
 * <li>{@code /not-http}: answers with an SSH banner instead of HTTP;
 * <li>{@code /truncated}: promises 100 bytes of body and sends 16;
 * <li>{@code /unavailable}: 503 with {@code Retry-After: 30};
 * <li>{@code /flaky}: 503 without Retry-After (retried, then passed through);
 * <li>{@code /huge-header}: a 64 KiB response header;
 * <li>{@code /too-big}: a 2 MiB body, over the sample's {@code max-response-body} of 1 MiB;
 * <li>anything else: 404.
 * </ul>
 */
public final class FaultyUpstream implements AutoCloseable {

    /** Every behaviour, in tour order. */
    public static final List<String> FAULTS = List.of("ok", "slow", "reset", "close", "not-http", "truncated",
            "unavailable", "flaky", "huge-header", "too-big");

    private static final Map<Integer, FaultyUpstream> RUNNING = new ConcurrentHashMap<>();

    private final ServerSocket server;
    private final ExecutorService workers = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "faulty-upstream");
        t.setDaemon(true);
        return t;
    });

    private FaultyUpstream(ServerSocket server) {
        this.server = server;
    }

    /** Starts an upstream on an ephemeral port of 127.0.0.1. */
    public static FaultyUpstream start() throws IOException {
        FaultyUpstream upstream = new FaultyUpstream(new ServerSocket(0, 100, InetAddress.getLoopbackAddress()));
        upstream.workers.execute(upstream::accept);
        RUNNING.put(upstream.port(), upstream);
        return upstream;
    }

    /** The running upstream on {@code port}, if this process started one. */
    public static FaultyUpstream running(int port) {
        return RUNNING.get(port);
    }

    /** Its port. */
    public int port() {
        return server.getLocalPort();
    }

    /** {@code http://127.0.0.1:<port>}. */
    public String url() {
        return "http://127.0.0.1:" + port();
    }

    /** A port on 127.0.0.1 that nothing listens on, for "connection refused". */
    public static int closedPort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    private void accept() {
        while (!server.isClosed()) {
            try {
                Socket socket = server.accept();
                workers.execute(() -> serve(socket));
            } catch (IOException e) {
                return; // closed
            }
        }
    }

    private static void serve(Socket socket) {
        try (socket) {
            InputStream in = socket.getInputStream();
            String head = readHead(in);
            if (head == null) {
                return;
            }
            String target = head.substring(head.indexOf(' ') + 1);
            target = target.substring(0, Math.max(0, target.indexOf(' ')));
            String path = target.contains("?") ? target.substring(0, target.indexOf('?')) : target;
            String fault = path.replaceFirst("^/+", "").split("/", 2)[0];
            OutputStream out = socket.getOutputStream();
            switch (fault) {
                case "ok":
                    respond(out, "200 OK", "", "ok: the upstream answered normally\n");
                    break;
                case "slow":
                    // Never answer: wait until the client gives up and closes, which ends this read.
                    while (in.read() >= 0) {
                        // discard
                    }
                    break;
                case "reset":
                    socket.setSoLinger(true, 0);
                    break;
                case "close":
                    break;
                case "not-http":
                    out.write("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n".getBytes(StandardCharsets.US_ASCII));
                    break;
                case "truncated":
                    out.write(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n"
                            + "Connection: close\r\n\r\nonly sixteen b..").getBytes(StandardCharsets.US_ASCII));
                    break;
                case "unavailable":
                    respond(out, "503 Service Unavailable", "Retry-After: 30\r\n",
                            "busy: the upstream asks to come back in 30 s\n");
                    break;
                case "flaky":
                    respond(out, "503 Service Unavailable", "", "busy\n");
                    break;
                case "huge-header":
                    respond(out, "200 OK", "X-Huge: " + "x".repeat(64 * 1024) + "\r\n", "a huge header\n");
                    break;
                case "too-big":
                    out.write(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                            + (2 << 20) + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
                    byte[] block = new byte[64 * 1024];
                    for (int i = 0; i < 32; i++) {
                        out.write(block); // fails once the gateway closes the connection, as it should
                    }
                    break;
                default:
                    respond(out, "404 Not Found", "", "no such behaviour: " + fault + "\n");
            }
            out.flush();
        } catch (SocketException e) {
            // The client went away: expected for slow requests.
        } catch (IOException e) {
            // Nothing to do for a demo upstream.
        }
    }

    private static void respond(OutputStream out, String status, String headers, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        out.write(("HTTP/1.1 " + status + "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "
                + bytes.length + "\r\nConnection: close\r\n" + headers + "\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(bytes);
    }

    /** The request line and headers, or {@code null} if the client closed first; the body is not read. */
    private static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        int state = 0;
        while (state < 4) {
            int b = in.read();
            if (b < 0) {
                return null;
            }
            head.write(b);
            state = (b == '\r' && (state == 0 || state == 2)) || (b == '\n' && (state == 1 || state == 3))
                    ? state + 1 : (b == '\r' ? 1 : 0);
            if (head.size() > 64 * 1024) {
                return null;
            }
        }
        return head.toString(StandardCharsets.ISO_8859_1);
    }

    @Override
    public void close() throws IOException {
        RUNNING.remove(port());
        server.close();
        workers.shutdownNow();
    }
}
