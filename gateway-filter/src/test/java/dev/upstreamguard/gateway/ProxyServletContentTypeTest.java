package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.RawUpstream;
import java.util.List;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The upstream's {@code Content-Type} reaches the client as the upstream wrote it. */
@Timeout(60)
class ProxyServletContentTypeTest {

    /**
     * Types each container rewrote: Tomcat rebuilds a type with a charset (spaces dropped, the charset moved last, its
     * quotes removed), Jetty writes the types it knows in its own spelling ({@code text/html;charset=utf-8}).
     */
    private static final List<String> TYPES = List.of("text/html; charset=UTF-8", "Text/HTML",
            "text/plain;  charset=\"utf-8\"", "application/x-www-form-urlencoded; charset=ISO-8859-1",
            "text/plain;charset=UTF-8;format=flowed", "application/json; charset=utf-8 ; q=1",
            "text/plain; Charset=\"UTF-8\"", "multipart/mixed; charset=utf-8; boundary=\"a b\"",
            "text/html;charset=utf-8", "application/octet-stream", "invalid", "");

    /**
     * Regression: Tomcat and Jetty rewrote the upstream's field (above); a client or cache comparing it, or reading
     * a parameter whose quotes or order mattered to it, got something the origin did not send.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theUpstreamsContentTypeReachesTheClientByteForByte(Container container) throws Exception {
        try (RawUpstream upstream = typedUpstream()) {
            Container.Deployment deployment = new Container.Deployment().servlet("typed",
                    UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(null).build(), "/typed/*");
            try (Container.Running running = container.start(deployment)) {
                for (int i = 0; i < TYPES.size(); i++) {
                    RawClient.Response answer = RawClient.request(running.port(), "GET", "/gw/typed/" + i);
                    assertThat(answer.status()).isEqualTo(200);
                    assertThat(answer.headers("Content-Type")).as(TYPES.get(i)).containsExactly(TYPES.get(i));
                    assertThat(answer.bodyUtf8()).isEqualTo("ok");
                }
            }
        }
    }

    /** The same over HTTP/2, where each container writes the field from its own state again. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theUpstreamsContentTypeReachesAnHttp2ClientByteForByte(Container container) throws Exception {
        try (RawUpstream upstream = typedUpstream()) {
            Container.Deployment deployment = new Container.Deployment().http2().servlet("typed",
                    UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(null).build(), "/typed/*");
            try (Container.Running running = container.start(deployment)) {
                Http2Client client = new Http2Client(running.port(), "/gw/typed/9");
                for (int i = 0; i < TYPES.size(); i++) {
                    java.net.http.HttpResponse<java.io.InputStream> answer = client.get("/gw/typed/" + i);
                    try (java.io.InputStream body = answer.body()) {
                        assertThat(answer.statusCode()).isEqualTo(200);
                        assertThat(answer.headers().allValues("content-type")).as(TYPES.get(i))
                                .containsExactly(TYPES.get(i));
                        assertThat(body.readAllBytes()).asString().isEqualTo("ok");
                    }
                }
            }
        }
    }

    /**
     * A body cut short before anything was sent on is answered with the problem, typed as the problem only: the
     * upstream's restored field does not outlive the reset.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultAfterTheUpstreamsContentTypeIsAnsweredWithTheProblemsTypeAlone(Container container) throws Exception {
        try (RawUpstream upstream = typedUpstream()) {
            Container.Deployment deployment = new Container.Deployment().servlet("typed",
                    UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(null).build(), "/typed/*");
            try (Container.Running running = container.start(deployment)) {
                // Past a commit: on a loaded machine the upstream's close can come after the servlet's look for it.
                RawClient.Response answer = FaultAssertions.assertGeneratedFault(
                        FaultAssertions::requestPastCommittedCuts, running.port(), "/gw/typed/cut",
                        dev.upstreamguard.UpstreamFault.HTTP_RESPONSE_INCOMPLETE, false, false);
                assertThat(answer.headers("Content-Type")).containsExactly("application/problem+json");
            }
        }
    }

    private static RawUpstream typedUpstream() throws java.io.IOException {
        return RawUpstream.start(c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                if (r.target().endsWith("/cut")) {
                    c.write("HTTP/1.1 200 OK\r\nContent-Type: " + TYPES.get(0) + "\r\nContent-Length: 100\r\n\r\n"
                            + "short");
                    c.close();
                    return;
                }
                String type = TYPES.get(Integer.parseInt(r.target().substring(r.target().lastIndexOf('/') + 1)));
                c.write("HTTP/1.1 200 OK\r\nContent-Type: " + type + "\r\nContent-Length: 2\r\n\r\nok");
            }
        });
    }
}
