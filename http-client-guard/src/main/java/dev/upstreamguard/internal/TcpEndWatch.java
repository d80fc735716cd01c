package dev.upstreamguard.internal;

import java.io.FilterInputStream;
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
import java.util.Collections;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * The TCP socket a TLS socket is layered on, as the TLS layer sees it: it notes when the TCP stream itself ended.
 *
 * <p>RFC 9112 §9.8 holds a body delimited by the close of a TLS connection complete only if the close came with TLS's
 * close_notify alert: a bare TCP close (an attacker's FIN, an upstream that crashed) may cut it anywhere. The JDK reads
 * both as the end of the data, and says nothing of which it was. The TLS layer reads records exactly, so it meets the
 * end of the TCP stream only when no close_notify came before it: that is what this socket notes, for the connection
 * to tell a truncated body from a whole one ({@link GuardedConnection}). Everything else is the TCP socket's.
 */
public final class TcpEndWatch extends Socket {

    /** Watches by the TCP socket they stand for, until the connection bound to it takes its own. */
    private static final Map<Socket, TcpEndWatch> BY_SOCKET = Collections.synchronizedMap(new WeakHashMap<>());

    private final Socket tcp;
    private volatile boolean ended;
    private InputStream in;

    private TcpEndWatch(Socket tcp) throws SocketException {
        super((SocketImpl) null);
        this.tcp = tcp;
    }

    /** The socket to layer TLS on in place of {@code tcp}; {@link #of(Socket)} finds it again by {@code tcp}. */
    public static Socket around(Socket tcp) throws SocketException {
        TcpEndWatch watch = new TcpEndWatch(tcp);
        BY_SOCKET.put(tcp, watch);
        return watch;
    }

    /** The watch over {@code tcp}, taken out of the registry; {@code null} when TLS was not layered through one. */
    static TcpEndWatch of(Socket tcp) {
        return tcp == null ? null : BY_SOCKET.remove(tcp);
    }

    /** Drops the watch over {@code tcp}, when no connection will take it (the handshake failed). */
    public static void forget(Socket tcp) {
        of(tcp);
    }

    /** Whether the TCP stream ended under the TLS layer: without a close_notify before it. */
    boolean ended() {
        return ended;
    }

    @Override
    public synchronized InputStream getInputStream() throws IOException {
        if (in == null) {
            in = new FilterInputStream(tcp.getInputStream()) {
                @Override
                public int read() throws IOException {
                    int b = super.read();
                    if (b == -1) {
                        ended = true;
                    }
                    return b;
                }

                @Override
                public int read(byte[] b, int off, int len) throws IOException {
                    int n = super.read(b, off, len);
                    if (n == -1) {
                        ended = true;
                    }
                    return n;
                }
            };
        }
        return in;
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
        BY_SOCKET.remove(tcp);
        tcp.close();
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
