package dev.upstreamguard.spring.internal;

import dev.upstreamguard.spring.UpstreamPolicy;
import java.lang.reflect.Method;
import org.springframework.aop.framework.AopProxyUtils;
import org.springframework.aop.support.AopUtils;
import org.springframework.beans.factory.SmartInitializingSingleton;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.core.annotation.AnnotatedElementUtils;
import org.springframework.core.annotation.MergedAnnotations;
import org.springframework.util.ClassUtils;
import org.springframework.util.ReflectionUtils;

/**
 * Reads every {@link UpstreamPolicy} of the application's beans once the context is built (controllers and
 * {@code @HttpExchange} client proxies), so that an unknown upstream or a bad value fails start-up, not a request.
 */
public final class UpstreamPolicyValidator implements SmartInitializingSingleton {

    private static final String HTTP_EXCHANGE = "org.springframework.web.service.annotation.HttpExchange";
    private static final String REQUEST_MAPPING = "org.springframework.web.bind.annotation.RequestMapping";

    private final ConfigurableListableBeanFactory beanFactory;
    private final UpstreamPolicyResolver resolver;

    /** A validator of {@code beanFactory}'s beans. */
    public UpstreamPolicyValidator(ConfigurableListableBeanFactory beanFactory, UpstreamPolicyResolver resolver) {
        this.beanFactory = beanFactory;
        this.resolver = resolver;
    }

    @Override
    public void afterSingletonsInstantiated() {
        for (String name : beanFactory.getBeanDefinitionNames()) {
            Class<?> type = beanFactory.getType(name, false);
            if (type == null) {
                continue;
            }
            Class<?> user = declaringClass(name, type);
            if (!user.isInterface() && !user.getName().startsWith("jdk.proxy")
                    && !java.lang.reflect.Proxy.isProxyClass(user)) {
                boolean onClass = AnnotatedElementUtils.hasAnnotation(user, UpstreamPolicy.class);
                boolean[] declared = {onClass};
                ReflectionUtils.doWithMethods(user, m -> {
                    declared[0] = true;
                    resolver.forHandler(m, user);
                }, m -> onClass || AnnotatedElementUtils.hasAnnotation(m, UpstreamPolicy.class));
                if (declared[0]) {
                    // Only the few classes that declare one pay for the second look at every method.
                    checkPlacement(user);
                }
            }
            for (Class<?> iface : ClassUtils.getAllInterfacesForClassAsSet(type)) {
                boolean onType = AnnotatedElementUtils.hasAnnotation(iface, UpstreamPolicy.class);
                for (Method m : iface.getMethods()) {
                    if (onType && m.getDeclaringClass() != iface && isExchange(m)) {
                        throw inherited(iface, m);
                    }
                    if (onType || AnnotatedElementUtils.hasAnnotation(m, UpstreamPolicy.class)) {
                        resolver.forExchange(m);
                    }
                    if (m.isDefault() && !isExchange(m) && declaresExchanges(iface)
                            && MergedAnnotations.from(m).isPresent(UpstreamPolicy.class)
                            && !MergedAnnotations.from(m, MergedAnnotations.SearchStrategy.TYPE_HIERARCHY)
                                    .isPresent(REQUEST_MAPPING)) {
                        // Spring's client proxy runs a default method itself, without the processor: the exchange
                        // methods it calls run under their own declarations.
                        throw misplaced(iface.getName() + "#" + m.getName());
                    }
                }
            }
        }
    }

    /**
     * The class whose declarations apply to bean {@code name}: behind a JDK proxy (a controller an advisor proxies with
     * {@code proxy-target-class=false}), the proxied class, as the interceptor reads it at request time. Only for a
     * bean already made: asking for one would create lazy beans.
     */
    private Class<?> declaringClass(String name, Class<?> type) {
        Class<?> user = ClassUtils.getUserClass(type);
        if (java.lang.reflect.Proxy.isProxyClass(user) && beanFactory.containsSingleton(name)) {
            Object bean = beanFactory.getSingleton(name);
            if (bean != null && AopUtils.isJdkDynamicProxy(bean)) {
                return AopProxyUtils.ultimateTargetClass(bean);
            }
        }
        return user;
    }

    /**
     * Only a controller's handler methods put a declaration in force (the interceptor reads the handler, not the
     * beans it calls): one on a service, a repository or a helper method would be silently ignored, and its calls
     * would run under another policy than the one written. Declarations reached only through an interface are left
     * alone: an implementation of an annotated {@code @HttpExchange} interface (a stub, a fake) is not a mistake.
     */
    private void checkPlacement(Class<?> type) {
        if (!ClassUtils.isPresent(REQUEST_MAPPING, UpstreamPolicyValidator.class.getClassLoader())) {
            return;
        }
        boolean[] handlers = {false};
        boolean[] declared = {MergedAnnotations.from(type, MergedAnnotations.SearchStrategy.SUPERCLASS)
                .isPresent(UpstreamPolicy.class)};
        // The most specific methods only: an override mapped in a subclass makes its superclass's method a handler
        // too, whose declaration the subclass's inherits.
        for (Method m : ReflectionUtils.getUniqueDeclaredMethods(type, ReflectionUtils.USER_DECLARED_METHODS)) {
            // Spring MVC maps a controller's @HttpExchange methods as it maps its @RequestMapping ones.
            MergedAnnotations found = MergedAnnotations.from(m, MergedAnnotations.SearchStrategy.TYPE_HIERARCHY);
            boolean handler = found.isPresent(REQUEST_MAPPING) || found.isPresent(HTTP_EXCHANGE);
            handlers[0] |= handler;
            boolean onMethod = MergedAnnotations.from(m, MergedAnnotations.SearchStrategy.SUPERCLASS)
                    .isPresent(UpstreamPolicy.class);
            declared[0] |= onMethod;
            if (!handler && onMethod) {
                throw misplaced(m.getDeclaringClass().getName() + "#" + m.getName());
            }
        }
        if (!handlers[0] && declared[0]) {
            throw misplaced(type.getName());
        }
    }

    private static IllegalStateException misplaced(String where) {
        return new IllegalStateException("@UpstreamPolicy on " + where + " never applies: it is read from the "
                + "controller method handling a request (@RequestMapping, @GetExchange and the like, or its class) and from "
                + "@HttpExchange interfaces and their methods, not from the beans they call. Move it to the controller "
                + "or to the @HttpExchange method the calls go through");
    }

    private static boolean declaresExchanges(Class<?> iface) {
        for (Method m : iface.getMethods()) {
            if (isExchange(m)) {
                return true;
            }
        }
        return false;
    }

    private static boolean isExchange(Method m) {
        return MergedAnnotations.from(m, MergedAnnotations.SearchStrategy.TYPE_HIERARCHY).isPresent(HTTP_EXCHANGE);
    }

    /**
     * Spring hands the processor only the invoked method, declared by the parent interface: a declaration on the
     * sub-interface would silently not apply to it, so it fails start-up rather than run under the wrong policy.
     */
    private static IllegalStateException inherited(Class<?> iface, Method m) {
        return new IllegalStateException("@UpstreamPolicy on " + iface.getName() + " does not reach "
                + m.getDeclaringClass().getName() + "#" + m.getName() + ", which it inherits: an @HttpExchange method "
                + "runs under the declarations of the interface that declares it. Annotate that interface or the "
                + "method, or redeclare the method in " + iface.getSimpleName());
    }
}
