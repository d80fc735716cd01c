package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Faults in the middle of an exchange, through the proxy servlet in each container: after the upstream took part of a
 * streamed upload, or after it sent an interim (1xx) response the client already has. Nothing final was committed, so
 * the client gets the fault's own answer, with its {@code Proxy-Status}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ProxyServletMidExchangeFaultTest {

    private static final Duration SETTLE = Duration.ofSeconds(15);

    /** Far more than the loopback socket buffers hold, and than the servlet buffers: the upload is streamed. */
    private static final int UPLOAD = 16 * 1024 * 1024;

    private static final String HINTS = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";

    private final CountDownLatch testsDone = new CountDownLatch(1);
    private final List<RawUpstream> upstreams = new ArrayList<>();
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, Map<String, UpstreamProxyServlet>> servlets = new EnumMap<>(Container.class);
    private final Map<String, RawUpstream> byRoute = new LinkedHashMap<>();

    @BeforeAll
    void start() throws Exception {
        for (Container container : Container.values()) {
            Map<String, UpstreamProxyServlet> routes = new LinkedHashMap<>();
            // Takes the head, then no more of the body: the servlet's write to it blocks.
            route(container, routes, "stops-reading", c -> {
                if (c.skipHead()) {
                    testsDone.await(60, TimeUnit.SECONDS);
                }
            }, "response-timeout", "500ms");
            route(container, routes, "resets-mid-upload", c -> {
                if (c.skipHead()) {
                    c.in().readNBytes(100_000);
                    c.reset();
                }
            });
            route(container, routes, "closes-mid-upload", c -> {
                if (c.skipHead()) {
                    c.in().readNBytes(100_000);
                    c.close();
                }
            });
            route(container, routes, "hints-then-silence", c -> {
                if (c.readRequest() != null) {
                    c.write(HINTS);
                    testsDone.await(60, TimeUnit.SECONDS);
                }
            }, "response-timeout", "500ms");
            route(container, routes, "hints-then-garbage", Behaviours.respond(HINTS + "HTTP/1.1 2x0 Bad\r\n\r\n"));
            route(container, routes, "hints-then-reset", c -> {
                if (c.readRequest() != null) {
                    c.write(HINTS);
                    c.reset();
                }
            }, "retry.enabled", "false");
            Container.Deployment deployment = new Container.Deployment();
            routes.forEach((route, servlet) -> deployment.servlet(route, servlet, "/" + route + "/*"));
            servlets.put(container, routes);
            containers.put(container, container.start(deployment));
        }
    }

    @AfterAll
    void stop() {
        testsDone.countDown();
        containers.values().forEach(Container.Running::close);
        upstreams.forEach(RawUpstream::close);
    }

    /**
     * An upload the upstream stopped taking ends within the response timeout as {@code connection_write_timeout}
     * (a socket write has no timeout of its own); a POST or PUT the upstream reset or closed on part way is
     * {@code connection_terminated}, and never sent again: the upstream may have acted on it, and its body is gone.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anUploadTheUpstreamStopsTakingOrCutsOffIsAnsweredWithItsFaultAndNeverSentAgain(Container container)
            throws Exception {
        assertUploadAnswered(container, "POST", "stops-reading", UpstreamFault.CONNECTION_WRITE_TIMEOUT);
        for (String method : new String[] {"POST", "PUT"}) {
            for (String route : new String[] {"resets-mid-upload", "closes-mid-upload"}) {
                int connectionsBefore = upstream(container, route).connectionCount();
                assertUploadAnswered(container, method, route, UpstreamFault.CONNECTION_TERMINATED);
                assertThat(upstream(container, route).connectionCount()).as("%s %s sent once", method, route)
                        .isEqualTo(connectionsBefore + 1);
            }
        }
    }

    /**
     * A 103 Early Hints the client already has does not commit the answer: a silence or a reset after it is still
     * answered with the fault's status and {@code Proxy-Status}, after the hints.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultAfterEarlyHintsIsStillAnsweredWithItsOwnStatus(Container container) throws Exception {
        assertAnsweredAfterHints(container, "hints-then-silence", UpstreamFault.CONNECTION_READ_TIMEOUT);
        assertAnsweredAfterHints(container, "hints-then-reset", UpstreamFault.HTTP_RESPONSE_INCOMPLETE);
    }

    /**
     * A malformed final response that came in one read with the hints is judged as it arrives, before the hints are
     * relayed (since the head watch): a 502 with the fault's {@code Proxy-Status} at once, the hints not relayed.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aBadHeadThatCameWithTheHintsIsAProtocolError(Container container) throws Exception {
        RawClient.Response answer = RawClient.request(containers.get(container).port(), "GET",
                "/gw/hints-then-garbage/x", "Accept: application/problem+json");
        assertFault(answer, UpstreamFault.HTTP_PROTOCOL_ERROR, "hints-then-garbage");
        assertNothingLeased(container, "hints-then-garbage");
    }

    private void assertUploadAnswered(Container container, String method, String route, UpstreamFault fault)
            throws Exception {
        int port = containers.get(container).port();
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(RawClient.head(port, method, "/gw/" + route + "/x", "Content-Length: " + UPLOAD,
                    "Accept: application/problem+json")
                    .getBytes(StandardCharsets.ISO_8859_1));
            Thread sender = new Thread(() -> {
                byte[] part = new byte[64 * 1024];
                try {
                    for (int sent = 0; sent < UPLOAD; sent += part.length) {
                        out.write(part);
                    }
                } catch (IOException answeredAndClosed) {
                    // The gateway may stop reading once it has answered: the rest of the body is not wanted.
                }
            }, "upload-sender");
            sender.setDaemon(true);
            sender.start();
            RawClient.Response answer = RawClient.read(new BufferedInputStream(socket.getInputStream()), false);
            assertFault(answer, fault, method + " " + route);
        }
        assertNothingLeased(container, route);
    }

    private void assertAnsweredAfterHints(Container container, String route, UpstreamFault fault) throws Exception {
        int port = containers.get(container).port();
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            socket.getOutputStream().write(RawClient.head(port, "GET", "/gw/" + route + "/x",
                    "Accept: application/problem+json").getBytes(StandardCharsets.ISO_8859_1));
            InputStream in = new BufferedInputStream(socket.getInputStream());
            if (relaysEarlyHints(container)) {
                assertThat(RawClient.line(in)).as("the hints first").startsWith("HTTP/1.1 103");
                for (String line = RawClient.line(in); !line.isEmpty(); line = RawClient.line(in)) {
                    assertThat(line).doesNotStartWithIgnoringCase("Proxy-Status");
                }
            }
            assertFault(RawClient.read(in, false), fault, route);
        }
        assertNothingLeased(container, route);
    }

    private static void assertFault(RawClient.Response answer, UpstreamFault fault, String what) {
        assertThat(answer.status()).as("%s: %s", what, answer).isEqualTo(fault.status());
        assertThat(answer.complete()).isTrue();
        assertThat(answer.header("Proxy-Status")).as(what).isEqualTo("upstream-guard; error=" + fault.type());
        assertThat(answer.bodyUtf8()).as(what).contains("\"fault\":\"" + fault.type() + "\"");
    }

    /** As in {@link ProxyServletFramingTest}: not Tomcat 10.1 (the CI's Servlet 6.0 run), which cannot relay them. */
    private static boolean relaysEarlyHints(Container container) {
        return container == Container.JETTY || !org.apache.catalina.util.ServerInfo.getServerNumber().startsWith("10.");
    }

    private void assertNothingLeased(Container container, String route) {
        UpstreamProxyServlet servlet = servlets.get(container).get(route);
        Await.until("no connection of '" + route + "' is leased", SETTLE,
                () -> servlet.client().poolStats().getLeased() == 0, () -> "" + servlet.client().poolStats());
    }

    private RawUpstream upstream(Container container, String route) {
        return byRoute.get(container + route);
    }

    private void route(Container container, Map<String, UpstreamProxyServlet> routes, String route,
            RawUpstream.Behaviour behaviour, String... settings) throws IOException {
        RawUpstream upstream = RawUpstream.start(behaviour);
        upstreams.add(upstream);
        byRoute.put(container + route, upstream);
        UpstreamProxyServlet.Builder builder = UpstreamProxyServlet.builder(upstream.baseUrl()).meterRegistry(null);
        for (int i = 0; i < settings.length; i += 2) {
            builder.set(settings[i], settings[i + 1]);
        }
        routes.put(route, builder.build());
    }
}
