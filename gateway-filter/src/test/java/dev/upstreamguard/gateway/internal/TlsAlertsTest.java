package dev.upstreamguard.gateway.internal;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import javax.net.ssl.SSLHandshakeException;
import org.junit.jupiter.api.Test;

class TlsAlertsTest {

    @Test
    void theAlertIsReadFromEachOfTheJdksWordings() {
        assertThat(TlsAlerts.parse("Received fatal alert: handshake_failure"))
                .isEqualTo(new TlsAlerts.Alert("handshake_failure", 40));
        assertThat(TlsAlerts.parse("(certificate_required) Received fatal alert: certificate_required"))
                .isEqualTo(new TlsAlerts.Alert("certificate_required", 116));
        assertThat(TlsAlerts.parse("received handshake warning: unrecognized_name"))
                .isEqualTo(new TlsAlerts.Alert("unrecognized_name", 112));
        assertThat(TlsAlerts.parse("Received close_notify during handshake"))
                .isEqualTo(new TlsAlerts.Alert("close_notify", 0));
    }

    @Test
    void noAlertIsMadeUpFromOtherWords() {
        assertThat(TlsAlerts.parse("Received fatal alert: something_new")).isNull();
        assertThat(TlsAlerts.parse("Unknown alert description (255)")).isNull();
        assertThat(TlsAlerts.parse("Remote host terminated the handshake")).isNull();
        assertThat(TlsAlerts.received(new IOException("Received fatal alert: handshake_failure"))).isNull();
    }

    @Test
    void theFirstTlsExceptionInTheCauseChainCounts() {
        IOException wrapped = new IOException("wrapper",
                new SSLHandshakeException("Received fatal alert: protocol_version"));
        assertThat(TlsAlerts.received(wrapped)).isEqualTo(new TlsAlerts.Alert("protocol_version", 70));
    }
}
