package dev.upstreamguard.gateway.internal;

import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;

/**
 * The client's address as the forwarding headers carry it. Containers disagree on how
 * {@code getRemoteAddr()} spells an IPv6 address: Tomcat gives {@code 0:0:0:0:0:0:0:1}, Jetty
 * {@code [0:0:0:0:0:0:0:1]} with brackets. Passed on as given, Jetty's became {@code for="[[0:0:0:0:0:0:0:1]]"} (no
 * valid RFC 7239 node) and a bracketed {@code X-Forwarded-For}, which upstreams fail to parse. So an IPv6 address is
 * written bare and in RFC 5952's canonical text ({@code ::1}); {@code Forwarded} adds the brackets and quotes RFC 7239
 * §6 asks for.
 */
public final class ClientAddress {

    private ClientAddress() {
    }

    /** {@code remote} without brackets, an IPv6 address in RFC 5952 form; anything else unchanged. */
    public static String canonical(String remote) {
        if (remote == null || remote.indexOf(':') < 0) {
            return remote;
        }
        String bare = remote.startsWith("[") && remote.endsWith("]") ? remote.substring(1, remote.length() - 1) : remote;
        int zone = bare.indexOf('%');
        String literal = zone < 0 ? bare : bare.substring(0, zone);
        try {
            // A literal (it holds ':'), so no name is looked up.
            InetAddress address = InetAddress.getByName(literal);
            if (!(address instanceof Inet6Address)) {
                return bare;
            }
            return rfc5952(address.getAddress()) + (zone < 0 ? "" : bare.substring(zone));
        } catch (UnknownHostException | IllegalArgumentException notAnAddress) {
            return bare;
        }
    }

    /** RFC 5952 §4: lower-case hex, no leading zeros, the longest run (first if tied) of two or more zero groups as ::. */
    static String rfc5952(byte[] b) {
        int[] groups = new int[8];
        for (int i = 0; i < 8; i++) {
            groups[i] = (b[2 * i] & 0xff) << 8 | (b[2 * i + 1] & 0xff);
        }
        int bestStart = -1;
        int bestLength = 1;
        for (int i = 0; i < 8;) {
            if (groups[i] != 0) {
                i++;
                continue;
            }
            int j = i;
            while (j < 8 && groups[j] == 0) {
                j++;
            }
            if (j - i > bestLength) {
                bestStart = i;
                bestLength = j - i;
            }
            i = j;
        }
        StringBuilder sb = new StringBuilder(39);
        for (int i = 0; i < 8; i++) {
            if (i == bestStart) {
                sb.append("::");
                i += bestLength - 1;
                continue;
            }
            if (sb.length() > 0 && sb.charAt(sb.length() - 1) != ':') {
                sb.append(':');
            }
            sb.append(Integer.toHexString(groups[i]));
        }
        return sb.toString();
    }
}
