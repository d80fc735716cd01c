package dev.upstreamguard.gateway.internal;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Arrays;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Reaches a servlet container's own types where the servlet API has no word for what the proxy needs (its limits, the
 * verbatim {@code Content-Type}). Each member is looked up once per runtime type: a look-up walks the type's hierarchy
 * and copies its methods, which would cost more than the rest of a response's fields when done per response.
 */
final class ContainerReflection {

    private static final Class<?>[] NO_PARAMETERS = {};

    private static final ClassValue<Map<String, Optional<Method>>> METHODS = new ClassValue<>() {
        @Override
        protected Map<String, Optional<Method>> computeValue(Class<?> type) {
            return new ConcurrentHashMap<>();
        }
    };

    private static final ClassValue<Map<String, Optional<Field>>> FIELDS = new ClassValue<>() {
        @Override
        protected Map<String, Optional<Field>> computeValue(Class<?> type) {
            return new ConcurrentHashMap<>();
        }
    };

    private ContainerReflection() {
    }

    /** Calls a public method of {@code target} through a public type that declares it (the runtime class may not be). */
    static Object invoke(Object target, String name, Class<?>[] parameters, Object... arguments)
            throws ReflectiveOperationException {
        Method method = publicMethod(target.getClass(), name, parameters);
        if (method == null) {
            throw new NoSuchMethodException(target.getClass().getName() + "." + name);
        }
        return method.invoke(target, arguments);
    }

    /** Calls a public no-argument method of {@code target}. */
    static Object invoke(Object target, String name) throws ReflectiveOperationException {
        return invoke(target, name, NO_PARAMETERS);
    }

    /** The value of a field that {@code target}'s own class declares, whatever its access. */
    static Object field(Object target, String name) throws ReflectiveOperationException {
        Optional<Field> field = FIELDS.get(target.getClass()).computeIfAbsent(name, n -> {
            try {
                Field f = target.getClass().getDeclaredField(n);
                f.setAccessible(true);
                return Optional.of(f);
            } catch (ReflectiveOperationException | RuntimeException notThere) {
                return Optional.empty();
            }
        });
        if (field.isEmpty()) {
            throw new NoSuchFieldException(target.getClass().getName() + "." + name);
        }
        return field.get().get(target);
    }

    /** A public method that a public type in {@code type}'s hierarchy declares, or {@code null}. */
    static Method publicMethod(Class<?> type, String name, Class<?>... parameters) {
        String key = parameters.length == 0 ? name : name + Arrays.toString(parameters);
        return METHODS.get(type).computeIfAbsent(key, k -> Optional.ofNullable(find(type, name, parameters)))
                .orElse(null);
    }

    private static Method find(Class<?> type, String name, Class<?>... parameters) {
        for (Class<?> c = type; c != null; c = c.getSuperclass()) {
            Method m = declared(c, name, parameters);
            if (m != null) {
                return m;
            }
            for (Class<?> i : c.getInterfaces()) {
                m = find(i, name, parameters);
                if (m != null) {
                    return m;
                }
            }
        }
        return null;
    }

    private static Method declared(Class<?> c, String name, Class<?>... parameters) {
        if (!Modifier.isPublic(c.getModifiers())) {
            return null;
        }
        try {
            Method m = c.getDeclaredMethod(name, parameters);
            return Modifier.isPublic(m.getModifiers()) ? m : null;
        } catch (NoSuchMethodException e) {
            return null;
        }
    }
}
