package dev.upstreamguard;

import java.util.Locale;
import java.util.Optional;

/**
 * Every way an upstream call can fail, named after its RFC 9209 Proxy-Status error type and paired with the
 * RFC 9110 status a gateway answers with when it generates the response itself.
 *
 * <p>{@link #upstreamMayHaveActed()} drives retry safety: a fault the upstream cannot have seen is safe to retry
 * for any method; one it may have acted on is retried only for idempotent requests (RFC 9110 §9.2.2).
 */
public enum UpstreamFault {
    /** The upstream's host name does not resolve. */
    DNS_ERROR("dns_error", 502, false),
    /** The resolver did not answer in time. */
    DNS_TIMEOUT("dns_timeout", 504, false),
    /** No upstream or route is configured for the request. */
    DESTINATION_NOT_FOUND("destination_not_found", 500, false),
    /** The circuit breaker is open (or no healthy instance is left); comes with a Retry-After. */
    DESTINATION_UNAVAILABLE("destination_unavailable", 503, false),
    /** The upstream refused the TCP connection (or no route to it). */
    CONNECTION_REFUSED("connection_refused", 502, false),
    /** The TCP (or TLS) connection was not established in time. */
    CONNECTION_TIMEOUT("connection_timeout", 504, false),
    /** A local limit was hit: the bulkhead is full or no pooled connection could be leased in time. */
    CONNECTION_LIMIT_REACHED("connection_limit_reached", 503, false),
    /** The upstream's certificate was not trusted or did not match its name. */
    TLS_CERTIFICATE_ERROR("tls_certificate_error", 502, false),
    /** The upstream ended the TLS handshake with a fatal alert. */
    TLS_ALERT_RECEIVED("tls_alert_received", 502, false),
    /** Any other TLS failure, such as TLS spoken to a plain-text port. */
    TLS_PROTOCOL_ERROR("tls_protocol_error", 502, false),
    /** The connection was closed or reset after the request was sent, before any part of a response arrived. */
    CONNECTION_TERMINATED("connection_terminated", 502, true),
    /** The response started but ended early: truncated head, body shorter than framed, or a truncated chunk. */
    HTTP_RESPONSE_INCOMPLETE("http_response_incomplete", 502, true),
    /** Reading from the upstream stalled for longer than the response timeout. */
    CONNECTION_READ_TIMEOUT("connection_read_timeout", 504, true),
    /**
     * Writing the request body to the upstream was blocked for longer than the response timeout: the upstream stopped
     * taking it (RFC 9209 {@code connection_write_timeout}).
     */
    CONNECTION_WRITE_TIMEOUT("connection_write_timeout", 504, true),
    /** The call's total deadline ran out, across every attempt. */
    HTTP_RESPONSE_TIMEOUT("http_response_timeout", 504, true),
    /** The upstream did not speak valid HTTP: bad status line, bad header, conflicting framing, bad chunking. */
    HTTP_PROTOCOL_ERROR("http_protocol_error", 502, true),
    /** The response header section was larger than allowed (too many headers or too many bytes). */
    HTTP_RESPONSE_HEADER_SECTION_SIZE("http_response_header_section_size", 502, true),
    /** One response header line was longer than allowed. */
    HTTP_RESPONSE_HEADER_SIZE("http_response_header_size", 502, true),
    /**
     * The trailer section after a chunked body had more fields than the response header limit allows (RFC 9209
     * {@code http_response_trailer_section_size}).
     */
    HTTP_RESPONSE_TRAILER_SECTION_SIZE("http_response_trailer_section_size", 502, true),
    /** One trailer field line was longer than the header line limit (RFC 9209 {@code http_response_trailer_size}). */
    HTTP_RESPONSE_TRAILER_SIZE("http_response_trailer_size", 502, true),
    /** The response body was larger than a configured limit. */
    HTTP_RESPONSE_BODY_SIZE("http_response_body_size", 502, true),
    /**
     * The response was framed in a transfer coding the client does not decode ({@code Transfer-Encoding: gzip,
     * chunked}; only {@code chunked} is): RFC 9209 {@code http_response_transfer_coding}.
     */
    HTTP_RESPONSE_TRANSFER_CODING("http_response_transfer_coding", 502, true),
    /** The response body could not be decoded (for example broken gzip), where the client decodes it. */
    HTTP_RESPONSE_CONTENT_CODING("http_response_content_coding", 502, true),
    /**
     * The request came round a forwarding loop: it already passed through this gateway (RFC 9209
     * {@code proxy_loop_detected}). Answered 500, not the 502 RFC 9209 recommends: each hop of the loop would take a
     * 502 for a failing upstream, retry it and count it against its breaker, multiplying the loop instead of ending
     * it. A loop is the gateway's own configuration error.
     */
    PROXY_LOOP_DETECTED("proxy_loop_detected", 500, false),
    /** The library or the application is misconfigured for this call. */
    PROXY_CONFIGURATION_ERROR("proxy_configuration_error", 500, false),
    /** A bug in the library or below it; assume the upstream may have seen the request. */
    PROXY_INTERNAL_ERROR("proxy_internal_error", 500, true);

    private final String type;
    private final int status;
    private final boolean upstreamMayHaveActed;

    UpstreamFault(String type, int status, boolean upstreamMayHaveActed) {
        this.type = type;
        this.status = status;
        this.upstreamMayHaveActed = upstreamMayHaveActed;
    }

    /** The RFC 9209 Proxy-Status error type, such as {@code connection_refused}. */
    public String type() {
        return type;
    }

    /** The status a gateway answers with when it generates the response for this fault: 500, 502, 503 or 504. */
    public int status() {
        return status;
    }

    /**
     * Whether the upstream could have received, and acted on, the request. When {@code false} the request never
     * left this process or never reached the upstream's HTTP layer, so retrying it is safe for any method.
     */
    public boolean upstreamMayHaveActed() {
        return upstreamMayHaveActed;
    }

    /** Whether this fault is a timeout of some kind (a 504). */
    public boolean isTimeout() {
        return status == 504;
    }

    /** The fault with the given RFC 9209 type, ignoring case. */
    public static Optional<UpstreamFault> ofType(String type) {
        if (type == null) {
            return Optional.empty();
        }
        String wanted = type.trim().toLowerCase(Locale.ROOT);
        for (UpstreamFault fault : values()) {
            if (fault.type.equals(wanted)) {
                return Optional.of(fault);
            }
        }
        return Optional.empty();
    }

    @Override
    public String toString() {
        return type;
    }
}
