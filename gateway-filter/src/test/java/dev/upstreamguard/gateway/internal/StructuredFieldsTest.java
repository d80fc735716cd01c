package dev.upstreamguard.gateway.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import org.junit.jupiter.api.Test;

class StructuredFieldsTest {

    private static String tokenOrString(String value) {
        return StructuredFields.appendTokenOrString(new StringBuilder(), value).toString();
    }

    @Test
    void proxyNamesAreTokensWhenTheyCanBeAndQuotedStringsOtherwise() {
        assertThat(tokenOrString("upstream-guard")).isEqualTo("upstream-guard");
        assertThat(tokenOrString("edge-1.example:8080/x")).isEqualTo("edge-1.example:8080/x");
        assertThat(tokenOrString("*star")).isEqualTo("*star");
        assertThat(tokenOrString("1edge")).isEqualTo("\"1edge\"");
        assertThat(tokenOrString("edge 1")).isEqualTo("\"edge 1\"");
        assertThat(tokenOrString("say \"hi\" \\o/")).isEqualTo("\"say \\\"hi\\\" \\\\o/\"");
        assertThat(tokenOrString("10.0.0.5:8080")).isEqualTo("\"10.0.0.5:8080\"");
    }

    @Test
    void stringsNeverCarryCharactersOutsidePrintableAscii() {
        assertThat(StructuredFields.appendString(new StringBuilder(), "a\r\nb\u00e9").toString())
                .isEqualTo("\"a??b?\"");
    }

    @Test
    void wellFormedListsAreRecognisedAsRecipientsParseThem() {
        for (String list : new String[] {"a", "inner-cache; received-status=200", "\"edge 1\"; error=dns_error",
            "a, b;c=?1;d=1.5;e=-7, \"q\\\"x\"", "a,b", "a ,\tb", "(a b);p=:aGk=:, *t", "x;k=@1659578233",
            "x;k=%\"caf%c3%a9\"", "a;details=\"\"", "  a", "x;a-b.c_d*=1;*k"}) {
            assertThat(StructuredFields.isList(list)).as(list).isTrue();
        }
        for (String notList : new String[] {"", " ", "\"unterminated", "a,", "a,,b", ",a", "a b", "A;Key=1",
            "a;k=\"\u00e9\"", "a;k=1.", "a;k=-", "a;k=-.5", "a;k=1234567890123456", "a;k=1234567890123.5",
            "a;k=1.2345", "a;k=?2", "a;k=:abc", "(a b", "a;=1", "1a:b c", "a;k=@1.5", "a;k=%\"%C3\"", "a\u0000",
            "a;k=\"x\\y\""}) {
            assertThat(StructuredFields.isList(notList)).as(notList).isFalse();
        }
    }

    @Test
    void retryAfterIsWholeSecondsRoundedUp() {
        assertThat(FaultResponseWriter.seconds(Duration.ofMillis(1))).isEqualTo(1);
        assertThat(FaultResponseWriter.seconds(Duration.ofMillis(1000))).isEqualTo(1);
        assertThat(FaultResponseWriter.seconds(Duration.ofMillis(1001))).isEqualTo(2);
        assertThat(FaultResponseWriter.seconds(Duration.ZERO)).isEqualTo(0);
        assertThat(FaultResponseWriter.seconds(Duration.ofSeconds(-3))).isEqualTo(0);
        // Regression: rounding up overflowed into a negative Retry-After.
        assertThat(FaultResponseWriter.seconds(Duration.ofSeconds(Long.MAX_VALUE, 999_999_999)))
                .isEqualTo(2147483648L);
        assertThat(FaultResponseWriter.seconds(Duration.ofDays(365 * 100))).isEqualTo(2147483648L);
    }

    @Test
    void byteSizesAndBooleansParseOrNameTheSetting() {
        assertThat(Settings.bytes("max", "65536")).isEqualTo(65536);
        assertThat(Settings.bytes("max", "64KiB")).isEqualTo(65536);
        assertThat(Settings.bytes("max", "1 MiB")).isEqualTo(1 << 20);
        assertThat(Settings.bytes("max", "2g")).isEqualTo(2L << 30);
        assertThat(Settings.bool("x", " TRUE ")).isTrue();
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> Settings.bytes("max", "lots"))
                .hasMessageContaining("'max'").hasMessageContaining("lots");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> Settings.bool("flag", "yes"))
                .hasMessageContaining("'flag'").hasMessageContaining("yes");
    }
}
