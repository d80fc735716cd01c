package dev.upstreamguard.benchmarks.peers;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/** A server JVM started by the harness: stdout lines are parsed, stderr goes to a log file, stdin is its lifeline. */
final class Child implements AutoCloseable {

    private static final List<Child> LIVE = new ArrayList<>();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            synchronized (LIVE) {
                LIVE.forEach(c -> c.process.destroyForcibly());
            }
        }, "kill-children"));
    }

    private final String name;
    private final Process process;
    private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
    final Map<String, String> ready;

    Child(String name, List<String> jvmArgs, String mainClass, List<String> args, Path logDir) throws IOException {
        this.name = name;
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(jvmArgs);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass);
        cmd.addAll(args);
        Files.createDirectories(logDir);
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .redirectError(logDir.resolve(name + ".log").toFile())
                .redirectOutput(ProcessBuilder.Redirect.PIPE);
        process = pb.start();
        synchronized (LIVE) {
            LIVE.add(this);
        }
        Thread reader = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(
                    new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = in.readLine()) != null; ) {
                    lines.add(line);
                }
            } catch (IOException ignored) {
                // process gone
            }
        }, name + "-stdout");
        reader.setDaemon(true);
        reader.start();
        String line = await("READY", 60);
        ready = parse(line.substring("READY".length()));
    }

    long pid() {
        return process.pid();
    }

    int port(String key) {
        return Integer.parseInt(ready.get(key));
    }

    /** Asks the child for its heap figures. */
    Map<String, String> stats() throws IOException {
        OutputStream in = process.getOutputStream();
        in.write("stats\n".getBytes(StandardCharsets.US_ASCII));
        in.flush();
        return parse(await("STATS", 10).substring("STATS".length()));
    }

    /** CPU time (user + system) used by the process so far, in nanoseconds, from /proc. */
    long cpuNanos() throws IOException {
        String stat = Files.readString(Path.of("/proc", Long.toString(pid()), "stat"));
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        // after the command: state is field 3 of proc(5); utime and stime are fields 14 and 15
        long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]);
        return ticks * 1_000_000_000L / CLOCK_TICKS;
    }

    private static final long CLOCK_TICKS = clockTicks();

    private static long clockTicks() {
        try {
            Process p = new ProcessBuilder("getconf", "CLK_TCK").start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII).trim();
            p.waitFor(5, TimeUnit.SECONDS);
            return Long.parseLong(out);
        } catch (IOException | InterruptedException | NumberFormatException e) {
            return 100;
        }
    }

    /** Peak resident set size (VmHWM) in KiB, from /proc. */
    long vmHwmKib() throws IOException {
        for (String l : Files.readAllLines(Path.of("/proc", Long.toString(pid()), "status"))) {
            if (l.startsWith("VmHWM:")) {
                return Long.parseLong(l.replaceAll("[^0-9]", ""));
            }
        }
        return -1;
    }

    private String await(String prefix, int seconds) throws IOException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        try {
            while (System.nanoTime() < end) {
                String line = lines.poll(200, TimeUnit.MILLISECONDS);
                if (line != null && line.startsWith(prefix)) {
                    return line;
                }
                if (line == null && !process.isAlive()) {
                    throw new IOException(name + " exited with " + process.exitValue() + " (see its log)");
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        throw new IOException(name + ": no " + prefix + " line within " + seconds + " s (see its log)");
    }

    private static Map<String, String> parse(String kv) {
        Map<String, String> map = new HashMap<>();
        for (String part : kv.trim().split("\\s+")) {
            int eq = part.indexOf('=');
            if (eq > 0) {
                map.put(part.substring(0, eq), part.substring(eq + 1));
            }
        }
        return map;
    }

    @Override
    public void close() {
        try {
            process.getOutputStream().close(); // the lifeline: the child halts on stdin EOF
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        } catch (IOException | InterruptedException e) {
            process.destroyForcibly();
        }
        synchronized (LIVE) {
            LIVE.remove(this);
        }
    }
}
