package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Upstream responses at the edges of HTTP/1.1's syntax (RFC 9112), through the proxy servlet in each container: what
 * RFC 9112 lets a recipient accept reaches the client as the upstream meant it, with no {@code Proxy-Status}; what two
 * parties could read differently, or what is not HTTP/1.1 at all, is the upstream's 502 naming
 * {@code http_protocol_error}, never retried (a broken upstream stays broken), and one in a transfer coding the client
 * does not decode {@code http_response_transfer_coding}; one that ends early is
 * {@code http_response_incomplete}. No connection is left leased. (The classic faults — not HTTP, conflicting lengths, a NUL, status 600 — are in
 * {@link ProxyServletFaultTest}.)
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletResponseSyntaxTest {

    private static final Duration SETTLE = Duration.ofSeconds(15);
    private static final String OK = "Content-Length: 2\r\n\r\nok";
    private static final String CHUNKED_OK = "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";

    /** An upstream response, and what the client gets: a status and body passed on, or a generated fault. */
    private record Case(String route, String response, int status, String body, UpstreamFault fault) {
        @Override
        public String toString() {
            return route;
        }
    }

    private final List<Case> cases = new ArrayList<>();
    private final List<RawUpstream> upstreams = new ArrayList<>();
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, Map<String, UpstreamProxyServlet>> servlets = new EnumMap<>(Container.class);

    @BeforeAll
    void start() throws Exception {
        // RFC 9112 §2.2: a recipient may take a bare LF as a line end.
        passes("lf-line-ends", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", 200, "ok");
        passes("lf-line-ends-in-chunks", "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nok\n0\n\n", 200, "ok");
        // §2.2: empty lines before the status line are ignored.
        passes("empty-lines-before-the-status-line", "\r\n\r\nHTTP/1.1 200 OK\r\n" + OK, 200, "ok");
        // §4: the reason phrase is optional, may be empty, and may hold obs-text; the client never depends on it.
        passes("no-reason-phrase", "HTTP/1.1 200\r\n" + OK, 200, "ok");
        passes("empty-reason-phrase", "HTTP/1.1 200 \r\n" + OK, 200, "ok");
        passes("reason-phrase-with-obs-text", "HTTP/1.1 200 \u00e9t\u00e9 ok\r\n" + OK, 200, "ok");
        passes("long-reason-phrase", "HTTP/1.1 200 " + "R".repeat(6000) + "\r\n" + OK, 200, "ok");
        // RFC 9110 §15: an unrecognized status of a known class passes as it is.
        passes("unregistered-2xx", "HTTP/1.1 299 Custom\r\n" + OK, 299, "ok");
        passes("unregistered-5xx", "HTTP/1.1 599 Custom\r\n" + OK, 599, "ok");
        // RFC 9112 §7: transfer coding names are case-insensitive; §7.1.1: chunk extensions are ignored.
        passes("chunked-in-capitals", "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                200, "ok");
        passes("chunk-extensions", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a=b;c=\"d;e\"\r\nok\r\n"
                + "0;last\r\n\r\n", 200, "ok");
        // RFC 9110 §8.6: a list of identical lengths is that length; leading zeros are digits like any other.
        passes("content-length-list-of-one-value", "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", 200, "ok");
        passes("content-length-with-leading-zeros", "HTTP/1.1 200 OK\r\nContent-Length: 0002\r\n\r\nok", 200, "ok");
        // RFC 9110 §15.2: interim responses of any 1xx code precede the final one; a 1xx has no content, whatever it
        // says of a length.
        passes("continue-before-the-answer", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" + OK, 200, "ok");
        passes("processing-before-the-answer", "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\n" + OK, 200, "ok");
        passes("unregistered-1xx-before-the-answer", "HTTP/1.1 199 Custom\r\nX-I: 1\r\n\r\nHTTP/1.1 200 OK\r\n" + OK,
                200, "ok");
        passes("interim-with-a-content-length", "HTTP/1.1 103 Early Hints\r\nContent-Length: 2\r\n\r\n"
                + "HTTP/1.1 200 OK\r\n" + OK, 200, "ok");
        // RFC 9112 §9.3: an HTTP/1.0 response, kept alive or not, framed by its length.
        passes("http10-kept-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n" + OK,
                200, "ok");
        passes("http10-framed-by-length", "HTTP/1.0 200 OK\r\n" + OK, 200, "ok");
        // A valid answer of any status is never converted.
        passes("upstream-500", "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n" + OK, 500, "ok");
        passes("upstream-502-empty", "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", 502, "");
        passes("upstream-504-chunked", "HTTP/1.1 504 Gateway Timeout\r\n" + CHUNKED_OK, 504, "ok");

        // RFC 9112 §5.1: no whitespace between a field name and its colon; a name is a token, and not empty.
        fails("whitespace-before-a-colon", "HTTP/1.1 200 OK\r\nX-A : b\r\n" + OK);
        fails("parenthesis-in-a-field-name", "HTTP/1.1 200 OK\r\nX(A): b\r\n" + OK);
        fails("space-in-a-field-name", "HTTP/1.1 200 OK\r\nX A: b\r\n" + OK);
        fails("empty-field-name", "HTTP/1.1 200 OK\r\n: b\r\n" + OK);
        fails("field-line-without-a-colon", "HTTP/1.1 200 OK\r\nGarbage\r\n" + OK);
        // §2.2: whitespace before the first field line could hide a field from one parser but not another.
        fails("whitespace-before-the-first-field", "HTTP/1.1 200 OK\r\n X-A: b\r\n" + OK);
        // §5.5: DEL and a CR alone are not field content.
        fails("del-in-a-field-value", "HTTP/1.1 200 OK\r\nX-A: a\u007fb\r\n" + OK);
        fails("lone-cr-in-a-field-value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n" + OK);
        fails("cr-alone-as-line-ends", "HTTP/1.1 200 OK\rContent-Length: 2\r\rok");
        // §6.1: chunked must be the final coding, applied once (else broken framing); any other coding is one this
        // client does not take off (RFC 9209 http_response_transfer_coding).
        fails("chunked-twice-in-two-fields", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + CHUNKED_OK);
        fails("chunked-twice-in-one-field", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                + "2\r\nok\r\n0\r\n\r\n");
        codedUnknown("identity-transfer-coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok");
        fails("identity-transfer-coding-with-a-length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n" + OK);
        codedUnknown("gzip-under-chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
        codedUnknown("chunked-not-last", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nok");
        fails("empty-transfer-encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\nok");
        fails("length-and-chunked-in-http10", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n"
                + "\r\nok");
        // §7.1: a chunk size is hex digits only, and must fit.
        fails("chunk-size-overflowing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nok"
                + "\r\n0\r\n\r\n");
        fails("negative-chunk-size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n");
        fails("hex-prefixed-chunk-size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n");
        fails("chunk-data-longer-than-its-size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0"
                + "\r\n\r\n");
        // RFC 9110 §8.6: Content-Length is 1*DIGIT; a list only of one value.
        fails("negative-content-length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok");
        fails("signed-content-length", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok");
        fails("hex-content-length", "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok");
        fails("empty-content-length", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok");
        fails("content-length-list-of-two-values", "HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok");
        fails("content-length-past-long", "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\nok");
        // RFC 9112 §4: status-line = HTTP-version SP 3DIGIT SP [reason]; HTTP-version is case-sensitive, major 1.
        fails("status-code-099", "HTTP/1.1 099 Low\r\n" + OK);
        fails("two-digit-status-code", "HTTP/1.1 20 Low\r\n" + OK);
        fails("four-digit-status-code", "HTTP/1.1 2000 High\r\n" + OK);
        fails("whitespace-before-the-status-line", " HTTP/1.1 200 OK\r\n" + OK);
        fails("two-spaces-after-the-version", "HTTP/1.1  200 OK\r\n" + OK);
        fails("tabs-in-the-status-line", "HTTP/1.1\t200\tOK\r\n" + OK);
        fails("lower-case-version", "http/1.1 200 OK\r\n" + OK);
        fails("http2-status-line", "HTTP/2 200 OK\r\n" + OK);
        fails("http20-status-line", "HTTP/2.0 200 OK\r\n" + OK);
        fails("http09-status-line", "HTTP/0.9 200 OK\r\n" + OK);
        // An upstream that speaks HTTP/2 to an HTTP/1.1 request: its connection preface, or a bare SETTINGS frame.
        fails("http2-connection-preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        fails("http2-settings-frame", "\u0000\u0000\u0000\u0004\u0000\u0000\u0000\u0000\u0000");
        // A 1xx is interim: what follows it must be a status line, not a body.
        fails("interim-response-with-a-body", "HTTP/1.1 199 Custom\r\n" + OK);

        endsEarly("continue-then-close", "HTTP/1.1 100 Continue\r\n\r\n");
        endsEarly("close-in-the-status-line", "HTTP/1.1 20");
        endsEarly("close-after-a-head-with-a-length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
        endsEarly("close-after-a-chunked-head", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        endsEarly("close-in-the-trailer-section", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"
                + "0\r\nX-T: 1\r\n");
        endsEarly("close-in-a-chunk-of-the-largest-size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "7FFFFFFFFFFFFFFF\r\nok");

        for (Container container : Container.values()) {
            Map<String, UpstreamProxyServlet> byRoute = new LinkedHashMap<>();
            Container.Deployment deployment = new Container.Deployment();
            for (Case c : cases) {
                RawUpstream upstream = RawUpstream.start(Behaviours.respond(c.response));
                upstreams.add(upstream);
                UpstreamProxyServlet servlet = UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(null)
                        .set("retry.initial-backoff", "1ms").set("retry.max-backoff", "2ms").build();
                byRoute.put(c.route, servlet);
                deployment.servlet(c.route, servlet, "/" + c.route + "/*");
            }
            servlets.put(container, byRoute);
            containers.put(container, container.start(deployment));
        }
    }

    @AfterAll
    void stop() {
        containers.values().forEach(Container.Running::close);
        upstreams.forEach(RawUpstream::close);
    }

    Stream<Arguments> responses() {
        return Stream.of(Container.values()).flatMap(k -> cases.stream().map(c -> Arguments.of(k, c)));
    }

    @ParameterizedTest(name = "[{0}] {1}")
    @MethodSource("responses")
    void eachResponseIsPassedOnAsMeantOrAnsweredAsTheUpstreamsFault(Container container, Case c) throws Exception {
        RawClient.Response answer = RawClient.request(containers.get(container).port(), "GET", "/gw/" + c.route + "/x",
                "Accept: application/problem+json");
        assertThat(answer.complete()).as("%s", answer).isTrue();
        assertThat(answer.status()).as("%s", answer).isEqualTo(c.status);
        if (c.fault == null) {
            assertThat(answer.bodyUtf8()).isEqualTo(c.body);
            assertThat(answer.header("Proxy-Status")).isNull();
            assertThat(answer.header("Via")).isNotNull();
        } else {
            assertThat(answer.header("Proxy-Status")).isEqualTo("upstream-guard; error=" + c.fault.type());
            assertThat(answer.header("Content-Type")).startsWith("application/problem+json");
            assertThat(answer.bodyUtf8()).contains("\"fault\":\"" + c.fault.type() + "\"");
            if (c.fault == UpstreamFault.HTTP_PROTOCOL_ERROR || c.fault == UpstreamFault.HTTP_RESPONSE_TRANSFER_CODING) {
                assertThat(answer.bodyUtf8()).contains("\"attempts\":1");
            }
        }
        UpstreamProxyServlet servlet = servlets.get(container).get(c.route);
        Await.until("no connection of '" + c.route + "' is leased", SETTLE,
                () -> servlet.client().poolStats().getLeased() == 0, () -> "" + servlet.client().poolStats());
    }

    private void passes(String route, String response, int status, String body) {
        cases.add(new Case(route, response, status, body, null));
    }

    private void fails(String route, String response) {
        cases.add(new Case(route, response, 502, null, UpstreamFault.HTTP_PROTOCOL_ERROR));
    }

    private void codedUnknown(String route, String response) {
        cases.add(new Case(route, response, 502, null, UpstreamFault.HTTP_RESPONSE_TRANSFER_CODING));
    }

    private void endsEarly(String route, String response) {
        cases.add(new Case(route, response, 502, null, UpstreamFault.HTTP_RESPONSE_INCOMPLETE));
    }
}
