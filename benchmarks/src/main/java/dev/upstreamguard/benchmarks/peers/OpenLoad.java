package dev.upstreamguard.benchmarks.peers;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Open-loop load at a fixed arrival rate with bounded concurrency, recording every status and latency. Used on the
 * second route of the isolation scenario, so that a route answering fast (an open circuit) and one answering slowly
 * (a stall) receive the same offered load; a closed-loop generator would hammer the fast-failing one.
 */
final class OpenLoad {

    /** Statuses (0 = no response: client timeout or I/O error) and latency figures in milliseconds. */
    record Result(long sent, long dropped, Map<Integer, Long> statuses, double p50, double p99, double max,
            List<Double> sortedLatencies) {

        /** Both runs' requests as if they were one run. */
        Result merge(Result other) {
            Map<Integer, Long> counts = new TreeMap<>(statuses);
            other.statuses.forEach((k, v) -> counts.merge(k, v, Long::sum));
            List<Double> all = new ArrayList<>(sortedLatencies);
            all.addAll(other.sortedLatencies);
            Collections.sort(all);
            return new Result(sent + other.sent, dropped + other.dropped, counts, pct(all, 0.50), pct(all, 0.99),
                    all.isEmpty() ? Double.NaN : all.get(all.size() - 1), all);
        }
    }

    private OpenLoad() {
    }

    static Result run(String url, int perSecond, int seconds, int maxInFlight) throws InterruptedException {
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5)).build();
        HttpRequest request = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(15)).GET().build();
        Semaphore inFlight = new Semaphore(maxInFlight);
        Map<Integer, AtomicLong> statuses = new ConcurrentHashMap<>();
        List<Double> latencies = Collections.synchronizedList(new ArrayList<>());
        AtomicLong sent = new AtomicLong();
        AtomicLong dropped = new AtomicLong();
        ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
        long periodNanos = TimeUnit.SECONDS.toNanos(1) / perSecond;
        timer.scheduleAtFixedRate(() -> {
            if (!inFlight.tryAcquire()) {
                dropped.incrementAndGet();
                return;
            }
            sent.incrementAndGet();
            long start = System.nanoTime();
            client.sendAsync(request, HttpResponse.BodyHandlers.discarding()).whenComplete((response, error) -> {
                latencies.add((System.nanoTime() - start) / 1e6);
                int status = response != null ? response.statusCode() : 0;
                statuses.computeIfAbsent(status, k -> new AtomicLong()).incrementAndGet();
                inFlight.release();
            });
        }, 0, periodNanos, TimeUnit.NANOSECONDS);
        Thread.sleep(TimeUnit.SECONDS.toMillis(seconds));
        timer.shutdownNow();
        // every request has a 15 s timeout: wait for the stragglers, bounded
        inFlight.tryAcquire(maxInFlight, 20, TimeUnit.SECONDS);
        Map<Integer, Long> counts = new TreeMap<>();
        statuses.forEach((k, v) -> counts.put(k, v.get()));
        List<Double> sorted;
        synchronized (latencies) {
            sorted = new ArrayList<>(latencies);
        }
        Collections.sort(sorted);
        return new Result(sent.get(), dropped.get(), counts, pct(sorted, 0.50), pct(sorted, 0.99),
                sorted.isEmpty() ? Double.NaN : sorted.get(sorted.size() - 1), sorted);
    }

    private static double pct(List<Double> sorted, double p) {
        if (sorted.isEmpty()) {
            return Double.NaN;
        }
        return sorted.get(Math.min(sorted.size() - 1, (int) Math.ceil(p * sorted.size()) - 1));
    }
}
