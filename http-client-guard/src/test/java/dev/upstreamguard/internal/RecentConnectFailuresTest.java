package dev.upstreamguard.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The memory of failed connect addresses stays bounded and lapses by the ticker. */
class RecentConnectFailuresTest {

    private static InetSocketAddress address(int i) {
        return InetSocketAddress.createUnresolved("host" + i + ".test", 80);
    }

    @Test
    void aClientCallingEverNewHostsRemembersAtMostABoundedNumberOfFailedAddresses() {
        AtomicLong now = new AtomicLong();
        RecentConnectFailures failures = new RecentConnectFailures(now::get);
        for (int i = 0; i <= RecentConnectFailures.MAX_ADDRESSES; i++) {
            failures.failed(address(i));
        }
        assertThat(failures.size()).isEqualTo(RecentConnectFailures.MAX_ADDRESSES);
        // The least recently failed went first: it keeps its place; the latest still goes last.
        List<InetSocketAddress> both = List.of(address(RecentConnectFailures.MAX_ADDRESSES), address(0));
        assertThat(failures.order(both)).containsExactly(address(0), address(RecentConnectFailures.MAX_ADDRESSES));
    }

    @Test
    void aFailedAddressGoesLastUntilItConnectsOrItsMemoryLapses() {
        AtomicLong now = new AtomicLong();
        RecentConnectFailures failures = new RecentConnectFailures(now::get);
        List<InetSocketAddress> resolved = List.of(address(1), address(2));
        failures.failed(address(1));
        assertThat(failures.order(resolved)).containsExactly(address(2), address(1));
        failures.connected(address(1));
        assertThat(failures.order(resolved)).containsExactly(address(1), address(2));
        failures.failed(address(1));
        now.addAndGet(RecentConnectFailures.FORGET_AFTER - 1);
        assertThat(failures.order(resolved)).containsExactly(address(2), address(1));
        now.addAndGet(1);
        assertThat(failures.order(resolved)).containsExactly(address(1), address(2));
        assertThat(failures.size()).isZero();
    }
}
