package dev.upstreamguard.internal;

import dev.upstreamguard.FaultClassifier;
import dev.upstreamguard.UpstreamFault;
import java.io.IOException;
import org.apache.hc.client5.http.classic.ExecChain;
import org.apache.hc.client5.http.classic.ExecChainHandler;
import org.apache.hc.client5.http.config.RequestConfig;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpStatus;
import org.apache.hc.core5.util.Timeout;

/**
 * Holds the {@code CONNECT} that opens a tunnel through a forward proxy to the connect timeout, and makes a proxy that
 * does not answer it {@code connection_timeout}, and one that drops it (a close or reset instead of an answer)
 * {@code connection_refused}: the tunnel is part of connecting, before any byte of the request is sent, so either is
 * retried for any method. A proxy that answers the CONNECT with an error is not the upstream answering: a 5xx is
 * {@code connection_refused} ({@code connection_timeout} for a 504), a 4xx {@code proxy_configuration_error}.
 *
 * <p>HttpClient waits for the proxy's answer with the request's response timeout, and a silence there read as
 * {@code connection_read_timeout}: 504 after the whole response timeout, "the upstream may have acted", never retried
 * by default. {@link #around()} goes just above HttpClient's connect step, {@link #within()} just below it, where the
 * tunnel (if any) is up and the request about to be sent.
 */
public final class TunnelWatch {

    /** While the connect step runs on a tunnelled route: the attempt's own request config, to restore below it. */
    private static final String ATTEMPT_CONFIG = TunnelWatch.class.getName() + ".attemptConfig";

    private TunnelWatch() {
    }

    /** The handler above the connect step. */
    public static ExecChainHandler around() {
        return TunnelWatch::around;
    }

    /** The handler below the connect step. */
    public static ExecChainHandler within() {
        return TunnelWatch::within;
    }

    @SuppressWarnings("deprecation") // the attempt's connect timeout, as the attempt loop sets it
    private static ClassicHttpResponse around(ClassicHttpRequest request, ExecChain.Scope scope, ExecChain chain)
            throws IOException, HttpException {
        if (!scope.route.isTunnelled()) {
            return chain.proceed(request, scope);
        }
        HttpClientContext context = scope.clientContext;
        RequestConfig config = context.getRequestConfigOrDefault();
        Timeout connect = config.getConnectTimeout();
        Timeout response = config.getResponseTimeout();
        boolean shorter = connect != null && !connect.isDisabled()
                && (response == null || response.isDisabled() || connect.compareTo(response) < 0);
        if (shorter) {
            // HttpClient reads the proxy's answer with the response timeout from the context's config.
            context.setRequestConfig(RequestConfig.copy(config).setResponseTimeout(connect).build());
        }
        context.setAttribute(ATTEMPT_CONFIG, config);
        ClassicHttpResponse answer;
        boolean refused;
        try {
            answer = chain.proceed(request, scope);
            // Answered without the request ever going through the tunnel (below, within() would have taken the
            // attribute): HttpClient hands back the proxy's refusal of the CONNECT as if it were the answer.
            refused = context.getAttribute(ATTEMPT_CONFIG) != null;
        } catch (IOException e) {
            if (context.getAttribute(ATTEMPT_CONFIG) == null) {
                throw e; // through the tunnel, or none was needed: the request's own fault
            }
            UpstreamFault fault = FaultClassifier.classify(e);
            if (fault == UpstreamFault.CONNECTION_READ_TIMEOUT) {
                throw new FaultSignal(UpstreamFault.CONNECTION_TIMEOUT, "The forward proxy " + scope.route.getProxyHost()
                        + " did not answer the CONNECT to " + scope.route.getTargetHost() + " within the connect timeout",
                        e);
            }
            if (fault == UpstreamFault.CONNECTION_TERMINATED || fault == UpstreamFault.HTTP_RESPONSE_INCOMPLETE) {
                // The proxy dropped the CONNECT: no tunnel, so no byte of the request left; as a refused connect.
                throw new FaultSignal(UpstreamFault.CONNECTION_REFUSED, "The forward proxy "
                        + scope.route.getProxyHost() + " closed the connection instead of answering the CONNECT to "
                        + scope.route.getTargetHost(), e);
            }
            throw e;
        } finally {
            if (context.getAttribute(ATTEMPT_CONFIG) != null) {
                context.removeAttribute(ATTEMPT_CONFIG);
                context.setRequestConfig(config);
            }
        }
        if (!refused) {
            return answer;
        }
        int status = answer.getCode();
        answer.close();
        // No tunnel, so no byte of the request left. The proxy's answer is not the upstream's (its body must not pass
        // for the https origin's): a 5xx is the proxy failing to connect to the upstream, a 4xx (407, 403) this
        // client's proxy configuration, which says nothing about the upstream.
        UpstreamFault fault = status == HttpStatus.SC_GATEWAY_TIMEOUT ? UpstreamFault.CONNECTION_TIMEOUT
                : status >= HttpStatus.SC_SERVER_ERROR ? UpstreamFault.CONNECTION_REFUSED
                : UpstreamFault.PROXY_CONFIGURATION_ERROR;
        throw new FaultSignal(fault, "The forward proxy " + scope.route.getProxyHost() + " answered the CONNECT to "
                + scope.route.getTargetHost() + " with " + status + " " + answer.getReasonPhrase());
    }

    private static ClassicHttpResponse within(ClassicHttpRequest request, ExecChain.Scope scope, ExecChain chain)
            throws IOException, HttpException {
        HttpClientContext context = scope.clientContext;
        Object config = context.getAttribute(ATTEMPT_CONFIG);
        if (config != null) {
            // Through the tunnel: the request gets the attempt's own timeouts again.
            context.removeAttribute(ATTEMPT_CONFIG);
            context.setRequestConfig((RequestConfig) config);
        }
        return chain.proceed(request, scope);
    }
}
