package dev.upstreamguard.testing;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;

/**
 * A loopback listener that never accepts and whose accept queue is full, so that connecting to it times out: the
 * kernel silently drops the SYN instead of refusing it. This is how a firewalled or overloaded host looks to a client,
 * without leaving 127.0.0.1.
 *
 * <p>The listener is created with a backlog of 1 and filled by opening connections until two connect attempts in a
 * row time out; {@link #open()} fails if that never happens, so a test cannot silently test the wrong thing. Verified on
 * Linux, where a full accept queue drops incoming SYNs ({@code tcp_abort_on_overflow=0}, the default).
 */
public final class Blackhole implements AutoCloseable {

    private static final int FILL_TIMEOUT_MILLIS = 200;
    private static final int MAX_FILLERS = 64;

    private final ServerSocket listener;
    private final List<Socket> fillers = new ArrayList<>();

    private Blackhole(InetAddress bindAddress, int port) throws IOException {
        listener = new ServerSocket(port, 1, bindAddress);
        InetSocketAddress address = new InetSocketAddress(bindAddress, listener.getLocalPort());
        try {
            int timeouts = 0;
            for (int i = 0; i < MAX_FILLERS; i++) {
                Socket s = new Socket();
                try {
                    s.connect(address, FILL_TIMEOUT_MILLIS);
                } catch (SocketTimeoutException full) {
                    s.close();
                    // Two in a row, so that one slow connect on a loaded machine is not taken for a full queue.
                    if (++timeouts == 2) {
                        return;
                    }
                    continue;
                }
                timeouts = 0;
                fillers.add(s);
            }
        } catch (IOException | RuntimeException e) {
            close();
            throw e;
        }
        close();
        throw new IllegalStateException("Could not fill the accept queue of a loopback listener after " + MAX_FILLERS
                + " connections: this OS does not drop connects to a full backlog");
    }

    /** Opens a listener whose connects time out. Takes about 400 ms (two timed-out probes). */
    public static Blackhole open() throws IOException {
        return new Blackhole(InetAddress.getLoopbackAddress(), 0);
    }

    /**
     * Opens one on the given loopback address and port (0: any free port), e.g. {@code 127.0.0.2}, so that several
     * addresses of one host name can share a port.
     */
    public static Blackhole open(InetAddress loopbackAddress, int port) throws IOException {
        return new Blackhole(loopbackAddress, port);
    }

    /** The port whose connects time out. */
    public int port() {
        return listener.getLocalPort();
    }

    /** {@code http://127.0.0.1:<port>}, without a trailing slash. */
    public String baseUrl() {
        return "http://127.0.0.1:" + port();
    }

    /** {@link #baseUrl()} followed by {@code path}. */
    public URI uri(String path) {
        return URI.create(baseUrl() + path);
    }

    @Override
    public void close() {
        for (Socket s : fillers) {
            try {
                s.close();
            } catch (IOException ignored) {
                // Best effort.
            }
        }
        fillers.clear();
        try {
            listener.close();
        } catch (IOException ignored) {
            // Best effort.
        }
    }
}
