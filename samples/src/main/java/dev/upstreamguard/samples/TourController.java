package dev.upstreamguard.samples;

import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.core.env.Environment;
import org.springframework.http.MediaType;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/** {@code /tour}: runs the {@link Tour} against this application and shows the table. */
@RestController
@ConditionalOnProperty(EmbeddedUpstreamEnvironment.PORT_PROPERTY)
public class TourController {

    private final Environment environment;

    TourController(Environment environment) {
        this.environment = environment;
    }

    /** The tour as an HTML page. */
    @GetMapping(path = "/tour", produces = MediaType.TEXT_HTML_VALUE)
    String html() {
        return Tour.html(tour().run());
    }

    /** The tour as a plain-text table. */
    @GetMapping(path = "/tour", produces = MediaType.TEXT_PLAIN_VALUE)
    String text() {
        return Tour.table(tour().run());
    }

    private Tour tour() {
        return new Tour(SampleApplication.base(environment));
    }
}
