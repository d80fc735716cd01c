package dev.upstreamguard.spring.internal;

import dev.upstreamguard.spring.UpstreamPolicy;
import java.lang.reflect.Method;
import org.springframework.beans.factory.SmartInitializingSingleton;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.core.annotation.AnnotatedElementUtils;
import org.springframework.util.ClassUtils;
import org.springframework.util.ReflectionUtils;

/**
 * Reads every {@link UpstreamPolicy} of the application's beans once the context is built (controllers and
 * {@code @HttpExchange} client proxies), so that an unknown upstream or a bad value fails start-up, not a request.
 */
public final class UpstreamPolicyValidator implements SmartInitializingSingleton {

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
            Class<?> user = ClassUtils.getUserClass(type);
            if (!user.isInterface() && !user.getName().startsWith("jdk.proxy")
                    && !java.lang.reflect.Proxy.isProxyClass(user)) {
                boolean onClass = AnnotatedElementUtils.hasAnnotation(user, UpstreamPolicy.class);
                ReflectionUtils.doWithMethods(user, m -> resolver.forHandler(m, user),
                        m -> onClass || AnnotatedElementUtils.hasAnnotation(m, UpstreamPolicy.class));
            }
            for (Class<?> iface : ClassUtils.getAllInterfacesForClassAsSet(type)) {
                boolean onType = AnnotatedElementUtils.hasAnnotation(iface, UpstreamPolicy.class);
                for (Method m : iface.getMethods()) {
                    if (onType || AnnotatedElementUtils.hasAnnotation(m, UpstreamPolicy.class)) {
                        resolver.forExchange(m);
                    }
                }
            }
        }
    }
}
