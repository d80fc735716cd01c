package dev.upstreamguard.benchmarks.peers;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.eclipse.jetty.http.HttpHeader;
import org.eclipse.jetty.io.Content;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.Fields;
import org.eclipse.jetty.util.thread.QueuedThreadPool;

/**
 * The fast upstream every target proxies: Jetty 12 core (no servlet layer), two healthy connectors (routes a and
 * b) and a stalled one (s) that accepts and reads but never answers.
 *
 * <p>Paths, whatever prefix precedes them: {@code .../1k} and {@code .../1m} return fixed 1 KiB / 1 MiB bodies;
 * {@code .../big?bytes=N} streams N bytes; {@code .../sink} reads the request body and answers its length.
 */
public final class Upstream {

    private static final ByteBuffer KIB = fixed(1024);
    private static final ByteBuffer MIB = fixed(1024 * 1024);
    private static final byte[] CHUNK = new byte[64 * 1024];

    private Upstream() {
    }

    public static void main(String[] args) throws Exception {
        ChildProcess.watch(Duration.ofHours(2), () -> { });
        Server server = start(0, 0);
        int stallPort = stall();
        ChildProcess.ready("a=" + ((ServerConnector) server.getConnectors()[0]).getLocalPort()
                + " b=" + ((ServerConnector) server.getConnectors()[1]).getLocalPort() + " s=" + stallPort);
        server.join();
    }

    /** Starts the healthy upstream on two loopback ports (0 = any free port). */
    public static Server start(int portA, int portB) throws Exception {
        QueuedThreadPool pool = new QueuedThreadPool(200, 8);
        pool.setName("upstream");
        Server server = new Server(pool);
        for (int port : new int[] {portA, portB}) {
            HttpConfiguration config = new HttpConfiguration();
            config.setSendServerVersion(false);
            config.setSendDateHeader(false);
            ServerConnector connector = new ServerConnector(server, new HttpConnectionFactory(config));
            connector.setHost("127.0.0.1");
            connector.setPort(port);
            connector.setAcceptQueueSize(1024);
            connector.setIdleTimeout(120_000);
            server.addConnector(connector);
        }
        server.setHandler(new FixedBodies());
        server.start();
        return server;
    }

    /** A loopback port that accepts connections, swallows what it receives and never answers. */
    static int stall() throws IOException {
        ServerSocket listener = new ServerSocket(0, 1024, InetAddress.getLoopbackAddress());
        Thread acceptor = new Thread(() -> {
            while (true) {
                try {
                    Socket socket = listener.accept();
                    Thread reader = new Thread(() -> swallow(socket), "stalled-conn");
                    reader.setDaemon(true);
                    reader.start();
                } catch (IOException e) {
                    return;
                }
            }
        }, "stall-acceptor");
        acceptor.setDaemon(true);
        acceptor.start();
        return listener.getLocalPort();
    }

    private static void swallow(Socket socket) {
        byte[] buf = new byte[8192];
        try (socket; InputStream in = socket.getInputStream()) {
            while (in.read(buf) >= 0) {
                // never answer; close when the peer gives up
            }
        } catch (IOException ignored) {
            // peer reset
        }
    }

    private static ByteBuffer fixed(int size) {
        byte[] bytes = new byte[size];
        for (int i = 0; i < size; i++) {
            bytes[i] = (byte) ('a' + i % 26);
        }
        return ByteBuffer.allocateDirect(size).put(bytes).flip().asReadOnlyBuffer();
    }

    private static final class FixedBodies extends Handler.Abstract {
        @Override
        public boolean handle(Request request, Response response, Callback callback) throws Exception {
            String path = Request.getPathInContext(request);
            if (path.endsWith("/1k")) {
                respond(response, callback, KIB);
            } else if (path.endsWith("/1m")) {
                respond(response, callback, MIB);
            } else if (path.endsWith("/big")) {
                Fields query = Request.extractQueryParameters(request);
                long bytes = Long.parseLong(query.getValue("bytes"));
                response.setStatus(200);
                response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/octet-stream");
                response.getHeaders().put(HttpHeader.CONTENT_LENGTH, bytes);
                try (OutputStream out = Content.Sink.asOutputStream(response)) {
                    for (long left = bytes; left > 0; left -= CHUNK.length) {
                        out.write(CHUNK, 0, (int) Math.min(CHUNK.length, left));
                    }
                }
                callback.succeeded();
            } else if (path.endsWith("/sink")) {
                long total = 0;
                byte[] buf = new byte[64 * 1024];
                try (InputStream in = Content.Source.asInputStream(request)) {
                    for (int n; (n = in.read(buf)) >= 0; ) {
                        total += n;
                    }
                }
                response.setStatus(200);
                response.getHeaders().put(HttpHeader.CONTENT_TYPE, "text/plain");
                response.write(true, ByteBuffer.wrap(Long.toString(total).getBytes(StandardCharsets.US_ASCII)),
                        callback);
            } else {
                Response.writeError(request, response, callback, 404);
            }
            return true;
        }

        private static void respond(Response response, Callback callback, ByteBuffer body) {
            response.setStatus(200);
            response.getHeaders().put(HttpHeader.CONTENT_TYPE, "application/octet-stream");
            response.getHeaders().put(HttpHeader.CONTENT_LENGTH, body.remaining());
            response.write(true, body.slice(), callback);
        }
    }
}
