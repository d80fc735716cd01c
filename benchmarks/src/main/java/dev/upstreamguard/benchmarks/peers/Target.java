package dev.upstreamguard.benchmarks.peers;

import jakarta.servlet.Servlet;
import java.io.File;
import java.nio.file.Files;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.catalina.Context;
import org.apache.catalina.Wrapper;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;
import org.eclipse.jetty.ee11.proxy.ProxyServlet;
import org.eclipse.jetty.ee11.servlet.ServletContextHandler;
import org.eclipse.jetty.ee11.servlet.ServletHolder;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.thread.QueuedThreadPool;

/**
 * One proxy under test, in its own JVM: {@code Target <kind> <portA> <portB> <portS>}. Three routes, each its own
 * servlet instance (own client and pool): {@code /a/*} and {@code /b/*} to the healthy upstream ports, {@code /s/*} to
 * the stalled one ({@code Target <kind> name=url ...} serves any routes instead, each under {@code /name/*}: the fault
 * matrix). Every route: at most {@value #POOL} pooled connections to its upstream, keep-alive, 1 s connect
 * timeout, {@value #RESPONSE_TIMEOUT_MS} ms response timeout, no redirects, no decompression.
 *
 * <p>Containers at their defaults (200 worker threads) except Tomcat's {@code maxKeepAliveRequests}, raised from 100
 * to unlimited so that both containers keep client connections open the same way.
 */
public final class Target {

    static final int POOL = 64;
    static final int RESPONSE_TIMEOUT_MS = 2000;
    static final String OURS = "dev.upstreamguard.gateway.UpstreamProxyServlet";

    private Target() {
    }

    public static void main(String[] args) throws Exception {
        ChildProcess.watch(Duration.ofHours(1), () -> { });
        String kind = args[0];
        Map<String, String> routes = new LinkedHashMap<>();
        if (args.length > 1 && args[1].contains("=")) {
            // Named routes (the fault matrix): {@code name=url} each, served under /name/*.
            for (int i = 1; i < args.length; i++) {
                int eq = args[i].indexOf('=');
                routes.put(args[i].substring(0, eq), args[i].substring(eq + 1));
            }
        } else {
            routes.put("a", "http://127.0.0.1:" + args[1]);
            routes.put("b", "http://127.0.0.1:" + args[2]);
            routes.put("s", "http://127.0.0.1:" + args[3]);
        }
        int port = switch (kind) {
            case "mitre-tomcat" -> tomcat(routes, Target::mitre);
            case "ours-tomcat" -> tomcat(routes, Target::ours);
            case "jetty-proxy" -> jetty(routes, Target::jettyProxy);
            case "ours-jetty" -> jetty(routes, Target::ours);
            case "async-probe-tomcat" -> tomcat(routes, Target::asyncProbe);
            case "async-probe-jetty" -> jetty(routes, Target::asyncProbe);
            default -> throw new IllegalArgumentException("unknown target " + kind);
        };
        ChildProcess.ready("port=" + port);
        Thread.currentThread().join();
    }

    /** A servlet plus its init-params for one route. */
    record Route(Servlet servlet, Map<String, String> params) {
    }

    interface RouteFactory {
        Route create(String prefix, String upstream) throws Exception;
    }

    static Route mitre(String prefix, String upstream) {
        Map<String, String> p = new LinkedHashMap<>();
        p.put("targetUri", upstream);
        p.put("log", "false");
        p.put("http.maxConnections", Integer.toString(POOL));
        p.put("http.socket.timeout", "1000"); // MITRE's name for the connect timeout
        p.put("http.read.timeout", Integer.toString(RESPONSE_TIMEOUT_MS));
        p.put("http.connectionrequest.timeout", "2000");
        p.put("http.protocol.handle-redirects", "false");
        p.put("handleCompression", "false");
        p.put("useSystemProperties", "false");
        return new Route(new org.mitre.dsmiley.httpproxy.ProxyServlet(), p);
    }

    static Route jettyProxy(String prefix, String upstream) {
        Map<String, String> p = new LinkedHashMap<>();
        p.put("proxyTo", upstream);
        p.put("prefix", prefix);
        p.put("maxConnections", Integer.toString(POOL));
        // Jetty's "timeout" bounds the whole exchange (a 1 GiB body would hit it): off, like our total-timeout for
        // the body. Its client idle timeout is the longest silence on the upstream connection: the response timeout.
        p.put("timeout", "0");
        p.put("idleTimeout", Integer.toString(RESPONSE_TIMEOUT_MS));
        return new Route(new OneSecondConnect(), p);
    }

    /**
     * Jetty's proxy with the same 1 s connect timeout as the other routes: it has no init-param for it, and its
     * client's default is 15 s.
     */
    static final class OneSecondConnect extends ProxyServlet.Transparent {
        private static final long serialVersionUID = 1L;

        @Override
        protected org.eclipse.jetty.client.HttpClient createHttpClient() throws jakarta.servlet.ServletException {
            org.eclipse.jetty.client.HttpClient client = super.createHttpClient();
            client.setConnectTimeout(1000);
            return client;
        }
    }

    static Route ours(String prefix, String upstream) throws Exception {
        Map<String, String> p = new LinkedHashMap<>();
        p.put("upstream", upstream);
        p.put("max-connections", Integer.toString(POOL));
        p.put("connect-timeout", "1s");
        p.put("response-timeout", RESPONSE_TIMEOUT_MS + "ms");
        // The same forwarding headers Jetty's proxy adds (Forwarded and Via), so both ask the same work of the upstream.
        p.put("forwarded-headers", "forwarded");
        Servlet servlet = (Servlet) Class.forName(OURS).getDeclaredConstructor().newInstance();
        return new Route(servlet, p);
    }

    static Route asyncProbe(String prefix, String upstream) {
        Map<String, String> p = new LinkedHashMap<>();
        p.put("upstream", upstream);
        p.put("max-connections", Integer.toString(POOL));
        return new Route(new AsyncProbeServlet(), p);
    }

    static int tomcat(Map<String, String> routes, RouteFactory factory) throws Exception {
        File base = Files.createTempDirectory("bench-tomcat").toFile();
        base.deleteOnExit();
        Tomcat tomcat = new Tomcat();
        tomcat.setBaseDir(base.getAbsolutePath());
        Connector connector = new Connector("HTTP/1.1");
        connector.setPort(0);
        connector.setProperty("address", "127.0.0.1");
        connector.setProperty("maxKeepAliveRequests", "-1");
        connector.setProperty("acceptCount", "1024");
        // Tomcat writes to the socket in chunks of this buffer (default 8 KiB); left at its default for the comparison,
        // settable to measure its effect on large bodies.
        String writeBuffer = System.getProperty("bench.tomcat.appWriteBufSize");
        if (writeBuffer != null) {
            connector.setProperty("socket.appWriteBufSize", writeBuffer);
        }
        tomcat.getService().addConnector(connector);
        tomcat.setConnector(connector);
        Context context = tomcat.addContext("", base.getAbsolutePath());
        for (Map.Entry<String, String> route : routes.entrySet()) {
            String prefix = "/" + route.getKey();
            Route r = factory.create(prefix, route.getValue());
            Wrapper wrapper = Tomcat.addServlet(context, route.getKey(), r.servlet());
            r.params().forEach(wrapper::addInitParameter);
            wrapper.setAsyncSupported(true);
            wrapper.setLoadOnStartup(1);
            context.addServletMapping(prefix + "/*", route.getKey());
        }
        tomcat.start();
        return connector.getLocalPort();
    }

    static int jetty(Map<String, String> routes, RouteFactory factory) throws Exception {
        QueuedThreadPool pool = new QueuedThreadPool(200, 8);
        pool.setName("target");
        Server server = new Server(pool);
        HttpConfiguration config = new HttpConfiguration();
        config.setSendServerVersion(false);
        ServerConnector connector = new ServerConnector(server, new HttpConnectionFactory(config));
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        connector.setAcceptQueueSize(1024);
        server.addConnector(connector);
        ServletContextHandler context = new ServletContextHandler("/");
        for (Map.Entry<String, String> route : routes.entrySet()) {
            String prefix = "/" + route.getKey();
            Route r = factory.create(prefix, route.getValue());
            ServletHolder holder = new ServletHolder(route.getKey(), r.servlet());
            holder.setInitParameters(r.params());
            holder.setAsyncSupported(true);
            holder.setInitOrder(1);
            context.addServlet(holder, prefix + "/*");
        }
        server.setHandler(context);
        server.start();
        return connector.getLocalPort();
    }
}
