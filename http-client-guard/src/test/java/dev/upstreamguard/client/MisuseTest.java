package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowable;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.ClosedPort;
import dev.upstreamguard.testing.MockWebServers;
import dev.upstreamguard.testing.RawUpstream;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.time.Duration;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.classic.methods.HttpPost;
import org.apache.hc.client5.http.classic.methods.HttpUriRequestBase;
import org.apache.hc.client5.http.impl.classic.HttpClientBuilder;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.io.entity.StringEntity;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

@Timeout(30)
class MisuseTest {

    @Test
    void refusesSchemesOtherThanHttpBeforeOpeningAnyConnection() throws Exception {
        try (GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            UpstreamException e = catchThrowableOfType(UpstreamException.class,
                    () -> client.execute(new HttpGet("ftp://127.0.0.1:21/file"), r -> r.getCode()));

            assertThat(e.fault()).isEqualTo(UpstreamFault.PROXY_CONFIGURATION_ERROR);
            assertThat(e.fault().status()).isEqualTo(500);
            assertThat(e.attempts()).isZero();
        }
    }

    /**
     * Regression: a call on a closed client was sent into the shut pool and failed as {@code proxy_internal_error}
     * after 1 attempt, creating an upstream for the URL and counting the fault against it. Using a closed client is
     * the application's mistake: an IllegalStateException saying so, with no upstream created, blamed or metered.
     */
    @Test
    void aCallOnAClosedClientFailsWithAnIllegalStateExceptionAndTouchesNoUpstream() throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters).build();
        client.close();

        assertThatThrownBy(() -> client.execute(new HttpGet("http://127.0.0.1:9/"), r -> r.getCode()))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(() -> client.executeOpen(null, new HttpGet("http://127.0.0.1:9/"), null))
                .isInstanceOf(IllegalStateException.class);
        assertThat(client.upstreams()).isEmpty();
        assertThat(meters.find("upstream.guard.calls").timers()).isEmpty();
    }

    /**
     * Regression: a per-call policy of another type than {@code GuardPolicy} (a builder never built) was silently
     * ignored, and the call ran on the upstream's own timeouts and retries. It is refused naming the attribute and what
     * it held, before any upstream is created or called.
     */
    @Test
    void aPerCallPolicyThatIsNoGuardPolicyIsRefusedInsteadOfIgnored() throws Exception {
        try (MockWebServer server = MockWebServers.start();
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            MockWebServers.always(server, new MockResponse.Builder().body("hello").build());
            HttpClientContext context = HttpClientContext.create();
            context.setAttribute(GuardedHttpClient.POLICY_ATTRIBUTE,
                    GuardPolicy.builder().responseTimeout(Duration.ofMillis(500)));

            assertThatThrownBy(() -> client.execute(new HttpGet(MockWebServers.uri(server, "/")), context,
                    r -> r.getCode()))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining(GuardedHttpClient.POLICY_ATTRIBUTE)
                    .hasMessageContaining(GuardPolicy.Builder.class.getName());
            assertThat(server.getRequestCount()).isZero();
            assertThat(client.upstreams()).isEmpty();
        }
    }

    /**
     * Regression: a request to port 0 was sent (refused, three attempts) and counted as a fault of the upstream on the
     * scheme's default port, {@code http://127.0.0.1:80}. Like the ports {@code HttpGet} itself rejects (negative, or
     * over 65535), it is the caller's mistake: an IllegalArgumentException naming the URL, before any upstream is
     * created or called.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"http://127.0.0.1:0/x", "https://127.0.0.1:0/x", "http://localhost:0/x?token=SECRET"})
    void aRequestUrlWithAnInvalidPortFailsNamingItAndCallsNoUpstream(String url) throws Exception {
        try (GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            // Named without its query, which often holds a token: the message is logged.
            assertThatThrownBy(() -> client.execute(new HttpGet(url), r -> r.getCode()))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(url.replaceAll("\\?.*", ""))
                    .hasMessageNotContaining("SECRET");
            assertThat(client.upstreams()).isEmpty();
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"http://127.0.0.1:0", "https://127.0.0.1:0/", "http://127.0.0.1:65536"})
    void aNamedUpstreamWithAnInvalidPortFailsNamingIt(String url) {
        assertThatThrownBy(() -> GuardedHttpClients.custom().upstream("inventory", url))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("inventory").hasMessageContaining(url);
    }

    /** Regression: a named upstream without a URI (an unset variable) failed with a bare "baseUri" NullPointerException. */
    @Test
    void aNamedUpstreamWithoutAUriFailsNamingIt() {
        assertThatThrownBy(() -> GuardedHttpClients.custom().upstream("inventory", null))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("'inventory'")
                .hasMessageContaining("absolute http or https URI");
    }

    /** The default port is filled in only where none is written; a written port keeps its own upstream. */
    @Test
    void aValidPortStillReachesItsOwnUpstream() throws Exception {
        ClosedPort port = ClosedPort.find();
        try (GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            UpstreamException e = catchThrowableOfType(UpstreamException.class,
                    () -> client.execute(new HttpGet(port.uri("/")), r -> r.getCode()));
            assertThat(e.upstream()).isEqualTo(port.baseUrl());
        }
    }

    /**
     * Regression: a URL with userinfo, which HttpClient refuses to send (RFC 9110 §4.2.4: no userinfo in an http target),
     * failed as {@code http_protocol_error}, "the upstream's response was invalid", and counted against an upstream that
     * was never called. It is the caller's mistake, named without the credentials in it.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"http://user:secret@127.0.0.1:9/x", "https://user@127.0.0.1:9/x",
        "http://user@127.0.0.1:9/x?key=secret"})
    void aRequestUrlWithUserinfoFailsWithoutCallingOrBlamingTheUpstream(String url) throws Exception {
        try (GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            assertThatThrownBy(() -> client.execute(new HttpGet(url), r -> r.getCode()))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("userinfo")
                    .hasMessageContaining("127.0.0.1:9/x").hasMessageNotContaining("secret");
            assertThat(client.upstreams()).isEmpty();
        }
        assertThatThrownBy(() -> GuardedHttpClients.custom().upstream("inventory", url))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("inventory")
                .hasMessageContaining("userinfo").hasMessageNotContaining("secret");
    }

    /**
     * Regression: HttpClient refuses, before sending anything, a request that sets its own {@code Content-Length} or
     * {@code Transfer-Encoding} (as one does copying another request's headers); that refusal read as
     * {@code http_protocol_error}, "the upstream's response was invalid", counted as a fault and a breaker failure of an
     * upstream that was never sent a byte. It is the caller's mistake, named as such.
     */
    @ParameterizedTest(name = "{0}: {1}")
    @CsvSource({"Content-Length, 5", "content-length, 5", "Transfer-Encoding, chunked"})
    void aRequestSettingItsOwnFramingHeaderFailsAsTheCallersMistake(String header, String value) throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        try (RawUpstream upstream = RawUpstream.start(Behaviours.echo());
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters).build()) {
            HttpPost post = new HttpPost(upstream.uri("/orders"));
            post.setEntity(new StringEntity("hello"));
            post.setHeader(header, value);
            Throwable thrown = catchThrowable(() -> client.execute(post, r -> r.getCode()));
            assertThat(thrown).isInstanceOf(IllegalArgumentException.class);
            assertThat(thrown.getMessage()).containsIgnoringCase(header);
            assertThat(client.upstreams()).isEmpty();
            assertThat(meters.find("upstream.guard.calls").timers()).isEmpty();
            assertThat(upstream.connectionCount()).isZero();
        }
    }

    /**
     * Regression: a request refused before a byte is sent — a TRACE with a body, which HttpClient refuses as it copies
     * the request, or the caller's own request interceptor throwing — was blamed on the upstream: a
     * {@code proxy_internal_error} metered as its fault, or, for an interceptor's IOException or HttpException, a
     * fault the breaker counted too. A TRACE with a body is the caller's mistake, refused up front like the framing
     * headers; an interceptor's exception reaches the caller as thrown (an HttpException as the cause of an
     * IllegalArgumentException); neither touches the upstream's breaker, fault counts or fault meters.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"TRACE with a body", "interceptor's HttpException", "interceptor's IOException",
        "interceptor's RuntimeException"})
    void aRequestRefusedBeforeItIsSentIsTheCallersMistakeNotTheUpstreams(String how) throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        Exception own = how.endsWith("HttpException") ? new HttpException("no tenant")
                : how.endsWith("IOException") ? new IOException("no tenant") : new IllegalStateException("no tenant");
        HttpClientBuilder http = HttpClientBuilder.create();
        if (how.startsWith("interceptor")) {
            http.addRequestInterceptorFirst((request, entity, context) -> {
                if (own instanceof HttpException) {
                    throw (HttpException) own;
                }
                if (own instanceof IOException) {
                    throw (IOException) own;
                }
                throw (RuntimeException) own;
            });
        }
        try (RawUpstream upstream = RawUpstream.start(Behaviours.echo());
                GuardedHttpClient client = GuardedHttpClients.custom().httpClientBuilder(http).meterRegistry(meters)
                        .build()) {
            HttpUriRequestBase request;
            if (how.startsWith("TRACE")) {
                // HttpTrace refuses a body itself; a request built by method name does not, as when a proxy copies one.
                request = new HttpUriRequestBase("TRACE", upstream.uri("/"));
                request.setEntity(new StringEntity("hello"));
            } else {
                request = new HttpGet(upstream.uri("/"));
            }

            Throwable thrown = catchThrowable(() -> client.execute(request, r -> r.getCode()));

            if (how.startsWith("TRACE") || own instanceof HttpException) {
                assertThat(thrown).isInstanceOf(IllegalArgumentException.class);
            } else {
                assertThat(thrown).isSameAs(own);
            }
            if (own instanceof HttpException) {
                assertThat(thrown).hasRootCause(own);
            }
            // A TRACE with a body is refused up front, like a request with its own framing header: no upstream at all.
            assertThat(client.upstreams()).hasSize(how.startsWith("TRACE") ? 0 : 1);
            for (GuardedUpstream guarded : client.upstreams()) {
                assertThat(guarded.faultCounts()).isEmpty();
                assertThat(guarded.circuitBreaker().orElseThrow().getMetrics().getNumberOfFailedCalls()).isZero();
                assertThat(guarded.callsInFlight()).isZero();
            }
            assertThat(meters.find("upstream.guard.calls").tag("outcome", "fault").timers()).isEmpty();
            assertThat(upstream.requestCount()).isZero();
        }
    }

    /**
     * Regression: a request that asked to switch protocols ({@code Upgrade: websocket}, {@code h2c}) and that the
     * upstream agreed to switch (101) failed as http_protocol_error, a 502 counted against the upstream's breaker,
     * though the upstream did as asked: this client speaks HTTP/1.1 only and cannot go on in another protocol. It is
     * the caller's mistake (an IllegalArgumentException), recorded as cancelled, and kept off the upstream's record.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"websocket", "h2c"})
    void aRequestToSwitchProtocolsThatTheUpstreamAcceptsIsTheCallersMistakeNotTheUpstreams(String protocol)
            throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        RawUpstream.Behaviour switching = c -> {
            if (c.readRequest() != null) {
                c.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + protocol + "\r\nConnection: Upgrade\r\n\r\n");
                c.stallUntilClosed();
            }
        };
        try (RawUpstream upstream = RawUpstream.start(switching);
                GuardedHttpClient client = GuardedHttpClients.custom().meterRegistry(meters).build()) {
            HttpGet get = new HttpGet(upstream.uri("/socket"));
            get.setHeader("Connection", "Upgrade");
            get.setHeader("Upgrade", protocol);

            Throwable thrown = catchThrowable(() -> client.execute(get, r -> r.getCode()));

            assertThat(thrown).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("101");
            GuardedUpstream guarded = client.upstreams().iterator().next();
            assertThat(guarded.faultCounts()).isEmpty();
            assertThat(guarded.circuitBreaker().orElseThrow().getMetrics().getNumberOfFailedCalls()).isZero();
            assertThat(guarded.callsInFlight()).isZero();
            assertThat(meters.find("upstream.guard.calls").tag("outcome", "cancelled").timer().count()).isEqualTo(1);
            assertThat(upstream.requestCount()).isEqualTo(1);
        }
    }
}
