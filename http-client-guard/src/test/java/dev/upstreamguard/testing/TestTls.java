package dev.upstreamguard.testing;

import java.io.IOException;
import java.net.InetAddress;
import javax.net.ssl.SSLContext;
import mockwebserver3.MockWebServer;
import okhttp3.tls.HandshakeCertificates;
import okhttp3.tls.HeldCertificate;

/**
 * Throw-away TLS material for tests: a root CA made up on the spot and a server certificate it signed for
 * {@code localhost} and {@code 127.0.0.1}. Nothing trusts the root but {@link #clientContext()}, so a client with
 * the platform's trust store fails the handshake with a certificate error, and a client built with
 * {@link #clientContext()} succeeds.
 *
 * <pre>{@code
 * try (MockWebServer server = TestTls.httpsServer()) {
 *     server.enqueue(new MockResponse.Builder().body("secure").build());
 *     GuardedHttpClient client = GuardedHttpClients.custom().sslContext(TestTls.clientContext()).build();
 *     ... "https://127.0.0.1:" + server.getPort() + "/" ...
 * }
 * }</pre>
 *
 * <p>Keys are ECDSA P-256, generated once per JVM (cheap, and never written to disk).
 */
public final class TestTls {

    private static final class Holder {
        static final HeldCertificate ROOT = new HeldCertificate.Builder()
                .commonName("Upstream Guard test root (untrusted)")
                .certificateAuthority(0)
                .ecdsa256()
                .build();
        static final HeldCertificate SERVER = new HeldCertificate.Builder()
                .commonName("localhost")
                .addSubjectAlternativeName("localhost")
                .addSubjectAlternativeName("127.0.0.1")
                .signedBy(ROOT)
                .ecdsa256()
                .build();
        static final HandshakeCertificates SERVER_CERTIFICATES = new HandshakeCertificates.Builder()
                .heldCertificate(SERVER, ROOT.certificate())
                .build();
        static final HandshakeCertificates CLIENT_CERTIFICATES = new HandshakeCertificates.Builder()
                .addTrustedCertificate(ROOT.certificate())
                .build();
    }

    private TestTls() {
    }

    /** The made-up root CA; trusted by nothing except {@link #clientContext()}. */
    public static HeldCertificate rootCertificate() {
        return Holder.ROOT;
    }

    /** The server's certificate, for {@code localhost} and {@code 127.0.0.1}, signed by {@link #rootCertificate()}. */
    public static HeldCertificate serverCertificate() {
        return Holder.SERVER;
    }

    /** Key material for a server presenting {@link #serverCertificate()}. */
    public static HandshakeCertificates serverCertificates() {
        return Holder.SERVER_CERTIFICATES;
    }

    /** An {@code SSLContext} trusting only {@link #rootCertificate()}: use it for calls that must succeed. */
    public static SSLContext clientContext() {
        return Holder.CLIENT_CERTIFICATES.sslContext();
    }

    /** A started mockwebserver3 on 127.0.0.1 speaking HTTPS with {@link #serverCertificate()}. */
    public static MockWebServer httpsServer() throws IOException {
        MockWebServer server = new MockWebServer();
        server.useHttps(serverCertificates().sslSocketFactory());
        server.start(InetAddress.getLoopbackAddress(), 0);
        return server;
    }
}
