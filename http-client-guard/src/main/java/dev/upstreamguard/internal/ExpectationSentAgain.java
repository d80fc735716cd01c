package dev.upstreamguard.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.Iterator;
import org.apache.hc.client5.http.classic.ExecChain;
import org.apache.hc.client5.http.classic.ExecChainHandler;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HeaderElement;
import org.apache.hc.core5.http.HeaderElements;
import org.apache.hc.core5.http.HttpEntity;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpHeaders;
import org.apache.hc.core5.http.HttpRequest;
import org.apache.hc.core5.http.HttpStatus;
import org.apache.hc.core5.http.io.entity.HttpEntityWrapper;
import org.apache.hc.core5.http.io.support.ClassicRequestBuilder;
import org.apache.hc.core5.http.message.MessageSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sends a request whose {@code Expect: 100-continue} was answered {@code 417 (Expectation Failed)} again, once, without
 * the expectation (RFC 9110 §10.1.1: the 417 only says that a hop on the way, such as an HTTP/1.0 server, does not
 * support expectations). Only when its body can be sent again: a repeatable one, or one not read at all, which the
 * 417 arriving while the client waited for 100 (Continue) leaves untouched; a one-shot body already sent keeps the
 * 417 as its answer. It sits below the redirect handler, so every request of an attempt is covered, and within the
 * attempt: the deadline bounds it, and it is no retry.
 */
public final class ExpectationSentAgain implements ExecChainHandler {

    private static final Logger LOG = LoggerFactory.getLogger(ExpectationSentAgain.class);

    @Override
    public ClassicHttpResponse execute(ClassicHttpRequest request, ExecChain.Scope scope, ExecChain chain)
            throws IOException, HttpException {
        HttpEntity body = request.getEntity();
        RequestConfig config = scope.clientContext.getRequestConfigOrDefault();
        if (!request.containsHeader(HttpHeaders.EXPECT) && (body == null || !config.isExpectContinueEnabled())) {
            // No expectation will go out (HttpClient adds one only to a request with a body, where its config asks).
            return chain.proceed(request, scope);
        }
        // The request below is filled in as it is sent (Host, Expect…): the one sent again starts as this one did.
        ClassicHttpRequest pristine = ClassicRequestBuilder.copy(request).build();
        Untouched watched = body == null || body.isRepeatable() ? null : new Untouched(body);
        if (watched != null) {
            request.setEntity(watched);
        }
        ClassicHttpResponse response;
        try {
            response = chain.proceed(request, scope);
        } finally {
            if (watched != null) {
                request.setEntity(body);
            }
        }
        HttpClientContext context = scope.clientContext;
        if (response.getCode() != HttpStatus.SC_EXPECTATION_FAILED || !expectedContinue(context.getRequest())
                || (watched != null && watched.touched) || scope.execRuntime.isExecutionAborted()
                || Thread.currentThread().isInterrupted()) {
            return response;
        }
        LOG.debug("Sending {} again without its expectation: the upstream answered 417 to Expect: 100-continue",
                request.getMethod());
        // Not read: a 417 that came before the body leaves the connection out of step (HttpClient closes it for a large
        // body), and its own content is of no use.
        scope.execRuntime.discardEndpoint();
        try {
            response.close();
        } catch (IOException ignored) {
            // closing is all that was wanted
        }
        pristine.removeHeaders(HttpHeaders.EXPECT);
        GuardedConnection.forgetConnection(context);
        RequestConfig own = context.getRequestConfig();
        // HttpClient adds the expectation again where its config asks for it.
        context.setRequestConfig(RequestConfig.copy(config).setExpectContinueEnabled(false).build());
        try {
            return chain.proceed(pristine, scope);
        } finally {
            context.setRequestConfig(own);
        }
    }

    /** Whether {@code sent} (the request as it went out) expected 100 (Continue). */
    private static boolean expectedContinue(HttpRequest sent) {
        if (sent == null) {
            return false;
        }
        Iterator<Header> expectations = sent.headerIterator(HttpHeaders.EXPECT);
        while (expectations.hasNext()) {
            for (HeaderElement e : MessageSupport.parseElements(expectations.next())) {
                if (HeaderElements.CONTINUE.equalsIgnoreCase(e.getName())) {
                    return true;
                }
            }
        }
        return false;
    }

    /** A one-shot body that notes whether anything of it was read. */
    private static final class Untouched extends HttpEntityWrapper {

        private volatile boolean touched;

        Untouched(HttpEntity body) {
            super(body);
        }

        @Override
        public InputStream getContent() throws IOException {
            touched = true;
            return super.getContent();
        }

        @Override
        public void writeTo(OutputStream out) throws IOException {
            touched = true;
            super.writeTo(out);
        }
    }
}
