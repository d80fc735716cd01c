package dev.upstreamguard.gateway.internal;

/**
 * This hop's element of the {@code Forwarded} request header (RFC 7239): {@code for}, {@code proto} and {@code host},
 * after the elements the request came with.
 */
public final class ForwardedElement {

    /**
     * The last {@code Host} seen and its {@code ;host=} parameter. A gateway's clients mostly name one host (with a
     * port it is no token, so it is quoted): the check and the quoting then run once, not on every request.
     */
    private static volatile HostParam lastHost = new HostParam("", "");

    private record HostParam(String host, String param) {
    }

    private ForwardedElement() {
    }

    /**
     * The {@code Forwarded} value to send: {@code earlier} (the request's own, joined; may be {@code null}) and this
     * hop's element.
     *
     * @param remote the client's address, IPv6 without brackets ({@link ClientAddress#canonical})
     * @param clientHost the authority the client addressed; {@code null} or empty when there is none
     */
    public static String of(String earlier, String remote, String scheme, String clientHost) {
        String node = remote.indexOf(':') >= 0 ? "\"[" + remote + "]\"" : remote;
        String host = hostParam(clientHost);
        return earlier == null
                ? "for=" + node + ";proto=" + scheme + host
                : earlier + ", for=" + node + ";proto=" + scheme + host;
    }

    private static String hostParam(String clientHost) {
        if (clientHost == null || clientHost.isEmpty()) {
            return "";
        }
        HostParam last = lastHost;
        if (last.host().equals(clientHost)) {
            return last.param();
        }
        String param = StructuredFields.isHttpToken(clientHost)
                ? ";host=" + clientHost
                : ";host=\"" + clientHost.replace("\\", "\\\\").replace("\"", "\\\"") + '"';
        lastHost = new HostParam(clientHost, param);
        return param;
    }
}
