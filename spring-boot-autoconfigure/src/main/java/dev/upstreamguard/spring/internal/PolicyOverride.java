package dev.upstreamguard.spring.internal;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * What one or more {@code @UpstreamPolicy} declarations ask for: an upstream name (or none) and settings by their
 * {@link dev.upstreamguard.GuardPolicy.Builder#set} keys. Immutable; {@link #over} merges a more specific declaration
 * over a less specific one, setting by setting.
 */
public final class PolicyOverride {

    private final String upstream;
    private final Map<String, String> settings;
    private final String source;

    PolicyOverride(String upstream, Map<String, String> settings, String source) {
        this.upstream = upstream == null || upstream.isEmpty() ? null : upstream;
        this.settings = Collections.unmodifiableMap(new LinkedHashMap<>(settings));
        this.source = source;
    }

    /** The upstream named, or {@code null} for "the upstream the call's URL belongs to". */
    public String upstream() {
        return upstream;
    }

    /** Overridden settings by key, such as {@code response-timeout=2s}. */
    public Map<String, String> settings() {
        return settings;
    }

    /** Where it was declared, for messages. */
    public String source() {
        return source;
    }

    /** This declaration (more specific) merged over {@code less}: each of its settings wins, the rest fall through. */
    public PolicyOverride over(PolicyOverride less) {
        if (less == null) {
            return this;
        }
        Map<String, String> merged = new LinkedHashMap<>(less.settings);
        merged.putAll(settings);
        return new PolicyOverride(upstream != null ? upstream : less.upstream, merged, source + " over " + less.source);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PolicyOverride && Objects.equals(upstream, ((PolicyOverride) o).upstream)
                && settings.equals(((PolicyOverride) o).settings);
    }

    @Override
    public int hashCode() {
        return Objects.hash(upstream, settings);
    }

    @Override
    public String toString() {
        return "PolicyOverride{upstream=" + upstream + ", settings=" + settings + ", source=" + source + "}";
    }
}
