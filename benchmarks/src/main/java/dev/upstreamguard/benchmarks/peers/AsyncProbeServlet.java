package dev.upstreamguard.benchmarks.peers;

import jakarta.servlet.AsyncContext;
import jakarta.servlet.ServletException;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.util.Enumeration;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.async.methods.SimpleHttpRequest;
import org.apache.hc.client5.http.async.methods.SimpleHttpResponse;
import org.apache.hc.client5.http.async.methods.SimpleRequestProducer;
import org.apache.hc.client5.http.async.methods.SimpleResponseConsumer;
import org.apache.hc.client5.http.config.ConnectionConfig;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.impl.async.CloseableHttpAsyncClient;
import org.apache.hc.client5.http.impl.async.HttpAsyncClients;
import org.apache.hc.client5.http.impl.nio.PoolingAsyncClientConnectionManager;
import org.apache.hc.client5.http.impl.nio.PoolingAsyncClientConnectionManagerBuilder;
import org.apache.hc.core5.concurrent.FutureCallback;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpVersion;
import org.apache.hc.core5.http2.HttpVersionPolicy;
import org.apache.hc.core5.reactor.IOReactorConfig;
import org.apache.hc.core5.util.Timeout;

/**
 * The fallback, measured before building it: the least an async proxy can do (Servlet async + the async
 * HttpClient 5, whole small bodies buffered, no guard, no streaming, no fault handling). Its throughput is an upper
 * bound for a production async proxy on the same stack; it is a benchmark target only, never a product.
 */
public final class AsyncProbeServlet extends HttpServlet {

    private static final Set<String> HOP = Set.of("connection", "keep-alive", "proxy-connection", "te", "trailer",
            "transfer-encoding", "upgrade", "host", "content-length");

    private transient CloseableHttpAsyncClient client;
    private String upstream;

    @Override
    @SuppressWarnings("deprecation") // setVersionPolicy: HTTP/1.1 only, as every other target speaks to the upstream
    public void init() throws ServletException {
        upstream = getInitParameter("upstream");
        int max = Integer.parseInt(getInitParameter("max-connections"));
        PoolingAsyncClientConnectionManager cm = PoolingAsyncClientConnectionManagerBuilder.create()
                .setMaxConnTotal(max).setMaxConnPerRoute(max)
                .setDefaultConnectionConfig(ConnectionConfig.custom()
                        .setConnectTimeout(Timeout.ofSeconds(1)).setSocketTimeout(Timeout.ofSeconds(2)).build())
                .build();
        client = HttpAsyncClients.custom()
                .setConnectionManager(cm)
                .setVersionPolicy(HttpVersionPolicy.FORCE_HTTP_1)
                .setIOReactorConfig(IOReactorConfig.custom().setIoThreadCount(2).build())
                .setDefaultRequestConfig(RequestConfig.custom().setResponseTimeout(Timeout.ofSeconds(2)).build())
                .disableRedirectHandling().disableCookieManagement().disableAutomaticRetries()
                .disableAuthCaching().disableConnectionState()
                .build();
        client.start();
    }

    @Override
    protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
        AsyncContext async = req.startAsync();
        async.setTimeout(0);
        String query = req.getQueryString();
        SimpleHttpRequest out = SimpleHttpRequest.create(req.getMethod(),
                upstream + req.getRequestURI() + (query == null ? "" : "?" + query));
        out.setVersion(HttpVersion.HTTP_1_1);
        for (Enumeration<String> names = req.getHeaderNames(); names.hasMoreElements(); ) {
            String name = names.nextElement();
            if (!HOP.contains(name.toLowerCase())) {
                for (Enumeration<String> values = req.getHeaders(name); values.hasMoreElements(); ) {
                    out.addHeader(name, values.nextElement());
                }
            }
        }
        out.addHeader("Via", "1.1 probe");
        client.execute(SimpleRequestProducer.create(out), SimpleResponseConsumer.create(), null, null,
                new FutureCallback<SimpleHttpResponse>() {
                    @Override
                    public void completed(SimpleHttpResponse r) {
                        try {
                            resp.setStatus(r.getCode());
                            for (Header h : r.getHeaders()) {
                                if (!HOP.contains(h.getName().toLowerCase())) {
                                    resp.addHeader(h.getName(), h.getValue());
                                }
                            }
                            byte[] body = r.getBodyBytes();
                            if (body != null) {
                                resp.setContentLength(body.length);
                                resp.getOutputStream().write(body);
                            }
                        } catch (IOException e) {
                            // client gone
                        } finally {
                            async.complete();
                        }
                    }

                    @Override
                    public void failed(Exception e) {
                        resp.setStatus(502);
                        async.complete();
                    }

                    @Override
                    public void cancelled() {
                        resp.setStatus(502);
                        async.complete();
                    }
                });
    }

    @Override
    public void destroy() {
        try {
            client.close();
            client.awaitShutdown(org.apache.hc.core5.util.TimeValue.of(1, TimeUnit.SECONDS));
        } catch (IOException | InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
