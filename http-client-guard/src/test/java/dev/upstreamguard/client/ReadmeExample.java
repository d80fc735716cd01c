package dev.upstreamguard.client;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.UpstreamException;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.time.Duration;
import org.apache.hc.client5.http.classic.methods.HttpGet;
import org.apache.hc.core5.http.io.entity.EntityUtils;

/** The README's usage example, kept here verbatim so that it always compiles and runs. */
final class ReadmeExample {

    private ReadmeExample() {
    }

    // README:BEGIN
    static String fetchItem(String inventoryUrl, MeterRegistry meterRegistry) throws IOException {
        GuardPolicy policy = GuardPolicy.builder()
                .responseTimeout(Duration.ofSeconds(2))   // everything else keeps the documented defaults
                .build();
        try (GuardedHttpClient client = GuardedHttpClients.custom()
                .upstream("inventory", inventoryUrl, policy)   // its own breaker, bulkhead and retry budget
                .meterRegistry(meterRegistry)
                .build()) {
            return client.execute(new HttpGet(inventoryUrl + "/items/42"),
                    response -> response.getCode() + " " + EntityUtils.toString(response.getEntity()));
        } catch (UpstreamException e) {
            // e.fault().type() is "connection_refused", "http_response_timeout"…; e.fault().status() is 502/503/504
            return e.fault().status() + " " + e.fault().type() + " after " + e.attempts() + " attempts";
        }
    }
    // README:END
}
