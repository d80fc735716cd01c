package dev.upstreamguard.benchmarks.jmh;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import java.io.IOException;
import java.net.URI;
import java.util.concurrent.TimeUnit;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The cost of a call rejected by an open circuit: {@code execute()} up to the {@link UpstreamException}
 * ({@code destination_unavailable}), request object included. Target: under 1 µs. The circuit is forced open through
 * Resilience4j, so nothing ever reaches the network (the upstream address is the discard port of a host nobody
 * listens on; a call that got through would fail with {@code connection_refused} and the setup would notice).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms256m", "-Xmx256m"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@State(Scope.Benchmark)
public class OpenCircuitRejectBenchmark {

    private GuardedHttpClient client;
    private URI uri;

    @Setup(Level.Trial)
    public void open() throws IOException {
        client = GuardedHttpClients.custom().upstream("bench", "http://127.0.0.1:9").build();
        client.upstream("bench").circuitBreaker().orElseThrow().transitionToForcedOpenState();
        uri = URI.create("http://127.0.0.1:9/anything");
        UpstreamException e = reject();
        if (e == null || e.fault() != UpstreamFault.DESTINATION_UNAVAILABLE) {
            throw new IllegalStateException("expected destination_unavailable, got " + e, e);
        }
    }

    @TearDown(Level.Trial)
    public void close() throws IOException {
        client.close();
    }

    @Benchmark
    public UpstreamException reject() throws IOException {
        try {
            client.execute(new HttpGet(uri), response -> null);
            return null;
        } catch (UpstreamException e) {
            return e;
        }
    }
}
