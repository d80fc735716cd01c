package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.assertFault;
import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.MockWebServers;
import dev.upstreamguard.testing.RawUpstream;
import dev.upstreamguard.testing.TestTls;
import java.time.Duration;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.impl.DefaultHttpRequestRetryStrategy;
import org.apache.hc.client5.http.impl.classic.HttpClientBuilder;
import org.apache.hc.client5.http.impl.io.BasicHttpClientConnectionManager;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.apache.hc.core5.util.TimeValue;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The builder's options, each observed over a real socket. */
@Timeout(30)
class BuilderOptionsTest {

    private static GuardPolicy policy() {
        return GuardPolicy.builder().connectTimeout(Duration.ofSeconds(5)).responseTimeout(Duration.ofSeconds(5))
                .initialBackoff(Duration.ofMillis(1)).maxBackoff(Duration.ofMillis(5)).build();
    }

    /** A response as the caller sees it. */
    private record Seen(int status, String contentEncoding, byte[] body) {
    }

    private static Seen get(GuardedHttpClient client, java.net.URI uri) throws java.io.IOException {
        return client.execute(new HttpGet(uri), r -> new Seen(r.getCode(),
                r.getFirstHeader("Content-Encoding") == null ? null : r.getFirstHeader("Content-Encoding").getValue(),
                EntityUtils.toByteArray(r.getEntity())));
    }

    @Test
    void headerLimitsCanBeRaisedAndLowered() throws Exception {
        try (RawUpstream many = RawUpstream.start(Behaviours.manyHeaders());
                RawUpstream huge = RawUpstream.start(Behaviours.hugeHeader());
                GuardedHttpClient roomy = GuardedHttpClients.custom().defaults(policy())
                        .maxResponseHeaderCount(5000)
                        .maxResponseHeaderSize(512 * 1024)
                        .maxResponseHeaderSectionSize(1024 * 1024)
                        .build();
                GuardedHttpClient tight = GuardedHttpClients.custom().defaults(policy())
                        .maxResponseHeaderCount(1000)
                        .build()) {
            assertThat(get(roomy, many.uri("/")).status()).isEqualTo(200);
            assertThat(get(roomy, huge.uri("/")).status()).isEqualTo(200);
            assertFault(failure(tight, new HttpGet(many.uri("/"))), "http_response_header_section_size", 502, 1);
        }
    }

    /**
     * Regression: the line limit is "the longest response header line, in characters", but HttpCore counts the CR
     * with the line and refuses it on reaching the limit, so a line one character under it failed as
     * {@code http_response_header_size}: 16,383 characters by default, 99 with a limit of 100.
     */
    @ParameterizedTest(name = "limit={0} status line={1}")
    @CsvSource({"0, false", "0, true", "100, false", "100, true"})
    void aHeadLineOfExactlyTheLimitPassesAndOneMoreFails(int limit, boolean statusLine) throws Exception {
        int max = limit == 0 ? GuardedHttpClientBuilder.DEFAULT_MAX_HEADER_SIZE : limit;
        GuardedHttpClientBuilder builder = GuardedHttpClients.custom().defaults(policy());
        try (GuardedHttpClient client = limit == 0 ? builder.build() : builder.maxResponseHeaderSize(limit).build()) {
            for (int length = max - 1; length <= max + 1; length++) {
                String line = statusLine ? "HTTP/1.1 200 " + "R".repeat(length - 13) : "X-A: " + "a".repeat(length - 5);
                String head = statusLine ? line + "\r\n" : "HTTP/1.1 200 OK\r\n" + line + "\r\n";
                try (RawUpstream upstream = RawUpstream.start(Behaviours.respond(head + "Content-Length: 2\r\n\r\nok"))) {
                    if (length <= max) {
                        assertThat(get(client, upstream.uri("/")).status()).as("a line of %d", length).isEqualTo(200);
                    } else {
                        assertFault(failure(client, new HttpGet(upstream.uri("/"))), "http_response_header_size", 502,
                                1);
                    }
                }
            }
        }
    }

    /**
     * Regression: the head limit ("largest response head, in characters") left out the status line's CRLF and the
     * empty line ending the head, so a head four characters over it passed.
     */
    @ParameterizedTest(name = "limit={0}")
    @ValueSource(ints = {0, 200})
    void aHeadOfExactlyTheSectionLimitPassesAndOneMoreFails(int limit) throws Exception {
        int max = limit == 0 ? GuardedHttpClientBuilder.DEFAULT_MAX_HEADER_SECTION_SIZE : limit;
        GuardedHttpClientBuilder builder = GuardedHttpClients.custom().defaults(policy());
        try (GuardedHttpClient client = limit == 0 ? builder.build()
                        : builder.maxResponseHeaderSectionSize(limit).build();
                RawUpstream exact = RawUpstream.start(Behaviours.respond(headOf(max) + "ok"));
                RawUpstream over = RawUpstream.start(Behaviours.respond(headOf(max + 1) + "ok"))) {
            assertThat(get(client, exact.uri("/")).status()).isEqualTo(200);
            assertFault(failure(client, new HttpGet(over.uri("/"))), "http_response_header_section_size", 502, 1);
        }
    }

    /**
     * Regression: a trailer section over the head's limits failed as {@code http_protocol_error} (RFC 9209 has its own
     * types for trailers), and the decoder refused as many trailer fields as the header count allows.
     */
    @Test
    void trailersAreHeldToTheHeadLimitsAndReportedAsTrailerFaults() throws Exception {
        String chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n";
        String fiveFields = "X-T: t\r\n".repeat(5);
        String lineOf100 = "X-T: " + "t".repeat(95) + "\r\n";
        String lineOf101 = "X-T: " + "t".repeat(96) + "\r\n";
        try (GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy())
                        .maxResponseHeaderCount(5).maxResponseHeaderSize(100).build();
                RawUpstream fieldsAtLimit = RawUpstream.start(Behaviours.respond(chunked + fiveFields + "\r\n"));
                RawUpstream oneFieldMore = RawUpstream.start(
                        Behaviours.respond(chunked + fiveFields + "X-T: t\r\n\r\n"));
                RawUpstream lineAtLimit = RawUpstream.start(Behaviours.respond(chunked + lineOf100 + "\r\n"));
                RawUpstream lineTooLong = RawUpstream.start(Behaviours.respond(chunked + lineOf101 + "\r\n"))) {
            assertThat(new String(get(client, fieldsAtLimit.uri("/")).body())).isEqualTo("ok");
            assertThat(new String(get(client, lineAtLimit.uri("/")).body())).isEqualTo("ok");
            assertFault(failure(client, new HttpGet(oneFieldMore.uri("/"))), "http_response_trailer_section_size",
                    502, 1);
            assertFault(failure(client, new HttpGet(lineTooLong.uri("/"))), "http_response_trailer_size", 502, 1);
        }
    }

    /**
     * Regression: the trailer section was held to the head's field count and line length but not to its size, so an
     * upstream could have the client hold 256 trailer fields of 16 KiB each, 4 MiB, with every response (and a proxy
     * relay them). It is held to the head's section limit too, counted the same way, and over it is RFC 9209's
     * trailer section fault.
     */
    @ParameterizedTest(name = "limit={0}")
    @ValueSource(ints = {0, 200})
    void aTrailerSectionOfExactlyTheSectionLimitPassesAndOneMoreFails(int limit) throws Exception {
        int max = limit == 0 ? GuardedHttpClientBuilder.DEFAULT_MAX_HEADER_SECTION_SIZE : limit;
        String chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n";
        GuardedHttpClientBuilder builder = GuardedHttpClients.custom().defaults(policy());
        try (GuardedHttpClient client = limit == 0 ? builder.build()
                        : builder.maxResponseHeaderSectionSize(limit).build();
                RawUpstream exact = RawUpstream.start(Behaviours.respond(chunked + sectionOf(new StringBuilder(), max)));
                RawUpstream over = RawUpstream.start(
                        Behaviours.respond(chunked + sectionOf(new StringBuilder(), max + 1)))) {
            assertThat(new String(get(client, exact.uri("/")).body())).isEqualTo("ok");
            assertFault(failure(client, new HttpGet(over.uri("/"))), "http_response_trailer_section_size", 502, 1);
        }
    }

    /** A response head of exactly {@code size} characters, CRLFs included, with a 2-byte body to follow. */
    private static String headOf(int size) {
        return sectionOf(new StringBuilder("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"), size);
    }

    /**
     * {@code start} filled with fields and ended with the empty line, {@code size} characters in all, CRLFs included.
     */
    private static String sectionOf(StringBuilder start, int size) {
        int filler = size - start.length() - 2;
        while (filler > 0) {
            // Lines of up to 1000 characters; the last one takes the rest, at least "X-F: " and its CRLF.
            int line = filler <= 1000 ? filler : Math.min(1000, filler - 7);
            start.append("X-F: ").append("b".repeat(line - 7)).append("\r\n");
            filler -= line;
        }
        return start.append("\r\n").toString();
    }

    @Test
    void withoutContentCompressionTheBodyPassesThroughUndecoded() throws Exception {
        try (RawUpstream gzip = RawUpstream.start(Behaviours.brokenGzip());
                GuardedHttpClient proxyStyle = GuardedHttpClients.custom().defaults(policy())
                        .contentCompression(false).build()) {
            Seen seen = get(proxyStyle, gzip.uri("/"));
            assertThat(seen.status()).isEqualTo(200);
            assertThat(seen.contentEncoding()).isEqualTo("gzip");
            assertThat(seen.body()).isEqualTo(Behaviours.BROKEN_GZIP);
            assertThat(gzip.requests().get(0).header("Accept-Encoding")).isNull();
        }
    }

    @Test
    void redirectsAreFollowedByDefaultAndReturnedAsIsWhenDisabled() throws Exception {
        try (MockWebServer server = MockWebServers.start();
                GuardedHttpClient following = GuardedHttpClients.custom().defaults(policy()).build();
                GuardedHttpClient notFollowing = GuardedHttpClients.custom().defaults(policy()).redirects(false).build()) {
            MockWebServers.answer(server, r -> r.getTarget().equals("/old")
                    ? new MockResponse.Builder().code(302).setHeader("Location", "/new").build()
                    : new MockResponse.Builder().body("new place").build());
            Seen followed = get(following, MockWebServers.uri(server, "/old"));
            assertThat(followed.status()).isEqualTo(200);
            assertThat(new String(followed.body(), java.nio.charset.StandardCharsets.UTF_8)).isEqualTo("new place");
            assertThat(get(notFollowing, MockWebServers.uri(server, "/old")).status()).isEqualTo(302);
            assertThat(server.getRequestCount()).isEqualTo(3);
        }
    }

    @Test
    void aUserHttpClientBuilderIsUsedButItsRetriesAreDisabledSoThereIsOneRetryLoop() throws Exception {
        HttpClientBuilder users = HttpClientBuilder.create()
                .setRetryStrategy(new DefaultHttpRequestRetryStrategy(5, TimeValue.ofMilliseconds(1)))
                .addRequestInterceptorFirst((request, entity, context) -> request.setHeader("X-Caller", "billing"));
        try (RawUpstream upstream = RawUpstream.start(Behaviours.closeBeforeResponse());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy())
                        .httpClientBuilder(users).build()) {
            assertFault(failure(client, new HttpGet(upstream.uri("/"))), "connection_terminated", 502, 3);
            assertThat(upstream.requestCount()).as("3 attempts, not 3 x (1 + 5)").isEqualTo(3);
            assertThat(upstream.requests()).allSatisfy(r -> assertThat(r.header("X-Caller")).isEqualTo("billing"));
        }
    }

    @Test
    void aConnectionManagerFromTheGuardedBuilderKeepsTheStrictResponseParser() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.notHttp());
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy())
                        .connectionManager(GuardedHttpClients.connectionManagerBuilder().build()).build()) {
            assertFault(failure(client, new HttpGet(upstream.uri("/"))), "http_protocol_error", 502, 1);
            assertThat(client.poolStats()).isNotNull();
        }
    }

    @Test
    void poolStatsAreUnavailableForANonPoolingConnectionManager() throws Exception {
        try (GuardedHttpClient client = GuardedHttpClients.custom()
                .connectionManager(new BasicHttpClientConnectionManager()).build()) {
            assertThat(client.poolStats()).isNull();
        }
    }

    /**
     * Regression: the pool's total was the sum of the upstreams' max-connections in an int, which wrapped around: two
     * upstreams allowed Integer.MAX_VALUE connections each (as good as unlimited) shared a pool of 800.
     */
    @Test
    void upstreamsAllowedAsManyConnectionsAsAnIntHoldsGetAPoolThatLarge() throws Exception {
        GuardPolicy unlimited = GuardPolicy.builder().maxConnections(Integer.MAX_VALUE).build();
        try (GuardedHttpClient client = GuardedHttpClients.custom()
                .upstream("a", "http://127.0.0.1:8081", unlimited)
                .upstream("b", "http://127.0.0.1:8082", unlimited).build()) {
            assertThat(client.poolStats().getMax()).isEqualTo(Integer.MAX_VALUE);
        }
        try (GuardedHttpClient client = GuardedHttpClients.custom().defaults(unlimited)
                .upstream("a", "http://127.0.0.1:8081", unlimited).build()) {
            assertThat(client.poolStats().getMax()).isEqualTo(Integer.MAX_VALUE);
        }
    }

    @Test
    void aNamedUpstreamsMaxConnectionsLimitsItsOwnPool() throws Exception {
        GuardPolicy one = GuardPolicy.builder().maxConnections(1).poolTimeout(Duration.ofMillis(300))
                .connectTimeout(Duration.ofSeconds(5)).responseTimeout(Duration.ofSeconds(5)).build();
        try (MockWebServer server = MockWebServers.start();
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy())
                        .upstream("inventory", "http://127.0.0.1:" + server.getPort() + "/api", one).build()) {
            MockWebServers.always(server, new MockResponse.Builder().body("hello").build());
            try (org.apache.hc.core5.http.ClassicHttpResponse held = client.executeOpen(null,
                    new HttpGet(MockWebServers.uri(server, "/api/a")), null)) {
                assertThat(held.getCode()).isEqualTo(200);
                assertFault(failure(client, new HttpGet(MockWebServers.uri(server, "/api/b"))),
                        "connection_limit_reached", 503, 1);
            }
        }
    }

    /**
     * Regression: two upstreams behind one {@code scheme://host:port} share its pool, whose size was the
     * max-connections of the one configured last, so an upstream allowed 2 connections got 1 because another on the
     * same host was allowed 1: its second concurrent call failed with connection_limit_reached.
     */
    @Test
    void upstreamsSharingAnOriginEachGetTheirOwnMaxConnections() throws Exception {
        GuardPolicy two = GuardPolicy.builder().maxConnections(2).poolTimeout(Duration.ofMillis(300))
                .connectTimeout(Duration.ofSeconds(5)).responseTimeout(Duration.ofSeconds(5)).build();
        GuardPolicy one = two.toBuilder().maxConnections(1).build();
        try (MockWebServer server = MockWebServers.start();
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy())
                        .upstream("inventory", "http://127.0.0.1:" + server.getPort() + "/inventory", two)
                        .upstream("reports", "http://127.0.0.1:" + server.getPort() + "/reports", one).build()) {
            MockWebServers.always(server, new MockResponse.Builder().body("hello").build());
            try (org.apache.hc.core5.http.ClassicHttpResponse held = client.executeOpen(null,
                    new HttpGet(MockWebServers.uri(server, "/inventory/a")), null);
                    org.apache.hc.core5.http.ClassicHttpResponse second = client.executeOpen(null,
                            new HttpGet(MockWebServers.uri(server, "/inventory/b")), null)) {
                assertThat(held.getCode()).isEqualTo(200);
                assertThat(second.getCode()).isEqualTo(200);
                assertFault(failure(client, new HttpGet(MockWebServers.uri(server, "/inventory/c"))),
                        "connection_limit_reached", 503, 1);
            }
        }
    }

    @Test
    void upstreamsListsNamedOnesAndEveryUnnamedOneCalled() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"));
                GuardedHttpClient client = GuardedHttpClients.custom().defaults(policy())
                        .upstream("inventory", "http://inventory.internal:8080").build()) {
            assertThat(client.upstreams()).extracting(GuardedUpstream::name).containsExactly("inventory");
            assertThat(get(client, upstream.uri("/")).status()).isEqualTo(200);
            assertThat(client.upstreams()).extracting(GuardedUpstream::name)
                    .containsExactlyInAnyOrder("inventory", upstream.baseUrl());
            assertThat(client.upstream(upstream.baseUrl()).policy()).isEqualTo(policy());
            assertThat(client.upstream("inventory").circuitState()).isEqualTo("CLOSED");
            assertThatThrownBy(() -> client.upstream("billing")).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("billing");
        }
    }

    /** The TLS versions given to {@code tlsOptions} are the only ones offered; an empty or blank list is refused. */
    @Test
    void tlsOptionsLimitWhatIsOfferedToTheUpstream() throws Exception {
        try (RawUpstream upstream = RawUpstream.startTls(false, new String[] {"TLSv1.3"}, Behaviours.ok("ok"))) {
            String url = upstream.baseUrl() + "/x";
            try (GuardedHttpClient client = GuardedHttpClients.custom().sslContext(TestTls.clientContext())
                    .tlsOptions(new String[] {"TLSv1.3"}, null).build()) {
                String body = client.execute(new HttpGet(url), r -> EntityUtils.toString(r.getEntity()));
                assertThat(body).isEqualTo("ok");
            }
            try (GuardedHttpClient client = GuardedHttpClients.custom().sslContext(TestTls.clientContext())
                    .tlsOptions(new String[] {"TLSv1.2"}, null).build()) {
                assertThat(failure(client, new HttpGet(url)).fault())
                        .isIn(UpstreamFault.TLS_ALERT_RECEIVED, UpstreamFault.TLS_PROTOCOL_ERROR);
            }
        }
        assertThatThrownBy(() -> GuardedHttpClients.custom().tlsOptions(new String[0], null))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("TLS protocols");
        assertThatThrownBy(() -> GuardedHttpClients.custom().tlsOptions(null, new String[] {" "}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("TLS cipher suites");
    }
}
