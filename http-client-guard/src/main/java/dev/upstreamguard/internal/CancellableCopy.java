package dev.upstreamguard.internal;

import java.net.URI;
import org.apache.hc.client5.http.classic.methods.HttpUriRequestBase;
import org.apache.hc.client5.http.config.Configurable;
import org.apache.hc.core5.http.ClassicHttpRequest;

/**
 * A request HttpClient can cancel, sent in place of one it cannot. The deadline and the upload watch end an exchange by
 * cancelling its request, and HttpClient hooks an exchange to its request only when the request is a
 * {@code CancellableDependency}: one built with HttpCore's {@code ClassicRequestBuilder}, the usual way to build a
 * request in HttpClient 5, is not, and without this its upload could block for good on an upstream that stopped
 * reading, and its head trickle in past the deadline.
 */
public final class CancellableCopy extends HttpUriRequestBase {

    private static final long serialVersionUID = 1L;

    private CancellableCopy(ClassicHttpRequest original) {
        super(original.getMethod(), URI.create("/"));
        setScheme(original.getScheme());
        setAuthority(original.getAuthority());
        setPath(original.getPath());
        setVersion(original.getVersion());
        setHeaders(original.getHeaders());
        setEntity(original.getEntity());
        if (original instanceof Configurable) {
            setConfig(((Configurable) original).getConfig());
        }
    }

    /** A copy of {@code original} (the entity is shared, not copied) that HttpClient can cancel. */
    public static CancellableCopy of(ClassicHttpRequest original) {
        return new CancellableCopy(original);
    }
}
