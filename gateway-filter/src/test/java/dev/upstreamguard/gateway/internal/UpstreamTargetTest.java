package dev.upstreamguard.gateway.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Path confinement without a container: what the servlet forwards for a raw request path under {@code /gw/proxy}. */
class UpstreamTargetTest {

    private static String forward(String rawPath) {
        return UpstreamTarget.remainder(rawPath, 2, "/gw", "/proxy");
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
        "/gw/proxy, ''",
        "/gw/proxy/, /",
        "/gw/proxy/a, /a",
        "/gw/proxy/a/, /a/",
        "/gw/proxy/a/./b, /a/b",
        "/gw/proxy/a/b/../c, /a/c",
        "/gw/proxy/a/%2e%2e/c, /c",
        "/gw/proxy/a/..;jsessionid=1/c, /c",
        "/gw/proxy/a//b, /a/b",
        "/gw/proxy//a, /a",
        "/gw/proxy/a/.., /",
        "/gw/proxy/%40evil, /%40evil",
        "/gw/proxy/@evil:1/x, /@evil:1/x",
        "/gw/proxy/a%20b, /a%20b",
        "/gw/proxy/a;v=1/b, /a;v=1/b",
        "/gw/proxy/.../x, /.../x",
        "/gw/proxy/%252e%252e/x, /%252e%252e/x",
        "/gw/proxy/a{b}, /a%7Bb%7D",
        "/gw/prox%79/a, /a",
        "/gw/./proxy/a, /a",
    })
    void safePathsAreNormalizedBelowTheRoute(String raw, String expected) {
        assertThat(forward(raw)).isEqualTo(expected);
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "/gw/proxy/..",
        "/gw/proxy/../secret",
        "/gw/proxy/a/../../secret",
        "/gw/proxy/%2e%2e/secret",
        "/gw/proxy/%2E%2e/secret",
        "/gw/proxy/.%2e/secret",
        "/gw/proxy/..;/secret",
        "/gw/proxy/..%2fsecret",
        "/gw/proxy/a%2F..%2F..%2Fsecret",
        "/gw/proxy/..%5csecret",
        "/gw/proxy/..\\secret",
        "/gw/proxy/%00",
        "/gw/proxy/a%2",
        "/gw/proxy/a%zz",
        "/gw/proxy/%2F%2Fevil/x",
        "/gw/other/x",
        "/other/proxy/x",
        "/../gw/proxy/x",
        "/gw",
    })
    void unsafePathsAreRejected(String raw) {
        assertThat(forward(raw)).isNull();
    }

    @Test
    void theUpstreamIsAlwaysTheConfiguredOriginAndBasePath() {
        UpstreamTarget target = UpstreamTarget.parse("http://Inventory.internal:8080/api/");
        assertThat(target.origin()).isEqualTo("http://inventory.internal:8080");
        assertThat(target.basePath()).isEqualTo("/api");
        assertThat(target.authority()).isEqualTo("inventory.internal:8080");
        assertThat(target.originUri().toString()).isEqualTo("http://inventory.internal:8080/");
        assertThat(UpstreamTarget.parse("https://secure.example").authority()).isEqualTo("secure.example");
        assertThat(UpstreamTarget.parse("https://secure.example").origin()).isEqualTo("https://secure.example:443");
    }

    /**
     * Regression: a host name with an underscore (a Docker Compose service such as {@code order_service}) is no host
     * to {@code java.net.URI}, though HttpClient calls it; init failed with "upstream must name a host".
     */
    @Test
    void aHostNameWithAnUnderscoreIsAnUpstream() {
        UpstreamTarget target = UpstreamTarget.parse("http://Order_Service:8080/api");
        assertThat(target.origin()).isEqualTo("http://order_service:8080");
        assertThat(target.authority()).isEqualTo("order_service:8080");
        assertThat(target.host().getHostName()).isEqualToIgnoringCase("order_service");
        assertThat(target.host().getPort()).isEqualTo(8080);
        assertThat(target.basePath()).isEqualTo("/api");
        assertThat(UpstreamTarget.parse("https://order_service").origin()).isEqualTo("https://order_service:443");
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "inventory:8080", "ftp://host/", "http:///x", "http://user@host/",
        "http://host/?q=1", "http://host/#f", "http://host/a/../b", "http://host/a%2Fb", "http://host/a b",
        "http://host:0/", "http://user@order_service/", "http://order_service:0/", "http://order_service:70000/"})
    void badBaseUrisAreRejectedNamingTheValue(String uri) {
        assertThatThrownBy(() -> UpstreamTarget.parse(uri)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("upstream");
    }

    @Test
    void queriesPassRawButCharactersAUriCannotHoldAreEncoded() {
        StringBuilder sb = new StringBuilder();
        UpstreamTarget.appendQuery(sb, "a=1&b=%20x|y&c=%zz&d=/?");
        assertThat(sb).hasToString("a=1&b=%20x%7Cy&c=%25zz&d=/?");
    }

    @Test
    void locationsPointingAtTheUpstreamAreRewrittenToTheGateway() {
        UpstreamTarget target = UpstreamTarget.parse("http://10.0.0.5:8080/api");
        String gw = "https://gw.example";
        assertThat(target.rewriteLocation("http://10.0.0.5:8080/api/next?x=1", gw, "/app/inv"))
                .isEqualTo("https://gw.example/app/inv/next?x=1");
        assertThat(target.rewriteLocation("HTTP://10.0.0.5:8080/api", gw, "/app/inv"))
                .isEqualTo("https://gw.example/app/inv");
        assertThat(target.rewriteLocation("/api/next", gw, "/app/inv")).isEqualTo("/app/inv/next");
        assertThat(target.rewriteLocation("/apix/next", gw, "/app/inv")).isEqualTo("/apix/next");
        assertThat(target.rewriteLocation("http://10.0.0.5:8080/other", gw, "/app/inv"))
                .isEqualTo("http://10.0.0.5:8080/other");
        assertThat(target.rewriteLocation("https://elsewhere.example/api/x", gw, "/app/inv"))
                .isEqualTo("https://elsewhere.example/api/x");
        // A network-path reference takes the upstream's scheme: with its authority, it is the upstream.
        assertThat(target.rewriteLocation("//10.0.0.5:8080/api/x", gw, "/app/inv"))
                .isEqualTo("https://gw.example/app/inv/x");
        assertThat(target.rewriteLocation("//10.0.0.5:80800/api/x", gw, "/app/inv"))
                .isEqualTo("//10.0.0.5:80800/api/x");
        // Another host, however much it looks like the base path.
        assertThat(target.rewriteLocation("//api/x", gw, "/app/inv")).isEqualTo("//api/x");
        UpstreamTarget defaultPort = UpstreamTarget.parse("http://inventory/");
        assertThat(defaultPort.rewriteLocation("http://inventory/x", gw, "/inv")).isEqualTo("https://gw.example/inv/x");
        assertThat(defaultPort.rewriteLocation("http://inventory:80/x", gw, "/inv"))
                .isEqualTo("https://gw.example/inv/x");
        assertThat(defaultPort.rewriteLocation("//inventory/x", gw, "/inv")).isEqualTo("https://gw.example/inv/x");
        assertThat(defaultPort.rewriteLocation("//inventory:80/x", gw, "/inv")).isEqualTo("https://gw.example/inv/x");
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {
        "/gw/proxy", "/gw/proxy/", "/gw/proxy/a", "/gw/proxy/a/", "/gw/proxy/a/b/c", "/gw/proxy/.../x",
        "/gw/proxy/a.b/.c/d.", "/gw/proxy/@evil:1/x", "/gw/proxy/a/./b", "/gw/proxy/a/b/../c", "/gw/proxy/a/..",
        "/gw/proxy/a/.", "/gw/proxy/a//b", "/gw/proxy//a", "/gw//proxy/a", "/gw/proxy/a%20b", "/gw/proxy/a;v=1/b",
        "/gw/proxy/a{b}", "/gw/prox%79/a", "/gw/./proxy/a", "/gw/proxyx/a", "/gwx/proxy", "/gw/prox", "/gw",
        "/", "//", "/a", "/a/", "/..", "/.", "/a\\b", "/gw/proxy/a%2fb", "/gw/proxy/a\tb",
    })
    void thePlainPathShortcutAgreesWithTheFullWalk(String rawPath) {
        String[][] prefixes = {{"/gw", "/proxy"}, {"", ""}, {"", "/gw"}, {"/gw", ""}, {"", "/gw/"}, {"/gw", "proxy"}};
        for (String[] p : prefixes) {
            int plain = UpstreamTarget.plainPrefixLength(rawPath, p[0], p[1]);
            if (plain >= 0) {
                int skip = UpstreamTarget.countSegments(p[0]) + UpstreamTarget.countSegments(p[1]);
                assertThat(rawPath.substring(plain))
                        .as("%s under '%s' + '%s'", rawPath, p[0], p[1])
                        .isEqualTo(UpstreamTarget.remainder(rawPath, skip, p[0], p[1]));
            }
        }
    }

    @Test
    void aPlainPathTakesTheShortcutAndADotEscapeOrEmptySegmentDoesNot() {
        assertThat(UpstreamTarget.plainPrefixLength("/gw/proxy/a/b.json", "/gw", "/proxy")).isEqualTo(9);
        assertThat(UpstreamTarget.plainPrefixLength("/gw/proxy", "/gw", "/proxy")).isEqualTo(9);
        assertThat(UpstreamTarget.plainPrefixLength("/a/1k", "", "/a")).isEqualTo(2);
        assertThat(UpstreamTarget.plainPrefixLength("/", "", "")).isZero();
        for (String unusual : new String[] {"/gw/proxy/a/../b", "/gw/proxy/./b", "/gw/proxy/a//b", "/gw/proxy/a%2e",
            "/gw/proxy/a;x", "/gw/proxy/a b", "/gw/proxyx"}) {
            assertThat(UpstreamTarget.plainPrefixLength(unusual, "/gw", "/proxy")).as(unusual).isEqualTo(-1);
        }
    }
}
