package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.assertFault;
import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.RawUpstream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code max-response-body}: a body over the limit fails the call with {@code http_response_body_size}, is never
 * retried, counts against the upstream, and its connection is closed rather than drained — an upstream that sends
 * gigabytes must not be read to its end. Bodies at the limit pass.
 */
@Timeout(30)
class ResponseBodyLimitTest {

    private static final int LIMIT = 1000;

    private static GuardedHttpClient client() {
        return GuardedHttpClients.custom()
                .defaults(GuardPolicy.builder().maxResponseBody(LIMIT).responseTimeout(Duration.ofSeconds(10))
                        .initialBackoff(Duration.ofMillis(1)).maxBackoff(Duration.ofMillis(2)).build())
                .build();
    }

    /** Sends a head and the start of a body, then holds the connection open until the client closes it. */
    private static RawUpstream.Behaviour headThenHold(String head, String start, CountDownLatch closedByClient) {
        return c -> {
            if (c.readRequest() == null) {
                return;
            }
            c.write(head + start);
            c.stallUntilClosed();
            closedByClient.countDown();
        };
    }

    @Test
    void aContentLengthOverTheLimitFailsAtOnceWithoutReadingTheBody() throws Exception {
        CountDownLatch closed = new CountDownLatch(1);
        try (RawUpstream upstream = RawUpstream.start(headThenHold(
                "HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\n", "x".repeat(100), closed));
                GuardedHttpClient client = client()) {
            UpstreamException e = failure(client, new HttpGet(upstream.uri("/huge")));

            assertFault(e, "http_response_body_size", 502, 1);
            assertThat(e).hasMessageContaining("10737418240").hasMessageContaining("1000");
            assertThat(closed.await(10, TimeUnit.SECONDS)).as("the connection is closed, not drained").isTrue();
            assertThat(upstream.requestCount()).as("not retried").isEqualTo(1);
            GuardedUpstream guarded = client.upstream(upstream.baseUrl());
            assertThat(guarded.faultCounts()).containsEntry(UpstreamFault.HTTP_RESPONSE_BODY_SIZE, 1L);
            assertThat(guarded.circuitBreaker().orElseThrow().getMetrics().getNumberOfFailedCalls()).isEqualTo(1);
            assertThat(client.poolStats().getLeased()).isZero();
        }
    }

    @Test
    void aChunkedBodyFailsAsSoonAsItOutgrowsTheLimit() throws Exception {
        CountDownLatch closed = new CountDownLatch(1);
        String chunk = "1f4\r\n" + "y".repeat(500) + "\r\n";
        try (RawUpstream upstream = RawUpstream.start(headThenHold(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunk.repeat(3), closed));
                GuardedHttpClient client = client()) {
            ClassicHttpResponse response = client.executeOpen(null, new HttpGet(upstream.uri("/stream")), null);
            InputStream in = response.getEntity().getContent();
            assertThat(in.readNBytes(LIMIT)).hasSize(LIMIT);

            Throwable thrown = catchThrowable(() -> in.readNBytes(100));

            assertThat(thrown).isInstanceOf(UpstreamException.class);
            assertFault((UpstreamException) thrown, "http_response_body_size", 502, 1);
            assertThat(closed.await(10, TimeUnit.SECONDS)).as("the connection is closed, not drained").isTrue();
            response.close();
            GuardedUpstream guarded = client.upstream(upstream.baseUrl());
            assertThat(guarded.faultCounts()).containsEntry(UpstreamFault.HTTP_RESPONSE_BODY_SIZE, 1L);
            assertThat(guarded.callsInFlight()).isZero();
            assertThat(client.poolStats().getLeased()).isZero();
        }
    }

    @Test
    void bodiesExactlyAtTheLimitPass() throws Exception {
        String body = "z".repeat(LIMIT);
        RawUpstream.Behaviour lengthThenChunked = c -> {
            for (boolean chunked = false; ; chunked = true) {
                if (c.readRequest() == null) {
                    return;
                }
                c.write(chunked
                        ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + body + "\r\n0\r\n\r\n"
                        : "HTTP/1.1 200 OK\r\nContent-Length: " + LIMIT + "\r\n\r\n" + body);
            }
        };
        try (RawUpstream upstream = RawUpstream.start(lengthThenChunked); GuardedHttpClient client = client()) {
            for (String path : new String[] {"/length", "/chunked"}) {
                String read = client.execute(new HttpGet(upstream.uri(path)), r -> EntityUtils.toString(r.getEntity()));
                assertThat(read).as(path).isEqualTo(body);
            }
            assertThat(upstream.connectionCount()).as("the connection was reused").isEqualTo(1);
            assertThat(client.upstream(upstream.baseUrl()).faultCounts()).isEmpty();
        }
    }

    @Test
    void withoutALimitAnyLengthIsAccepted() throws IOException {
        try (RawUpstream upstream = RawUpstream.start(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + "w".repeat(5000));
            }
        }); GuardedHttpClient client = GuardedHttpClients.custom().build()) {
            byte[] read = client.execute(new HttpGet(upstream.uri("/")), r -> EntityUtils.toByteArray(r.getEntity()));
            assertThat(read).hasSize(5000);
        }
    }
}
