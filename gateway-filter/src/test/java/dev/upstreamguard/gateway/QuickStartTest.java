package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import jakarta.servlet.DispatcherType;
import jakarta.servlet.FilterRegistration;
import jakarta.servlet.ServletContainerInitializer;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletRegistration;
import java.util.EnumSet;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The README's plain-servlet quick start, registered through the ServletContext API, works in each container. */
class QuickStartTest {

    /** The README's registration code, with the upstreams of this test. */
    static final class GatewaySetup implements ServletContainerInitializer {
        private final String inventoryUri;
        private final String billingUri;
        final MeterRegistry registry = new SimpleMeterRegistry();

        GatewaySetup(String inventoryUri, String billingUri) {
            this.inventoryUri = inventoryUri;
            this.billingUri = billingUri;
        }

        @Override
        public void onStartup(Set<Class<?>> classes, ServletContext context) {
            FilterRegistration.Dynamic faults = context.addFilter("upstream-faults",
                    UpstreamFaultFilter.builder().proxyName("edge-1").meterRegistry(registry).build());
            faults.setAsyncSupported(true);
            faults.addMappingForUrlPatterns(
                    EnumSet.of(DispatcherType.REQUEST, DispatcherType.ASYNC, DispatcherType.ERROR), false, "/*");

            ServletRegistration.Dynamic inventory = context.addServlet("inventory",
                    UpstreamProxyServlet.builder(inventoryUri)
                            .proxyName("edge-1")
                            .set("response-timeout", "2s")
                            .set("circuit-breaker.open-for", "30s")
                            .maxBufferedRequestBody(64 * 1024)
                            .meterRegistry(registry)
                            .build());
            inventory.setAsyncSupported(true);
            inventory.setLoadOnStartup(1);
            inventory.addMapping("/api/inventory/*");

            ServletRegistration.Dynamic billing = context.addServlet("billing", UpstreamProxyServlet.builder(billingUri)
                    .proxyName("edge-1").set("retry.enabled", "false").meterRegistry(registry).build());
            billing.addMapping("/api/billing/*");
        }
    }

    /** The {@code web.xml} way in code: the container makes the servlet from its class, configured by init-params. */
    static final class ByClass implements ServletContainerInitializer {
        private final String inventoryUri;

        ByClass(String inventoryUri) {
            this.inventoryUri = inventoryUri;
        }

        @Override
        public void onStartup(Set<Class<?>> classes, ServletContext context) {
            ServletRegistration.Dynamic inventory = context.addServlet("inventory", UpstreamProxyServlet.class);
            inventory.setInitParameter("upstream", inventoryUri);
            inventory.setInitParameter("proxy-name", "edge-1");
            inventory.setInitParameter("response-timeout", "2s");
            inventory.setInitParameter("retry.max-attempts", "2");
            inventory.setAsyncSupported(true);
            inventory.setLoadOnStartup(1);
            inventory.addMapping("/api/inventory/*");
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aServletTheContainerMakesFromItsClassIsConfiguredByItsInitParams(Container container) throws Exception {
        try (RawUpstream inventory = RawUpstream.start(Behaviours.respond(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"),
                Behaviours.ok("items"))) {
            ByClass setup = new ByClass(inventory.baseUrl() + "/api");
            try (Container.Running running = container.start(new Container.Deployment().initializer(setup))) {
                RawClient.Response ok = RawClient.request(running.port(), "GET", "/gw/api/inventory/items/7");
                assertThat(ok.status()).isEqualTo(200);
                assertThat(ok.bodyUtf8()).isEqualTo("items");
                assertThat(ok.header("Via")).isEqualTo("1.1 edge-1");
                assertThat(inventory.requests()).hasSize(2);
                assertThat(inventory.requests().get(1).target()).isEqualTo("/api/items/7");
            }
        }
    }

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void theQuickStartProxiesAndAnswersFaults(Container container) throws Exception {
        try (RawUpstream inventory = RawUpstream.start(Behaviours.ok("items"))) {
            GatewaySetup setup = new GatewaySetup(inventory.baseUrl() + "/api", ClosedPort.find().baseUrl());
            try (Container.Running running = container.start(new Container.Deployment().initializer(setup))) {
                RawClient.Response ok = RawClient.request(running.port(), "GET", "/gw/api/inventory/items/7");
                assertThat(ok.status()).isEqualTo(200);
                assertThat(ok.bodyUtf8()).isEqualTo("items");
                assertThat(inventory.requests().get(0).target()).isEqualTo("/api/items/7");

                RawClient.Response fault = RawClient.request(running.port(), "GET", "/gw/api/billing/invoices",
                        "Accept: application/json");
                assertThat(fault.status()).isEqualTo(502);
                assertThat(fault.header("Proxy-Status")).isEqualTo("edge-1; error=connection_refused");
                assertThat(fault.bodyUtf8()).contains("\"upstream\":\"billing\"");
                assertThat(setup.registry.get("upstream.guard.responses").tag("status", "502")
                        .tag("fault", "connection_refused").counter().count()).isEqualTo(1);
            }
        }
    }
}
