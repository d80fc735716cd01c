/**
 * Servlet integration: {@link dev.upstreamguard.gateway.UpstreamFaultFilter} answers upstream faults escaping an
 * application with the right 502/503/504, {@code Proxy-Status} and problem details, and
 * {@link dev.upstreamguard.gateway.UpstreamProxyServlet} is a streaming reverse proxy over the guarded client.
 * Requires Jakarta Servlet 6.1 (provided by the container).
 */
package dev.upstreamguard.gateway;
