package dev.upstreamguard.internal;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetEncoder;
import java.nio.charset.CoderResult;
import java.nio.charset.StandardCharsets;

/**
 * Writes a request head's characters as bytes one for one, {@code obs-text} (0x80–0xFF) included (RFC 9110 §5.5):
 * what a servlet container hands a proxy for the bytes a client sent, so that a UTF-8 field value passes unchanged.
 * Without an encoder HttpCore writes 0x80–0x9F as {@code ?}, which broke every UTF-8 character with such a byte
 * ({@code ß}, {@code €}, most CJK). Control characters other than HTAB, DEL, and characters above 0xFF are still
 * written as {@code ?}, as HttpCore does (CR and LF never get here: its line formatter makes them spaces).
 */
public final class FieldValueEncoder extends CharsetEncoder {

    /** One per connection: an encoder keeps state while it encodes. */
    public FieldValueEncoder() {
        super(StandardCharsets.ISO_8859_1, 1f, 1f, new byte[] {'?'});
    }

    @Override
    protected CoderResult encodeLoop(CharBuffer in, ByteBuffer out) {
        while (in.hasRemaining()) {
            if (!out.hasRemaining()) {
                return CoderResult.OVERFLOW;
            }
            char c = in.get();
            boolean written = c == '\t' || (c >= 0x20 && c != 0x7f && c <= 0xff);
            out.put(written ? (byte) c : (byte) '?');
        }
        return CoderResult.UNDERFLOW;
    }
}
