package dev.upstreamguard.samples;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.http.HttpResponse;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;

/**
 * The sample with the README's opt-in for taking an instance out of rotation on an open circuit: readiness fails,
 * liveness never does, and the Prometheus scrape after a mix of faults stays valid and names the open circuit.
 */
@SpringBootTest(classes = SampleApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {
            "management.endpoint.health.status.order=down,circuit-open,out-of-service,up,unknown",
            "management.endpoint.health.status.http-mapping.circuit-open=503",
            "management.endpoint.health.group.readiness.include=readinessState,upstreams"})
class SampleReadinessOptInTest {

    /** One sample line of the text format: its name and its label names. */
    private static final Pattern SAMPLE = Pattern.compile("^([a-zA-Z_:][a-zA-Z0-9_:]*)\\{([^}]*)\\} \\S+$");
    private static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"(?:[^\"\\\\]|\\\\.)*\"");

    @LocalServerPort
    int port;

    private HttpResponse<String> get(String path, String accept) throws Exception {
        return SampleHttp.get(port, path, accept);
    }

    @Test
    void anOpenCircuitFailsReadinessButNeverLivenessAndTheScrapeStaysValid() throws Exception {
        assertThat(get("/actuator/health/readiness", "application/json").statusCode()).isEqualTo(200);
        for (String path : new String[] {"/faulty/ok", "/faulty/reset", "/faulty/not-http", "/faulty/truncated",
            "/faulty/unavailable", "/refused/x", "/api/reset"}) {
            get(path, "application/json");
        }
        // minimum-calls 3: three failures open the 'breaker' upstream's circuit, the fourth call is rejected.
        for (int i = 0; i < 3; i++) {
            assertThat(get("/breaker/reset", "application/json").statusCode()).isEqualTo(502);
        }
        assertThat(get("/breaker/reset", "application/json").statusCode()).isEqualTo(503);

        HttpResponse<String> readiness = get("/actuator/health/readiness", "application/json");
        assertThat(readiness.statusCode()).isEqualTo(503);
        assertThat(readiness.body()).contains("\"CIRCUIT_OPEN\"");
        HttpResponse<String> liveness = get("/actuator/health/liveness", "application/json");
        assertThat(liveness.statusCode()).isEqualTo(200);
        assertThat(liveness.body()).contains("\"status\":\"UP\"");
        assertThat(get("/actuator/health/upstreams/faulty", "application/json").statusCode()).isEqualTo(200);

        HttpResponse<String> prometheus = get("/actuator/prometheus", "text/plain");
        assertThat(prometheus.statusCode()).isEqualTo(200);
        // Every sample of one metric carries the same label names, as Prometheus requires.
        Map<String, TreeSet<String>> labelsByMetric = new HashMap<>();
        prometheus.body().lines().filter(l -> l.startsWith("upstream_guard") || l.startsWith("resilience4j"))
                .forEach(line -> {
                    Matcher sample = SAMPLE.matcher(line);
                    assertThat(sample.matches()).as(line).isTrue();
                    TreeSet<String> labels = new TreeSet<>();
                    Matcher label = LABEL.matcher(sample.group(2));
                    while (label.find()) {
                        labels.add(label.group(1));
                    }
                    TreeSet<String> first = labelsByMetric.putIfAbsent(sample.group(1), labels);
                    assertThat(first == null ? labels : first).as(line).isEqualTo(labels);
                });
        assertThat(labelsByMetric.get("upstream_guard_calls_seconds_count"))
                .containsExactly("fault", "method", "outcome", "status", "upstream");
        assertThat(labelsByMetric.get("upstream_guard_responses_total")).containsExactly("fault", "status");
        assertThat(prometheus.body())
                .contains("resilience4j_circuitbreaker_state{name=\"breaker\",state=\"open\"} 1.0")
                .contains("upstream_guard_calls_seconds_count{fault=\"destination_unavailable\",method=\"GET\","
                        + "outcome=\"rejected\",status=\"none\",upstream=\"breaker\"} 1")
                .contains("upstream_guard_calls_seconds_count{fault=\"none\",method=\"GET\",outcome=\"server_error\","
                        + "status=\"503\",upstream=\"faulty\"}")
                .contains("upstream_guard_responses_total{fault=\"destination_unavailable\",status=\"503\"} 1.0");
        assertThat(prometheus.body().lines().filter(l -> l.startsWith("upstream_guard")))
                .noneMatch(l -> l.contains("127.0.0.1") || l.contains("/faulty") || l.contains("/breaker"));
    }
}
