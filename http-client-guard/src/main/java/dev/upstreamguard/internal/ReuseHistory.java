package dev.upstreamguard.internal;

import dev.upstreamguard.client.Ticker;
import java.net.SocketAddress;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * What one pool has seen of each upstream address keeping idle connections open: whether a reused connection has
 * ever answered there, and how long a connection may idle there before the upstream is known to drop it.
 *
 * <p>The JDK's blocking sockets cannot tell a closed idle connection from a live one without a timed read, so
 * HttpClient's stale check costs a live connection a full millisecond. That is fine after a keep-alive timeout's worth
 * of idling but not on every reuse, and an upstream that closes after each response without saying
 * {@code Connection: close} (or drops idle connections within a second) would make every reused request fail: a GET
 * retried each time, a POST lost each time. Learning per address turns that into at most one retried request.
 */
final class ReuseHistory {

    /** A pool has few upstream addresses; past this many, new ones are simply not remembered. */
    private static final int MAX_ADDRESSES = 1024;

    /** An upstream that drops a connection within this idle time closes after every response; none times out so fast. */
    private static final long CLOSES_AFTER_EVERY_RESPONSE = TimeUnit.MILLISECONDS.toNanos(100);

    /** How long a learned limit holds; after it, reuse is tried again (an upstream restart also drops connections). */
    static final long FORGET_AFTER = TimeUnit.SECONDS.toNanos(60);

    private static final Entry PROVEN = new Entry(Long.MAX_VALUE, Long.MAX_VALUE);

    /** {@code maxIdle}: connections idle longer are not reused; {@code until}: the ticker time the entry lapses. */
    private record Entry(long maxIdle, long until) {
    }

    private final ConcurrentHashMap<SocketAddress, Entry> byAddress = new ConcurrentHashMap<>();
    private final Ticker ticker;

    ReuseHistory(Ticker ticker) {
        this.ticker = ticker;
    }

    /** Whether a connection to {@code address} may be reused after idling {@code idle} ns without a probe. */
    boolean mayReuse(SocketAddress address, long idle) {
        Entry e = entry(address);
        return e == null || idle <= e.maxIdle;
    }

    /**
     * Whether a reused connection has answered at {@code address} and none has been found dropped since: only then
     * may a request that cannot be retried skip the probe for a close.
     */
    boolean proven(SocketAddress address) {
        return entry(address) == PROVEN;
    }

    /** A reused connection to {@code address} answered. */
    void reuseWorked(SocketAddress address) {
        if (remembers(address) && byAddress.get(address) != PROVEN) {
            byAddress.put(address, PROVEN);
        }
    }

    /** A connection to {@code address} turned out closed by the upstream after idling {@code idle} ns. */
    void closedWhileIdle(SocketAddress address, long idle) {
        if (!remembers(address)) {
            return;
        }
        long maxIdle = idle < CLOSES_AFTER_EVERY_RESPONSE ? -1 : idle / 2;
        long until = ticker.nanoTime() + FORGET_AFTER;
        byAddress.merge(address, new Entry(maxIdle, until),
                (old, now) -> old == PROVEN || now.maxIdle < old.maxIdle ? now : new Entry(old.maxIdle, until));
    }

    /** Whether {@code address} (unknown before the socket connects) has or may get an entry. */
    private boolean remembers(SocketAddress address) {
        return address != null && (byAddress.size() < MAX_ADDRESSES || byAddress.containsKey(address));
    }

    private Entry entry(SocketAddress address) {
        if (address == null) {
            return null;
        }
        Entry e = byAddress.get(address);
        if (e != null && e != PROVEN && ticker.nanoTime() - e.until > 0) {
            byAddress.remove(address, e);
            return null;
        }
        return e;
    }
}
