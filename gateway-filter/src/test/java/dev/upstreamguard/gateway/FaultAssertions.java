package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamFault;
import java.io.IOException;
import java.util.regex.Pattern;

/** The checks every generated fault response must pass, for each body format. */
final class FaultAssertions {

    private FaultAssertions() {
    }

    /**
     * Requests {@code path} four times — asking for JSON, HTML, anything, and with HEAD — and checks each answer:
     * status, {@code Proxy-Status}, {@code Cache-Control}, {@code Retry-After} presence, body format, and that the
     * body names the fault without a stack trace or an address.
     *
     * @return the JSON response, for further checks
     */
    static RawClient.Response assertGeneratedFault(int port, String path, UpstreamFault fault, boolean retryAfter)
            throws IOException {
        return assertGeneratedFault(port, path, fault, retryAfter, true);
    }

    /** As above; {@code head} false for a fault a HEAD request cannot have, such as a body over its limit. */
    static RawClient.Response assertGeneratedFault(int port, String path, UpstreamFault fault, boolean retryAfter,
            boolean head) throws IOException {
        return assertGeneratedFault(RawClient::request, port, path, fault, retryAfter, head);
    }

    /** How the checks send a request: {@link RawClient#request} by default. */
    @FunctionalInterface
    interface Requester {
        RawClient.Response request(int port, String method, String target, String... headerLines) throws IOException;
    }

    /**
     * Sends a request again while its answer is a committed 200 cut short — checking that it is cut, never clean — and
     * returns the first other answer. For an upstream body truncated at a pause: its clean 502 needs the upstream's
     * close within the servlet's 1 ms look past the pause, and on a loaded machine the upstream's thread can close
     * later; then the head has gone out and only the cut can show the fault. Both answers are right.
     */
    static RawClient.Response requestPastCommittedCuts(int port, String method, String target, String... headerLines)
            throws IOException {
        RawClient.Response answer = RawClient.request(port, method, target, headerLines);
        for (int tries = 1; tries < 10 && answer.status() == 200; tries++) {
            assertThat(answer.complete()).as("a committed truncated body ends cut, never clean: %s", answer).isFalse();
            answer = RawClient.request(port, method, target, headerLines);
        }
        return answer;
    }

    /** As above, each request sent by {@code client}. */
    static RawClient.Response assertGeneratedFault(Requester client, int port, String path, UpstreamFault fault,
            boolean retryAfter, boolean head) throws IOException {
        String proxyStatus = "upstream-guard; error=" + fault.type();

        RawClient.Response json = client.request(port, "GET", path, "Accept: application/json");
        assertCommon(json, fault, proxyStatus, retryAfter);
        assertThat(json.header("Content-Type")).startsWith("application/problem+json");
        assertThat(json.bodyUtf8())
                .startsWith("{\"type\":\"https://upstreamguard.dev/problems/" + fault.type() + "\"")
                .contains("\"status\":" + fault.status(), "\"fault\":\"" + fault.type() + "\"", "\"title\":\"",
                        "\"detail\":\"", "\"attempts\":", "\"instance\":\"" + pathOnly(path) + "\"")
                .endsWith("}");

        RawClient.Response html = client.request(port, "GET", path,
                "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        assertCommon(html, fault, proxyStatus, retryAfter);
        assertThat(html.header("Content-Type")).startsWith("text/html");
        assertThat(html.bodyUtf8()).startsWith("<!DOCTYPE html>").contains("<code>" + fault.type() + "</code>")
                .endsWith("</html>\n");

        RawClient.Response plain = client.request(port, "GET", path, "Accept: */*");
        assertCommon(plain, fault, proxyStatus, retryAfter);
        assertThat(plain.header("Content-Type")).startsWith("text/plain");
        assertThat(plain.bodyUtf8()).startsWith(fault.status() + " ").contains("fault: " + fault.type());

        if (head) {
            RawClient.Response answer = client.request(port, "HEAD", path, "Accept: application/json");
            assertThat(answer.status()).as("HEAD status").isEqualTo(fault.status());
            assertProxyStatus(answer, fault, proxyStatus);
            assertThat(answer.body()).isEmpty();
        }
        return json;
    }

    private static void assertCommon(RawClient.Response r, UpstreamFault fault, String proxyStatus,
            boolean retryAfter) {
        assertThat(r.status()).as("status of %s", r).isEqualTo(fault.status());
        assertThat(r.complete()).isTrue();
        assertProxyStatus(r, fault, proxyStatus);
        assertThat(r.header("Cache-Control")).isEqualTo("no-store");
        if (retryAfter) {
            assertThat(r.header("Retry-After")).as("Retry-After").matches("[1-9][0-9]*");
        } else {
            assertThat(r.header("Retry-After")).as("Retry-After").isNull();
        }
        assertThat(r.bodyUtf8()).doesNotContain("127.0.0.1", "Exception", "\tat ", ".invalid");
    }

    /**
     * {@code expected}, which for {@code tls_alert_received} may go on with the alert's parameters: they are there
     * when the JDK named the alert, not when the upstream just closed mid-handshake.
     */
    private static void assertProxyStatus(RawClient.Response r, UpstreamFault fault, String expected) {
        if (fault == UpstreamFault.TLS_ALERT_RECEIVED) {
            assertThat(r.header("Proxy-Status")).matches(Pattern.quote(expected)
                    + "(; alert-id=[0-9]+; alert-message=\"[a-z_]+\")?");
        } else {
            assertThat(r.header("Proxy-Status")).isEqualTo(expected);
        }
    }

    private static String pathOnly(String path) {
        int q = path.indexOf('?');
        return q < 0 ? path : path.substring(0, q);
    }
}
