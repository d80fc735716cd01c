package dev.upstreamguard.testing;

import java.io.IOException;
import java.net.InetAddress;
import java.net.URI;
import java.util.function.Function;
import mockwebserver3.Dispatcher;
import mockwebserver3.MockResponse;
import mockwebserver3.MockWebServer;
import mockwebserver3.RecordedRequest;

/** Small helpers for mockwebserver3 in fault tests. */
public final class MockWebServers {

    private MockWebServers() {
    }

    /** A started plain-HTTP mockwebserver3 on 127.0.0.1. */
    public static MockWebServer start() throws IOException {
        MockWebServer server = new MockWebServer();
        server.start(InetAddress.getLoopbackAddress(), 0);
        return server;
    }

    /**
     * Makes {@code server} answer every request with {@code response}. Unlike {@code enqueue}, it never runs dry, so
     * a test need not know how many attempts a client will make (the default queue blocks when empty).
     */
    public static void always(MockWebServer server, MockResponse response) {
        answer(server, request -> response);
    }

    /** Makes {@code server} answer every request with whatever {@code responder} returns for it. */
    public static void answer(MockWebServer server, Function<RecordedRequest, MockResponse> responder) {
        server.setDispatcher(new Dispatcher() {
            @Override
            public MockResponse dispatch(RecordedRequest request) {
                return responder.apply(request);
            }
        });
    }

    /** {@code http://127.0.0.1:<port><path>}. */
    public static URI uri(MockWebServer server, String path) {
        return URI.create("http://127.0.0.1:" + server.getPort() + path);
    }

    /** {@code https://127.0.0.1:<port><path>}, for a server started by {@link TestTls#httpsServer()}. */
    public static URI httpsUri(MockWebServer server, String path) {
        return URI.create("https://127.0.0.1:" + server.getPort() + path);
    }
}
