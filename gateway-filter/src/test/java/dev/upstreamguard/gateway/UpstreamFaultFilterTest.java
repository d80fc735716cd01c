package dev.upstreamguard.gateway;

import static dev.upstreamguard.gateway.FaultAssertions.assertGeneratedFault;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import jakarta.servlet.AsyncContext;
import jakarta.servlet.AsyncEvent;
import jakarta.servlet.AsyncListener;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpServletResponseWrapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse.BodyHandlers;
import java.time.Duration;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Map;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.catalina.connector.ClientAbortException;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.impl.classic.CloseableHttpClient;
import org.apache.hc.client5.http.impl.classic.HttpClients;
import org.apache.hc.core5.util.Timeout;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link UpstreamFaultFilter} in front of plain and async servlets that fail with an {@link UpstreamException}
 * wrapped in various ways, in each container.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class UpstreamFaultFilterTest {

    private final ExecutorService executor = Executors.newCachedThreadPool();
    private volatile CountDownLatch lateTaskDone = new CountDownLatch(1);
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);
    private final Map<Container, SimpleMeterRegistry> registries = new EnumMap<>(Container.class);
    private RawUpstream truncating;
    private RawUpstream truncatingChunks;
    private RawUpstream stalled;
    private RawUpstream alerting;
    private RawUpstream closing;
    private RawUpstream resetting;
    private RawUpstream notHttp;
    private RawUpstream notFound;
    private String closedPort;

    /** How the test servlet fails. */
    enum Mode {
        SERVLET_EXCEPTION, COMPLETION_EXCEPTION, CIRCUIT_OPEN, ASYNC_DISPATCH, ASYNC_THROW, COMMITTED, NOT_OURS,
        UNNAMED_UPSTREAM, PARTLY_WRITTEN, ASYNC_TASK, ASYNC_TASK_WRAPPED, ASYNC_TASK_COMMITTED,
        ASYNC_TIMEOUT, ASYNC_TIMEOUT_HANDLED, ASYNC_TASK_AFTER_TIMEOUT,
        CYCLIC_CAUSE, ASYNC_TIMEOUT_COMMITTED, ASYNC_DISPATCH_COMMITTED,
        OWN_CLIENT_REFUSED, OWN_CLIENT_UNRESOLVED, OWN_CLIENT_READ_TIMEOUT, OWN_CLIENT_TLS_ALERT, OWN_CLIENT_CLOSED, OWN_CLIENT_NOT_HTTP,
        OWN_URL_CONNECTION_RESET, OWN_URL_CONNECTION_404, CLIENT_TOO_SLOW
    }

    static UpstreamException refused(String upstream) {
        return new UpstreamException(UpstreamFault.CONNECTION_REFUSED, upstream, 3, null,
                Duration.ofMillis(12).toNanos(), "Upstream '" + upstream + "' failed: connection_refused after 3 "
                + "attempts (http://10.1.2.3:8080 refused)", new ConnectException("Connection refused"));
    }

    /** A GET with the JDK's own HTTP client, not the guarded one: its failure escapes as the JDK throws it. */
    private static void jdkGet(String url) throws IOException {
        try {
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build().send(
                    HttpRequest.newBuilder(URI.create(url)).build(), BodyHandlers.discarding());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }

    /** Fails as its mode says; for async modes, on the async dispatch or right after starting async. */
    final class FailingServlet extends HttpServlet {
        private static final long serialVersionUID = 1L;
        private final transient Mode mode;

        FailingServlet(Mode mode) {
            this.mode = mode;
        }

        @Override
        protected void service(HttpServletRequest req, HttpServletResponse resp) throws ServletException, IOException {
            switch (mode) {
                case SERVLET_EXCEPTION:
                    throw new ServletException("lookup failed", refused("inventory"));
                case COMPLETION_EXCEPTION:
                    throw new CompletionException(refused("inventory"));
                case CIRCUIT_OPEN:
                    throw new UpstreamException(UpstreamFault.DESTINATION_UNAVAILABLE, "inventory", 0,
                            Duration.ofMillis(1500), 0, "circuit open", null);
                case UNNAMED_UPSTREAM:
                    throw new ServletException(refused("http://10.1.2.3:8080"));
                case PARTLY_WRITTEN:
                    resp.setStatus(200);
                    resp.setHeader("X-Partial", "yes");
                    resp.setContentType("text/csv");
                    resp.getWriter().write("id,name\n1,");
                    throw new ServletException(refused("inventory"));
                case CYCLIC_CAUSE: {
                    ConnectException connect = new ConnectException("Connection refused");
                    RuntimeException wrapper = new RuntimeException(new UpstreamException(
                            UpstreamFault.CONNECTION_REFUSED, "inventory", 3, null, 0, "refused", connect));
                    connect.initCause(wrapper);
                    throw new ServletException(wrapper);
                }
                case NOT_OURS:
                    throw new IllegalStateException("not an upstream fault");
                case OWN_CLIENT_REFUSED:
                    jdkGet(closedPort + "/");
                    return;
                case OWN_CLIENT_UNRESOLVED:
                    jdkGet("http://nothing.invalid/");
                    return;
                case OWN_CLIENT_TLS_ALERT:
                    jdkGet(alerting.baseUrl().replace("http://", "https://") + "/");
                    return;
                case OWN_CLIENT_CLOSED:
                    jdkGet(closing.baseUrl() + "/");
                    return;
                case OWN_CLIENT_NOT_HTTP:
                    jdkGet(notHttp.baseUrl() + "/");
                    return;
                case OWN_URL_CONNECTION_RESET:
                case OWN_URL_CONNECTION_404: {
                    RawUpstream upstream = mode == Mode.OWN_URL_CONNECTION_RESET ? resetting : notFound;
                    java.net.HttpURLConnection connection = (java.net.HttpURLConnection) URI.create(
                            upstream.baseUrl() + "/").toURL().openConnection();
                    connection.setReadTimeout(30_000);
                    // A 404 throws FileNotFoundException here: the upstream's answer, not a failed call.
                    try (java.io.InputStream in = connection.getInputStream()) {
                        in.readAllBytes();
                    }
                    return;
                }
                case OWN_CLIENT_READ_TIMEOUT:
                    try (CloseableHttpClient own = HttpClients.custom().setDefaultRequestConfig(RequestConfig.custom()
                            .setResponseTimeout(Timeout.ofMilliseconds(300)).build()).build()) {
                        own.execute(new HttpGet(stalled.uri("/")), r -> null);
                    }
                    return;
                case CLIENT_TOO_SLOW:
                    // How Tomcat reports a client that stopped sending its request body: the gateway's own client,
                    // not an upstream.
                    throw new ClientAbortException(new SocketTimeoutException("Read timed out"));
                case COMMITTED:
                    writeCommitted(resp);
                    throw new ServletException(refused("inventory"));
                case ASYNC_THROW:
                    req.startAsync();
                    throw new CompletionException(refused("inventory"));
                case ASYNC_TASK:
                    req.startAsync().start(() -> {
                        throw new CompletionException(refused("inventory"));
                    });
                    return;
                case ASYNC_TASK_WRAPPED:
                    req.startAsync(req, new HttpServletResponseWrapper(resp)).start(() -> {
                        throw new UncheckedIOException(refused("inventory"));
                    });
                    return;
                case ASYNC_TASK_COMMITTED: {
                    AsyncContext async = req.startAsync();
                    async.start(() -> {
                        try {
                            writeCommitted(async.getResponse());
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                        throw new CompletionException(refused("inventory"));
                    });
                    return;
                }
                case ASYNC_TIMEOUT:
                    // Waits for an upstream that never answers, longer than the async timeout allows.
                    req.startAsync().setTimeout(300);
                    return;
                case ASYNC_TASK_AFTER_TIMEOUT: {
                    AsyncContext async = req.startAsync();
                    async.setTimeout(300);
                    CountDownLatch over = new CountDownLatch(1);
                    async.addListener(listener(AsyncEventKind.COMPLETE, event -> over.countDown()));
                    async.start(() -> {
                        try {
                            // The upstream call fails only after the timeout was answered and the cycle is over.
                            if (!over.await(30, TimeUnit.SECONDS)) {
                                throw new AssertionError("the async cycle never ended");
                            }
                            throw new CompletionException(refused("late"));
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        } finally {
                            lateTaskDone.countDown();
                        }
                    });
                    return;
                }
                case ASYNC_TIMEOUT_COMMITTED:
                    // Streams the first part of the answer, then waits for an upstream that never sends the rest.
                    req.startAsync().setTimeout(300);
                    writeCommitted(resp);
                    return;
                case ASYNC_DISPATCH_COMMITTED: {
                    if (req.getDispatcherType() == DispatcherType.ASYNC) {
                        throw new ServletException((Throwable) req.getAttribute("failure"));
                    }
                    AsyncContext async = req.startAsync();
                    executor.execute(() -> {
                        try {
                            writeCommitted(async.getResponse());
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                        req.setAttribute("failure", refused("inventory"));
                        async.dispatch();
                    });
                    return;
                }
                case ASYNC_TIMEOUT_HANDLED: {
                    AsyncContext async = req.startAsync();
                    async.setTimeout(300);
                    async.addListener(listener(AsyncEventKind.TIMEOUT, event -> {
                        event.getAsyncContext().getResponse().getWriter().write("the application's fallback");
                        event.getAsyncContext().complete();
                    }));
                    return;
                }
                case ASYNC_DISPATCH:
                    if (req.getDispatcherType() == DispatcherType.ASYNC) {
                        throw new ServletException((Throwable) req.getAttribute("failure"));
                    }
                    AsyncContext async = req.startAsync();
                    executor.execute(() -> {
                        // The async work fails; as Spring MVC does, hand the failure back on an async dispatch.
                        req.setAttribute("failure", new CompletionException(refused("inventory")));
                        async.dispatch();
                    });
                    return;
                default:
                    throw new AssertionError(mode);
            }
        }
    }

    /** Which {@link AsyncListener} event a test listener acts on. */
    enum AsyncEventKind { COMPLETE, TIMEOUT }

    /** What a test listener does with its event. */
    @FunctionalInterface
    interface AsyncEventAction {
        void on(AsyncEvent event) throws IOException;
    }

    /** A listener that runs {@code action} on the {@code kind} event and ignores the others. */
    static AsyncListener listener(AsyncEventKind kind, AsyncEventAction action) {
        return new AsyncListener() {
            @Override
            public void onComplete(AsyncEvent event) throws IOException {
                if (kind == AsyncEventKind.COMPLETE) {
                    action.on(event);
                }
            }

            @Override
            public void onTimeout(AsyncEvent event) throws IOException {
                if (kind == AsyncEventKind.TIMEOUT) {
                    action.on(event);
                }
            }

            @Override
            public void onError(AsyncEvent event) {
            }

            @Override
            public void onStartAsync(AsyncEvent event) {
            }
        };
    }

    static void writeCommitted(ServletResponse resp) throws IOException {
        resp.setContentType("application/octet-stream");
        resp.getOutputStream().write(new byte[64 * 1024]);
        resp.flushBuffer();
    }

    @BeforeAll
    void start() throws IOException {
        truncating = RawUpstream.start(Behaviours.truncatedBody());
        // A 64 KiB chunk fills the container's buffer, which commits the 200; then a chunk is cut off.
        truncatingChunks = RawUpstream.start(Behaviours.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "10000\r\n" + "x".repeat(0x10000) + "\r\n64\r\nonly sixteen b.."));
        stalled = RawUpstream.start(Behaviours.stall());
        alerting = RawUpstream.start(Behaviours.tlsFatalAlert());
        closing = RawUpstream.start(Behaviours.closeBeforeResponse());
        resetting = RawUpstream.start(Behaviours.resetBeforeResponse());
        notHttp = RawUpstream.start(Behaviours.notHttp());
        notFound = RawUpstream.start(Behaviours.status(404, "no such item"));
        closedPort = ClosedPort.find().baseUrl();
        for (Container container : Container.values()) {
            SimpleMeterRegistry registry = new SimpleMeterRegistry();
            registries.put(container, registry);
            Container.Deployment d = new Container.Deployment();
            d.filter("guard", UpstreamFaultFilter.builder().meterRegistry(registry).build(), "/f/*");
            d.errorPage("/error-page");
            d.servlet("error-page", new HttpServlet() {
                private static final long serialVersionUID = 1L;

                @Override
                protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
                    // Also included into committed responses (Tomcat), where the output stream may be in use.
                    resp.setStatus(500);
                    try {
                        resp.getWriter().write("the application's error page");
                    } catch (IllegalStateException streamInUse) {
                        resp.getOutputStream().print("the application's error page");
                    }
                }
            }, "/error-page");
            d.filter("on-error", UpstreamFaultFilter.builder().meterRegistry(registry).build(), "/error-page",
                    Map.of(), EnumSet.of(DispatcherType.ERROR));
            d.servlet("unfiltered", new FailingServlet(Mode.SERVLET_EXCEPTION), "/unfiltered/servlet-exception");
            d.servlet("unfiltered-other", new FailingServlet(Mode.NOT_OURS), "/unfiltered/not-ours");
            d.servlet("proxy-refused", UpstreamProxyServlet.builder(closedPort).meterRegistry(registry)
                    .set("retry.enabled", "false").build(), "/f/proxy-refused/*");
            d.servlet("proxy-truncated", UpstreamProxyServlet.builder(truncating.baseUrl()).meterRegistry(registry)
                    .build(), "/f/proxy-truncated/*");
            d.filter("swallowing-wrapper", (req, res, chain) -> chain.doFilter(req,
                    new SwallowingResponse((HttpServletResponse) res)), "/wrapped/*");
            d.servlet("proxy-truncated-chunks", UpstreamProxyServlet.builder(truncatingChunks.baseUrl())
                    .meterRegistry(registry).build(), "/f/proxy-truncated-chunks/*");
            d.servlet("wrapped-proxy-truncated", UpstreamProxyServlet.builder(truncatingChunks.baseUrl()).build(),
                    "/wrapped/proxy-truncated/*");
            d.filter("exposed", new UpstreamFaultFilter(), "/exposed/*",
                    Map.of("proxy-name", "edge 1", "expose-details", "true"),
                    EnumSet.of(DispatcherType.REQUEST, DispatcherType.ASYNC, DispatcherType.ERROR));
            for (Mode mode : Mode.values()) {
                String name = mode.name().toLowerCase().replace('_', '-');
                d.servlet(name, new FailingServlet(mode), "/f/" + name);
                d.servlet("exposed-" + name, new FailingServlet(mode), "/exposed/" + name);
            }
            containers.put(container, container.start(d));
        }
    }

    @AfterAll
    void stop() {
        containers.values().forEach(Container.Running::close);
        executor.shutdownNow();
        truncating.close();
        truncatingChunks.close();
        stalled.close();
        alerting.close();
        closing.close();
        resetting.close();
        notHttp.close();
        notFound.close();
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anUpstreamExceptionWrappedInAServletExceptionIsAnswered502(Container container) throws Exception {
        double before = count(container, "502", "connection_refused");
        RawClient.Response json = assertGeneratedFault(port(container), "/gw/f/servlet-exception",
                UpstreamFault.CONNECTION_REFUSED, false);
        assertThat(json.bodyUtf8()).contains("\"upstream\":\"inventory\"", "\"attempts\":3",
                "\"instance\":\"/gw/f/servlet-exception\"").doesNotContain("10.1.2.3");
        assertThat(count(container, "502", "connection_refused")).isEqualTo(before + 4);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anUpstreamExceptionWrappedInACompletionExceptionIsAnswered502(Container container) throws Exception {
        assertGeneratedFault(port(container), "/gw/f/completion-exception", UpstreamFault.CONNECTION_REFUSED, false);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anOpenCircuitIsAnswered503WithRetryAfterRoundedUpToWholeSeconds(Container container) throws Exception {
        RawClient.Response json = assertGeneratedFault(port(container), "/gw/f/circuit-open",
                UpstreamFault.DESTINATION_UNAVAILABLE, true);
        assertThat(json.header("Retry-After")).isEqualTo("2");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultRethrownOnAnAsyncDispatchIsAnswered(Container container) throws Exception {
        assertGeneratedFault(port(container), "/gw/f/async-dispatch", UpstreamFault.CONNECTION_REFUSED, false);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultThrownAfterStartingAsyncIsAnsweredAndTheAsyncCycleCompleted(Container container) throws Exception {
        assertGeneratedFault(port(container), "/gw/f/async-throw", UpstreamFault.CONNECTION_REFUSED, false);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultThrownByATaskTheAsyncContextRunsIsAnsweredAndTheAsyncCycleCompleted(Container container)
            throws Exception {
        double before = count(container, "502", "connection_refused");
        assertGeneratedFault(port(container), "/gw/f/async-task", UpstreamFault.CONNECTION_REFUSED, false);
        assertGeneratedFault(port(container), "/gw/f/async-task-wrapped", UpstreamFault.CONNECTION_REFUSED, false);
        assertThat(count(container, "502", "connection_refused")).isEqualTo(before + 8);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anAsyncTimeoutNobodyAnsweredIsAGatewayTimeoutNotTheContainers500(Container container) throws Exception {
        RawClient.Response json = assertGeneratedFault(port(container), "/gw/f/async-timeout",
                UpstreamFault.HTTP_RESPONSE_TIMEOUT, false);
        assertThat(json.bodyUtf8()).contains("\"upstream\":\"async-timeout\"", "\"attempts\":1");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultATaskThrowsAfterTheAsyncCycleEndedIsDroppedAndDoesNotFailTheNextRequest(Container container) throws Exception {
        lateTaskDone = new CountDownLatch(1);
        double before = count(container, "502", "connection_refused") + count(container, "aborted",
                "connection_refused");
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/f/async-task-after-timeout");
        assertThat(response.status()).isEqualTo(504);
        assertThat(response.complete()).isTrue();
        assertThat(lateTaskDone.await(30, TimeUnit.SECONDS)).isTrue();
        assertThat(count(container, "502", "connection_refused") + count(container, "aborted", "connection_refused"))
                .isEqualTo(before);
        // Nor does it fail the next request, which Tomcat may serve with the same request and response objects.
        RawClient.Response next = RawClient.request(port(container), "GET", "/gw/f/circuit-open");
        assertThat(next.status()).as("%s", next).isEqualTo(503);
        assertThat(next.header("Proxy-Status")).isEqualTo("upstream-guard; error=destination_unavailable");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anAsyncTimeoutTheApplicationAnsweredKeepsItsAnswer(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/f/async-timeout-handled");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.header("Proxy-Status")).isNull();
        assertThat(response.bodyUtf8()).isEqualTo("the application's fallback");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultAfterTheResponseWasCommittedAbortsTheConnectionAndIsStillCounted(Container container)
            throws Exception {
        assertAbortedAndCounted(container, "/gw/f/committed");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultAfterATaskTheAsyncContextRunsCommittedTheResponseAbortsTheConnectionAtOnce(Container container)
            throws Exception {
        long start = System.nanoTime();
        assertAbortedAndCounted(container, "/gw/f/async-task-committed");
        // Not the container's async timeout (30 s) ending it.
        assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(20));
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultRethrownOnAnAsyncDispatchAfterTheWorkerCommittedTheResponseAbortsTheConnection(Container container)
            throws Exception {
        assertAbortedAndCounted(container, "/gw/f/async-dispatch-committed");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anAsyncTimeoutNobodyAnsweredAfterTheResponseWasCommittedAbortsTheConnection(Container container)
            throws Exception {
        assertAbortedAndCounted(container, "/gw/f/async-timeout-committed", "http_response_timeout");
    }

    private void assertAbortedAndCounted(Container container, String path) throws IOException {
        assertAbortedAndCounted(container, path, "connection_refused");
    }

    private void assertAbortedAndCounted(Container container, String path, String fault) throws IOException {
        double before = count(container, "aborted", fault);
        RawClient.Response response = RawClient.request(port(container), "GET", path);
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.complete()).as("the client must see an incomplete response: %s", response.headers())
                .isFalse();
        assertThat(response.header("Proxy-Status")).isNull();
        Await.until("the abort is counted", Duration.ofSeconds(10),
                () -> count(container, "aborted", fault) == before + 1);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void whateverTheApplicationWroteBeforeTheFaultIsReplacedWhileNothingIsCommitted(Container container)
            throws Exception {
        RawClient.Response json = assertGeneratedFault(port(container), "/gw/f/partly-written",
                UpstreamFault.CONNECTION_REFUSED, false);
        assertThat(json.header("X-Partial")).isNull();
        assertThat(json.bodyUtf8()).doesNotContain("id,name");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aMalformedAcceptHeaderStillGetsTheFaultAnswerRatherThanAFailureOfTheFilter(Container container)
            throws Exception {
        for (String accept : new String[] {";", ";;;,,", "text/html;q=0.1, ;", "application/json;q=9, ;q=1"}) {
            RawClient.Response response = RawClient.request(port(container), "GET", "/gw/f/servlet-exception",
                    "Accept: " + accept);
            assertThat(response.status()).as("status for Accept: %s", accept).isEqualTo(502);
            assertThat(response.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_refused");
            assertThat(response.complete()).isTrue();
            assertThat(response.bodyUtf8()).contains("connection_refused");
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultInACauseChainWithACycleIsFoundAndAnswered(Container container) throws Exception {
        assertGeneratedFault(port(container), "/gw/f/cyclic-cause", UpstreamFault.CONNECTION_REFUSED, false);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void otherExceptionsAreLeftToTheContainer(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/f/not-ours");
        assertThat(response.status()).isEqualTo(500);
        assertThat(response.header("Proxy-Status")).isNull();
    }

    /**
     * Regression: a call the application made with a client of its own (not the guarded one) that failed escaped as
     * the client threw it, and the container answered 500 with no {@code Proxy-Status}.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theFailureOfACallTheApplicationMadeWithItsOwnClientIsAnsweredAsTheGatewayFaultItIs(Container container)
            throws Exception {
        assertGeneratedFault(port(container), "/gw/f/own-client-refused", UpstreamFault.CONNECTION_REFUSED, false);
        assertGeneratedFault(port(container), "/gw/f/own-client-unresolved", UpstreamFault.DNS_ERROR, false);
        assertGeneratedFault(port(container), "/gw/f/own-client-read-timeout", UpstreamFault.CONNECTION_READ_TIMEOUT,
                false);
        RawClient.Response json = RawClient.request(port(container), "GET", "/gw/f/own-client-refused",
                "Accept: application/json");
        assertThat(json.bodyUtf8()).contains("\"attempts\":1").contains("\"upstream\":\"own-client-refused\"");
    }

    /**
     * Regression: the JDK's own clients report a failure after connecting as plain {@code java.io}/{@code java.net}
     * exceptions (the {@code java.net.http} client's "header parser received no bytes", {@code HttpURLConnection}'s
     * "Connection reset"), which were not recognised: the container answered 500.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aConnectionTheUpstreamClosedOnTheJdksOwnClientsIsAnsweredAsTheGatewayFaultItIs(Container container)
            throws Exception {
        assertGeneratedFault(port(container), "/gw/f/own-client-closed", UpstreamFault.CONNECTION_TERMINATED, false);
        assertGeneratedFault(port(container), "/gw/f/own-url-connection-reset", UpstreamFault.CONNECTION_TERMINATED,
                false);
        RawClient.Response notHttpAnswer = RawClient.request(port(container), "GET", "/gw/f/own-client-not-http");
        assertThat(notHttpAnswer.status()).isEqualTo(502);
        assertThat(notHttpAnswer.header("Proxy-Status")).startsWith("upstream-guard; error=");

        // An upstream's 404, which HttpURLConnection throws as an IOException of its own, is no failed call.
        RawClient.Response notFoundAnswer = RawClient.request(port(container), "GET", "/gw/f/own-url-connection-404");
        assertThat(notFoundAnswer.status()).isEqualTo(500);
        assertThat(notFoundAnswer.header("Proxy-Status")).isNull();
    }

    /**
     * Regression: {@code tls_alert_received} named no alert, though RFC 9209 gives it {@code alert-id} and
     * {@code alert-message} parameters; the upstream's alert is in the JDK's exception.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aTlsAlertTheUpstreamSentIsNamedInProxyStatus(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/f/own-client-tls-alert",
                "Accept: application/json");
        assertThat(response.status()).isEqualTo(502);
        assertThat(response.header("Proxy-Status")).isEqualTo(
                "upstream-guard; error=tls_alert_received; alert-id=40; alert-message=\"handshake_failure\"");
        assertThat(response.bodyUtf8()).contains("\"fault\":\"tls_alert_received\"");
    }

    /** The container's own report of its client's failure (a read timeout inside it) is not an upstream's fault. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theContainersOwnClientFailureIsNotTakenForAnUpstreamFault(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/f/client-too-slow");
        assertThat(response.header("Proxy-Status")).isNull();
        assertThat(response.status()).isNotIn(502, 503, 504);
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anUpstreamNamedByItsAddressIsNotShownUnlessDetailsAreExposed(Container container) throws Exception {
        RawClient.Response hidden = RawClient.request(port(container), "GET", "/gw/f/unnamed-upstream",
                "Accept: application/json");
        assertThat(hidden.status()).isEqualTo(502);
        assertThat(hidden.bodyUtf8()).doesNotContain("upstream\":", "10.1.2.3");
        assertThat(hidden.header("Proxy-Status")).isEqualTo("upstream-guard; error=connection_refused");

        RawClient.Response exposed = RawClient.request(port(container), "GET", "/gw/exposed/unnamed-upstream",
                "Accept: application/json");
        assertThat(exposed.status()).isEqualTo(502);
        assertThat(exposed.bodyUtf8()).contains("\"upstream\":\"http://10.1.2.3:8080\"");
        assertThat(exposed.header("Proxy-Status")).isEqualTo("\"edge 1\"; error=connection_refused; "
                + "next-hop=\"10.1.2.3:8080\"; details=\"Upstream 'http://10.1.2.3:8080' failed: connection_refused "
                + "after 3 attempts (http://10.1.2.3:8080 refused)\"");
    }

    /**
     * Regression: a fault the filter answers for a call it knows no upstream of (the application's own client, an
     * async timeout) had {@code next-hop} name the servlet, which is no hop at all (RFC 9209 §2.1.2: the name,
     * address or alias of the next hop); it now has none, while a guarded client's upstream is still named.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void exposedDetailsNameNoNextHopForACallWhoseUpstreamIsUnknown(Container container) throws Exception {
        for (String path : new String[] {"/gw/exposed/own-client-refused", "/gw/exposed/async-timeout"}) {
            RawClient.Response answer = RawClient.request(port(container), "GET", path, "Accept: application/json");
            assertThat(answer.status()).as("%s %s", path, answer).isBetween(502, 504);
            assertThat(answer.header("Proxy-Status")).as(path).startsWith("\"edge 1\"; error=").contains("; details=")
                    .doesNotContain("next-hop");
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFilterConfiguredByInitParamsUsesItsProxyNameAndDetails(Container container) throws Exception {
        RawClient.Response response = RawClient.request(port(container), "GET", "/gw/exposed/async-dispatch",
                "Accept: text/plain");
        assertThat(response.status()).isEqualTo(502);
        assertThat(response.header("Proxy-Status"))
                .isEqualTo("\"edge 1\"; error=connection_refused; next-hop=inventory; details=\"Upstream "
                        + "'inventory' failed: connection_refused after 3 attempts (http://10.1.2.3:8080 refused)\"");
        assertThat(response.bodyUtf8()).startsWith("502 Bad Gateway\n").contains("10.1.2.3");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultTheContainerCarriesToTheErrorPageIsAnsweredInsteadOfThePage(Container container) throws Exception {
        RawClient.Response json = assertGeneratedFault(port(container), "/gw/unfiltered/servlet-exception",
                UpstreamFault.CONNECTION_REFUSED, false);
        assertThat(json.bodyUtf8()).contains("\"instance\":\"/gw/unfiltered/servlet-exception\"");
        RawClient.Response other = RawClient.request(port(container), "GET", "/gw/unfiltered/not-ours");
        assertThat(other.status()).isEqualTo(500);
        assertThat(other.bodyUtf8()).isEqualTo("the application's error page");
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultTheProxyServletAnsweredIsNeitherAnsweredNorCountedAgainByTheFilter(Container container)
            throws Exception {
        double refusedBefore = count(container, "502", "connection_refused");
        RawClient.Response refused = RawClient.request(port(container), "GET", "/gw/f/proxy-refused/x",
                "Accept: application/json");
        assertThat(refused.status()).isEqualTo(502);
        assertThat(refused.bodyUtf8()).contains("\"upstream\":\"proxy-refused\"");
        assertThat(count(container, "502", "connection_refused")).isEqualTo(refusedBefore + 1);

        // A short body of known length is still in the container's buffer when it breaks: nothing is committed yet,
        // so the servlet answers a clean 502 instead of aborting a 200.
        double incompleteBefore = count(container, "502", "http_response_incomplete");
        RawClient.Response cut = RawClient.request(port(container), "GET", "/gw/f/proxy-truncated/x");
        assertThat(cut.status()).isEqualTo(502);
        assertThat(cut.complete()).isTrue();
        assertThat(count(container, "502", "http_response_incomplete")).isEqualTo(incompleteBefore + 1);

        double abortedBefore = count(container, "aborted", "http_response_incomplete");
        RawClient.Response chunked = RawClient.request(port(container), "GET", "/gw/f/proxy-truncated-chunks/x");
        assertThat(chunked.status()).isEqualTo(200);
        assertThat(chunked.complete()).isFalse();
        Await.until("the abort is counted", Duration.ofSeconds(10),
                () -> count(container, "aborted", "http_response_incomplete") >= abortedBefore + 1);
        assertThat(count(container, "aborted", "http_response_incomplete")).isEqualTo(abortedBefore + 1);
    }

    /** Like Spring's ContentCachingResponseWrapper: sendError on a committed response quietly sets the status. */
    static final class SwallowingResponse extends HttpServletResponseWrapper {
        SwallowingResponse(HttpServletResponse response) {
            super(response);
        }

        @Override
        public void sendError(int sc, String msg) {
            try {
                super.sendError(sc, msg);
            } catch (IllegalStateException | IOException tooLate) {
                super.setStatus(sc);
            }
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aResponseWrapperThatSwallowsSendErrorCannotPreventTheAbort(Container container) throws Exception {
        RawClient.Response cut = RawClient.request(port(container), "GET", "/gw/wrapped/proxy-truncated/x");
        assertThat(cut.status()).isEqualTo(200);
        assertThat(cut.header("Transfer-Encoding")).isEqualTo("chunked");
        assertThat(cut.complete()).as("the client must see an incomplete response").isFalse();
    }

    private double count(Container container, String status, String fault) {
        Counter counter = registries.get(container).find("upstream.guard.responses").tag("status", status)
                .tag("fault", fault).counter();
        return counter == null ? 0 : counter.count();
    }

    private int port(Container container) {
        return containers.get(container).port();
    }
}
