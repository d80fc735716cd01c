package dev.upstreamguard.client;

import static dev.upstreamguard.client.FaultMatrixTest.assertFault;
import static dev.upstreamguard.client.FaultMatrixTest.failure;
import static dev.upstreamguard.client.FaultMatrixTest.post;
import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.RawUpstream;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The redirect-following default client: a redirect is followed inside one attempt, so whatever fails on the way to
 * its target fails after the first upstream answered the request.
 */
@Timeout(30)
class RedirectTest {

    /** An upstream that answers every request with {@code status} and {@code location}, on keep-alive connections. */
    private static RawUpstream.Behaviour redirectTo(int status, String location) {
        return c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                c.write("HTTP/1.1 " + status + " Redirect\r\nLocation: " + location + "\r\nContent-Length: 0\r\n\r\n");
            }
        };
    }

    /**
     * Regression: a refused connection counts as a fault the upstream never saw, retried for any method; after a
     * redirect the first upstream had seen the POST, and each retry sent it the POST again (three in all).
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(ints = {302, 303, 307, 308})
    void aPostRedirectedToARefusingHostReachesTheFirstUpstreamExactlyOnce(int status) throws Exception {
        ClosedPort closed = ClosedPort.find();
        try (RawUpstream upstream = RawUpstream.start(redirectTo(status, closed.baseUrl() + "/elsewhere"));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            UpstreamException e = failure(client, post(upstream.uri("/orders")));
            assertFault(e, "connection_refused", 502, 1);
            assertThat(upstream.requestCount()).isEqualTo(1);
            assertThat(upstream.requests().get(0).method()).isEqualTo("POST");
        }
    }

    /**
     * Regression: the GET that follows a POST's 303 goes out on the connection the 303 came on; when the upstream closed
     * it under that GET (its keep-alive race), the call failed as connection_terminated, since a retry would have sent
     * the POST again. The GET alone is sent again on a fresh connection, as a request on a pooled connection closed
     * under it is: the POST reaches the upstream once and the call gets the GET's answer.
     */
    @Test
    void aFollowUpGetOnAConnectionClosedUnderItIsSentAgainWithoutReplayingThePost() throws Exception {
        RawUpstream.Behaviour seeOtherThenClose = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 303 See Other\r\nLocation: /done\r\nContent-Length: 0\r\n\r\n");
                c.readRequest(); // and closes without an answer, as the follow-up arrives
            }
        };
        try (RawUpstream upstream = RawUpstream.start(seeOtherThenClose, Behaviours.ok("done"));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            String body = client.execute(post(upstream.uri("/orders")), r -> EntityUtils.toString(r.getEntity()));
            assertThat(body).isEqualTo("done");
            assertThat(upstream.requests()).extracting(r -> r.method() + " " + r.target())
                    .containsExactly("POST /orders", "GET /done", "GET /done");
        }
    }

    /**
     * Regression: a 408 answering a redirect's follow-up on the connection the redirect came on (the upstream timing
     * that connection out for idling as the follow-up crossed it) was the call's answer when the first request was a
     * POST, and replayed the whole chain when it was a GET, while a first request's 408 on a reused connection is sent
     * again on a fresh one. The follow-up alone is sent again, as a first request is: the POST reaches the upstream once.
     */
    @Test
    void aFollowUpGetTimedOutWithA408OnItsReusedConnectionIsSentAgainWithoutReplayingThePost() throws Exception {
        RawUpstream.Behaviour seeOtherThen408 = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 303 See Other\r\nLocation: /done\r\nContent-Length: 0\r\n\r\n");
                if (c.readRequest() != null) {
                    c.write("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
                }
            }
        };
        try (RawUpstream upstream = RawUpstream.start(seeOtherThen408, Behaviours.ok("done"));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            String body = client.execute(post(upstream.uri("/orders")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(body).isEqualTo("200 done");
            assertThat(upstream.requests()).extracting(r -> r.method() + " " + r.target())
                    .containsExactly("POST /orders", "GET /done", "GET /done");
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(ints = {302, 307})
    void aGetRedirectedToARefusingHostIsStillRetried(int status) throws Exception {
        ClosedPort closed = ClosedPort.find();
        try (RawUpstream upstream = RawUpstream.start(redirectTo(status, closed.baseUrl() + "/elsewhere"));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            UpstreamException e = failure(client, new HttpGet(upstream.uri("/items")));
            assertFault(e, "connection_refused", 502, 3);
            assertThat(e.getSuppressed()).hasSize(2);
            assertThat(upstream.requestCount()).isEqualTo(3);
        }
    }

    /**
     * A decision, not an accident: RFC 9209 has no type for redirects that never end, and its catch-all for an upstream
     * exchange that cannot complete is {@code http_protocol_error} (not {@code proxy_loop_detected}, which is about a
     * request reaching this proxy again). Like other broken upstream behaviour it is not retried.
     */
    @ParameterizedTest(name = "circular={0}")
    @ValueSource(booleans = {true, false})
    void redirectsThatNeverEndAreAProtocolErrorAndNotRetried(boolean circular) throws Exception {
        RawUpstream.Behaviour endless = c -> {
            int n = 0;
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                String next = circular ? (r.target().equals("/a") ? "/b" : "/a") : "/n" + n++;
                c.write("HTTP/1.1 302 Found\r\nLocation: " + next + "\r\nContent-Length: 0\r\n\r\n");
            }
        };
        try (RawUpstream upstream = RawUpstream.start(endless);
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            assertFault(failure(client, new HttpGet(upstream.uri("/a"))), "http_protocol_error", 502, 1);
            assertThat(upstream.requestCount()).isLessThanOrEqualTo(51);
        }
    }

    /**
     * Regression: a redirect to a scheme the client does not speak ({@code ftp:}, {@code mailto:}) failed as
     * {@code http_protocol_error}, a 502 counted against the upstream's breaker, though the upstream answered with a
     * valid response that this client merely cannot follow. It is returned as it is, as a 3xx without a
     * {@code Location} is, for the caller to act on (as OkHttp does).
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ftp://127.0.0.1/file.txt", "mailto:ops@example.com", "FTP://127.0.0.1/file.txt"})
    void aRedirectToASchemeTheClientDoesNotSpeakIsReturnedAsItIs(String location) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(redirectTo(302, location));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            String seen = client.execute(new HttpGet(upstream.uri("/items")),
                    r -> r.getCode() + " " + r.getFirstHeader("Location").getValue());
            assertThat(seen).isEqualTo("302 " + location);
            assertThat(upstream.requestCount()).isEqualTo(1);
        }
    }

    /**
     * Regression: a {@code Location} with characters not allowed in a URI (a raw space, {@code |}, UTF-8 bytes of a
     * non-ASCII character) failed the call as http_protocol_error, a 502 counted against the upstream, where browsers,
     * curl and OkHttp percent-encode them (as UTF-8) and follow. It is followed the same way; an escape already there
     * is kept as it is.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"/a b|/a%20b", "/a|b?q=x y|/a%7Cb?q=x%20y", "/caf\u00e9/%41|/caf%C3%A9/%41",
            "/x\"{y}|/x%22%7By%7D", "/a[1]^?q[]=2|/a%5B1%5D%5E?q[]=2"})
    void aLocationWithCharactersNotAllowedInAUriIsPercentEncodedAndFollowed(String sentAndSeen) throws Exception {
        String location = sentAndSeen.substring(0, sentAndSeen.lastIndexOf('|'));
        String seen = sentAndSeen.substring(sentAndSeen.lastIndexOf('|') + 1);
        RawUpstream.Behaviour redirectsOnce = c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                if (r.target().equals("/items")) {
                    // The bytes of the Location as the upstream sends them: UTF-8.
                    c.write(("HTTP/1.1 302 Found\r\nLocation: " + location + "\r\nContent-Length: 0\r\n\r\n")
                            .getBytes(java.nio.charset.StandardCharsets.UTF_8));
                } else {
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: " + r.target().length() + "\r\n\r\n" + r.target());
                }
            }
        };
        try (RawUpstream upstream = RawUpstream.start(redirectsOnce);
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            String body = client.execute(new HttpGet(upstream.uri("/items")),
                    r -> r.getCode() + " " + EntityUtils.toString(r.getEntity()));
            assertThat(body).isEqualTo("200 " + seen);
            assertThat(upstream.requestCount()).isEqualTo(2);
        }
    }

    /** A malformed escape in a {@code Location} is not guessed at: it stays a protocol error, not followed. */
    @Test
    void aLocationWithAMalformedEscapeIsStillAProtocolError() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(redirectTo(302, "/a%zz b"));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            assertFault(failure(client, new HttpGet(upstream.uri("/items"))), "http_protocol_error", 502, 1);
            assertThat(upstream.requestCount()).isEqualTo(1);
        }
    }

    /**
     * Regression: a {@code Location} naming port 0, which no upstream listens on, was followed to the scheme's default
     * port (80 or 443), another service than the one named, while a request URI with port 0 is refused and a port over
     * 65535 in a {@code Location} is a protocol error. The upstream sent a target no request can go to: a protocol
     * error, not followed, not retried.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"http://127.0.0.1:0/elsewhere", "https://127.0.0.1:0/elsewhere"})
    void aRedirectToPortZeroIsAProtocolErrorNotACallToTheDefaultPort(String location) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(redirectTo(302, location));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            assertFault(failure(client, new HttpGet(upstream.uri("/items"))), "http_protocol_error", 502, 1);
            assertThat(upstream.requestCount()).isEqualTo(1);
        }
    }

    /**
     * Regression: HttpClient names the redirect's URI in its message, and the UpstreamException's message repeated
     * it, query and all ({@code ?token=…}); that message is logged, and a gateway may show it.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"/b?token=SECRET", "http://exa mple/?token=SECRET"})
    void theMessageOfAFailedRedirectKeepsTheQueryOfItsUriOut(String location) throws Exception {
        RawUpstream.Behaviour redirects = c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                // "/b?token=SECRET" leads back to itself: a circular redirect.
                c.write("HTTP/1.1 302 Found\r\nLocation: " + location + "\r\nContent-Length: 0\r\n\r\n");
            }
        };
        try (RawUpstream upstream = RawUpstream.start(redirects);
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            UpstreamException e = failure(client, new HttpGet(upstream.uri("/a?token=SECRET")));
            assertFault(e, "http_protocol_error", 502, 1);
            assertThat(e.getMessage()).contains("redirect").doesNotContain("SECRET");
        }
    }
}
