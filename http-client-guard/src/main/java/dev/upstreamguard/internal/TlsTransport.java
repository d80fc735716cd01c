package dev.upstreamguard.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.SocketException;
import java.net.SocketImpl;
import java.net.SocketOption;
import java.nio.channels.SocketChannel;
import java.util.Arrays;
import java.util.Set;
import org.apache.hc.core5.http.protocol.HttpContext;

/**
 * The TCP connection a TLS socket is layered on, seen from below: it passes every call through to the TCP socket and
 * notes two things JSSE keeps to itself.
 *
 * <ul>
 * <li>Whether JSSE read the end of the TCP stream. JSSE reads records exactly, never past one, so after a
 * {@code close_notify} it reports the end of input without reading the TCP end; without one (a truncated connection) it
 * reads the TCP end and, by default, reports the same end of input ({@code com.sun.net.ssl.requireCloseNotify} is off).
 * RFC 9112 §9.8: a body delimited by the close is complete only after a valid closure alert.</li>
 * <li>A TLS alert JSSE never read. When the handshake fails on a write (a TLS 1.2 server that rejects the client's
 * certificate, or its absence, sends its alert and closes while the client still writes its flight), JSSE reports the
 * broken pipe and leaves unread, or on closing skips, what the upstream sent: its alert.</li>
 * </ul>
 */
public final class TlsTransport extends Socket {

    /** {@link HttpContext} attribute: the transport of the TLS connection just established. */
    static final String CONTEXT_ATTRIBUTE = TlsTransport.class.getName();

    private static final int ALERT = 21;

    private final Socket tcp;
    private final Input input;
    private volatile boolean endOfStream;
    /** The first bytes JSSE left unread after a failed handshake, from a record boundary; {@code null} until known. */
    private volatile byte[] discarded;

    private TlsTransport(Socket tcp) throws IOException {
        super((SocketImpl) null);
        this.tcp = tcp;
        this.input = new Input(tcp.getInputStream());
    }

    /** Wraps the connected TCP socket {@code tcp}, and notes the transport in {@code context} (when there is one). */
    public static TlsTransport over(Socket tcp, HttpContext context) throws IOException {
        TlsTransport transport = new TlsTransport(tcp);
        if (context != null) {
            context.setAttribute(CONTEXT_ATTRIBUTE, transport);
        }
        return transport;
    }

    /** Takes the transport noted in {@code context} by {@link #over}, or {@code null}. */
    static TlsTransport take(HttpContext context) {
        if (context == null) {
            return null;
        }
        Object transport = context.removeAttribute(CONTEXT_ATTRIBUTE);
        return transport instanceof TlsTransport ? (TlsTransport) transport : null;
    }

    /** Whether JSSE read the end of the TCP stream: the connection ended without a {@code close_notify}. */
    public boolean endedWithoutCloseNotify() {
        return endOfStream;
    }

    /**
     * After a handshake that failed on a write, the TLS alert the upstream sent that JSSE never read: the alert's name
     * for a plaintext one (sent before encryption started, such as {@code bad_certificate}), {@code "encrypted"} for
     * an encrypted one, {@code null} when the upstream sent no alert. Reads only what is already there.
     */
    public String discardedAlert() {
        keepUnread();
        byte[] d = discarded;
        if (d == null || d.length < 5 || (d[0] & 0xff) != ALERT || (d[1] & 0xff) != 3) {
            return null;
        }
        int length = (d[3] & 0xff) << 8 | (d[4] & 0xff);
        if (length == 2 && d.length >= 7) {
            return TlsAlerts.name(d[6] & 0xff);
        }
        return "encrypted";
    }

    private final class Input extends InputStream {
        private final InputStream in;

        Input(InputStream in) {
            this.in = in;
        }

        @Override
        public int read() throws IOException {
            int b = in.read();
            if (b == -1) {
                endOfStream = true;
            }
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = in.read(b, off, len);
            if (n == -1) {
                endOfStream = true;
            }
            return n;
        }

        /** What JSSE skips it never looks at: kept (the start of it), so that an alert in it is not lost. */
        @Override
        public long skip(long n) throws IOException {
            if (n <= 0) {
                return 0;
            }
            byte[] scratch = new byte[(int) Math.min(n, 8192)];
            int read = in.read(scratch, 0, scratch.length);
            if (read == -1) {
                endOfStream = true;
                return 0;
            }
            if (discarded == null) {
                discarded = Arrays.copyOf(scratch, Math.min(read, 16));
            }
            return read;
        }

        @Override
        public int available() throws IOException {
            return in.available();
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }

    // ---- everything else is the TCP socket's ----------------------------------------------------------------------

    @Override
    public InputStream getInputStream() throws IOException {
        if (tcp.isClosed()) {
            throw new SocketException("Socket is closed");
        }
        return input;
    }

    @Override
    public OutputStream getOutputStream() throws IOException {
        return tcp.getOutputStream();
    }

    @Override
    public void connect(SocketAddress endpoint) throws IOException {
        tcp.connect(endpoint);
    }

    @Override
    public void connect(SocketAddress endpoint, int timeout) throws IOException {
        tcp.connect(endpoint, timeout);
    }

    @Override
    public void bind(SocketAddress bindpoint) throws IOException {
        tcp.bind(bindpoint);
    }

    @Override
    public InetAddress getInetAddress() {
        return tcp.getInetAddress();
    }

    @Override
    public InetAddress getLocalAddress() {
        return tcp.getLocalAddress();
    }

    @Override
    public int getPort() {
        return tcp.getPort();
    }

    @Override
    public int getLocalPort() {
        return tcp.getLocalPort();
    }

    @Override
    public SocketAddress getRemoteSocketAddress() {
        return tcp.getRemoteSocketAddress();
    }

    @Override
    public SocketAddress getLocalSocketAddress() {
        return tcp.getLocalSocketAddress();
    }

    @Override
    public SocketChannel getChannel() {
        return tcp.getChannel();
    }

    @Override
    public void setTcpNoDelay(boolean on) throws SocketException {
        tcp.setTcpNoDelay(on);
    }

    @Override
    public boolean getTcpNoDelay() throws SocketException {
        return tcp.getTcpNoDelay();
    }

    @Override
    public void setSoLinger(boolean on, int linger) throws SocketException {
        tcp.setSoLinger(on, linger);
    }

    @Override
    public int getSoLinger() throws SocketException {
        return tcp.getSoLinger();
    }

    @Override
    public void sendUrgentData(int data) throws IOException {
        tcp.sendUrgentData(data);
    }

    @Override
    public void setOOBInline(boolean on) throws SocketException {
        tcp.setOOBInline(on);
    }

    @Override
    public boolean getOOBInline() throws SocketException {
        return tcp.getOOBInline();
    }

    @Override
    public void setSoTimeout(int timeout) throws SocketException {
        tcp.setSoTimeout(timeout);
    }

    @Override
    public int getSoTimeout() throws SocketException {
        return tcp.getSoTimeout();
    }

    @Override
    public void setSendBufferSize(int size) throws SocketException {
        tcp.setSendBufferSize(size);
    }

    @Override
    public int getSendBufferSize() throws SocketException {
        return tcp.getSendBufferSize();
    }

    @Override
    public void setReceiveBufferSize(int size) throws SocketException {
        tcp.setReceiveBufferSize(size);
    }

    @Override
    public int getReceiveBufferSize() throws SocketException {
        return tcp.getReceiveBufferSize();
    }

    @Override
    public void setKeepAlive(boolean on) throws SocketException {
        tcp.setKeepAlive(on);
    }

    @Override
    public boolean getKeepAlive() throws SocketException {
        return tcp.getKeepAlive();
    }

    @Override
    public void setTrafficClass(int tc) throws SocketException {
        tcp.setTrafficClass(tc);
    }

    @Override
    public int getTrafficClass() throws SocketException {
        return tcp.getTrafficClass();
    }

    @Override
    public void setReuseAddress(boolean on) throws SocketException {
        tcp.setReuseAddress(on);
    }

    @Override
    public boolean getReuseAddress() throws SocketException {
        return tcp.getReuseAddress();
    }

    @Override
    public void close() throws IOException {
        tcp.close();
    }

    /**
     * Keeps the start of what is waiting unread on the TCP socket, without waiting for more: JDK 17 leaves the upstream's
     * alert there after a handshake that failed on a write (later JDKs skip it as they close, see {@link Input#skip}).
     */
    private void keepUnread() {
        try {
            if (discarded == null && !tcp.isClosed()) {
                InputStream in = tcp.getInputStream();
                int waiting = in.available();
                if (waiting > 0) {
                    byte[] start = new byte[Math.min(waiting, 16)];
                    int read = in.read(start);
                    if (read > 0) {
                        discarded = Arrays.copyOf(start, read);
                    }
                }
            }
        } catch (IOException ignored) {
            // Nothing could be kept.
        }
    }

    @Override
    public void shutdownInput() throws IOException {
        tcp.shutdownInput();
    }

    @Override
    public void shutdownOutput() throws IOException {
        tcp.shutdownOutput();
    }

    @Override
    public String toString() {
        return tcp.toString();
    }

    @Override
    public boolean isConnected() {
        return tcp.isConnected();
    }

    @Override
    public boolean isBound() {
        return tcp.isBound();
    }

    @Override
    public boolean isClosed() {
        return tcp.isClosed();
    }

    @Override
    public boolean isInputShutdown() {
        return tcp.isInputShutdown();
    }

    @Override
    public boolean isOutputShutdown() {
        return tcp.isOutputShutdown();
    }

    @Override
    public void setPerformancePreferences(int connectionTime, int latency, int bandwidth) {
        tcp.setPerformancePreferences(connectionTime, latency, bandwidth);
    }

    @Override
    public <T> Socket setOption(SocketOption<T> name, T value) throws IOException {
        tcp.setOption(name, value);
        return this;
    }

    @Override
    public <T> T getOption(SocketOption<T> name) throws IOException {
        return tcp.getOption(name);
    }

    @Override
    public Set<SocketOption<?>> supportedOptions() {
        return tcp.supportedOptions();
    }
}
