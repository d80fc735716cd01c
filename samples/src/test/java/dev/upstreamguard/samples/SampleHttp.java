package dev.upstreamguard.samples;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

/** The sample's tests' client: GETs from the sample on its port, as any HTTP client would, within bounded times. */
final class SampleHttp {

    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private SampleHttp() {
    }

    /** GETs {@code path} from the sample listening on {@code port}, asking for {@code accept}. */
    static HttpResponse<String> get(int port, String path, String accept) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(60)).header("Accept", accept).build(), HttpResponse.BodyHandlers.ofString());
    }
}
