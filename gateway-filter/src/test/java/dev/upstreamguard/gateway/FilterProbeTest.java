package dev.upstreamguard.gateway;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.ConnectException;
import java.time.Duration;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class FilterProbeTest {
    private final Map<Container, Container.Running> containers = new EnumMap<>(Container.class);

    static UpstreamException refused(String message) {
        return new UpstreamException(UpstreamFault.CONNECTION_REFUSED, "inventory", 3, null, 0, message,
                new ConnectException("Connection refused"));
    }

    static <T extends Throwable> void sneaky(Throwable t) throws T {
        @SuppressWarnings("unchecked") T tt = (T) t;
        throw tt;
    }

    static final String NASTY = "caf\u00e9 \"q\" \\ \n\r\t\u0001 \u2028 <b>&amp; \ud83d\ude00 end";

    final class Probe extends HttpServlet {
        private static final long serialVersionUID = 1L;
        private final String mode;

        Probe(String mode) {
            this.mode = mode;
        }

        @Override
        protected void service(HttpServletRequest req, HttpServletResponse resp) throws ServletException, IOException {
            switch (mode) {
                case "plain": throw new ServletException(refused("plain"));
                case "send-error": resp.sendError(500); throw new ServletException(refused("after sendError"));
                case "send-error-msg": resp.sendError(404, "nope"); throw new ServletException(refused("x"));
                case "headers":
                    resp.addCookie(new jakarta.servlet.http.Cookie("sid", "1"));
                    resp.setHeader("Content-Encoding", "gzip");
                    resp.setHeader("ETag", "\"v1\"");
                    resp.setHeader("Last-Modified", "Mon, 07 Dec 2026 00:00:00 GMT");
                    resp.setHeader("Content-Disposition", "attachment");
                    resp.setHeader("Vary", "Accept-Encoding");
                    resp.setHeader("Proxy-Status", "inner-cache; received-status=200");
                    throw new ServletException(refused("x"));
                case "bad-proxy-status":
                    resp.setHeader("Proxy-Status", "\"unterminated");
                    throw new ServletException(refused("x"));
                case "writer-nasty":
                    resp.setContentType("text/csv");
                    resp.getWriter().write("a,b\n");
                    throw new ServletException(refused(NASTY));
                case "nasty": throw new ServletException(refused(NASTY));
                case "huge": throw new ServletException(refused("x".repeat(2_000_000)));
                case "forward": req.getRequestDispatcher("/f/plain").forward(req, resp); return;
                case "include":
                    resp.getWriter().write("before include;");
                    req.getRequestDispatcher("/inc/plain").include(req, resp);
                    resp.getWriter().write("after include");
                    return;
                case "sneaky": FilterProbeTest.<RuntimeException>sneaky(new ExecutionException(refused("x"))); return;
                case "zero-retry":
                    throw new ServletException(new UpstreamException(UpstreamFault.DESTINATION_UNAVAILABLE, "inv", 0,
                            Duration.ZERO, 0, "open", null));
                case "huge-retry":
                    throw new ServletException(new UpstreamException(UpstreamFault.DESTINATION_UNAVAILABLE, "inv", 0,
                            Duration.ofSeconds(Long.MAX_VALUE, 999_999_999), 0, "open", null));
                case "frac-retry":
                    throw new ServletException(new UpstreamException(UpstreamFault.DESTINATION_UNAVAILABLE, "inv", 0,
                            Duration.ofMillis(-1500), 0, "open", null));
                default: throw new AssertionError(mode);
            }
        }
    }

    @BeforeAll
    void start() {
        for (Container container : Container.values()) {
            Container.Deployment d = new Container.Deployment();
            d.filter("cors", (req, res, chain) -> {
                ((HttpServletResponse) res).setHeader("Access-Control-Allow-Origin", "*");
                ((HttpServletResponse) res).setHeader("Strict-Transport-Security", "max-age=1");
                chain.doFilter(req, res);
            }, "/*", Map.of(), EnumSet.of(DispatcherType.REQUEST));
            d.filter("guard", UpstreamFaultFilter.builder().build(), "/f/*");
            d.filter("guard-inc", UpstreamFaultFilter.builder().build(), "/inc/*", Map.of(),
                    EnumSet.of(DispatcherType.REQUEST, DispatcherType.INCLUDE, DispatcherType.FORWARD));
            d.filter("exposed", UpstreamFaultFilter.builder().proxyName("edge \"1\"").exposeDetails(true).build(),
                    "/x/*");
            for (String mode : new String[] {"plain", "send-error", "send-error-msg", "headers", "bad-proxy-status",
                "writer-nasty", "nasty", "huge", "forward", "include", "sneaky", "zero-retry", "huge-retry",
                "frac-retry"}) {
                d.servlet("f-" + mode, new Probe(mode), "/f/" + mode);
                d.servlet("x-" + mode, new Probe(mode), "/x/" + mode);
                d.servlet("inc-" + mode, new Probe(mode), "/inc/" + mode);
            }
            containers.put(container, container.start(d));
        }
    }

    @AfterAll
    void stop() {
        containers.values().forEach(Container.Running::close);
    }

    private void show(Container c, String method, String path, String... headers) throws IOException {
        RawClient.Response r;
        try {
            r = RawClient.request(containers.get(c).port(), method, path, headers);
        } catch (IOException e) {
            System.out.println("PROBE " + c + " " + method + " " + path + " => " + e);
            return;
        }
        String body = r.bodyUtf8();
        if (body.length() > 600) {
            body = body.substring(0, 600) + "...(" + r.body().length + " bytes)";
        }
        System.out.println("PROBE " + c + " " + method + " " + path + " " + String.join("|", headers) + "\n  => "
                + r.status() + " complete=" + r.complete() + " " + r.headers() + "\n  body=" + body);
    }

    @ParameterizedTest
    @EnumSource(value = Container.class, names = "JETTY")
    void probe(Container c) throws Exception {
        String[] json = {"Accept: application/json"};
        show(c, "GET", "/gw/f/plain", json);
        show(c, "GET", "/gw/f/send-error", json);
        show(c, "GET", "/gw/f/send-error-msg", json);
        show(c, "GET", "/gw/f/headers", json);
        show(c, "GET", "/gw/f/bad-proxy-status", json);
        show(c, "GET", "/gw/x/writer-nasty", json);
        show(c, "GET", "/gw/x/writer-nasty", "Accept: text/html");
        show(c, "GET", "/gw/x/nasty", json);
        show(c, "GET", "/gw/x/nasty", "Accept: text/plain");
        show(c, "GET", "/gw/x/huge", json);
        show(c, "GET", "/gw/f/forward", json);
        show(c, "GET", "/gw/f/include", json);
        show(c, "GET", "/gw/inc/include", json);
        show(c, "GET", "/gw/f/sneaky", json);
        show(c, "GET", "/gw/f/zero-retry", json);
        show(c, "GET", "/gw/f/huge-retry", json);
        show(c, "GET", "/gw/f/frac-retry", json);
        RawClient.Response r10 = RawClient.send(containers.get(c).port(),
                "GET /gw/f/plain HTTP/1.0\r\nAccept: application/json\r\n\r\n", null);
        System.out.println("PROBE " + c + " HTTP/1.0 => " + r10);
        show(c, "HEAD", "/gw/f/plain", json);
    }
}
