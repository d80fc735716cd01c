package dev.upstreamguard.spring.internal;

import dev.upstreamguard.UpstreamException;
import dev.upstreamguard.gateway.internal.FaultResponseWriter;
import jakarta.servlet.ServletOutputStream;
import jakarta.servlet.WriteListener;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletRequestWrapper;
import jakarta.servlet.http.HttpServletResponse;
import jakarta.servlet.http.HttpServletResponseWrapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;
import java.util.Map;
import org.springframework.boot.json.BasicJsonParser;
import org.springframework.http.HttpHeaders;
import org.springframework.http.HttpStatusCode;
import org.springframework.http.ProblemDetail;
import org.springframework.util.LinkedCaseInsensitiveMap;

/**
 * The gateway's own answer to a fault, captured instead of written: its status, its headers ({@code Proxy-Status},
 * {@code Retry-After}, {@code Cache-Control}) and its RFC 9457 fields as a Spring {@link ProblemDetail}, so that Spring
 * MVC renders exactly what the gateway filter would, through the application's message converters. Capturing also
 * logs and counts the fault once, as the filter does.
 */
public final class CapturedFaultResponse {

    private static final String[] STANDARD = {"type", "title", "status", "detail", "instance"};

    private final int status;
    private final HttpHeaders headers;
    private final ProblemDetail problem;

    private CapturedFaultResponse(int status, HttpHeaders headers, ProblemDetail problem) {
        this.status = status;
        this.headers = headers;
        this.problem = problem;
    }

    /**
     * Renders {@code fault} with {@code writer} into a buffer.
     *
     * @return the captured response, or {@code null} when {@code response} was already committed: the client
     *     connection was aborted, or must be by throwing {@link FaultResponseWriter#abortion}
     */
    public static CapturedFaultResponse capture(FaultResponseWriter writer, HttpServletRequest request,
            HttpServletResponse response, UpstreamException fault) throws IOException {
        boolean head = "HEAD".equals(request.getMethod());
        Capture capture = new Capture(response);
        if (writer.write(new AskingForProblem(request), capture, fault, null) != FaultResponseWriter.Answer.RENDERED) {
            return null;
        }
        HttpHeaders headers = new HttpHeaders();
        capture.headers.forEach(headers::addAll);
        ProblemDetail problem = null;
        if (!head) {
            Map<String, Object> fields = new BasicJsonParser()
                    .parseMap(capture.body.toString(StandardCharsets.UTF_8));
            problem = ProblemDetail.forStatus(HttpStatusCode.valueOf(capture.status));
            problem.setType(URI.create(String.valueOf(fields.get("type"))));
            problem.setTitle((String) fields.get("title"));
            problem.setDetail((String) fields.get("detail"));
            Object instance = fields.get("instance");
            if (instance instanceof String) {
                problem.setInstance(URI.create(encodePath((String) instance)));
            }
            for (Map.Entry<String, Object> e : fields.entrySet()) {
                if (!isStandard(e.getKey())) {
                    problem.setProperty(e.getKey(), e.getValue());
                }
            }
        }
        return new CapturedFaultResponse(capture.status, headers, problem);
    }

    /** The status the gateway answers with. */
    public int status() {
        return status;
    }

    /** {@code Proxy-Status}, {@code Retry-After} (when known) and {@code Cache-Control}. */
    public HttpHeaders headers() {
        return headers;
    }

    /** The problem body, or {@code null} for a HEAD request. */
    public ProblemDetail problem() {
        return problem;
    }

    private static boolean isStandard(String key) {
        for (String s : STANDARD) {
            if (s.equals(key)) {
                return true;
            }
        }
        return false;
    }

    private static String encodePath(String path) {
        StringBuilder sb = new StringBuilder(path.length());
        for (byte b : path.getBytes(StandardCharsets.UTF_8)) {
            int c = b & 0xff;
            if (c > 0x20 && c < 0x7f && c != '"' && c != '<' && c != '>' && c != '\\' && c != '^'
                    && c != '`' && c != '{' && c != '|' && c != '}') {
                sb.append((char) c);
            } else {
                sb.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 0xf, 16)));
            }
        }
        return sb.toString();
    }

    /** The request as the writer sees it: asking for problem details, so that it renders the fields to capture. */
    private static final class AskingForProblem extends HttpServletRequestWrapper {

        private static final String PROBLEM = "application/problem+json";

        AskingForProblem(HttpServletRequest request) {
            super(request);
        }

        @Override
        public String getHeader(String name) {
            return "Accept".equalsIgnoreCase(name) ? PROBLEM : super.getHeader(name);
        }

        @Override
        public Enumeration<String> getHeaders(String name) {
            // The writer reads every Accept line: a client's second line must not turn the capture into HTML.
            return "Accept".equalsIgnoreCase(name) ? Collections.enumeration(List.of(PROBLEM)) : super.getHeaders(name);
        }
    }

    /**
     * Keeps status, headers and body to itself; resets and commit checks still reach the real response. A field keeps
     * every value added to it (two {@code Set-Cookie} of a filter before the fault filter), and the writer's check for
     * a field it restored sees the captured ones, so that a field restored twice is not doubled.
     */
    private static final class Capture extends HttpServletResponseWrapper {

        private final Map<String, List<String>> headers = new LinkedCaseInsensitiveMap<>();
        private final ByteArrayOutputStream body = new ByteArrayOutputStream();
        private int status = 200;

        Capture(HttpServletResponse response) {
            super(response);
        }

        @Override
        public void setStatus(int sc) {
            status = sc;
        }

        @Override
        public void setHeader(String name, String value) {
            if (captured(name)) {
                headers.remove(name);
                addHeader(name, value);
            }
        }

        @Override
        public void addHeader(String name, String value) {
            if (captured(name)) {
                headers.computeIfAbsent(name, n -> new ArrayList<>()).add(value);
            }
        }

        private static boolean captured(String name) {
            return !"Content-Type".equalsIgnoreCase(name) && !"Content-Length".equalsIgnoreCase(name);
        }

        @Override
        public boolean containsHeader(String name) {
            // Asked after the reset, whether a field is restored already; the fields read before it (CORS) are the
            // real response's, set by the application.
            return headers.containsKey(name);
        }

        @Override
        public void setContentType(String type) {
            // Spring chooses the content type of the problem.
        }

        @Override
        public void setContentLength(int len) {
        }

        @Override
        public void setContentLengthLong(long len) {
        }

        @Override
        public void flushBuffer() {
        }

        @Override
        public void reset() {
            super.reset();
            headers.clear();
            body.reset();
            status = 200;
        }

        @Override
        public ServletOutputStream getOutputStream() {
            return new ServletOutputStream() {
                @Override
                public boolean isReady() {
                    return true;
                }

                @Override
                public void setWriteListener(WriteListener listener) {
                    throw new UnsupportedOperationException();
                }

                @Override
                public void write(int b) {
                    body.write(b);
                }

                @Override
                public void write(byte[] b, int off, int len) {
                    body.write(b, off, len);
                }
            };
        }

        @Override
        public PrintWriter getWriter() {
            return new PrintWriter(new java.io.OutputStreamWriter(body, StandardCharsets.UTF_8), true);
        }
    }
}
