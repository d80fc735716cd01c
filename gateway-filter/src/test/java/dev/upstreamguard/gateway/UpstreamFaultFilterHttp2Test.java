package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.http.HttpResponse;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

/**
 * The fault filter in front of an application answering over HTTP/2 (h2c, on Tomcat and on Jetty): a fault escaping after the commit must reach the client as a reset stream, never as one that ended
 * cleanly, and the application's own trailer fields still go out.
 */
@Timeout(60)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class UpstreamFaultFilterHttp2Test {

    private static final int FIRST = 50 * 1024;
    private static final int MORE = 8 * 1024;

    /** The container whose request is under way, so that each container's suppliers count down its own latches. */
    private volatile Container current = Container.TOMCAT;
    private final Map<Container, CountDownLatch> applicationTrailersAsked = latches();
    private final Map<Container, CountDownLatch> cutTrailersAsked = latches();
    private final Map<Container, CountDownLatch> earlyTrailersAsked = latches();
    private volatile Object trailersSeenByApplication;
    private final Supplier<Map<String, String>> applicationTrailers = () -> {
        applicationTrailersAsked.get(current).countDown();
        return Map.of("x-checksum", "abc");
    };
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, Http2Client> clients = new EnumMap<>(Container.class);

    /** Writes a body of no stated length, commits it, writes more and then fails or ends as its mode says. */
    private final class StreamingServlet extends HttpServlet {
        private final boolean fail;
        private final Supplier<Map<String, String>> trailers;

        StreamingServlet(boolean fail, Supplier<Map<String, String>> trailers) {
            this.fail = fail;
            this.trailers = trailers;
        }

        @Override
        protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            if (trailers != null) {
                resp.setTrailerFields(trailers);
                trailersSeenByApplication = resp.getTrailerFields();
            }
            resp.setContentType("application/octet-stream");
            OutputStream out = resp.getOutputStream();
            out.write(new byte[FIRST]);
            resp.flushBuffer();
            out.write(new byte[MORE]);
            if (fail) {
                throw new UpstreamException(UpstreamFault.HTTP_RESPONSE_INCOMPLETE, "inventory", 1, null, 0,
                        "The upstream's body ended early", null);
            }
        }
    }

    @BeforeAll
    void start() throws Exception {
        for (Container kind : Container.values()) {
            Container.Running running = kind.start(deployment());
            containers.put(kind, running);
            clients.put(kind, new Http2Client(running.port(), "/gw/small"));
        }
    }

    private Container.Deployment deployment() {
        Supplier<Map<String, String>> cutTrailers = () -> {
            cutTrailersAsked.get(current).countDown();
            return Map.of("x-checksum", "abc");
        };
        return new Container.Deployment().http2()
                .filter("guard", UpstreamFaultFilter.builder().meterRegistry(null).build(), "/*")
                .servlet("small", new HttpServlet() {
                    @Override
                    protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                        resp.getWriter().write("ok");
                    }
                }, "/small")
                .servlet("cut", new StreamingServlet(true, null), "/cut")
                .servlet("whole", new StreamingServlet(false, null), "/whole")
                .servlet("trailers", new StreamingServlet(false, applicationTrailers), "/trailers")
                .servlet("cut-trailers", new StreamingServlet(true, cutTrailers), "/cut-trailers")
                .servlet("early", new HttpServlet() {
                    @Override
                    protected void doGet(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                        resp.setTrailerFields(() -> {
                            earlyTrailersAsked.get(current).countDown();
                            return Map.of("x-checksum", "abc");
                        });
                        resp.getOutputStream().write(new byte[100]);
                        throw new UpstreamException(UpstreamFault.CONNECTION_REFUSED, "inventory", 1, null, 0,
                                "refused", null);
                    }
                }, "/early")
                .servlet("task", new HttpServlet() {
                    @Override
                    protected void doGet(HttpServletRequest req, HttpServletResponse resp) {
                        AsyncContext async = req.startAsync();
                        async.start(() -> {
                            try {
                                ServletResponse response = async.getResponse();
                                OutputStream out = response.getOutputStream();
                                out.write(new byte[FIRST]);
                                response.flushBuffer();
                                out.write(new byte[MORE]);
                            } catch (IOException e) {
                                throw new UncheckedIOException(e);
                            }
                            throw new UncheckedIOException(new UpstreamException(UpstreamFault.HTTP_RESPONSE_INCOMPLETE,
                                    "inventory", 1, null, 0, "The upstream's body ended early", null));
                        });
                    }
                }, "/task");
    }

    private static Map<Container, CountDownLatch> latches() {
        Map<Container, CountDownLatch> latches = new EnumMap<>(Container.class);
        for (Container kind : Container.values()) {
            latches.put(kind, new CountDownLatch(1));
        }
        return latches;
    }

    @AfterAll
    void stop() {
        containers.values().forEach(Container.Running::close);
    }

    /**
     * Regression: over HTTP/2 Tomcat ends the stream cleanly (END_STREAM) whatever the filter throws after the commit,
     * so a body of no stated length that a fault cut short reached the client as a whole, shorter one.
     */
    @ParameterizedTest
    @EnumSource(Container.class)
    void aFaultAfterTheCommitResetsTheHttp2StreamInsteadOfEndingIt(Container kind) throws Exception {
        current = kind;
        clients.get(kind).assertResetAfterA200Head("/gw/cut");
    }

    @ParameterizedTest
    @EnumSource(Container.class)
    void aFaultAfterTheCommitResetsTheHttp2StreamAlsoWhenTheApplicationSetTrailerFields(Container kind) throws Exception {
        current = kind;
        clients.get(kind).assertResetAfterA200Head("/gw/cut-trailers");
        // The trailers of a body cut short would claim a whole one.
        assertThat(cutTrailersAsked.get(kind).getCount()).isEqualTo(1);
    }

    @ParameterizedTest
    @EnumSource(Container.class)
    void aWholeBodyOfNoStatedLengthEndsTheHttp2StreamCleanlyBehindTheFilter(Container kind) throws Exception {
        current = kind;
        HttpResponse<InputStream> response = clients.get(kind).get("/gw/whole");
        assertThat(response.statusCode()).isEqualTo(200);
        try (InputStream in = response.body()) {
            assertThat(in.transferTo(OutputStream.nullOutputStream())).isEqualTo((long) FIRST + MORE);
        }
    }

    /** The filter's own trailer supplier leaves the application's in force: asked for, and seen as set. */
    @ParameterizedTest
    @EnumSource(Container.class)
    void theApplicationsTrailerFieldsStillGoOutOverHttp2(Container kind) throws Exception {
        current = kind;
        HttpResponse<InputStream> response = clients.get(kind).get("/gw/trailers");
        assertThat(response.statusCode()).isEqualTo(200);
        try (InputStream in = response.body()) {
            assertThat(in.transferTo(OutputStream.nullOutputStream())).isEqualTo((long) FIRST + MORE);
        }
        assertThat(applicationTrailersAsked.get(kind).await(10, TimeUnit.SECONDS)).isTrue();
        assertThat(trailersSeenByApplication).isSameAs(applicationTrailers);
    }

    /** The application's trailer fields belong to the body the fault's answer replaced, not to the answer. */
    @ParameterizedTest
    @EnumSource(Container.class)
    void aFaultBeforeTheCommitIsAWhole502WithoutTheApplicationsTrailerFields(Container kind) throws Exception {
        current = kind;
        HttpResponse<InputStream> response = clients.get(kind).get("/gw/early");
        assertThat(response.statusCode()).isEqualTo(502);
        try (InputStream in = response.body()) {
            assertThat(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8)).contains("502");
        }
        assertThat(earlyTrailersAsked.get(kind).getCount()).isEqualTo(1);
    }

    @ParameterizedTest
    @EnumSource(Container.class)
    void aFaultATaskOfTheAsyncContextThrowsAfterTheCommitResetsTheHttp2Stream(Container kind) throws Exception {
        current = kind;
        clients.get(kind).assertResetAfterA200Head("/gw/task");
    }
}
