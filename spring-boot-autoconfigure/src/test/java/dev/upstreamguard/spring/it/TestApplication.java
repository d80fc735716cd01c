package dev.upstreamguard.spring.it;

import dev.upstreamguard.spring.UpstreamPolicy;
import java.util.concurrent.Callable;
import org.springframework.beans.factory.annotation.Qualifier;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringBootConfiguration;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.restclient.RestTemplateBuilder;
import org.springframework.context.annotation.Bean;
import org.springframework.web.bind.annotation.CrossOrigin;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;
import org.springframework.web.client.HttpServerErrorException;
import org.springframework.web.client.RestClient;
import org.springframework.web.client.RestTemplate;
import org.springframework.web.client.support.RestClientAdapter;
import org.springframework.web.service.annotation.GetExchange;
import org.springframework.web.service.annotation.HttpExchange;
import org.springframework.web.service.invoker.HttpRequestValues;
import org.springframework.web.service.invoker.HttpServiceProxyFactory;
import org.springframework.web.service.registry.ImportHttpServices;

/** An application using everything the Spring Boot module offers, against {@link TestUpstream}. */
@SpringBootConfiguration
@EnableAutoConfiguration
@ImportHttpServices(group = "backend", types = TestApplication.GroupApi.class)
class TestApplication {

    /** Built by hand, with the processor added as the README says. */
    @HttpExchange("/flaky")
    interface FlakyApi {

        @GetExchange
        @UpstreamPolicy(maxAttempts = 4)
        void fourAttempts();

        @GetExchange
        void inherits();

        @GetExchange
        @UpstreamPolicy(retry = UpstreamPolicy.Retry.DISABLED)
        void once();
    }

    /** Built by Spring Boot's HTTP service registry. */
    @HttpExchange("/flaky")
    @UpstreamPolicy(maxAttempts = 5)
    interface GroupApi {

        @GetExchange
        void fiveAttempts();

        @GetExchange
        @UpstreamPolicy(maxAttempts = 1)
        void oneAttempt();
    }

    @Bean
    FlakyApi flakyApi(RestClient.Builder builder, @Value("${test.upstream}") String upstream,
            @Qualifier("upstreamPolicyHttpExchangeProcessor") HttpRequestValues.Processor processor) {
        return HttpServiceProxyFactory.builderFor(RestClientAdapter.create(builder.baseUrl(upstream).build()))
                .httpRequestValuesProcessor(processor).build().createClient(FlakyApi.class);
    }

    @RestController
    @UpstreamPolicy(upstream = "backend", maxAttempts = 2)
    static class AnnotatedController {

        private final RestClient client;
        private final FlakyApi api;
        private final RestTemplate restTemplate;
        private final String upstream;

        AnnotatedController(RestClient.Builder builder, RestTemplateBuilder restTemplateBuilder,
                @Value("${test.upstream}") String upstream, FlakyApi api) {
            this.client = builder.baseUrl(upstream).build();
            this.restTemplate = restTemplateBuilder.build();
            this.upstream = upstream;
            this.api = api;
        }

        @GetMapping("/annotated/rest-template")
        @UpstreamPolicy(maxAttempts = 1)
        String restTemplate() {
            return swallow503(() -> restTemplate.getForObject(upstream + "/flaky", String.class));
        }

        @GetMapping("/annotated/class-level")
        String classLevel() {
            return callFlaky(client);
        }

        @GetMapping("/annotated/method-level")
        @UpstreamPolicy(maxAttempts = 1)
        String methodLevel() {
            return callFlaky(client);
        }

        @GetMapping("/annotated/no-retry")
        @UpstreamPolicy(retry = UpstreamPolicy.Retry.DISABLED)
        String noRetry() {
            return callFlaky(client);
        }

        @GetMapping("/annotated/callable-no-retry")
        @UpstreamPolicy(retry = UpstreamPolicy.Retry.DISABLED)
        Callable<String> callableNoRetry() {
            return () -> callFlaky(client);
        }

        @GetMapping("/annotated/stall")
        @UpstreamPolicy(responseTimeout = "300ms")
        String stall() {
            return client.get().uri("/stall").retrieve().body(String.class);
        }

        @GetMapping("/annotated/exchange-four")
        String exchangeFour() {
            return swallow503(api::fourAttempts);
        }

        @GetMapping("/annotated/exchange-inherits")
        String exchangeInherits() {
            return swallow503(api::inherits);
        }

        @GetMapping("/annotated/exchange-once")
        String exchangeOnce() {
            return swallow503(api::once);
        }
    }

    @RestController
    static class PlainController {

        private final RestClient client;
        private final RestClient dead;
        private final RestClient fragile;
        private final RestTemplate restTemplate;
        private final FlakyApi api;
        private final GroupApi group;
        private final String upstream;
        private final String deadUrl;

        PlainController(RestClient.Builder builder, RestTemplateBuilder restTemplateBuilder,
                @Value("${test.upstream}") String upstream, @Value("${test.dead}") String dead,
                @Value("${test.fragile}") String fragile, FlakyApi api, GroupApi group) {
            this.client = builder.clone().baseUrl(upstream).build();
            this.dead = builder.clone().baseUrl(dead).build();
            this.fragile = builder.clone().baseUrl(fragile).build();
            this.restTemplate = restTemplateBuilder.build();
            this.upstream = upstream;
            this.deadUrl = dead;
            this.api = api;
            this.group = group;
        }

        @GetMapping("/plain/properties")
        String properties() {
            return callFlaky(client);
        }

        @GetMapping("/plain/rest-template")
        String restTemplate() {
            return swallow503(() -> restTemplate.getForObject(upstream + "/flaky", String.class));
        }

        @GetMapping("/plain/exchange-four")
        String exchangeFour() {
            return swallow503(api::fourAttempts);
        }

        @GetMapping("/plain/group-five")
        String groupFive() {
            return swallow503(group::fiveAttempts);
        }

        @GetMapping("/plain/group-one")
        String groupOne() {
            return swallow503(group::oneAttempt);
        }

        @GetMapping("/plain/refused")
        String refused() {
            return dead.get().uri("/anything").retrieve().body(String.class);
        }

        @GetMapping("/plain/refused-cross-origin")
        @CrossOrigin(origins = "https://app.example", exposedHeaders = "Proxy-Status")
        String refusedCrossOrigin() {
            return refused();
        }

        @GetMapping("/plain/refused-rest-template")
        String refusedRestTemplate() {
            return restTemplate.getForObject(deadUrl + "/x", String.class);
        }

        @GetMapping("/plain/fragile")
        String fragile() {
            return fragile.get().uri("/anything").retrieve().body(String.class);
        }

        /** A call with a RestTemplate of the application's own, not from the context's builder: not guarded. */
        @GetMapping("/plain/own-rest-template-closing")
        String ownRestTemplateClosing(@Value("${test.closing}") String closing) {
            return new RestTemplate().getForObject(closing + "/x", String.class);
        }

    }

    static String callFlaky(RestClient client) {
        return swallow503(() -> client.get().uri("/flaky").retrieve().toBodilessEntity());
    }

    static String swallow503(Runnable call) {
        try {
            call.run();
            return "200";
        } catch (HttpServerErrorException e) {
            return Integer.toString(e.getStatusCode().value());
        }
    }
}
