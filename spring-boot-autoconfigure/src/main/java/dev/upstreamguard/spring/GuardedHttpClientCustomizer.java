package dev.upstreamguard.spring;

import dev.upstreamguard.client.GuardedHttpClientBuilder;

/**
 * Customizes the auto-configured {@link dev.upstreamguard.client.GuardedHttpClient} before it is built, after the
 * {@code upstream-guard.*} properties were applied: trust material, a connection manager, a base request config...
 * Declare one or more as beans.
 */
@FunctionalInterface
public interface GuardedHttpClientCustomizer {

    /** Adjusts {@code builder}. */
    void customize(GuardedHttpClientBuilder builder);
}
