package dev.upstreamguard.samples;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Walks every fault of the {@link FaultyUpstream} through this application, once through the proxy route and once
 * through the guarded RestClient, and records what a client of the gateway sees.
 */
public final class Tour {

    private static final Pattern ATTEMPTS = Pattern.compile("\"attempts\"\\s*:\\s*(\\d+)");

    private final String base;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    /** A tour of the application listening at {@code base}, such as {@code http://127.0.0.1:8080}. */
    public Tour(String base) {
        this.base = base;
    }

    /**
     * One request and its answer.
     *
     * @param fault what the upstream does
     * @param via {@code route} (proxy servlet) or {@code api} (RestClient in a controller)
     * @param path the path requested
     * @param status the status the client got, or 0 when none
     * @param proxyStatus the Proxy-Status header, or {@code -} when absent (the upstream's own response)
     * @param attempts the attempts reported in the problem body, or {@code -}
     * @param note anything else worth knowing
     */
    public record Row(String fault, String via, String path, int status, String proxyStatus, String attempts,
            String note) {
    }

    /** Runs the tour. */
    public List<Row> run() {
        List<Row> rows = new ArrayList<>();
        for (String fault : FaultyUpstream.FAULTS) {
            rows.add(call(fault, "route", "/faulty/" + fault));
            rows.add(call(fault, "api", "/api/" + fault));
        }
        rows.add(call("refused", "route", "/refused/ok"));
        rows.add(call("refused", "api", "/api/refused"));
        // Three failures open the 'breaker' upstream's circuit; the fourth call is rejected without touching it.
        Row last = null;
        for (int i = 0; i < 4; i++) {
            last = call("circuit-open", "route", "/breaker/reset");
        }
        rows.add(last);
        return rows;
    }

    private Row call(String fault, String via, String path) {
        HttpRequest request = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofSeconds(30))
                .header("Accept", "application/problem+json, */*;q=0.1").build();
        try {
            HttpResponse<InputStream> response = http.send(request, HttpResponse.BodyHandlers.ofInputStream());
            String proxyStatus = response.headers().firstValue("Proxy-Status").orElse("-");
            String note = response.headers().firstValue("Retry-After").map(s -> "Retry-After: " + s).orElse("");
            String body;
            try (InputStream in = response.body()) {
                body = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                return new Row(fault, via, path, response.statusCode(), proxyStatus, "-",
                        "body cut off: the client connection was aborted (" + e.getClass().getSimpleName() + ")");
            }
            Matcher m = ATTEMPTS.matcher(body);
            String attempts = m.find() && !proxyStatus.equals("-") ? m.group(1) : "-";
            if (proxyStatus.equals("-") && response.statusCode() >= 500) {
                note = note.isEmpty() ? "upstream's own response, passed through"
                        : "upstream's own response, passed through; " + note;
            }
            return new Row(fault, via, path, response.statusCode(), proxyStatus, attempts, note);
        } catch (IOException e) {
            return new Row(fault, via, path, 0, "-", "-", "no response: " + e.getClass().getSimpleName());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Row(fault, via, path, 0, "-", "-", "interrupted");
        }
    }

    /** The rows as a plain-text table. */
    public static String table(List<Row> rows) {
        String[] header = {"fault", "via", "status", "Proxy-Status", "attempts", "note"};
        List<String[]> cells = new ArrayList<>();
        cells.add(header);
        for (Row r : rows) {
            cells.add(new String[] {r.fault(), r.via(), r.status() == 0 ? "-" : Integer.toString(r.status()),
                r.proxyStatus(), r.attempts(), r.note()});
        }
        int[] width = new int[header.length];
        for (String[] c : cells) {
            for (int i = 0; i < c.length; i++) {
                width[i] = Math.max(width[i], c[i].length());
            }
        }
        StringBuilder sb = new StringBuilder();
        for (int row = 0; row < cells.size(); row++) {
            String[] c = cells.get(row);
            StringBuilder line = new StringBuilder();
            for (int i = 0; i < c.length; i++) {
                line.append(i == 0 ? "" : "  ").append(i == c.length - 1 ? c[i] : pad(c[i], width[i]));
            }
            // A row without a note would end in the padding of its last columns.
            sb.append(line.toString().stripTrailing()).append('\n');
            if (row == 0) {
                for (int i = 0; i < c.length; i++) {
                    sb.append(i == 0 ? "" : "  ").append("-".repeat(width[i]));
                }
                sb.append('\n');
            }
        }
        return sb.toString();
    }

    /** The rows as a small HTML page. */
    public static String html(List<Row> rows) {
        StringBuilder sb = new StringBuilder("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                + "<title>Upstream Guard tour</title><style>body{font-family:system-ui,sans-serif;margin:2em}"
                + "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
                + "code{font-size:.9em;white-space:nowrap}</style></head><body><h1>Upstream Guard tour</h1>"
                + "<p>Every fault of the embedded upstream, through the proxy route and through a guarded RestClient."
                + "</p><table><tr><th>fault</th><th>via</th><th>request</th><th>status</th><th>Proxy-Status</th>"
                + "<th>attempts</th><th>note</th></tr>\n");
        for (Row r : rows) {
            sb.append("<tr><td>").append(escape(r.fault())).append("</td><td>").append(r.via())
                    .append("</td><td><a href=\"").append(escape(r.path())).append("\">").append(escape(r.path()))
                    .append("</a></td><td>").append(r.status() == 0 ? "-" : r.status()).append("</td><td><code>")
                    .append(escape(r.proxyStatus())).append("</code></td><td>").append(r.attempts())
                    .append("</td><td>").append(escape(r.note())).append("</td></tr>\n");
        }
        return sb.append("</table></body></html>\n").toString();
    }

    private static String pad(String s, int width) {
        return s + " ".repeat(width - s.length());
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
