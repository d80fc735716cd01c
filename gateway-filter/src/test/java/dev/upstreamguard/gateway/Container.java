package dev.upstreamguard.gateway;

import jakarta.servlet.DispatcherType;
import jakarta.servlet.Filter;
import jakarta.servlet.Servlet;
import jakarta.servlet.ServletContainerInitializer;
import java.io.File;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.catalina.Context;
import org.apache.catalina.Wrapper;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;
import org.apache.tomcat.util.descriptor.web.ErrorPage;
import org.apache.tomcat.util.descriptor.web.FilterDef;
import org.apache.tomcat.util.descriptor.web.FilterMap;
import org.eclipse.jetty.ee11.servlet.ErrorPageErrorHandler;
import org.eclipse.jetty.ee11.servlet.FilterHolder;
import org.eclipse.jetty.ee11.servlet.ServletContextHandler;
import org.eclipse.jetty.ee11.servlet.ServletHolder;
import org.eclipse.jetty.http.UriCompliance;
import org.eclipse.jetty.server.HttpConfiguration;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

/**
 * The servlet containers every gateway test runs in: embedded Tomcat 11 and Jetty 12 (ee11), each on 127.0.0.1 with
 * an ephemeral port and the context path {@value #CONTEXT_PATH}.
 */
enum Container {
    TOMCAT, JETTY;

    static final String CONTEXT_PATH = "/gw";

    /** What to deploy: servlets and filters (instances), their mappings and init-params. */
    static final class Deployment {
        final List<Object[]> servlets = new ArrayList<>();
        final List<Object[]> filters = new ArrayList<>();
        String errorPage;
        boolean permissive;
        boolean http2;
        Duration idleTimeout;
        String address = "127.0.0.1";
        String contextPath = CONTEXT_PATH;
        boolean virtualThreads = Boolean.getBoolean("upstreamguard.test.virtualThreads");

        /**
         * Serves requests on virtual threads (Java 21+): Tomcat's {@code useVirtualThreads}, Jetty's
         * {@code VirtualThreadPool}. Every deployment does when the system property
         * {@code upstreamguard.test.virtualThreads} is true, to run the whole suite that way.
         */
        Deployment virtualThreads() {
            this.virtualThreads = true;
            return this;
        }

        /** Deploys at the root context ({@code ""}) instead of {@value #CONTEXT_PATH}, as Spring Boot applications do. */
        Deployment atRoot() {
            this.contextPath = "";
            return this;
        }

        /** The loopback address to listen on: {@code 127.0.0.1} (the default) or {@code ::1}. */
        Deployment address(String loopback) {
            this.address = loopback;
            return this;
        }

        /**
         * How long the container waits for a silent client, also in the middle of a request body (Tomcat's
         * {@code connectionTimeout}, Jetty's connector idle timeout); the container's default when not set.
         */
        Deployment idleTimeout(Duration timeout) {
            this.idleTimeout = timeout;
            return this;
        }

        /** Clients may speak HTTP/2 in clear text ({@code h2c}): by upgrade or with prior knowledge. */
        Deployment http2() {
            this.http2 = true;
            return this;
        }

        /**
         * Lets suspicious request paths through to the servlets instead of rejecting them (encoded and reverse
         * solidus passed through, ambiguous URIs decoded), as some deployments do.
         */
        Deployment permissive() {
            this.permissive = true;
            return this;
        }
        final List<ServletContainerInitializer> initializers = new ArrayList<>();

        /** Registers servlets and filters through the {@code ServletContext} API at startup, as an application would. */
        Deployment initializer(ServletContainerInitializer initializer) {
            initializers.add(initializer);
            return this;
        }

        /** Uncaught exceptions are dispatched (ERROR) to {@code location}. */
        Deployment errorPage(String location) {
            this.errorPage = location;
            return this;
        }

        Deployment servlet(String name, Servlet servlet, String mapping) {
            return servlet(name, servlet, mapping, Map.of());
        }

        Deployment servlet(String name, Servlet servlet, String mapping, Map<String, String> initParams) {
            servlets.add(new Object[] {name, servlet, mapping, new LinkedHashMap<>(initParams)});
            return this;
        }

        /** A filter on {@code mapping} for the given dispatcher types. */
        Deployment filter(String name, Filter filter, String mapping, Map<String, String> initParams,
                EnumSet<DispatcherType> dispatch) {
            filters.add(new Object[] {name, filter, mapping, new LinkedHashMap<>(initParams), dispatch});
            return this;
        }

        /** A filter on {@code mapping} for REQUEST, ASYNC and ERROR dispatches, as the filter's Javadoc asks. */
        Deployment filter(String name, Filter filter, String mapping) {
            return filter(name, filter, mapping, Map.of(),
                    EnumSet.of(DispatcherType.REQUEST, DispatcherType.ASYNC, DispatcherType.ERROR));
        }
    }

    /** A started container; close it to stop. */
    interface Running extends AutoCloseable {
        int port();

        Container kind();

        @Override
        void close();
    }

    Running start(Deployment deployment) {
        try {
            return this == TOMCAT ? startTomcat(deployment) : startJetty(deployment);
        } catch (Exception e) {
            throw new IllegalStateException("Could not start " + this, e);
        }
    }

    // Tomcat 11 deprecates every Context.addServletMapping* variant for removal in 12, offering no replacement for
    // embedded use yet; the decoded variant is what Tomcat.addServlet users are pointed to.
    @SuppressWarnings({"unchecked", "deprecation"})
    private Running startTomcat(Deployment d) throws Exception {
        Tomcat tomcat = new Tomcat();
        File base = Files.createTempDirectory("tomcat").toFile();
        base.deleteOnExit();
        tomcat.setBaseDir(base.getAbsolutePath());
        Connector connector = new Connector();
        connector.setPort(0);
        connector.setProperty("address", d.address);
        if (d.permissive) {
            connector.setEncodedSolidusHandling("passthrough");
            connector.setEncodedReverseSolidusHandling("passthrough");
            connector.setAllowBackslash(true);
        }
        if (d.virtualThreads) {
            connector.setProperty("useVirtualThreads", "true");
        }
        if (d.idleTimeout != null) {
            connector.setProperty("connectionTimeout", Long.toString(d.idleTimeout.toMillis()));
        }
        if (d.http2) {
            connector.addUpgradeProtocol(new org.apache.coyote.http2.Http2Protocol());
        }
        tomcat.setConnector(connector);
        Context context = tomcat.addContext(d.contextPath, base.getAbsolutePath());
        for (Object[] s : d.servlets) {
            Wrapper wrapper = Tomcat.addServlet(context, (String) s[0], (Servlet) s[1]);
            wrapper.setAsyncSupported(true);
            wrapper.setLoadOnStartup(1);
            ((Map<String, String>) s[3]).forEach(wrapper::addInitParameter);
            context.addServletMappingDecoded((String) s[2], (String) s[0]);
        }
        for (Object[] f : d.filters) {
            FilterDef def = new FilterDef();
            def.setFilterName((String) f[0]);
            def.setFilter((Filter) f[1]);
            def.setAsyncSupported("true");
            ((Map<String, String>) f[3]).forEach(def::addInitParameter);
            context.addFilterDef(def);
            FilterMap map = new FilterMap();
            map.setFilterName((String) f[0]);
            map.addURLPattern((String) f[2]);
            for (DispatcherType type : (EnumSet<DispatcherType>) f[4]) {
                map.setDispatcher(type.name());
            }
            context.addFilterMap(map);
        }
        for (ServletContainerInitializer sci : d.initializers) {
            context.addServletContainerInitializer(sci, null);
        }
        if (d.errorPage != null) {
            ErrorPage page = new ErrorPage();
            page.setExceptionType(Throwable.class.getName());
            page.setLocation(d.errorPage);
            context.addErrorPage(page);
        }
        tomcat.start();
        int port = connector.getLocalPort();
        return new Running() {
            @Override
            public int port() {
                return port;
            }

            @Override
            public Container kind() {
                return TOMCAT;
            }

            @Override
            public void close() {
                try {
                    tomcat.stop();
                    tomcat.destroy();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        };
    }

    @SuppressWarnings("unchecked")
    private Running startJetty(Deployment d) throws Exception {
        Server server = d.virtualThreads ? new Server(new org.eclipse.jetty.util.thread.VirtualThreadPool()) : new Server();
        HttpConfiguration http = new HttpConfiguration();
        if (d.permissive) {
            http.setUriCompliance(UriCompliance.UNSAFE);
        }
        // With h2c next to HTTP/1.1, Jetty takes both the Upgrade: h2c request and the prior-knowledge preface, as
        // Tomcat's upgrade protocol does.
        ServerConnector connector = d.http2
                ? new ServerConnector(server, new HttpConnectionFactory(http),
                        new org.eclipse.jetty.http2.server.HTTP2CServerConnectionFactory(http))
                : new ServerConnector(server, new HttpConnectionFactory(http));
        connector.setHost(d.address);
        connector.setPort(0);
        if (d.idleTimeout != null) {
            connector.setIdleTimeout(d.idleTimeout.toMillis());
        }
        server.addConnector(connector);
        ServletContextHandler context = new ServletContextHandler(d.contextPath.isEmpty() ? "/" : d.contextPath);
        if (d.permissive) {
            context.getServletHandler().setDecodeAmbiguousURIs(true);
        }
        for (Object[] s : d.servlets) {
            ServletHolder holder = new ServletHolder((String) s[0], (Servlet) s[1]);
            holder.setAsyncSupported(true);
            holder.setInitOrder(1);
            holder.setInitParameters((Map<String, String>) s[3]);
            context.addServlet(holder, (String) s[2]);
        }
        for (Object[] f : d.filters) {
            FilterHolder holder = new FilterHolder((Filter) f[1]);
            holder.setName((String) f[0]);
            holder.setAsyncSupported(true);
            holder.setInitParameters((Map<String, String>) f[3]);
            context.addFilter(holder, (String) f[2], (EnumSet<DispatcherType>) f[4]);
        }
        for (ServletContainerInitializer sci : d.initializers) {
            context.addServletContainerInitializer(sci);
        }
        if (d.errorPage != null) {
            ErrorPageErrorHandler errors = new ErrorPageErrorHandler();
            errors.addErrorPage(Throwable.class, d.errorPage);
            context.setErrorHandler(errors);
        }
        server.setHandler(context);
        server.start();
        int port = connector.getLocalPort();
        return new Running() {
            @Override
            public int port() {
                return port;
            }

            @Override
            public Container kind() {
                return JETTY;
            }

            @Override
            public void close() {
                try {
                    server.stop();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        };
    }
}
