package dev.upstreamguard.spring.internal;

/**
 * The {@code @UpstreamPolicy} in force on the current thread: the inbound one of the controller handling the request,
 * and the outbound one of the {@code @HttpExchange} method being called, which is more specific and wins setting by
 * setting.
 */
public final class CallScope {

    private static final ThreadLocal<PolicyOverride> INBOUND = new ThreadLocal<>();
    private static final ThreadLocal<PolicyOverride> OUTBOUND = new ThreadLocal<>();

    private CallScope() {
    }

    /** The merged override for a call made now, or {@code null}. */
    public static PolicyOverride current() {
        PolicyOverride outbound = OUTBOUND.get();
        PolicyOverride inbound = INBOUND.get();
        return outbound == null ? inbound : outbound.over(inbound);
    }

    /** Sets the inbound override for the request being handled on this thread. */
    public static void enterInbound(PolicyOverride override) {
        INBOUND.set(override);
    }

    /** Clears the inbound override. */
    public static void exitInbound() {
        INBOUND.remove();
    }

    /** Sets the outbound override for one call; returns what to restore with {@link #exitOutbound}. */
    public static PolicyOverride enterOutbound(PolicyOverride override) {
        PolicyOverride previous = OUTBOUND.get();
        OUTBOUND.set(override);
        return previous;
    }

    /** Restores the outbound override that was in force before {@link #enterOutbound}. */
    public static void exitOutbound(PolicyOverride previous) {
        if (previous == null) {
            OUTBOUND.remove();
        } else {
            OUTBOUND.set(previous);
        }
    }
}
