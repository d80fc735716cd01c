/**
 * Implementation details of the gateway filter and proxy servlet: response rendering, path confinement, header
 * handling. Not an API: anything here may change without notice.
 */
package dev.upstreamguard.gateway.internal;
