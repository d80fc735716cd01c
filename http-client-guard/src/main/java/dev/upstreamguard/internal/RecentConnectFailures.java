package dev.upstreamguard.internal;

import dev.upstreamguard.client.Ticker;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The addresses to which one pool's connects recently timed out or were refused, so that its next connections to a
 * host with several addresses try them last: without it every new connection paid a silent first address's share of
 * the connect timeout again. An address is forgotten {@link #FORGET_AFTER} after its last failure, when it is tried in
 * its resolver's order again, or as soon as a connect to it succeeds.
 */
final class RecentConnectFailures {

    /**
     * Long enough to spare a burst of new connections the wait, short enough that an address back in service gets its
     * share of connections soon; a fixed time, as a pool's connects are not tied to one upstream's policy.
     */
    static final long FORGET_AFTER = TimeUnit.SECONDS.toNanos(30);

    /** Hosts times addresses; past it the least recently failed is forgotten, so calls to ever new hosts stay bounded. */
    static final int MAX_ADDRESSES = 1024;

    private final Ticker ticker;
    /** Ticker time of each address's last failure, least recently failed first. */
    private final LinkedHashMap<InetSocketAddress, Long> failedAt = new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<InetSocketAddress, Long> eldest) {
            return size() > MAX_ADDRESSES;
        }
    };

    RecentConnectFailures(Ticker ticker) {
        this.ticker = ticker;
    }

    /** A connect to {@code address} timed out or was refused. */
    synchronized void failed(InetSocketAddress address) {
        failedAt.remove(address); // to the end: the most recent failure
        failedAt.put(address, ticker.nanoTime());
    }

    /** A connect to {@code address} succeeded. */
    synchronized void connected(InetSocketAddress address) {
        failedAt.remove(address);
    }

    /**
     * {@code addresses} with those that recently failed moved to the end, least recently failed first; the others keep
     * the resolver's order.
     */
    synchronized List<InetSocketAddress> order(List<InetSocketAddress> addresses) {
        if (failedAt.isEmpty()) {
            return addresses;
        }
        long now = ticker.nanoTime();
        failedAt.values().removeIf(at -> now - at >= FORGET_AFTER);
        List<InetSocketAddress> ordered = new ArrayList<>(addresses.size());
        for (InetSocketAddress address : addresses) {
            if (!failedAt.containsKey(address)) {
                ordered.add(address);
            }
        }
        if (ordered.size() == addresses.size()) {
            return addresses;
        }
        for (InetSocketAddress address : failedAt.keySet()) {
            if (addresses.contains(address)) {
                ordered.add(address);
            }
        }
        return ordered;
    }

    /** How many addresses are remembered, expired ones included until the next {@link #order}. */
    synchronized int size() {
        return failedAt.size();
    }
}
