package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.UpstreamFault;
import java.io.IOException;

/**
 * The client stopped sending a streamed request body. Thrown into the guarded client from the request entity so that
 * the failure is not blamed on the upstream: the library classifies an {@code UpstreamException} by its own fault,
 * and {@code proxy_internal_error} neither counts against the circuit breaker nor is retried. The proxy servlet
 * recognizes it and answers nobody, since the client is gone. No stack trace: it is the client's doing.
 */
public final class ClientAbortedException extends UpstreamException {

    private static final long serialVersionUID = 1L;

    /** Creates the exception for {@code upstream}, keeping the client's failure as the cause. */
    public ClientAbortedException(String upstream, IOException clientFailure) {
        super(UpstreamFault.PROXY_INTERNAL_ERROR, upstream, 1, null, 0,
                "The client stopped sending the request body (" + clientFailure + ")", clientFailure, false);
    }

    @Override
    public synchronized Throwable fillInStackTrace() {
        return this;
    }
}
