package dev.upstreamguard.spring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.testing.Behaviours;
import dev.upstreamguard.testing.RawUpstream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;
import org.springframework.http.client.BufferingClientHttpRequestFactory;
import org.springframework.http.client.ClientHttpRequestInterceptor;
import org.springframework.web.client.ResourceAccessException;
import org.springframework.web.client.RestClient;
import org.springframework.web.client.support.RestClientAdapter;
import org.springframework.web.service.annotation.GetExchange;
import org.springframework.web.service.annotation.HttpExchange;
import org.springframework.web.service.invoker.HttpRequestValues;
import org.springframework.web.service.invoker.HttpServiceProxyFactory;

/** What a {@code RestClient} from the context's builder does with the request: its body, its declarations. */
class RestClientRequestTest {

    private final ApplicationContextRunner plain =
            new ApplicationContextRunner().withConfiguration(UpstreamGuardAutoConfigurationTest.AUTO_CONFIGURATIONS);

    /**
     * Regression: the policy and bypass-check interceptors Upstream Guard added to the builder made Spring's
     * {@code RestClient} buffer every request body whole in memory before sending a byte (any interceptor does), so an
     * upload of any size went through the heap. The body now streams: the upstream has its first part while the
     * client still holds back the rest.
     */
    @Test
    void aRequestBodyStreamsToTheUpstreamAsItIsWritten() throws Exception {
        CountDownLatch firstPartArrived = new CountDownLatch(1);
        try (RawUpstream upstream = RawUpstream.start(c -> {
            if (!c.skipHead()) {
                return;
            }
            String seen = readUntil(c.in(), "first-part", "");
            firstPartArrived.countDown();
            readUntil(c.in(), "\r\n0\r\n\r\n", seen);
            c.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        })) {
            plain.run(context -> {
                RestClient client = context.getBean(RestClient.Builder.class).build();
                String answer = client.post().uri(upstream.baseUrl() + "/upload").body(out -> {
                    out.write("first-part".getBytes(StandardCharsets.US_ASCII));
                    out.flush();
                    if (!awaitQuietly(firstPartArrived)) {
                        throw new IOException("the upstream had nothing of the body while it was being written");
                    }
                    out.write("second-part".getBytes(StandardCharsets.US_ASCII));
                }).retrieve().body(String.class);
                assertThat(answer).isEqualTo("ok");
            });
        }
    }

    /** Streamed, a body the converter can write again (a String, JSON) still lets an idempotent request be retried. */
    @Test
    void aRepeatableBodyOfAnIdempotentRequestIsStillRetried() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.resetBeforeResponse())) {
            plain.withPropertyValues("upstream-guard.defaults.retry.initial-backoff=1ms",
                    "upstream-guard.defaults.retry.max-backoff=2ms").run(context -> {
                        RestClient client = context.getBean(RestClient.Builder.class).build();
                        assertThatThrownBy(() -> client.put().uri(upstream.baseUrl() + "/item").body("{\"a\":1}")
                                .retrieve().toBodilessEntity()).isInstanceOf(ResourceAccessException.class);
                    });
            assertThat(upstream.requestCount()).isEqualTo(3);
            assertThat(upstream.requests()).allSatisfy(r -> assertThat(r.bodyUtf8()).isEqualTo("{\"a\":1}"));
        }
    }

    @HttpExchange("/api")
    interface Api {
        @GetExchange
        @UpstreamPolicy(maxAttempts = 4)
        String fourAttempts();
    }

    /**
     * The declaration of an {@code @HttpExchange} method travels as a request attribute, which the application's own
     * interceptors pass on to the guarded request.
     */
    @Test
    void anHttpExchangeDeclarationReachesTheGuardThroughTheApplicationsOwnInterceptors() throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.resetBeforeResponse())) {
            plain.withPropertyValues("upstream-guard.defaults.retry.initial-backoff=1ms",
                    "upstream-guard.defaults.retry.max-backoff=2ms").run(context -> {
                        ClientHttpRequestInterceptor own = (request, body, execution) -> execution.execute(request, body);
                        RestClient client = context.getBean(RestClient.Builder.class).requestInterceptor(own)
                                .baseUrl(upstream.baseUrl()).build();
                        Api api = HttpServiceProxyFactory.builderFor(RestClientAdapter.create(client))
                                .httpRequestValuesProcessor(context.getBean("upstreamPolicyHttpExchangeProcessor",
                                        HttpRequestValues.Processor.class))
                                .build().createClient(Api.class);
                        assertThatThrownBy(api::fourAttempts).isInstanceOf(ResourceAccessException.class);
                    });
            assertThat(upstream.requestCount()).isEqualTo(4);
        }
    }

    /** The README's way to add behaviour and keep the guard: a wrapper around the guarded factory is no bypass. */
    @Test
    @ExtendWith(OutputCaptureExtension.class)
    void aBuilderGivenAWrapperAroundTheGuardedFactoryDoesNotWarn(CapturedOutput output) throws Exception {
        try (RawUpstream upstream = RawUpstream.start(Behaviours.ok("ok"))) {
            plain.run(context -> {
                RestClient client = context.getBean(RestClient.Builder.class).requestFactory(
                        new BufferingClientHttpRequestFactory(context.getBean(GuardedClientHttpRequestFactory.class)))
                        .build();
                assertThat(client.get().uri(upstream.baseUrl() + "/a").retrieve().body(String.class)).isEqualTo("ok");
            });
        }
        assertThat(output.getOut()).doesNotContain("without Upstream Guard");
    }

    private static boolean awaitQuietly(CountDownLatch latch) throws IOException {
        try {
            return latch.await(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.InterruptedIOException("interrupted");
        }
    }

    /** Reads from {@code in} until what was read, after {@code seen}, ends with {@code end}. */
    private static String readUntil(InputStream in, String end, String seen) throws IOException {
        ByteArrayOutputStream read = new ByteArrayOutputStream();
        read.writeBytes(seen.getBytes(StandardCharsets.ISO_8859_1));
        while (!read.toString(StandardCharsets.ISO_8859_1).endsWith(end)) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("closed before " + end.strip() + "; read: " + read);
            }
            read.write(b);
        }
        return read.toString(StandardCharsets.ISO_8859_1);
    }
}
