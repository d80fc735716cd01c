package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.ReadListener;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletInputStream;
import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.WriteListener;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpServletResponseWrapper;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The answer {@link UpstreamFaultFilter} gives for faults the guarded client really had (a closed port, an unresolvable
 * name), checked the way a strict recipient reads it: {@code Proxy-Status} by an RFC 8941 parser, the problem body by a
 * JSON parser, the framing by its byte count; and faults reaching the filter by less common paths.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class UpstreamFaultFilterAnswerTest {

    /** An upstream name with everything an sf-string must escape or cannot hold, and a character outside Latin-1. */
    static final String AWKWARD_NAME = "caf\u00e9 \"main\" \\ \u2603\t<b>";
    static final String AWKWARD_PROXY_NAME = "edge \"1\" \\x";

    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, SimpleMeterRegistry> registries = new EnumMap<>(Container.class);
    /** What a filter inside the fault filter saw of a redirect on its way out, by container. */
    private final Map<Container, String> locationSeen = new java.util.concurrent.ConcurrentHashMap<>();
    private GuardedHttpClient client;
    private String closedPort;
    private RawUpstream broken;

    /** What the test servlet does before its upstream call fails (or instead). */
    enum Mode {
        STREAM, WRITER, DEEP, SUPPRESSED, READ_LISTENER, BUFFERED, APP_WRAPPER, RETRY_IN_APP, PARTIAL_READ, OK,
        REDIRECT_THEN_FAULT, REDIRECT_ONLY, ASYNC_DISPATCH_TO_PATH, OPEN_NO_TIME_LEFT, OPEN_TIME_NEGATIVE,
        TIMEOUT_FALLBACK_FAILS, WHOLE_THEN_FAULT, COMPLETED_THEN_FAULT, BROKEN_STATUS_LINE,
        TASK_REDIRECT_THEN_FAULT, TASK_REDIRECT_ONLY, READ_LISTENER_DATA, REDIRECT_STATUS_THEN_FAULT,
        REDIRECT_KEEPING_BODY_THEN_FAULT, REDIRECT_STATUS_KEEPING_BODY_THEN_FAULT, REDIRECT_STATUS_ONLY
    }

    /** Servlet 6.1's {@code sendRedirect} variants, absent in a 6.0 container (the CI's Tomcat 10.1 run). */
    static final boolean SERVLET_61 = redirectVariant(String.class, int.class, boolean.class) != null;

    private static java.lang.reflect.Method redirectVariant(Class<?>... parameters) {
        try {
            return HttpServletResponse.class.getMethod("sendRedirect", parameters);
        } catch (NoSuchMethodException servlet60) {
            return null;
        }
    }

    /** Calls a Servlet 6.1 {@code sendRedirect} variant by reflection: the tests compile against Servlet 6.0 too. */
    static void redirect61(HttpServletResponse response, Object... args) throws IOException {
        Class<?>[] types = new Class<?>[args.length];
        for (int i = 0; i < args.length; i++) {
            types[i] = args[i] instanceof Integer ? int.class : args[i] instanceof Boolean ? boolean.class
                    : String.class;
        }
        try {
            redirectVariant(types).invoke(response, args);
        } catch (java.lang.reflect.InvocationTargetException e) {
            if (e.getCause() instanceof IOException) {
                throw (IOException) e.getCause();
            }
            throw new IllegalStateException(e.getCause());
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    private void call() throws IOException {
        client.execute(new HttpGet(closedPort + "/items/7"), r -> null);
    }

    private void callUnresolvable() throws IOException {
        client.execute(new HttpGet("http://inventory.invalid/items/7"), r -> null);
    }

    private UpstreamException failure() {
        try {
            call();
        } catch (UpstreamException e) {
            return e;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        throw new AssertionError("the closed port answered");
    }

    final class AnswerServlet extends HttpServlet {
        private static final long serialVersionUID = 1L;
        private final transient Mode mode;

        AnswerServlet(Mode mode) {
            this.mode = mode;
        }

        @Override
        protected void service(HttpServletRequest req, HttpServletResponse resp) throws ServletException, IOException {
            switch (mode) {
                case STREAM:
                    resp.getOutputStream().write("started".getBytes(StandardCharsets.UTF_8));
                    call();
                    return;
                case WRITER:
                    resp.setCharacterEncoding("ISO-8859-1");
                    resp.getWriter().write("started");
                    call();
                    return;
                case DEEP:
                    throw new RuntimeException(new ServletException("outer",
                            new ExecutionException(new UncheckedIOException(failure()))));
                case SUPPRESSED: {
                    IllegalStateException primary = new IllegalStateException("the application's own bug");
                    primary.addSuppressed(failure());
                    throw primary;
                }
                case READ_LISTENER_DATA: {
                    req.startAsync();
                    ServletInputStream in = req.getInputStream();
                    in.setReadListener(new ReadListener() {
                        @Override
                        public void onDataAvailable() throws IOException {
                            // Streams each part upstream as it arrives; the upstream refuses the first.
                            call();
                        }

                        @Override
                        public void onAllDataRead() {
                        }

                        @Override
                        public void onError(Throwable t) {
                            // The application has nothing to add.
                        }
                    });
                    return;
                }
                case READ_LISTENER: {
                    AsyncContext async = req.startAsync();
                    ServletInputStream in = req.getInputStream();
                    in.setReadListener(new ReadListener() {
                        @Override
                        public void onDataAvailable() throws IOException {
                            byte[] buffer = new byte[1024];
                            while (in.isReady() && in.read(buffer) >= 0) {
                                // Drain what has arrived.
                            }
                        }

                        @Override
                        public void onAllDataRead() throws IOException {
                            call();
                            async.complete();
                        }

                        @Override
                        public void onError(Throwable t) {
                            // The application has nothing to add.
                        }
                    });
                    return;
                }
                case BUFFERED:
                    resp.setBufferSize(1 << 20);
                    resp.setContentType("text/csv");
                    resp.getOutputStream().write(new byte[512 * 1024]);
                    call();
                    return;
                case APP_WRAPPER: {
                    BufferingResponse wrapper = new BufferingResponse(resp);
                    wrapper.getWriter().write("the application's page");
                    call();
                    return;
                }
                case RETRY_IN_APP:
                    try {
                        call();
                    } catch (UpstreamException first) {
                        // The application's fallback upstream fails too.
                        callUnresolvable();
                    }
                    return;
                case PARTIAL_READ:
                    req.getInputStream().readNBytes(10);
                    call();
                    return;
                case REDIRECT_THEN_FAULT:
                    resp.sendRedirect("/elsewhere");
                    call();
                    return;
                case ASYNC_DISPATCH_TO_PATH:
                    req.startAsync().dispatch("/f/stream");
                    return;
                case OPEN_NO_TIME_LEFT:
                case OPEN_TIME_NEGATIVE:
                    // An application's own breaker, reporting the time left as it computed it.
                    throw new UpstreamException(UpstreamFault.DESTINATION_UNAVAILABLE, "inventory", 0,
                            mode == Mode.OPEN_NO_TIME_LEFT ? Duration.ZERO : Duration.ofMillis(-250), 0,
                            "circuit open", null);
                case TIMEOUT_FALLBACK_FAILS: {
                    AsyncContext async = req.startAsync();
                    async.setTimeout(300);
                    async.addListener(new jakarta.servlet.AsyncListener() {
                        @Override
                        public void onTimeout(jakarta.servlet.AsyncEvent event) throws IOException {
                            // The primary upstream is too slow; the fallback refuses.
                            call();
                        }

                        @Override
                        public void onComplete(jakarta.servlet.AsyncEvent event) {
                        }

                        @Override
                        public void onError(jakarta.servlet.AsyncEvent event) {
                        }

                        @Override
                        public void onStartAsync(jakarta.servlet.AsyncEvent event) {
                        }
                    });
                    return;
                }
                case WHOLE_THEN_FAULT:
                    resp.setContentLength(5);
                    resp.getOutputStream().write("whole".getBytes(StandardCharsets.US_ASCII));
                    call();
                    return;
                case COMPLETED_THEN_FAULT: {
                    AsyncContext async = req.startAsync();
                    resp.getOutputStream().write("whole".getBytes(StandardCharsets.US_ASCII));
                    async.complete();
                    call();
                    return;
                }
                case BROKEN_STATUS_LINE:
                    client.execute(new HttpGet(broken.uri("/")), r -> null);
                    return;
                case TASK_REDIRECT_THEN_FAULT:
                case TASK_REDIRECT_ONLY: {
                    AsyncContext async = req.startAsync();
                    async.start(() -> {
                        try {
                            ((HttpServletResponse) async.getResponse()).sendRedirect("/elsewhere");
                            if (mode == Mode.TASK_REDIRECT_THEN_FAULT) {
                                call();
                            }
                            async.complete();
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                    });
                    return;
                }
                case REDIRECT_STATUS_THEN_FAULT:
                    // See Other after a POST, as Servlet 6.1 lets an application say.
                    redirect61(resp, "/elsewhere", 303);
                    call();
                    return;
                case REDIRECT_KEEPING_BODY_THEN_FAULT:
                    resp.getWriter().write("kept");
                    redirect61(resp, "/elsewhere", false);
                    call();
                    return;
                case REDIRECT_STATUS_KEEPING_BODY_THEN_FAULT:
                    resp.getWriter().write("kept");
                    redirect61(resp, "/elsewhere", 307, false);
                    call();
                    return;
                case REDIRECT_STATUS_ONLY:
                    resp.getWriter().write("discarded");
                    redirect61(resp, "/elsewhere", 303, true);
                    return;
                case REDIRECT_ONLY:
                    resp.getWriter().write("discarded");
                    resp.sendRedirect("/elsewhere");
                    return;
                case OK:
                    resp.setContentType("text/plain");
                    resp.getWriter().write("ok");
                    return;
                default:
                    throw new AssertionError(mode);
            }
        }
    }

    /** Collects the application's body in memory, as caching wrappers do. */
    static final class BufferingResponse extends HttpServletResponseWrapper {
        private final ByteArrayOutputStream buffer = new ByteArrayOutputStream();
        private final PrintWriter writer = new PrintWriter(buffer, true, StandardCharsets.UTF_8);

        BufferingResponse(HttpServletResponse response) {
            super(response);
        }

        @Override
        public PrintWriter getWriter() {
            return writer;
        }

        @Override
        public ServletOutputStream getOutputStream() {
            return new ServletOutputStream() {
                @Override
                public boolean isReady() {
                    return true;
                }

                @Override
                public void setWriteListener(WriteListener listener) {
                    throw new UnsupportedOperationException();
                }

                @Override
                public void write(int b) {
                    buffer.write(b);
                }
            };
        }
    }

    @BeforeAll
    void start() throws IOException {
        closedPort = ClosedPort.find().baseUrl();
        // A status line with everything an sf-string or JSON must escape, a byte outside ASCII and a control one.
        broken = RawUpstream.start(Behaviours.respond(new byte[] {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', '2',
            'x', '0', ' ', '"', 'q', '"', '\\', (byte) 0xe9, 0x01, '<', '\r', '\n', '\r', '\n'}));
        // One attempt each, and no circuit to open over the many failed calls of the tests.
        GuardPolicy once = GuardPolicy.builder().retryEnabled(false).circuitBreakerEnabled(false).build();
        client = GuardedHttpClients.custom()
                .upstream(AWKWARD_NAME, closedPort, once)
                .upstream("inventory", "http://inventory.invalid", once)
                .meterRegistry(null)
                .build();
        for (Container container : Container.values()) {
            SimpleMeterRegistry registry = new SimpleMeterRegistry();
            registries.put(container, registry);
            Container.Deployment d = new Container.Deployment();
            d.filter("guard", UpstreamFaultFilter.builder().meterRegistry(registry).build(), "/f/*");
            // Inside the fault filter, looking at the answer on its way out, as URL-rewriting filters do.
            d.filter("location-seen", (req, res, chain) -> {
                chain.doFilter(req, res);
                HttpServletResponse response = (HttpServletResponse) res;
                // Kept aside: a field set after a redirect is the container's to keep or ignore (Tomcat ignores it).
                locationSeen.put(container, response.getStatus() + " " + response.getHeader("Location"));
            }, "/f/redirect-only");
            d.filter("exposed", UpstreamFaultFilter.builder().proxyName(AWKWARD_PROXY_NAME).exposeDetails(true)
                    .meterRegistry(registry).build(), "/exposed/*");
            for (Mode mode : Mode.values()) {
                String name = mode.name().toLowerCase().replace('_', '-');
                d.servlet(name, new AnswerServlet(mode), "/f/" + name);
                d.servlet("exposed-" + name, new AnswerServlet(mode), "/exposed/" + name);
            }
            containers.put(container, container.start(d));
        }
    }

    @AfterAll
    void stop() throws IOException {
        containers.values().forEach(Container.Running::close);
        client.close();
        broken.close();
    }

    private int port(Container container) {
        return containers.get(container).port();
    }

    private double count(Container container, String status, String fault) {
        Counter counter = registries.get(container).find("upstream.guard.responses").tag("status", status)
                .tag("fault", fault).counter();
        return counter == null ? 0 : counter.count();
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anUpstreamNameOutsideAsciiReachesTheClientIntactInEveryFormatWhateverTheApplicationTookOfTheResponse(
            Container container) throws Exception {
        for (String path : new String[] {"/gw/f/stream", "/gw/f/writer", "/gw/exposed/stream", "/gw/exposed/writer"}) {
            for (String accept : new String[] {"application/json", "text/html", "text/plain"}) {
                RawClient.Response answer = RawClient.request(port(container), "GET", path, "Accept: " + accept);
                String what = path + " " + accept + ": " + answer;
                assertThat(answer.status()).as(what).isEqualTo(502);
                assertThat(answer.complete()).as(what).isTrue();
                assertThat(answer.header("Content-Length")).as(what)
                        .isEqualTo(Integer.toString(answer.body().length));
                String body = answer.bodyUtf8();
                assertThat(body).as(what).contains(accept.equals("text/html")
                        ? "caf\u00e9 &quot;main&quot; \\ \u2603\t&lt;b&gt;"
                        : accept.equals("text/plain") ? AWKWARD_NAME : "caf\u00e9 \\\"main\\\" \\\\ \u2603\\t<b>");
                if (accept.equals("application/json")) {
                    assertThat(answer.header("Content-Type")).as(what).isEqualTo("application/problem+json");
                    Map<String, Object> problem = StrictJson.object(body);
                    assertThat(problem).as(what).containsEntry("upstream", AWKWARD_NAME)
                            .containsEntry("status", 502L).containsEntry("fault", "connection_refused")
                            .containsEntry("type", "https://upstreamguard.dev/problems/connection_refused")
                            .containsKeys("title", "detail", "instance");
                } else {
                    assertThat(answer.header("Content-Type")).as(what).containsIgnoringCase("charset=utf-8");
                }
            }
        }
    }

    /** A strict RFC 8941 reading of the gateway's member, with every escape undone. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void proxyStatusWithAwkwardNamesAndDetailsParsesAsAStructuredFieldList(Container container) throws Exception {
        RawClient.Response hidden = RawClient.request(port(container), "GET", "/gw/f/stream");
        List<StrictSf.Member> plain = StrictSf.list(hidden.header("Proxy-Status"));
        assertThat(plain).hasSize(1);
        assertThat(plain.get(0).name()).isEqualTo("upstream-guard");
        assertThat(plain.get(0).nameIsToken()).isTrue();
        assertThat(plain.get(0).params()).containsExactly(Map.entry("error", "connection_refused"));

        RawClient.Response exposed = RawClient.request(port(container), "GET", "/gw/exposed/writer");
        String field = exposed.header("Proxy-Status");
        assertThat(field).as(field).matches("[\\x20-\\x7e]+");
        List<StrictSf.Member> members = StrictSf.list(field);
        assertThat(members).as(field).hasSize(1);
        StrictSf.Member member = members.get(0);
        assertThat(member.name()).isEqualTo(AWKWARD_PROXY_NAME);
        assertThat(member.nameIsToken()).isFalse();
        assertThat(member.params()).containsEntry("error", "connection_refused").containsKeys("next-hop", "details");
        assertThat((String) member.params().get("details"))
                .startsWith("Upstream 'caf? \"main\" \\ ??<b>' failed: connection_refused");
        assertThat(member.params().get("next-hop")).isEqualTo("caf? \"main\" \\ ??<b>");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultWrappedSeveralLevelsDeepIsAnswered(Container container) throws Exception {
        RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/f/deep");
        assertThat(answer.status()).as("%s", answer).isEqualTo(502);
        assertThat(answer.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_refused");
    }

    /** A fault the application only suppressed under a failure of its own is not what went wrong: the container's. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultOnlySuppressedUnderAnotherFailureIsLeftToTheContainer(Container container) throws Exception {
        RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/f/suppressed");
        assertThat(answer.status()).as("%s", answer).isEqualTo(500);
        assertThat(answer.header("Proxy-Status")).isNull();
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultANonBlockingReadListenerThrowsIsAnswered(Container container) throws Exception {
        byte[] body = "x".repeat(4096).getBytes(StandardCharsets.US_ASCII);
        RawClient.Response answer = RawClient.send(port(container), "POST /gw/f/read-listener HTTP/1.1\r\n"
                + "Host: 127.0.0.1\r\nAccept: application/json\r\nContent-Length: " + body.length + "\r\n\r\n", body);
        assertThat(answer.status()).as("%s", answer).isEqualTo(502);
        assertThat(answer.complete()).isTrue();
        assertThat(answer.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_refused");
        assertThat(answer.bodyUtf8()).contains("\"fault\":\"connection_refused\"");

        RawClient.Response onData = RawClient.send(port(container), "POST /gw/f/read-listener-data HTTP/1.1\r\n"
                + "Host: 127.0.0.1\r\nContent-Length: " + body.length + "\r\n\r\n", body);
        assertThat(onData.status()).as("%s", onData).isEqualTo(502);
        assertThat(onData.complete()).isTrue();
        assertThat(onData.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_refused");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aLargeBodyStillInABigBufferIsReplacedByTheAnswer(Container container) throws Exception {
        RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/f/buffered",
                "Accept: application/json");
        assertThat(answer.status()).as("%s", answer.headers()).isEqualTo(502);
        assertThat(answer.complete()).isTrue();
        assertThat(answer.header("Content-Length")).isEqualTo(Integer.toString(answer.body().length));
        assertThat(answer.header("Content-Type")).isEqualTo("application/problem+json");
        StrictJson.object(answer.bodyUtf8());
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultBehindTheApplicationsOwnResponseWrapperIsAnswered(Container container) throws Exception {
        RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/f/app-wrapper");
        assertThat(answer.status()).isEqualTo(502);
        assertThat(answer.bodyUtf8()).doesNotContain("the application's page");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theFaultThatEscapesAfterTheApplicationsOwnRetryIsTheOneAnsweredAndCountedOnce(Container container)
            throws Exception {
        double refused = count(container, "502", "connection_refused");
        double dns = count(container, "502", "dns_error");
        RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/f/retry-in-app");
        assertThat(answer.status()).isEqualTo(502);
        assertThat(answer.header("Proxy-Status")).isEqualTo("upstream-guard; error=dns_error");
        assertThat(count(container, "502", "dns_error")).isEqualTo(dns + 1);
        assertThat(count(container, "502", "connection_refused")).isEqualTo(refused);
    }

    /**
     * A fault answered while most of the request body is unread must not leave that body to be read as the next
     * request on the connection: the next request gets its own answer, or the connection is closed.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theUnreadRestOfARequestBodyIsNotTakenForTheNextRequest(Container container) throws Exception {
        byte[] body = "GET /gw/f/ok HTTP/1.1\r\nHost: smuggled\r\n\r\n".repeat(2000)
                .getBytes(StandardCharsets.US_ASCII);
        try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port(container))) {
            socket.setSoTimeout(RawClient.READ_TIMEOUT_MILLIS);
            OutputStream out = socket.getOutputStream();
            out.write(("POST /gw/f/partial-read HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + body.length
                    + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(body);
            out.write("GET /gw/f/ok HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = new BufferedInputStream(socket.getInputStream());
            RawClient.Response first = RawClient.read(in, false);
            assertThat(first.status()).isEqualTo(502);
            assertThat(first.complete()).isTrue();
            RawClient.Response second;
            try {
                second = RawClient.read(in, false);
            } catch (IOException closed) {
                // Closing instead of reading the rest is right too; the client then knows by the close.
                return;
            }
            assertThat(second.status()).as("%s", second).isEqualTo(200);
            assertThat(second.bodyUtf8()).isEqualTo("ok");
            assertThat(in.read()).as("nothing but the two answers").isEqualTo(-1);
        }
    }

    /**
     * Regression: the containers take a redirect as the end of the response, so a fault thrown after it was aborted:
     * Tomcat then answered a 400 error report with the redirect's Location, the exception's message and its stack
     * trace; Jetty sent the redirect, the fault lost.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultThrownAfterTheApplicationSentARedirectIsAnsweredAsTheFault(Container container) throws Exception {
        double refused = count(container, "502", "connection_refused");
        RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/f/redirect-then-fault",
                "Accept: application/json");
        assertThat(answer.status()).as("%s", answer).isEqualTo(502);
        assertThat(answer.complete()).isTrue();
        assertThat(answer.header("Location")).isNull();
        assertThat(answer.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_refused");
        assertThat(StrictJson.object(answer.bodyUtf8())).containsEntry("status", 502L);
        assertThat(count(container, "502", "connection_refused")).isEqualTo(refused + 1);

        // Without a fault the redirect goes out as the application sent it.
        RawClient.Response redirect = RawClient.request(port(container), "GET", "/gw/f/redirect-only");
        assertThat(redirect.status()).isEqualTo(302);
        assertThat(redirect.header("Location")).endsWith("/elsewhere");
        assertThat(redirect.complete()).isTrue();
        assertThat(redirect.bodyUtf8()).doesNotContain("discarded");
        assertThat(locationSeen.get(container)).isEqualTo("302 /elsewhere");
    }

    /**
     * Regression: Servlet 6.1's {@code sendRedirect} variants with a status or a {@code clearBuffer} flag went straight
     * to the container, so a fault thrown after them was aborted or lost as after an unheld redirect.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultThrownAfterAServlet61RedirectIsAnsweredAsTheFault(Container container) throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(SERVLET_61, "a Servlet 6.0 container has no such redirect");
        for (String path : new String[] {"/gw/f/redirect-status-then-fault", "/gw/f/redirect-keeping-body-then-fault",
            "/gw/f/redirect-status-keeping-body-then-fault"}) {
            RawClient.Response answer = RawClient.request(port(container), "GET", path, "Accept: application/json");
            assertThat(answer.status()).as("%s %s", path, answer).isEqualTo(502);
            assertThat(answer.complete()).as(path).isTrue();
            assertThat(answer.header("Location")).as(path).isNull();
            assertThat(answer.header("Proxy-Status")).as(path).isEqualTo("upstream-guard; error=connection_refused");
            assertThat(answer.bodyUtf8()).as(path).doesNotContain("kept");
            assertThat(StrictJson.object(answer.bodyUtf8())).as(path).containsEntry("status", 502L);
        }

        // Without a fault the redirect goes out as the application sent it, with its status.
        RawClient.Response redirect = RawClient.request(port(container), "GET", "/gw/f/redirect-status-only");
        assertThat(redirect.status()).as("%s", redirect).isEqualTo(303);
        assertThat(redirect.header("Location")).endsWith("/elsewhere");
        assertThat(redirect.complete()).isTrue();
        assertThat(redirect.bodyUtf8()).doesNotContain("discarded");
    }

    /** As {@link #aFaultThrownAfterTheApplicationSentARedirectIsAnsweredAsTheFault}, in a task the context runs. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultAnAsyncTaskThrowsAfterSendingARedirectIsAnsweredAsTheFault(Container container) throws Exception {
        RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/f/task-redirect-then-fault");
        assertThat(answer.status()).as("%s", answer).isEqualTo(502);
        assertThat(answer.complete()).isTrue();
        assertThat(answer.header("Location")).isNull();

        RawClient.Response redirect = RawClient.request(port(container), "GET", "/gw/f/task-redirect-only");
        assertThat(redirect.status()).as("%s", redirect).isEqualTo(302);
        assertThat(redirect.header("Location")).endsWith("/elsewhere");
        assertThat(redirect.complete()).isTrue();
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultOnAnAsyncDispatchToAnotherPathIsAnsweredForThePathTheClientAsked(Container container) throws Exception {
        RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/f/async-dispatch-to-path",
                "Accept: application/json");
        assertThat(answer.status()).as("%s", answer).isEqualTo(502);
        assertThat(StrictJson.object(answer.bodyUtf8())).containsEntry("instance", "/gw/f/async-dispatch-to-path");
    }

    /**
     * Regression: an {@code UpstreamException} the application built with a {@code retryAfter} of zero or less (its own
     * breaker's arithmetic) was answered {@code Retry-After: 0}, which has every client retry at once.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void retryAfterOnA503IsAtLeastOneSecondAlsoWhenTheFaultSaysNoTimeIsLeft(Container container) throws Exception {
        for (String path : new String[] {"/gw/f/open-no-time-left", "/gw/f/open-time-negative"}) {
            RawClient.Response answer = RawClient.request(port(container), "GET", path);
            assertThat(answer.status()).as(path).isEqualTo(503);
            assertThat(answer.header("Retry-After")).as(path).isEqualTo("1");
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anHttp10ClientGetsAWholeAnswerOfStatedLength(Container container) throws Exception {
        RawClient.Response answer = RawClient.send(port(container), "GET /gw/f/stream HTTP/1.0\r\n\r\n", null);
        assertThat(answer.status()).isEqualTo(502);
        assertThat(answer.header("Content-Length")).isEqualTo(Integer.toString(answer.body().length));
        assertThat(answer.complete()).isTrue();
    }

    /**
     * A fallback the application's own timeout listener calls, failing too, leaves the timeout unanswered: the client
     * gets the gateway timeout it is, not the container's 500 nor a hang.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFallbackFailingInTheApplicationsTimeoutListenerStillGetsTheGatewayTimeout(Container container)
            throws Exception {
        RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/f/timeout-fallback-fails");
        assertThat(answer.complete()).isTrue();
        assertThat(answer.status()).isEqualTo(504);
        assertThat(answer.header("Proxy-Status")).isEqualTo("upstream-guard; error=http_response_timeout");
    }

    /**
     * A fault after the application wrote the whole body it announced cannot cut it: the client gets that answer
     * whole, the fault is counted as an abort. One thrown after it completed the async cycle, with nothing on the
     * wire yet, is answered instead. Regression (Tomcat 10.1, the Servlet 6.0 matrix of {@code .ci/run}): the whole
     * answer, not yet on the wire, became a 400 error report with the fault's message and a stack trace.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultAfterTheWholeAnswerWasWrittenLeavesItWholeAndOneBeforeItWentOutReplacesIt(Container container)
            throws Exception {
        double aborted = count(container, "aborted", "connection_refused");
        RawClient.Response whole = RawClient.request(port(container), "GET", "/gw/f/whole-then-fault");
        assertThat(whole.status()).isEqualTo(200);
        assertThat(whole.complete()).isTrue();
        assertThat(whole.bodyUtf8()).isEqualTo("whole");
        // The whole body may reach the client before the filter has counted.
        Await.until("the abort is counted", Duration.ofSeconds(10),
                () -> count(container, "aborted", "connection_refused") == aborted + 1);

        RawClient.Response replaced = RawClient.request(port(container), "GET", "/gw/f/completed-then-fault");
        assertThat(replaced.status()).isEqualTo(502);
        assertThat(replaced.complete()).isTrue();
        assertThat(replaced.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_refused");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anUpstreamsBrokenStatusLineInTheDetailsStillParsesInEveryFormat(Container container) throws Exception {
        for (String accept : new String[] {"application/json", "text/html", "text/plain"}) {
            RawClient.Response answer = RawClient.request(port(container), "GET", "/gw/exposed/broken-status-line",
                    "Accept: " + accept);
            assertThat(answer.status()).isEqualTo(502);
            assertThat(answer.complete()).isTrue();
            assertThat(answer.header("Content-Length")).isEqualTo(Integer.toString(answer.body().length));
            String field = answer.header("Proxy-Status");
            assertThat(field).matches("[\\x20-\\x7e]+");
            assertThat(StrictSf.list(field).get(0).params()).containsEntry("error", "http_protocol_error");
            if (accept.equals("application/json")) {
                assertThat(StrictJson.object(answer.bodyUtf8())).containsEntry("fault", "http_protocol_error");
            }
        }
    }

    /**
     * Regression: exposed details carried the cause as {@code toString()} gives it, so they named the gateway's own
     * internal classes ({@code dev.upstreamguard.internal.FaultSignal: Malformed status line...}) and the HTTP
     * library's ({@code org.apache.hc.client5.http.HttpHostConnectException: ...}); the text after them stays.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void exposedDetailsNameNoClassOfTheGatewayOrItsLibraries(Container container) throws Exception {
        for (String path : new String[] {"/gw/exposed/broken-status-line", "/gw/exposed/stream",
            "/gw/exposed/retry-in-app", "/gw/exposed/deep"}) {
            for (String accept : new String[] {"application/json", "text/html", "text/plain"}) {
                RawClient.Response answer = RawClient.request(port(container), "GET", path, "Accept: " + accept);
                String what = path + " " + accept + ": " + answer;
                assertThat(answer.status()).as(what).isBetween(502, 504);
                String details = (String) StrictSf.list(answer.header("Proxy-Status")).get(0).params().get("details");
                assertThat(details).as(what).isNotBlank();
                for (String text : new String[] {details, answer.bodyUtf8()}) {
                    assertThat(text).as(what).doesNotContain("dev.upstreamguard", "org.apache", "java.net.",
                            "javax.", "FaultSignal").doesNotContainPattern("[a-z]\\.[a-z][\\w$]*\\.[A-Z]\\w*Exception");
                }
            }
        }
        RawClient.Response broken = RawClient.request(port(container), "GET", "/gw/exposed/broken-status-line");
        assertThat(broken.header("Proxy-Status")).as("the cause's own text stays").contains("status line");
    }

    /** RFC 8941 §4.2 list parsing, strict: anything off the grammar fails the test. */
    static final class StrictSf {
        record Member(String name, boolean nameIsToken, Map<String, Object> params) {
        }

        private final String in;
        private int pos;

        private StrictSf(String in) {
            this.in = in;
        }

        static List<Member> list(String field) {
            assertThat(field).as("Proxy-Status").isNotNull();
            StrictSf p = new StrictSf(field);
            List<Member> members = new ArrayList<>();
            while (true) {
                members.add(p.member());
                p.ows();
                if (p.pos == p.in.length()) {
                    return members;
                }
                p.expect(',');
                p.ows();
                if (p.pos == p.in.length()) {
                    throw new AssertionError("trailing comma in " + field);
                }
            }
        }

        private Member member() {
            boolean token = pos < in.length() && in.charAt(pos) != '"';
            Object name = bareItem();
            if (!(name instanceof String)) {
                throw new AssertionError("member name is not a string or token in " + in);
            }
            Map<String, Object> params = new LinkedHashMap<>();
            while (pos < in.length() && in.charAt(pos) == ';') {
                pos++;
                while (pos < in.length() && in.charAt(pos) == ' ') {
                    pos++;
                }
                int start = pos;
                if (pos >= in.length() || !(Character.isLowerCase(in.charAt(pos)) || in.charAt(pos) == '*')) {
                    throw new AssertionError("bad key at " + pos + " in " + in);
                }
                while (pos < in.length() && "abcdefghijklmnopqrstuvwxyz0123456789_-.*".indexOf(in.charAt(pos)) >= 0) {
                    pos++;
                }
                String key = in.substring(start, pos);
                Object value = Boolean.TRUE;
                if (pos < in.length() && in.charAt(pos) == '=') {
                    pos++;
                    value = bareItem();
                }
                params.put(key, value);
            }
            return new Member((String) name, token, params);
        }

        private Object bareItem() {
            char c = pos < in.length() ? in.charAt(pos) : '\0';
            if (c == '"') {
                pos++;
                StringBuilder sb = new StringBuilder();
                while (true) {
                    if (pos >= in.length()) {
                        throw new AssertionError("unterminated string in " + in);
                    }
                    char s = in.charAt(pos++);
                    if (s == '\\') {
                        char e = pos < in.length() ? in.charAt(pos++) : '\0';
                        if (e != '"' && e != '\\') {
                            throw new AssertionError("bad escape in " + in);
                        }
                        sb.append(e);
                    } else if (s == '"') {
                        return sb.toString();
                    } else if (s < 0x20 || s > 0x7e) {
                        throw new AssertionError("bad string character in " + in);
                    } else {
                        sb.append(s);
                    }
                }
            }
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '*') {
                int start = pos++;
                while (pos < in.length() && (Character.isLetterOrDigit(in.charAt(pos))
                        || "!#$%&'*+-.^_`|~:/".indexOf(in.charAt(pos)) >= 0) && in.charAt(pos) < 0x80) {
                    pos++;
                }
                return in.substring(start, pos);
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                int start = pos++;
                while (pos < in.length() && Character.isDigit(in.charAt(pos))) {
                    pos++;
                }
                return Long.parseLong(in.substring(start, pos));
            }
            throw new AssertionError("no bare item at " + pos + " in " + in);
        }

        private void ows() {
            while (pos < in.length() && (in.charAt(pos) == ' ' || in.charAt(pos) == '\t')) {
                pos++;
            }
        }

        private void expect(char c) {
            if (pos >= in.length() || in.charAt(pos) != c) {
                throw new AssertionError("expected '" + c + "' at " + pos + " in " + in);
            }
            pos++;
        }
    }

    /** RFC 8259 parsing of the one shape a problem body has: an object of strings, integers and nothing nested. */
    static final class StrictJson {
        private final String in;
        private int pos;

        private StrictJson(String in) {
            this.in = in;
        }

        static Map<String, Object> object(String json) {
            StrictJson p = new StrictJson(json);
            Map<String, Object> members = new LinkedHashMap<>();
            p.expect('{');
            if (p.peek() != '}') {
                do {
                    String key = p.string();
                    p.expect(':');
                    Object value = p.peek() == '"' ? p.string() : p.integer();
                    if (members.put(key, value) != null) {
                        throw new AssertionError("member " + key + " twice in " + json);
                    }
                } while (p.peek() == ',' && p.pos++ >= 0);
            }
            p.expect('}');
            if (p.pos != json.length()) {
                throw new AssertionError("text after the object in " + json);
            }
            return members;
        }

        private char peek() {
            return pos < in.length() ? in.charAt(pos) : '\0';
        }

        private void expect(char c) {
            if (peek() != c) {
                throw new AssertionError("expected '" + c + "' at " + pos + " in " + in);
            }
            pos++;
        }

        private long integer() {
            int start = pos;
            while (Character.isDigit(peek())) {
                pos++;
            }
            if (start == pos) {
                throw new AssertionError("no value at " + pos + " in " + in);
            }
            return Long.parseLong(in.substring(start, pos));
        }

        private String string() {
            expect('"');
            StringBuilder sb = new StringBuilder();
            while (true) {
                char c = peek();
                pos++;
                if (c == '"') {
                    return sb.toString();
                }
                if (c == '\0' && pos > in.length() || c < 0x20) {
                    throw new AssertionError("unescaped control character or end at " + pos + " in " + in);
                }
                if (c != '\\') {
                    sb.append(c);
                    continue;
                }
                char e = peek();
                pos++;
                switch (e) {
                    case '"': case '\\': case '/': sb.append(e); break;
                    case 'b': sb.append('\b'); break;
                    case 'f': sb.append('\f'); break;
                    case 'n': sb.append('\n'); break;
                    case 'r': sb.append('\r'); break;
                    case 't': sb.append('\t'); break;
                    case 'u':
                        sb.append((char) Integer.parseInt(in.substring(pos, pos + 4), 16));
                        pos += 4;
                        break;
                    default:
                        throw new AssertionError("bad escape at " + pos + " in " + in);
                }
            }
        }
    }
}
