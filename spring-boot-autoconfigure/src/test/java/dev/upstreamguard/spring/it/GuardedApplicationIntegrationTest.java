package dev.upstreamguard.spring.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;

import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.restclient.RestTemplateBuilder;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.core.env.Environment;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.web.client.ResourceAccessException;
import org.springframework.web.client.RestClient;

/** The whole module in a running application, over real sockets on 127.0.0.1. */
@SpringBootTest(classes = TestApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class GuardedApplicationIntegrationTest {

    private static TestUpstream upstream;
    private static RawUpstream closing;

    @LocalServerPort
    int port;

    @Autowired
    MeterRegistry meterRegistry;

    @Autowired
    RestClient.Builder restClientBuilder;

    @Autowired
    RestTemplateBuilder restTemplateBuilder;

    @Autowired
    Environment environment;

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) throws IOException {
        upstream = new TestUpstream();
        closing = RawUpstream.start(Behaviours.closeBeforeResponse());
        registry.add("test.closing", closing::baseUrl);
        String dead = "http://127.0.0.1:" + TestUpstream.closedPort();
        String fragile = "http://127.0.0.1:" + TestUpstream.closedPort();
        registry.add("test.upstream", upstream::url);
        registry.add("test.dead", () -> dead);
        registry.add("test.fragile", () -> fragile);
        registry.add("upstream-guard.proxy-name", () -> "test-gw");
        registry.add("upstream-guard.upstreams.backend.url", upstream::url);
        registry.add("upstream-guard.upstreams.backend.retry.initial-backoff", () -> "1ms");
        registry.add("upstream-guard.upstreams.backend.retry.max-backoff", () -> "2ms");
        registry.add("upstream-guard.upstreams.backend.retry.budget-ratio", () -> "1");
        registry.add("upstream-guard.upstreams.backend.retry.budget-min-per-second", () -> "1000");
        registry.add("upstream-guard.upstreams.backend.circuit-breaker.enabled", () -> "false");
        registry.add("upstream-guard.upstreams.dead.url", () -> dead);
        registry.add("upstream-guard.upstreams.dead.retry.initial-backoff", () -> "1ms");
        registry.add("upstream-guard.upstreams.dead.retry.max-backoff", () -> "2ms");
        registry.add("upstream-guard.upstreams.dead.circuit-breaker.enabled", () -> "false");
        // Several tests count this upstream's attempts: a budget they cannot exhaust keeps those counts exact.
        registry.add("upstream-guard.upstreams.dead.retry.budget-ratio", () -> "1");
        registry.add("upstream-guard.upstreams.dead.retry.budget-min-per-second", () -> "1000");
        registry.add("upstream-guard.upstreams.fragile.url", () -> fragile);
        registry.add("upstream-guard.upstreams.fragile.retry.max-attempts", () -> "1");
        registry.add("upstream-guard.upstreams.fragile.circuit-breaker.minimum-calls", () -> "2");
        registry.add("upstream-guard.upstreams.fragile.circuit-breaker.window", () -> "60s");
        registry.add("upstream-guard.upstreams.fragile.circuit-breaker.open-for", () -> "60s");
        registry.add("upstream-guard.routes.c.path", () -> "/c/**");
        registry.add("upstream-guard.routes.c.uri", upstream::url);
        registry.add("upstream-guard.routes.c.strip-prefix", () -> "1");
        registry.add("upstream-guard.routes.inner.path", () -> "/b/inner/**");
        registry.add("upstream-guard.routes.inner.upstream", () -> "backend");
        registry.add("upstream-guard.routes.inner.strip-prefix", () -> "1");
        registry.add("upstream-guard.routes.host.path", () -> "/host/**");
        registry.add("upstream-guard.routes.host.uri", upstream::url);
        registry.add("upstream-guard.routes.host.strip-prefix", () -> "1");
        registry.add("upstream-guard.routes.host.preserve-host", () -> "true");
        registry.add("upstream-guard.routes.upper.path", () -> "/upper/**");
        registry.add("upstream-guard.routes.upper.uri", () -> upstream.url().replace("http://", "HTTP://"));
        registry.add("upstream-guard.routes.upper.strip-prefix", () -> "1");
        registry.add("upstream-guard.routes.full.path", () -> "/full/**");
        registry.add("upstream-guard.routes.slash.path", () -> "/slash/exact/");
        registry.add("upstream-guard.routes.slash.uri", upstream::url);
        registry.add("upstream-guard.routes.slash.strip-prefix", () -> "1");
        registry.add("upstream-guard.routes.full.uri", upstream::url);
        registry.add("upstream-guard.routes.dead.path", () -> "/dead/**");
        registry.add("upstream-guard.routes.dead.upstream", () -> "dead");
        registry.add("upstream-guard.routes.dead.strip-prefix", () -> "1");
        registry.add("spring.http.serviceclient.backend.base-url", upstream::url);
        registry.add("management.endpoints.web.exposure.include", () -> "health,upstreams,metrics");
        registry.add("management.endpoint.health.show-details", () -> "always");
    }

    @AfterAll
    static void stopUpstream() {
        upstream.close();
        closing.close();
    }

    private HttpResponse<String> get(String path, String accept) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30));
        if (accept != null) {
            request.header("Accept", accept);
        }
        return http.send(request.build(), HttpResponse.BodyHandlers.ofString());
    }

    private int flakyHitsOf(String path) throws Exception {
        upstream.flakyHits.set(0);
        HttpResponse<String> response = get(path, null);
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.body()).isEqualTo("503");
        return upstream.flakyHits.get();
    }

    @Test
    void aRouteWithAUriAndStripPrefixServesItsPathFromTheUpstream() throws Exception {
        HttpResponse<String> response = get("/c/ok?x=1", null);
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.body()).isEqualTo("ok /ok");
        assertThat(response.headers().firstValue("X-Seen-Path")).hasValue("/ok");
    }

    @Test
    void aRouteToANamedUpstreamForwardsTheSegmentsItDoesNotStrip() throws Exception {
        HttpResponse<String> response = get("/b/inner/items/7", null);
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.body()).isEqualTo("ok /inner/items/7");
    }

    @Test
    void aRouteWithPreserveHostSendsTheClientsHostUpstream() throws Exception {
        assertThat(get("/host/echo-host", null).body()).isEqualTo("127.0.0.1:" + port);
        assertThat(get("/c/echo-host", null).body()).isEqualTo(upstream.url().substring("http://".length()));
    }

    /** RFC 3986 §3.1: a scheme is case-insensitive, so a route to {@code HTTP://host:port} works as to http. */
    @Test
    void aRouteWhoseUriSpellsItsSchemeInUpperCaseServesItsPath() throws Exception {
        HttpResponse<String> response = get("/upper/ok", null);
        assertThat(response.statusCode()).as("%s %s", response.headers().map(), response.body()).isEqualTo(200);
        assertThat(response.body()).isEqualTo("ok /ok");
    }

    /**
     * Regression: an exact path ending in '/' was registered without it, so the route served '/slash/exact' and the
     * very path it names, '/slash/exact/', was Spring MVC's 404.
     */
    @Test
    void aRouteWithAnExactPathEndingInASlashServesThatPath() throws Exception {
        HttpResponse<String> response = get("/slash/exact/", null);
        assertThat(response.statusCode()).as("%s %s", response.headers().map(), response.body()).isEqualTo(200);
        assertThat(response.body()).isEqualTo("ok /exact/");
    }

    @Test
    void aRouteWithoutStripPrefixForwardsTheWholePath() throws Exception {
        HttpResponse<String> response = get("/full/a/b", null);
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.body()).isEqualTo("ok /full/a/b");
    }

    @Test
    void aRouteForwardsTheFormBodyOfAPutPatchOrDeleteUnread() throws Exception {
        // Spring Boot's FormContentFilter parses such bodies for Spring MVC; a proxy route must get them untouched.
        for (String method : new String[] {"PUT", "PATCH", "DELETE"}) {
            HttpResponse<String> response = http.send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + port + "/c/echo-body")).timeout(Duration.ofSeconds(30))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .method(method, HttpRequest.BodyPublishers.ofString("a=1&b=two+words")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(response.statusCode()).as(method).isEqualTo(200);
            assertThat(response.body()).as(method).isEqualTo("a=1&b=two+words");
        }
    }

    @Test
    void faultsSurfaceFromTheContextsRestClientAndRestTemplateWithTheUpstreamExceptionAsCause() {
        String dead = environment.getProperty("test.dead");
        Throwable fromRestClient = catchThrowable(
                () -> restClientBuilder.clone().build().get().uri(dead + "/x").retrieve().body(String.class));
        assertThat(fromRestClient).isInstanceOf(ResourceAccessException.class)
                .cause().isInstanceOf(UpstreamException.class);
        assertThat(((UpstreamException) fromRestClient.getCause()).fault()).isEqualTo(UpstreamFault.CONNECTION_REFUSED);
        assertThat(((UpstreamException) fromRestClient.getCause()).upstream()).isEqualTo("dead");
        Throwable fromRestTemplate = catchThrowable(
                () -> restTemplateBuilder.build().getForObject(dead + "/x", String.class));
        assertThat(fromRestTemplate).isInstanceOf(ResourceAccessException.class)
                .cause().isInstanceOf(UpstreamException.class);
    }

    @Test
    void aHeadRequestGetsTheFaultsStatusAndHeadersWithoutABody() throws Exception {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + port + "/plain/refused")).method("HEAD", HttpRequest.BodyPublishers.noBody())
                .header("Accept", "application/json").timeout(Duration.ofSeconds(30)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
        assertThat(response.headers().firstValue("Cache-Control")).hasValue("no-store");
        assertThat(response.headers().firstValue("Content-Type")).hasValue("application/problem+json");
        assertThat(response.body()).isEmpty();
    }

    /**
     * Regression: a controller calling an upstream with a RestTemplate of its own (not guarded) let Spring's
     * {@code ResourceAccessException} escape, and the application answered 500: the filter did not recognise a failed
     * call that was not the guarded client's.
     */
    @Test
    void aFailedCallWithTheApplicationsOwnRestTemplateIsAnsweredAsTheGatewayFault() throws Exception {
        HttpResponse<String> response = get("/plain/own-rest-template-closing", "application/problem+json");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_terminated");
        assertThat(response.body()).contains("\"fault\":\"connection_terminated\"");
    }

    @Test
    void aRouteToARefusingUpstreamAnswers502WithProxyStatusAndAProblem() throws Exception {
        HttpResponse<String> response = get("/dead/x", "application/problem+json");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
        assertThat(response.headers().firstValue("Cache-Control")).hasValue("no-store");
        assertThat(response.headers().firstValue("Content-Type")).hasValueSatisfying(
                v -> assertThat(v).startsWith("application/problem+json"));
        assertThat(response.body()).contains("\"fault\":\"connection_refused\"").contains("\"attempts\":3");
    }

    @Test
    void withoutAnAnnotationTheUpstreamsPropertiesApply() throws Exception {
        assertThat(flakyHitsOf("/plain/properties")).isEqualTo(3);
    }

    @Test
    void theClassLevelAnnotationSetsTheAttemptsOfTheControllersCalls() throws Exception {
        assertThat(flakyHitsOf("/annotated/class-level")).isEqualTo(2);
    }

    @Test
    void theMethodLevelAnnotationWinsOverTheClassLevelOne() throws Exception {
        assertThat(flakyHitsOf("/annotated/method-level")).isEqualTo(1);
    }

    @Test
    void retryDisabledOnTheMethodMeansExactlyOneAttempt() throws Exception {
        assertThat(flakyHitsOf("/annotated/no-retry")).isEqualTo(1);
    }

    @Test
    void theAnnotationAppliesToTheCallsOfACallableTheControllerReturns() throws Exception {
        assertThat(flakyHitsOf("/annotated/callable-no-retry")).isEqualTo(1);
    }

    @Test
    void theRestTemplateFromTheContextsBuilderIsGuarded() throws Exception {
        assertThat(flakyHitsOf("/plain/rest-template")).isEqualTo(3);
    }

    @Test
    void theControllersAnnotationAlsoAppliesToTheRestTemplateFromTheContextsBuilder() throws Exception {
        assertThat(flakyHitsOf("/annotated/rest-template")).isEqualTo(1);
    }

    @Test
    void anHttpExchangeMethodsAnnotationWinsOverTheControllersAnnotation() throws Exception {
        assertThat(flakyHitsOf("/annotated/exchange-four")).isEqualTo(4);
        assertThat(flakyHitsOf("/annotated/exchange-once")).isEqualTo(1);
    }

    @Test
    void anHttpExchangeMethodWithoutAnnotationRunsUnderTheControllersAnnotation() throws Exception {
        assertThat(flakyHitsOf("/annotated/exchange-inherits")).isEqualTo(2);
    }

    @Test
    void anHttpExchangeMethodsAnnotationAppliesUnderAPlainController() throws Exception {
        assertThat(flakyHitsOf("/plain/exchange-four")).isEqualTo(4);
    }

    @Test
    void httpServiceGroupsBuiltBySpringBootHonourInterfaceAndMethodAnnotations() throws Exception {
        assertThat(flakyHitsOf("/plain/group-five")).isEqualTo(5);
        assertThat(flakyHitsOf("/plain/group-one")).isEqualTo(1);
    }

    @Test
    void theAnnotationsResponseTimeoutReplacesTheConfiguredTenSeconds() throws Exception {
        long start = System.nanoTime();
        HttpResponse<String> response = get("/annotated/stall", "application/json");
        Duration elapsed = Duration.ofNanos(System.nanoTime() - start);
        assertThat(response.statusCode()).isEqualTo(504);
        assertThat(response.headers().firstValue("Proxy-Status")).hasValueSatisfying(
                v -> assertThat(v).isIn("test-gw; error=connection_read_timeout", "test-gw; error=http_response_timeout"));
        assertThat(response.body()).contains("\"status\":504").contains("\"upstream\":\"backend\"")
                .contains("\"attempts\":1");
        assertThat(elapsed).isLessThan(Duration.ofSeconds(8));
    }

    @Test
    void aFaultInAControllerIsRenderedAsAProblemDetailThroughSpringMvc() throws Exception {
        double before = responses("connection_refused");
        HttpResponse<String> response = get("/plain/refused", "application/json");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Content-Type")).hasValue("application/problem+json");
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
        assertThat(response.headers().firstValue("Cache-Control")).hasValue("no-store");
        assertThat(response.body()).contains("\"type\":\"https://upstreamguard.dev/problems/connection_refused\"")
                .contains("\"title\":\"Upstream refused the connection\"").contains("\"status\":502")
                .contains("\"instance\":\"/plain/refused\"").contains("\"upstream\":\"dead\"")
                .contains("\"fault\":\"connection_refused\"").contains("\"attempts\":3")
                .doesNotContain("Exception").doesNotContain("127.0.0.1");
        assertThat(responses("connection_refused")).isEqualTo(before + 1);
    }

    /**
     * Regression: the answer to a fault replaced the CORS fields Spring MVC had set for an {@code @CrossOrigin}
     * controller, so a browser script calling it across origins saw a CORS error instead of the 502 and its problem.
     */
    @Test
    void aFaultInACrossOriginControllerKeepsItsCorsFieldsSoABrowserCanReadTheAnswer() throws Exception {
        for (String accept : new String[] {"application/json", "text/html", "text/plain"}) {
            HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                    + "/plain/refused-cross-origin")).timeout(Duration.ofSeconds(30)).header("Accept", accept)
                    .header("Origin", "https://app.example").build(), HttpResponse.BodyHandlers.ofString());
            assertThat(response.statusCode()).as(accept).isEqualTo(502);
            assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
            assertThat(response.headers().allValues("Access-Control-Allow-Origin")).as(accept)
                    .containsExactly("https://app.example");
            assertThat(response.headers().allValues("Access-Control-Expose-Headers")).as(accept)
                    .containsExactly("Proxy-Status");
        }
    }

    @Test
    void aFaultInAControllerIsAnHtmlPageForABrowser() throws Exception {
        HttpResponse<String> response = get("/plain/refused",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Content-Type")).hasValueSatisfying(
                v -> assertThat(v).startsWith("text/html"));
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
        assertThat(response.body()).contains("502 Bad Gateway").contains("connection_refused");
    }

    /**
     * Regression: the handler chose JSON from the first Accept line, the writer then rendered the format all lines asked
     * for (HTML) into a capture parsed as JSON: a 500 instead of the fault's answer.
     */
    @Test
    void aFaultInAControllerFollowsEveryAcceptLineOfTheClient() throws Exception {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/plain/refused")).timeout(Duration.ofSeconds(30)).header("Accept", "application/json;q=0.5")
                .header("Accept", "text/html").build(), HttpResponse.BodyHandlers.ofString());
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Content-Type")).hasValueSatisfying(
                v -> assertThat(v).startsWith("text/html"));
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
    }

    @Test
    void aRestTemplateFaultArrivesAsResourceAccessExceptionAndIsStillAProblem() throws Exception {
        HttpResponse<String> response = get("/plain/refused-rest-template", "application/problem+json");
        assertThat(response.statusCode()).isEqualTo(502);
        assertThat(response.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=connection_refused");
        assertThat(response.body()).contains("\"fault\":\"connection_refused\"");
    }

    @Test
    void theGuardedCallsAreMeteredInTheApplicationsRegistry() throws Exception {
        flakyHitsOf("/plain/properties");
        assertThat(meterRegistry.find("upstream.guard.calls").tag("upstream", "backend").timers()).isNotEmpty();
        HttpResponse<String> metrics = get("/actuator/metrics/upstream.guard.calls", "application/json");
        assertThat(metrics.statusCode()).isEqualTo(200);
        assertThat(metrics.body()).contains("upstream");
    }

    @Test
    void theUpstreamsEndpointListsEveryConfiguredUpstream() throws Exception {
        HttpResponse<String> response = get("/actuator/upstreams", "application/json");
        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(response.body()).contains("\"backend\"").contains("\"dead\"").contains("\"fragile\"")
                .contains("\"circuitState\"").contains("\"retriesAvailable\"").contains("\"callsInFlight\"");
        HttpResponse<String> one = get("/actuator/upstreams/backend", "application/json");
        assertThat(one.statusCode()).isEqualTo(200);
        assertThat(one.body()).contains("\"name\":\"backend\"").contains("\"policy\"");
        assertThat(get("/actuator/upstreams/nope", "application/json").statusCode()).isEqualTo(404);
    }

    @Test
    void anOpenCircuitShowsInHealthWithoutFailingTheApplication() throws Exception {
        assertThat(get("/plain/fragile", "application/json").statusCode()).isEqualTo(502);
        assertThat(get("/plain/fragile", "application/json").statusCode()).isEqualTo(502);
        HttpResponse<String> rejected = get("/plain/fragile", "application/json");
        assertThat(rejected.statusCode()).isEqualTo(503);
        assertThat(rejected.headers().firstValue("Proxy-Status")).hasValue("test-gw; error=destination_unavailable");
        assertThat(rejected.headers().firstValue("Retry-After")).isPresent();

        HttpResponse<String> health = get("/actuator/health", "application/json");
        assertThat(health.statusCode()).isEqualTo(200);
        assertThat(org.springframework.boot.json.JsonParserFactory.getJsonParser().parseMap(health.body()))
                .containsEntry("status", "UP");
        assertThat(health.body()).contains("CIRCUIT_OPEN");
        HttpResponse<String> liveness = get("/actuator/health/liveness", "application/json");
        assertThat(liveness.statusCode()).isEqualTo(200);
        assertThat(liveness.body()).contains("\"status\":\"UP\"");
        HttpResponse<String> fragile = get("/actuator/health/upstreams/fragile", "application/json");
        assertThat(fragile.statusCode()).isEqualTo(200);
        assertThat(fragile.body()).contains("\"status\":\"CIRCUIT_OPEN\"").contains("\"circuitState\":\"OPEN\"");
        HttpResponse<String> backend = get("/actuator/health/upstreams/backend", "application/json");
        assertThat(backend.body()).contains("\"status\":\"UP\"");
    }

    private double responses(String fault) {
        var counter = meterRegistry.find("upstream.guard.responses").tag("fault", fault).counter();
        return counter == null ? 0 : counter.count();
    }
}
