package dev.upstreamguard.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import javax.net.ssl.SSLHandshakeException;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The throw-away TLS material, checked with the JDK's HTTP client. */
@Timeout(30)
class TestTlsTest {

    @Test
    void aClientTrustingTheTestRootCompletesTheHandshakeWithHostnameVerification() throws Exception {
        try (MockWebServer server = TestTls.httpsServer()) {
            server.enqueue(new MockResponse.Builder().body("secure").build());
            HttpClient client = HttpClient.newBuilder().sslContext(TestTls.clientContext()).build();
            HttpResponse<String> response = client.send(
                    HttpRequest.newBuilder(MockWebServers.httpsUri(server, "/")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(response.statusCode()).isEqualTo(200);
            assertThat(response.body()).isEqualTo("secure");
            assertThat(server.takeRequest().getHandshake()).isNotNull();
        }
    }

    @Test
    void aClientWithThePlatformTrustStoreRejectsTheCertificate() throws Exception {
        try (MockWebServer server = TestTls.httpsServer()) {
            server.enqueue(new MockResponse.Builder().body("secure").build());
            HttpClient client = HttpClient.newHttpClient();
            assertThatThrownBy(() -> client.send(HttpRequest.newBuilder(MockWebServers.httpsUri(server, "/")).build(),
                    HttpResponse.BodyHandlers.ofString()))
                    .isInstanceOf(SSLHandshakeException.class)
                    .hasRootCauseInstanceOf(java.security.cert.CertPathBuilderException.class);
        }
    }
}
