package dev.upstreamguard.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;

/**
 * A loopback port that nothing listens on, so connecting to it is refused at once (TCP RST to the SYN).
 *
 * <p>The port is taken from the OS as an ephemeral port and released immediately; another process could in principle
 * bind it in the meantime, but the ephemeral range makes that practically impossible within a test.
 */
public final class ClosedPort {

    private final int port;

    private ClosedPort(int port) {
        this.port = port;
    }

    /** Finds a port with no listener on 127.0.0.1. */
    public static ClosedPort find() {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            return new ClosedPort(s.getLocalPort());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The port. */
    public int port() {
        return port;
    }

    /** {@code http://127.0.0.1:<port>}, without a trailing slash. */
    public String baseUrl() {
        return "http://127.0.0.1:" + port;
    }

    /** {@link #baseUrl()} followed by {@code path}. */
    public URI uri(String path) {
        return URI.create(baseUrl() + path);
    }
}
