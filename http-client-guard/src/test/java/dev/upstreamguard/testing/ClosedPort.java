package dev.upstreamguard.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A loopback port that nothing listens on, so connecting to it is refused at once (TCP RST to the SYN).
 *
 * <p>The port is chosen below the usual ephemeral range (Linux: 32768–60999) and checked free by binding it once. A port
 * the OS hands out for bind(0) would not do: the very next upstream a test starts can be given the same port back
 * (seen on JDK 25), and then the "closed" port answers.
 */
public final class ClosedPort {

    private final int port;

    private ClosedPort(int port) {
        this.port = port;
    }

    /** The ports tried: above the well-known and common service ports, below the ephemeral range. */
    private static final int LOWEST = 20_000;
    private static final int HIGHEST = 32_767;

    /** Finds a port with no listener on 127.0.0.1. */
    public static ClosedPort find() {
        IOException last = null;
        for (int tries = 0; tries < 100; tries++) {
            int candidate = ThreadLocalRandom.current().nextInt(LOWEST, HIGHEST + 1);
            try (ServerSocket s = new ServerSocket()) {
                s.setReuseAddress(true);
                s.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), candidate));
                return new ClosedPort(candidate);
            } catch (IOException taken) {
                last = taken;
            }
        }
        throw new UncheckedIOException("no free port between " + LOWEST + " and " + HIGHEST, last);
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
