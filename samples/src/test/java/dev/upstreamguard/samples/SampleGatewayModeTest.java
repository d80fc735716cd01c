package dev.upstreamguard.samples;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.spring.UpstreamRegistry;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.context.ConfigurableApplicationContext;

/** With routes on the command line the sample is a plain gateway: no embedded upstream, only those routes. */
@ExtendWith(OutputCaptureExtension.class)
class SampleGatewayModeTest {

    @Test
    void routesOnTheCommandLineTurnTheSampleIntoAStandaloneGateway() throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        try (FaultyUpstream upstream = FaultyUpstream.start();
                ConfigurableApplicationContext context = SpringApplication.run(SampleApplication.class,
                        "--server.port=0", "--upstream-guard.routes.c.path=/c/**",
                        "--upstream-guard.routes.c.uri=" + upstream.url(), "--upstream-guard.routes.c.strip-prefix=1")) {
            assertThat(context.getEnvironment().containsProperty(EmbeddedUpstreamEnvironment.PORT_PROPERTY)).isFalse();
            String base = "http://127.0.0.1:" + context.getEnvironment().getProperty("local.server.port");

            HttpResponse<String> ok = http.send(HttpRequest.newBuilder(URI.create(base + "/c/ok")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(ok.statusCode()).isEqualTo(200);
            assertThat(ok.body()).startsWith("ok:");

            HttpResponse<String> reset = http.send(HttpRequest.newBuilder(URI.create(base + "/c/reset"))
                    .header("Accept", "application/problem+json").build(), HttpResponse.BodyHandlers.ofString());
            assertThat(reset.statusCode()).isEqualTo(502);
            assertThat(reset.headers().firstValue("Proxy-Status")).hasValue("sample-gw; error=connection_terminated");
            // A route to a plain URI is its own upstream, named after the route, never after the internal address.
            assertThat(reset.body()).contains("\"upstream\":\"c\"").contains("\"attempts\":3")
                    .doesNotContain("127.0.0.1");

            HttpResponse<String> tour = http.send(HttpRequest.newBuilder(URI.create(base + "/tour")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(tour.statusCode()).isEqualTo(404);
        }
    }

    /**
     * Regression: a route to a uri ran on the defaults, and {@code routes.<name>.<setting>} failed start-up as unbound,
     * so a gateway started from the command line could not give one route a timeout, retry or breaker of its own.
     */
    @Test
    void policySettingsOfARouteTakeEffectOnThatRouteOnly() throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        try (FaultyUpstream upstream = FaultyUpstream.start();
                ConfigurableApplicationContext context = SpringApplication.run(SampleApplication.class,
                        "--server.port=0", "--upstream-guard.proxy-name=edge-7",
                        "--upstream-guard.routes.c.path=/c/**", "--upstream-guard.routes.c.uri=" + upstream.url(),
                        "--upstream-guard.routes.c.strip-prefix=1", "--upstream-guard.routes.c.response-timeout=300ms",
                        "--upstream-guard.routes.c.retry.enabled=false",
                        "--upstream-guard.routes.c.circuit-breaker.minimum-calls=2",
                        "--upstream-guard.routes.c.circuit-breaker.open-for=1h",
                        "--upstream-guard.routes.d.path=/d/**", "--upstream-guard.routes.d.uri=" + upstream.url(),
                        "--upstream-guard.routes.d.strip-prefix=1")) {
            String base = "http://127.0.0.1:" + context.getEnvironment().getProperty("local.server.port");

            HttpResponse<String> slow = http.send(HttpRequest.newBuilder(URI.create(base + "/c/slow"))
                    .header("Accept", "application/problem+json").timeout(Duration.ofSeconds(8)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(slow.statusCode()).isEqualTo(504);
            assertThat(slow.headers().firstValue("Proxy-Status")).hasValue("edge-7; error=connection_read_timeout");
            assertThat(slow.body()).contains("\"upstream\":\"c\"").contains("\"attempts\":1");

            HttpResponse<String> resetC = http.send(HttpRequest.newBuilder(URI.create(base + "/c/reset"))
                    .header("Accept", "application/problem+json").build(), HttpResponse.BodyHandlers.ofString());
            assertThat(resetC.statusCode()).isEqualTo(502);
            assertThat(resetC.body()).contains("\"attempts\":1");
            // Two failures of two calls: c's circuit is open, d's (default minimum of 20 calls) is not.
            HttpResponse<String> open = http.send(HttpRequest.newBuilder(URI.create(base + "/c/ok")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(open.statusCode()).isEqualTo(503);
            assertThat(open.headers().firstValue("Proxy-Status")).hasValue("edge-7; error=destination_unavailable");

            HttpResponse<String> resetD = http.send(HttpRequest.newBuilder(URI.create(base + "/d/reset"))
                    .header("Accept", "application/problem+json").build(), HttpResponse.BodyHandlers.ofString());
            assertThat(resetD.statusCode()).isEqualTo(502);
            assertThat(resetD.headers().firstValue("Proxy-Status")).hasValue("edge-7; error=connection_terminated");
            assertThat(resetD.body()).contains("\"upstream\":\"d\"").contains("\"attempts\":3");
            HttpResponse<String> ok = http.send(HttpRequest.newBuilder(URI.create(base + "/d/ok")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(ok.statusCode()).isEqualTo(200);

            // The calls are metered under each route's upstream.
            HttpResponse<String> metrics = http.send(HttpRequest.newBuilder(URI.create(base
                    + "/actuator/metrics/upstream.guard.calls?tag=upstream:c&tag=fault:connection_read_timeout")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(metrics.statusCode()).isEqualTo(200);
            assertThat(metrics.body()).contains("\"statistic\":\"COUNT\",\"value\":1.0");
            HttpResponse<String> all = http.send(HttpRequest.newBuilder(URI.create(base
                    + "/actuator/metrics/upstream.guard.calls")).build(), HttpResponse.BodyHandlers.ofString());
            assertThat(all.body()).containsPattern("\"tag\":\"upstream\",\"values\":\\[[^]]*\"c\"")
                    .containsPattern("\"tag\":\"upstream\",\"values\":\\[[^]]*\"d\"");
        }
    }

    /**
     * Regression: a route to a uri whose settings all equal the defaults (written down to be sure, such as
     * {@code retry.max-attempts=3}) counted as a route without settings, so beside a named upstream of the same address
     * it ran as that upstream, under that upstream's values: the route's own were silently ignored.
     */
    @Test
    void aRouteSettingEqualToTheDefaultStillWinsOverANamedUpstreamOfTheSameAddress() throws Exception {
        try (FaultyUpstream upstream = FaultyUpstream.start();
                ConfigurableApplicationContext context = SpringApplication.run(SampleApplication.class,
                        "--server.port=0", "--upstream-guard.upstreams.inventory.url=" + upstream.url(),
                        "--upstream-guard.upstreams.inventory.retry.max-attempts=1",
                        "--upstream-guard.routes.c.path=/c/**", "--upstream-guard.routes.c.uri=" + upstream.url(),
                        "--upstream-guard.routes.c.strip-prefix=1", "--upstream-guard.routes.c.retry.max-attempts=3")) {
            int port = context.getEnvironment().getRequiredProperty("local.server.port", Integer.class);
            HttpResponse<String> reset = SampleHttp.get(port, "/c/reset", "application/problem+json");
            assertThat(reset.statusCode()).isEqualTo(502);
            assertThat(reset.body()).contains("\"upstream\":\"c\"").contains("\"attempts\":3");
        }
    }

    /**
     * Regression: the URLs printed at start-up showed every route as a prefix ({@code /c  ->  http://host/c/...}), also
     * one to an exact path, below which nothing is forwarded.
     */
    @Test
    void theUrlsPrintedAtStartUpShowAnExactRouteAsTheOnePathItForwards(CapturedOutput output) throws Exception {
        try (ConfigurableApplicationContext context = SpringApplication.run(SampleApplication.class,
                "--server.port=0", "--upstream-guard.routes.c.path=/c/**",
                "--upstream-guard.routes.c.uri=http://127.0.0.1:9/base", "--upstream-guard.routes.c.strip-prefix=1",
                "--upstream-guard.routes.s.path=/status", "--upstream-guard.routes.s.uri=http://127.0.0.1:9/base")) {
            String base = "http://127.0.0.1:" + context.getEnvironment().getProperty("local.server.port");
            assertThat(output.getOut()).contains(base + "/c/**  ->  http://127.0.0.1:9/base/...\n")
                    .contains(base + "/status  ->  http://127.0.0.1:9/base/status\n");
        }
    }

    @Test
    void withUpstreamGuardSwitchedOffTheGatewayStillStartsWithoutRoutes() throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        try (ConfigurableApplicationContext context = SpringApplication.run(SampleApplication.class,
                "--server.port=0", "--upstream-guard.enabled=false", "--upstream-guard.routes.c.path=/c/**",
                "--upstream-guard.routes.c.uri=http://127.0.0.1:9")) {
            assertThat(context.getBeanProvider(UpstreamRegistry.class).getIfAvailable()).isNull();
            String base = "http://127.0.0.1:" + context.getEnvironment().getProperty("local.server.port");
            HttpResponse<String> c = http.send(HttpRequest.newBuilder(URI.create(base + "/c/ok")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(c.statusCode()).isEqualTo(404);
        }
    }

    /**
     * Regression: {@code --tour} with routes of its own, or with Upstream Guard switched off, exited 0; switched off it
     * even printed a table of 404s and the application's own 500s, noted as the upstream's responses passed through.
     */
    @Test
    void theTourRefusesToRunWhereItCannotAndExitsNonZero(CapturedOutput output) {
        String[][] cases = {
            {"--upstream-guard.routes.c.path=/c/**", "--upstream-guard.routes.c.uri=http://127.0.0.1:9"},
            {"--upstream-guard.enabled=false"},
        };
        for (String[] args : cases) {
            String[] all = new String[args.length + 2];
            all[0] = "--server.port=0";
            all[1] = "--tour";
            System.arraycopy(args, 0, all, 2, args.length);
            ConfigurableApplicationContext context = SpringApplication.run(SampleApplication.class, all);
            assertThat(SpringApplication.exit(context)).as(String.join(" ", args)).isNotZero();
        }
        assertThat(output.getErr()).contains("--tour needs the embedded upstream")
                .contains("--tour needs Upstream Guard");
        assertThat(output.getOut()).doesNotContain("fault         via");
    }
}
