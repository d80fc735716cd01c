package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import jakarta.servlet.FilterConfig;
import jakarta.servlet.ServletConfig;
import jakarta.servlet.ServletContext;
import jakarta.servlet.ServletException;
import java.util.Collections;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Configuration errors fail fast and name the setting. */
class ServletConfigurationTest {

    /** Init-params for a servlet named {@code inventory} or a filter named {@code guard}, outside any container. */
    static final class Config implements ServletConfig, FilterConfig {
        private final Map<String, String> params;

        Config(Map<String, String> params) {
            this.params = params;
        }

        @Override
        public String getServletName() {
            return "inventory";
        }

        @Override
        public String getFilterName() {
            return "guard";
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
    }

    /** A {@link Config} of the init-params given as name, value, name, value... */
    static Config config(String... kv) {
        return new Config(params(kv));
    }

    private static Map<String, String> params(String... kv) {
        Map<String, String> map = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            map.put(kv[i], kv[i + 1]);
        }
        return map;
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource({
        "connect-timeout, soon",
        "retry.max-attempts, 0",
        "circuit-breaker.failure-rate-threshold, 200",
        "bulkhead.max-concurrent-calls, many",
        "max-buffered-request-body, 64 apples",
        "preserve-host, maybe",
        "forwarded-headers, all",
        "expose-details, 1",
        "proxy-name, caf\u00e9",
        "retyr.max-attempts, 3",
    })
    void aBadInitParamFailsInitNamingIt(String name, String value) {
        UpstreamProxyServlet servlet = new UpstreamProxyServlet();
        assertThatThrownBy(() -> servlet.init(new Config(params("upstream", "http://127.0.0.1:9", name, value))))
                .isInstanceOf(ServletException.class)
                .hasMessageContaining("'" + name + "'")
                .hasMessageContaining("inventory");
    }

    /**
     * Regression: an unknown init-param was reported as an unknown upstream policy setting, with only the policy's
     * settings listed, so a misspelt setting of the servlet's own ({@code proxy-nam}) was shown no near match.
     */
    @Test
    void anUnknownInitParamIsReportedWithTheServletsOwnSettingsAsWellAsThePolicys() {
        assertThatThrownBy(() -> new UpstreamProxyServlet().init(new Config(params("upstream", "http://127.0.0.1:9",
                "proxy-nam", "edge"))))
                .isInstanceOf(ServletException.class).hasMessageContaining("'proxy-nam'")
                .hasMessageContaining("proxy-name").hasMessageContaining("upstream-name")
                .hasMessageContaining("retry.max-attempts");
    }

    @Test
    void aMissingOrInvalidUpstreamFailsInit() {
        assertThatThrownBy(() -> new UpstreamProxyServlet().init(new Config(params())))
                .isInstanceOf(ServletException.class).hasMessageContaining("'upstream'");
        assertThatThrownBy(() -> new UpstreamProxyServlet().init(new Config(params("upstream", "ftp://x/"))))
                .isInstanceOf(ServletException.class).hasMessageContaining("'upstream'");
    }

    @Test
    void contradictingPolicySettingsFailInit() {
        assertThatThrownBy(() -> new UpstreamProxyServlet().init(new Config(params("upstream", "http://127.0.0.1:9",
                "retry.initial-backoff", "5s", "retry.max-backoff", "1s"))))
                .isInstanceOf(ServletException.class).hasMessageContaining("retry.max-backoff");
    }

    @Test
    void validInitParamsBuildTheUpstreamUnderTheServletsName() throws Exception {
        UpstreamProxyServlet servlet = new UpstreamProxyServlet();
        servlet.init(new Config(params("upstream", "http://127.0.0.1:9/base", "connect-timeout", "250ms",
                "retry.max-attempts", "4", "max-buffered-request-body", "1MiB", "preserve-host", "true")));
        try {
            assertThat(servlet.upstreamName()).isEqualTo("inventory");
            assertThat(servlet.client().upstream("inventory").policy().connectTimeout().toMillis()).isEqualTo(250);
            assertThat(servlet.client().upstream("inventory").policy().retry().maxAttempts()).isEqualTo(4);
        } finally {
            servlet.destroy();
        }
    }

    /**
     * Regression: blanks around a policy setting's name were ignored ({@code " connect-timeout "} worked), but around
     * one of the servlet's own ({@code " proxy-name "}) they failed init as an unknown upstream policy setting.
     */
    @Test
    void blanksAroundAnInitParamNameAreIgnoredForTheServletsOwnSettingsAsForPolicySettings() throws Exception {
        UpstreamProxyServlet servlet = new UpstreamProxyServlet();
        servlet.init(new Config(params("upstream ", "http://127.0.0.1:9", " upstream-name ", "stock",
                "connect-timeout ", "250ms", "\tmax-buffered-request-body", "1KiB")));
        try {
            assertThat(servlet.upstreamName()).isEqualTo("stock");
            assertThat(servlet.client().upstream("stock").policy().connectTimeout().toMillis()).isEqualTo(250);
        } finally {
            servlet.destroy();
        }
        assertThatThrownBy(() -> new UpstreamProxyServlet().init(new Config(params("upstream", "http://127.0.0.1:9",
                "proxy-name", "edge-1", "proxy-name ", "edge-2"))))
                .isInstanceOf(ServletException.class).hasMessageContaining("'proxy-name'").hasMessageContaining("twice");
    }

    /**
     * Regression: an upstream name holding a line break was taken, and it goes unescaped into the WARN line of every
     * fault ({@code upstream=...}), where it forged a second log line, and into the metrics' {@code upstream} tag.
     */
    @Test
    void anUpstreamNameWithAControlCharacterFailsInitNamingIt() {
        for (String bad : new String[] {"inventory\nfault=none", "in\tventory", "inven\u0000tory", "inventory\u007f"}) {
            assertThatThrownBy(() -> new UpstreamProxyServlet().init(new Config(params("upstream", "http://127.0.0.1:9",
                    "upstream-name", bad))))
                    .isInstanceOf(ServletException.class).hasMessageContaining("'upstream-name'")
                    .hasMessageContaining("inventory");
            assertThatThrownBy(() -> UpstreamProxyServlet.builder("http://127.0.0.1:9").upstreamName(bad))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("upstream-name");
        }
    }

    /**
     * Regression: an upstream URI refused for its user info was echoed whole in the init failure, so the password
     * in it went to the container's log.
     */
    @Test
    void anUpstreamWithUserInfoFailsInitWithoutRepeatingThePassword() {
        for (String upstream : new String[] {"http://admin:s3cret@inventory:8080/api",
            "http://admin:s3cret@inventory:8080/a b", "ftp://admin:s3cret@inventory/"}) {
            assertThatThrownBy(() -> new UpstreamProxyServlet().init(new Config(params("upstream", upstream))))
                    .isInstanceOf(ServletException.class).hasMessageContaining("'upstream'")
                    .hasMessageContaining("inventory").satisfies(e -> assertThat(
                            e.getMessage() + e.getCause().getMessage()).doesNotContain("s3cret"));
        }
    }

    @Test
    void theBuilderValidatesEagerly() {
        assertThatThrownBy(() -> UpstreamProxyServlet.builder("http://host/../x"))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> UpstreamProxyServlet.builder("http://host").set("retry.max-attempts", "none"))
                .hasMessageContaining("retry.max-attempts");
        assertThatThrownBy(() -> UpstreamProxyServlet.builder("http://host").set("proxy-name", "x"))
                .hasMessageContaining("proxy-name");
        assertThatThrownBy(() -> UpstreamProxyServlet.builder("http://host").maxBufferedRequestBody(-1))
                .hasMessageContaining("max-buffered-request-body");
        assertThatThrownBy(() -> UpstreamFaultFilter.builder().proxyName(" "))
                .hasMessageContaining("proxy-name");
    }

    @Test
    void aFilterWithABadInitParamFailsInitNamingIt() {
        assertThatThrownBy(() -> new UpstreamFaultFilter().init(new Config(params("expose-details", "sometimes"))))
                .isInstanceOf(ServletException.class).hasMessageContaining("'expose-details'");
        assertThatThrownBy(() -> new UpstreamFaultFilter().init(new Config(params("proxy-name", "bad\nname"))))
                .isInstanceOf(ServletException.class).hasMessageContaining("'proxy-name'");
        assertThatThrownBy(() -> new UpstreamFaultFilter().init(new Config(params("expose-details", "yes"))))
                .isInstanceOf(ServletException.class).hasMessageContaining("'expose-details'").hasMessageContaining("yes");
        assertThatThrownBy(() -> new UpstreamFaultFilter().init(new Config(params("proxy-name", " "))))
                .isInstanceOf(ServletException.class).hasMessageContaining("'proxy-name'").hasMessageContaining("guard");
        assertThatThrownBy(() -> new UpstreamFaultFilter().init(new Config(params("proxy-name", "caf\u00e9"))))
                .isInstanceOf(ServletException.class).hasMessageContaining("'proxy-name'");
    }

    /**
     * Regression: blanks around an init-param's name ({@code " proxy-name "}, as a {@code web.xml} laid out by hand
     * has them) are ignored by the proxy servlet, but failed the filter's init as an unknown init-param. They are
     * ignored by both now, the value applied; the same name given twice that way still fails, naming it.
     */
    @Test
    void aFilterIgnoresBlanksAroundAnInitParamsNameAsTheServletDoes() throws Exception {
        jakarta.servlet.http.HttpServlet failing = new jakarta.servlet.http.HttpServlet() {
            @Override
            protected void service(jakarta.servlet.http.HttpServletRequest req,
                    jakarta.servlet.http.HttpServletResponse resp) throws java.io.IOException {
                throw UpstreamFaultFilterDispatchTest.refused();
            }
        };
        try (Container.Running running = Container.TOMCAT.start(new Container.Deployment()
                .filter("guard", new UpstreamFaultFilter(), "/*", params(" proxy-name ", "edge-1", "expose-details\t",
                        "true"), java.util.EnumSet.of(jakarta.servlet.DispatcherType.REQUEST))
                .servlet("app", failing, "/app/*"))) {
            RawClient.Response response = RawClient.request(running.port(), "GET", "/gw/app/x");
            assertThat(response.status()).isEqualTo(502);
            assertThat(response.header("Proxy-Status")).isEqualTo("edge-1; error=connection_refused; next-hop=inventory; details=\"refused\"");
        }
        assertThatThrownBy(() -> new UpstreamFaultFilter().init(new Config(params("proxy-name", "a",
                " proxy-name", "b")))).isInstanceOf(ServletException.class)
                .hasMessageContaining("'proxy-name'").hasMessageContaining("twice").hasMessageContaining("guard");
    }

    /** Regression: a misspelt init-param was ignored without a word, leaving the default in force. */
    @Test
    void aFilterWithAnUnknownInitParamFailsInitNamingIt() {
        assertThatThrownBy(() -> new UpstreamFaultFilter().init(new Config(params("proxy-name", "edge-1",
                "expose-detail", "true"))))
                .isInstanceOf(ServletException.class).hasMessageContaining("'expose-detail'")
                .hasMessageContaining("guard");
    }
}
