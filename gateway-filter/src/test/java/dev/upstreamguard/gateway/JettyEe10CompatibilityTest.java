package dev.upstreamguard.gateway;

import static dev.upstreamguard.gateway.FaultAssertions.assertGeneratedFault;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Await;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import java.util.ArrayList;
import java.util.List;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The proxy servlet in Jetty 12's ee10 environment, Servlet 6.0, which Spring Boot 3 applications run on: the
 * gateway must use no Servlet 6.1 API, and ee10's own request and response streams must behave as ee11's do. A
 * smoke test of the main paths; the full matrices run in Tomcat 11 and Jetty ee11 ({@link Container}).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class JettyEe10CompatibilityTest {

    private final List<RawUpstream> upstreams = new ArrayList<>();
    private final List<UpstreamProxyServlet> servlets = new ArrayList<>();
    private Server server;
    private int port;

    @BeforeAll
    void start() throws Exception {
        server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        server.addConnector(connector);
        ServletContextHandler context = new ServletContextHandler(Container.CONTEXT_PATH);
        route(context, "ok", raw(Behaviours.ok("fine")));
        route(context, "refused", ClosedPort.find().baseUrl());
        route(context, "truncated", raw(c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n");
                c.write(new byte[256 * 1024]);
                c.close();
            }
        }));
        route(context, "echo", raw(Behaviours.echo()));
        route(context, "large-trailers", raw(Behaviours.respond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5\r\nhello\r\n0\r\n" + ("X-T: " + "v".repeat(100) + "\r\n").repeat(95) + "\r\n")));
        route(context, "large-hints", raw(Behaviours.respond("HTTP/1.1 103 Early Hints\r\n"
                + ("Link: </" + "a".repeat(980) + ".css>; rel=preload\r\n").repeat(20) + "\r\n"
                + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")));
        server.setHandler(context);
        server.start();
        port = connector.getLocalPort();
    }

    private void route(ServletContextHandler context, String name, String upstream) {
        UpstreamProxyServlet servlet = UpstreamProxyServlet.builder(upstream).meterRegistry(null)
                .set("retry.initial-backoff", "1ms").set("retry.max-backoff", "2ms").build();
        servlets.add(servlet);
        ServletHolder holder = new ServletHolder(name, servlet);
        holder.setAsyncSupported(true);
        holder.setInitOrder(1);
        context.addServlet(holder, "/" + name + "/*");
    }

    private String raw(RawUpstream.Behaviour behaviour) throws Exception {
        RawUpstream upstream = RawUpstream.start(behaviour);
        upstreams.add(upstream);
        return upstream.baseUrl();
    }

    @AfterAll
    void stop() throws Exception {
        server.stop();
        upstreams.forEach(RawUpstream::close);
    }

    @Test
    void aResponsePassesThrough() throws Exception {
        RawClient.Response response = RawClient.request(port, "GET", "/gw/ok/items");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.bodyUtf8()).isEqualTo("fine");
        assertThat(response.header("Via")).contains("upstream-guard");
    }

    /**
     * The container's limits are found in ee10 as in ee11: a trailer section over Jetty's 8 KiB is dropped rather than
     * cutting the body off, and hints over its head limit are not relayed rather than failing the answer.
     */
    @Test
    void whatJettyCannotWriteOfTrailersAndHintsIsDroppedAndTheAnswerPassesWhole() throws Exception {
        RawClient.Response trailers = RawClient.request(port, "GET", "/gw/large-trailers/x");
        assertThat(trailers.status()).isEqualTo(200);
        assertThat(trailers.complete()).as("%s", trailers).isTrue();
        assertThat(trailers.bodyUtf8()).isEqualTo("hello");
        RawClient.Response hinted = RawClient.request(port, "GET", "/gw/large-hints/x");
        assertThat(hinted.status()).as("%s", hinted).isEqualTo(200);
        assertThat(hinted.bodyUtf8()).isEqualTo("final");
    }

    @Test
    void aFaultIsAnsweredWithItsStatusProxyStatusAndBody() throws Exception {
        assertGeneratedFault(port, "/gw/refused/items", UpstreamFault.CONNECTION_REFUSED, false);
    }

    @Test
    void aBodyCutOffAfterTheResponseWasCommittedNeverEndsCleanly() throws Exception {
        RawClient.Response response = RawClient.request(port, "GET", "/gw/truncated/big");
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.complete()).as("the client must see an incomplete response").isFalse();
        assertThat(response.body().length).isLessThan(1024 * 1024);
    }

    @Test
    void aRequestBodyIsStreamedToTheUpstream() throws Exception {
        byte[] body = new byte[3 * 1024 * 1024];
        for (int i = 0; i < body.length; i++) {
            body[i] = (byte) i;
        }
        RawClient.Response response = RawClient.send(port, RawClient.head(port, "POST", "/gw/echo/upload",
                "Content-Type: application/octet-stream", "Content-Length: " + body.length), body);
        assertThat(response.status()).isEqualTo(200);
        assertThat(response.body()).isEqualTo(body);
        for (UpstreamProxyServlet servlet : servlets) {
            Await.until("no connection is leased", java.time.Duration.ofSeconds(15),
                    () -> servlet.client().poolStats().getLeased() == 0);
        }
    }
}
