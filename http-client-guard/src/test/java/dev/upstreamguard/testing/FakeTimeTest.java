package dev.upstreamguard.testing;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class FakeTimeTest {

    @Test
    void sleepingReturnsAtOnceAndAdvancesTickerAndClockTogether() throws Exception {
        FakeTime time = new FakeTime();
        Clock clock = time.clock();
        long t0 = time.nanoTime();
        List<Duration> hooked = new ArrayList<>();
        time.onSleep(hooked::add);

        time.sleep(Duration.ofSeconds(120));
        time.advance(Duration.ofMillis(5));

        assertThat(time.nanoTime() - t0).isEqualTo(Duration.ofMillis(120_005).toNanos());
        assertThat(clock.instant()).isEqualTo(FakeTime.EPOCH.plusMillis(120_005));
        assertThat(clock.millis()).isEqualTo(FakeTime.EPOCH.toEpochMilli() + 120_005);
        assertThat(time.sleeps()).containsExactly(Duration.ofSeconds(120));
        assertThat(hooked).containsExactly(Duration.ofSeconds(120));
        assertThat(time.totalSlept()).isEqualTo(Duration.ofSeconds(120));
        assertThat(time.elapsed()).isEqualTo(Duration.ofMillis(120_005));
    }
}
