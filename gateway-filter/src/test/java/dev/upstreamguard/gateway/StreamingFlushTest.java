package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.RawUpstream;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** A body without a length (an event stream, a long poll) reaches the client as it arrives, not when it ends. */
@Timeout(60)
class StreamingFlushTest {

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aChunkedEventStreamIsPassedOnWhileTheUpstreamIsStillSending(Container container) throws Exception {
        CountDownLatch clientSawFirstEvent = new CountDownLatch(1);
        try (RawUpstream upstream = RawUpstream.start(c -> {
            if (c.readRequest() == null) {
                return;
            }
            c.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "e\r\ndata: first\n\n\r\n");
            // The rest only comes once the client has the first event: a buffering proxy would deadlock here.
            if (clientSawFirstEvent.await(30, TimeUnit.SECONDS)) {
                c.write("f\r\ndata: second\n\n\r\n0\r\n\r\n");
            }
        });
                Container.Running running = container.start(new Container.Deployment().servlet("events",
                        UpstreamProxyServlet.builder(upstream.baseUrl()).build(), "/events/*"))) {
            try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), running.port())) {
                socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
                socket.getOutputStream().write(RawClient.head(running.port(), "GET", "/gw/events/stream")
                        .getBytes(StandardCharsets.ISO_8859_1));
                InputStream in = socket.getInputStream();
                StringBuilder seen = new StringBuilder();
                RawClient.readUntil(in, seen, "data: first"); // before the upstream sends more
                clientSawFirstEvent.countDown();
                RawClient.readUntil(in, seen, "data: second");
                assertThat(seen.toString()).startsWith("HTTP/1.1 200");
            }
        }
    }
}
