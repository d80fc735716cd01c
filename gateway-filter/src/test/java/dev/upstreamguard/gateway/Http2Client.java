package dev.upstreamguard.gateway;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** The JDK's HTTP/2 client on one h2c connection to an embedded container, for the HTTP/2 tests. */
final class Http2Client {

    /** How long a body's read may take before the stream counts as neither reset nor ended. */
    static final Duration BODY_TIMEOUT = Duration.ofSeconds(30);

    private final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_2).build();
    private final int port;

    /**
     * Upgrades the connection with a GET of {@code warmUpPath}, which must answer "ok": the JDK's client stalls on a
     * body over 64 KiB sent on the upgrade's own stream (the same without the gateway), so a small one settles the
     * connection for the tests' streams.
     */
    Http2Client(int port, String warmUpPath) throws IOException, InterruptedException {
        this.port = port;
        assertThat(client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + warmUpPath)).build(),
                HttpResponse.BodyHandlers.ofString()).body()).isEqualTo("ok");
    }

    /**
     * A GET over HTTP/2, its body left to read, with {@code fields} given as name and value in turn; a name given twice
     * is sent as two fields.
     */
    HttpResponse<InputStream> get(String path, String... fields) throws IOException, InterruptedException {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30));
        for (int i = 0; i < fields.length; i += 2) {
            request.header(fields[i], fields[i + 1]);
        }
        HttpResponse<InputStream> response = client.send(request.build(), HttpResponse.BodyHandlers.ofInputStream());
        assertThat(response.version()).isEqualTo(HttpClient.Version.HTTP_2);
        return response;
    }

    /** A POST over HTTP/2 whose body has no stated length (no {@code content-length}, only DATA frames). */
    HttpResponse<byte[]> postOfNoStatedLength(String path, byte[] body) throws IOException, InterruptedException {
        HttpResponse<byte[]> response = client.send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(30))
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(body))).build(),
                HttpResponse.BodyHandlers.ofByteArray());
        assertThat(response.version()).isEqualTo(HttpClient.Version.HTTP_2);
        return response;
    }

    /**
     * A GET whose stream the gateway resets after sending a 200 head: the reset reaches the client while it reads the
     * body, or, when both frames arrive together, before {@code send} hands over the head (JDK 25's client fails the
     * exchange then). Either way the stream was reset, not ended as if whole.
     */
    void assertResetAfterA200Head(String path) throws InterruptedException {
        HttpResponse<InputStream> response;
        try {
            response = get(path);
        } catch (IOException resetBeforeTheHead) {
            assertThat(resetBeforeTheHead).hasMessageContaining("RST_STREAM");
            return;
        }
        assertThat(response.statusCode()).isEqualTo(200);
        assertStreamReset(response);
    }

    /**
     * Asserts that reading the body fails: its stream was reset, not ended as if whole. Bounded: a stream neither reset
     * nor ended would leave the JDK's client reading forever (its request timeout stops at the head), so the read
     * runs on a thread of its own and the assertion fails once {@link #BODY_TIMEOUT} has passed.
     */
    static void assertStreamReset(HttpResponse<InputStream> response) {
        CompletableFuture<Throwable> read = CompletableFuture.supplyAsync(() -> {
            try (InputStream in = response.body()) {
                in.transferTo(OutputStream.nullOutputStream());
                return null;
            } catch (Throwable failed) {
                return failed;
            }
        }, runnable -> {
            Thread reader = new Thread(runnable, "http2-body-read");
            reader.setDaemon(true);
            reader.start();
        });
        Throwable failure;
        try {
            failure = read.get(BODY_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } catch (TimeoutException stillReading) {
            closeQuietly(response);
            throw new AssertionError("The stream was neither reset nor ended within " + BODY_TIMEOUT);
        } catch (InterruptedException | ExecutionException e) {
            closeQuietly(response);
            throw new AssertionError("The body's read did not finish", e);
        }
        assertThat(failure).as("the body's read, which a reset stream fails").isInstanceOf(IOException.class);
    }

    private static void closeQuietly(HttpResponse<InputStream> response) {
        try {
            response.body().close();
        } catch (IOException ignored) {
            // Closing only frees the stream; the assertion already failed.
        }
    }
}
