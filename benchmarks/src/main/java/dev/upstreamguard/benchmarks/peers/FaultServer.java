package dev.upstreamguard.benchmarks.peers;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;

/**
 * The fault matrix's upstream: raw sockets on 127.0.0.1, one broken behaviour per path {@code /<peer>/<case>/...}
 * (the peer in the path keeps per-peer counts apart). Also a TLS port with a self-signed certificate, a closed port
 * and a "blackhole" port whose connects time out (a listener with a full accept queue, as the core module's test
 * {@code Blackhole} does). Every connection is a daemon thread with a bounded life.
 */
final class FaultServer implements AutoCloseable {

    static final int BODY_LONG = 1 << 20;
    static final int BODY_SENT = 512 * 1024;
    static final int HTTP10_BODY = 200 * 1024;
    private static final int MAX_HOLD_MS = 30_000;

    private final ServerSocket plain;
    private final ServerSocket tls;
    private final ServerSocket blackhole;
    private final List<Socket> fillers = new ArrayList<>();
    private final int closedPort;
    private final Map<String, AtomicInteger> counts = new ConcurrentHashMap<>();
    /** Per {@code peer/case}: the warm-up connection was dropped while it idled. */
    private final Map<String, CountDownLatch> idleDrops = new ConcurrentHashMap<>();
    private volatile boolean closed;

    FaultServer(Path workDir) throws Exception {
        InetAddress lo = InetAddress.getLoopbackAddress();
        plain = new ServerSocket(0, 256, lo);
        tls = selfSigned(workDir).getServerSocketFactory().createServerSocket(0, 64, lo);
        try (ServerSocket s = new ServerSocket(0, 1, lo)) {
            closedPort = s.getLocalPort();
        }
        blackhole = new ServerSocket(0, 1, lo);
        fill(blackhole);
        accept(plain, "fault-plain");
        accept(tls, "fault-tls");
    }

    int port() {
        return plain.getLocalPort();
    }

    int tlsPort() {
        return tls.getLocalPort();
    }

    int closedPort() {
        return closedPort;
    }

    int blackholePort() {
        return blackhole.getLocalPort();
    }

    /** Requests the upstream received for one peer and case. */
    int count(String peer, String kase) {
        AtomicInteger n = counts.get(peer + "/" + kase);
        return n == null ? 0 : n.get();
    }

    /** A keystore made by the JDK's keytool: EC key, CN and SAN 127.0.0.1, trusted by nobody. */
    private static SSLContext selfSigned(Path dir) throws Exception {
        Path store = dir.resolve("fault-upstream.p12");
        Files.deleteIfExists(store);
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "keytool").toString(),
                "-genkeypair", "-alias", "upstream", "-keyalg", "EC", "-groupname", "secp256r1",
                "-dname", "CN=127.0.0.1", "-ext", "SAN=ip:127.0.0.1", "-validity", "2", "-storetype", "PKCS12",
                "-keystore", store.toString(), "-storepass", "changeit", "-keypass", "changeit")
                .redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("keytool failed: " + new String(out, StandardCharsets.UTF_8));
        }
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(store)) {
            ks.load(in, "changeit".toCharArray());
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, "changeit".toCharArray());
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), null, null);
        return ctx;
    }

    /** Fills the accept queue until two connects in a row time out: further SYNs are dropped. */
    private void fill(ServerSocket listener) throws IOException {
        InetSocketAddress address = new InetSocketAddress(listener.getInetAddress(), listener.getLocalPort());
        int timeouts = 0;
        for (int i = 0; i < 64; i++) {
            Socket s = new Socket();
            try {
                s.connect(address, 200);
            } catch (SocketTimeoutException full) {
                s.close();
                if (++timeouts == 2) {
                    return;
                }
                continue;
            }
            timeouts = 0;
            fillers.add(s);
        }
        throw new IOException("could not fill a loopback accept queue: connect timeouts cannot be simulated here");
    }

    private void accept(ServerSocket listener, String name) {
        Thread t = new Thread(() -> {
            while (!closed) {
                try {
                    Socket s = listener.accept();
                    Thread c = new Thread(() -> serve(s), name + "-conn");
                    c.setDaemon(true);
                    c.start();
                } catch (IOException e) {
                    if (closed) {
                        return;
                    }
                }
            }
        }, name);
        t.setDaemon(true);
        t.start();
    }

    private void serve(Socket s) {
        try (s) {
            s.setSoTimeout(MAX_HOLD_MS);
            InputStream in = s.getInputStream();
            OutputStream out = s.getOutputStream();
            if (!(s instanceof javax.net.ssl.SSLSocket)) {
                // A TLS ClientHello on the plain port: answer as an HTTP server does to bytes it cannot parse.
                java.io.PushbackInputStream pb = new java.io.PushbackInputStream(in, 1);
                int first = pb.read();
                if (first < 0) {
                    return;
                }
                if (first == 0x16) {
                    out.write(ascii("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
                    out.flush();
                    return;
                }
                pb.unread(first);
                in = pb;
            }
            String head = readHead(in);
            if (head == null) {
                return;
            }
            String[] line = head.substring(0, head.indexOf('\r')).split(" ");
            String[] path = line.length > 1 ? line[1].split("/") : new String[0];
            String peer = path.length > 1 ? path[1] : "?";
            String kase = path.length > 2 ? path[2] : "?";
            boolean warm = path.length > 3 && path[3].equals("warm");
            int n = counts.computeIfAbsent(peer + "/" + kase + (warm ? "/warm" : ""), k -> new AtomicInteger())
                    .incrementAndGet();
            if (warm) {
                // A pooled keep-alive connection that the upstream then drops while it idles (a keep-alive timeout
                // shorter than the proxy's): answered without "Connection: close", closed 300 ms later.
                out.write(ascii("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"));
                out.flush();
                s.setSoTimeout(300);
                try {
                    in.read();
                } catch (SocketTimeoutException idle) {
                    // the idle connection is closed now
                }
                s.close();
                idleDrop(peer + "/" + kase).countDown();
                return;
            }
            if (kase.equals("early-413")) {
                // Refuses the upload from its head alone, as a size-checking server does, and closes without reading
                // the body: the unread bytes make the kernel send a reset after the answer.
                out.write(ascii("HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n"
                        + "Connection: close\r\n\r\ntoo large"));
                out.flush();
                sleep(100);
                return;
            }
            long length = contentLength(head);
            for (long i = 0; i < length; i++) {
                if (in.read() < 0) {
                    break;
                }
            }
            behave(kase, n, s, in, out);
        } catch (IOException e) {
            // the proxy gave up on this connection: nothing to do
        }
    }

    private static void behave(String kase, int n, Socket s, InputStream in, OutputStream out) throws IOException {
        switch (kase) {
            case "ok", "tls-untrusted", "get-stale", "post-stale" -> ok(out);
            case "desync" -> {
                if (n == 1) {
                    // Five bytes more than its Content-Length says: a second response, ready for whoever sends the
                    // next request on this connection.
                    out.write(ascii("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
                            + "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nWRONG!"));
                    out.flush();
                    hold(in);
                } else {
                    ok(out);
                }
            }
            case "short-stall" -> {
                out.write(ascii("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789"));
                out.flush();
                hold(in);
            }
            case "bare-lf" -> out.write(ascii(
                    "HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 5\nConnection: close\n\nhello"));
            case "response-timeout" -> hold(in);
            case "reset-before", "post-reset" -> reset(s);
            case "get-reset-once" -> {
                if (n == 1) {
                    reset(s);
                } else {
                    ok(out);
                }
            }
            case "close-before" -> {
                // a clean FIN without a byte of response
            }
            case "not-http" -> {
                out.write(ascii("SSH-2.0-OpenSSH_9.6\r\n"));
                out.flush();
                hold(in);
            }
            case "bad-status" -> out.write(ascii("HTTP/1.1 2OO OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"));
            case "huge-header" -> {
                out.write(ascii("HTTP/1.1 200 OK\r\nX-Huge: "));
                out.write("a".repeat(256 * 1024).getBytes(StandardCharsets.US_ASCII));
                out.write(ascii("\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"));
            }
            case "many-headers" -> {
                StringBuilder b = new StringBuilder("HTTP/1.1 200 OK\r\n");
                for (int i = 0; i < 2000; i++) {
                    b.append("X-H-").append(i).append(": v\r\n");
                }
                out.write(ascii(b.append("Content-Length: 5\r\nConnection: close\r\n\r\nhello").toString()));
            }
            case "conflicting-cl" -> out.write(ascii(
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!"));
            case "cl-te" -> out.write(ascii("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                    + "Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
            case "short-body" -> out.write(ascii(
                    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789"));
            case "long-body", "body-stall" -> {
                out.write(ascii("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
                        + BODY_LONG + "\r\nConnection: close\r\n\r\n"));
                out.write(pattern(BODY_SENT));
                out.flush();
                if (kase.equals("body-stall")) {
                    hold(in);
                }
            }
            case "truncated-chunked" -> {
                out.write(ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"));
                for (int i = 0; i < 2; i++) {
                    out.write(ascii("400\r\n"));
                    out.write(pattern(1024));
                    out.write(ascii("\r\n"));
                }
            }
            case "bad-chunk-size" -> out.write(ascii("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                    + "Connection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"));
            case "upstream-503" -> out.write(ascii("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n"
                    + "Content-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nmaintenance"));
            case "upstream-502" -> out.write(ascii("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                    + "Content-Length: 12\r\nConnection: close\r\n\r\nupstream-502"));
            case "http10-close" -> {
                out.write(ascii("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"));
                out.write(pattern(HTTP10_BODY));
            }
            case "1xx" -> out.write(ascii("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                    + "Link: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + "Content-Length: 5\r\nConnection: close\r\n\r\nhello"));
            default -> out.write(ascii("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
        }
        out.flush();
    }

    private static void ok(OutputStream out) throws IOException {
        out.write(ascii("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                + "hello"));
    }

    /** Keeps the connection open without answering until the proxy closes it (or the hold limit). */
    private static void hold(InputStream in) {
        try {
            while (in.read() >= 0) {
                // discard
            }
        } catch (IOException ignored) {
            // timed out or reset
        }
    }

    /** Waits until the upstream has dropped the idle warm-up connection of {@code peer}'s {@code kase}. */
    boolean awaitIdleDrop(String peer, String kase, Duration timeout) throws InterruptedException {
        return idleDrop(peer + "/" + kase).await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    private CountDownLatch idleDrop(String key) {
        return idleDrops.computeIfAbsent(key, k -> new CountDownLatch(1));
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void reset(Socket s) throws IOException {
        s.setSoLinger(true, 0);
        s.close();
    }

    /** The body bytes the upstream sends: a repeating pattern, so the client can check what arrived. */
    static byte[] pattern(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) ('a' + i % 26);
        }
        return b;
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    private static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        int state = 0;
        for (int c; (c = in.read()) >= 0; ) {
            b.write(c);
            state = (c == '\r' && (state == 0 || state == 2)) || (c == '\n' && (state == 1 || state == 3))
                    ? state + 1 : 0;
            if (state == 4) {
                return b.toString(StandardCharsets.ISO_8859_1);
            }
            if (b.size() > 65536) {
                return null;
            }
        }
        return null;
    }

    private static long contentLength(String head) {
        for (String l : head.split("\r\n")) {
            int colon = l.indexOf(':');
            if (colon > 0 && l.substring(0, colon).trim().toLowerCase(Locale.ROOT).equals("content-length")) {
                try {
                    return Long.parseLong(l.substring(colon + 1).trim());
                } catch (NumberFormatException e) {
                    return 0;
                }
            }
        }
        return 0;
    }

    @Override
    public void close() {
        closed = true;
        for (ServerSocket s : List.of(plain, tls, blackhole)) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
        for (Socket s : fillers) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
    }
}
