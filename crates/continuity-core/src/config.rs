//! Tenant configuration: thresholds per direction, probes, alert cadence,
//! recipients and continuity-event limits.
//!
//! Everything deserialises with serde (unknown fields are refused, so a typo
//! is an error rather than a silently ignored setting) and is checked by
//! [`TenantConfig::validate`], whose errors name the offending field.
//! Durations are written as seconds or as `"5m"`, `"1h30m"` (see
//! [`crate::duration`]).
//!
//! ```
//! use continuity_core::config::TenantConfig;
//!
//! let config: TenantConfig = serde_json::from_str(r#"{
//!     "tenant": "acme",
//!     "outbound": { "latency": { "statistic": "p95", "limit": "30m" } },
//!     "recipients": [ { "id": "ops-sms", "channel": "sms", "address": "+15550100" } ]
//! }"#).unwrap();
//! config.validate().unwrap();
//! assert_eq!(config.repeat_interval.as_secs(), 3600);
//! ```

use std::{collections::HashSet, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    domain::{Direction, TenantId},
    duration::serde_duration,
    error::{Error, Result},
    machine::Rules,
    policy::{FailureThreshold, FlowThreshold, LatencyThreshold, LeakyThreshold, PolicySelection},
    time_zone::TimeZone,
};

pub use crate::machine::EventLimits;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Everything the monitor needs to know about one tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's id.
    pub tenant: TenantId,
    /// A name for messages (default: the id).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Thresholds for gateway → organisation.
    #[serde(default)]
    pub inbound: DirectionConfig,
    /// Thresholds for organisation → gateway.
    #[serde(default)]
    pub outbound: DirectionConfig,
    /// Active probing.
    #[serde(default)]
    pub probes: ProbeConfig,
    /// How often an alert repeats while a condition holds (default 1 h).
    #[serde(default = "default_repeat", with = "serde_duration")]
    pub repeat_interval: Duration,
    /// Who is alerted (at least one).
    pub recipients: Vec<Recipient>,
    /// Limits on continuity events and suspensions.
    #[serde(default)]
    pub limits: EventLimits,
    /// The IANA time zone the organisation's administrators read times in:
    /// alert messages and the portal's pages write times in it, and the
    /// portal reads the times typed into its forms in it (default `"UTC"`).
    /// See [`time_zone`](crate::time_zone).
    #[serde(default)]
    pub time_zone: TimeZone,
}

fn default_repeat() -> Duration {
    HOUR
}

impl TenantConfig {
    /// A configuration with the defaults and the given recipients.
    pub fn new(tenant: TenantId, recipients: Vec<Recipient>) -> Self {
        TenantConfig {
            tenant,
            display_name: None,
            inbound: DirectionConfig::default(),
            outbound: DirectionConfig::default(),
            probes: ProbeConfig::default(),
            repeat_interval: default_repeat(),
            recipients,
            limits: EventLimits::default(),
            time_zone: TimeZone::UTC,
        }
    }

    /// The per-direction configuration.
    pub fn direction(&self, direction: Direction) -> &DirectionConfig {
        match direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }

    /// The name used in messages.
    pub fn name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(self.tenant.as_str())
    }

    /// The rules the state machine applies for this tenant.
    pub fn rules(&self) -> Rules {
        Rules {
            hysteresis: [
                (self.inbound.raise_after, self.inbound.clear_after),
                (self.outbound.raise_after, self.outbound.clear_after),
            ],
            repeat_interval: self.repeat_interval,
            limits: self.limits.clone(),
            time_zone: self.time_zone,
        }
    }

    /// Checks every value; the error names the first offending field.
    pub fn validate(&self) -> Result<()> {
        self.inbound.validate("inbound")?;
        self.outbound.validate("outbound")?;
        self.probes.validate()?;
        self.limits.validate()?;
        if self.repeat_interval < MINUTE {
            return Err(Error::config(
                "repeat_interval",
                "must be at least 1 minute",
            ));
        }
        if self.recipients.is_empty() {
            return Err(Error::config(
                "recipients",
                "at least one recipient is needed, or alerts reach nobody",
            ));
        }
        let mut seen = HashSet::new();
        for (i, r) in self.recipients.iter().enumerate() {
            r.validate(&format!("recipients[{i}]"))?;
            if !seen.insert(r.id.as_str()) {
                return Err(Error::config(
                    format!("recipients[{i}].id"),
                    format!("duplicate recipient id {:?}", r.id),
                ));
            }
        }
        if let Some(name) = &self.display_name
            && (name.trim().is_empty() || name.len() > 200)
        {
            return Err(Error::config("display_name", "must be 1 to 200 characters"));
        }
        Ok(())
    }
}

/// Thresholds and hysteresis for one direction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionConfig {
    /// The window the latency and failure thresholds look at (default 1 h).
    #[serde(default = "default_window", with = "serde_duration")]
    pub window: Duration,
    /// An absolute latency limit, e.g. p95 over 30 min (default `"off"`:
    /// the flow detector judges latency against what is normal for the
    /// tenant). It judges deliveries when they land, so after an outage the
    /// mail it held, landing late, keeps it raised for its `window`.
    /// `"off"` (or JSON's `null`) turns it off.
    #[serde(default = "default_latency", with = "off_switch")]
    pub latency: Option<LatencyThreshold>,
    /// The default detector: failures and latency against the direction's
    /// learned baseline (default on, with [`FlowThreshold`]'s defaults);
    /// `"off"` (or JSON's `null`) turns it off.
    #[serde(default = "default_flow", with = "off_switch")]
    pub flow: Option<FlowThreshold>,
    /// An absolute failure threshold, e.g. `{"count": 3}` failures in the
    /// window or `{"rate": 0.25}` (default `"off"`: the flow detector
    /// judges failures against what is normal for the tenant).
    #[serde(default, with = "off_switch")]
    pub failures: Option<FailureThreshold>,
    /// The gateway-style leaky counter (default `"off"`).
    #[serde(default, with = "off_switch")]
    pub leaky: Option<LeakyThreshold>,
    /// Policies registered with the monitor
    /// ([`MonitorBuilder::policy`](crate::MonitorBuilder::policy)),
    /// selected by name with their own parameters (default none):
    /// `[{"name": "my-policy", "params": {...}}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicySelection>,
    /// Consecutive breached evaluations before a condition raises (default
    /// 2). Not for a policy whose verdicts hold their own hysteresis, such
    /// as the flow detector ([`ThresholdPolicy::debounced`](crate::policy::ThresholdPolicy::debounced)).
    #[serde(default = "default_raise_after")]
    pub raise_after: u32,
    /// Consecutive healthy evaluations before a raised condition clears
    /// (default 3; not for a debounced policy either).
    #[serde(default = "default_clear_after")]
    pub clear_after: u32,
}

fn default_window() -> Duration {
    HOUR
}
fn default_latency() -> Option<LatencyThreshold> {
    None
}
fn default_flow() -> Option<FlowThreshold> {
    Some(FlowThreshold::default())
}
fn default_raise_after() -> u32 {
    2
}
fn default_clear_after() -> u32 {
    3
}

impl Default for DirectionConfig {
    fn default() -> Self {
        DirectionConfig {
            window: default_window(),
            latency: default_latency(),
            flow: default_flow(),
            failures: None,
            leaky: None,
            policies: Vec::new(),
            raise_after: default_raise_after(),
            clear_after: default_clear_after(),
        }
    }
}

impl DirectionConfig {
    fn validate(&self, prefix: &str) -> Result<()> {
        if self.window.is_zero() {
            return Err(Error::config(
                format!("{prefix}.window"),
                "must be greater than 0",
            ));
        }
        if self.window < MINUTE || self.window > 7 * DAY {
            return Err(Error::config(
                format!("{prefix}.window"),
                "must be between 1 minute and 7 days",
            ));
        }
        if let Some(l) = &self.latency {
            l.validate(&format!("{prefix}.latency"))?;
        }
        if let Some(f) = &self.failures {
            f.validate(&format!("{prefix}.failures"))?;
        }
        if let Some(f) = &self.flow {
            f.validate(&format!("{prefix}.flow"))?;
        }
        if let Some(l) = &self.leaky {
            l.validate(&format!("{prefix}.leaky"))?;
        }
        let mut names = HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            let name = p.name.as_str();
            if name.trim().is_empty() {
                return Err(Error::config(
                    format!("{prefix}.policies[{i}].name"),
                    "must name a policy registered with the monitor",
                ));
            }
            if ["latency", "failures", "leaky", "flow"].contains(&name) {
                return Err(Error::config(
                    format!("{prefix}.policies[{i}].name"),
                    format!("{name:?} is built in: configure it with {prefix}.{name}"),
                ));
            }
            if !names.insert(name) {
                return Err(Error::config(
                    format!("{prefix}.policies[{i}].name"),
                    format!("policy {name:?} is selected twice"),
                ));
            }
        }
        if self.raise_after == 0 {
            return Err(Error::config(
                format!("{prefix}.raise_after"),
                "must be at least 1",
            ));
        }
        if self.clear_after == 0 {
            return Err(Error::config(
                format!("{prefix}.clear_after"),
                "must be at least 1",
            ));
        }
        if self.raise_after > 1000 || self.clear_after > 1000 {
            return Err(Error::config(
                format!("{prefix}.raise_after"),
                "raise_after and clear_after must be at most 1000 evaluations",
            ));
        }
        Ok(())
    }
}

/// Active probing settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Probe the inbound direction (default true, when a probe is installed).
    #[serde(default = "yes")]
    pub inbound: bool,
    /// Probe the outbound direction (default true, when a probe is installed).
    #[serde(default = "yes")]
    pub outbound: bool,
    /// Time between two probes of a direction (default 5 min).
    #[serde(default = "default_probe_interval", with = "serde_duration")]
    pub interval: Duration,
    /// A probe not found by this time after sending counts as lost (default 30 min).
    #[serde(default = "default_probe_deadline", with = "serde_duration")]
    pub deadline: Duration,
    /// Time between two checks of a pending probe (default 1 min).
    #[serde(default = "default_check_interval", with = "serde_duration")]
    pub check_interval: Duration,
}

fn yes() -> bool {
    true
}
fn default_probe_interval() -> Duration {
    5 * MINUTE
}
fn default_probe_deadline() -> Duration {
    30 * MINUTE
}
fn default_check_interval() -> Duration {
    MINUTE
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            inbound: true,
            outbound: true,
            interval: default_probe_interval(),
            deadline: default_probe_deadline(),
            check_interval: default_check_interval(),
        }
    }
}

impl ProbeConfig {
    /// Whether `direction` is probed.
    pub fn enabled(&self, direction: Direction) -> bool {
        match direction {
            Direction::Inbound => self.inbound,
            Direction::Outbound => self.outbound,
        }
    }

    fn validate(&self) -> Result<()> {
        // Exchange throttles a mailbox that sends too fast; a probe a minute is plenty.
        if self.interval < MINUTE {
            return Err(Error::config(
                "probes.interval",
                "must be at least 1 minute",
            ));
        }
        if self.deadline.is_zero() || self.deadline > DAY {
            return Err(Error::config(
                "probes.deadline",
                "must be between 1 second and 1 day",
            ));
        }
        if self.check_interval < Duration::from_secs(5) || self.check_interval > self.deadline {
            return Err(Error::config(
                "probes.check_interval",
                "must be at least 5 seconds and at most the deadline",
            ));
        }
        Ok(())
    }
}

/// How a recipient is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// A text message to a phone number.
    Sms,
    /// An e-mail to an external address (never through the organisation's own server).
    Email,
    /// An HTTPS POST to a URL.
    Webhook,
}

impl ChannelKind {
    /// `"sms"`, `"email"` or `"webhook"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Sms => "sms",
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
        }
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One person or system that receives alerts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// Stable id (1–64 characters of `A-Za-z0-9._-`); portal links are bound to it.
    pub id: String,
    /// A person's name, for messages and the audit log.
    #[serde(default)]
    pub name: Option<String>,
    /// The channel.
    pub channel: ChannelKind,
    /// Phone number in E.164 form (`+15550100`), e-mail address, or `https://` URL.
    pub address: String,
    /// Other ways to reach the same recipient, tried in order when delivery
    /// over [`channel`](Self::channel) fails for good (default none). The
    /// alert, its link and its idempotency key stay this recipient's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<Fallback>,
}

/// A fallback channel and address of a [`Recipient`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fallback {
    /// The channel.
    pub channel: ChannelKind,
    /// The address on that channel, in the same form as [`Recipient::address`].
    pub address: String,
}

/// At most this many fallbacks per recipient: each one is tried in turn.
const MAX_FALLBACKS: usize = 4;

impl Recipient {
    /// A recipient reached over `channel` at `address`.
    pub fn new(id: impl Into<String>, channel: ChannelKind, address: impl Into<String>) -> Self {
        Recipient {
            id: id.into(),
            name: None,
            channel,
            address: address.into(),
            fallback: Vec::new(),
        }
    }

    /// Adds a fallback channel and address (see [`Recipient::fallback`]).
    pub fn with_fallback(mut self, channel: ChannelKind, address: impl Into<String>) -> Self {
        self.fallback.push(Fallback {
            channel,
            address: address.into(),
        });
        self
    }

    fn validate(&self, prefix: &str) -> Result<()> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(Error::config(
                format!("{prefix}.id"),
                "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
            ));
        }
        check_address(self.channel, &self.address, &format!("{prefix}.address"))?;
        if self.fallback.len() > MAX_FALLBACKS {
            return Err(Error::config(
                format!("{prefix}.fallback"),
                format!("at most {MAX_FALLBACKS} fallbacks"),
            ));
        }
        for (i, f) in self.fallback.iter().enumerate() {
            let field = format!("{prefix}.fallback[{i}]");
            check_address(f.channel, &f.address, &format!("{field}.address"))?;
            if f.channel == self.channel && f.address == self.address {
                return Err(Error::config(
                    field,
                    "repeats the recipient's own channel and address",
                ));
            }
        }
        Ok(())
    }
}

fn check_address(channel: ChannelKind, a: &str, field: &str) -> Result<()> {
    let ok = match channel {
        ChannelKind::Sms => {
            a.len() >= 8
                && a.len() <= 16
                && a.starts_with('+')
                && a[1..].bytes().all(|b| b.is_ascii_digit())
        }
        ChannelKind::Email => {
            let mut parts = a.splitn(2, '@');
            let (local, domain) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !a.chars().any(|c| c.is_whitespace() || c.is_control())
                && a.len() <= 254
        }
        ChannelKind::Webhook => {
            a.starts_with("https://") && a.len() > 8 && !a.chars().any(char::is_whitespace)
        }
    };
    if !ok {
        let expected = match channel {
            ChannelKind::Sms => "a phone number in E.164 form, e.g. +15550100",
            ChannelKind::Email => "an e-mail address such as ops@example.net",
            ChannelKind::Webhook => "an https:// URL",
        };
        return Err(Error::config(field, format!("{a:?} is not {expected}")));
    }
    Ok(())
}

/// A threshold in configuration, or `"off"`: TOML has no `null`, so a
/// threshold that is on by default needs a value that switches it off in
/// every format. JSON's `null` is read as off too; off is written `"off"`.
mod off_switch {
    use std::{fmt, marker::PhantomData};

    use serde::{
        Deserialize, Deserializer, Serialize, Serializer,
        de::{self, MapAccess, Unexpected, value::MapAccessDeserializer},
    };

    /// The word that switches a threshold off.
    const OFF: &str = "off";

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(threshold) => threshold.serialize(serializer),
            None => serializer.serialize_str(OFF),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        deserializer.deserialize_any(Visitor(PhantomData))
    }

    struct Visitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> de::Visitor<'de> for Visitor<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a threshold's settings, or \"off\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.trim().eq_ignore_ascii_case(OFF) {
                Ok(None)
            } else {
                Err(E::invalid_value(Unexpected::Str(v), &self))
            }
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            // The threshold's own deserialiser reads the map, so its errors
            // (an unknown field, a bad duration) come through unchanged.
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FailureLimit;

    fn base() -> TenantConfig {
        TenantConfig::new(
            TenantId::new("acme").unwrap(),
            vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
        )
    }

    fn field_of(r: Result<()>) -> String {
        match r {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        base().validate().unwrap();
    }

    #[test]
    fn invalid_values_name_their_field() {
        let mut c = base();
        c.outbound.window = Duration::ZERO;
        assert_eq!(field_of(c.validate()), "outbound.window");

        let mut c = base();
        c.inbound.clear_after = 0;
        assert_eq!(field_of(c.validate()), "inbound.clear_after");

        let mut c = base();
        c.recipients.clear();
        assert_eq!(field_of(c.validate()), "recipients");

        let mut c = base();
        c.recipients
            .push(Recipient::new("ops", ChannelKind::Email, "a@b.example"));
        assert_eq!(field_of(c.validate()), "recipients[1].id");

        let mut c = base();
        c.recipients[0].address = "0800 FLOWERS".into();
        assert_eq!(field_of(c.validate()), "recipients[0].address");

        let mut c = base();
        c.recipients
            .push(Recipient::new("hook", ChannelKind::Webhook, "http://plain"));
        assert_eq!(field_of(c.validate()), "recipients[1].address");

        let mut c = base();
        c.recipients[0] = c.recipients[0]
            .clone()
            .with_fallback(ChannelKind::Email, "ops@b.example")
            .with_fallback(ChannelKind::Email, "not an address");
        assert_eq!(field_of(c.validate()), "recipients[0].fallback[1].address");

        let mut c = base();
        c.recipients[0] = c.recipients[0]
            .clone()
            .with_fallback(ChannelKind::Sms, "+15550100");
        assert_eq!(field_of(c.validate()), "recipients[0].fallback[0]");

        let mut c = base();
        c.repeat_interval = Duration::from_secs(5);
        assert_eq!(field_of(c.validate()), "repeat_interval");

        let mut c = base();
        c.probes.interval = Duration::from_secs(1);
        assert_eq!(field_of(c.validate()), "probes.interval");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<TenantConfig>(
            r#"{"tenant":"acme","recipients":[],"repeat_intreval":"1h"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("repeat_intreval"), "{err}");
    }

    fn from_toml(text: &str) -> TenantConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn from_json(text: &str) -> TenantConfig {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    const RECIPIENT_TOML: &str = r#"
        [[recipients]]
        id = "ops"
        channel = "sms"
        address = "+15550100"
    "#;

    #[test]
    fn every_threshold_turns_off_in_toml_and_json() {
        let toml = from_toml(&format!(
            r#"
            tenant = "acme"
            [inbound]
            latency = "off"
            failures = "off"
            leaky = "off"
            [outbound]
            latency = "OFF"
            failures = "off"
            {RECIPIENT_TOML}"#
        ));
        for json in [
            r#"{"tenant": "acme",
                "inbound": {"latency": "off", "failures": "off", "leaky": "off"},
                "outbound": {"latency": "off", "failures": "off"},
                "recipients": [{"id": "ops", "channel": "sms", "address": "+15550100"}]}"#,
            r#"{"tenant": "acme",
                "inbound": {"latency": null, "failures": null, "leaky": null},
                "outbound": {"latency": null, "failures": null},
                "recipients": [{"id": "ops", "channel": "sms", "address": "+15550100"}]}"#,
        ] {
            assert_eq!(from_json(json), toml, "{json}");
        }
        for d in [&toml.inbound, &toml.outbound] {
            assert_eq!((&d.latency, &d.failures, &d.leaky), (&None, &None, &None));
        }
        toml.validate().unwrap();
        // Off is written "off", which reads back as off.
        let json = serde_json::to_string(&toml).unwrap();
        assert!(json.contains(r#""latency":"off""#), "{json}");
        assert_eq!(from_json(&json), toml);
    }

    #[test]
    fn thresholds_read_the_same_from_toml_and_json() {
        let toml = from_toml(&format!(
            r#"
            tenant = "acme"
            [inbound]
            latency = {{ statistic = "p99", limit = "20m", min_samples = 5 }}
            failures = {{ rate = 0.2, min_samples = 30 }}
            [outbound]
            failures = {{ count = 5 }}
            [outbound.leaky]
            period = "2m"
            threshold = 5
            acceptable_latency = "10m"
            {RECIPIENT_TOML}"#
        ));
        let json = from_json(
            r#"{"tenant": "acme",
                "inbound": {"latency": {"statistic": "p99", "limit": "20m", "min_samples": 5},
                            "failures": {"rate": 0.2, "min_samples": 30}},
                "outbound": {"failures": {"limit": {"count": 5}},
                             "leaky": {"period": "2m", "threshold": 5, "acceptable_latency": "10m"}},
                "recipients": [{"id": "ops", "channel": "sms", "address": "+15550100"}]}"#,
        );
        assert_eq!(toml, json);
        toml.validate().unwrap();
        assert_eq!(
            toml.inbound.failures,
            Some(FailureThreshold {
                limit: FailureLimit::Rate(0.2),
                min_samples: 30
            })
        );
        assert_eq!(
            toml.outbound.failures,
            Some(FailureThreshold::new(FailureLimit::Count(5)))
        );
        assert_eq!(
            toml.outbound.latency,
            default_latency(),
            "left at its default"
        );
        assert!(toml.inbound.leaky.is_none() && toml.outbound.leaky.is_some());
    }

    #[test]
    fn a_threshold_is_either_settings_or_off() {
        for bad in [
            r#""on""#,
            r#""disabled""#,
            "false",
            "3",
            r#"{"limit": "30m", "typo": 1}"#,
        ] {
            let json = format!(
                r#"{{"tenant": "acme", "inbound": {{"latency": {bad}}}, "recipients": []}}"#
            );
            let err = serde_json::from_str::<TenantConfig>(&json)
                .expect_err(&json)
                .to_string();
            assert!(
                err.contains("\"off\"") || err.contains("typo"),
                "{bad}: {err}"
            );
        }
        let err = toml::from_str::<TenantConfig>(
            "tenant = \"acme\"\nrecipients = []\n[inbound]\nfailures = { count = 3, rate = 0.5 }\n",
        )
        .expect_err("two limits")
        .to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn round_trips_through_json() {
        let c = base();
        let json = serde_json::to_string(&c).unwrap();
        let back: TenantConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
