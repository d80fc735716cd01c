package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.InputStream;
import java.time.Duration;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Responses from {@code executeOpen} that the caller abandons — closed at once, read in part, its body stream closed
 * rather than the response, cancelled, or read whole — over real sockets: the next request on the same client gets
 * exactly its own answer (no byte of the abandoned body), and no lease, in-flight call or missing metric sample is
 * left over. Closing drains the rest of a body to keep the connection, as HttpClient does (README: "Closing a
 * response early still reads the rest of its body"); a body that stalls instead fails that close within the
 * response timeout, and its connection is not pooled; a cancelled request's connection is closed, not drained.
 */
@Timeout(60)
class ResponseAbandonmentTest {

    private static final Duration SETTLE = Duration.ofSeconds(15);

    private static final int BIG = 256 * 1024;

    /**
     * Keep-alive: {@code /big} and {@code /big-chunked} answer {@value #BIG} bytes, {@code /stall} part of a body and
     * then nothing, anything else its own target (so an answer meant for another request shows).
     */
    private static RawUpstream.Behaviour upstream() {
        return c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                String target = r.target();
                if (target.equals("/big")) {
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: " + BIG + "\r\n\r\n");
                    c.write("x".repeat(BIG));
                } else if (target.equals("/big-chunked")) {
                    c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                    for (int sent = 0; sent < BIG; sent += 8192) {
                        c.write("2000\r\n" + "x".repeat(8192) + "\r\n");
                    }
                    c.write("0\r\n\r\n");
                } else if (target.equals("/stall")) {
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: " + BIG + "\r\n\r\n" + "x".repeat(1024));
                    c.stallUntilClosed();
                    return;
                } else {
                    String body = "own " + target;
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: " + body.length() + "\r\n\r\n" + body);
                }
            }
        };
    }

    @ParameterizedTest(name = "{0}, {1}")
    @CsvSource({
        "/big, close-unread, 1",
        "/big, read-part-then-close, 1",
        "/big, close-the-stream-after-a-part, 1",
        "/big, read-whole, 1",
        "/big, cancel-then-close, 2",
        "/big-chunked, close-unread, 1",
        "/big-chunked, read-part-then-close, 1",
        "/big-chunked, close-the-stream-after-a-part, 1",
        "/big-chunked, read-whole, 1",
        "/big-chunked, cancel-then-close, 2",
        "/stall, close-unread, 2",
        "/stall, read-part-then-close, 2",
        "/stall, close-the-stream-after-a-part, 2",
        "/stall, cancel-then-close, 2",
        "/small, close-unread, 1",
    })
    void anAbandonedResponseLeavesTheNextRequestItsOwnAnswerAndNothingLeased(String path, String how,
            int upstreamConnections) throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream raw = RawUpstream.start(upstream());
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters)
                        .upstream("files", raw.baseUrl(), GuardPolicy.builder().maxAttempts(1)
                                .connectTimeout(Duration.ofSeconds(2)).responseTimeout(Duration.ofSeconds(1)).build())
                        .build()) {
            HttpGet request = new HttpGet(raw.uri(path));
            ClassicHttpResponse response = client.executeOpen(null, request, null);
            assertThat(response.getCode()).isEqualTo(200);
            boolean stalls = path.equals("/stall") && !how.equals("cancel-then-close");
            switch (how) {
                case "close-unread" -> assertClose(response::close, stalls);
                case "read-part-then-close" -> {
                    assertThat(response.getEntity().getContent().readNBytes(512)).hasSize(512);
                    assertClose(response::close, stalls);
                }
                case "close-the-stream-after-a-part" -> {
                    InputStream content = response.getEntity().getContent();
                    assertThat(content.readNBytes(512)).hasSize(512);
                    assertClose(content::close, stalls);
                }
                case "cancel-then-close" -> {
                    assertThat(response.getEntity().getContent().readNBytes(512)).hasSize(512);
                    request.cancel();
                    response.close();
                }
                case "read-whole" -> {
                    assertThat(EntityUtils.toByteArray(response.getEntity())).hasSize(BIG);
                    response.close();
                }
                default -> throw new IllegalArgumentException(how);
            }
            assertSettled(client);

            for (String next : new String[] {"/next-1", "/next-2"}) {
                String body = client.execute(new HttpGet(raw.uri(next)), r -> {
                    assertThat(r.getCode()).isEqualTo(200);
                    return EntityUtils.toString(r.getEntity());
                });
                assertThat(body).isEqualTo("own " + next);
            }
            assertSettled(client);
            assertThat(raw.connectionCount()).as("upstream connections for %s", raw.requests())
                    .isEqualTo(upstreamConnections);
            Await.until("one upstream.guard.calls sample per call", SETTLE, () -> recorded(meters) == 3,
                    () -> "recorded " + recorded(meters));
        }
    }

    /** A drain that meets a stalled body ends within the response timeout, as that fault; a whole one quietly. */
    private static void assertClose(ThrowingCallable close, boolean stalls) {
        if (stalls) {
            assertThatThrownBy(close).isInstanceOfSatisfying(UpstreamException.class,
                    e -> assertThat(e.fault()).isEqualTo(UpstreamFault.CONNECTION_READ_TIMEOUT));
        } else {
            assertThatCode(close).doesNotThrowAnyException();
        }
    }

    private static void assertSettled(GuardedHttpClient client) {
        Await.until("no connection is leased and no call is in flight", SETTLE,
                () -> client.poolStats().getLeased() == 0 && client.upstream("files").callsInFlight() == 0,
                () -> client.poolStats() + ", in flight " + client.upstream("files").callsInFlight());
    }

    private static long recorded(SimpleMeterRegistry meters) {
        return meters.find("upstream.guard.calls").timers().stream().mapToLong(Timer::count).sum();
    }
}
