package dev.upstreamguard.gateway.internal;

/**
 * Copy buffers for streaming bodies, one per thread: the proxy copies on the container thread that serves the
 * request, so a thread-local buffer is reused from request to request instead of allocating 32 KiB each time.
 */
public final class Buffers {

    /** Large enough to move a body in few system calls, small enough to keep memory per thread modest. */
    public static final int SIZE = 32 * 1024;

    private static final ThreadLocal<byte[]> BUFFER = ThreadLocal.withInitial(() -> new byte[SIZE]);

    private Buffers() {
    }

    /** This thread's buffer; it must not escape the current request. */
    public static byte[] get() {
        return BUFFER.get();
    }
}
