package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class ReadmeExampleTest {

    @Test
    void readmeExampleFetchesThroughTheGuardedClientAndRecordsMeters() throws Exception {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        try (MockWebServer server = new MockWebServer()) {
            server.enqueue(new MockResponse.Builder().body("{\"id\":42}").build());
            server.start(InetAddress.getLoopbackAddress(), 0);
            String base = "http://127.0.0.1:" + server.getPort();

            assertThat(ReadmeExample.fetchItem(base, registry)).isEqualTo("200 {\"id\":42}");
            assertThat(server.takeRequest().getTarget()).isEqualTo("/items/42");
        }
        assertThat(registry.get("upstream.guard.calls").tag("upstream", "inventory").tag("outcome", "success").timer()
                .count()).isEqualTo(1);
    }

    @Test
    void readmeExampleTurnsARefusedConnectionIntoA502AfterThreeAttempts() throws Exception {
        int closedPort;
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closedPort = socket.getLocalPort();
        }
        assertThat(ReadmeExample.fetchItem("http://127.0.0.1:" + closedPort, new SimpleMeterRegistry()))
                .isEqualTo("502 connection_refused after 3 attempts");
    }

    @Test
    void readmeShowsTheExampleExactlyAsCompiled() throws Exception {
        String source = Files.readString(Path.of("src/test/java/dev/upstreamguard/client/ReadmeExample.java"),
                StandardCharsets.UTF_8);
        String example = source.substring(source.indexOf("// README:BEGIN") + "// README:BEGIN".length(),
                source.indexOf("    // README:END")).stripTrailing().stripIndent().strip();
        String readme = Files.readString(Path.of("../README.md"), StandardCharsets.UTF_8);
        assertThat(readme).contains(example);
    }
}
