package dev.upstreamguard.gateway.internal;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.NullSource;

class ProblemFormatTest {

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(delimiter = '|', value = {
        "application/problem+json | JSON",
        "application/json | JSON",
        "application/json;q=0.5, text/plain | PLAIN",
        "application/* | JSON",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8 | HTML",
        "text/html;q=0.2, application/json | JSON",
        "text/html;q=0 | PLAIN",
        "*/* | PLAIN",
        "text/* | PLAIN",
        "image/png | PLAIN",
        "'' | PLAIN",
        "TEXT/HTML | HTML",
        "text/plain, application/json | PLAIN",
        "application/json;q=bad, text/html;q=0.1 | HTML",
        "'text/html;q=0.5, application/json;q=5' | HTML",
        "'text/html;q=0.5, application/json;q=NaN' | HTML",
        "'text/html;q=0.5, application/json;q=Infinity' | HTML",
        "'text/html;q=0.5, application/json;q=1.000' | JSON",
        "'text/html;q=0.5, application/json;q=0.501' | JSON",
        "'text/html;q=1., application/json;q=0.999' | HTML",
        // Regression: the type a format is sent as decides over its alias, in either order (the first range won).
        "'application/json, application/problem+json;q=0' | PLAIN",
        "'application/problem+json;q=0, application/json' | PLAIN",
        "'application/xhtml+xml, text/html;q=0' | PLAIN",
        "'application/problem+json;q=0.2, application/json, text/html;q=0.5' | HTML",
        "'application/xhtml+xml, application/json' | JSON",
    })
    void theBodyFormatFollowsAccept(String accept, ProblemFormat expected) {
        assertThat(ProblemFormat.negotiate(accept)).isEqualTo(expected);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {"';'", "';;;,,'", "',;q=1'", "'; , application/json'", "'q=1'", "'/'"})
    void aMalformedAcceptHeaderStillGetsABodyInsteadOfFailing(String accept) {
        assertThat(ProblemFormat.negotiate(accept)).isNotNull();
    }

    @ParameterizedTest
    @NullSource
    void noAcceptHeaderGetsPlainText(String accept) {
        assertThat(ProblemFormat.negotiate(accept)).isEqualTo(ProblemFormat.PLAIN);
    }
}
