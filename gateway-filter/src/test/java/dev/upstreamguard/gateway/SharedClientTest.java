package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import jakarta.servlet.ServletException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Proxy servlets sharing one guarded client (as a Spring application would), each under its named upstream. */
class SharedClientTest {

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void servletsSharingAClientUseItsNamedUpstreamsAndLeaveItOpen(Container container) throws Exception {
        try (RawUpstream inventory = RawUpstream.start(Behaviours.ok("items"));
                RawUpstream billing = RawUpstream.start(Behaviours.ok("invoices"));
                GuardedHttpClient shared = GuardedHttpClients.custom()
                        .upstream("inventory", inventory.baseUrl())
                        .upstream("billing", billing.baseUrl())
                        .contentCompression(false)
                        .redirects(false)
                        .build()) {
            Container.Deployment d = new Container.Deployment()
                    .servlet("a", UpstreamProxyServlet.builder(inventory.baseUrl() + "/v1").client(shared, "inventory")
                            .build(), "/inventory/*")
                    .servlet("b", UpstreamProxyServlet.builder(billing.baseUrl()).client(shared, "billing").build(),
                            "/billing/*");
            try (Container.Running running = container.start(d)) {
                assertThat(RawClient.request(running.port(), "GET", "/gw/inventory/items").bodyUtf8())
                        .isEqualTo("items");
                assertThat(RawClient.request(running.port(), "GET", "/gw/billing/invoices").bodyUtf8())
                        .isEqualTo("invoices");
                assertThat(inventory.requests().get(0).target()).isEqualTo("/v1/items");
                assertThat(shared.upstream("inventory").faultCounts()).isEmpty();
            }
            // The container destroyed the servlets; the shared client is still usable.
            assertThat(shared.poolStats().getLeased()).isZero();
            assertThat(shared.upstream("billing").circuitState()).isEqualTo("CLOSED");
        }
    }

    @Test
    void aSharedClientWithoutTheNamedUpstreamFailsInit() {
        try (GuardedHttpClient shared = GuardedHttpClients.custom().upstream("inventory", "http://127.0.0.1:9")
                .build()) {
            UpstreamProxyServlet servlet = UpstreamProxyServlet.builder("http://127.0.0.1:9")
                    .client(shared, "billing").build();
            assertThatThrownBy(() -> servlet.init(new jakarta.servlet.ServletConfig() {
                @Override
                public String getServletName() {
                    return "billing";
                }

                @Override
                public jakarta.servlet.ServletContext getServletContext() {
                    return null;
                }

                @Override
                public String getInitParameter(String name) {
                    return null;
                }

                @Override
                public java.util.Enumeration<String> getInitParameterNames() {
                    return java.util.Collections.emptyEnumeration();
                }
            })).isInstanceOf(ServletException.class).hasMessageContaining("billing");
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
