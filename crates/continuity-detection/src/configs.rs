//! The tenant configurations the benchmark measures, written as an
//! administrator writes them (JSON), so the report can quote them and they
//! keep meaning the same when the configuration types change.

use continuity_core::{
    Result, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
};

/// One configuration under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Configuration {
    /// Short name (tables, file names).
    pub name: &'static str,
    /// The per-direction settings, as JSON (`{}`: the defaults).
    pub direction: &'static str,
}

/// The defaults: nothing chosen by the administrator (the flow detector
/// alone; no absolute threshold is on by default).
pub const DEFAULTS: Configuration = Configuration {
    name: "defaults",
    direction: "{}",
};

/// The quickstart's: a p95 latency limit of 15 min instead of 30 (the
/// flow detector on, as in every configuration that does not turn it off).
pub const QUICKSTART: Configuration = Configuration {
    name: "p95-15m",
    direction: r#"{"latency": {"statistic": "p95", "limit": "15m"}}"#,
};

/// Every configuration of the report, the defaults first.
pub const ALL: [Configuration; 7] = [
    DEFAULTS,
    Configuration {
        name: "absolute-only",
        // The defaults before the learned baseline: 3 failures in the hour,
        // p95 over 30 min; for comparison.
        direction: r#"{"flow": "off", "failures": {"count": 3}, "latency": {"statistic": "p95", "limit": "30m"}}"#,
    },
    QUICKSTART,
    Configuration {
        name: "p95-5m",
        // A tight latency limit: pending probes count as overdue after 5
        // minutes, so a slowdown is seen before the first slow probe lands.
        direction: r#"{"latency": {"statistic": "p95", "limit": "5m"}}"#,
    },
    Configuration {
        name: "leaky-2m-5",
        // The gateway vendors' counter as issue 14 tried it, alone.
        direction: r#"{"latency": null, "flow": "off", "leaky": {"period": "2m", "threshold": 5, "acceptable_latency": "10m"}}"#,
    },
    Configuration {
        name: "flow-1e-6",
        // The flow detector at ten times the defaults' false-alarm rate: what
        // the goals the defaults miss on a seed would cost.
        direction: r#"{"flow": {"significance": 1e-6}}"#,
    },
    Configuration {
        name: "rate-10pct",
        // An absolute rate on top of the flow detector (the older nested form).
        direction: r#"{"failures": {"limit": {"rate": 0.1}, "min_samples": 20}}"#,
    },
];

impl Configuration {
    /// The tenant configuration: these settings on both directions, one SMS
    /// recipient.
    pub fn tenant_config(&self, tenant: &TenantId) -> Result<TenantConfig> {
        let direction: serde_json::Value = serde_json::from_str(self.direction)
            .map_err(|e| continuity_core::Error::config("direction", e.to_string()))?;
        let mut config = serde_json::to_value(TenantConfig::new(
            tenant.clone(),
            vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")],
        ))
        .map_err(|e| continuity_core::Error::config("tenant", e.to_string()))?;
        config["inbound"] = direction.clone();
        config["outbound"] = direction;
        let config: TenantConfig = serde_json::from_value(config)
            .map_err(|e| continuity_core::Error::config(self.name, e.to_string()))?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_is_accepted_and_defaults_are_the_code_defaults() {
        let t = TenantId::new("bench").unwrap();
        for c in ALL {
            c.tenant_config(&t).unwrap();
        }
        let defaults = DEFAULTS.tenant_config(&t).unwrap();
        let code = TenantConfig::new(
            t,
            vec![Recipient::new("ops-sms", ChannelKind::Sms, "+15550100")],
        );
        assert_eq!(defaults, code);
    }
}
