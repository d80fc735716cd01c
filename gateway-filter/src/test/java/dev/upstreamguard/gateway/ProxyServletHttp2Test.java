package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
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
    private RawUpstream forwarding;
    private RawUpstream largeHead;
    private Container.Running tomcat;
    private Http2Client client;

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
        forwarding = RawUpstream.start(Behaviours.ok("forwarded"));
        // 12 KB of fields: over Tomcat's HTTP/1.1 maxHttpResponseHeaderSize (8 KiB), which its HTTP/2 does not have.
        largeHead = RawUpstream.start(c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write("HTTP/1.1 200 OK\r\n" + ("X-Large: " + "v".repeat(110) + "\r\n").repeat(100)
                        + "Content-Length: 5\r\n\r\nlarge");
            }
        });
        tomcat = Container.TOMCAT.start(new Container.Deployment().http2()
                .servlet("cut", UpstreamProxyServlet.builder(cut.baseUrl()).set("retry.enabled", "false").build(),
                        "/cut/*")
                .servlet("whole", UpstreamProxyServlet.builder(whole.baseUrl()).set("retry.enabled", "false").build(),
                        "/whole/*")
                .servlet("small", UpstreamProxyServlet.builder(small.baseUrl()).build(), "/small/*")
                .servlet("short", UpstreamProxyServlet.builder(shortBody.baseUrl()).set("retry.enabled", "false")
                        .build(), "/short/*")
                .servlet("forwarded", UpstreamProxyServlet.builder(forwarding.baseUrl()).build(), "/forwarded/*")
                .servlet("preserved", UpstreamProxyServlet.builder(forwarding.baseUrl()).preserveHost(true).build(),
                        "/preserved/*")
                .servlet("large-head", UpstreamProxyServlet.builder(largeHead.baseUrl()).set("retry.enabled", "false")
                        .build(), "/large-head/*"));
        client = new Http2Client(tomcat.port(), "/gw/small/");
    }

    @AfterAll
    void stop() {
        tomcat.close();
        cut.close();
        whole.close();
        small.close();
        shortBody.close();
        forwarding.close();
        largeHead.close();
    }

    private static void writeChunks(RawUpstream.Connection c) throws IOException {
        String chunk = Integer.toHexString(CHUNK) + "\r\n" + "x".repeat(CHUNK) + "\r\n";
        for (int i = 0; i < CHUNKS; i++) {
            c.write(chunk);
        }
    }

    /**
     * Regression: over HTTP/2 Tomcat ends the stream cleanly (END_STREAM) whatever the servlet throws after the commit,
     * so a body of no stated length the upstream cut off reached the client as a whole, shorter one.
     */
    @Test
    void aBodyCutOffAfterTheCommitResetsTheHttp2StreamInsteadOfEndingIt() throws Exception {
        HttpResponse<InputStream> response = client.get("/gw/cut/x");
        assertThat(response.statusCode()).isEqualTo(200);
        Http2Client.assertStreamReset(response);
    }

    /** A body cut off before anything was committed is answered as over HTTP/1.1: a whole 502 naming the fault. */
    @Test
    void aBodyCutOffBeforeTheCommitIsAWhole502OverHttp2() throws Exception {
        HttpResponse<InputStream> response = client.get("/gw/short/x");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status"))
                .hasValue("upstream-guard; error=http_response_incomplete");
        try (InputStream in = response.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).contains("502");
        }
    }

    @Test
    void aWholeBodyOfNoStatedLengthEndsTheHttp2StreamCleanly() throws Exception {
        HttpResponse<InputStream> response = client.get("/gw/whole/x");
        assertThat(response.statusCode()).isEqualTo(200);
        try (InputStream in = response.body()) {
            assertThat(in.transferTo(OutputStream.nullOutputStream())).isEqualTo((long) CHUNKS * CHUNK);
        }
    }

    /**
     * Regression: over HTTP/2 the client's authority travels as {@code :authority}, which Tomcat gives the servlet as
     * its server name and port but not as a {@code Host} field; the servlet read only {@code Host}, so the upstream got
     * no {@code X-Forwarded-Host}, a {@code Forwarded} without {@code host}, and with {@code preserve-host} its own
     * name instead of the client's (RFC 9113 §8.3.1: a Host generated for HTTP/1.1 takes the {@code :authority}).
     */
    @Test
    void theAuthorityAnHttp2ClientAddressedReachesTheUpstreamAsAHttp11ClientsHostWould() throws Exception {
        String authority = "127.0.0.1:" + tomcat.port();
        assertThat(client.get("/gw/forwarded/x").statusCode()).isEqualTo(200);
        RawUpstream.Request forwarded = forwarding.requests().get(forwarding.requestCount() - 1);
        assertThat(forwarded.header("X-Forwarded-Host")).isEqualTo(authority);
        assertThat(forwarded.header("Forwarded")).isEqualTo("for=127.0.0.1;proto=http;host=\"" + authority + "\"");
        assertThat(forwarded.header("Host")).isEqualTo("127.0.0.1:" + forwarding.port());

        assertThat(client.get("/gw/preserved/x").statusCode()).isEqualTo(200);
        RawUpstream.Request preserved = forwarding.requests().get(forwarding.requestCount() - 1);
        assertThat(preserved.header("Host")).isEqualTo(authority);
    }

    /**
     * Regression: the check that answers 502 {@code http_response_header_section_size} for a head the container cannot
     * write applied Tomcat's HTTP/1.1 limit ({@code maxHttpResponseHeaderSize}, 8 KiB) to HTTP/2 clients too, whose
     * heads Tomcat writes whatever their size (in CONTINUATION frames): a valid 12 KB head became a 502. Over HTTP/1.1
     * on the same connector and servlet it is still the 502.
     */
    @Test
    void aHeadOverTomcatsHttp11LimitPassesToAnHttp2ClientButNotToAnHttp11One() throws Exception {
        HttpResponse<InputStream> overHttp2 = client.get("/gw/large-head/x");
        assertThat(overHttp2.statusCode()).isEqualTo(200);
        assertThat(overHttp2.headers().allValues("X-Large")).hasSize(100);
        try (InputStream in = overHttp2.body()) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).isEqualTo("large");
        }
        RawClient.Response overHttp11 = RawClient.request(tomcat.port(), "GET", "/gw/large-head/x");
        assertThat(overHttp11.status()).as("%s", overHttp11).isEqualTo(502);
        assertThat(overHttp11.header("Proxy-Status"))
                .isEqualTo("upstream-guard; error=http_response_header_section_size");
    }
}
