package dev.upstreamguard.internal;

import java.io.IOException;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Modifier;
import java.util.Map;
import org.apache.hc.client5.http.HttpRoute;
import org.apache.hc.client5.http.auth.AuthExchange;
import org.apache.hc.client5.http.auth.CredentialsProvider;
import org.apache.hc.client5.http.classic.ExecChain;
import org.apache.hc.client5.http.classic.ExecChainHandler;
import org.apache.hc.client5.http.classic.ExecRuntime;
import org.apache.hc.client5.http.impl.DefaultAuthenticationStrategy;
import org.apache.hc.client5.http.impl.DefaultSchemePortResolver;
import org.apache.hc.client5.http.impl.classic.ProtocolExec;
import org.apache.hc.client5.http.protocol.HttpClientContext;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpHost;
import org.apache.hc.core5.http.Method;
import org.apache.hc.core5.http.ProtocolException;
import org.apache.hc.core5.net.URIAuthority;

/**
 * HttpClient's protocol step ({@link ProtocolExec}) for a client built without credentials, minus the authentication
 * bookkeeping that can never lead anywhere: {@code ProtocolExec} re-parses every request's path into an
 * authentication scope ({@code RequestSupport.extractPathPrefix}, a {@code URIBuilder} per request, about 5 % of a
 * proxy's CPU for a small response) so that it could answer a {@code 401}, and without credentials it never does.
 *
 * <p>A request takes HttpClient's own step, unchanged, whenever authentication could matter: a route through a forward
 * proxy (absolute request URIs, {@code 407}), a caller's context with a credentials provider of its own, or one with
 * an authentication exchange under way (preemptive authentication, a challenge answered before). Every other request gets what
 * {@code ProtocolExec} would do for it: scheme and authority from the route, the refusal of userinfo and of a direct
 * {@code CONNECT}, HttpClient's own wrapping of a non-repeatable request body and of the response body (which releases
 * the connection when the body is read or closed), and the endpoint discarded on a failure. A {@code 401} or
 * {@code 407} answered by the upstream is passed on as it is, as {@code ProtocolExec} does without credentials.
 *
 * <p>The two wrappers are HttpClient's package-private classes, reached once by reflection; when that is not possible
 * (another HttpClient version), {@link #available()} is false and the client keeps {@code ProtocolExec}.
 */
public final class NoCredentialsProtocolExec implements ExecChainHandler {

    /**
     * The client's default credentials provider while this step is in place: it knows no credentials, as HttpClient's
     * own default does, and tells this step that a request's context did not bring any of its own.
     */
    public static final CredentialsProvider NO_CREDENTIALS = (authScope, context) -> null;

    private static final MethodHandle ENHANCE_REQUEST =
            enhancer("RequestEntityProxy", ClassicHttpRequest.class);
    private static final MethodHandle ENHANCE_RESPONSE =
            enhancer("ResponseEntityProxy", ClassicHttpResponse.class, ExecRuntime.class);

    // As HttpClientBuilder builds it for a builder without auth strategies, scheme-port resolver or auth caching.
    private final ProtocolExec full = new ProtocolExec(DefaultAuthenticationStrategy.INSTANCE,
            DefaultAuthenticationStrategy.INSTANCE, DefaultSchemePortResolver.INSTANCE, true);

    /** Whether HttpClient's body wrappers could be reached; without them the client must keep {@code ProtocolExec}. */
    public static boolean available() {
        return ENHANCE_REQUEST != null && ENHANCE_RESPONSE != null;
    }

    @Override
    public ClassicHttpResponse execute(ClassicHttpRequest request, ExecChain.Scope scope, ExecChain chain)
            throws IOException, HttpException {
        HttpClientContext context = scope.clientContext;
        HttpRoute route = scope.route;
        if (route.getProxyHost() != null || context.getCredentialsProvider() != NO_CREDENTIALS
                || authenticationUnderway(context) || Method.CONNECT.isSame(request.getMethod())) {
            return full.execute(request, scope, chain);
        }
        ExecRuntime runtime = scope.execRuntime;
        HttpHost routeTarget = route.getTargetHost();
        try {
            if (request.getScheme() == null) {
                request.setScheme(routeTarget.getSchemeName());
            }
            if (request.getAuthority() == null) {
                request.setAuthority(new URIAuthority(routeTarget));
            }
            URIAuthority authority = request.getAuthority();
            if (authority.getUserInfo() != null) {
                throw new ProtocolException("Request URI authority contains deprecated userinfo component");
            }
            // ProtocolExec resolves the port for the authentication target; a scheme it cannot resolve fails there too.
            DefaultSchemePortResolver.INSTANCE.resolve(request.getScheme(), authority);
            enhance(request);
            ClassicHttpResponse response = chain.proceed(request, scope);
            enhance(response, runtime);
            return response;
        } catch (HttpException e) {
            runtime.discardEndpoint();
            throw e;
        } catch (RuntimeException | IOException e) {
            runtime.discardEndpoint();
            for (AuthExchange exchange : context.getAuthExchanges().values()) {
                if (exchange.isConnectionBased()) {
                    exchange.reset();
                }
            }
            throw e;
        }
    }

    private static boolean authenticationUnderway(HttpClientContext context) {
        // HttpClient's user-token handler leaves an unchallenged exchange for every target called with the context.
        Map<HttpHost, AuthExchange> exchanges = context.getAuthExchanges();
        if (!exchanges.isEmpty()) {
            for (AuthExchange exchange : exchanges.values()) {
                if (exchange.getState() != AuthExchange.State.UNCHALLENGED || exchange.getAuthScheme() != null) {
                    return true;
                }
            }
        }
        return false;
    }

    private static void enhance(ClassicHttpRequest request) {
        try {
            ENHANCE_REQUEST.invokeExact(request);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            // The wrapper declares no checked exception.
            throw new IllegalStateException(e);
        }
    }

    private static void enhance(ClassicHttpResponse response, ExecRuntime runtime) {
        try {
            ENHANCE_RESPONSE.invokeExact(response, runtime);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            // The wrapper declares no checked exception.
            throw new IllegalStateException(e);
        }
    }

    private static MethodHandle enhancer(String simpleName, Class<?>... parameters) {
        try {
            Class<?> type = Class.forName(ProtocolExec.class.getPackageName() + "." + simpleName, false,
                    ProtocolExec.class.getClassLoader());
            java.lang.reflect.Method method = type.getDeclaredMethod("enhance", parameters);
            if (method.getReturnType() != void.class || !Modifier.isStatic(method.getModifiers())) {
                return null;
            }
            method.setAccessible(true);
            return MethodHandles.lookup().unreflect(method).asType(MethodType.methodType(void.class, parameters));
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;
        }
    }
}
