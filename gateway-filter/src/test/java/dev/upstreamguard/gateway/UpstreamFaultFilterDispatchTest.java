package dev.upstreamguard.gateway;

import static dev.upstreamguard.gateway.FaultAssertions.assertGeneratedFault;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.WriteListener;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.ConnectException;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link UpstreamFaultFilter} mapped for every dispatcher type, with faults thrown inside forwarded and included
 * servlets and thrown as no servlet may declare, in each container.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class UpstreamFaultFilterDispatchTest {

    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);

    static UpstreamException refused() {
        return new UpstreamException(UpstreamFault.CONNECTION_REFUSED, "inventory", 3, null, 0, "refused",
                new ConnectException("Connection refused"));
    }

    /** Throws {@code e} although it is checked and undeclared, as Kotlin code and Lombok's {@code @SneakyThrows} do. */
    @SuppressWarnings("unchecked")
    static <T extends Exception> void throwUndeclared(Exception e) throws T {
        throw (T) e;
    }

    /** A servlet doing {@code what}. */
    @FunctionalInterface
    interface Action {
        void run(HttpServletRequest req, HttpServletResponse resp) throws ServletException, IOException;
    }

    static HttpServlet servlet(Action what) {
        return new HttpServlet() {
            private static final long serialVersionUID = 1L;

            @Override
            protected void service(HttpServletRequest req, HttpServletResponse resp)
                    throws ServletException, IOException {
                what.run(req, resp);
            }
        };
    }

    /** A non-blocking writer whose upstream fails before it writes anything. */
    static void failWhenWritable(ServletOutputStream out) {
        out.setWriteListener(new WriteListener() {
            @Override
            public void onWritePossible() throws IOException {
                throw refused();
            }

            @Override
            public void onError(Throwable thrown) {
                // The application has nothing to add.
            }
        });
    }

    @BeforeAll
    void start() {
        for (Container container : Container.values()) {
            Container.Deployment d = new Container.Deployment();
            d.filter("guard", UpstreamFaultFilter.builder().build(), "/*", Map.of(), EnumSet.allOf(DispatcherType.class));
            d.servlet("failing", servlet((req, resp) -> {
                throw new ServletException(refused());
            }), "/failing");
            d.servlet("including", servlet((req, resp) -> {
                resp.getWriter().write("the including page;");
                req.getRequestDispatcher("/failing").include(req, resp);
                resp.getWriter().write("after the include");
            }), "/including");
            d.servlet("forwarding", servlet((req, resp) -> req.getRequestDispatcher("/failing").forward(req, resp)),
                    "/forwarding");
            d.servlet("undeclared", servlet((req, resp) -> throwUndeclared(new ExecutionException(refused()))),
                    "/undeclared");
            d.servlet("write-listener", servlet((req, resp) -> {
                req.startAsync();
                failWhenWritable(resp.getOutputStream());
            }), "/write-listener");
            d.servlet("write-listener-context", servlet((req, resp) ->
                    failWhenWritable(req.startAsync().getResponse().getOutputStream())), "/write-listener-context");
            containers.put(container, container.start(d));
        }
    }

    @AfterAll
    void stop() {
        containers.values().forEach(Container.Running::close);
    }

    private int port(Container container) {
        return containers.get(container).port();
    }

    /**
     * Regression: mapped for INCLUDE too, the filter answered inside the include, where status and headers cannot be
     * set: the client got a 200 with the problem in the middle of the including page.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultInAnIncludedServletIsAnsweredAsTheWholeResponse(Container container) throws Exception {
        RawClient.Response json = assertGeneratedFault(port(container), "/gw/including",
                UpstreamFault.CONNECTION_REFUSED, false);
        assertThat(json.bodyUtf8()).doesNotContain("the including page", "after the include")
                .contains("\"instance\":\"/gw/including\"");
        assertGeneratedFault(port(container), "/gw/forwarding", UpstreamFault.CONNECTION_REFUSED, false);
    }

    /**
     * Regression: a fault thrown by the application's non-blocking {@code WriteListener} reached no filter: Tomcat
     * closed the connection without an answer, Jetty ended the response as an empty 200.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultANonBlockingWriteListenerThrowsIsAnswered(Container container) throws Exception {
        assertGeneratedFault(port(container), "/gw/write-listener", UpstreamFault.CONNECTION_REFUSED, false);
        assertGeneratedFault(port(container), "/gw/write-listener-context", UpstreamFault.CONNECTION_REFUSED, false);
    }

    /** Regression: a checked exception thrown undeclared passed the filter and Jetty answered 500. */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aFaultInACheckedExceptionThrownUndeclaredIsAnswered(Container container) throws Exception {
        assertGeneratedFault(port(container), "/gw/undeclared", UpstreamFault.CONNECTION_REFUSED, false);
    }

    /**
     * Regression: a session id sent in the path ({@code ;jsessionid=}) was repeated in the problem's {@code instance}
     * (and the WARN log line), though the query is left out of both because it can hold secrets.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theProblemsInstanceLeavesOutTheSessionIdAndTheQuery(Container container) throws Exception {
        RawClient.Response json = RawClient.request(port(container), "GET",
                "/gw/failing;JSESSIONID=SECRET1;v=2?token=SECRET2", "Accept: application/json");
        assertThat(json.status()).isEqualTo(502);
        assertThat(json.bodyUtf8()).contains("\"instance\":\"/gw/failing;v=2\"").doesNotContain("SECRET");
    }
}
