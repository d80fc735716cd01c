package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * The proxy servlet answering clients over HTTP/2 (Tomcat's h2c, the one HTTP/2 connector the tests can start): a body
 * the upstream cuts off after the response was committed must reach the client as a reset stream, never as one that
 * ended cleanly.
 */
@Timeout(60)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletHttp2Test {

    private static final int CHUNKS = 40;
    private static final int CHUNK = 8192;

    private RawUpstream cut;
    private RawUpstream whole;
    private RawUpstream small;
    private RawUpstream shortBody;
    private Container.Running tomcat;
    private HttpClient client;

    @BeforeAll
    void start() throws Exception {
        cut = RawUpstream.start(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                writeChunks(c);
                c.close(); // no last chunk: the body was cut off
            }
        });
        whole = RawUpstream.start(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                writeChunks(c);
                c.write("0\r\n\r\n");
                c.stallUntilClosed();
            }
        });
        small = RawUpstream.start(Behaviours.ok("ok"));
        shortBody = RawUpstream.start(Behaviours.truncatedBody());
        tomcat = Container.TOMCAT.start(new Container.Deployment().http2()
                .servlet("cut", UpstreamProxyServlet.builder(cut.baseUrl()).set("retry.enabled", "false").build(),
                        "/cut/*")
                .servlet("whole", UpstreamProxyServlet.builder(whole.baseUrl()).set("retry.enabled", "false").build(),
                        "/whole/*")
                .servlet("small", UpstreamProxyServlet.builder(small.baseUrl()).build(), "/small/*")
                .servlet("short", UpstreamProxyServlet.builder(shortBody.baseUrl()).set("retry.enabled", "false")
                        .build(), "/short/*"));
        client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_2).build();
        // The first request upgrades the connection (h2c), and the JDK's client stalls on a body over 64 KiB sent on
        // that stream (the same without the proxy): a small one settles the connection for the tests' streams.
        assertThat(client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + tomcat.port() + "/gw/small/"))
                .build(), HttpResponse.BodyHandlers.ofString()).body()).isEqualTo("ok");
    }

    @AfterAll
    void stop() {
        tomcat.close();
        cut.close();
        whole.close();
        small.close();
        shortBody.close();
    }

    private static void writeChunks(RawUpstream.Connection c) throws IOException {
        String chunk = Integer.toHexString(CHUNK) + "\r\n" + "x".repeat(CHUNK) + "\r\n";
        for (int i = 0; i < CHUNKS; i++) {
            c.write(chunk);
        }
    }

    private HttpResponse<InputStream> get(String path) throws Exception {
        HttpResponse<InputStream> response = client.send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + tomcat.port() + path)).timeout(Duration.ofSeconds(30)).build(),
                HttpResponse.BodyHandlers.ofInputStream());
        assertThat(response.version()).isEqualTo(HttpClient.Version.HTTP_2);
        return response;
    }

    /**
     * Regression: over HTTP/2 Tomcat ends the stream cleanly (END_STREAM) whatever the servlet throws after the commit,
     * so a body of no stated length the upstream cut off reached the client as a whole, shorter one.
     */
    @Test
    void aBodyCutOffAfterTheCommitResetsTheHttp2StreamInsteadOfEndingIt() throws Exception {
        HttpResponse<InputStream> response = get("/gw/cut/x");
        assertThat(response.statusCode()).isEqualTo(200);
        assertThatThrownBy(() -> {
            try (InputStream in = response.body()) {
                in.transferTo(OutputStream.nullOutputStream());
            }
        }).isInstanceOf(IOException.class);
    }

    /** A body cut off before anything was committed is answered as over HTTP/1.1: a whole 502 naming the fault. */
    @Test
    void aBodyCutOffBeforeTheCommitIsAWhole502OverHttp2() throws Exception {
        HttpResponse<InputStream> response = get("/gw/short/x");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status"))
                .hasValue("upstream-guard; error=http_response_incomplete");
        try (InputStream in = response.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).contains("502");
        }
    }

    @Test
    void aWholeBodyOfNoStatedLengthEndsTheHttp2StreamCleanly() throws Exception {
        HttpResponse<InputStream> response = get("/gw/whole/x");
        assertThat(response.statusCode()).isEqualTo(200);
        try (InputStream in = response.body()) {
            assertThat(in.transferTo(OutputStream.nullOutputStream())).isEqualTo((long) CHUNKS * CHUNK);
        }
    }
}
