package dev.upstreamguard.benchmarks.peers;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.nio.charset.StandardCharsets;

/** Pushes a large body through a proxy in either direction, counting bytes, with nothing buffered here. */
final class Streaming {

    record Result(boolean ok, long bytes, double seconds, String detail) {
    }

    private Streaming() {
    }

    static Result download(String url, long expected) {
        long start = System.nanoTime();
        long total = 0;
        try {
            HttpURLConnection c = (HttpURLConnection) URI.create(url).toURL().openConnection();
            c.setConnectTimeout(5000);
            c.setReadTimeout(30_000);
            int status = c.getResponseCode();
            byte[] buf = new byte[64 * 1024];
            try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
                for (int n; in != null && (n = in.read(buf)) >= 0; ) {
                    total += n;
                }
            }
            boolean ok = status == 200 && total == expected;
            return new Result(ok, total, secondsSince(start), "status " + status);
        } catch (IOException e) {
            return new Result(false, total, secondsSince(start), e.toString());
        }
    }

    static Result upload(String url, long size) {
        long start = System.nanoTime();
        long sent = 0;
        try {
            HttpURLConnection c = (HttpURLConnection) URI.create(url).toURL().openConnection();
            c.setConnectTimeout(5000);
            c.setReadTimeout(30_000);
            c.setDoOutput(true);
            c.setRequestMethod("POST");
            c.setRequestProperty("Content-Type", "application/octet-stream");
            c.setFixedLengthStreamingMode(size);
            byte[] chunk = new byte[64 * 1024];
            try (OutputStream out = c.getOutputStream()) {
                while (sent < size) {
                    int n = (int) Math.min(chunk.length, size - sent);
                    out.write(chunk, 0, n);
                    sent += n;
                }
            }
            int status = c.getResponseCode();
            String body;
            try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
                body = in == null ? "" : new String(in.readAllBytes(), StandardCharsets.US_ASCII).trim();
            }
            boolean ok = status == 200 && body.equals(Long.toString(size));
            return new Result(ok, sent, secondsSince(start), "status " + status + ", upstream counted " + body);
        } catch (IOException e) {
            return new Result(false, sent, secondsSince(start), e.toString());
        }
    }

    private static double secondsSince(long start) {
        return (System.nanoTime() - start) / 1e9;
    }
}
