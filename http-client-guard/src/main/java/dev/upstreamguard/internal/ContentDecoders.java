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
 * with at least one byte is decoded as before, so a truncated or corrupt one still fails.
 */
public final class ContentDecoders {

    private ContentDecoders() {
    }

    /** Coding names to decoders, in the order {@code Accept-Encoding} offers them (HttpClient's). */
    public static LinkedHashMap<String, InputStreamFactory> registry() {
        InputStreamFactory gzip = in -> unlessEmpty(in, GZIPInputStream::new);
        LinkedHashMap<String, InputStreamFactory> decoders = new LinkedHashMap<>();
        decoders.put("gzip", gzip);
        decoders.put("deflate", in -> unlessEmpty(in, DeflateInputStream::new));
        decoders.put("x-gzip", gzip);
        return decoders;
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
