package dev.upstreamguard;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.client.GuardedHttpClients;
import java.time.Duration;
import java.util.Set;
import org.junit.jupiter.api.Test;

class GuardPolicyTest {

    @Test
    void defaultsEqualTheSameSettingsWrittenOut() {
        GuardPolicy written = GuardPolicy.builder().retryStatuses(Set.of(504, 503, 502, 429))
                .recordStatuses(Set.of(504, 502, 503)).build();

        assertThat(GuardPolicy.ofDefaults()).isEqualTo(written).hasSameHashCodeAs(written);
        assertThat(GuardPolicy.ofDefaults().asProperties()).containsEntry("retry.statuses", "429,502,503,504")
                .containsEntry("circuit-breaker.record-statuses", "502,503,504");
    }

    @Test
    void everyPropertyRoundTripsThroughItsKey() {
        GuardPolicy custom = GuardPolicy.builder().connectTimeout(Duration.ofMillis(750)).maxAttempts(5)
                .retryOnResponseTimeout(true).failureRateThreshold(25).maxConcurrentCalls(7)
                .maxResponseBody(3 << 20).build();

        GuardPolicy copy = GuardPolicy.builder().setAll(custom.asProperties()).build();

        assertThat(copy).isEqualTo(custom);
        assertThat(GuardPolicy.Builder.keys()).isEqualTo(custom.asProperties().keySet());
    }

    @Test
    void maxResponseBodyReadsSizesWithBinaryUnitsAndIsUnlimitedByDefault() {
        assertThat(GuardPolicy.ofDefaults().maxResponseBody()).isEqualTo(Long.MAX_VALUE);
        assertThat(GuardPolicy.ofDefaults().asProperties()).containsEntry("max-response-body", "unlimited");
        assertThat(GuardPolicy.builder().set("max-response-body", "10MiB").build().maxResponseBody())
                .isEqualTo(10L << 20);
        assertThat(GuardPolicy.builder().set("max-response-body", "64 kb").build().maxResponseBody())
                .isEqualTo(64L << 10);
        assertThat(GuardPolicy.builder().set("max-response-body", "1500").build().asProperties())
                .containsEntry("max-response-body", "1500");
        assertThat(GuardPolicy.builder().set("max-response-body", "2G").build().asProperties())
                .containsEntry("max-response-body", "2GiB");
        assertThat(GuardPolicy.builder().maxResponseBody(1).set("max-response-body", "UNLIMITED").build())
                .isEqualTo(GuardPolicy.ofDefaults());
        for (String bad : new String[] {"10 parsecs", "-1", "0", "99999999999G", "1.5MiB"}) {
            assertThatThrownBy(() -> GuardPolicy.builder().set("max-response-body", bad))
                    .as(bad).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("'max-response-body'").hasMessageContaining(bad);
        }
    }

    @Test
    void aNegativeDurationIsNamedAsNegativeNotAsUnreadable() {
        assertThatThrownBy(() -> GuardPolicy.builder().set("total-timeout", "-3s"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'total-timeout'")
                .hasMessageContaining("positive")
                .hasMessageContaining("-3s");
    }

    @Test
    void aDurationTooLargeToCountIsRefusedNamingTheSettingInsteadOfFailingEveryCall() {
        for (String huge : new String[] {"999999999d", "366d", "9223372036854775807us", "PT10000000H"}) {
            assertThatThrownBy(() -> GuardPolicy.builder().set("response-timeout", huge)).as(huge)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("'response-timeout'").hasMessageContaining("at most 365d");
        }
        assertThatThrownBy(() -> GuardPolicy.builder().set("response-timeout", "-999999999d"))
                .hasMessageContaining("'response-timeout'").hasMessageContaining("positive");
        assertThat(GuardPolicy.builder().set("total-timeout", "365d").build().totalTimeout())
                .isEqualTo(Duration.ofDays(365));
    }

    @Test
    void aBreakerWindowOverAnHourIsRefusedSinceItKeepsABucketPerSecond() {
        assertThatThrownBy(() -> GuardPolicy.builder().set("circuit-breaker.window", "30d"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'circuit-breaker.window'").hasMessageContaining("at most 1h");
        // Regression: Resilience4j's window counts whole seconds, and 1500ms was silently taken as 1s.
        assertThatThrownBy(() -> GuardPolicy.builder().set("circuit-breaker.window", "1500ms"))
                .hasMessageContaining("'circuit-breaker.window'").hasMessageContaining("PT1.5S")
                .hasMessageContaining("whole number of seconds");
        assertThat(GuardPolicy.builder().set("circuit-breaker.window", "1h").build().circuitBreaker().window())
                .isEqualTo(Duration.ofHours(1));
    }

    /**
     * Regression: any count of trial calls was accepted, and Resilience4j allocates a slot per trial call as the circuit
     * half-opens: {@code Integer.MAX_VALUE} failed the first call after {@code open-for} with an OutOfMemoryError.
     */
    @Test
    void aHalfOpenCallCountOverAThousandIsRefusedSinceTheBreakerKeepsASlotPerTrialCall() {
        for (String tooMany : new String[] {"1001", "2147483647"}) {
            assertThatThrownBy(() -> GuardPolicy.builder().set("circuit-breaker.half-open-calls", tooMany)).as(tooMany)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("'circuit-breaker.half-open-calls'").hasMessageContaining(tooMany)
                    .hasMessageContaining("at most 1000");
        }
        assertThat(GuardPolicy.builder().set("circuit-breaker.half-open-calls", "1000").build().circuitBreaker()
                .halfOpenCalls()).isEqualTo(1000);
    }

    /**
     * Regression: an {@code open-for} under a millisecond was accepted, and then Resilience4j refused it when the
     * upstream's breaker was built: for an unnamed upstream, on every call, as an {@code IllegalArgumentException}
     * naming no setting of ours.
     */
    @Test
    void anOpenForUnderAMillisecondIsRefusedNamingTheSetting() throws Exception {
        for (String tooShort : new String[] {"500us", "999999ns", "PT0.0001S"}) {
            assertThatThrownBy(() -> GuardPolicy.builder().set("circuit-breaker.open-for", tooShort)).as(tooShort)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("'circuit-breaker.open-for'").hasMessageContaining("at least 1ms");
        }
        GuardPolicy shortest = GuardPolicy.builder().set("circuit-breaker.open-for", "1ms").build();
        try (GuardedHttpClient client = GuardedHttpClients.custom().upstream("a", "http://127.0.0.1:8080", shortest)
                .build()) {
            assertThat(client.upstream("a").policy().circuitBreaker().openFor()).isEqualTo(Duration.ofMillis(1));
        }
    }

    @Test
    void statusListsHoldErrorStatusesOnly() {
        assertThatThrownBy(() -> GuardPolicy.builder().set("retry.statuses", "200,503"))
                .hasMessageContaining("'retry.statuses'").hasMessageContaining("between 400 and 599");
        assertThatThrownBy(() -> GuardPolicy.builder().set("circuit-breaker.record-statuses", "302"))
                .hasMessageContaining("'circuit-breaker.record-statuses'").hasMessageContaining("between 400 and 599");
        assertThat(GuardPolicy.builder().set("circuit-breaker.record-statuses", "429,500").build().circuitBreaker()
                .recordStatuses()).containsExactly(429, 500);
    }

    /** Regression: a list with an empty last element ("503,") was taken as "503", one with an empty first refused. */
    @Test
    void aStatusListWithAnEmptyElementIsRefusedWhereverItIs() {
        for (String list : new String[] {"503,", ",503", "502,,503"}) {
            assertThatThrownBy(() -> GuardPolicy.builder().set("retry.statuses", list)).as(list)
                    .hasMessageContaining("'retry.statuses'").hasMessageContaining("comma-separated");
        }
    }

    @Test
    void anUnknownKeyOrBadValueNamesTheSetting() {
        assertThatThrownBy(() -> GuardPolicy.builder().set("retry.max-atempts", "2"))
                .hasMessageContaining("'retry.max-atempts'");
        assertThatThrownBy(() -> GuardPolicy.builder().set("retry.max-attempts", "two"))
                .hasMessageContaining("'retry.max-attempts'").hasMessageContaining("two");
        assertThatThrownBy(() -> GuardPolicy.builder().set("retry.budget-ratio", "1.5"))
                .hasMessageContaining("'retry.budget-ratio'");
        assertThatThrownBy(() -> GuardPolicy.builder().initialBackoff(Duration.ofSeconds(3)).build())
                .hasMessageContaining("'retry.max-backoff'").hasMessageContaining("'retry.initial-backoff'");
    }
}
