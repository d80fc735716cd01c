package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.nio.charset.StandardCharsets;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Methods with rules of their own (RFC 9110 §9.3): what reaches the upstream, and what the gateway answers itself. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletMethodsTest {

    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, UpstreamProxyServlet> servlets = new EnumMap<>(Container.class);
    private final Map<Container, RawUpstream> upstreams = new EnumMap<>(Container.class);

    @BeforeAll
    void start() throws Exception {
        for (Container container : Container.values()) {
            RawUpstream upstream = RawUpstream.start(Behaviours.echo());
            upstreams.put(container, upstream);
            UpstreamProxyServlet servlet = UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(null)
                    .set("retry.max-attempts", "1").build();
            servlets.put(container, servlet);
            containers.put(container, container.start(new Container.Deployment().servlet("echo", servlet, "/echo/*")));
        }
    }

    @AfterAll
    void stop() {
        containers.values().forEach(Container.Running::close);
        upstreams.values().forEach(RawUpstream::close);
    }

    /**
     * Regression: deployed at the root context, Jetty hands a {@code CONNECT host:port} to the servlet mapped to
     * {@code /*}; HttpClient refused to send it, and the gateway answered 502 {@code http_protocol_error}, blaming the
     * upstream (and counting it against its breaker) for a tunnel this reverse proxy never offers. It is answered
     * 501, as Tomcat does before any servlet, and nothing goes upstream.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aConnectRequestIsAnswered501NotAnUpstreamFault(Container container) throws Exception {
        RawUpstream upstream = upstreams.get(container);
        int before = upstream.requestCount();
        UpstreamProxyServlet servlet = UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(null)
                .set("retry.max-attempts", "1").build();
        try (Container.Running root = container.start(new Container.Deployment().atRoot()
                .servlet("everything", servlet, "/*"))) {
            String authority = "127.0.0.1:" + upstream.port();
            RawClient.Response connect = RawClient.send(root.port(), "CONNECT " + authority + " HTTP/1.1\r\n"
                    + "Host: " + authority + "\r\n\r\n", null);
            assertThat(connect.status()).as("%s", connect).isEqualTo(501);
            assertThat(connect.header("Proxy-Status")).isNull();
        }
        assertThat(upstream.requestCount()).isEqualTo(before);
    }

    /** Regression: HttpClient refused to send them, and the gateway answered 502 http_protocol_error. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void contentTheRfcForbidsIsTheClientsError400NotAnUpstreamFault(Container container) throws Exception {
        int port = containers.get(container).port();
        RawUpstream upstream = upstreams.get(container);
        int before = upstream.requestCount();
        byte[] body = "abc".getBytes(StandardCharsets.US_ASCII);

        RawClient.Response untyped = RawClient.send(port, "OPTIONS /gw/echo/x HTTP/1.1\r\nHost: a\r\n"
                + "Content-Length: 3\r\n\r\n", body);
        assertThat(untyped.status()).as("%s", untyped).isEqualTo(400);
        assertThat(untyped.header("Proxy-Status")).isNull();

        RawClient.Response trace = RawClient.send(port, "TRACE /gw/echo/x HTTP/1.1\r\nHost: a\r\n"
                + "Content-Length: 3\r\n\r\n", body);
        // Tomcat refuses TRACE itself (405) before any servlet; Jetty lets it reach the proxy.
        assertThat(trace.status()).as("%s", trace).isIn(400, 405);
        assertThat(trace.header("Proxy-Status")).isNull();
        assertThat(upstream.requestCount()).isEqualTo(before);

        RawClient.Response typed = RawClient.send(port, "OPTIONS /gw/echo/x HTTP/1.1\r\nHost: a\r\n"
                + "Content-Type: text/plain\r\nContent-Length: 3\r\n\r\n", body);
        assertThat(typed.status()).as("%s", typed).isEqualTo(200);
        assertThat(typed.bodyUtf8()).isEqualTo("abc");
        assertThat(sentSince(upstream, before)).singleElement()
                .satisfies(r -> assertThat(r.method()).isEqualTo("OPTIONS"));
        assertNoFaultCounted(container);
    }

    /**
     * Regression: an OPTIONS or TRACE saying it has no content with {@code Content-Length: 0} (Python's requests sends
     * it on every OPTIONS) went upstream with an empty entity, which HttpClient refuses for both, and the gateway
     * answered a valid request 502 {@code http_protocol_error}, counted against the upstream.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void optionsAndTraceWithContentLengthZeroAreForwardedNotAnsweredAsAnUpstreamFault(Container container)
            throws Exception {
        int port = containers.get(container).port();
        RawUpstream upstream = upstreams.get(container);
        int before = upstream.requestCount();

        RawClient.Response options = RawClient.request(port, "OPTIONS", "/gw/echo/x", "Content-Length: 0");
        assertThat(options.status()).as("%s", options).isEqualTo(200);
        assertThat(options.header("Proxy-Status")).isNull();
        RawClient.Response trace = RawClient.request(port, "TRACE", "/gw/echo/x", "Content-Length: 0");
        // Tomcat refuses TRACE itself (405) before any servlet; Jetty lets it reach the proxy.
        assertThat(trace.status()).as("%s", trace).isEqualTo(container == Container.JETTY ? 200 : 405);
        assertThat(trace.header("Proxy-Status")).isNull();

        List<String> forwarded = container == Container.JETTY ? List.of("OPTIONS", "TRACE") : List.of("OPTIONS");
        assertThat(sentSince(upstream, before))
                .extracting(RawUpstream.Request::method).containsExactlyElementsOf(forwarded);
        assertNoFaultCounted(container);
    }

    /**
     * Regression: an OPTIONS without a Content-Type, or a TRACE, whose chunked body was empty ({@code 0} and nothing
     * else) was answered 400 as if it had content; it has none, and goes upstream without a body, as other methods'
     * empty chunked bodies do.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anEmptyChunkedBodyIsNoContentForAnyMethod(Container container) throws Exception {
        int port = containers.get(container).port();
        RawUpstream upstream = upstreams.get(container);
        int before = upstream.requestCount();
        // Tomcat refuses TRACE itself (405) before any servlet; Jetty lets it reach the proxy.
        List<String> methods = container == Container.JETTY ? List.of("OPTIONS", "TRACE", "GET", "DELETE", "POST")
                : List.of("OPTIONS", "GET", "DELETE", "POST");
        for (String method : methods) {
            RawClient.Response response = RawClient.send(port, RawClient.head(port, method, "/gw/echo/x",
                    "Transfer-Encoding: chunked"), "0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            assertThat(response.status()).as("%s: %s", method, response).isEqualTo(200);
            assertThat(response.header("Proxy-Status")).as(method).isNull();
            assertThat(response.body()).as(method).isEmpty();
        }
        RawClient.Response withContent = RawClient.send(port, RawClient.head(port, "OPTIONS", "/gw/echo/x",
                "Transfer-Encoding: chunked"), "3\r\nabc\r\n0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
        assertThat(withContent.status()).as("chunks with content: %s", withContent).isEqualTo(400);
        assertThat(sentSince(upstream, before))
                .extracting(RawUpstream.Request::method).containsExactlyElementsOf(methods);
        assertThat(sentSince(upstream, before))
                .allSatisfy(r -> assertThat(r.header("Transfer-Encoding")).as("%s", r).isNull());
        assertNoFaultCounted(container);
    }

    /** Regression: Max-Forwards reached the upstream unchanged, even at zero. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void optionsAndTraceDecrementMaxForwardsAndAreAnsweredByTheGatewayAtZero(Container container) throws Exception {
        int port = containers.get(container).port();
        RawUpstream upstream = upstreams.get(container);
        int before = upstream.requestCount();

        RawClient.Response options = RawClient.request(port, "OPTIONS", "/gw/echo/x", "Max-Forwards: 0");
        assertThat(options.status()).as("%s", options).isEqualTo(200);
        assertThat(options.body()).isEmpty();
        RawClient.Response trace = RawClient.request(port, "TRACE", "/gw/echo/x?q=1", "Max-Forwards: 0",
                "Cookie: session=secret", "X-Probe: seen");
        if (container == Container.JETTY) {
            assertThat(trace.status()).as("%s", trace).isEqualTo(200);
            assertThat(trace.header("Content-Type")).startsWith("message/http");
            assertThat(trace.bodyUtf8()).startsWith("TRACE /gw/echo/x?q=1 HTTP/1.1\r\n").contains("X-Probe: seen\r\n")
                    .doesNotContain("secret");
        } else {
            assertThat(trace.status()).as("Tomcat refuses TRACE itself: %s", trace).isEqualTo(405);
        }
        assertThat(upstream.requestCount()).as("nothing was forwarded").isEqualTo(before);

        assertThat(RawClient.request(port, "OPTIONS", "/gw/echo/x", "Max-Forwards: 5").status()).isEqualTo(200);
        assertThat(RawClient.request(port, "GET", "/gw/echo/x", "Max-Forwards: 0").status()).isEqualTo(200);
        assertThat(sentSince(upstream, before))
                .extracting(r -> r.method() + " " + r.header("Max-Forwards"))
                .containsExactly("OPTIONS 4", "GET 0");
    }

    /** What the upstream received since it had {@code before} requests. */
    private static List<RawUpstream.Request> sentSince(RawUpstream upstream, int before) {
        return upstream.requests().subList(before, upstream.requestCount());
    }

    /** Nothing of the container's proxy servlet was counted against the upstream. */
    private void assertNoFaultCounted(Container container) {
        UpstreamProxyServlet servlet = servlets.get(container);
        assertThat(servlet.client().upstream(servlet.upstreamName()).faultCounts()).isEmpty();
    }
}
