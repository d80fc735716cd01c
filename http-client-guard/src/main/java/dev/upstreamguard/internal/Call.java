package dev.upstreamguard.internal;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.Ticker;
import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;

/**
 * One guarded call, from its permits to its outcome. It is finished exactly once — when the call fails, when a
 * response without a body arrives, or when the body is read to its end, fails, or is closed — and only then are the
 * breaker, the bulkhead permit, the metrics and the fault counts updated, so that a fault in the body counts like any
 * other. It may be finished on another thread than the caller's (the deadline timer's, when the deadline runs out
 * while the caller's thread is blocked in its own request body's source); whichever thread comes second does nothing.
 */
public final class Call {

    private final UpstreamGuard upstream;
    private final String method;
    private final long startNanos;
    private final Ticker ticker;
    private final boolean holdsBreakerPermit;
    /** The breaker's state when the permit was taken ({@link UpstreamGuard#breakerGeneration()}). */
    private final long breakerGeneration;
    private final boolean holdsBulkheadPermit;
    private final BooleanSupplier cancelled;
    private final AtomicBoolean finished = new AtomicBoolean();
    private int attempts;
    private int status;
    private volatile boolean endedInOwnWait;
    private volatile boolean callerGaveUp;

    /** {@code cancelled} tells whether the caller cancelled the request (then failures are not the upstream's). */
    public Call(UpstreamGuard upstream, String method, long startNanos, Ticker ticker, boolean holdsBreakerPermit,
            boolean holdsBulkheadPermit, BooleanSupplier cancelled) {
        this.upstream = upstream;
        this.method = method;
        this.startNanos = startNanos;
        this.ticker = ticker;
        this.holdsBreakerPermit = holdsBreakerPermit;
        this.breakerGeneration = holdsBreakerPermit && upstream.breaker() != null ? upstream.breakerGeneration() : 0;
        this.holdsBulkheadPermit = holdsBulkheadPermit;
        this.cancelled = cancelled;
        if (!holdsBulkheadPermit) {
            upstream.callStarted();
        }
    }

    public UpstreamGuard upstream() {
        return upstream;
    }

    /** Whether the breaker has changed state since this call took its permit. */
    public boolean breakerChangedSincePermit() {
        return holdsBreakerPermit && upstream.breaker() != null && breakerGeneration != upstream.breakerGeneration();
    }

    public long startNanos() {
        return startNanos;
    }

    public int attempts() {
        return attempts;
    }

    public void attempt(int number) {
        this.attempts = number;
    }

    public long elapsedNanos() {
        return ticker.nanoTime() - startNanos;
    }

    /** Whether the caller cancelled the request: what fails after that is not the upstream's doing. */
    public boolean cancelledByCaller() {
        return callerGaveUp || cancelled.getAsBoolean();
    }

    /** The caller gave up on the call after its response head (its thread interrupted while reading the body). */
    public void callerGaveUp() {
        this.callerGaveUp = true;
    }

    /**
     * The call is ending in a wait of the client's own (for a pooled connection), whatever fault it ends with: the
     * upstream was not waited for, so its breaker records nothing, as for {@code connection_limit_reached}.
     */
    public void endedInOwnWait() {
        this.endedInOwnWait = true;
    }

    /** The response head arrived; the call finishes when its body does. */
    public void responded(int status) {
        this.status = status;
    }

    /** The response (and its body, if any) completed, or the caller stopped reading it. */
    public void succeeded() {
        if (!finished.compareAndSet(false, true)) {
            return;
        }
        long nanos = elapsedNanos();
        CircuitBreaker breaker = upstream.breaker();
        if (holdsBreakerPermit && breaker != null) {
            if (upstream.policy().circuitBreaker().recordStatuses().contains(status)) {
                upstream.recordBreakerFailure(nanos, new StatusFailure(status), breakerGeneration);
            } else {
                upstream.recordBreakerSuccess(nanos, breakerGeneration);
            }
        }
        upstream.metrics().recordCall(method, GuardMetrics.outcome(status), status, null, nanos);
        release();
    }

    /**
     * The call failed with {@code fault}, before or after the response head. A failure caused by the caller
     * cancelling the request is not the upstream's: a caller giving up (a gateway's client hanging up) says nothing
     * about the upstream's health, so it is kept out of the breaker and the fault counts and recorded with the
     * outcome {@code cancelled}, where dashboards and alerts on {@code fault} do not mistake it for an outage.
     */
    public void failed(UpstreamFault fault, Throwable cause) {
        if (!finished.compareAndSet(false, true)) {
            return;
        }
        long nanos = elapsedNanos();
        boolean byCaller = cancelledByCaller();
        CircuitBreaker breaker = upstream.breaker();
        if (holdsBreakerPermit && breaker != null) {
            if (countsAgainstUpstream(fault) && !byCaller && !endedInOwnWait) {
                upstream.recordBreakerFailure(nanos, cause, breakerGeneration);
            } else {
                upstream.releaseBreakerPermit(breakerGeneration);
            }
        }
        if (byCaller) {
            upstream.metrics().recordCall(method, GuardMetrics.CANCELLED, status, null, nanos);
        } else {
            upstream.countFault(fault);
            upstream.metrics().recordCall(method, "fault", status, fault, nanos);
        }
        release();
    }

    /** Turns a failure while reading the body into the call's final exception, and finishes the call with it. */
    public UpstreamException bodyFailure(UpstreamFault fault, Throwable cause) {
        UpstreamException e = new UpstreamException(fault, upstream.name(), Math.max(attempts, 1), null,
                elapsedNanos(), "Upstream '" + upstream.name() + "' failed while sending the response body: "
                        + fault.type() + " (" + Redaction.describe(cause) + ")", cause);
        failed(fault, e);
        return e;
    }

    /**
     * Last, once the call is on record: an upstream with no call in flight may be forgotten with its meters at once,
     * and whoever sees none in flight reads the meters as complete.
     */
    private void release() {
        if (!holdsBulkheadPermit) {
            upstream.callEnded();
            return;
        }
        Bulkhead bulkhead = upstream.bulkhead();
        if (bulkhead != null) {
            bulkhead.onComplete();
        }
    }

    /** Whether a fault says something about the upstream's health (our own limits and configuration do not). */
    static boolean countsAgainstUpstream(UpstreamFault fault) {
        switch (fault) {
            case CONNECTION_LIMIT_REACHED:
            case DESTINATION_NOT_FOUND:
            case DESTINATION_UNAVAILABLE:
            case PROXY_CONFIGURATION_ERROR:
            case PROXY_LOOP_DETECTED:
            case PROXY_INTERNAL_ERROR:
                return false;
            default:
                return true;
        }
    }

    /** Reported to the breaker for an upstream status counted as failure; it needs no stack trace. */
    static final class StatusFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        StatusFailure(int status) {
            super("Upstream answered " + status, null, false, false);
        }
    }
}
