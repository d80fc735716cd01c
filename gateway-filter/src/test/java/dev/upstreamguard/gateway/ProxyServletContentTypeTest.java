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

    /**
     * Regression (review of the restore): the restore unwrapped every response wrapper and wrote into the container's
     * own response, so a filter's wrapper typing the response its own way was overruled, and a proxied response
     * included into a page retyped the page (the container ignores {@code setContentType} in an include). Now only the
     * fault filter's own wrapper is looked through, and an include keeps the page's type.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFiltersWrapperAndAnIncludingPageKeepTheirSayOverTheType(Container container) throws Exception {
        try (RawUpstream upstream = typedUpstream()) {
            jakarta.servlet.Filter typing = (request, response, chain) -> chain.doFilter(request,
                    new jakarta.servlet.http.HttpServletResponseWrapper(
                            (jakarta.servlet.http.HttpServletResponse) response) {
                        @Override
                        public void setContentType(String type) {
                            super.setContentType("application/octet-stream");
                        }
                    });
            jakarta.servlet.http.HttpServlet page = new jakarta.servlet.http.HttpServlet() {
                @Override
                protected void doGet(jakarta.servlet.http.HttpServletRequest request,
                        jakarta.servlet.http.HttpServletResponse response)
                        throws jakarta.servlet.ServletException, java.io.IOException {
                    response.setContentType("text/plain;charset=ISO-8859-1");
                    request.getRequestDispatcher("/typed/0").include(request, response);
                }
            };
            Container.Deployment deployment = new Container.Deployment()
                    .servlet("typed", UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(null).build(),
                            "/typed/*")
                    .servlet("page", page, "/page")
                    .filter("typing", typing, "/typed/2", java.util.Map.of(),
                            java.util.EnumSet.of(jakarta.servlet.DispatcherType.REQUEST))
                    .filter("faults", new UpstreamFaultFilter(), "/*");
            try (Container.Running running = container.start(deployment)) {
                RawClient.Response wrapped = RawClient.request(running.port(), "GET", "/gw/typed/2");
                assertThat(wrapped.headers("Content-Type")).containsExactly("application/octet-stream");

                RawClient.Response included = RawClient.request(running.port(), "GET", "/gw/page");
                assertThat(included.bodyUtf8()).isEqualTo("ok");
                assertThat(included.headers("Content-Type")).hasSize(1);
                assertThat(included.headers("Content-Type").get(0)).startsWithIgnoringCase("text/plain")
                        .containsIgnoringCase("ISO-8859-1");

                // Behind the fault filter's own wrapper, the upstream's spelling still reaches the client.
                RawClient.Response guarded = RawClient.request(running.port(), "GET", "/gw/typed/0");
                assertThat(guarded.headers("Content-Type")).containsExactly(TYPES.get(0));
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
                // An included proxy forwards the including request's path (/page): the first type then.
                String last = r.target().substring(r.target().lastIndexOf('/') + 1);
                String type = TYPES.get(last.matches("[0-9]+") ? Integer.parseInt(last) : 0);
                c.write("HTTP/1.1 200 OK\r\nContent-Type: " + type + "\r\nContent-Length: 2\r\n\r\nok");
            }
        });
    }
}
