package dev.upstreamguard.benchmarks.jmh;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.benchmarks.peers.Upstream;
import dev.upstreamguard.client.GuardedHttpClients;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.impl.classic.CloseableHttpClient;
import org.apache.hc.client5.http.impl.classic.HttpClients;
import org.apache.hc.client5.http.impl.io.PoolingHttpClientConnectionManagerBuilder;
import org.apache.hc.core5.http.HttpEntity;
import org.apache.hc.core5.http.io.HttpClientResponseHandler;
import org.apache.hc.core5.util.Timeout;
import org.eclipse.jetty.server.ServerConnector;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Group;
import org.openjdk.jmh.annotations.GroupThreads;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The cost of the guard on the success path: a 1 KiB keep-alive GET, body consumed, through the guarded client
 * (deadline, bulkhead, circuit breaker, retry bookkeeping, attempt timeout, strict parser, guarded entity) against a
 * raw HttpClient 5 with the same pool size and the same connect/response timeouts. The upstream is Jetty 12 in the same
 * JVM (loopback, fixed body), shared by both, so their ratio is what counts; target: overhead ≤ 3 %.
 *
 * <p>{@code guardedWithMetrics} adds a Micrometer {@code SimpleMeterRegistry} (every call recorded on a timer).
 * {@code sideBySide} runs {@code rawSide} and {@code guardedSide} at the same time in one JVM, two threads each: on a
 * machine shared with other work both see the same background load at the same moment (scheduling between the two
 * groups of threads is still not guaranteed fair, so read it next to the sequential pair).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m"})
@Warmup(iterations = 3, time = 5)
@Measurement(iterations = 5, time = 5)
@Threads(4)
@State(Scope.Benchmark)
public class GuardedVsRawBenchmark {

    static final int POOL = 16;

    private org.eclipse.jetty.server.Server upstream;
    private URI uri;
    private CloseableHttpClient raw;
    private CloseableHttpClient guarded;
    private CloseableHttpClient guardedWithMetrics;

    /** Per benchmark thread: a buffer to drain bodies into. */
    @State(Scope.Thread)
    public static class Sink {
        final byte[] buffer = new byte[8192];
        final HttpClientResponseHandler<Long> handler = response -> drain(response.getEntity(), buffer);
    }

    @Setup(Level.Trial)
    public void start() throws Exception {
        upstream = Upstream.start(0, 0);
        int port = ((ServerConnector) upstream.getConnectors()[0]).getLocalPort();
        uri = URI.create("http://127.0.0.1:" + port + "/1k");

        GuardPolicy policy = GuardPolicy.builder().maxConnections(POOL).build();
        RequestConfig same = RequestConfig.custom()
                .setConnectionRequestTimeout(Timeout.of(policy.poolTimeout()))
                .setResponseTimeout(Timeout.of(policy.responseTimeout()))
                .build();
        raw = HttpClients.custom()
                .setConnectionManager(PoolingHttpClientConnectionManagerBuilder.create()
                        .setMaxConnPerRoute(POOL).setMaxConnTotal(POOL)
                        .setDefaultConnectionConfig(org.apache.hc.client5.http.config.ConnectionConfig.custom()
                                .setConnectTimeout(Timeout.of(policy.connectTimeout()))
                                .setSocketTimeout(Timeout.of(policy.responseTimeout())).build())
                        .build())
                .setDefaultRequestConfig(same)
                .build();
        guarded = GuardedHttpClients.custom().defaults(policy).build();
        guardedWithMetrics = GuardedHttpClients.custom().defaults(policy).meterRegistry(new SimpleMeterRegistry())
                .build();
        for (CloseableHttpClient c : new CloseableHttpClient[] {raw, guarded, guardedWithMetrics}) {
            long n = c.execute(new HttpGet(uri), response -> drain(response.getEntity(), new byte[8192]));
            if (n != 1024) {
                throw new IllegalStateException("expected 1024 bytes, got " + n);
            }
        }
    }

    @TearDown(Level.Trial)
    public void stop() throws Exception {
        raw.close();
        guarded.close();
        guardedWithMetrics.close();
        upstream.stop();
    }

    @Benchmark
    public long raw(Sink sink) throws IOException {
        return raw.execute(new HttpGet(uri), sink.handler);
    }

    @Benchmark
    public long guarded(Sink sink) throws IOException {
        return guarded.execute(new HttpGet(uri), sink.handler);
    }

    @Benchmark
    public long guardedWithMetrics(Sink sink) throws IOException {
        return guardedWithMetrics.execute(new HttpGet(uri), sink.handler);
    }

    @Benchmark
    @Group("sideBySide")
    @GroupThreads(2)
    public long rawSide(Sink sink) throws IOException {
        return raw.execute(new HttpGet(uri), sink.handler);
    }

    @Benchmark
    @Group("sideBySide")
    @GroupThreads(2)
    public long guardedSide(Sink sink) throws IOException {
        return guarded.execute(new HttpGet(uri), sink.handler);
    }

    static long drain(HttpEntity entity, byte[] buffer) throws IOException {
        long total = 0;
        try (InputStream in = entity.getContent()) {
            for (int n; (n = in.read(buffer)) >= 0; ) {
                total += n;
            }
        }
        return total;
    }
}
