package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.InetAddress;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.io.entity.EntityUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(30)
class CookieIsolationTest {

    @Test
    void neverSendsOneCallersCookiesWithAnotherCallersRequest() throws Exception {
        try (MockWebServer server = new MockWebServer();
                GuardedHttpClient client = GuardedHttpClients.createDefault()) {
            server.enqueue(new MockResponse.Builder().addHeader("Set-Cookie", "SESSION=alice; Path=/").body("a").build());
            server.enqueue(new MockResponse.Builder().body("b").build());
            server.start(InetAddress.getLoopbackAddress(), 0);
            String base = "http://127.0.0.1:" + server.getPort();

            String setCookie = client.execute(new HttpGet(base + "/login"),
                    r -> { EntityUtils.consume(r.getEntity()); return r.getFirstHeader("Set-Cookie").getValue(); });
            client.execute(new HttpGet(base + "/other-user"), r -> EntityUtils.toString(r.getEntity()));

            assertThat(setCookie).isEqualTo("SESSION=alice; Path=/");
            server.takeRequest();
            assertThat(server.takeRequest().getHeaders().get("Cookie")).isNull();
        }
    }

    @Test
    void keepsCookiesWhenAskedTo() throws Exception {
        try (MockWebServer server = new MockWebServer();
                GuardedHttpClient client = GuardedHttpClients.custom().cookieManagement(true).build()) {
            server.enqueue(new MockResponse.Builder().addHeader("Set-Cookie", "SESSION=alice; Path=/").body("a").build());
            server.enqueue(new MockResponse.Builder().body("b").build());
            server.start(InetAddress.getLoopbackAddress(), 0);
            String base = "http://127.0.0.1:" + server.getPort();

            client.execute(new HttpGet(base + "/login"), r -> EntityUtils.toString(r.getEntity()));
            client.execute(new HttpGet(base + "/again"), r -> EntityUtils.toString(r.getEntity()));

            server.takeRequest();
            assertThat(server.takeRequest().getHeaders().get("Cookie")).isEqualTo("SESSION=alice");
        }
    }
}
