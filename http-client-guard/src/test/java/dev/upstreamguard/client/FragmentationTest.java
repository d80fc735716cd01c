package dev.upstreamguard.client;

import static org.assertj.core.api.Assertions.assertThat;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.testing.RawUpstream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.locks.LockSupport;
import java.util.zip.GZIPOutputStream;
import java.util.stream.Stream;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * How a response is cut into TCP segments must never change what the caller gets: each response is sent once in one
 * write and once a byte at a time (every line ending split from its line, every chunk size from its chunk), and both
 * must give the same status and body, or the same fault: the one RFC 9112 calls for.
 */
@Timeout(60)
class FragmentationTest {

    static Stream<Arguments> responses() {
        return Stream.of(
                Arguments.of("content-length", "200 hello world",
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"),
                Arguments.of("chunked-with-extensions-and-trailers", "200 hello world",
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
                                + "6 ; name=\"v\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"),
                Arguments.of("interim-then-final", "200 final",
                        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                                + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"),
                Arguments.of("folded-header", "200 ok",
                        "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok"),
                Arguments.of("bare-lf", "200 ok", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
                Arguments.of("no-reason-phrase", "200 ok", "HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok"),
                Arguments.of("close-delimited", "200 until the close",
                        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close"),
                Arguments.of("empty-chunked", "200 ", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                Arguments.of("bad-chunk-size", "http_protocol_error",
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n"),
                Arguments.of("chunk-longer-than-its-size", "http_protocol_error",
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"),
                Arguments.of("conflicting-lengths", "http_protocol_error",
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"),
                Arguments.of("malformed-status", "http_protocol_error",
                        "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"),
                Arguments.of("truncated-body", "http_response_incomplete",
                        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"),
                // Regression: a gzip body of several members (RFC 1952 §2.2) lost every member that had not arrived
                // yet when the one before it ended: the JDK's decoder looks for a next one only in bytes available.
                Arguments.of("gzip-members", "200 first, second, third",
                        withLength("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n",
                                gzipMembers("first, ", "second, ", "third"))));
    }

    /** Each of {@code texts} gzipped on its own, the members one after the other, as ISO-8859-1 text. */
    private static String gzipMembers(String... texts) {
        ByteArrayOutputStream members = new ByteArrayOutputStream();
        for (String text : texts) {
            try (GZIPOutputStream member = new GZIPOutputStream(members)) {
                member.write(text.getBytes(StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return members.toString(StandardCharsets.ISO_8859_1);
    }

    private static String withLength(String head, String body) {
        return head + "Content-Length: " + body.length() + "\r\n\r\n" + body;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("responses")
    void aResponseGivesTheSameResultWhetherSentWholeOrAByteAtATime(String name, String expected, String raw)
            throws Exception {
        assertThat(outcome(raw, false)).as("sent whole").isEqualTo(expected);
        assertThat(outcome(raw, true)).as("sent a byte at a time").isEqualTo(expected);
    }

    /** The status and body the caller reads, or the fault type, with the upstream sending {@code raw} then closing. */
    private static String outcome(String raw, boolean byteByByte) throws Exception {
        byte[] bytes = raw.getBytes(StandardCharsets.ISO_8859_1);
        RawUpstream.Behaviour send = c -> {
            if (c.readRequest() == null) {
                return;
            }
            c.socket().setTcpNoDelay(true);
            if (!byteByByte) {
                c.write(bytes);
                return;
            }
            for (byte b : bytes) {
                c.write(new byte[] {b});
                LockSupport.parkNanos(100_000); // so the client's reads see the pieces apart
            }
        };
        try (RawUpstream upstream = RawUpstream.start(send);
                GuardedHttpClient client = GuardedHttpClients.custom()
                        .defaults(GuardPolicy.builder().set("retry.enabled", "false")
                                .responseTimeout(Duration.ofSeconds(10)).build())
                        .build()) {
            try (ClassicHttpResponse response = client.executeOpen(null, new HttpGet(upstream.uri("/x")), null)) {
                String body = response.getEntity() == null ? ""
                        : new String(response.getEntity().getContent().readAllBytes(), StandardCharsets.ISO_8859_1);
                return response.getCode() + " " + body;
            } catch (UpstreamException e) {
                return e.fault().type();
            }
        }
    }
}
