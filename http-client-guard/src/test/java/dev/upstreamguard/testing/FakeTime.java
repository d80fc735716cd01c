package dev.upstreamguard.testing;

import dev.upstreamguard.client.Sleeper;
import dev.upstreamguard.client.Ticker;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * Time that only moves when told to: a {@link Ticker}, a {@link Sleeper} whose {@code sleep} returns at once after
 * advancing time by the requested duration (and recording it), and a {@link Clock} view of the same time for
 * components that need wall-clock instants (Resilience4j's circuit breaker).
 *
 * <pre>{@code
 * FakeTime time = new FakeTime();
 * GuardedHttpClient client = GuardedHttpClients.custom()
 *         .ticker(time).sleeper(time).clock(time.clock())
 *         .build();
 * ...
 * assertThat(time.sleeps()).containsExactly(Duration.ofSeconds(1));   // honoured Retry-After: 1
 * time.advance(Duration.ofSeconds(10));                                // open circuit half-opens
 * }</pre>
 *
 * <p>Thread-safe. Starts at {@link #EPOCH}.
 *
 * <p>Only waiting is faked: sockets still time out in real time, and so does the guarded client's deadline timer,
 * which is armed for the time the (fake) deadline leaves. Keep {@code total-timeout} generous in fake-time tests
 * unless the test is about the deadline.
 */
public final class FakeTime implements Ticker, Sleeper {

    /** The instant the clock view shows before time was advanced. */
    public static final Instant EPOCH = Instant.parse("2026-01-01T00:00:00Z");

    private final AtomicLong nanos = new AtomicLong();
    private final List<Duration> sleeps = new CopyOnWriteArrayList<>();
    private volatile Consumer<Duration> onSleep = d -> { };

    @Override
    public long nanoTime() {
        return nanos.get();
    }

    /** Records {@code duration}, advances time by it, runs the {@link #onSleep} hook and returns at once. */
    @Override
    public void sleep(Duration duration) throws InterruptedException {
        if (Thread.interrupted()) {
            throw new InterruptedException();
        }
        Objects.requireNonNull(duration, "duration");
        sleeps.add(duration);
        if (!duration.isNegative()) {
            nanos.addAndGet(duration.toNanos());
        }
        onSleep.accept(duration);
    }

    /** Moves time forward by {@code duration} without recording a sleep. */
    public void advance(Duration duration) {
        if (duration.isNegative()) {
            throw new IllegalArgumentException("Time cannot go backwards: " + duration);
        }
        nanos.addAndGet(duration.toNanos());
    }

    /** Runs {@code hook} after each sleep, for example to change the upstream between two attempts. */
    public FakeTime onSleep(Consumer<Duration> hook) {
        this.onSleep = Objects.requireNonNull(hook, "hook");
        return this;
    }

    /** Every sleep requested so far, in order. */
    public List<Duration> sleeps() {
        return Collections.unmodifiableList(sleeps);
    }

    /** The sum of every sleep requested so far. */
    public Duration totalSlept() {
        return sleeps.stream().filter(d -> !d.isNegative()).reduce(Duration.ZERO, Duration::plus);
    }

    /** How far time has moved since this was created. */
    public Duration elapsed() {
        return Duration.ofNanos(nanos.get());
    }

    /** A clock showing {@link #EPOCH} plus {@link #elapsed()}, in UTC. */
    public Clock clock() {
        return new View(ZoneOffset.UTC);
    }

    private final class View extends Clock {

        private final ZoneId zone;

        View(ZoneId zone) {
            this.zone = zone;
        }

        @Override
        public ZoneId getZone() {
            return zone;
        }

        @Override
        public Clock withZone(ZoneId newZone) {
            return new View(newZone);
        }

        @Override
        public Instant instant() {
            return EPOCH.plusNanos(nanos.get());
        }

        @Override
        public String toString() {
            return "FakeTime.clock[" + instant() + "]";
        }
    }

    @Override
    public String toString() {
        return "FakeTime[" + elapsed() + ", sleeps=" + sleeps + "]";
    }
}
