package dev.upstreamguard.internal;

import dev.upstreamguard.UpstreamFault;
import java.io.IOException;

/**
 * An I/O failure that already knows its fault, thrown where the library itself detects the problem (the strict
 * response parser, body limits) so the classifier never has to guess from a message.
 */
public final class FaultSignal extends IOException {

    private static final long serialVersionUID = 1L;

    private final UpstreamFault fault;

    public FaultSignal(UpstreamFault fault, String message) {
        this(fault, message, null);
    }

    public FaultSignal(UpstreamFault fault, String message, Throwable cause) {
        super(message, cause);
        this.fault = fault;
    }

    public UpstreamFault fault() {
        return fault;
    }
}
