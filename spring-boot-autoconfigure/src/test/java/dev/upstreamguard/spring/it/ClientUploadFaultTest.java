package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.MeterRegistry;
import jakarta.servlet.http.HttpServletRequest;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.RestClient;

/**
 * A controller that streams its client's request body to an upstream through the guarded {@code RestClient}: a body
 * the client breaks is the client's failure, answered by the container, never a gateway fault naming the upstream.
 */
@SpringBootTest(classes = ClientUploadFaultTest.App.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = "management.metrics.enable.all=true")
class ClientUploadFaultTest {

    private static TestUpstream upstream;

    @LocalServerPort
    int port;

    @Autowired
    MeterRegistry meters;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        upstream = new TestUpstream();
        registry.add("test.upstream", upstream::url);
        registry.add("upstream-guard.upstreams.echo.url", upstream::url);
    }

    @AfterAll
    static void stop() {
        upstream.close();
    }

    @SpringBootConfiguration
    @EnableAutoConfiguration
    static class App {

        @RestController
        static class RelayController {
            private final RestClient echo;

            RelayController(RestClient.Builder builder, @Value("${test.upstream}") String url) {
                this.echo = builder.baseUrl(url).build();
            }

            @PostMapping("/relay")
            String relay(HttpServletRequest request) {
                return echo.post().uri("/echo-body")
                        .body(out -> request.getInputStream().transferTo(out))
                        .retrieve().body(String.class);
            }
        }
    }

    /**
     * Regression: the application's controller let the fault escape, and Upstream Guard's exception handler answered
     * the client's own malformed chunked upload with a 502 naming the upstream, counted as a gateway fault.
     */
    @Test
    void aMalformedChunkedUploadIsTheClientsFailureNotAGatewayFault() throws Exception {
        String answer = exchange("POST /relay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n10\r\n" + "x".repeat(16) + "\r\nzz\r\n");
        assertThat(answer).startsWith("HTTP/1.1 400 ").doesNotContainIgnoringCase("Proxy-Status");
        assertThat(meters.find("upstream.guard.responses").counters())
                .as("responses counted as the gateway's").extracting(c -> c.getId() + " " + c.count())
                .allMatch(c -> c.endsWith(" 0.0"));
    }

    @Test
    void aWholeUploadIsRelayed() throws Exception {
        String answer = exchange("POST /relay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                + "Content-Length: 5\r\nConnection: close\r\n\r\nhello");
        assertThat(answer).startsWith("HTTP/1.1 200 ").endsWith("hello");
    }

    /** Sends {@code raw}, then reads until the server closes or 30 s of silence. */
    private String exchange(String raw) throws IOException {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(30_000);
            OutputStream out = socket.getOutputStream();
            out.write(raw.getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            InputStream in = socket.getInputStream();
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            byte[] buffer = new byte[8192];
            try {
                for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
                    got.write(buffer, 0, n);
                    if (got.toString(StandardCharsets.ISO_8859_1).contains("\r\n\r\n") && !raw.contains("close")) {
                        // One answer is enough when the connection stays open; its head is what is checked.
                        break;
                    }
                }
            } catch (IOException cut) {
                // The container may close after its answer.
            }
            return got.toString(StandardCharsets.ISO_8859_1);
        }
    }
}
