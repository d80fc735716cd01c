package dev.upstreamguard.samples;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;

/** The sample starts with its embedded faulty upstream and answers its tour. */
@SpringBootTest(classes = SampleApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class SampleApplicationTest {

    @LocalServerPort
    int port;

    private HttpResponse<String> get(String path, String accept) throws Exception {
        return SampleHttp.get(port, path, accept);
    }

    @Test
    void theTourTranslatesEveryFaultOfTheEmbeddedUpstream() throws Exception {
        List<Tour.Row> rows = new Tour("http://127.0.0.1:" + port).run();
        Map<String, Tour.Row> byKey = rows.stream()
                .collect(Collectors.toMap(r -> r.fault() + "/" + r.via(), Function.identity()));

        assertThat(byKey.get("ok/route").status()).isEqualTo(200);
        assertThat(byKey.get("ok/api").status()).isEqualTo(200);
        for (String via : List.of("route", "api")) {
            assertRow(byKey.get("slow/" + via), 504, "connection_read_timeout", "http_response_timeout");
            assertRow(byKey.get("reset/" + via), 502, "connection_terminated");
            assertRow(byKey.get("not-http/" + via), 502, "http_protocol_error");
            assertRow(byKey.get("huge-header/" + via), 502, "http_response_header_size",
                    "http_response_header_section_size");
            assertRow(byKey.get("refused/" + via), 502, "connection_refused");
            assertRow(byKey.get("too-big/" + via), 502, "http_response_body_size");
            // The upstream's own 503s pass through unchanged: no Proxy-Status, Retry-After intact.
            assertThat(byKey.get("unavailable/" + via).status()).isEqualTo(503);
            assertThat(byKey.get("unavailable/" + via).proxyStatus()).isEqualTo("-");
            assertThat(byKey.get("unavailable/" + via).note()).contains("Retry-After: 30");
            assertThat(byKey.get("flaky/" + via).status()).isEqualTo(503);
            assertThat(byKey.get("flaky/" + via).proxyStatus()).isEqualTo("-");
        }
        assertRow(byKey.get("close/api"), 502, "connection_terminated", "http_response_incomplete");
        assertRow(byKey.get("close/route"), 502, "connection_terminated", "http_response_incomplete");
        // A short body of known length breaks before anything is committed, so the proxy route answers 502 as well.
        assertRow(byKey.get("truncated/api"), 502, "http_response_incomplete");
        assertRow(byKey.get("truncated/route"), 502, "http_response_incomplete");
        assertRow(byKey.get("circuit-open/route"), 503, "destination_unavailable");
        assertThat(byKey.get("circuit-open/route").note()).startsWith("Retry-After: ");
        assertThat(byKey.get("reset/route").attempts()).isEqualTo("3");

        // The README's table lists the same requests, in the same order, with the statuses they get now.
        assertThat(readmeTourRows()).extracting(r -> r.fault() + " " + r.via() + " " + r.status())
                .containsExactlyElementsOf(rows.stream().map(r -> r.fault() + " " + r.via() + " " + r.status())
                        .toList());
    }

    /**
     * Regression: the README's copy of the {@code --tour} output had a note column ruled five characters wider than
     * the tour prints it, and the tour printed trailing blanks on every row without a note.
     */
    @Test
    void theReadmeShowsTheTourTableExactlyAsTheTourPrintsIt() throws Exception {
        assertThat(Tour.table(readmeTourRows())).isEqualTo(readmeTourBlock());
    }

    /** The table under "The tour's output" in the README, header included, one line per row. */
    private static String readmeTourBlock() throws java.io.IOException {
        String readme = java.nio.file.Files.readString(java.nio.file.Path.of("..", "README.md"));
        int section = readme.indexOf("The tour's output");
        int start = readme.indexOf("```\n", section) + 4;
        return readme.substring(start, readme.indexOf("```", start));
    }

    /** The README table's rows, read back as the tour's rows (columns are two or more blanks apart). */
    private static List<Tour.Row> readmeTourRows() throws java.io.IOException {
        return readmeTourBlock().lines().skip(2).map(line -> {
            String[] c = line.split(" {2,}", 6);
            return new Tour.Row(c[0], c[1], "", Integer.parseInt(c[2]), c[3], c[4], c.length > 5 ? c[5] : "");
        }).toList();
    }

    private static void assertRow(Tour.Row row, int status, String... faults) {
        assertThat(row.status()).as(row.toString()).isEqualTo(status);
        assertThat(row.proxyStatus()).as(row.toString())
                .isIn(java.util.Arrays.stream(faults).map(f -> "sample-gw; error=" + f).toList());
    }

    @Test
    void theTourPageShowsTheTable() throws Exception {
        HttpResponse<String> text = get("/tour", "text/plain");
        assertThat(text.statusCode()).isEqualTo(200);
        assertThat(text.body()).contains("Proxy-Status").contains("sample-gw; error=connection_refused")
                .contains("sample-gw; error=destination_unavailable");
        HttpResponse<String> html = get("/tour", "text/html");
        assertThat(html.statusCode()).isEqualTo(200);
        assertThat(html.body()).contains("<table>").contains("connection_terminated");
    }

    @Test
    void thePrometheusOutputNamesNoRequestedPathInAnyTag() throws Exception {
        // A path the client chose must not become a tag value (one time series per path): templates only.
        get("/api/no-such-fault-7f3a", "text/plain");
        get("/faulty/no-such-fault-7f3a", "text/plain");
        HttpResponse<String> prometheus = get("/actuator/prometheus", "text/plain");
        assertThat(prometheus.statusCode()).isEqualTo(200);
        assertThat(prometheus.body()).contains("http_client_requests").doesNotContain("no-such-fault-7f3a");
    }

    @Test
    void theActuatorEndpointsOfTheSampleAreExposed() throws Exception {
        assertThat(get("/actuator/health", "application/json").statusCode()).isEqualTo(200);
        HttpResponse<String> upstreams = get("/actuator/upstreams", "application/json");
        assertThat(upstreams.statusCode()).isEqualTo(200);
        assertThat(upstreams.body()).contains("\"faulty\"").contains("\"refused\"").contains("\"breaker\"");
        get("/faulty/ok", "text/plain");
        assertThat(get("/actuator/metrics/upstream.guard.calls", "application/json").statusCode()).isEqualTo(200);
        HttpResponse<String> prometheus = get("/actuator/prometheus", "text/plain");
        assertThat(prometheus.statusCode()).isEqualTo(200);
        assertThat(prometheus.body()).contains("upstream_guard_calls");
    }
}
