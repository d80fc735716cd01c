package dev.upstreamguard.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.PushbackInputStream;
import java.util.LinkedHashMap;
import java.util.zip.GZIPInputStream;
import org.apache.hc.client5.http.entity.DeflateInputStream;
import org.apache.hc.client5.http.entity.InputStreamFactory;

/**
 * The content decoders of the decoding client: HttpClient's gzip and deflate (zlib or raw), except that an empty body
 * decodes to empty content.
 *
 * <p>Servers label empty bodies with the coding of the non-empty ones ({@code Content-Encoding: gzip} on an empty
 * chunked or close-delimited body), and browsers accept them. A decoder that needs a header to start fails on them
 * ({@code EOFException}), which would turn a valid empty response into {@code http_response_content_coding}. A body
 * with at least one byte is decoded as before, so a truncated or corrupt one still fails. A gzip body of several
 * members is decoded whole however the network cuts it ({@link MembersInSight}).
 */
public final class ContentDecoders {

    private ContentDecoders() {
    }

    /** Coding names to decoders, in the order {@code Accept-Encoding} offers them (HttpClient's). */
    public static LinkedHashMap<String, InputStreamFactory> registry() {
        InputStreamFactory gzip = in -> unlessEmpty(in, coded -> new GZIPInputStream(new MembersInSight(coded)));
        LinkedHashMap<String, InputStreamFactory> decoders = new LinkedHashMap<>();
        decoders.put("gzip", gzip);
        decoders.put("deflate", in -> unlessEmpty(in, DeflateInputStream::new));
        decoders.put("x-gzip", gzip);
        return decoders;
    }

    /**
     * Input that is {@link #available()} whenever more follows, waiting for it if need be. A gzip body may hold several
     * members, one after the other (RFC 1952 §2.2); the JDK's decoder reads on past the end of one only if input is
     * available at that moment, so a member still on its way was dropped without a word, and the content the caller
     * got depended on how the network cut the body. Waiting costs nothing that reading to the end would not: after
     * the last member comes the end of the body.
     */
    private static final class MembersInSight extends PushbackInputStream {

        MembersInSight(InputStream in) {
            super(in, 1);
        }

        @Override
        public int available() throws IOException {
            int n = super.available();
            if (n > 0) {
                return n;
            }
            int next = read();
            if (next == -1) {
                return 0;
            }
            unread(next);
            return 1;
        }
    }

    private static InputStream unlessEmpty(InputStream in, InputStreamFactory decoder) throws IOException {
        // Called on the caller's first read of the body, so a failure here is a body failure like any other.
        PushbackInputStream peek = new PushbackInputStream(in, 1);
        int first = peek.read();
        if (first == -1) {
            return InputStream.nullInputStream();
        }
        peek.unread(first);
        return decoder.create(peek);
    }
}
