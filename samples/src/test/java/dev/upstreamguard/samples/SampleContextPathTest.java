package dev.upstreamguard.samples;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.http.HttpResponse;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.context.ConfigurableApplicationContext;

/** The sample under a context path, with Actuator on a port of its own. */
@ExtendWith(OutputCaptureExtension.class)
class SampleContextPathTest {

    /**
     * Regression: the tour, the {@code /tour} page and the URLs printed at start-up called the application at the
     * root of its port whatever its {@code server.servlet.context-path}: under one, every row of the tour was a 404
     * (and {@code --tour} exited 0) and the printed URLs led nowhere; with {@code management.server.port} the printed
     * Actuator URLs did not either.
     */
    @Test
    void theTourAndThePrintedUrlsFollowTheContextPathAndTheManagementPort(CapturedOutput output) throws Exception {
        try (ConfigurableApplicationContext context = SpringApplication.run(SampleApplication.class,
                "--server.port=0", "--server.servlet.context-path=/ctx", "--management.server.port=0")) {
            int port = context.getEnvironment().getRequiredProperty("local.server.port", Integer.class);
            String managementPort = context.getEnvironment().getRequiredProperty("local.management.port");
            HttpResponse<String> tour = SampleHttp.get(port, "/ctx/tour", "text/plain");
            assertThat(tour.statusCode()).isEqualTo(200);
            assertThat(tour.body()).contains("sample-gw; error=connection_terminated").doesNotContain(" 404 ");
            assertThat(output.getOut()).contains("curl -i http://127.0.0.1:" + port + "/ctx/faulty/reset\n")
                    .contains("actuator: http://127.0.0.1:" + managementPort + "/actuator/health ");
        }
    }

    /**
     * Regression (review): a context path or Actuator base path written with a trailing '/' ({@code /}, {@code /ctx/}),
     * which Spring Boot strips, doubled the '/' in every URL the tour called and printed: its api rows were 404s.
     */
    @Test
    void pathsWrittenWithATrailingSlashAreTakenAsSpringBootTakesThem(CapturedOutput output) throws Exception {
        try (ConfigurableApplicationContext context = SpringApplication.run(SampleApplication.class,
                "--server.port=0", "--server.servlet.context-path=/ctx/",
                "--management.endpoints.web.base-path=/admin/")) {
            int port = context.getEnvironment().getRequiredProperty("local.server.port", Integer.class);
            HttpResponse<String> tour = SampleHttp.get(port, "/ctx/tour", "text/plain");
            assertThat(tour.statusCode()).isEqualTo(200);
            assertThat(tour.body()).contains("sample-gw; error=connection_terminated").doesNotContain(" 404 ");
            assertThat(output.getOut()).contains("curl -i http://127.0.0.1:" + port + "/ctx/faulty/reset\n")
                    .contains("actuator: http://127.0.0.1:" + port + "/ctx/admin/health ")
                    .doesNotContain(port + "//");
        }
    }
}
