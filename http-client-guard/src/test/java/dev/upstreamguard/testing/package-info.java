/**
 * Test infrastructure for upstream faults over real sockets, shared with other modules through this module's
 * test-jar ({@code <type>test-jar</type>}, scope {@code test}).
 *
 * <ul>
 * <li>{@link dev.upstreamguard.testing.RawUpstream}: a raw-socket HTTP/1.1 upstream on 127.0.0.1, scripted per
 *     connection, for the broken HTTP that mockwebserver3 cannot produce; {@link dev.upstreamguard.testing.Behaviours}
 *     holds the canned faults (not HTTP, malformed status line, huge header, conflicting framing, truncated or
 *     badly chunked body, broken gzip, close/reset before the response, stall).
 * <li>{@link dev.upstreamguard.testing.Blackhole}: a loopback listener whose accept queue is full, so connecting to
 *     it times out; {@link dev.upstreamguard.testing.ClosedPort} a port nothing listens on (connection refused).
 * <li>{@link dev.upstreamguard.testing.TestTls}: a throw-away certificate for mockwebserver3 over HTTPS, untrusted by
 *     default clients, and an {@code SSLContext} that trusts it.
 * <li>{@link dev.upstreamguard.testing.FakeTime}: a {@code Ticker}, {@code Sleeper} and {@code Clock} in one, where
 *     sleeping advances time, so backoff, {@code Retry-After} and circuit breaker timing need no real waiting.
 * <li>{@link dev.upstreamguard.testing.MockWebServers}: small helpers for mockwebserver3 (a dispatcher that always
 *     answers the same way).
 * </ul>
 *
 * <p>Everything here binds to the loopback address only, runs its threads as daemons and never sleeps: waiting is
 * always on a condition with a bound.
 */
package dev.upstreamguard.testing;
