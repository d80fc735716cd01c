package dev.upstreamguard.gateway.internal;

/**
 * The body formats of a generated fault response, and the {@code Accept} negotiation between them.
 *
 * <p>A media range naming a format exactly (or by its type's wildcard, such as {@code text/*}) wins over {@code *}{@code /*};
 * among equals the higher q-value wins; a tie, an absent {@code Accept}, or nothing acceptable gives plain text.
 * {@code application/json} counts as asking for problem details, since that is what a JSON client can read.
 */
public enum ProblemFormat {
    /** RFC 9457 {@code application/problem+json}. */
    JSON("application/problem+json"),
    /** A small self-contained HTML page for browsers. */
    HTML("text/html;charset=utf-8"),
    /** Plain text, for everything else. */
    PLAIN("text/plain;charset=utf-8");

    private final String contentType;

    ProblemFormat(String contentType) {
        this.contentType = contentType;
    }

    /** The Content-Type header value for this format. */
    public String contentType() {
        return contentType;
    }

    /** Chooses a format for the given {@code Accept} header value (which may be {@code null}). */
    public static ProblemFormat negotiate(String accept) {
        if (accept == null || accept.isBlank()) {
            return PLAIN;
        }
        // Per format: the q-value of the most specific matching range, and that range's specificity.
        float[] q = {-1, -1, -1};
        int[] specificity = {-1, -1, -1};
        for (String range : accept.split(",")) {
            // Limit -1: a range that is only semicolons (";", ";;;") yields an empty type instead of no parts at all,
            // which made the filter itself fail with a 500 on such a header.
            String[] parts = range.split(";", -1);
            String type = parts[0].trim().toLowerCase(java.util.Locale.ROOT);
            if (type.isEmpty()) {
                continue;
            }
            float quality = 1f;
            for (int i = 1; i < parts.length; i++) {
                String param = parts[i].trim();
                if (param.length() > 2 && (param.charAt(0) == 'q' || param.charAt(0) == 'Q') && param.charAt(1) == '=') {
                    quality = qvalue(param.substring(2).trim());
                }
            }
            for (ProblemFormat format : values()) {
                int s = format.match(type);
                if (s > specificity[format.ordinal()]) {
                    specificity[format.ordinal()] = s;
                    q[format.ordinal()] = quality;
                }
            }
        }
        ProblemFormat best = PLAIN;
        for (ProblemFormat format : new ProblemFormat[] {JSON, HTML}) {
            int i = format.ordinal();
            int b = best.ordinal();
            if (q[i] <= 0) {
                continue;
            }
            // Between formats an alias names its format as exactly as the type itself does.
            if (q[i] > q[b] || (q[i] == q[b] && Math.min(specificity[i], 2) > Math.min(specificity[b], 2))) {
                best = format;
            }
        }
        return best;
    }

    /**
     * An RFC 9110 §12.4.2 qvalue ({@code 0}…{@code 1} with at most three decimals), or 0 for anything else: a value
     * such as {@code 5}, {@code 1e3}, {@code NaN} or {@code Infinity} must not outrank every well-formed range.
     */
    private static float qvalue(String value) {
        int length = value.length();
        if (length == 0 || length > 5) {
            return 0f;
        }
        char first = value.charAt(0);
        if (first != '0' && first != '1') {
            return 0f;
        }
        if (length == 1) {
            return first - '0';
        }
        if (value.charAt(1) != '.') {
            return 0f;
        }
        for (int i = 2; i < length; i++) {
            char c = value.charAt(i);
            if (c < '0' || c > '9' || (first == '1' && c != '0')) {
                return 0f;
            }
        }
        return Float.parseFloat(value);
    }

    /**
     * How specifically {@code range} names this format: 3 by the type it is sent as, 2 by an alias it stands in for
     * ({@code application/json}, {@code application/xhtml+xml}), 1 by type wildcard, 0 by {@code *}{@code /*}, -1 not.
     * The type itself outranks its alias, so that {@code application/problem+json;q=0} refuses JSON wherever
     * {@code application/json} stands in the header.
     */
    private int match(String range) {
        if (range.equals("*/*")) {
            return 0;
        }
        switch (this) {
            case JSON:
                return range.equals("application/problem+json") ? 3 : range.equals("application/json") ? 2
                        : range.equals("application/*") ? 1 : -1;
            case HTML:
                return range.equals("text/html") ? 3 : range.equals("application/xhtml+xml") ? 2
                        : range.equals("text/*") ? 1 : -1;
            default:
                return range.equals("text/plain") ? 3 : range.equals("text/*") ? 1 : -1;
        }
    }
}
