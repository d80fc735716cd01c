package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import jakarta.servlet.ServletException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import org.apache.hc.client5.http.DnsResolver;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.HttpResponse;
import org.apache.hc.core5.http.io.HttpClientResponseHandler;
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

    /**
     * Regression: a client shared with the application's own calls (Spring's) keeps HttpClient's {@code User-Agent} for
     * them, and added it to a forwarded request whose client sent none.
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void aSharedClientsDefaultUserAgentIsNeverAddedToAForwardedRequest(Container container) throws Exception {
        try (RawUpstream inventory = RawUpstream.start(Behaviours.ok("items"));
                GuardedHttpClient shared = GuardedHttpClients.custom().upstream("inventory", inventory.baseUrl())
                        .contentCompression(false).redirects(false).build();
                Container.Running running = container.start(new Container.Deployment().servlet("a",
                        UpstreamProxyServlet.builder(inventory.baseUrl()).client(shared, "inventory").build(),
                        "/inventory/*"))) {
            assertThat(RawClient.request(running.port(), "GET", "/gw/inventory/anonymous").status()).isEqualTo(200);
            assertThat(RawClient.request(running.port(), "GET", "/gw/inventory/browser", "User-Agent: curl/8.5.0")
                    .status()).isEqualTo(200);
            HttpClientResponseHandler<Integer> status = HttpResponse::getCode;
            assertThat(shared.execute(new HttpGet(inventory.baseUrl() + "/own"), status)).isEqualTo(200);
            assertThat(inventory.requests().get(0).headers()).doesNotContainKey("user-agent");
            assertThat(inventory.requests().get(1).headers().get("user-agent")).containsExactly("curl/8.5.0");
            assertThat(inventory.requests().get(2).header("User-Agent")).as("the application's own call")
                    .startsWith("Apache-HttpClient/");
        }
    }

    /**
     * Regression: an upstream host name with an underscore (a Docker Compose service such as {@code order_service}),
     * which HttpClient calls, failed the servlet's init with "upstream must name a host".
     */
    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void anUpstreamWhoseHostNameHasAnUnderscoreIsProxied(Container container) throws Exception {
        try (RawUpstream orders = RawUpstream.start(Behaviours.ok("orders"))) {
            String base = "http://order_service:" + orders.port();
            DnsResolver toLoopback = new DnsResolver() {
                @Override
                public InetAddress[] resolve(String host) throws UnknownHostException {
                    return new InetAddress[] {InetAddress.getLoopbackAddress()};
                }

                @Override
                public String resolveCanonicalHostname(String host) {
                    return host;
                }
            };
            try (GuardedHttpClient shared = GuardedHttpClients.custom().upstream("orders", base)
                    .connectionManager(GuardedHttpClients.connectionManagerBuilder().setDnsResolver(toLoopback).build())
                    .contentCompression(false).redirects(false).build();
                    Container.Running running = container.start(new Container.Deployment().servlet("orders",
                            UpstreamProxyServlet.builder(base + "/v1").client(shared, "orders").build(),
                            "/orders/*"))) {
                RawClient.Response response = RawClient.request(running.port(), "GET", "/gw/orders/42");
                assertThat(response.status()).as("%s", response).isEqualTo(200);
                assertThat(response.bodyUtf8()).isEqualTo("orders");
                assertThat(orders.requests().get(0).target()).isEqualTo("/v1/42");
                assertThat(orders.requests().get(0).header("Host")).isEqualTo("order_service:" + orders.port());
            }
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
