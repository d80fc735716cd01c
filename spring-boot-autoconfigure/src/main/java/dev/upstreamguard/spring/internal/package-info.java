/** Implementation details of the Spring Boot module; not an API. */
package dev.upstreamguard.spring.internal;
