package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.client.GuardedUpstream;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** A client that goes silent mid-upload, as seen by the proxy servlet's other clients. */
@Timeout(120)
class ProxyServletSilentUploadTest {

    /**
     * Regression: a client that sent part of a streamed body and went silent had its upstream connection closed at
     * {@code total-timeout}, but its call held the route's bulkhead permit until the container's read timeout ended
     * the servlet's blocking read (here 20 s; Tomcat's default 60 s): with one permit, every other client got 503
     * connection_limit_reached meanwhile. The call is over at its deadline, and its permit with it.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientSilentMidUploadHoldsNoBulkheadPermitPastTheTotalTimeout(Container container) throws Exception {
        UpstreamProxyServlet servlet;
        try (RawUpstream echo = RawUpstream.start(Behaviours.echo())) {
            servlet = UpstreamProxyServlet.builder(echo.baseUrl()).meterRegistry(null).maxBufferedRequestBody(1024)
                    .set("bulkhead.max-concurrent-calls", "1").set("total-timeout", "1500ms")
                    .set("retry.enabled", "false").build();
            // Far longer than the test waits for the permit: only the deadline can give it back in time.
            Container.Deployment deployment = new Container.Deployment().idleTimeout(Duration.ofSeconds(20))
                    .servlet("proxy", servlet, "/p/*");
            try (Container.Running running = container.start(deployment);
                    Socket silent = new Socket(InetAddress.getLoopbackAddress(), running.port())) {
                OutputStream out = silent.getOutputStream();
                out.write(RawClient.head(running.port(), "PUT", "/gw/p/upload", "Content-Type: application/octet-stream",
                        "Content-Length: 100000").getBytes(StandardCharsets.ISO_8859_1));
                out.write(new byte[5000]);
                out.flush();
                GuardedUpstream upstream = servlet.client().upstream(servlet.upstreamName());
                Await.until("the silent client's call is in flight", Duration.ofSeconds(10),
                        () -> upstream.callsInFlight() == 1);
                Await.until("the silent client's call gives back its permit", Duration.ofSeconds(10),
                        () -> upstream.callsInFlight() == 0);

                RawClient.Response response = RawClient.send(running.port(), RawClient.head(running.port(), "PUT",
                        "/gw/p/next", "Content-Type: text/plain", "Content-Length: 3"),
                        "abc".getBytes(StandardCharsets.ISO_8859_1));

                assertThat(response.status()).as("%s", response).isEqualTo(200);
                assertThat(response.bodyUtf8()).isEqualTo("abc");
                assertThat(upstream.callsInFlight()).isZero();
            }
        }
    }
}
