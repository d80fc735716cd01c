package dev.upstreamguard;

import java.io.IOException;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;

/**
 * The one exception an upstream call fails with: it names the {@link UpstreamFault}, the upstream, how many
 * attempts were made and, for a 503, when to come back. Each earlier attempt's failure is attached as a
 * {@linkplain #getSuppressed() suppressed} exception and the original failure is the {@linkplain #getCause() cause},
 * so nothing is lost.
 *
 * <p>It is an {@link IOException}, like every connectivity failure of the HTTP clients it guards.
 */
public class UpstreamException extends IOException {

    private static final long serialVersionUID = 1L;

    private final UpstreamFault fault;
    private final String upstream;
    private final int attempts;
    private final Duration retryAfter;
    private final long elapsedNanos;

    /**
     * Creates an exception for a failed call.
     *
     * @param fault the classified fault
     * @param upstream the upstream's name (never a full URI)
     * @param attempts how many attempts were made, at least 0 (0 when the call was rejected before any attempt)
     * @param retryAfter when the caller may try again, or {@code null} when unknown
     * @param elapsedNanos how long the whole call took
     * @param message a short description that never contains a stack trace
     * @param cause the original failure, or {@code null} for a rejection the library made itself
     */
    public UpstreamException(UpstreamFault fault, String upstream, int attempts, Duration retryAfter,
            long elapsedNanos, String message, Throwable cause) {
        this(fault, upstream, attempts, retryAfter, elapsedNanos, message, cause, true);
    }

    /**
     * Like the public constructor, but lets fast-path rejections (circuit open, bulkhead full) skip the cost of a
     * stack trace.
     */
    // IOException has no constructor that skips the stack trace, so an empty one is set here; Throwable's own
    // setStackTrace is what a subclass would override, and none does.
    @SuppressWarnings("this-escape")
    protected UpstreamException(UpstreamFault fault, String upstream, int attempts, Duration retryAfter,
            long elapsedNanos, String message, Throwable cause, boolean writableStackTrace) {
        super(message, cause);
        this.fault = Objects.requireNonNull(fault, "fault");
        this.upstream = Objects.requireNonNull(upstream, "upstream");
        if (attempts < 0) {
            throw new IllegalArgumentException("attempts must be >= 0, was " + attempts);
        }
        this.attempts = attempts;
        this.retryAfter = retryAfter;
        this.elapsedNanos = elapsedNanos;
        if (!writableStackTrace) {
            setStackTrace(new StackTraceElement[0]);
        }
    }

    /** The classified fault. */
    public UpstreamFault fault() {
        return fault;
    }

    /** The name of the upstream that failed, such as {@code inventory} or {@code 127.0.0.1:8080}. */
    public String upstream() {
        return upstream;
    }

    /** How many attempts were made; 0 when the call was rejected before reaching the transport. */
    public int attempts() {
        return attempts;
    }

    /** When the caller may try again (for a 503 such as an open circuit), when the library knows it. */
    public Optional<Duration> retryAfter() {
        return Optional.ofNullable(retryAfter);
    }

    /** How long the call took, over every attempt, until it failed. */
    public Duration elapsed() {
        return Duration.ofNanos(elapsedNanos);
    }

    /**
     * Finds the {@code UpstreamException} in a throwable's cause chain, for callers that get one wrapped by a
     * framework ({@code ServletException}, Spring's {@code ResourceAccessException}, {@code CompletionException}…).
     */
    public static Optional<UpstreamException> find(Throwable thrown) {
        // Bounded rather than cycle-checked: a cause chain deeper than this is itself a bug.
        Throwable t = thrown;
        for (int depth = 0; t != null && depth < 64; depth++, t = t.getCause()) {
            if (t instanceof UpstreamException) {
                return Optional.of((UpstreamException) t);
            }
        }
        return Optional.empty();
    }
}
