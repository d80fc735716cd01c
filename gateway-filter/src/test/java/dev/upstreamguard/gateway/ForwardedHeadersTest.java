package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** {@code forwarded-headers} chooses the forwarding headers; client-supplied ones of a kind not added never pass. */
@Timeout(60)
class ForwardedHeadersTest {

    @ParameterizedTest(name = "[{0}]")
    @EnumSource(Container.class)
    void onlyTheChosenKindOfForwardingHeadersReachesTheUpstream(Container container) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("fine"))) {
            Map<String, String> forwardedOnly = new LinkedHashMap<>();
            forwardedOnly.put("upstream", upstream.baseUrl());
            forwardedOnly.put("forwarded-headers", "forwarded");
            Container.Deployment deployment = new Container.Deployment()
                    .servlet("rfc", new UpstreamProxyServlet(), "/rfc/*", forwardedOnly)
                    .servlet("legacy", UpstreamProxyServlet.builder(upstream.baseUrl()).forwardedHeaders("x-forwarded")
                            .build(), "/legacy/*");
            try (Container.Running running = container.start(deployment)) {
                String[] spoofed = {"X-Forwarded-For: 203.0.113.9", "X-Forwarded-Host: evil.example",
                    "Forwarded: for=203.0.113.9"};

                assertThat(RawClient.request(running.port(), "GET", "/gw/rfc/a", spoofed).status()).isEqualTo(200);
                RawUpstream.Request rfc = upstream.requests().get(0);
                assertThat(rfc.header("Forwarded")).startsWith("for=203.0.113.9, for=127.0.0.1;proto=http");
                assertThat(rfc.header("Via")).isEqualTo("1.1 upstream-guard");
                assertThat(rfc.headers().keySet()).noneMatch(h -> h.startsWith("x-forwarded"));

                assertThat(RawClient.request(running.port(), "GET", "/gw/legacy/b", spoofed).status()).isEqualTo(200);
                RawUpstream.Request legacy = upstream.requests().get(1);
                assertThat(legacy.header("X-Forwarded-For")).isEqualTo("203.0.113.9, 127.0.0.1");
                assertThat(legacy.headers().get("x-forwarded-host")).doesNotContain("evil.example");
                assertThat(legacy.header("Forwarded")).isNull();
                assertThat(legacy.header("Via")).isEqualTo("1.1 upstream-guard");
            }
        }
    }
}
