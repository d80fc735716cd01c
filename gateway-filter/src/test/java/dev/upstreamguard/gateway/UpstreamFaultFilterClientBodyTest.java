package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.gateway.internal.FaultGuardedRequest;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.BufferedInputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.classic.methods.HttpPost;
import org.apache.hc.core5.http.ContentType;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.apache.hc.core5.http.io.entity.InputStreamEntity;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link UpstreamFaultFilter} in front of an application that streams its client's request body to an upstream
 * through the guarded client: a failure on the client's side of the body is the client's, never a gateway fault
 * naming the upstream.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class UpstreamFaultFilterClientBodyTest {

    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, Container.Running> patientContainers = new EnumMap<>(Container.class);
    /** Whether a read of the client's body was still under way when the cycle of /read-task-watched ended. */
    private final BlockingQueue<Boolean> readUnderWayAtTheEnd = new LinkedBlockingQueue<>();
    private final Map<Container, SimpleMeterRegistry> registries = new EnumMap<>(Container.class);
    private RawUpstream echo;
    private GuardedHttpClient client;

    final class RelayServlet extends HttpServlet {
        private static final long serialVersionUID = 1L;

        @Override
        protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            HttpPost post = new HttpPost(echo.uri("/relay"));
            post.setEntity(new InputStreamEntity(req.getInputStream(), req.getContentLengthLong(),
                    ContentType.APPLICATION_OCTET_STREAM));
            byte[] answer = client.execute(post, r -> EntityUtils.toByteArray(r.getEntity()));
            resp.getOutputStream().write(answer);
        }
    }

    /**
     * The servlets that wait for their client's body with an async timeout of 300 ms: in a container of their own,
     * whose read timeout is far longer, since Tomcat looks at async timeouts only about once a second and a read
     * timeout that came first would make it a different test.
     */
    private void waiting(Container.Deployment d) {
    d.servlet("read-async", new HttpServlet() {
            private static final long serialVersionUID = 1L;

            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                // Reads the body without blocking, as it arrives; answers once it is all there.
                AsyncContext async = req.startAsync();
                async.setTimeout(300);
                ServletInputStream in = req.getInputStream();
                in.setReadListener(new ReadListener() {
                    @Override
                    public void onDataAvailable() throws IOException {
                        byte[] buffer = new byte[8192];
                        while (in.isReady() && in.read(buffer) >= 0) {
                            // Drain what has arrived.
                        }
                    }

                    @Override
                    public void onAllDataRead() throws IOException {
                        resp.getWriter().write("read");
                        async.complete();
                    }

                    @Override
                    public void onError(Throwable t) {
                        // The application has nothing to add.
                    }
                });
            }
        }, "/read-async");
        d.servlet("read-task", new HttpServlet() {
            private static final long serialVersionUID = 1L;

            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) {
                // Reads the body in a task of the async context, blocking, longer than the async timeout.
                AsyncContext async = req.startAsync();
                async.setTimeout(300);
                async.start(() -> {
                    try {
                        async.getResponse().getOutputStream().write(req.getInputStream().readAllBytes());
                        async.complete();
                    } catch (IOException | IllegalStateException overMeanwhile) {
                        // The timeout was answered; the container ends the read.
                    }
                });
            }
        }, "/read-task");
        d.servlet("read-task-watched", new HttpServlet() {
            private static final long serialVersionUID = 1L;

            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) {
                AsyncContext async = req.startAsync();
                async.setTimeout(300);
                async.addListener(UpstreamFaultFilterTest.listener(UpstreamFaultFilterTest.AsyncEventKind.COMPLETE,
                        event -> readUnderWayAtTheEnd.offer(FaultGuardedRequest.awaitsClientBody(req))));
                async.start(() -> {
                    try {
                        req.getInputStream().readAllBytes();
                    } catch (IOException | IllegalStateException overMeanwhile) {
                        // The timeout was answered.
                    }
                });
            }
        }, "/read-task-watched");
    }

    @BeforeAll
    void start() throws IOException {
        echo = RawUpstream.start(Behaviours.echo());
        client = GuardedHttpClients.custom()
                .upstream("echo", echo.baseUrl(), GuardPolicy.builder().retryEnabled(false)
                        .circuitBreakerEnabled(false).build())
                .meterRegistry(null)
                .build();
        for (Container container : Container.values()) {
            SimpleMeterRegistry registry = new SimpleMeterRegistry();
            registries.put(container, registry);
            Container.Deployment d = new Container.Deployment().idleTimeout(Duration.ofSeconds(1));
            d.filter("guard", UpstreamFaultFilter.builder().meterRegistry(registry).build(), "/*");
            d.servlet("relay", new RelayServlet(), "/relay");
            d.servlet("read", new HttpServlet() {
                private static final long serialVersionUID = 1L;

                @Override
                protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                    // No upstream at all: the body is read, and its failure escapes as the container threw it.
                    resp.getOutputStream().write(req.getInputStream().readAllBytes());
                }
            }, "/read");
            d.servlet("relay-reader", new HttpServlet() {
                private static final long serialVersionUID = 1L;

                @Override
                protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                    // Relays the body as text, read through the request's reader.
                    BufferedReader reader = req.getReader();
                    InputStream text = new InputStream() {
                        @Override
                        public int read() throws IOException {
                            return reader.read();
                        }
                    };
                    HttpPost post = new HttpPost(echo.uri("/relay"));
                    post.setEntity(new InputStreamEntity(text, req.getContentLengthLong(), ContentType.TEXT_PLAIN));
                    byte[] answer = client.execute(post, r -> EntityUtils.toByteArray(r.getEntity()));
                    resp.getOutputStream().write(answer);
                }
            }, "/relay-reader");
            d.servlet("read-reader", new HttpServlet() {
                private static final long serialVersionUID = 1L;

                @Override
                protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                    // No upstream at all: the body is read as text, and its failure escapes as the container threw it.
                    StringWriter text = new StringWriter();
                    req.getReader().transferTo(text);
                    resp.getWriter().write(text.toString());
                }
            }, "/read-reader");
            containers.put(container, container.start(d));
            Container.Deployment patient = new Container.Deployment().idleTimeout(Duration.ofSeconds(20));
            patient.filter("guard", UpstreamFaultFilter.builder().meterRegistry(registry).build(), "/*");
            waiting(patient);
            patientContainers.put(container, container.start(patient));
        }
    }

    @AfterAll
    void stop() throws IOException {
        containers.values().forEach(Container.Running::close);
        patientContainers.values().forEach(Container.Running::close);
        client.close();
        echo.close();
    }

    private int port(Container container) {
        return containers.get(container).port();
    }

    /** What the client got, and that the gateway neither answered nor counted a fault (an abort included). */
    private void assertLeftToTheContainer(Container container, RawClient.Response answer) {
        if (answer != null) {
            assertThat(answer.header("Proxy-Status")).as("%s", answer).isNull();
            assertThat(answer.status()).as("%s", answer).isIn(400, 408, 500);
        }
        assertNoGatewayFaultCounted(container);
    }

    private void assertNoGatewayFaultCounted(Container container) {
        assertThat(registries.get(container).find("upstream.guard.responses").counters())
                .as("responses counted as the gateway's").allMatch(c -> c.count() == 0);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aWholeBodyIsRelayed(Container container) throws Exception {
        byte[] body = "x".repeat(100_000).getBytes(StandardCharsets.US_ASCII);
        RawClient.Response answer = RawClient.send(port(container), "POST /gw/relay HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Content-Length: " + body.length + "\r\n\r\n", body);
        assertThat(answer.status()).isEqualTo(200);
        assertThat(answer.body()).hasSize(body.length);
    }

    /** Sends the head and the first 1,000 of 100,000 bytes, ending its side of the connection or not; reads. */
    private RawClient.Response sendPartOfTheBody(Container container, boolean endItsSide) throws IOException {
        return sendPartOfTheBody(container, "/gw/relay", endItsSide);
    }

    private RawClient.Response sendPartOfTheBody(Container container, String path, boolean endItsSide)
            throws IOException {
        return sendPartOfTheBody(port(container), path, endItsSide);
    }

    private RawClient.Response sendPartOfTheBody(int port, String path, boolean endItsSide) throws IOException {
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
                    + "x".repeat(1000)).getBytes(StandardCharsets.US_ASCII));
            out.flush();
            if (endItsSide) {
                socket.shutdownOutput();
            }
            try {
                return RawClient.read(new BufferedInputStream(socket.getInputStream()), false);
            } catch (IOException closed) {
                // Closing without an answer is the container's to decide.
                return null;
            }
        }
    }

    /** Regression: Jetty answered a 502 naming the upstream; Tomcat's own 408 was counted as an aborted fault. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientThatStallsMidBodyIsNotAnsweredAsAnUpstreamFault(Container container) throws Exception {
        assertLeftToTheContainer(container, sendPartOfTheBody(container, false));
    }

    /** Regression: Jetty answered a 502 naming the upstream; Tomcat's own 400 was counted as an aborted fault. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aMalformedChunkedBodyIsNotAnsweredAsAnUpstreamFault(Container container) throws Exception {
        RawClient.Response answer = RawClient.send(port(container), "POST /gw/relay HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Transfer-Encoding: chunked\r\n\r\n", ("10\r\n" + "x".repeat(16) + "\r\nzz\r\n")
                .getBytes(StandardCharsets.US_ASCII));
        assertLeftToTheContainer(container, answer);
    }

    /** Regression: Jetty answered a 502 naming the upstream; Tomcat's own 400 was counted as an aborted fault. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientThatEndsItsSideMidBodyIsNotAnsweredAsAnUpstreamFault(Container container) throws Exception {
        assertLeftToTheContainer(container, sendPartOfTheBody(container, true));
    }

    /** No upstream involved: the container's own read timeout is never taken for an upstream's. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientThatStallsTheBodyTheApplicationReadsItselfIsNotAnsweredAsAnUpstreamFault(Container container)
            throws Exception {
        assertLeftToTheContainer(container, sendPartOfTheBody(container, "/gw/read", false));
        assertLeftToTheContainer(container, sendPartOfTheBody(container, "/gw/read", true));
    }

    /**
     * Regression: only the body's stream was watched, so a client breaking off a body the application read through
     * {@code getReader()} was answered as an upstream fault (Jetty: a 502 naming the upstream, or a 504 naming the
     * servlet for the container's own read timeout), or counted as an aborted one.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aClientBodyReadThroughTheReaderThatBreaksOffIsNotAnsweredAsAnUpstreamFault(Container container)
            throws Exception {
        for (String path : new String[] {"/gw/relay-reader", "/gw/read-reader"}) {
            assertLeftToTheContainer(container, sendPartOfTheBody(container, path, false));
            assertLeftToTheContainer(container, sendPartOfTheBody(container, path, true));
            assertLeftToTheContainer(container, RawClient.send(port(container), "POST " + path + " HTTP/1.1\r\n"
                    + "Host: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n", ("10\r\n" + "x".repeat(16)
                    + "\r\nzz\r\n").getBytes(StandardCharsets.US_ASCII)));
        }
        byte[] body = "x".repeat(100_000).getBytes(StandardCharsets.US_ASCII);
        RawClient.Response whole = RawClient.send(port(container), "POST /gw/relay-reader HTTP/1.1\r\n"
                + "Host: 127.0.0.1\r\nContent-Length: " + body.length + "\r\n\r\n", body);
        assertThat(whole.status()).as("%s", whole).isEqualTo(200);
        assertThat(whole.body()).hasSize(body.length);
    }

    /**
     * Regression: an application with a {@code ReadListener} that stopped reading a body its client had sent (waiting
     * on an upstream that stopped taking it) had its async timeout answered 408, blaming the client, and not counted:
     * waiting for the client's body means a read under way or the container having said it has nothing ready.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anAsyncTimeoutWhileTheApplicationHoldsABodyItsClientSentIsNotBlamedOnTheClient(Container container)
            throws Exception {
        // A container of its own: the answer it counts must not reach the registries the other tests check, and the
        // idle timeout is long enough for the async timeout to come first.
        Container.Deployment d = new Container.Deployment().idleTimeout(Duration.ofSeconds(20));
        d.filter("guard", UpstreamFaultFilter.builder().meterRegistry(null).build(), "/*");
        d.servlet("read-async-held", new HttpServlet() {
            private static final long serialVersionUID = 1L;

            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                // Takes one read of the body as it arrives and then no more, as an application does whose upstream
                // stopped taking what it relays (it waits for the upstream, not for its client).
                AsyncContext async = req.startAsync();
                async.setTimeout(300);
                ServletInputStream in = req.getInputStream();
                in.setReadListener(new ReadListener() {
                    private boolean readOnce;

                    @Override
                    public void onDataAvailable() throws IOException {
                        if (!readOnce && in.isReady()) {
                            readOnce = in.read(new byte[100]) >= 0;
                        }
                    }

                    @Override
                    public void onAllDataRead() {
                        // Not reached: the body is held unread.
                    }

                    @Override
                    public void onError(Throwable t) {
                        // The application has nothing to add.
                    }
                });
            }
        }, "/read-async-held");
        try (Container.Running running = container.start(d)) {
            byte[] body = "x".repeat(1000).getBytes(StandardCharsets.US_ASCII);
            RawClient.Response answer = RawClient.send(running.port(), "POST /gw/read-async-held HTTP/1.1\r\n"
                    + "Host: 127.0.0.1\r\nContent-Length: " + body.length + "\r\n\r\n", body);
            assertThat(answer.status()).as("%s", answer).isEqualTo(504);
            assertThat(answer.header("Proxy-Status")).as("%s", answer).contains("error=http_response_timeout");
        }
    }

    /**
     * Regression: a task still reading its client's body when the async timeout was answered got, in Jetty, a
     * {@code NullPointerException} from the filter noting the read's failure on a request Jetty had recycled, instead
     * of the read's own {@code IOException}.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aReadThatFailsAfterTheExchangeEndedThrowsTheReadsOwnFailure(Container container) throws Exception {
        CountDownLatch readOver = new CountDownLatch(1);
        Throwable[] readFailure = new Throwable[1];
        Container.Deployment d = new Container.Deployment().idleTimeout(Duration.ofSeconds(20));
        d.filter("guard", UpstreamFaultFilter.builder().meterRegistry(null).build(), "/*");
        d.servlet("read-late", new HttpServlet() {
            private static final long serialVersionUID = 1L;

            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                AsyncContext async = req.startAsync();
                async.setTimeout(300);
                ServletInputStream in = req.getInputStream();
                async.start(() -> {
                    try {
                        in.readAllBytes();
                    } catch (Throwable t) {
                        readFailure[0] = t;
                    } finally {
                        readOver.countDown();
                    }
                });
            }
        }, "/read-late");
        try (Container.Running running = container.start(d)) {
            RawClient.Response answer = sendPartOfTheBody(running.port(), "/gw/read-late", false);
            assertThat(answer).isNotNull();
            assertThat(answer.status()).as("%s", answer).isEqualTo(408);
            assertThat(readOver.await(30, TimeUnit.SECONDS)).as("the read ended").isTrue();
            if (readFailure[0] != null) {
                assertThat(readFailure[0]).isInstanceOf(IOException.class);
            }
        }
    }

    /**
     * Regression: a task whose read of its client's body failed (the client stalled past the container's read
     * timeout), and that left the async cycle open, had the async timeout that followed answered as an upstream's:
     * Tomcat's own 408 for the read was aborted and counted as an upstream fault, Jetty answered a 504. The client's
     * body failed, so the timeout is the client's as well.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anAsyncTimeoutAfterTheClientsBodyFailedIsNotAnUpstreamTimeout(Container container) throws Exception {
        // A container of its own: the read timeout (1s) comes well before the async one (4s).
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        CountDownLatch cycleOver = new CountDownLatch(1);
        Container.Deployment d = new Container.Deployment().idleTimeout(Duration.ofSeconds(1));
        d.filter("guard", UpstreamFaultFilter.builder().meterRegistry(registry).build(), "/*");
        d.servlet("read-task-swallowed", new HttpServlet() {
            private static final long serialVersionUID = 1L;

            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp) {
                AsyncContext async = req.startAsync();
                async.setTimeout(4000);
                async.addListener(UpstreamFaultFilterTest.listener(UpstreamFaultFilterTest.AsyncEventKind.COMPLETE,
                        event -> cycleOver.countDown()));
                async.start(() -> {
                    try {
                        req.getInputStream().readAllBytes();
                        async.complete();
                    } catch (IOException swallowed) {
                        // The application gives up on the body and forgets to end the cycle.
                    }
                });
            }
        }, "/read-task-swallowed");
        try (Container.Running running = container.start(d);
                Socket socket = new Socket(InetAddress.getLoopbackAddress(), running.port())) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(("POST /gw/read-task-swallowed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
                    + "x".repeat(1000)).getBytes(StandardCharsets.US_ASCII));
            out.flush();
            RawClient.Response answer;
            try {
                answer = RawClient.read(new BufferedInputStream(socket.getInputStream()), false);
            } catch (IOException closed) {
                answer = null;
            }
            if (answer != null) {
                assertThat(answer.header("Proxy-Status")).as("%s", answer).isNull();
                assertThat(answer.status()).as("%s", answer).isIn(400, 408, 500);
            }
            // The cycle ends after the async timeout, once whoever answers it has.
            assertThat(cycleOver.await(30, TimeUnit.SECONDS)).as("the async cycle ended").isTrue();
        }
        assertThat(registry.find("upstream.guard.responses").counters())
                .as("responses counted as the gateway's").allMatch(c -> c.count() == 0);
    }

    /**
     * Regression: an async timeout while the application still waited for its client's body was answered as an
     * upstream's: a 504 {@code http_response_timeout} naming the servlet, counted as a fault.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anAsyncTimeoutWhileTheApplicationWaitsForTheClientsBodyIsA408NotAnUpstreamTimeout(Container container)
            throws Exception {
        for (String path : new String[] {"/gw/read-async", "/gw/read-task"}) {
            RawClient.Response answer = sendPartOfTheBody(patientContainers.get(container).port(), path, false);
            assertThat(answer).as(path).isNotNull();
            assertThat(answer.status()).as("%s %s", path, answer).isEqualTo(408);
            assertThat(answer.complete()).as(path).isTrue();
            assertThat(answer.header("Connection")).as(path).isEqualTo("close");
            assertNoGatewayFaultCounted(container);
        }
    }

    /**
     * Regression: the 408 for an async timeout ended the cycle while a task was still blocked reading the client's
     * body. Tomcat then recycled the request for the next exchange, and the read, failing once the connection closed,
     * reported its failure to that exchange: a 400 with this one's {@code EOFException} (or a read timeout, a 504),
     * the flaky answers of the test above on a loaded machine. The cycle now ends once the read has.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anAsyncTimeoutAnsweredWhileATaskReadsTheClientsBodyEndsTheCycleOnlyAfterTheRead(Container container)
            throws Exception {
        readUnderWayAtTheEnd.clear();
        RawClient.Response answer = sendPartOfTheBody(patientContainers.get(container).port(), "/gw/read-task-watched",
                false);
        assertThat(answer).isNotNull();
        assertThat(answer.status()).isEqualTo(408);
        // Tomcat tells no listener of the end of an exchange whose read failed as its client closed (what ends the
        // read now): no word within a few seconds is a cycle that did not end under a read, as much as a "false".
        assertThat(readUnderWayAtTheEnd.poll(3, TimeUnit.SECONDS)).as("a read under way as the cycle ended")
                .isNotEqualTo(Boolean.TRUE);
        assertNoGatewayFaultCounted(container);
    }
}
