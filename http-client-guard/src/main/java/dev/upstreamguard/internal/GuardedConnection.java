package dev.upstreamguard.internal;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import javax.net.ssl.SSLSocket;
import dev.upstreamguard.UpstreamFault;
import dev.upstreamguard.client.Ticker;
import org.apache.hc.client5.http.impl.io.DefaultManagedHttpClientConnection;
import org.apache.hc.client5.http.io.ManagedHttpClientConnection;
import org.apache.hc.core5.http.ClassicHttpRequest;
import org.apache.hc.core5.http.ClassicHttpResponse;
import org.apache.hc.core5.http.ConnectionClosedException;
import org.apache.hc.core5.http.ContentLengthStrategy;
import org.apache.hc.core5.http.EndpointDetails;
import org.apache.hc.core5.http.Header;
import org.apache.hc.core5.http.HttpException;
import org.apache.hc.core5.http.HttpHeaders;
import org.apache.hc.core5.http.HttpResponse;
import org.apache.hc.core5.http.HttpStatus;
import org.apache.hc.core5.http.NoHttpResponseException;
import org.apache.hc.core5.http.config.Http1Config;
import org.apache.hc.core5.http.impl.io.HttpRequestExecutor;
import org.apache.hc.core5.http.io.HttpClientConnection;
import org.apache.hc.core5.http.io.HttpConnectionFactory;
import org.apache.hc.core5.http.io.HttpResponseInformationCallback;
import org.apache.hc.core5.http.io.SessionInputBuffer;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.apache.hc.core5.util.Timeout;

/**
 * An upstream connection that the pool never hands out again once bytes arrived on it that belong to no request, and
 * that reads an answer the upstream sent before it had taken the whole request body.
 *
 * <p>An upstream that sends more than it framed — a body longer than its {@code Content-Length}, a body on a 304 or
 * on a HEAD response, anything after the last chunk — leaves those bytes on the connection. HttpClient's own stale
 * check counts incoming bytes as a sign of life, so the next request on the pooled connection would read them as its
 * response: a broken response for an innocent request at best, a response smuggled in by the upstream at worst.
 * RFC 9112 §9.2 has responses match requests by order alone, so a connection with unsolicited bytes is out of step
 * for good and is discarded.
 *
 * <p>The pool asks {@link #isStale()} on every lease (validate-after-inactivity 0); looking for buffered bytes costs
 * no read. The blocking probe for a closed connection (up to 1 ms) runs after {@value #VALIDATE_AFTER_INACTIVITY_MILLIS}
 * ms idle, HttpClient's default, and for a request that could not be retried ({@link #probeBeforeReuse}) after
 * {@value #PROBE_NOT_RETRIED_AFTER_MILLIS} ms idle, or at once while no reused connection has answered at the
 * upstream's address. An address where connections were found dropped sooner than that gets its connections retired
 * instead of reused for a while ({@link ReuseHistory}).
 */
public final class GuardedConnection extends DefaultManagedHttpClientConnection {

    static final long VALIDATE_AFTER_INACTIVITY_MILLIS = 2000;

    /**
     * Servers close idle connections after a keep-alive timeout of a second or more; a connection reused sooner is
     * not worth a probe that costs a live connection its full millisecond, which on every request would make a busy
     * stream of POSTs ten times slower.
     */
    static final long PROBE_NOT_RETRIED_AFTER_MILLIS = 100;

    private static final long VALIDATE_AFTER_INACTIVITY = TimeUnit.MILLISECONDS.toNanos(VALIDATE_AFTER_INACTIVITY_MILLIS);
    private static final long PROBE_NOT_RETRIED_AFTER = TimeUnit.MILLISECONDS.toNanos(PROBE_NOT_RETRIED_AFTER_MILLIS);

    private static final AtomicLong IDS = new AtomicLong();

    /** Set while a request that could not be retried leases a connection on this thread. */
    private static final ThreadLocal<Boolean> PROBE_BEFORE_REUSE = ThreadLocal.withInitial(() -> Boolean.FALSE);

    private final Http1Config config;
    private final StrictResponseParser parser;
    private final Ticker ticker;
    private final ReuseHistory history;
    private long idleSince;
    /** How long this connection idled before the current exchange reused it; -1 when it is not a reuse. */
    private long reusedIdle = -1;
    private long receivedBefore;
    private SocketAddress remote;
    /** The upstream answered before it took the whole request body, then stopped reading; never reused. */
    private boolean answeredEarly;
    /**
     * The latest request on this connection, sent after it idled in the pool, was answered 408: the upstream timing
     * the idle connection out as the request crossed its way, not an answer to it.
     */
    private boolean timedOutWhileIdle;
    /**
     * The latest request went out on a connection reused from the pool and failed before a byte of any response came:
     * the upstream had closed the connection while it idled, or as the request arrived.
     */
    private boolean droppedUnderRequest;
    /** Under TLS, the TCP socket the TLS socket is layered on; {@code null} for plain connections. */
    private Socket tcpSocket;
    /** Under TLS, what the TLS socket read from the TCP socket, when the TLS strategy is ours; else {@code null}. */
    private TlsTransport tlsTransport;

    private GuardedConnection(String id, Http1Config config, StrictResponseParser parser, Ticker ticker,
            ReuseHistory history) {
        super(id, null, new FieldValueEncoder(), config, null, null, null, c -> parser);
        this.config = config;
        this.parser = parser;
        this.ticker = ticker;
        this.history = history;
        this.idleSince = ticker.nanoTime();
    }

    /**
     * Connections with the strict response parser and the given limits.
     *
     * @param config its max line length is the longest header line (and status line) in characters, without its end
     * @param maxHeaderCount most header fields
     * @param maxSectionSize most characters in the whole head
     * @param ticker the clock idle times are measured on
     */
    public static HttpConnectionFactory<ManagedHttpClientConnection> factory(Http1Config config, int maxHeaderCount,
            int maxSectionSize, Ticker ticker) {
        ReuseHistory history = new ReuseHistory(ticker);
        // HttpCore's session buffer refuses a line once the line with its CR reaches the limit: one of limit - 1
        // characters. The parser holds head lines to the limit itself; the buffer's own, two more (for the CR and
        // its >=), bounds memory and holds chunk and trailer lines to the same limit. The chunked decoder refuses a
        // trailer section once it has as many fields as its count limit: one more lets as many trailers pass as
        // headers do.
        int maxLine = config.getMaxLineLength();
        int maxCount = config.getMaxHeaderCount();
        Http1Config buffered = Http1Config.copy(config)
                .setMaxLineLength(maxLine <= 0 ? maxLine : (int) Math.min(Integer.MAX_VALUE, maxLine + 2L))
                .setMaxHeaderCount(maxCount <= 0 ? maxCount : (int) Math.min(Integer.MAX_VALUE, maxCount + 1L))
                .build();
        return socket -> {
            StrictResponseParser parser = new StrictResponseParser(config.getMaxLineLength(), maxHeaderCount,
                    maxSectionSize);
            GuardedConnection connection = new GuardedConnection("http-outgoing-" + IDS.getAndIncrement(), buffered,
                    parser, ticker, history);
            if (socket != null) {
                connection.bind(socket);
            }
            return connection;
        };
    }

    /** {@link HttpContext} attribute: the connection the exchange's response is being read from. */
    private static final String CONTEXT_ATTRIBUTE = GuardedConnection.class.getName();

    /** A request executor that notes, in the exchange's context, the connection the response is read from. */
    public static HttpRequestExecutor notingExecutor() {
        return new HttpRequestExecutor() {
            @Override
            public ClassicHttpResponse execute(ClassicHttpRequest request, HttpClientConnection conn,
                    HttpResponseInformationCallback informationCallback, HttpContext context)
                    throws IOException, HttpException {
                HttpResponseInformationCallback callback = informationCallback;
                if (context != null) {
                    context.setAttribute(CONTEXT_ATTRIBUTE, conn);
                    Object listener = context.getAttribute(InterimResponseListener.ATTRIBUTE);
                    boolean askedToSwitch = request.containsHeader(HttpHeaders.UPGRADE);
                    callback = (response, connection, ctx) -> {
                        if (askedToSwitch && response.getCode() == HttpStatus.SC_SWITCHING_PROTOCOLS
                                && !toTls(response)) {
                            // Noted before HttpClient tries the switch, which it can make to TLS only, and fails. A
                            // 101 the request did not ask for stays the upstream's protocol error.
                            ctx.setAttribute(SWITCHED_ATTRIBUTE, Boolean.TRUE);
                        }
                        if (informationCallback != null) {
                            informationCallback.execute(response, connection, ctx);
                        }
                        if (listener instanceof InterimResponseListener
                                && response.getCode() != HttpStatus.SC_SWITCHING_PROTOCOLS) {
                            ((InterimResponseListener) listener).interim(response);
                        }
                    };
                }
                return super.execute(request, conn, callback, context);
            }
        };
    }

    /** {@link HttpContext} attribute: the upstream agreed to switch to a protocol other than TLS (101). */
    private static final String SWITCHED_ATTRIBUTE = GuardedConnection.class.getName() + ".switched";

    private static boolean toTls(HttpResponse response) {
        Header upgrade = response.getFirstHeader(HttpHeaders.UPGRADE);
        return upgrade != null && upgrade.getValue().trim().regionMatches(true, 0, "TLS", 0, 3);
    }

    /**
     * Whether the upstream answered the exchange in {@code context} with {@code 101 Switching Protocols} to a protocol
     * other than TLS, which the request asked for and this client cannot speak: a failure that follows is the
     * request's doing, not the upstream's. Only with the client's own request executor.
     */
    public static boolean switchedProtocols(HttpContext context) {
        return context != null && Boolean.TRUE.equals(context.getAttribute(SWITCHED_ATTRIBUTE));
    }

    /** Forgets a switch noted by an earlier exchange in {@code context}. */
    public static void forgetSwitch(HttpContext context) {
        context.removeAttribute(SWITCHED_ATTRIBUTE);
    }

    /**
     * Sets the read timeout of the connection the exchange in {@code context} reads its response from, when known: the
     * client reads the body with the whole response timeout, whatever the deadline left for the head.
     */
    public static void readTimeout(HttpContext context, Timeout timeout) {
        Object conn = context == null ? null : context.getAttribute(CONTEXT_ATTRIBUTE);
        if (conn instanceof HttpClientConnection) {
            ((HttpClientConnection) conn).setSocketTimeout(timeout);
        }
    }

    /**
     * Whether the upstream of the exchange in {@code context} has not paused: more of its response is already here,
     * or it has closed the connection with nothing left to read, as far as a wait of at most {@code lookNanos} (at
     * least 1 ms) can tell; what the wait reads stays buffered for the body, and more of the body ends it at once. A
     * proxy asks this where a body seems to pause, before the flush that would commit its response: if the body goes
     * on, or ends there (cut off, or delimited by the close), it is read on first, so that a cut still gets a clean
     * 502. {@code false} when the connection is not known (a client built from the caller's own HttpClient builder):
     * then every seeming pause counts as one.
     */
    public static boolean inputWaitingOrEnded(HttpContext context, long lookNanos) {
        GuardedConnection connection = of(context);
        if (connection == null) {
            return false;
        }
        try {
            return !connection.isOpen() || connection.moreThanALineEndBuffered()
                    || connection.endsOrGoesOnWithin(Math.max(lookNanos, TimeUnit.MILLISECONDS.toNanos(1)));
        } catch (IOException e) {
            return true; // the next read of the body meets it, and reports it
        }
    }

    private boolean endsOrGoesOnWithin(long lookNanos) throws IOException {
        long deadline = System.nanoTime() + lookNanos;
        Timeout timeout = getSocketTimeout();
        try {
            // A chunk's closing line end may arrive alone, ahead of the next chunk: the look goes on until more.
            for (long left = lookNanos; left > 0; left = deadline - System.nanoTime()) {
                setSocketTimeout(Timeout.ofMilliseconds(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left))));
                int read = parser.fillBuffer();
                if (read == -2) {
                    // Not a buffer this can fill: HttpClient's stale check, a 1 ms read into it.
                    return superIsStale() || moreThanALineEndBuffered();
                }
                if (read < 0 || moreThanALineEndBuffered()) {
                    return true;
                }
            }
            return false;
        } catch (SocketTimeoutException paused) {
            return false;
        } finally {
            setSocketTimeout(timeout);
        }
    }

    /**
     * Whether more of the response of the exchange in {@code context} has already arrived — beyond the line end that
     * closes a chunk's data — in the connection's buffer or its socket, as far as can be told without reading. A
     * proxy asks this where a body of unknown length seems to pause once its own response is committed: many small
     * chunks that arrived together are then passed on together, not flushed one by one (one write, and one chunk of
     * the proxy's own, for each). {@code false} when the connection is not known: then every seeming pause counts.
     */
    public static boolean inputWaiting(HttpContext context) {
        GuardedConnection connection = of(context);
        if (connection == null || !connection.isOpen()) {
            return false;
        }
        try {
            if (connection.moreThanALineEndBuffered()) {
                return true;
            }
            Socket socket = connection.getSocket();
            return socket != null && socket.getInputStream().available() > 0;
        } catch (IOException e) {
            return false; // the next read of the body meets it, and reports it
        }
    }

    /**
     * Whether the response of the exchange in {@code context} is a 408 (Request Timeout) that came on a connection
     * reused from the pool, before anything else of the response: what an upstream sends as it closes a connection
     * idle for its keep-alive timeout, which a request sent at that moment crosses on the way. RFC 9110 §15.5.9: the
     * upstream did not receive that request whole, and the client may repeat it. {@code false} when the connection is
     * not known (a client built from the caller's own HttpClient builder).
     */
    public static boolean timedOutWhileIdle(HttpContext context) {
        GuardedConnection connection = of(context);
        return connection != null && connection.timedOutWhileIdle;
    }

    /**
     * Whether the request of the exchange in {@code context} went out on a connection reused from the pool that failed
     * before any byte of a response arrived: the pool's race with an upstream closing an idle connection (RFC 9112
     * §9.3.1), which a fresh connection avoids. {@code false} when the connection is not known.
     */
    public static boolean droppedUnderRequest(HttpContext context) {
        GuardedConnection connection = of(context);
        return connection != null && connection.droppedUnderRequest;
    }

    /** Forgets the connection of the previous exchange in {@code context}: the next exchange notes its own. */
    public static void forgetConnection(HttpContext context) {
        context.removeAttribute(CONTEXT_ATTRIBUTE);
    }

    /** The connection the exchange in {@code context} is read from, when it is one of ours; else {@code null}. */
    private static GuardedConnection of(HttpContext context) {
        Object conn = context == null ? null : context.getAttribute(CONTEXT_ATTRIBUTE);
        return conn instanceof GuardedConnection ? (GuardedConnection) conn : null;
    }

    /**
     * More than the line end that closes a chunk's data is buffered: that line end alone is framing, always sent with
     * the chunk, and says nothing about whether more of the body is on its way (an event stream's event ends there).
     */
    private boolean moreThanALineEndBuffered() {
        return parser.bufferedInput() > 2;
    }

    private boolean superIsStale() throws IOException {
        return super.isStale();
    }

    /**
     * While on, connections leased on this thread are probed for a close even when they idled only briefly: up to
     * 1 ms per reuse, paid by requests that could not be retried after being sent on a dead connection (RFC 9112
     * §9.3.1: a non-idempotent request is not replayed) rather than by every request.
     */
    public static void probeBeforeReuse(boolean on) {
        if (on) {
            PROBE_BEFORE_REUSE.set(Boolean.TRUE);
        } else {
            PROBE_BEFORE_REUSE.remove();
        }
    }

    /** Whether {@link #probeBeforeReuse} is on for this thread. */
    static boolean probingBeforeReuse() {
        return PROBE_BEFORE_REUSE.get();
    }

    @Override
    public void passivate() {
        idleSince = ticker.nanoTime();
        super.passivate();
    }

    @Override
    public void sendRequestHeader(ClassicHttpRequest request) throws HttpException, IOException {
        receivedBefore = received();
        timedOutWhileIdle = false;
        droppedUnderRequest = false;
        try {
            super.sendRequestHeader(request);
        } catch (SocketException e) {
            droppedIfReused();
            throw e;
        }
    }

    /**
     * Asked only while a request with {@code Expect: 100-continue} waits for the upstream's 100 (Continue) before
     * sending its body, for HttpClient's fixed 3 s. An upstream that ignores the expectation (RFC 9110 §10.1.1 lets it,
     * and lets the client send the body without waiting) waits for the body meanwhile: a wait as long as the attempt's
     * read timeout, which the deadline caps, ran the call out of time with both sides waiting, and blamed the upstream.
     * At most half that read timeout is waited, leaving the other half for the answer.
     */
    @Override
    public boolean isDataAvailable(Timeout timeout) throws IOException {
        Timeout read = getSocketTimeout();
        if (read == null || read.isDisabled()) {
            return super.isDataAvailable(timeout);
        }
        long half = Math.max(1, read.toMilliseconds() / 2);
        return super.isDataAvailable(timeout == null || timeout.isDisabled() || timeout.toMilliseconds() > half
                ? Timeout.ofMilliseconds(half) : timeout);
    }

    /**
     * An upstream may refuse a body half way (413, 401, 415) by answering and closing the connection; RFC 9112 §9.5
     * asks the client to watch for that answer while it sends. The close makes the next write fail, but the answer is
     * already received: it is the response, a valid one that must reach the caller, not a broken connection.
     */
    @Override
    public void sendRequestEntity(ClassicHttpRequest request) throws HttpException, IOException {
        try {
            super.sendRequestEntity(request);
        } catch (SocketException e) {
            answeredEarlyOrThrow(e);
        }
    }

    @Override
    public void receiveResponseEntity(ClassicHttpResponse response) throws HttpException, IOException {
        if (response.containsHeader(HttpHeaders.TRANSFER_ENCODING)) {
            StrictResponseParser.checkTransferCodings(response);
        }
        super.receiveResponseEntity(response);
    }

    @Override
    public ClassicHttpResponse receiveResponseHeader() throws HttpException, IOException {
        ClassicHttpResponse response;
        try {
            response = super.receiveResponseHeader();
        } catch (NoHttpResponseException | SocketException e) {
            if (received() == receivedBefore) {
                droppedIfReused();
            }
            throw e;
        }
        if (reusedIdle >= 0 && response.getCode() == HttpStatus.SC_REQUEST_TIMEOUT) {
            // The upstream timed the connection out while it idled: the pool learns that, as from a close.
            timedOutWhileIdle = true;
            droppedIfReused();
        } else if (reusedIdle >= 0) {
            history.reuseWorked(remote());
            reusedIdle = -1; // Later heads of the exchange (after a 1xx) say nothing more.
        }
        return response;
    }

    /** The upstream had closed the reused connection before it took the request: its history learns that. */
    private void droppedIfReused() {
        if (reusedIdle >= 0 && reusedIdle < VALIDATE_AFTER_INACTIVITY) {
            history.closedWhileIdle(remote(), reusedIdle);
        }
        droppedUnderRequest = reusedIdle >= 0;
        reusedIdle = -1;
    }

    @Override
    public void flush() throws IOException {
        if (answeredEarly) {
            // After an early answer the rest of the body has nowhere to go: the upstream stopped reading.
            return;
        }
        try {
            super.flush();
        } catch (SocketException e) {
            // The same for the head: an upstream refusing the connection at once (a TLS server demanding a client
            // certificate sends its alert and closes) said why; reading it beats reporting a broken pipe.
            answeredEarlyOrThrow(e);
        }
    }

    @Override
    protected InputStream createContentInputStream(long length, SessionInputBuffer buffer, InputStream in) {
        if (length == ContentLengthStrategy.UNDEFINED && tlsTransport != null) {
            return new CloseNotifiedBody(super.createContentInputStream(length, buffer, in), tlsTransport);
        }
        if (length != ContentLengthStrategy.CHUNKED) {
            return super.createContentInputStream(length, buffer, in);
        }
        return StrictChunkSizes.decoder(buffer, in, config, parser.maxSectionSize());
    }

    /** The TLS connection's transport, as seen below the TLS socket (set once connected). */
    void tlsTransport(TlsTransport transport) {
        this.tlsTransport = transport;
    }

    /**
     * A body delimited by the connection's close, over TLS: RFC 9112 §9.8 has it complete only if a valid closure
     * alert was received. JSSE by default reports a TCP end without one as the end of input too, so the body would
     * look whole however much of it an attacker, or a crash, cut off: that end is an incomplete response.
     */
    private static final class CloseNotifiedBody extends FilterInputStream {
        private final TlsTransport transport;

        CloseNotifiedBody(InputStream in, TlsTransport transport) {
            super(in);
            this.transport = transport;
        }

        @Override
        public int read() throws IOException {
            return checked(super.read());
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            return checked(super.read(b, off, len));
        }

        private int checked(int read) throws IOException {
            if (read == -1 && transport.endedWithoutCloseNotify()) {
                throw new ConnectionClosedException("The upstream closed the TLS connection without close_notify: a"
                        + " response body delimited by the close may be truncated");
            }
            return read;
        }
    }

    @Override
    public void bind(SSLSocket sslSocket, Socket socket) throws IOException {
        this.tcpSocket = socket;
        super.bind(sslSocket, socket);
    }

    /**
     * A write failed: if the upstream sent something first (over TLS possibly still encrypted), that is its answer and
     * is read next; otherwise the write's failure stands. Only asked about a connection that is broken anyway, so
     * nothing is lost by looking at what is there.
     */
    private void answeredEarlyOrThrow(SocketException writeFailure) throws IOException {
        boolean answerWaiting;
        try {
            answerWaiting = hasUnsolicitedInput();
        } catch (IOException e) {
            answerWaiting = false;
        }
        if (!answerWaiting) {
            if (parser.awaitingFinalResponse() && isOpen()) {
                // A 100 Continue (or another 1xx) came, then the upstream's close: it had begun to answer, as when the
                // same close is met while reading (RFC 9209 http_response_incomplete, not connection_terminated). Not
                // so when this side closed it (a cancel): that is no close of the upstream's.
                throw new FaultSignal(UpstreamFault.HTTP_RESPONSE_INCOMPLETE,
                        "The upstream closed the connection after an interim response, before the final one",
                        writeFailure);
            }
            if (received() == receivedBefore) {
                droppedIfReused();
            }
            throw writeFailure;
        }
        answeredEarly = true;
    }

    @Override
    public boolean isStale() throws IOException {
        reusedIdle = -1;
        if (!isOpen() || answeredEarly || hasUnsolicitedInput()) {
            return true;
        }
        long idle = ticker.nanoTime() - idleSince;
        SocketAddress address = remote();
        if (!history.mayReuse(address, idle)) {
            // The upstream drops connections sooner than this one idled: a fresh one beats a failed request.
            return true;
        }
        boolean probe = idle >= VALIDATE_AFTER_INACTIVITY || PROBE_BEFORE_REUSE.get()
                && (idle >= PROBE_NOT_RETRIED_AFTER || !history.proven(address));
        if (probe) {
            // The probe reads what is waiting: a close, or bytes nobody asked for, which are just as fatal.
            if (super.isStale()) {
                if (idle < VALIDATE_AFTER_INACTIVITY) {
                    history.closedWhileIdle(address, idle);
                }
                return true;
            }
            if (hasUnsolicitedInput()) {
                return true;
            }
        }
        reusedIdle = idle;
        return false;
    }

    /** The upstream's address (known once connected), which keys the pool's {@link ReuseHistory}. */
    private SocketAddress remote() {
        if (remote == null) {
            Socket socket = getSocket();
            remote = socket == null ? null : socket.getRemoteSocketAddress();
        }
        return remote;
    }

    private long received() {
        EndpointDetails details = getEndpointDetails();
        return details == null ? -1 : details.getReceivedBytesCount();
    }

    /**
     * Bytes received and not read: in the parser's buffer, in the socket, and under TLS also still encrypted on the
     * TCP socket — the TLS socket counts only what it has decrypted, so a surplus record, or the close_notify of an
     * upstream closing the connection, would otherwise go unseen until the next request read it as its response.
     * No TLS handshake message is due there after a complete response; one would only cost a fresh connection.
     */
    private boolean hasUnsolicitedInput() throws IOException {
        if (parser.bufferedInput() > 0) {
            return true;
        }
        Socket socket = getSocket();
        if (socket != null && socket.getInputStream().available() > 0) {
            return true;
        }
        Socket tcp = tcpSocket;
        return tcp != null && tcp.getInputStream().available() > 0;
    }
}
