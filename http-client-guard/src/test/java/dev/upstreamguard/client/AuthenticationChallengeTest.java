package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.testing.RawUpstream;
import java.nio.charset.StandardCharsets;
import org.apache.hc.client5.http.auth.AuthExchange;
import org.apache.hc.client5.http.auth.AuthScope;
import org.apache.hc.client5.http.auth.UsernamePasswordCredentials;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.classic.methods.HttpPost;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.impl.auth.BasicCredentialsProvider;
import org.apache.hc.client5.http.impl.auth.BasicScheme;
import org.apache.hc.client5.http.impl.classic.HttpClients;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.apache.hc.core5.http.io.entity.InputStreamEntity;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * 401 and 407 challenges over real sockets: a client without credentials (a proxy's) passes them on untouched and
 * sends the request once; credentials a caller brings in its context, or a forward proxy's challenge, are still
 * handled by HttpClient as before.
 */
@org.junit.jupiter.api.Timeout(30)
class AuthenticationChallengeTest {

    private static final String BASIC_USER_PASS = "Basic dXNlcjpwYXNz"; // user:pass

    /** Answers 200 to a request that carries {@code header}, otherwise {@code status} with a Basic challenge. */
    private static RawUpstream.Behaviour challenging(int status, String header) {
        String challenge = status == 407 ? "Proxy-Authenticate" : "WWW-Authenticate";
        String reason = status == 407 ? "Proxy Authentication Required" : "Unauthorized";
        return c -> {
            for (RawUpstream.Request r = c.readRequest(); r != null; r = c.readRequest()) {
                if (r.header(header) != null) {
                    c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nin");
                } else {
                    c.write("HTTP/1.1 " + status + " " + reason + "\r\n" + challenge + ": Basic realm=\"r\"\r\n"
                            + "X-Upstream: kept\r\nContent-Length: 4\r\n\r\nwho?");
                }
            }
        };
    }

    private record Answer(int status, String challenge, String marker, String body) {
    }

    private static Answer call(GuardedHttpClient client, ClassicHttpRequest request, HttpClientContext context)
            throws Exception {
        return client.execute(request, context, r -> new Answer(r.getCode(),
                r.containsHeader("WWW-Authenticate") ? r.getFirstHeader("WWW-Authenticate").getValue() : null,
                r.containsHeader("X-Upstream") ? r.getFirstHeader("X-Upstream").getValue() : null,
                EntityUtils.toString(r.getEntity())));
    }

    private static HttpPost streamedPost(String uri) {
        HttpPost post = new HttpPost(uri);
        // Not repeatable: HttpClient could not send it again even with credentials.
        post.setEntity(new InputStreamEntity(
                new java.io.ByteArrayInputStream("body".getBytes(StandardCharsets.UTF_8)), 4, null));
        return post;
    }

    @ParameterizedTest(name = "proxy-style client: {0}")
    @ValueSource(booleans = {false, true})
    void anUpstreamsChallengePassesThroughUntouchedAndTheRequestIsSentOnceWithoutCredentials(boolean proxyStyle)
            throws Exception {
        GuardedHttpClientBuilder builder = GuardedHttpClients.custom();
        if (proxyStyle) {
            builder.redirects(false).contentCompression(false).defaultUserAgent(false);
        }
        try (RawUpstream upstream = RawUpstream.start(challenging(401, "Authorization"));
                GuardedHttpClient client = builder.build()) {
            Answer get = call(client, new HttpGet(upstream.uri("/a/b?c=d")), HttpClientContext.create());
            Answer post = call(client, streamedPost(upstream.uri("/a").toString()), HttpClientContext.create());

            assertThat(get).isEqualTo(new Answer(401, "Basic realm=\"r\"", "kept", "who?"));
            assertThat(post).isEqualTo(new Answer(401, "Basic realm=\"r\"", "kept", "who?"));
            assertThat(upstream.requests()).extracting(RawUpstream.Request::target).containsExactly("/a/b?c=d", "/a");
            assertThat(upstream.requests()).allSatisfy(r -> assertThat(r.header("Authorization")).isNull());
            assertThat(upstream.connectionCount()).as("the connection is reused after a challenge").isEqualTo(1);
        }
    }

    /**
     * A client without credentials skips HttpClient's authentication bookkeeping (it parsed every request's path into
     * an authentication scope, about 5 % of a proxy's CPU): no exchange is left with a path prefix or a state.
     */
    @Test
    void aClientWithoutCredentialsKeepsNoAuthenticationStatePerRequest() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(challenging(401, "Authorization"));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            HttpClientContext context = HttpClientContext.create();
            assertThat(call(client, new HttpGet(upstream.uri("/x/y")), context).status()).isEqualTo(401);
            assertThat(context.getAuthExchanges().values()).allSatisfy(exchange -> {
                assertThat(exchange.getState()).isEqualTo(AuthExchange.State.UNCHALLENGED);
                assertThat(exchange.getPathPrefix()).as("no authentication scope was worked out").isNull();
            });
        }
    }

    @Test
    void credentialsInTheCallersContextAnswerTheUpstreamsChallenge() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(challenging(401, "Authorization"));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            BasicCredentialsProvider credentials = new BasicCredentialsProvider();
            credentials.setCredentials(new AuthScope("127.0.0.1", upstream.port()),
                    new UsernamePasswordCredentials("user", "pass".toCharArray()));
            HttpClientContext context = HttpClientContext.create();
            context.setCredentialsProvider(credentials);

            assertThat(call(client, new HttpGet(upstream.uri("/x")), context))
                    .isEqualTo(new Answer(200, null, null, "in"));
            assertThat(upstream.requests()).extracting(r -> r.header("Authorization"))
                    .containsExactly(null, BASIC_USER_PASS);
        }
    }

    @Test
    void preemptiveCredentialsInTheCallersContextAreSentWithTheFirstRequest() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(challenging(401, "Authorization"));
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            BasicScheme basic = new BasicScheme();
            basic.initPreemptive(new UsernamePasswordCredentials("user", "pass".toCharArray()));
            HttpClientContext context = HttpClientContext.create();
            context.resetAuthExchange(new HttpHost("http", "127.0.0.1", upstream.port()), basic);

            assertThat(call(client, new HttpGet(upstream.uri("/x")), context).status()).isEqualTo(200);
            assertThat(upstream.requests()).extracting(r -> r.header("Authorization")).containsExactly(BASIC_USER_PASS);
        }
    }

    @SuppressWarnings("deprecation") // RequestConfig's proxy: how a client without a builder of its own names one
    private static GuardedHttpClient throughProxy(RawUpstream proxy, boolean ownBuilder) {
        HttpHost host = new HttpHost("http", "127.0.0.1", proxy.port());
        return ownBuilder
                ? GuardedHttpClients.custom().httpClientBuilder(HttpClients.custom().setProxy(host)).build()
                : GuardedHttpClients.custom().requestConfig(RequestConfig.custom().setProxy(host).build()).build();
    }

    @ParameterizedTest(name = "own HttpClient builder: {0}")
    @ValueSource(booleans = {false, true})
    void aForwardProxysChallengeIsPassedOnWithoutCredentials(boolean ownBuilder) throws Exception {
        try (RawUpstream proxy = RawUpstream.start(challenging(407, "Proxy-Authorization"));
                GuardedHttpClient client = throughProxy(proxy, ownBuilder)) {
            Answer answer = client.execute(new HttpGet("http://upstream.invalid/x"), HttpClientContext.create(),
                    r -> new Answer(r.getCode(), null, r.getFirstHeader("Proxy-Authenticate").getValue(),
                            EntityUtils.toString(r.getEntity())));

            assertThat(answer).isEqualTo(new Answer(407, null, "Basic realm=\"r\"", "who?"));
            assertThat(proxy.requests()).extracting(RawUpstream.Request::target)
                    .containsExactly("http://upstream.invalid/x");
        }
    }

    @ParameterizedTest(name = "own HttpClient builder: {0}")
    @ValueSource(booleans = {false, true})
    void credentialsInTheCallersContextAnswerAForwardProxysChallenge(boolean ownBuilder) throws Exception {
        try (RawUpstream proxy = RawUpstream.start(challenging(407, "Proxy-Authorization"));
                GuardedHttpClient client = throughProxy(proxy, ownBuilder)) {
            BasicCredentialsProvider credentials = new BasicCredentialsProvider();
            credentials.setCredentials(new AuthScope("127.0.0.1", proxy.port()),
                    new UsernamePasswordCredentials("user", "pass".toCharArray()));
            HttpClientContext context = HttpClientContext.create();
            context.setCredentialsProvider(credentials);

            assertThat(call(client, new HttpGet("http://upstream.invalid/x"), context).status()).isEqualTo(200);
            assertThat(proxy.requests()).extracting(r -> r.header("Proxy-Authorization"))
                    .containsExactly(null, BASIC_USER_PASS);
        }
    }
}
