package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.assertFault;
import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.time.Duration;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The strict response parser over a real socket: heads that two parties could read differently are rejected as
 * {@code http_protocol_error} (and not retried), while unusual but valid heads still work.
 */
@Timeout(30)
class ResponseParsingTest {

    private static GuardedHttpClient client() {
        return GuardedHttpClients.custom().defaults(GuardPolicy.builder().connectTimeout(Duration.ofSeconds(5))
                .responseTimeout(Duration.ofSeconds(5)).initialBackoff(Duration.ofMillis(1))
                .maxBackoff(Duration.ofMillis(5)).build()).build();
    }

    @ParameterizedTest(name = "rejects {0}")
    @ValueSource(strings = {
        "HTTP/1.1 200 OK\r\nX-Bad : space before the colon\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nX-Control: a\u0001b\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nno colon at all\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/2 200\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 999 Out Of Range\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 099 Out Of Range\r\nContent-Length: 2\r\n\r\nok",
        "http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\n Content-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    })
    void rejectsAmbiguousOrMalformedHeadsAsProtocolErrors(String raw) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.respond(raw)); GuardedHttpClient client = client()) {
            assertFault(failure(client, new HttpGet(upstream.uri("/"))), "http_protocol_error", 502, 1);
            assertThat(upstream.requestCount()).isEqualTo(1);
        }
    }

    @ParameterizedTest(name = "accepts {0}")
    @ValueSource(strings = {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
        "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nX-Folded: first\r\n  second\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        "\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;name=value\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n",
        "HTTP/1.1 200 Ok with a reason phrase of several words\r\nContent-Length: 2\r\n\r\nok",
    })
    void acceptsUnusualButValidHeads(String raw) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.respond(raw)); GuardedHttpClient client = client()) {
            String seen = client.execute(new HttpGet(upstream.uri("/")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(seen).isEqualTo("200 ok");
        }
    }
}
