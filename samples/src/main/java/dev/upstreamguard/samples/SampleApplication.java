package dev.upstreamguard.samples;

import dev.upstreamguard.spring.UpstreamRegistry;
import java.io.IOException;
import java.util.Arrays;
import java.util.Map;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.ApplicationArguments;
import org.springframework.boot.ApplicationRunner;
import org.springframework.boot.ExitCodeGenerator;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.boot.context.event.ApplicationReadyEvent;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.event.EventListener;
import org.springframework.core.env.Environment;

/**
 * The Upstream Guard sample: a Spring Boot gateway. By default it starts an embedded faulty upstream and routes to it
 * ({@link EmbeddedUpstreamEnvironment}); with {@code --upstream-guard.routes.<name>.*} on the command line it is a plain
 * gateway for those routes. {@code --tour} walks every fault, prints the table and exits.
 */
@SpringBootApplication
public class SampleApplication {

    /** Starts the sample. */
    public static void main(String[] args) {
        boolean tour = Arrays.asList(args).contains("--tour");
        SpringApplication application = new SpringApplication(SampleApplication.class);
        if (tour) {
            application.setDefaultProperties(Map.of("server.port", "0"));
        }
        ConfigurableApplicationContext context = application.run(args);
        if (tour) {
            System.exit(SpringApplication.exit(context));
        }
    }

    /** Closes the embedded upstream with the application. */
    @Bean
    @ConditionalOnProperty(EmbeddedUpstreamEnvironment.PORT_PROPERTY)
    AutoCloseable embeddedUpstream(Environment environment) {
        int port = environment.getRequiredProperty(EmbeddedUpstreamEnvironment.PORT_PROPERTY, Integer.class);
        return () -> {
            FaultyUpstream upstream = FaultyUpstream.running(port);
            if (upstream != null) {
                upstream.close();
            }
        };
    }

    /** With {@code --tour}: walks every fault and prints the table. */
    @Bean
    TourRunner tourRunner(Environment environment, ObjectProvider<UpstreamRegistry> registry) {
        return new TourRunner(environment, registry);
    }

    /** Runs the tour; its exit code says whether it could (2 when the configuration leaves it nothing to show). */
    static final class TourRunner implements ApplicationRunner, ExitCodeGenerator {
        private final Environment environment;
        private final ObjectProvider<UpstreamRegistry> registry;
        private volatile int exitCode;

        TourRunner(Environment environment, ObjectProvider<UpstreamRegistry> registry) {
            this.environment = environment;
            this.registry = registry;
        }

        @Override
        public void run(ApplicationArguments args) {
            if (!args.containsOption("tour")) {
                return;
            }
            // A script running the tour must not take a table of something else, or none, for the tour's.
            if (!environment.containsProperty(EmbeddedUpstreamEnvironment.PORT_PROPERTY)) {
                refuse("--tour needs the embedded upstream (do not configure upstream-guard.routes.*)");
                return;
            }
            if (registry.getIfAvailable() == null) {
                refuse("--tour needs Upstream Guard (upstream-guard.enabled=false switches it off)");
                return;
            }
            System.out.println();
            System.out.println("Upstream Guard tour (every fault, through the proxy route and a guarded RestClient):");
            System.out.println();
            System.out.println(Tour.table(new Tour(base(environment)).run()));
        }

        private void refuse(String why) {
            System.err.println(why);
            exitCode = 2;
        }

        @Override
        public int getExitCode() {
            return exitCode;
        }
    }

    /**
     * Where this application answers: its port and {@code server.servlet.context-path}, under which the routes, the
     * controllers and (without a management port of its own) Actuator live.
     */
    static String base(Environment env) {
        return "http://127.0.0.1:" + env.getRequiredProperty("local.server.port")
                + path(env, "server.servlet.context-path", "");
    }

    /** Where Actuator's endpoints are: on {@code management.server.port}, when it has one of its own. */
    private static String actuatorBase(Environment env, String base) {
        String path = path(env, "management.endpoints.web.base-path", "/actuator");
        String port = env.getProperty("local.management.port");
        if (port == null || port.equals(env.getProperty("local.server.port"))) {
            return base + path;
        }
        return "http://127.0.0.1:" + port + path(env, "management.server.base-path", "") + path;
    }

    /** A path setting as Spring Boot takes it: without a trailing '/' ({@code /} and {@code /ctx/} are "" and /ctx). */
    private static String path(Environment env, String property, String fallback) {
        String path = env.getProperty(property, fallback);
        while (path.endsWith("/")) {
            path = path.substring(0, path.length() - 1);
        }
        return path;
    }

    /** Prints the URLs to try. */
    @EventListener
    void printUrls(ApplicationReadyEvent event) throws IOException {
        Environment env = event.getApplicationContext().getEnvironment();
        if (Arrays.asList(event.getArgs()).contains("--tour")) {
            return;
        }
        String base = base(env);
        StringBuilder sb = new StringBuilder("\nUpstream Guard sample is up on ").append(base).append('\n');
        if (env.containsProperty(EmbeddedUpstreamEnvironment.PORT_PROPERTY)) {
            sb.append("  embedded faulty upstream: http://127.0.0.1:")
                    .append(env.getProperty(EmbeddedUpstreamEnvironment.PORT_PROPERTY)).append('\n');
            sb.append("  through the proxy route (upstream 'faulty'):\n");
            for (String fault : FaultyUpstream.FAULTS) {
                sb.append("    curl -i ").append(base).append("/faulty/").append(fault).append('\n');
            }
            sb.append("    curl -i ").append(base).append("/refused/anything     (connection refused)\n");
            sb.append("    curl -i ").append(base).append("/breaker/reset        (4th call: circuit open)\n");
            sb.append("  through a guarded RestClient with @UpstreamPolicy:\n");
            sb.append("    curl -i ").append(base).append("/api/reset   (and /api/<any fault above>, /api/refused)\n");
            sb.append("    curl -i -H 'Accept: application/json' ").append(base).append("/api/not-http\n");
            sb.append("  every fault in one table: ").append(base).append("/tour   (or curl -H 'Accept: text/plain' ")
                    .append(base).append("/tour)\n");
        } else {
            sb.append("  gateway routes:\n");
            // None with upstream-guard.enabled=false: the auto-configuration, and so the registry, is off.
            // A prefix forwards what follows it below the target; an exact path is forwarded as the target alone.
            event.getApplicationContext().getBeanProvider(UpstreamRegistry.class).ifAvailable(registry -> registry
                    .routes().forEach(r -> sb.append("    ").append(base).append(r.path()).append("  ->  ")
                            .append(r.target()).append(r.servletMapping().endsWith("/*") ? "/...\n"
                                    : r.path().endsWith("/") ? "/\n" : "\n")));
        }
        String actuator = actuatorBase(env, base);
        sb.append("  actuator: ").append(actuator).append("/health  ").append(actuator).append("/upstreams  ")
                .append(actuator).append("/metrics/upstream.guard.calls  ").append(actuator).append("/prometheus\n");
        System.out.println(sb);
    }
}
