package dev.upstreamguard.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The connect-timeout and connection-refused helpers, checked with plain sockets. */
@Timeout(30)
class BlackholeTest {

    @Test
    void connectsToABlackholeTimeOutInsteadOfBeingRefused() throws Exception {
        try (Blackhole blackhole = Blackhole.open()) {
            for (int i = 0; i < 3; i++) {
                try (Socket s = new Socket()) {
                    long start = System.nanoTime();
                    assertThatThrownBy(() -> s.connect(
                            new InetSocketAddress(InetAddress.getLoopbackAddress(), blackhole.port()), 300))
                            .isInstanceOf(SocketTimeoutException.class);
                    assertThat((System.nanoTime() - start) / 1_000_000).isGreaterThanOrEqualTo(250);
                }
            }
        }
    }

    @Test
    void connectsToAClosedPortAreRefusedAtOnce() {
        ClosedPort port = ClosedPort.find();
        try (Socket s = new Socket()) {
            assertThatThrownBy(() -> s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port.port()), 5000))
                    .isInstanceOf(ConnectException.class);
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
    }
}
