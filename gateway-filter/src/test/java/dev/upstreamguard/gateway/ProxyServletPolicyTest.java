package dev.upstreamguard.gateway;

import static dev.upstreamguard.gateway.ServletConfigurationTest.config;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import jakarta.servlet.ServletException;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The proxy servlet's policy init-params: what {@code init()} says about values it cannot take, and, over real sockets
 * in each container, that no fault leaves a pooled connection or a bulkhead slot behind.
 */
class ProxyServletPolicyTest {

    /**
     * Regression: init-params each valid but contradicting each other failed {@code init()} with
     * "init-param 'the upstream policy' is invalid", naming an init-param no {@code web.xml} holds.
     */
    @Test
    void initParamsThatContradictEachOtherFailInitNamingBothAndNoInitParamThatDoesNotExist() {
        assertThatThrownBy(() -> new UpstreamProxyServlet().init(config("upstream", "http://127.0.0.1:9",
                "retry.max-backoff", "1ms", "retry.initial-backoff", "5ms")))
                .isInstanceOf(ServletException.class)
                .hasMessageStartingWith("Servlet 'inventory': its init-params contradict each other: ")
                .hasMessageContaining("'retry.max-backoff' (1ms)")
                .hasMessageContaining("'retry.initial-backoff' (5ms)")
                .hasMessageNotContaining("the upstream policy");
    }

    /**
     * Through a servlet configured by init-params alone with one pooled connection and one bulkhead slot, each way an
     * exchange can break (a body cut short, not HTTP, a read timeout, a reset or a close before the head, a body over
     * {@code max-response-body}, a client hanging up mid-download) ends with its own answer, and the next good
     * request is served at once: a leaked connection or slot would answer it 503 {@code connection_limit_reached}.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void noFaultLeavesTheOnlyPooledConnectionOrBulkheadSlotTaken(Container container) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(ONE_SLOT_UPSTREAM)) {
            UpstreamProxyServlet servlet = new UpstreamProxyServlet();
            Map<String, String> params = new LinkedHashMap<>();
            params.put("upstream", upstream.baseUrl());
            params.put("max-connections", "1");
            params.put("pool-timeout", "300ms");
            params.put("bulkhead.max-concurrent-calls", "1");
            params.put("response-timeout", "800ms");
            params.put("max-response-body", "5MiB");
            params.put("retry.enabled", "false");
            params.put("circuit-breaker.enabled", "false");
            try (Container.Running running = container.start(new Container.Deployment()
                    .servlet("one", servlet, "/one/*", params))) {
                int port = running.port();
                Map<String, String> faults = new LinkedHashMap<>();
                faults.put("/truncated", "http_response_incomplete");
                faults.put("/not-http", "http_protocol_error");
                faults.put("/stall", "connection_read_timeout");
                faults.put("/reset", "connection_terminated");
                faults.put("/close", "connection_terminated");
                faults.put("/too-large", "http_response_body_size");
                for (Map.Entry<String, String> fault : faults.entrySet()) {
                    RawClient.Response failed = RawClient.request(port, "GET", "/gw/one" + fault.getKey());
                    assertThat(failed.header("Proxy-Status")).as(fault.getKey())
                            .isEqualTo("upstream-guard; error=" + fault.getValue());
                    assertServed(port, fault.getKey());
                }
                for (int i = 0; i < 3; i++) {
                    try (Socket client = new Socket(InetAddress.getLoopbackAddress(), port)) {
                        client.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
                        OutputStream out = client.getOutputStream();
                        out.write(RawClient.head(port, "GET", "/gw/one/large").getBytes(StandardCharsets.ISO_8859_1));
                        out.flush();
                        assertThat(RawClient.line(new BufferedInputStream(client.getInputStream()))).startsWith(
                                "HTTP/1.1 200");
                        client.setSoLinger(true, 0); // hangs up mid-download, with a reset
                    }
                    Await.until("the download the client left is over", Duration.ofSeconds(15),
                            () -> servlet.client().upstreams().iterator().next().callsInFlight() == 0);
                    assertServed(port, "a client hanging up mid-download");
                }
                Await.until("no connection leased", Duration.ofSeconds(15),
                        () -> servlet.client().poolStats().getLeased() == 0, () -> "" + servlet.client().poolStats());
            }
        }
    }

    private static final String SMALL = "fine";

    /**
     * A keep-alive upstream answering by the last segment of the path: {@code /large} (4 MiB, by its length, more than
     * the sockets between hold), {@code /too-large} (6 MiB announced, over the route's limit), {@code /truncated},
     * {@code /not-http}, {@code /stall}, {@code /reset}, {@code /close}; anything else 200 {@value #SMALL}.
     */
    private static final RawUpstream.Behaviour ONE_SLOT_UPSTREAM = c -> {
        for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
            switch (r.target().substring(r.target().lastIndexOf('/'))) {
                case "/large" -> {
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: " + (4 << 20) + "\r\n\r\n");
                    byte[] part = new byte[64 << 10];
                    for (int i = 0; i < 64; i++) {
                        c.write(part);
                    }
                }
                case "/too-large" -> c.write("HTTP/1.1 200 OK\r\nContent-Length: " + (6 << 20) + "\r\n\r\nxx");
                case "/truncated" -> {
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
                    return;
                }
                case "/not-http" -> {
                    c.write("SSH-2.0-OpenSSH_9.6\r\n");
                    return;
                }
                case "/stall" -> {
                    c.stallUntilClosed();
                    return;
                }
                case "/reset" -> {
                    c.reset();
                    return;
                }
                case "/close" -> {
                    return;
                }
                default -> c.write("HTTP/1.1 200 OK\r\nContent-Length: " + SMALL.length() + "\r\n\r\n" + SMALL);
            }
        }
    };

    private static void assertServed(int port, String after) throws IOException {
        RawClient.Response ok = RawClient.request(port, "GET", "/gw/one/ok");
        assertThat(ok.status()).as("after %s: %s", after, ok).isEqualTo(200);
        assertThat(ok.bodyUtf8()).isEqualTo(SMALL);
    }
}
