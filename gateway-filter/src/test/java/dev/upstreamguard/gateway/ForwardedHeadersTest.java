package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.io.BufferedInputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** {@code forwarded-headers} chooses the forwarding headers; client-supplied ones of a kind not added never pass. */
@Timeout(60)
class ForwardedHeadersTest {

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void onlyTheChosenKindOfForwardingHeadersReachesTheUpstream(Container container) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"))) {
            Map<String, String> forwardedOnly = new LinkedHashMap<>();
            forwardedOnly.put("upstream", upstream.baseUrl());
            forwardedOnly.put("forwarded-headers", "forwarded");
            Container.Deployment deployment = new Container.Deployment()
                    .servlet("rfc", new UpstreamProxyServlet(), "/rfc/*", forwardedOnly)
                    .servlet("legacy", UpstreamProxyServlet.builder(upstream.baseUrl()).forwardedHeaders("x-forwarded")
                            .build(), "/legacy/*");
            try (Container.Running running = container.start(deployment)) {
                // Regression: X-Forwarded-Prefix and X-Forwarded-Ssl, which this gateway never sets, passed on from
                // the client; Spring's ForwardedHeaderFilter builds links from them. So did X-Real-IP, a client
                // address upstreams behind nginx take as the peer's.
                String[] spoofed = {"X-Forwarded-For: 203.0.113.9", "X-Forwarded-Host: evil.example",
                    "Forwarded: for=203.0.113.9", "X-Forwarded-Prefix: /evil", "X-Forwarded-Ssl: on",
                    "x-real-ip: 203.0.113.9"};

                assertThat(RawClient.request(running.port(), "GET", "/gw/rfc/a", spoofed).status()).isEqualTo(200);
                RawUpstream.Request rfc = upstream.requests().get(0);
                assertThat(rfc.header("Forwarded")).startsWith("for=203.0.113.9, for=127.0.0.1;proto=http");
                assertThat(rfc.header("Via")).isEqualTo("1.1 upstream-guard");
                assertThat(rfc.headers().keySet()).noneMatch(h -> h.startsWith("x-forwarded"))
                        .doesNotContain("x-real-ip");

                assertThat(RawClient.request(running.port(), "GET", "/gw/legacy/b", spoofed).status()).isEqualTo(200);
                RawUpstream.Request legacy = upstream.requests().get(1);
                assertThat(legacy.header("X-Forwarded-For")).isEqualTo("203.0.113.9, 127.0.0.1");
                assertThat(legacy.headers().get("x-forwarded-host")).doesNotContain("evil.example");
                assertThat(legacy.header("Forwarded")).isNull();
                assertThat(legacy.headers().keySet()).doesNotContain("x-forwarded-prefix", "x-forwarded-ssl",
                        "x-real-ip");
                assertThat(legacy.header("Via")).isEqualTo("1.1 upstream-guard");
            }
        }
    }

    /**
     * Regression: a {@code proxy-name} that is a host and port ({@code gw.example:8443}, {@code [2001:db8::1]:8080}),
     * which RFC 9110 §7.6.3 allows as {@code Via}'s received-by, appeared there as {@code upstream-guard}, as if it were
     * not valid; and so a loop through such a gateway was counted under another name. A name that is neither a token
     * nor a host and port ({@code edge 1}) still appears as {@code upstream-guard}.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aProxyNameThatIsAHostAndPortIsThisGatewaysViaEntry(Container container) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"))) {
            Container.Deployment deployment = new Container.Deployment();
            String[][] names = {{"host", "gw.example:8443"}, {"ipv6", "[2001:db8::1]:8080"}, {"literal", "[::1]"},
                {"spaced", "edge 1"}, {"portless", "gw.example:"}};
            for (String[] name : names) {
                deployment.servlet(name[0], new UpstreamProxyServlet(), "/" + name[0] + "/*",
                        Map.of("upstream", upstream.baseUrl(), "proxy-name", name[1], "retry.max-attempts", "1"));
            }
            try (Container.Running running = container.start(deployment)) {
                String[] expected = {"gw.example:8443", "[2001:db8::1]:8080", "[::1]", "upstream-guard",
                    "upstream-guard"};
                for (int i = 0; i < names.length; i++) {
                    RawClient.Response answer = RawClient.request(running.port(), "GET", "/gw/" + names[i][0] + "/a");
                    assertThat(answer.header("Via")).as(names[i][1]).isEqualTo("1.1 " + expected[i]);
                    assertThat(upstream.requests().get(i).header("Via")).as(names[i][1])
                            .isEqualTo("1.1 " + expected[i]);
                }
                String looped = "Via: " + "1.1 gw.example:8443, ".repeat(4) + "1.1 gw.example:8443";
                RawClient.Response loop = RawClient.request(running.port(), "GET", "/gw/host/a", looped);
                assertThat(loop.status()).isEqualTo(500);
                assertThat(loop.header("Proxy-Status")).isEqualTo("gw.example:8443; error=proxy_loop_detected");
            }
        }
    }

    /**
     * Regression: a client's {@code Forwarded} or {@code Via} line left open (a quoted string, a comment) was passed on
     * with this gateway's own element appended, which then read as part of the client's string or comment: the
     * upstream saw no {@code for=} of this gateway's, and loop detection no {@code Via} entry of its. Such a line is not
     * passed on; well-formed ones still are.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aForwardedOrViaLineTheClientLeftOpenIsDroppedSoThatThisGatewaysOwnEntryStands(Container container)
            throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"))) {
            Container.Deployment deployment = new Container.Deployment()
                    .servlet("p", UpstreamProxyServlet.builder(upstream.baseUrl()).build(), "/p/*");
            try (Container.Running running = container.start(deployment)) {
                assertThat(RawClient.request(running.port(), "GET", "/gw/p/a", "Forwarded: for=\"x",
                        "Forwarded: for=198.51.100.1;by=\"a\\\"b\"", "Via: 1.1 x (comment", "Via: 1.0 y (a (b) c)")
                        .status()).isEqualTo(200);
                RawUpstream.Request sent = upstream.requests().get(0);
                assertThat(sent.header("Forwarded"))
                        .isEqualTo("for=198.51.100.1;by=\"a\\\"b\", for=127.0.0.1;proto=http;host=\"127.0.0.1:"
                                + running.port() + "\"");
                assertThat(sent.header("Via")).isEqualTo("1.0 y (a (b) c), 1.1 upstream-guard");
            }
        }
    }

    /**
     * Regression: a {@code Host} with an empty port ({@code example.test:}, RFC 3986 §3.2.3: the scheme's default), which
     * Tomcat takes, went upstream as {@code X-Forwarded-Port: 0}, from which an upstream builds links to port 0; and an
     * empty {@code Host} (RFC 9112 §3.2: a target without an authority) as an empty {@code X-Forwarded-Host}. Jetty
     * refuses both requests itself.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aHostWithAnEmptyPortOrNoAuthorityIsForwardedWithTheDefaultPortAndNoForwardedHost(Container container)
            throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"))) {
            Container.Deployment deployment = new Container.Deployment()
                    .servlet("p", UpstreamProxyServlet.builder(upstream.baseUrl()).build(), "/p/*");
            try (Container.Running running = container.start(deployment)) {
                for (String host : new String[] {"example.test:", ""}) {
                    String head = "GET /gw/p/a HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
                    int status = RawClient.send(running.port(), head, null).status();
                    if (status == 400) {
                        continue; // refused by the container (Jetty), never forwarded
                    }
                    assertThat(status).isEqualTo(200);
                    RawUpstream.Request request = upstream.requests().get(upstream.requestCount() - 1);
                    assertThat(request.header("X-Forwarded-Port")).as("Host: %s", host)
                            .isEqualTo(host.isEmpty() ? String.valueOf(running.port()) : "80");
                    assertThat(request.headers().get("x-forwarded-host")).as("Host: %s", host)
                            .isEqualTo(host.isEmpty() ? null : java.util.List.of(host));
                }
            }
        }
    }

    /**
     * Regression: the client's IPv6 address went upstream as the container spelled it. Jetty's {@code getRemoteAddr()}
     * brackets it, which made {@code Forwarded: for="[[0:0:0:0:0:0:0:1]]"} (not an RFC 7239 node) and a bracketed
     * {@code X-Forwarded-For}; Tomcat's is uncompressed. Both now send {@code ::1} and {@code for="[::1]"}.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientOnIpv6LoopbackIsForwardedAsCanonicalIpv6(Container container) throws Exception {
        Assumptions.assumeTrue(ipv6LoopbackWorks(), "no IPv6 loopback on this machine");
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"))) {
            Container.Deployment deployment = new Container.Deployment().address("::1")
                    .servlet("p", UpstreamProxyServlet.builder(upstream.baseUrl()).build(), "/p/*");
            try (Container.Running running = container.start(deployment);
                    Socket socket = new Socket(InetAddress.getByName("::1"), running.port())) {
                socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
                socket.getOutputStream().write(("GET /gw/p/a HTTP/1.1\r\nHost: [::1]:" + running.port() + "\r\n\r\n")
                        .getBytes(StandardCharsets.ISO_8859_1));
                assertThat(RawClient.read(new BufferedInputStream(socket.getInputStream()), false).status())
                        .isEqualTo(200);
                RawUpstream.Request request = upstream.requests().get(0);
                assertThat(request.header("X-Forwarded-For")).isEqualTo("::1");
                assertThat(request.header("Forwarded"))
                        .isEqualTo("for=\"[::1]\";proto=http;host=\"[::1]:" + running.port() + "\"");
            }
        }
    }

    /**
     * Regression: a request received over HTTP/2 was forwarded with {@code Via: 2.0 upstream-guard}, the container's
     * {@code HTTP/2.0}; RFC 9110 §7.6.3 names the protocol's version as HTTP/2 has it, {@code 2}.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aRequestReceivedOverHttp2IsForwardedWithVia2(Container container) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"))) {
            Container.Deployment deployment = new Container.Deployment().http2()
                    .servlet("p", UpstreamProxyServlet.builder(upstream.baseUrl()).build(), "/p/*");
            try (Container.Running running = container.start(deployment)) {
                HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_2).build();
                HttpResponse<String> answer = client.send(HttpRequest.newBuilder(
                        URI.create("http://127.0.0.1:" + running.port() + "/gw/p/a")).build(),
                        HttpResponse.BodyHandlers.ofString());
                assertThat(answer.version()).isEqualTo(HttpClient.Version.HTTP_2);
                assertThat(answer.body()).isEqualTo("fine");
                assertThat(upstream.requests().get(0).header("Via")).isEqualTo("2 upstream-guard");
                assertThat(answer.headers().firstValue("Via")).hasValue("1.1 upstream-guard");
            }
        }
    }

    static boolean ipv6LoopbackWorks() {
        try (ServerSocket probe = new ServerSocket()) {
            probe.bind(new InetSocketAddress(InetAddress.getByName("::1"), 0));
            return true;
        } catch (java.io.IOException e) {
            return false;
        }
    }
}
