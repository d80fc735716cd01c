package dev.upstreamguard.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.zip.ZipException;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.impl.classic.CloseableHttpClient;
import org.apache.hc.client5.http.impl.classic.HttpClients;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.ConnectionClosedException;
import org.apache.hc.core5.http.MalformedChunkCodingException;
import org.apache.hc.core5.http.TruncatedChunkException;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The raw-socket upstream itself, checked with plain sockets and unguarded clients. */
@Timeout(30)
class RawUpstreamTest {

    @Test
    void servesKeepAliveRequestsAndCountsConnectionsAndRequests() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("hello"))) {
            HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
            for (int i = 0; i < 2; i++) {
                HttpResponse<String> response = client.send(HttpRequest.newBuilder(upstream.uri("/a?b=" + i)).build(),
                        HttpResponse.BodyHandlers.ofString());
                assertThat(response.statusCode()).isEqualTo(200);
                assertThat(response.body()).isEqualTo("hello");
            }
            assertThat(upstream.requestCount()).isEqualTo(2);
            assertThat(upstream.connectionCount()).isEqualTo(1);
            assertThat(upstream.requests()).extracting(RawUpstream.Request::target).containsExactly("/a?b=0", "/a?b=1");
        }
    }

    @Test
    void readsContentLengthAndChunkedRequestBodies() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.echo()); Socket s = connect(upstream)) {
            s.getOutputStream().write(("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                    + "POST /y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")
                    .getBytes(StandardCharsets.ISO_8859_1));
            assertThat(upstream.awaitRequests(2, Duration.ofSeconds(10))).isTrue();
            assertThat(upstream.requests()).extracting(RawUpstream.Request::bodyUtf8).containsExactly("hello", "abcde");
            assertThat(upstream.requests().get(1).header("TRANSFER-ENCODING")).isEqualTo("chunked");
        }
    }

    @Test
    void scriptsBehavioursPerConnectionAndRepeatsTheLastOne() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.closeBeforeResponse(), Behaviours.status(503, "a"),
                Behaviours.ok("b"))) {
            assertThat(exchange(upstream, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).isEmpty();
            assertThat(exchange(upstream, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
                    .startsWith("HTTP/1.1 503 ").endsWith("\r\n\r\na");
            assertThat(exchange(upstream, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
                    .startsWith("HTTP/1.1 200 ").endsWith("\r\n\r\nb");
            assertThat(exchange(upstream, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
                    .startsWith("HTTP/1.1 200 ").endsWith("\r\n\r\nb");
            assertThat(upstream.connectionCount()).isEqualTo(4);
            assertThat(upstream.requestCount()).isEqualTo(4);
            upstream.behaviour(Behaviours.status(404, "gone"));
            assertThat(exchange(upstream, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
                    .startsWith("HTTP/1.1 404 ");
        }
    }

    @Test
    void writesCannedResponsesByteForByteAndCloses() throws Exception {
        String get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        try (RawUpstream a = RawUpstream.start(Behaviours.conflictingContentLength());
                RawUpstream b = RawUpstream.start(Behaviours.notHttp());
                RawUpstream c = RawUpstream.start(Behaviours.manyHeaders());
                RawUpstream d = RawUpstream.start(Behaviours.hugeHeader())) {
            assertThat(exchange(a, get)).isEqualTo(Behaviours.CONFLICTING_CONTENT_LENGTH);
            assertThat(exchange(b, get)).isEqualTo(Behaviours.NOT_HTTP);
            assertThat(exchange(c, get).split("\r\n")).hasSize(1 + Behaviours.MANY_HEADERS + 1 + 1 + 1);
            assertThat(exchange(d, get)).hasSizeGreaterThan(Behaviours.HUGE_HEADER_BYTES);
        }
    }

    @Test
    void resetBeforeResponseSendsRstWhileCloseBeforeResponseSendsFin() throws Exception {
        try (RawUpstream reset = RawUpstream.start(Behaviours.resetBeforeResponse());
                RawUpstream close = RawUpstream.start(Behaviours.closeBeforeResponse());
                Socket r = connect(reset); Socket c = connect(close)) {
            r.getOutputStream().write("GET / HTTP/1.1\r\nHost: a\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
            c.getOutputStream().write("GET / HTTP/1.1\r\nHost: a\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
            assertThatThrownBy(() -> r.getInputStream().read()).isInstanceOf(SocketException.class)
                    .hasMessageContaining("reset");
            assertThat(c.getInputStream().read()).isEqualTo(-1);
            assertThat(reset.requestCount()).isEqualTo(1);
            assertThat(close.requestCount()).isEqualTo(1);
        }
    }

    @Test
    void stallsUntilTheUpstreamIsClosed() throws Exception {
        RawUpstream upstream = RawUpstream.start(Behaviours.stall());
        try (Socket s = connect(upstream)) {
            s.getOutputStream().write("GET / HTTP/1.1\r\nHost: a\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
            assertThat(upstream.awaitRequests(1, Duration.ofSeconds(10))).isTrue();
            s.setSoTimeout(200);
            assertThatThrownBy(() -> s.getInputStream().read()).isInstanceOf(SocketTimeoutException.class);
            upstream.close();
            s.setSoTimeout(10_000);
            int read;
            try {
                read = s.getInputStream().read();
            } catch (SocketException e) {
                read = -1;
            }
            assertThat(read).isEqualTo(-1);
        } finally {
            upstream.close();
        }
    }

    @Test
    void bodyFaultsSurfaceFromAnUnguardedHttpClientWhileReadingTheEntity() throws Exception {
        try (CloseableHttpClient client = HttpClients.createDefault();
                RawUpstream truncated = RawUpstream.start(Behaviours.truncatedBody());
                RawUpstream badChunk = RawUpstream.start(Behaviours.badChunk());
                RawUpstream truncatedChunk = RawUpstream.start(Behaviours.truncatedChunk());
                RawUpstream brokenGzip = RawUpstream.start(Behaviours.brokenGzip())) {
            assertThat(readBodyFailure(client, truncated)).isInstanceOf(ConnectionClosedException.class);
            assertThat(readBodyFailure(client, badChunk)).isInstanceOf(MalformedChunkCodingException.class)
                    .isNotInstanceOf(TruncatedChunkException.class);
            assertThat(readBodyFailure(client, truncatedChunk)).isInstanceOf(TruncatedChunkException.class);
            assertThat(readBodyFailure(client, brokenGzip)).isInstanceOf(ZipException.class);
        }
    }

    private static Throwable readBodyFailure(CloseableHttpClient client, RawUpstream upstream) throws IOException {
        // The head must be fine (executeOpen returns); only reading the entity fails.
        ClassicHttpResponse response = client.executeOpen(null, new HttpGet(upstream.uri("/")), null);
        try {
            assertThat(response.getCode()).isEqualTo(200);
            return catchThrowable(() -> EntityUtils.toByteArray(response.getEntity()));
        } finally {
            try {
                response.close();
            } catch (IOException ignored) {
                // Closing a broken exchange may fail again; the first failure is what is checked.
            }
        }
    }

    static Socket connect(RawUpstream upstream) throws IOException {
        Socket s = new Socket(InetAddress.getLoopbackAddress(), upstream.port());
        s.setSoTimeout(10_000);
        return s;
    }

    /** Sends {@code request} on a new connection and returns everything received until the upstream closed it. */
    static String exchange(RawUpstream upstream, String request) throws IOException {
        try (Socket s = connect(upstream)) {
            s.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
            InputStream in = s.getInputStream();
            ByteArrayOutputStream received = new ByteArrayOutputStream();
            byte[] buffer = new byte[8192];
            try {
                for (int n = in.read(buffer); n != -1; n = in.read(buffer)) {
                    received.write(buffer, 0, n);
                }
            } catch (SocketException e) {
                // A reset after the response is fine: what arrived is what counts.
            }
            return received.toString(StandardCharsets.ISO_8859_1);
        }
    }
}
