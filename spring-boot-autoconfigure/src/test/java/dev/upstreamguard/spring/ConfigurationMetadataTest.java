package dev.upstreamguard.spring;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.InputStream;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.boot.json.JsonParserFactory;

/** The configuration metadata IDEs complete {@code upstream-guard.*} from is built, whatever JDK builds it. */
class ConfigurationMetadataTest {

    @Test
    void theMetadataGeneratedFromThePropertiesClassIsShipped() throws Exception {
        List<Map<?, ?>> ours = new ArrayList<>();
        for (URL url : Collections.list(getClass().getClassLoader()
                .getResources("META-INF/spring-configuration-metadata.json"))) {
            try (InputStream in = url.openStream()) {
                for (Object p : (List<?>) JsonParserFactory.getJsonParser()
                        .parseMap(new String(in.readAllBytes(), StandardCharsets.UTF_8)).get("properties")) {
                    Map<?, ?> property = (Map<?, ?>) p;
                    if (String.valueOf(property.get("name")).startsWith("upstream-guard.")) {
                        ours.add(property);
                    }
                }
            }
        }
        // Only the annotation processor writes these (from UpstreamGuardProperties and its Javadoc); the hand-written
        // additional metadata holds the defaults' values alone.
        assertThat(ours).filteredOn(p -> "upstream-guard.proxy-name".equals(p.get("name")))
                .singleElement()
                .satisfies(p -> assertThat(p.get("type")).isEqualTo("java.lang.String"))
                .satisfies(p -> assertThat((String) p.get("description")).isNotBlank());
        assertThat(ours).extracting(p -> (Object) p.get("name"))
                .contains("upstream-guard.enabled", "upstream-guard.upstreams", "upstream-guard.routes");
    }
}
