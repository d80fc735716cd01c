package dev.upstreamguard.internal;

import java.time.DateTimeException;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.TextStyle;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hc.client5.http.utils.DateUtils;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpHeaders;
import org.apache.hc.core5.http.HttpResponse;

/**
 * Reads an upstream's {@code Retry-After} (RFC 9110 §10.2.3): delta-seconds or an HTTP-date, in any of the three
 * forms a recipient must accept (RFC 9110 §5.6.7).
 */
public final class RetryAfter {

    /** What a delta-seconds value too large for a {@code long} stands for: far longer than any wait we would make. */
    private static final Duration TOO_LONG = Duration.ofDays(365);

    /** {@code Sunday, 06-Nov-94 08:49:37 GMT}: the obsolete RFC 850 form, with a two-digit year. */
    private static final Pattern RFC_850 = Pattern.compile(
            "([A-Za-z]+), (\\d{2})-([A-Za-z]{3})-(\\d{2}) (\\d{2}):(\\d{2}):(\\d{2}) GMT", Pattern.CASE_INSENSITIVE);

    /** {@code Sun Nov  6 08:49:37 1994}: C's asctime() form, the day space-padded to two characters. */
    private static final Pattern ASCTIME = Pattern.compile(
            "([A-Za-z]{3}) ([A-Za-z]{3}) {1,2}(\\d{1,2}) (\\d{2}):(\\d{2}):(\\d{2}) (\\d{4})");

    private RetryAfter() {
    }

    /**
     * How long {@code response} asks the client to wait, or {@code null} when it carries no readable
     * {@code Retry-After}. A date not in the future is {@link Duration#ZERO}.
     *
     * <p>Retry-After is a singleton field, so a response should carry one at most. One that carries several (an
     * upstream and a proxy in front of it each adding one) is held to the longest it can read: the upstream is never
     * called again sooner than any of them asked, whatever their order.
     */
    public static Duration of(HttpResponse response, Instant now) {
        Duration longest = null;
        for (Header header : response.getHeaders(HttpHeaders.RETRY_AFTER)) {
            Duration wait = parse(header.getValue(), now);
            if (wait != null && (longest == null || wait.compareTo(longest) > 0)) {
                longest = wait;
            }
        }
        return longest;
    }

    /** One field value as a wait from {@code now}, or {@code null} when it is neither delta-seconds nor an HTTP-date. */
    static Duration parse(String raw, Instant now) {
        if (raw == null) {
            return null;
        }
        String value = raw.trim();
        if (value.isEmpty()) {
            return null;
        }
        if (value.chars().allMatch(c -> c >= '0' && c <= '9')) {
            try {
                return Duration.ofSeconds(Long.parseLong(value));
            } catch (NumberFormatException e) {
                return TOO_LONG;
            }
        }
        Instant date = date(value, now);
        if (date == null) {
            return null;
        }
        Duration left = Duration.between(now, date);
        return left.isNegative() ? Duration.ZERO : left;
    }

    /** An HTTP-date in IMF-fixdate, RFC 850 or asctime form; {@code null} when it is none of them. */
    static Instant date(String value, Instant now) {
        // Before HttpClient's parser, which reads the two-digit year in this century whatever it gives.
        Matcher m = RFC_850.matcher(value);
        if (m.matches()) {
            LocalDateTime date = dateTime(2000 + Integer.parseInt(m.group(4)), m.group(3), m.group(2), m.group(5),
                    m.group(6), m.group(7));
            return date == null ? null : named(m.group(1), TextStyle.FULL, twoDigitYear(date, now));
        }
        m = ASCTIME.matcher(value);
        if (m.matches()) {
            LocalDateTime date = dateTime(Integer.parseInt(m.group(7)), m.group(2), m.group(3), m.group(4),
                    m.group(5), m.group(6));
            return date == null ? null : named(m.group(1), TextStyle.SHORT, date);
        }
        return DateUtils.parseStandardDate(value); // IMF-fixdate
    }

    /**
     * A date read with a two-digit year, moved to the century RFC 9110 §5.6.7 asks for: one that would be more than
     * 50 years in the future is the most recent past year with those last two digits ({@code 94} is 1994, not 2094).
     */
    private static LocalDateTime twoDigitYear(LocalDateTime read, Instant now) {
        LocalDateTime today = LocalDateTime.ofInstant(now, ZoneOffset.UTC);
        LocalDateTime date = read.plusYears(today.getYear() / 100 * 100 - 2000L);
        if (date.isBefore(today.minusYears(50))) {
            date = date.plusYears(100); // in 2099, "01" is two years on, not ninety-eight years ago
        }
        return date.isAfter(today.plusYears(50)) ? date.minusYears(100) : date;
    }

    private static LocalDateTime dateTime(int year, String month, String day, String hour, String minute,
            String second) {
        Integer m = month(month);
        if (m == null) {
            return null;
        }
        try {
            return LocalDateTime.of(year, m, Integer.parseInt(day), Integer.parseInt(hour), Integer.parseInt(minute),
                    Integer.parseInt(second));
        } catch (DateTimeException e) {
            return null; // 32 January, 25 o'clock…
        }
    }

    /** The date as an instant in GMT, or {@code null} when its day name contradicts it, as for an IMF-fixdate. */
    private static Instant named(String dayName, TextStyle style, LocalDateTime date) {
        String expected = date.getDayOfWeek().getDisplayName(style, Locale.US);
        return expected.equalsIgnoreCase(dayName) ? date.toInstant(ZoneOffset.UTC) : null;
    }

    private static Integer month(String name) {
        String[] months = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
        String lower = name.toLowerCase(Locale.ROOT);
        for (int i = 0; i < months.length; i++) {
            if (months[i].equals(lower)) {
                return i + 1;
            }
        }
        return null;
    }
}
