package dev.upstreamguard.gateway.internal;

import java.net.URI;
import org.apache.hc.client5.http.classic.methods.HttpUriRequestBase;

/**
 * The request a proxy servlet sends upstream. It notes whether it was cancelled while its body, streamed from the
 * client, was waiting for the client's next bytes: the guarded client's total deadline then ran out on the client's
 * upload, which says nothing about the upstream, and the client is answered 408 rather than a 504 naming the
 * upstream.
 */
public final class UpstreamRequest extends HttpUriRequestBase {

    private static final long serialVersionUID = 1L;

    private transient volatile ClientBodyEntity streamed;
    private transient volatile boolean cancelledWaitingOnClient;

    /**
     * @param method the client's method
     * @param uri the upstream's origin, the path is set on it
     */
    public UpstreamRequest(String method, URI uri) {
        super(method, uri);
    }

    /** The body streamed from the client, looked at when the request is cancelled; also set as the entity. */
    public void stream(ClientBodyEntity body) {
        this.streamed = body;
        setEntity(body);
    }

    /** Whether a cancel found the streamed body waiting for the client (a slow upload outlasting the deadline). */
    public boolean cancelledWaitingOnClient() {
        return cancelledWaitingOnClient;
    }

    @Override
    public boolean cancel() {
        ClientBodyEntity body = streamed;
        if (body != null && body.waitingOnClient()) {
            cancelledWaitingOnClient = true;
        }
        return super.cancel();
    }
}
