package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import jakarta.servlet.ServletConfig;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletException;
import java.util.Collections;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The proxy servlet's policy init-params: what {@code init()} says about values it cannot take. */
class ProxyServletPolicyTest {

    private static ServletConfig config(String... kv) {
        Map<String, String> params = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            params.put(kv[i], kv[i + 1]);
        }
        return new ServletConfig() {
            @Override
            public String getServletName() {
                return "inventory";
            }

            @Override
            public ServletContext getServletContext() {
                return null;
            }

            @Override
            public String getInitParameter(String name) {
                return params.get(name);
            }

            @Override
            public Enumeration<String> getInitParameterNames() {
                return Collections.enumeration(params.keySet());
            }
        };
    }

    /**
     * Regression: init-params each valid but contradicting each other failed {@code init()} with
     * "init-param 'the upstream policy' is invalid", naming an init-param no {@code web.xml} holds.
     */
    @Test
    void initParamsThatContradictEachOtherFailInitNamingBothAndNoInitParamThatDoesNotExist() {
        assertThatThrownBy(() -> new UpstreamProxyServlet().init(config("upstream", "http://127.0.0.1:9",
                "retry.max-backoff", "1ms", "retry.initial-backoff", "5ms")))
                .isInstanceOf(ServletException.class)
                .hasMessageStartingWith("Servlet 'inventory': its init-params contradict each other: ")
                .hasMessageContaining("'retry.max-backoff' (1ms)")
                .hasMessageContaining("'retry.initial-backoff' (5ms)")
                .hasMessageNotContaining("the upstream policy");
    }
}
