package dev.upstreamguard.gateway.internal;

import dev.upstreamguard.UpstreamFault;

/**
 * The fixed, human-readable words of a generated fault response. They are written here rather than taken from
 * exception messages, which can name internal hosts and addresses.
 */
final class FaultTexts {

    private FaultTexts() {
    }

    /** The reason phrase of a status the gateway generates. */
    static String reason(int status) {
        switch (status) {
            case 500: return "Internal Server Error";
            case 502: return "Bad Gateway";
            case 503: return "Service Unavailable";
            case 504: return "Gateway Timeout";
            default: return "Error";
        }
    }

    /** A short title for the fault, the same for every occurrence (RFC 9457 {@code title}). */
    static String title(UpstreamFault fault) {
        switch (fault) {
            case DNS_ERROR: return "Upstream host name not resolved";
            case DNS_TIMEOUT: return "Upstream host name lookup timed out";
            case DESTINATION_NOT_FOUND: return "No upstream for this request";
            case DESTINATION_UNAVAILABLE: return "Upstream temporarily unavailable";
            case CONNECTION_REFUSED: return "Upstream refused the connection";
            case CONNECTION_TIMEOUT: return "Upstream connection timed out";
            case CONNECTION_LIMIT_REACHED: return "Too many concurrent upstream requests";
            case TLS_CERTIFICATE_ERROR: return "Upstream certificate not trusted";
            case TLS_ALERT_RECEIVED: return "Upstream rejected the TLS handshake";
            case TLS_PROTOCOL_ERROR: return "Upstream TLS failure";
            case CONNECTION_TERMINATED: return "Upstream closed the connection";
            case HTTP_RESPONSE_INCOMPLETE: return "Upstream response incomplete";
            case CONNECTION_READ_TIMEOUT: return "Upstream response timed out";
            case CONNECTION_WRITE_TIMEOUT: return "Upstream stopped taking the request";
            case HTTP_RESPONSE_TIMEOUT: return "Upstream response timed out";
            case HTTP_PROTOCOL_ERROR: return "Upstream response is not valid HTTP";
            case HTTP_RESPONSE_HEADER_SECTION_SIZE: return "Upstream response headers too large";
            case HTTP_RESPONSE_HEADER_SIZE: return "Upstream response header too large";
            case HTTP_RESPONSE_TRAILER_SECTION_SIZE: return "Upstream response trailers too large";
            case HTTP_RESPONSE_TRAILER_SIZE: return "Upstream response trailer too large";
            case HTTP_RESPONSE_BODY_SIZE: return "Upstream response body too large";
            case HTTP_RESPONSE_TRANSFER_CODING: return "Upstream response framing cannot be decoded";
            case HTTP_RESPONSE_CONTENT_CODING: return "Upstream response body cannot be decoded";
            case PROXY_CONFIGURATION_ERROR: return "Gateway misconfigured";
            case PROXY_LOOP_DETECTED: return "Forwarding loop detected";
            default: return "Gateway internal error";
        }
    }

    /** One sentence saying what happened and what the client can do (RFC 9457 {@code detail}). */
    static String detail(UpstreamFault fault) {
        switch (fault) {
            case DNS_ERROR: return "The gateway could not resolve the upstream's host name.";
            case DNS_TIMEOUT: return "Resolving the upstream's host name took too long.";
            case DESTINATION_NOT_FOUND: return "The gateway has no upstream configured for this request.";
            case DESTINATION_UNAVAILABLE:
                return "The upstream has been failing, so the gateway is not sending it requests for now. Try again later.";
            case CONNECTION_REFUSED: return "The upstream refused the gateway's connection.";
            case CONNECTION_TIMEOUT: return "The gateway could not connect to the upstream in time.";
            case CONNECTION_LIMIT_REACHED:
                return "The gateway is already sending as many requests to the upstream as it allows. Try again later.";
            case TLS_CERTIFICATE_ERROR: return "The upstream's TLS certificate was not trusted.";
            case TLS_ALERT_RECEIVED: return "The upstream ended the TLS handshake with an alert.";
            case TLS_PROTOCOL_ERROR: return "The TLS connection to the upstream failed.";
            case CONNECTION_TERMINATED: return "The upstream closed the connection before sending a response.";
            case HTTP_RESPONSE_INCOMPLETE: return "The upstream's response ended before it was complete.";
            case CONNECTION_READ_TIMEOUT:
            case HTTP_RESPONSE_TIMEOUT:
                return "The upstream did not respond in time.";
            case CONNECTION_WRITE_TIMEOUT: return "The upstream stopped reading the request before it was complete.";
            case HTTP_PROTOCOL_ERROR: return "The upstream's response was not valid HTTP.";
            case HTTP_RESPONSE_HEADER_SECTION_SIZE: return "The upstream's response headers were larger than allowed.";
            case HTTP_RESPONSE_HEADER_SIZE: return "A header of the upstream's response was larger than allowed.";
            case HTTP_RESPONSE_TRAILER_SECTION_SIZE:
                return "The upstream's response trailers (fields after its body) were larger than allowed.";
            case HTTP_RESPONSE_TRAILER_SIZE:
                return "A trailer field (after the body) of the upstream's response was larger than allowed.";
            case HTTP_RESPONSE_BODY_SIZE: return "The upstream's response body was larger than allowed.";
            case HTTP_RESPONSE_TRANSFER_CODING:
                return "The upstream sent its response in a transfer coding the gateway cannot decode.";
            case HTTP_RESPONSE_CONTENT_CODING: return "The upstream's response body could not be decoded.";
            case PROXY_CONFIGURATION_ERROR: return "The gateway is not configured correctly for this request.";
            case PROXY_LOOP_DETECTED:
                return "The request came back to the gateway that had already forwarded it: its route leads in a loop.";
            default: return "The gateway failed while handling this request.";
        }
    }
}
