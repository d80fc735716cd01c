package dev.upstreamguard.spring.internal;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.spring.UpstreamGuardProperties;
import java.beans.PropertyDescriptor;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.springframework.beans.BeanUtils;
import org.springframework.boot.context.properties.source.InvalidConfigurationPropertyValueException;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.EnumerablePropertySource;
import org.springframework.core.env.Environment;
import org.springframework.core.env.PropertySource;
import org.springframework.core.env.SystemEnvironmentPropertySource;

/**
 * The strict binding of {@code upstream-guard.*} for environment variables, which Spring Boot leaves out of its check
 * for unbound keys: a variable that names no setting ({@code UPSTREAMGUARD_DEFAULTS_RESPONSTIMEOUT}) would leave the
 * setting silently on its default, and one spelt with the prefix's dash as an underscore
 * ({@code UPSTREAM_GUARD_ROUTES_ORDERS_PATH}), which Spring Boot binds for plain settings but cannot bind into a map,
 * would silently drop the whole upstream or route it declares. Either fails start-up naming the variable. Only
 * variables of the {@code defaults}, {@code upstreams} and {@code routes} sections are checked: others with the prefix
 * may belong to the platform (Kubernetes names variables after a service, {@code UPSTREAM_GUARD_SERVICE_HOST}).
 */
public final class EnvironmentVariableCheck {

    /** The prefix as Spring Boot maps it: dots to underscores, dashes removed. */
    private static final String CANONICAL = "UPSTREAMGUARD_";

    /** The prefix with its dash as an underscore, which Spring Boot also accepts, except for map entries. */
    private static final String LEGACY = "UPSTREAM_GUARD_";

    /** The variables Kubernetes (and Docker links) derive from a service's name, here one starting upstream-guard. */
    private static final Pattern KUBERNETES_SERVICE_LINK = Pattern.compile(
            ".*_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)");

    private static final Set<String> LISTS = Set.of("retry.statuses", "circuit-breaker.record-statuses");

    private EnvironmentVariableCheck() {
    }

    /**
     * Fails when an {@code UPSTREAMGUARD_*} or {@code UPSTREAM_GUARD_*} variable of the {@code defaults},
     * {@code upstreams} or {@code routes} section names no setting, or declares an upstream or route that {@code bound}
     * does not hold.
     *
     * @throws InvalidConfigurationPropertyValueException naming the variable
     */
    public static void check(Environment environment, UpstreamGuardProperties bound) {
        if (!(environment instanceof ConfigurableEnvironment)) {
            return;
        }
        for (PropertySource<?> source : ((ConfigurableEnvironment) environment).getPropertySources()) {
            if (!(source instanceof SystemEnvironmentPropertySource)) {
                continue;
            }
            for (String variable : ((EnumerablePropertySource<?>) source).getPropertyNames()) {
                String upper = variable.toUpperCase(Locale.ROOT);
                if (upper.startsWith(CANONICAL)) {
                    check(variable, source.getProperty(variable), upper.substring(CANONICAL.length()), false, bound);
                } else if (upper.startsWith(LEGACY)) {
                    check(variable, source.getProperty(variable), upper.substring(LEGACY.length()), true, bound);
                }
            }
        }
    }

    private static void check(String variable, Object value, String rest, boolean legacy,
            UpstreamGuardProperties bound) {
        if (!rest.startsWith("DEFAULTS_") && !rest.startsWith("UPSTREAMS_") && !rest.startsWith("ROUTES_")
                || KUBERNETES_SERVICE_LINK.matcher(rest).matches()) {
            // Not surely meant for us: a deployment named upstream-guard gets Kubernetes' service links
            // (UPSTREAM_GUARD_SERVICE_HOST, UPSTREAM_GUARD_PORT_8080_TCP...), which must not stop the application.
            return;
        }
        if (rest.startsWith("DEFAULTS_") && matches(rest.substring("DEFAULTS_".length()), policyKeys(), legacy)) {
            return;
        }
        for (String map : new String[] {"UPSTREAMS_", "ROUTES_"}) {
            if (!rest.startsWith(map)) {
                continue;
            }
            boolean upstream = map.equals("UPSTREAMS_");
            List<String> keys = upstream ? upstreamKeys() : routeKeys();
            Map<String, ?> entries = upstream ? bound.getUpstreams() : bound.getRoutes();
            String entry = rest.substring(map.length());
            String unbound = null;
            String setting = null;
            // NAME_KEY; with the prefix's dash as an underscore the name may hold underscores too (ORDER_SERVICE_URL
            // for the upstream order-service), so every split is tried.
            for (int end = entry.indexOf('_'); end > 0; end = legacy ? entry.indexOf('_', end + 1) : -1) {
                String name = entry.substring(0, end);
                String key = keyOf(entry.substring(end + 1), keys, legacy);
                if (key == null) {
                    continue;
                }
                if (!legacy || entries.keySet().stream().anyMatch(k -> legacy(k).equals(name))) {
                    return;
                }
                if (unbound == null) {
                    unbound = name;
                    setting = key;
                }
            }
            if (unbound != null) {
                throw new InvalidConfigurationPropertyValueException(variable, value, "Spring Boot cannot bind an "
                        + "entry of upstream-guard." + map.substring(0, map.length() - 1).toLowerCase(Locale.ROOT)
                        + " from a variable whose prefix is spelt " + LEGACY + ", so " + (upstream ? "upstream '"
                        : "route '") + unbound.toLowerCase(Locale.ROOT) + "' would silently not exist; write "
                        + CANONICAL + map + unbound.replace("_", "") + "_" + canonical(setting)
                        + " (the prefix without its underscore)");
            }
        }
        throw new InvalidConfigurationPropertyValueException(variable, value, "names no setting under upstream-guard, "
                + "so it would be silently ignored; a setting's variable is its property name upper-cased, dots as "
                + "underscores, dashes removed: UPSTREAMGUARD_DEFAULTS_RESPONSETIMEOUT for "
                + "upstream-guard.defaults.response-timeout, UPSTREAMGUARD_UPSTREAMS_INVENTORY_URL for "
                + "upstream-guard.upstreams.inventory.url");
    }

    /** Whether {@code rest} is the variable form of one of {@code keys}, a list element included. */
    private static boolean matches(String rest, List<String> keys, boolean legacy) {
        return keyOf(rest, keys, legacy) != null;
    }

    private static String keyOf(String rest, List<String> keys, boolean legacy) {
        for (String key : keys) {
            String form = legacy ? legacy(key) : canonical(key);
            if (rest.equals(form)) {
                return key;
            }
            // An element of a list: RETRY_STATUSES_0, or RETRY_STATUSES_0_ where Spring Boot binds that.
            if (LISTS.contains(key) && rest.startsWith(form + "_")
                    && rest.substring(form.length() + 1).matches(legacy ? "[0-9]+" : "[0-9]+_?")) {
                return key;
            }
        }
        return null;
    }

    /** {@code retry.max-attempts} as Spring Boot maps it: {@code RETRY_MAXATTEMPTS}. */
    private static String canonical(String key) {
        return key.replace("-", "").replace('.', '_').toUpperCase(Locale.ROOT);
    }

    /** {@code retry.max-attempts} with its dash as an underscore: {@code RETRY_MAX_ATTEMPTS}. */
    private static String legacy(String key) {
        return key.replace('-', '_').replace('.', '_').toUpperCase(Locale.ROOT);
    }

    private static List<String> policyKeys() {
        return new ArrayList<>(GuardPolicy.ofDefaults().asProperties().keySet());
    }

    private static List<String> upstreamKeys() {
        List<String> keys = policyKeys();
        keys.addAll(beanKeys(UpstreamGuardProperties.Upstream.class, UpstreamGuardProperties.Policy.class));
        return keys;
    }

    private static List<String> routeKeys() {
        List<String> keys = policyKeys();
        keys.addAll(beanKeys(UpstreamGuardProperties.Route.class, UpstreamGuardProperties.Policy.class));
        return keys;
    }

    /** The kebab-case names of the properties {@code type} declares below {@code stop}. */
    private static Set<String> beanKeys(Class<?> type, Class<?> stop) {
        Set<String> keys = new LinkedHashSet<>();
        for (PropertyDescriptor d : BeanUtils.getPropertyDescriptors(type)) {
            if (d.getWriteMethod() != null && !d.getWriteMethod().getDeclaringClass().isAssignableFrom(stop)) {
                keys.add(d.getName().replaceAll("([A-Z])", "-$1").toLowerCase(Locale.ROOT));
            }
        }
        return keys;
    }
}
