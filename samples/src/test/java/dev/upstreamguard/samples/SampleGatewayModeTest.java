package dev.upstreamguard.samples;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.spring.UpstreamRegistry;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;

/** With routes on the command line the sample is a plain gateway: no embedded upstream, only those routes. */
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
}
