package dev.upstreamguard.spring;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.upstreamguard.GuardPolicy;
import dev.upstreamguard.client.GuardedHttpClient;
import dev.upstreamguard.spring.internal.CallScope;
import dev.upstreamguard.spring.internal.GuardedHttpContextFactory;
import dev.upstreamguard.spring.internal.PolicyOverride;
import dev.upstreamguard.spring.internal.UpstreamPolicyResolver;
import java.lang.reflect.Method;
import java.net.URI;
import java.time.Duration;
import org.apache.hc.core5.http.protocol.HttpContext;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.springframework.boot.autoconfigure.AutoConfigurations;
import org.springframework.boot.test.context.runner.ApplicationContextRunner;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.http.HttpMethod;
import org.springframework.mock.env.MockEnvironment;

/** How {@link UpstreamPolicy} declarations are read, merged and turned into the policy of a call. */
class UpstreamPolicyTest {

    private static final URI INVENTORY = URI.create("http://127.0.0.1:8081/stock");
    private static final URI ELSEWHERE = URI.create("http://127.0.0.1:9999/x");

    private final UpstreamRegistry registry = registry();
    private final UpstreamPolicyResolver resolver = new UpstreamPolicyResolver(registry,
            new MockEnvironment().withProperty("stock.timeout", "750ms"));

    @UpstreamPolicy(upstream = "inventory", responseTimeout = "3s", maxAttempts = 2)
    static class Controller {
        void inherits() {
        }

        @UpstreamPolicy(maxAttempts = 1)
        void fewerAttempts() {
        }

        @UpstreamPolicy(maxResponseBody = "64KB")
        void smallBodies() {
        }

        @UpstreamPolicy(upstream = "orders", retry = UpstreamPolicy.Retry.DISABLED)
        void otherUpstream() {
        }

        @UpstreamPolicy(totalTimeout = "${stock.timeout}")
        void placeholder() {
        }
    }

    static class Plain {
        void none() {
        }
    }

    @UpstreamPolicy(connectTimeout = "100ms", maxAttempts = 5)
    interface Exchange {
        void inherits();

        @UpstreamPolicy(maxAttempts = 4)
        void four();
    }

    private static UpstreamRegistry registry() {
        UpstreamGuardProperties p = new UpstreamGuardProperties();
        p.getDefaults().setResponseTimeout(Duration.ofSeconds(8));
        UpstreamGuardProperties.Upstream inventory = new UpstreamGuardProperties.Upstream();
        inventory.setUrl("http://127.0.0.1:8081");
        inventory.setResponseTimeout(Duration.ofSeconds(5));
        inventory.getRetry().setMaxAttempts(6);
        p.getUpstreams().put("inventory", inventory);
        UpstreamGuardProperties.Upstream orders = new UpstreamGuardProperties.Upstream();
        orders.setUrl("http://127.0.0.1:8082");
        p.getUpstreams().put("orders", orders);
        UpstreamGuardProperties.Route status = new UpstreamGuardProperties.Route();
        status.setPath("/status/**");
        status.setUri("http://127.0.0.1:8083");
        status.setResponseTimeout(Duration.ofSeconds(1));
        p.getRoutes().put("status", status);
        return UpstreamRegistry.from(p);
    }

    private static Method method(Class<?> type, String name) throws NoSuchMethodException {
        return type.getDeclaredMethod(name);
    }

    private GuardPolicy handlerPolicy(String method, URI uri) throws Exception {
        return resolver.policy(resolver.forHandler(method(Controller.class, method), Controller.class), uri);
    }

    @AfterEach
    void clearScope() {
        CallScope.exitInbound();
        CallScope.exitOutbound(null);
    }

    @Test
    void aClassLevelDeclarationAppliesToEveryMethodOverTheNamedUpstreamsProperties() throws Exception {
        PolicyOverride o = resolver.forHandler(method(Controller.class, "inherits"), Controller.class);
        assertThat(o.upstream()).isEqualTo("inventory");
        GuardPolicy p = resolver.policy(o, ELSEWHERE);
        assertThat(p.responseTimeout()).isEqualTo(Duration.ofSeconds(3));
        assertThat(p.retry().maxAttempts()).isEqualTo(2);
        // Everything the annotation leaves alone comes from upstream-guard.upstreams.inventory, then defaults.
        assertThat(p.connectTimeout()).isEqualTo(registry.policy("inventory").connectTimeout());
    }

    @Test
    void aMethodLevelDeclarationWinsSettingBySettingOverTheClassLevelOne() throws Exception {
        GuardPolicy p = handlerPolicy("fewerAttempts", ELSEWHERE);
        assertThat(p.retry().maxAttempts()).isEqualTo(1);
        assertThat(p.responseTimeout()).isEqualTo(Duration.ofSeconds(3));
    }

    @Test
    void aMethodLevelUpstreamWinsOverTheClassLevelUpstream() throws Exception {
        PolicyOverride o = resolver.forHandler(method(Controller.class, "otherUpstream"), Controller.class);
        assertThat(o.upstream()).isEqualTo("orders");
        GuardPolicy p = resolver.policy(o, ELSEWHERE);
        assertThat(p.retry().enabled()).isFalse();
        // Class-level settings still apply; the base policy is now the orders upstream's.
        assertThat(p.responseTimeout()).isEqualTo(Duration.ofSeconds(3));
        assertThat(p.circuitBreaker()).isEqualTo(registry.policy("orders").circuitBreaker());
    }

    @Test
    void aMethodCanLimitItsResponseBodies() throws Exception {
        GuardPolicy p = handlerPolicy("smallBodies", ELSEWHERE);
        assertThat(p.maxResponseBody()).isEqualTo(64 * 1024);
        assertThat(handlerPolicy("inherits", ELSEWHERE).maxResponseBody()).isEqualTo(Long.MAX_VALUE);
    }

    @Test
    void placeholdersInDeclarationsAreResolvedFromTheEnvironment() throws Exception {
        assertThat(handlerPolicy("placeholder", ELSEWHERE).totalTimeout()).isEqualTo(Duration.ofMillis(750));
    }

    @Test
    void withoutAnyDeclarationThereIsNoOverride() throws Exception {
        assertThat(resolver.forHandler(method(Plain.class, "none"), Plain.class)).isNull();
        assertThat(resolver.policy(null, INVENTORY)).isNull();
    }

    @Test
    void withoutANamedUpstreamTheOverrideStartsFromThePolicyOfTheCallsUrl() throws Exception {
        PolicyOverride o = resolver.forExchange(method(Exchange.class, "inherits"));
        assertThat(o.upstream()).isNull();
        GuardPolicy toInventory = resolver.policy(o, INVENTORY);
        assertThat(toInventory.responseTimeout()).isEqualTo(Duration.ofSeconds(5));
        assertThat(toInventory.connectTimeout()).isEqualTo(Duration.ofMillis(100));
        assertThat(toInventory.retry().maxAttempts()).isEqualTo(5);
        GuardPolicy toElsewhere = resolver.policy(o, ELSEWHERE);
        assertThat(toElsewhere.responseTimeout()).isEqualTo(Duration.ofSeconds(8));
    }

    @Test
    void anExchangeMethodsDeclarationWinsOverItsInterfaceAndOverTheController() throws Exception {
        PolicyOverride outbound = resolver.forExchange(method(Exchange.class, "four"));
        PolicyOverride inbound = resolver.forHandler(method(Controller.class, "fewerAttempts"), Controller.class);
        CallScope.enterInbound(inbound);
        PolicyOverride previous = CallScope.enterOutbound(outbound);
        PolicyOverride merged = CallScope.current();
        CallScope.exitOutbound(previous);
        assertThat(merged.upstream()).isEqualTo("inventory");
        GuardPolicy p = resolver.policy(merged, ELSEWHERE);
        assertThat(p.retry().maxAttempts()).isEqualTo(4);
        assertThat(p.connectTimeout()).isEqualTo(Duration.ofMillis(100));
        assertThat(p.responseTimeout()).isEqualTo(Duration.ofSeconds(3));
        assertThat(CallScope.current()).isEqualTo(inbound);
    }

    @Test
    void theHttpContextCarriesTheUpstreamAndThePolicyOnlyWhileADeclarationIsInForce() throws Exception {
        GuardedHttpContextFactory factory = new GuardedHttpContextFactory(resolver);
        assertThat(factory.apply(HttpMethod.GET, INVENTORY)).isNull();
        CallScope.enterInbound(resolver.forHandler(method(Controller.class, "fewerAttempts"), Controller.class));
        HttpContext context = factory.apply(HttpMethod.GET, ELSEWHERE);
        assertThat(context.getAttribute(GuardedHttpClient.UPSTREAM_ATTRIBUTE)).isEqualTo("inventory");
        assertThat(((GuardPolicy) context.getAttribute(GuardedHttpClient.POLICY_ATTRIBUTE)).retry().maxAttempts())
                .isEqualTo(1);
        CallScope.exitInbound();
        assertThat(factory.apply(HttpMethod.GET, INVENTORY)).isNull();
    }

    @UpstreamPolicy("nope")
    static class UnknownUpstream {
        void call() {
        }
    }

    static class BadDuration {
        @UpstreamPolicy(responseTimeout = "soon")
        void call() {
        }
    }

    @Test
    void aDeclarationNamingAnUnknownUpstreamIsRejectedNamingWhereItIs() throws Exception {
        assertThatThrownBy(() -> resolver.forHandler(method(UnknownUpstream.class, "call"), UnknownUpstream.class))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("UnknownUpstream")
                .hasMessageContaining("'nope'");
    }

    /**
     * Regression: a route to a uri is an upstream of its own, named after the route (Actuator, health and meters show
     * it so, and calls to its address run as it), yet a declaration naming it failed start-up as an unknown upstream.
     */
    @Test
    void aDeclarationMayNameTheUpstreamOfARouteToAUri() throws Exception {
        PolicyOverride o = resolver.forHandler(method(RouteUpstream.class, "call"), RouteUpstream.class);
        assertThat(o.upstream()).isEqualTo("status");
        GuardPolicy p = resolver.policy(o, ELSEWHERE);
        assertThat(p.responseTimeout()).isEqualTo(Duration.ofSeconds(1));
        assertThat(p.retry().maxAttempts()).isEqualTo(2);
        assertThatThrownBy(() -> resolver.forHandler(method(UnknownUpstream.class, "call"), UnknownUpstream.class))
                .hasMessageContaining("inventory").hasMessageContaining("status");
    }

    @org.springframework.web.bind.annotation.RestController
    static class RouteUpstream {
        @UpstreamPolicy(upstream = "status", maxAttempts = 2)
        void call() {
        }
    }

    @Test
    void aDeclarationWithABadDurationIsRejectedNamingTheMethodAndTheSetting() throws Exception {
        assertThatThrownBy(() -> resolver.forHandler(method(BadDuration.class, "call"), BadDuration.class))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("BadDuration#call")
                .hasMessageContaining("response-timeout").hasMessageContaining("soon");
    }

    /** A composed annotation: the library's attributes, some fixed, some aliased. */
    @java.lang.annotation.Retention(java.lang.annotation.RetentionPolicy.RUNTIME)
    @UpstreamPolicy(upstream = "inventory", maxAttempts = 2)
    @interface InventoryCall {
        @org.springframework.core.annotation.AliasFor(annotation = UpstreamPolicy.class)
        String responseTimeout() default "";
    }

    interface StockApi {
        @UpstreamPolicy(totalTimeout = "4s")
        void stock();
    }

    @InventoryCall(responseTimeout = "1500ms")
    static class ComposedController implements StockApi {
        @Override
        public void stock() {
        }
    }

    @Test
    void composedAnnotationsAndDeclarationsOnAnImplementedInterfaceMethodApply() throws Exception {
        PolicyOverride o = resolver.forHandler(ComposedController.class.getMethod("stock"), ComposedController.class);
        assertThat(o.upstream()).isEqualTo("inventory");
        assertThat(o.settings()).containsEntry("response-timeout", "1500ms").containsEntry("retry.max-attempts", "2")
                .containsEntry("total-timeout", "4s");
    }

    static class MissingPlaceholder {
        @UpstreamPolicy(responseTimeout = "${stock.slow-timeout}")
        void call() {
        }
    }

    @Test
    void aPlaceholderWithoutAValueIsRejectedNamingTheMethodAndTheSetting() throws Exception {
        assertThatThrownBy(() -> resolver.forHandler(method(MissingPlaceholder.class, "call"), MissingPlaceholder.class))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("MissingPlaceholder#call")
                .hasMessageContaining("responseTimeout").hasMessageContaining("stock.slow-timeout");
    }

    @Configuration(proxyBeanMethods = false)
    static class AppWithUnknownUpstream {
        @Bean
        UnknownUpstream controller() {
            return new UnknownUpstream();
        }
    }

    @Configuration(proxyBeanMethods = false)
    static class AppWithBadExchange {
        interface BadClient {
            @UpstreamPolicy(totalTimeout = "-3s")
            void call();
        }

        @Bean
        BadClient badClient() {
            return () -> { };
        }
    }

    @Configuration(proxyBeanMethods = false)
    static class AppWithInheritedExchange {
        interface CrudClient {
            @org.springframework.web.service.annotation.GetExchange("/{id}")
            String get(String id);
        }

        /** Its declaration could never reach get(): Spring's processor sees only CrudClient#get. */
        @UpstreamPolicy(maxAttempts = 1)
        interface OrdersClient extends CrudClient {
        }

        @Bean
        OrdersClient ordersClient() {
            return id -> id;
        }
    }

    @Configuration(proxyBeanMethods = false)
    static class AppWithRedeclaredExchange {
        @UpstreamPolicy(maxAttempts = 1)
        interface OrdersClient extends AppWithInheritedExchange.CrudClient {
            @Override
            @org.springframework.web.service.annotation.GetExchange("/{id}")
            String get(String id);
        }

        @Bean
        OrdersClient ordersClient() {
            return id -> id;
        }
    }

    @Test
    void aTypeLevelDeclarationThatCannotReachAnInheritedExchangeMethodFailsStartUp() {
        ApplicationContextRunner runner = new ApplicationContextRunner()
                .withConfiguration(AutoConfigurations.of(UpstreamGuardAutoConfiguration.class));
        runner.withUserConfiguration(AppWithInheritedExchange.class).run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).hasMessageContaining("OrdersClient")
                    .hasMessageContaining("CrudClient#get");
        });
        runner.withUserConfiguration(AppWithRedeclaredExchange.class).run(context -> {
            assertThat(context).hasNotFailed();
            Method get = AppWithRedeclaredExchange.OrdersClient.class.getMethod("get", String.class);
            assertThat(context.getBean(UpstreamPolicyResolver.class).forExchange(get).settings())
                    .containsEntry("retry.max-attempts", "1");
        });
    }

    @Test
    void anInvalidDeclarationOnABeanFailsStartUp() {
        ApplicationContextRunner runner = new ApplicationContextRunner()
                .withConfiguration(AutoConfigurations.of(UpstreamGuardAutoConfiguration.class));
        runner.withUserConfiguration(AppWithUnknownUpstream.class).run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).hasMessageContaining("'nope'");
        });
        runner.withUserConfiguration(AppWithBadExchange.class).run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).hasMessageContaining("AppWithBadExchange")
                    .hasMessageContaining("#call").hasMessageContaining("total-timeout").hasMessageContaining("-3s");
        });
    }

    @Configuration(proxyBeanMethods = false)
    static class AppWithAnnotatedService {
        /** Not a controller: nothing ever puts this declaration in force. */
        static class StockService {
            @UpstreamPolicy(maxAttempts = 1)
            public String stock() {
                return "";
            }
        }

        @Bean
        StockService stockService() {
            return new StockService();
        }
    }

    @Configuration(proxyBeanMethods = false)
    static class AppWithAnInheritedDeclaration {
        /** Declares the policy; the subclass's override maps the request and inherits the declaration. */
        static class BaseController {
            @UpstreamPolicy(maxAttempts = 1)
            public String stock() {
                return "";
            }
        }

        @org.springframework.web.bind.annotation.RestController
        static class StockController extends BaseController {
            @Override
            @org.springframework.web.bind.annotation.GetMapping("/stock")
            public String stock() {
                return "";
            }
        }

        @Bean
        StockController stockController() {
            return new StockController();
        }
    }

    @Configuration(proxyBeanMethods = false)
    static class AppWithAnnotatedServiceClass {
        @UpstreamPolicy("inventory")
        static class InventoryService {
            public String stock() {
                return "";
            }
        }

        @Bean
        InventoryService inventoryService() {
            return new InventoryService();
        }
    }

    @Configuration(proxyBeanMethods = false)
    static class AppWithAnnotatedHandlers {
        @org.springframework.web.bind.annotation.RestController
        @UpstreamPolicy(maxAttempts = 2)
        static class StockController {
            @org.springframework.web.bind.annotation.GetMapping("/stock")
            @UpstreamPolicy(maxAttempts = 1)
            public String stock() {
                return helper();
            }

            String helper() {
                return "";
            }
        }

        /** Spring MVC maps @HttpExchange methods of a controller as it maps @RequestMapping ones. */
        @org.springframework.web.bind.annotation.RestController
        @UpstreamPolicy(maxAttempts = 2)
        static class ExchangeMappedController {
            @org.springframework.web.service.annotation.GetExchange("/orders")
            @UpstreamPolicy(maxAttempts = 1)
            public String orders() {
                return "";
            }
        }

        @Bean
        ExchangeMappedController exchangeMappedController() {
            return new ExchangeMappedController();
        }

        /** A hand-written implementation of an annotated client (a stub, say) is not a misplaced declaration. */
        @Bean
        AppWithRedeclaredExchange.OrdersClient stub() {
            return id -> id;
        }

        @Bean
        StockController stockController() {
            return new StockController();
        }
    }

    @Test
    void aDeclarationOnABeanThatIsNeitherAControllerNorAnHttpExchangeClientFailsStartUp() {
        ApplicationContextRunner runner = new ApplicationContextRunner()
                .withConfiguration(AutoConfigurations.of(UpstreamGuardAutoConfiguration.class))
                .withPropertyValues("upstream-guard.upstreams.inventory.url=http://127.0.0.1:8081");
        runner.withUserConfiguration(AppWithAnnotatedService.class).run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).hasMessageContaining("StockService#stock")
                    .hasMessageContaining("never applies");
        });
        runner.withUserConfiguration(AppWithAnnotatedServiceClass.class).run(context -> {
            assertThat(context).hasFailed();
            assertThat(context.getStartupFailure()).hasMessageContaining("InventoryService")
                    .hasMessageContaining("never applies");
        });
        new org.springframework.boot.test.context.runner.WebApplicationContextRunner()
                .withConfiguration(AutoConfigurations.of(UpstreamGuardAutoConfiguration.class))
                .withUserConfiguration(AppWithAnnotatedHandlers.class)
                .run(context -> assertThat(context).hasNotFailed());
    }

    /**
     * Regression: the placement check also looked at the superclass's method an override maps, found no mapping on it
     * and failed start-up, though the handler inherits that declaration.
     */
    @Test
    void aDeclarationOnAMethodTheHandlerOverridesIsNotMisplaced() {
        new org.springframework.boot.test.context.runner.WebApplicationContextRunner()
                .withConfiguration(AutoConfigurations.of(UpstreamGuardAutoConfiguration.class))
                .withUserConfiguration(AppWithAnInheritedDeclaration.class)
                .run(context -> assertThat(context).hasNotFailed());
    }

    @Test
    void aControllersDeclarationDoesNotFailStartUpWithoutAWebServer() {
        // A test with webEnvironment = NONE, or a batch run of the same application: no request to apply it to.
        new ApplicationContextRunner().withConfiguration(AutoConfigurations.of(UpstreamGuardAutoConfiguration.class))
                .withUserConfiguration(AppWithAnnotatedHandlers.class)
                .run(context -> assertThat(context).hasNotFailed());
    }

    @Configuration(proxyBeanMethods = false)
    static class AppWithAnnotatedDefaultMethod {
        interface StockClient {
            @org.springframework.web.service.annotation.GetExchange("/stock/{sku}")
            String stock(String sku);

            /** The proxy runs a default method itself: the processor sees only stock(), under its own declaration. */
            @UpstreamPolicy(maxAttempts = 1)
            default String firstStock() {
                return stock("1");
            }
        }

        @Bean
        StockClient stockClient() {
            return org.springframework.web.service.invoker.HttpServiceProxyFactory
                    .builderFor(org.springframework.web.client.support.RestClientAdapter.create(
                            org.springframework.web.client.RestClient.create("http://127.0.0.1:8081")))
                    .build().createClient(StockClient.class);
        }
    }

    @Test
    void aDeclarationOnADefaultMethodOfAnHttpExchangeClientFailsStartUp() {
        new ApplicationContextRunner().withConfiguration(AutoConfigurations.of(UpstreamGuardAutoConfiguration.class))
                .withUserConfiguration(AppWithAnnotatedDefaultMethod.class).run(context -> {
                    assertThat(context).hasFailed();
                    assertThat(context.getStartupFailure()).hasMessageContaining("StockClient#firstStock")
                            .hasMessageContaining("never applies");
                });
    }
}
