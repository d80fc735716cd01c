package dev.upstreamguard.spring.internal;

import org.springframework.boot.autoconfigure.condition.ConditionOutcome;
import org.springframework.boot.autoconfigure.condition.SpringBootCondition;
import org.springframework.boot.context.properties.source.InvalidConfigurationPropertyValueException;
import org.springframework.context.annotation.ConditionContext;
import org.springframework.core.convert.ConversionException;
import org.springframework.core.type.AnnotatedTypeMetadata;

/**
 * Matches unless {@code upstream-guard.enabled} is false. Unlike {@code @ConditionalOnBooleanProperty}, which reads any
 * value but "true" as false, a value that is not a boolean fails start-up naming it: an empty one (say
 * {@code ${GUARD_ENABLED:}} with the variable unset) or a typo would otherwise switch the guard off, and with it every
 * check of the other {@code upstream-guard.*} values, without a word.
 */
public final class OnUpstreamGuardEnabled extends SpringBootCondition {

    /** The property switching the auto-configuration on and off. */
    public static final String PROPERTY = "upstream-guard.enabled";

    @Override
    public ConditionOutcome getMatchOutcome(ConditionContext context, AnnotatedTypeMetadata metadata) {
        String value = context.getEnvironment().getProperty(PROPERTY);
        if (value == null) {
            return ConditionOutcome.match(PROPERTY + " is not set");
        }
        Boolean enabled;
        try {
            // Spring's own reading of a boolean, as the binder does for every other switch: true/false, on/off, yes/no.
            enabled = context.getEnvironment().getProperty(PROPERTY, Boolean.class);
        } catch (ConversionException | IllegalArgumentException e) {
            enabled = null;
        }
        if (enabled == null) {
            throw new InvalidConfigurationPropertyValueException(PROPERTY, value, "must be true or false");
        }
        return enabled ? ConditionOutcome.match(PROPERTY + " is " + value)
                : ConditionOutcome.noMatch(PROPERTY + " is " + value);
    }
}
