package dev.upstreamguard.benchmarks.peers;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Runs every scenario of the peers comparison and writes {@code README.md} plus {@code results.png} into the
 * benchmarks folder. Each server runs in its own JVM on loopback; wrk is the load generator for every target.
 *
 * <pre>
 * java -cp benchmarks/target/benchmarks.jar dev.upstreamguard.benchmarks.peers.Harness [--quick] [--dir benchmarks]
 *      [--targets direct,mitre-tomcat,jetty-proxy,ours-tomcat,ours-jetty,async-probe-tomcat,async-probe-jetty]
 *      [--skip-jmh] [--skip-memory]
 * </pre>
 */
public final class Harness {

    static final List<String> ALL_TARGETS = List.of("direct", "mitre-tomcat", "jetty-proxy", "ours-tomcat",
            "ours-jetty", "async-probe-tomcat");
    static final List<String> PEERS = List.of("mitre-tomcat", "jetty-proxy");

    /**
     * The fallback design measured before it is built ({@link AsyncProbeServlet}): throughput only. It buffers
     * whole bodies and has no timeouts worth the name, so the isolation and streaming scenarios do not apply.
     */
    static boolean probe(String target) {
        return target.startsWith("async-probe-");
    }
    static final long STREAM_BYTES = 1L << 30;

    /** One wrk measurement. */
    record Load(String target, String body, Wrk.Result result, double loadAvg, double proxyCpuMicros,
            double upstreamCpuMicros) {
    }

    /** The isolation scenario for one proxy. */
    record Isolation(String target, Wrk.Result bothHealthy, OpenLoad.Result secondHealthy, Wrk.Result oneStalled,
            OpenLoad.Result stalled) {
        double ratio() {
            return oneStalled.rps() / bothHealthy.rps();
        }

        boolean stalledAnsweredInTime() {
            boolean onlyGatewayErrors = stalled.statuses().keySet().stream().allMatch(s -> s == 503 || s == 504);
            return onlyGatewayErrors && stalled.max() <= Target.RESPONSE_TIMEOUT_MS + 1000;
        }
    }

    /** The streaming-memory scenario for one proxy and direction. */
    record Memory(String target, String direction, Streaming.Result result, long idleHwmKib, long hwmKib,
            long heapPeakUsed, long heapPoolPeaks) {
    }

    /** One JMH score. */
    record Jmh(String benchmark, double score, double error, String unit) {
    }

    /** Everything the report is made of. */
    static final class Results {
        final Settings settings;
        final Map<String, String> machine = new LinkedHashMap<>();
        final List<Load> loads = new ArrayList<>();
        final List<Isolation> isolation = new ArrayList<>();
        final List<Memory> memory = new ArrayList<>();
        final List<Jmh> jmh = new ArrayList<>();
        final List<String> notes = new ArrayList<>();
        List<String> targets = List.of();

        Results(Settings settings) {
            this.settings = settings;
        }
    }

    /** Durations and switches; {@code --quick} shortens everything for smoke runs. */
    record Settings(boolean quick, int warmupSeconds, int rounds, int measureSeconds, int isolationSeconds,
            int secondRoutePerSecond, boolean jmh, boolean memory, List<String> targets, Path dir, String command) {
    }

    private Harness() {
    }

    public static void main(String[] args) throws Exception {
        System.setProperty("java.awt.headless", "true");
        boolean quick = false;
        boolean jmh = true;
        boolean memory = true;
        Path dir = Path.of("benchmarks");
        List<String> targets = new ArrayList<>(ALL_TARGETS);
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--quick" -> quick = true;
                case "--skip-jmh" -> jmh = false;
                case "--skip-memory" -> memory = false;
                case "--dir" -> dir = Path.of(args[++i]);
                case "--targets" -> targets = new ArrayList<>(List.of(args[++i].split(",")));
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        if (!oursAvailable()) {
            if (targets.removeIf(t -> t.startsWith("ours-"))) {
                System.out.println("! " + Target.OURS + " is not on the classpath yet: our proxy is skipped");
            }
        }
        String command = System.getProperty("bench.command", "benchmarks/run.sh" + (quick ? " --quick" : ""));
        Settings settings = quick
                ? new Settings(true, 3, 2, 3, 5, 50, jmh, memory, targets, dir, command)
                : new Settings(false, 20, 3, 10, 20, 50, jmh, memory, targets, dir, command);
        Results results = run(settings);
        Report.write(results);
        System.out.println("report: " + dir.resolve("README.md") + " and " + dir.resolve(Report.CHART));
    }

    static boolean oursAvailable() {
        try {
            Class.forName(Target.OURS, false, Harness.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        }
    }

    static Results run(Settings s) throws Exception {
        Results results = new Results(s);
        Path logs = s.dir().resolve("target/bench-logs");
        Files.createDirectories(logs);
        machine(results);
        log("machine " + results.machine);
        List<String> upstreamJvm = List.of("-Xms256m", "-Xmx512m");
        try (Child upstream = new Child("upstream", upstreamJvm, Upstream.class.getName(), List.of(), logs)) {
            String a = upstream.ready.get("a");
            String b = upstream.ready.get("b");
            String st = upstream.ready.get("s");
            log("upstream ready " + upstream.ready);

            // Every proxy runs from the start, idle until measured; the load rounds rotate through the targets so
            // that the noise of a shared machine spreads over all of them instead of hitting whichever ran last.
            Map<String, String> bases = new LinkedHashMap<>();
            Map<String, Child> processes = new LinkedHashMap<>();
            List<Child> proxies = new ArrayList<>();
            try {
                for (String target : s.targets()) {
                    if (target.equals("direct")) {
                        bases.put(target, "http://127.0.0.1:" + a + "/a");
                        continue;
                    }
                    try {
                        Child proxy = new Child(target, List.of("-Xms512m", "-Xmx512m"), Target.class.getName(),
                                List.of(target, a, b, st), logs);
                        proxies.add(proxy);
                        processes.put(target, proxy);
                        bases.put(target, "http://127.0.0.1:" + proxy.port("port") + "/a");
                        log(target + " ready on port " + proxy.port("port"));
                    } catch (IOException e) {
                        results.notes.add(target + " failed to start: " + e.getMessage());
                        log("! " + target + " failed to start: " + e);
                    }
                }
                results.targets = new ArrayList<>(bases.keySet());
                for (String body : List.of("1k", "1m")) {
                    loads(results, bases, processes, upstream, body, logs);
                }
                for (Map.Entry<String, String> e : bases.entrySet()) {
                    if (!e.getKey().equals("direct") && !probe(e.getKey())) {
                        isolation(results, e.getKey(), e.getValue().substring(0, e.getValue().length() - 2), logs);
                    }
                }
            } finally {
                proxies.forEach(Child::close);
            }

            if (s.memory()) {
                for (String target : s.targets()) {
                    if (!target.equals("direct") && !probe(target)) {
                        memory(results, target, a, b, st, logs);
                    }
                }
            }
        }
        if (s.jmh()) {
            jmh(results, logs);
        }
        results.machine.put("load average at end", loadAvgLine());
        return results;
    }

    private static void loads(Results results, Map<String, String> bases, Map<String, Child> processes,
            Child upstream, String body, Path logs) throws IOException {
        Settings s = results.settings;
        List<String> targets = new ArrayList<>(bases.keySet());
        for (String target : targets) {
            log(target + " " + body + ": warm-up " + s.warmupSeconds() + " s");
            Wrk.run(2, 32, s.warmupSeconds(), bases.get(target) + "/" + body,
                    logs.resolve(target + "-" + body + "-warmup.txt"));
        }
        Map<String, List<Wrk.Result>> rounds = new LinkedHashMap<>();
        Map<String, List<Double>> loads = new LinkedHashMap<>();
        Map<String, List<Double>> proxyCpu = new LinkedHashMap<>();
        Map<String, List<Double>> upstreamCpu = new LinkedHashMap<>();
        for (int round = 0; round < s.rounds(); round++) {
            for (int i = 0; i < targets.size(); i++) {
                String target = targets.get((i + round) % targets.size());
                Child proxy = processes.get(target);
                double loadAvg = loadAvg();
                long proxyBefore = proxy == null ? 0 : proxy.cpuNanos();
                long upstreamBefore = upstream.cpuNanos();
                Wrk.Result r = Wrk.run(2, 32, s.measureSeconds(), bases.get(target) + "/" + body,
                        logs.resolve(target + "-" + body + "-round" + (round + 1) + ".txt"));
                double perReq = Math.max(1, r.requests()) * 1000.0;
                double pc = proxy == null ? Double.NaN : (proxy.cpuNanos() - proxyBefore) / perReq;
                double uc = (upstream.cpuNanos() - upstreamBefore) / perReq;
                log(String.format(Locale.ROOT, "%s %s round %d: %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %d, "
                        + "CPU/req proxy %.1f us upstream %.1f us (load %.2f)", target, body, round + 1, r.rps(),
                        r.p50(), r.p99(), r.errors(), pc, uc, loadAvg));
                rounds.computeIfAbsent(target, k -> new ArrayList<>()).add(r);
                loads.computeIfAbsent(target, k -> new ArrayList<>()).add(loadAvg);
                proxyCpu.computeIfAbsent(target, k -> new ArrayList<>()).add(pc);
                upstreamCpu.computeIfAbsent(target, k -> new ArrayList<>()).add(uc);
            }
        }
        for (String target : targets) {
            List<Wrk.Result> rs = rounds.get(target);
            Wrk.Result median = new Wrk.Result(median(rs, Wrk.Result::rps), median(rs, Wrk.Result::p50),
                    median(rs, Wrk.Result::p90), median(rs, Wrk.Result::p99),
                    rs.stream().mapToLong(Wrk.Result::requests).sum(), rs.stream().mapToLong(Wrk.Result::errors).sum(),
                    "");
            double loadAvg = loads.get(target).stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
            results.loads.add(new Load(target, body, median, loadAvg, medianOf(proxyCpu.get(target)),
                    medianOf(upstreamCpu.get(target))));
            log(String.format(Locale.ROOT, "%s %s median: %.0f req/s, p50 %.2f ms, p99 %.2f ms", target, body,
                    median.rps(), median.p50(), median.p99()));
        }
    }

    private static double medianOf(List<Double> values) {
        double[] v = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        if (v.length == 0) {
            return Double.NaN;
        }
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    private static double median(List<Wrk.Result> rs, java.util.function.ToDoubleFunction<Wrk.Result> f) {
        double[] v = rs.stream().mapToDouble(f).sorted().toArray();
        if (v.length == 0) {
            return Double.NaN;
        }
        return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    private static void isolation(Results results, String target, String base, Path logs) throws Exception {
        Settings s = results.settings;
        int seconds = s.isolationSeconds() / 2;
        // warm the second route's servlet and pool
        OpenLoad.run(base + "/b/1k", s.secondRoutePerSecond(), 2, 256);
        // healthy, stalled, healthy, stalled: both phases see the same drift of the machine's background load
        List<Wrk.Result> healthy = new ArrayList<>();
        List<Wrk.Result> stalled = new ArrayList<>();
        OpenLoad.Result second = null;
        OpenLoad.Result stall = null;
        for (int round = 1; round <= 2; round++) {
            for (String route : List.of("b", "s")) {
                log(target + " isolation round " + round + ": second route /" + route + ", " + seconds + " s");
                CompletableFuture<OpenLoad.Result> other = CompletableFuture.supplyAsync(
                        () -> open(base + "/" + route + "/1k", s.secondRoutePerSecond(), seconds + 2));
                Wrk.Result w = Wrk.run(2, 32, seconds, base + "/a/1k",
                        logs.resolve(target + "-isolation-" + route + round + ".txt"));
                OpenLoad.Result o = other.get(60, TimeUnit.SECONDS);
                if (route.equals("b")) {
                    healthy.add(w);
                    second = second == null ? o : second.merge(o);
                } else {
                    stalled.add(w);
                    stall = stall == null ? o : stall.merge(o);
                }
            }
        }
        Isolation iso = new Isolation(target, combine(healthy), second, combine(stalled), stall);
        log(String.format(Locale.ROOT, "%s isolation: healthy %.0f -> %.0f req/s (x%.2f); stalled route %s, "
                + "p50 %.0f ms, max %.0f ms", target, iso.bothHealthy().rps(), iso.oneStalled().rps(), iso.ratio(),
                stall.statuses(), stall.p50(), stall.max()));
        results.isolation.add(iso);
    }

    /** Mean throughput, worst percentiles and summed counts of runs of equal length. */
    private static Wrk.Result combine(List<Wrk.Result> rs) {
        return new Wrk.Result(rs.stream().mapToDouble(Wrk.Result::rps).average().orElse(Double.NaN),
                rs.stream().mapToDouble(Wrk.Result::p50).max().orElse(Double.NaN),
                rs.stream().mapToDouble(Wrk.Result::p90).max().orElse(Double.NaN),
                rs.stream().mapToDouble(Wrk.Result::p99).max().orElse(Double.NaN),
                rs.stream().mapToLong(Wrk.Result::requests).sum(), rs.stream().mapToLong(Wrk.Result::errors).sum(), "");
    }

    private static OpenLoad.Result open(String url, int perSecond, int seconds) {
        try {
            return OpenLoad.run(url, perSecond, seconds, 256);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static void memory(Results results, String target, String a, String b, String st, Path logs) {
        for (String direction : List.of("download", "upload")) {
            String name = target + "-" + direction + "-128m";
            try (Child proxy = new Child(name, List.of("-Xmx128m"), Target.class.getName(), List.of(target, a, b, st),
                    logs)) {
                String base = "http://127.0.0.1:" + proxy.port("port") + "/a";
                // one small exchange first so the route's client exists before the idle figure is taken
                Streaming.download(base + "/1k", 1024);
                long idle = proxy.vmHwmKib();
                log(name + ": streaming 1 GiB");
                Streaming.Result r = direction.equals("download")
                        ? Streaming.download(base + "/big?bytes=" + STREAM_BYTES, STREAM_BYTES)
                        : Streaming.upload(base + "/sink", STREAM_BYTES);
                Map<String, String> stats = proxy.stats();
                long hwm = proxy.vmHwmKib();
                Memory m = new Memory(target, direction, r, idle, hwm, Long.parseLong(stats.get("heapPeakUsed")),
                        Long.parseLong(stats.get("heapPoolPeaks")));
                log(String.format("%s: ok=%s %.1f s, VmHWM %d MiB (idle %d MiB), heap peak %d MiB, %s", name, r.ok(),
                        r.seconds(), hwm / 1024, idle / 1024, m.heapPeakUsed() >> 20, r.detail()));
                results.memory.add(m);
            } catch (IOException e) {
                results.notes.add(name + " failed: " + e.getMessage());
                log("! " + name + " failed: " + e);
            }
        }
    }

    private static final Pattern JMH_ENTRY = Pattern.compile(
            "\"benchmark\"\\s*:\\s*\"([^\"]+)\".*?\"primaryMetric\"\\s*:\\s*\\{\\s*\"score\"\\s*:\\s*([-0-9.eE]+|\"NaN\")"
                    + ",\\s*\"scoreError\"\\s*:\\s*([-0-9.eE]+|\"NaN\").*?\"scoreUnit\"\\s*:\\s*\"([^\"]+)\"",
            Pattern.DOTALL);

    private static void jmh(Results results, Path logs) throws IOException, InterruptedException {
        Path json = logs.resolve("jmh.json");
        Files.deleteIfExists(json);
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "org.openjdk.jmh.Main",
                "GuardedVsRawBenchmark|OpenCircuitRejectBenchmark", "-rf", "json", "-rff", json.toString()));
        if (results.settings.quick()) {
            cmd.addAll(List.of("-wi", "1", "-i", "2", "-w", "2s", "-r", "2s"));
        }
        log("JMH: " + String.join(" ", cmd.subList(3, cmd.size())));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(logs.resolve("jmh.txt").toFile()).start();
        if (!p.waitFor(20, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            results.notes.add("JMH did not finish within 20 minutes");
            return;
        }
        if (p.exitValue() != 0 || !Files.exists(json)) {
            results.notes.add("JMH failed (exit " + p.exitValue() + "), see target/bench-logs/jmh.txt");
            return;
        }
        String text = Files.readString(json);
        Matcher m = JMH_ENTRY.matcher(text);
        while (m.find()) {
            String name = m.group(1).replaceAll(".*\\.(\\w+\\.\\w+)$", "$1");
            if (name.endsWith(".sideBySide")) {
                // a group: its primary score is the sum; the per-method scores are secondary metrics
                for (String side : List.of("rawSide", "guardedSide")) {
                    Matcher g = Pattern.compile("\"" + side + "\"\\s*:\\s*\\{\\s*\"score\"\\s*:\\s*([-0-9.eE]+)"
                            + ",\\s*\"scoreError\"\\s*:\\s*([-0-9.eE]+|\"NaN\")").matcher(text.substring(m.start()));
                    if (g.find()) {
                        results.jmh.add(new Jmh(name + ":" + side, num(g.group(1)), num(g.group(2)), m.group(4)));
                    }
                }
            } else {
                results.jmh.add(new Jmh(name, num(m.group(2)), num(m.group(3)), m.group(4)));
            }
        }
        log("JMH: " + results.jmh);
    }

    private static double num(String s) {
        return s.startsWith("\"") ? Double.NaN : Double.parseDouble(s);
    }

    private static void machine(Results results) throws IOException {
        Map<String, String> m = results.machine;
        m.put("date (UTC)", Instant.now().toString());
        m.put("nproc", Integer.toString(Runtime.getRuntime().availableProcessors()));
        m.put("CPU", Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name"))
                .findFirst().map(l -> l.substring(l.indexOf(':') + 1).trim()).orElse("?"));
        m.put("memory", Files.readAllLines(Path.of("/proc/meminfo")).get(0).replaceAll("\\s+", " "));
        m.put("kernel", System.getProperty("os.name") + " " + System.getProperty("os.version"));
        m.put("JDK", System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version"));
        m.put("wrk", exec("wrk", "-v").lines().findFirst().orElse("?").trim());
        m.put("load average at start", loadAvgLine());
    }

    static double loadAvg() {
        try {
            return Double.parseDouble(loadAvgLine().split("\\s+")[0]);
        } catch (RuntimeException e) {
            return Double.NaN;
        }
    }

    static String loadAvgLine() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException e) {
            return "?";
        }
    }

    private static String exec(String... cmd) {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            p.waitFor(10, TimeUnit.SECONDS);
            return out;
        } catch (IOException | InterruptedException e) {
            return "?";
        }
    }

    static void log(String line) {
        System.out.println(Instant.now().toString().substring(11, 19) + " " + line);
        System.out.flush();
    }
}
