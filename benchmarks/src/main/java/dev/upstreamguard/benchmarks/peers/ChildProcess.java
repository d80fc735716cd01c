package dev.upstreamguard.benchmarks.peers;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

/**
 * What every server process the harness starts shares: it exits by itself when the harness goes away (its stdin
 * closes) or after a hard time limit, and it answers {@code stats} on stdin with its peak heap use.
 *
 * <p>Protocol on stdout: one {@code READY key=value ...} line once listening, then one {@code STATS ...} line per
 * {@code stats} command.
 */
final class ChildProcess {

    private static final AtomicLong PEAK_HEAP_USED = new AtomicLong();

    private ChildProcess() {
    }

    /** Starts the lifeline (stdin EOF or {@code maxLifetime} ends the process) and the heap sampler. */
    static void watch(Duration maxLifetime, Runnable onStats) {
        Thread lifeline = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (line.trim().equals("stats")) {
                        onStats.run();
                        System.out.println("STATS heapPeakUsed=" + PEAK_HEAP_USED.get()
                                + " heapPoolPeaks=" + poolPeaks()
                                + " heapCommitted=" + Runtime.getRuntime().totalMemory()
                                + " heapMax=" + Runtime.getRuntime().maxMemory());
                        System.out.flush();
                    } else if (line.trim().equals("exit")) {
                        break;
                    }
                }
            } catch (Exception ignored) {
                // the harness is gone either way
            }
            Runtime.getRuntime().halt(0);
        }, "lifeline");
        lifeline.setDaemon(true);
        lifeline.start();

        Thread deadline = new Thread(() -> {
            try {
                Thread.sleep(maxLifetime.toMillis());
            } catch (InterruptedException ignored) {
                // exit anyway
            }
            System.err.println("max lifetime " + maxLifetime + " reached, exiting");
            Runtime.getRuntime().halt(3);
        }, "max-lifetime");
        deadline.setDaemon(true);
        deadline.start();

        Thread sampler = new Thread(() -> {
            while (true) {
                Runtime rt = Runtime.getRuntime();
                long used = rt.totalMemory() - rt.freeMemory();
                PEAK_HEAP_USED.accumulateAndGet(used, Math::max);
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "heap-sampler");
        sampler.setDaemon(true);
        sampler.start();
    }

    /** Sum of the peak use of every heap pool since start (an upper bound of the peak heap). */
    private static long poolPeaks() {
        long sum = 0;
        for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
            if (pool.getType() == MemoryType.HEAP && pool.getPeakUsage() != null) {
                sum += pool.getPeakUsage().getUsed();
            }
        }
        return sum;
    }

    static void ready(String details) {
        System.out.println("READY " + details);
        System.out.flush();
    }
}
