package dev.upstreamguard.testing;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A tiny HTTP/1.1 upstream over raw sockets on 127.0.0.1 (ephemeral port), for faults a real HTTP server will not
 * produce: bytes that are not HTTP, broken framing, a connection reset at an exact moment.
 *
 * <p>Each accepted connection is handed to a {@link Behaviour} on its own daemon thread. The behaviour gets a
 * {@link Connection}: it may {@linkplain Connection#readRequest() read a request}, write arbitrary bytes, stall, close
 * or reset. When the behaviour returns, the connection is closed (unless it was already). Canned behaviours are in
 * {@link Behaviours}.
 *
 * <pre>{@code
 * try (RawUpstream upstream = RawUpstream.start(Behaviours.resetBeforeResponse(), Behaviours.ok("fine"))) {
 *     // first connection is reset after its request, every later one answers 200 "fine"
 *     client.execute(new HttpGet(upstream.uri("/")), ...);
 *     assertThat(upstream.requestCount()).isEqualTo(2);
 * }
 * }</pre>
 *
 * <p>{@link #close()} closes the listener and every open connection, which also ends behaviours that stall.
 * No method sleeps; waiting methods take a bound.
 */
public final class RawUpstream implements AutoCloseable {

    /** What the upstream does with one accepted connection. */
    @FunctionalInterface
    public interface Behaviour {

        /**
         * Handles one connection. Exceptions end the connection and are recorded in {@link #errors()}; a client
         * that hangs up while the behaviour writes is normal in fault tests.
         */
        void handle(Connection connection) throws IOException, InterruptedException;
    }

    /** The head (and body, if any) of a request the upstream read. */
    public record Request(int index, int connectionIndex, String method, String target, Map<String, List<String>> headers,
            byte[] body) {

        /** The first value of a header, ignoring the name's case, or {@code null}. */
        public String header(String name) {
            List<String> values = headers.get(name.toLowerCase(Locale.ROOT));
            return values == null || values.isEmpty() ? null : values.get(0);
        }

        /** The body as UTF-8. */
        public String bodyUtf8() {
            return new String(body, StandardCharsets.UTF_8);
        }

        @Override
        public String toString() {
            return "#" + index + " (connection " + connectionIndex + ") " + method + " " + target;
        }
    }

    private static final int MAX_HEAD = 1 << 20;

    private final ServerSocket listener;
    private final ExecutorService threads;
    private final List<Behaviour> script;
    private final AtomicReference<Behaviour> override = new AtomicReference<>();
    private final AtomicInteger connections = new AtomicInteger();
    private final List<Request> requests = new CopyOnWriteArrayList<>();
    private final List<Throwable> errors = new CopyOnWriteArrayList<>();
    private final Set<Socket> open = ConcurrentHashMap.newKeySet();
    private final Object changed = new Object();
    private volatile boolean closed;
    /** Server-side TLS for every accepted connection, or {@code null} for plain HTTP. */
    private final javax.net.ssl.SSLContext tls;
    private final boolean needClientAuth;
    /** The TLS versions the server speaks, or {@code null} for the JDK's defaults. */
    private final String[] protocols;

    private RawUpstream(int port, List<Behaviour> script) throws IOException {
        this(port, script, null, false, null);
    }

    private RawUpstream(int port, List<Behaviour> script, javax.net.ssl.SSLContext tls, boolean needClientAuth,
            String[] protocols) throws IOException {
        this.tls = tls;
        this.needClientAuth = needClientAuth;
        this.protocols = protocols == null ? null : protocols.clone();
        this.script = List.copyOf(script);
        this.listener = new ServerSocket();
        this.listener.setReuseAddress(true);
        this.listener.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 50);
        this.threads = Executors.newCachedThreadPool(daemonThreads("raw-upstream-" + listener.getLocalPort()));
        this.threads.execute(this::acceptLoop);
    }

    /** Starts an upstream that treats every connection with {@code behaviour}. */
    public static RawUpstream start(Behaviour behaviour) throws IOException {
        return new RawUpstream(0, List.of(Objects.requireNonNull(behaviour, "behaviour")));
    }

    /**
     * Starts an upstream scripted per connection: the first connection gets {@code first}, the n-th gets the n-th
     * behaviour, and the last behaviour is repeated for every connection after that.
     */
    public static RawUpstream start(Behaviour first, Behaviour... then) throws IOException {
        return startOnPort(0, first, then);
    }

    /**
     * Like {@link #start(Behaviour, Behaviour...)}, but every connection speaks TLS first, presenting
     * {@link TestTls#serverCertificate()} (trusted by {@link TestTls#clientContext()}); behaviours see the decrypted
     * bytes. With {@code needClientAuth} the server demands a client certificate, which that client context lacks.
     * {@link #baseUrl()} is then an {@code https} URL.
     */
    public static RawUpstream startTls(boolean needClientAuth, Behaviour first, Behaviour... then) throws IOException {
        return startTls(needClientAuth, null, first, then);
    }

    /**
     * Like {@link #startTls(boolean, Behaviour, Behaviour...)}, speaking only the TLS versions named (such as
     * {@code "TLSv1.2"}), or the JDK's defaults for {@code null}.
     */
    public static RawUpstream startTls(boolean needClientAuth, String[] protocols, Behaviour first, Behaviour... then)
            throws IOException {
        List<Behaviour> all = new ArrayList<>();
        all.add(Objects.requireNonNull(first, "first"));
        all.addAll(List.of(then));
        return new RawUpstream(0, all, TestTls.serverCertificates().sslContext(), needClientAuth, protocols);
    }

    /** Like {@link #startTls(boolean, Behaviour, Behaviour...)}, presenting the certificates of {@code server}. */
    public static RawUpstream startTls(javax.net.ssl.SSLContext server, Behaviour first, Behaviour... then)
            throws IOException {
        List<Behaviour> all = new ArrayList<>();
        all.add(Objects.requireNonNull(first, "first"));
        all.addAll(List.of(then));
        return new RawUpstream(0, all, Objects.requireNonNull(server, "server"), false, null);
    }

    /**
     * Like {@link #start(Behaviour, Behaviour...)} on a given loopback port, for example one a client was just refused
     * on ({@link ClosedPort}), to bring an upstream up between two attempts.
     */
    public static RawUpstream startOnPort(int port, Behaviour first, Behaviour... then) throws IOException {
        List<Behaviour> all = new ArrayList<>();
        all.add(Objects.requireNonNull(first, "first"));
        for (Behaviour b : then) {
            all.add(Objects.requireNonNull(b, "behaviour"));
        }
        return new RawUpstream(port, all);
    }

    /**
     * From now on, treats every new connection with {@code behaviour}, whatever the script said (connections already
     * accepted keep theirs). Use it to make a failing upstream healthy again.
     */
    public void behaviour(Behaviour behaviour) {
        override.set(Objects.requireNonNull(behaviour, "behaviour"));
    }

    /** The port the upstream listens on. */
    public int port() {
        return listener.getLocalPort();
    }

    /** {@code http://127.0.0.1:<port>} ({@code https} for {@link #startTls}), without a trailing slash. */
    public String baseUrl() {
        return (tls == null ? "http" : "https") + "://127.0.0.1:" + port();
    }

    /** {@link #baseUrl()} followed by {@code path}, which must start with '/'. */
    public URI uri(String path) {
        return URI.create(baseUrl() + path);
    }

    /** Connections accepted so far. */
    public int connectionCount() {
        return connections.get();
    }

    /** Requests whose head (and body, when framed) was read completely so far, over every connection. */
    public int requestCount() {
        return requests.size();
    }

    /** The requests read so far, in order. */
    public List<Request> requests() {
        return Collections.unmodifiableList(requests);
    }

    /** Failures of behaviours other than the client hanging up, for diagnosing a test. */
    public List<Throwable> errors() {
        return Collections.unmodifiableList(errors);
    }

    /** Waits until at least {@code n} requests were read; {@code false} if that did not happen within {@code timeout}. */
    public boolean awaitRequests(int n, Duration timeout) throws InterruptedException {
        return await(() -> requests.size() >= n, timeout);
    }

    /** Waits until at least {@code n} connections were accepted; {@code false} if not within {@code timeout}. */
    public boolean awaitConnections(int n, Duration timeout) throws InterruptedException {
        return await(() -> connections.get() >= n, timeout);
    }

    private boolean await(java.util.function.BooleanSupplier condition, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (changed) {
            while (!condition.getAsBoolean()) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                TimeUnit.NANOSECONDS.timedWait(changed, left);
            }
            return true;
        }
    }

    private void signal() {
        synchronized (changed) {
            changed.notifyAll();
        }
    }

    private void acceptLoop() {
        while (!closed) {
            Socket socket;
            try {
                socket = listener.accept();
            } catch (IOException e) {
                if (!closed) {
                    errors.add(e);
                }
                return;
            }
            Socket tcp = socket;
            if (tls != null) {
                try {
                    // The handshake runs on the behaviour's thread, at its first read or write.
                    javax.net.ssl.SSLSocket ssl = (javax.net.ssl.SSLSocket) tls.getSocketFactory()
                            .createSocket(socket, null, true);
                    ssl.setUseClientMode(false);
                    ssl.setNeedClientAuth(needClientAuth);
                    if (protocols != null) {
                        ssl.setEnabledProtocols(protocols);
                    }
                    socket = ssl;
                } catch (IOException e) {
                    errors.add(e);
                    closeQuietly(socket);
                    continue;
                }
            }
            int index = connections.getAndIncrement();
            open.add(socket);
            Behaviour behaviour = override.get();
            if (behaviour == null) {
                behaviour = script.get(Math.min(index, script.size() - 1));
            }
            Behaviour chosen = behaviour;
            Socket accepted = socket;
            signal();
            try {
                threads.execute(() -> serve(new Connection(accepted, tcp, index), chosen));
            } catch (RuntimeException rejected) {
                // Closed meanwhile.
                closeQuietly(accepted);
                return;
            }
        }
    }

    private void serve(Connection connection, Behaviour behaviour) {
        try {
            behaviour.handle(connection);
        } catch (SocketException e) {
            // The client hung up or the upstream was closed: expected in fault tests.
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException | RuntimeException | Error e) {
            if (!closed) {
                errors.add(e);
            }
        } finally {
            closeQuietly(connection.socket);
            open.remove(connection.socket);
            signal();
        }
    }

    /** Closes the listener and every open connection; behaviours still running end soon after. */
    @Override
    public void close() {
        closed = true;
        closeQuietly(listener);
        for (Socket socket : open) {
            closeQuietly(socket);
        }
        threads.shutdownNow();
        signal();
    }

    @Override
    public String toString() {
        return "RawUpstream" + baseUrl() + "[connections=" + connections.get() + ", requests=" + requests.size() + "]";
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // Closing is best effort.
        }
    }

    static java.util.concurrent.ThreadFactory daemonThreads(String prefix) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, prefix + "-" + n.getAndIncrement());
            t.setDaemon(true);
            return t;
        };
    }

    /** One accepted connection, as seen by a {@link Behaviour}. */
    public final class Connection {

        private final Socket socket;
        /** The TCP socket: {@link #socket} itself, or under TLS the one it is layered on. */
        private final Socket tcp;
        private final int index;
        private final InputStream in;
        private final OutputStream out;

        Connection(Socket socket, Socket tcp, int index) {
            this.socket = socket;
            this.tcp = tcp;
            this.index = index;
            try {
                this.in = new BufferedInputStream(socket.getInputStream());
                this.out = socket.getOutputStream();
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }

        /** The raw socket, for anything the helpers do not cover. */
        public Socket socket() {
            return socket;
        }

        /** 0 for the first connection the upstream accepted, 1 for the second… */
        public int index() {
            return index;
        }

        /** The buffered input: use it (not the socket's) after {@link #readRequest()}. */
        public InputStream in() {
            return in;
        }

        /**
         * Reads the bytes of a request head up to its blank line and nothing of its body, without parsing or counting
         * it: how a server that refuses or ignores the body behaves.
         *
         * @return {@code false} when the client closed the connection first
         */
        public boolean skipHead() throws IOException {
            int newlines = 0;
            while (newlines < 2) {
                int b = in.read();
                if (b == -1) {
                    return false;
                }
                newlines = b == '\n' ? newlines + 1 : b == '\r' ? newlines : 0;
            }
            return true;
        }

        /**
         * Reads one request: its head, and its body when framed by {@code Content-Length} or chunked. Counts it in
         * {@link RawUpstream#requestCount()} once read completely.
         *
         * @return the request, or {@code null} when the client closed the connection before sending another one
         */
        public Request readRequest() throws IOException {
            String requestLine = readLine(true);
            while (requestLine != null && requestLine.isEmpty()) {
                requestLine = readLine(true);
            }
            if (requestLine == null) {
                return null;
            }
            String[] parts = requestLine.split(" ", 3);
            if (parts.length != 3 || !parts[2].startsWith("HTTP/")) {
                throw new IOException("Not an HTTP request line: " + requestLine);
            }
            Map<String, List<String>> headers = new LinkedHashMap<>();
            int size = requestLine.length();
            for (String line = readLine(false); !line.isEmpty(); line = readLine(false)) {
                size += line.length();
                if (size > MAX_HEAD) {
                    throw new IOException("Request head too large");
                }
                int colon = line.indexOf(':');
                if (colon <= 0) {
                    throw new IOException("Malformed request header: " + line);
                }
                headers.computeIfAbsent(line.substring(0, colon).trim().toLowerCase(Locale.ROOT), k -> new ArrayList<>())
                        .add(line.substring(colon + 1).trim());
            }
            byte[] body = readBody(headers);
            Request request;
            synchronized (requests) {
                request = new Request(requests.size(), index, parts[0], parts[1], Collections.unmodifiableMap(headers),
                        body);
                requests.add(request);
            }
            signal();
            return request;
        }

        private byte[] readBody(Map<String, List<String>> headers) throws IOException {
            List<String> te = headers.get("transfer-encoding");
            if (te != null && te.get(te.size() - 1).toLowerCase(Locale.ROOT).contains("chunked")) {
                ByteArrayOutputStream body = new ByteArrayOutputStream();
                for (;;) {
                    String sizeLine = readLine(false);
                    int semicolon = sizeLine.indexOf(';');
                    int size = Integer.parseInt((semicolon >= 0 ? sizeLine.substring(0, semicolon) : sizeLine).trim(), 16);
                    if (size == 0) {
                        while (!readLine(false).isEmpty()) {
                            // Trailers are not kept.
                        }
                        return body.toByteArray();
                    }
                    body.write(in.readNBytes(size));
                    readLine(false);
                }
            }
            List<String> cl = headers.get("content-length");
            if (cl != null) {
                int length = Integer.parseInt(cl.get(0));
                byte[] body = in.readNBytes(length);
                if (body.length < length) {
                    throw new java.io.EOFException("Request body ended after " + body.length + " of " + length + " bytes");
                }
                return body;
            }
            return new byte[0];
        }

        private String readLine(boolean eofAllowed) throws IOException {
            StringBuilder sb = new StringBuilder();
            for (;;) {
                int b = in.read();
                if (b == -1) {
                    if (eofAllowed && sb.length() == 0) {
                        return null;
                    }
                    throw new java.io.EOFException("Connection closed in the middle of the request head");
                }
                if (b == '\n') {
                    int len = sb.length();
                    return len > 0 && sb.charAt(len - 1) == '\r' ? sb.substring(0, len - 1) : sb.toString();
                }
                if (sb.length() > MAX_HEAD) {
                    throw new IOException("Request line too long");
                }
                sb.append((char) b);
            }
        }

        /** Writes {@code text} as ISO-8859-1 bytes and flushes. */
        public void write(String text) throws IOException {
            write(text.getBytes(StandardCharsets.ISO_8859_1));
        }

        /** Writes {@code bytes} and flushes. */
        public void write(byte[] bytes) throws IOException {
            out.write(bytes);
            out.flush();
        }

        /**
         * Blocks until the client closes the connection or the upstream is closed, discarding whatever arrives.
         * This is how a hung upstream looks: the connection is open, nothing is sent.
         */
        public void stallUntilClosed() {
            byte[] sink = new byte[8192];
            try {
                while (in.read(sink) != -1) {
                    // Discard.
                }
            } catch (IOException e) {
                // Closed by either side: the stall is over.
            }
        }

        /** Closes the connection with a TCP RST instead of a FIN ({@code SO_LINGER} 0). */
        public void reset() throws IOException {
            socket.setSoLinger(true, 0);
            socket.close();
        }

        /** Closes the connection normally (FIN; under TLS after a {@code close_notify}). */
        public void close() throws IOException {
            socket.close();
        }

        /**
         * Closes the TCP connection with a FIN and, under TLS, without a {@code close_notify} first: how a TLS
         * connection looks when it is cut (RFC 8446 §6.1 calls a close without it a truncation).
         */
        public void closeWithoutCloseNotify() throws IOException {
            tcp.close();
        }
    }
}
