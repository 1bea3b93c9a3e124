//! [`ServiceConfig`]: the whole service as one file, read with the path of
//! whatever it refuses, and checked before anything is opened.

use std::{collections::BTreeMap, collections::HashSet, path::Path};

use continuity_core::{
    Error, MonitorBuilder,
    config::{ChannelKind, TenantConfig},
    link::LinkSettings,
    monitor::MonitorSettings,
};
use continuity_ews::settings::{EwsAuthSettings, EwsSettings, SmtpSenderSettings};
use continuity_graph::{AppRegistrationSettings, GraphSettings};
use continuity_notify::settings::{
    DeliverySettings, SmtpSettings, TwilioSettings, WebhookSettings,
};
use continuity_portal::PortalSettings;
use serde::{Deserialize, Deserializer, Serialize, de};

#[cfg(feature = "postgres")]
use continuity_store::PostgresSettings;
#[cfg(feature = "sqlite")]
use continuity_store::SqliteSettings;

use super::error::{ServiceError, tenant_label};
use super::{http::HttpSettings, runner::RunnerSettings};

/// A whole service as configured: the store, the engine's settings, the
/// link keys, the portal, the notifiers, the mail probes and the tenants.
/// See the [module docs](super) for a complete file.
///
/// Read it with [`from_toml_str`](Self::from_toml_str) or
/// [`from_file`](Self::from_file), which refuse unknown fields and wrong
/// values with their path (`tenants[2] "acme": outbound.failures: ...`)
/// and check everything that needs no secret, file or network; then
/// [`service`](Self::service) builds it (or, for a `--check` mode,
/// [checks](super::ServiceBuilder::check) what building would refuse,
/// connecting nowhere). `Debug` and
/// [`describe`](Self::describe) show where secrets are, never a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Where the state lives, and the cluster instance name if several
    /// instances share it.
    pub store: StoreConfig,
    /// The portal's base URL, which every alert's link starts with (a `/`
    /// is added when missing: see [`MonitorBuilder::checked_portal_url`]).
    pub portal_url: String,
    /// The engine's settings (every field optional; see [`MonitorSettings`]).
    #[serde(default)]
    pub monitor: MonitorSettings,
    /// The tick loop (every field optional; see [`RunnerSettings`]).
    #[serde(default)]
    pub runner: RunnerSettings,
    /// The HTTP server (every field optional; see [`HttpSettings`]).
    #[serde(default)]
    pub http: HttpSettings,
    /// The portal links' keys and validity.
    pub links: LinkSettings,
    /// The portal's CSRF key and body limit.
    pub portal: PortalSettings,
    /// The notifiers (at least one) and the [`Delivery`](continuity_notify::delivery::Delivery)
    /// that wraps them.
    pub notifiers: NotifierConfig,
    /// The mail probes' accounts and app registrations, by name, which
    /// tenants refer to.
    #[serde(default)]
    pub probes: ProbesConfig,
    /// The tenants, each a [`TenantConfig`] plus its `mail_probe`.
    #[serde(default)]
    pub tenants: Vec<ServiceTenant>,
}

/// The event store: exactly one of `sqlite`, `postgres` (each only when
/// built with its feature) or `memory = true`, and, with several
/// instances sharing a PostgreSQL store, this instance's `cluster` name.
///
/// No store is chosen silently: a service that forgot its durable store
/// would lose its state at every restart without a word.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The embedded store, one file (`{ path = "/var/lib/continuity/state.db" }`).
    #[cfg(feature = "sqlite")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteSettings>,
    /// One PostgreSQL database several instances share.
    #[cfg(feature = "postgres")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSettings>,
    /// The in-memory store: the state is lost when the process ends (for
    /// trials and tests).
    #[serde(default)]
    pub memory: bool,
    /// This instance's name among several sharing the store (unique, 1 to
    /// 200 bytes; see [`MonitorBuilder::cluster`]); left out, a single
    /// instance owning every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// Which store [`StoreConfig`] chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreKind<'a> {
    #[cfg(feature = "sqlite")]
    Sqlite(&'a SqliteSettings),
    #[cfg(feature = "postgres")]
    Postgres(&'a PostgresSettings),
    Memory(std::marker::PhantomData<&'a ()>),
}

impl StoreConfig {
    /// The one store chosen, or an error listing the choices this build has.
    pub(crate) fn kind(&self) -> Result<StoreKind<'_>, ServiceError> {
        let mut chosen = Vec::new();
        #[cfg(feature = "sqlite")]
        if let Some(s) = &self.sqlite {
            chosen.push(StoreKind::Sqlite(s));
        }
        #[cfg(feature = "postgres")]
        if let Some(s) = &self.postgres {
            chosen.push(StoreKind::Postgres(s));
        }
        if self.memory {
            chosen.push(StoreKind::Memory(std::marker::PhantomData));
        }
        match chosen.as_slice() {
            [one] => Ok(*one),
            _ => Err(ServiceError::config(
                "store",
                format!("choose exactly one store: {}", STORE_CHOICES.join(", or ")),
            )),
        }
    }
}

/// The stores this build can open, as written in the file.
const STORE_CHOICES: &[&str] = &[
    #[cfg(feature = "sqlite")]
    "sqlite = { path = \"/var/lib/continuity/state.db\" } (the embedded default)",
    #[cfg(feature = "postgres")]
    "postgres = { url = { env = \"DATABASE_URL\" } } (several instances)",
    "memory = true (the state is lost when the process ends)",
];

/// The notifiers, each optional (at least one is needed), and the
/// [`Delivery`](continuity_notify::delivery::Delivery) every one of them
/// goes through: retries, a circuit breaker per channel, fallbacks
/// between channels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// SMS through Twilio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms: Option<TwilioSettings>,
    /// E-mail through an SMTP relay (never the organisation's own server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<SmtpSettings>,
    /// Signed webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSettings>,
    /// The delivery's policies (every field optional; see [`DeliverySettings`]).
    #[serde(default)]
    pub delivery: DeliverySettings,
}

impl NotifierConfig {
    /// The channels configured.
    pub fn channels(&self) -> Vec<ChannelKind> {
        let mut channels = Vec::new();
        if self.sms.is_some() {
            channels.push(ChannelKind::Sms);
        }
        if self.email.is_some() {
            channels.push(ChannelKind::Email);
        }
        if self.webhook.is_some() {
            channels.push(ChannelKind::Webhook);
        }
        channels
    }
}

/// The mail probes: where outbound probes go, what sends inbound ones, and
/// the EWS accounts and Graph app registrations tenants refer to by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbesConfig {
    /// The gateway's probe address: outbound probes are sent there, and the
    /// gateway reports what arrives to the service's
    /// [`ArrivalRegistry`](continuity_core::arrival::ArrivalRegistry)
    /// (needed when a tenant probes outbound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_address: Option<String>,
    /// Sends inbound probes through an SMTP relay, as the gateway would
    /// (needed when a tenant probes inbound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_sender: Option<SmtpSenderSettings>,
    /// EWS service accounts by name (`[probes.ews.onprem]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ews: BTreeMap<String, EwsAccount>,
    /// Graph app registrations by name (`[probes.graph.contoso]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub graph: BTreeMap<String, GraphApp>,
}

/// An EWS service account: one client shared by the tenants it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwsAccount {
    /// The client (endpoint, authentication, limits).
    pub client: EwsSettings,
    /// With `auth = { method = "bearer" }` (Exchange Online's EWS): the
    /// name of the `[probes.graph.NAME]` app registration whose tokens it
    /// uses, for the scope of EWS in that app's cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// A Graph app registration and its client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphApp {
    /// The app registration (tenant, client id, certificate).
    pub app: AppRegistrationSettings,
    /// The Graph client (every field optional; see [`GraphSettings`]).
    #[serde(default)]
    pub client: GraphSettings,
}

/// A tenant as configured: its [`TenantConfig`] fields, plus `mail_probe`,
/// which probe watches it actively. Without `mail_probe` the tenant is
/// watched passively only (its `probes` settings are then unused).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceTenant {
    /// The tenant's thresholds, recipients and limits.
    #[serde(flatten)]
    pub config: TenantConfig,
    /// Its mail probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_probe: Option<TenantMailProbe>,
}

/// Which probe watches a tenant: exactly one of `ews` (an account's name in
/// `[probes.ews]`) or `graph` (an app registration's name in
/// `[probes.graph]`), and the organisation's probe mailboxes:
/// `{ ews = "onprem", outbound_from = "probe-out@acme.example", inbound_mailbox = "probe-in@acme.example" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantMailProbe {
    /// The EWS account probing this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ews: Option<String>,
    /// The Graph app registration probing this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<String>,
    /// The mailbox outbound probes are sent from (needed while the tenant's
    /// `probes.outbound` is on, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_from: Option<String>,
    /// The mailbox inbound probes are sent to (needed while the tenant's
    /// `probes.inbound` is on, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_mailbox: Option<String>,
    /// EWS only: keep a copy of outbound probes in Sent Items until they
    /// arrive (default false).
    #[serde(default)]
    pub save_sent_copy: bool,
}

/// Which probe a [`TenantMailProbe`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeRef<'a> {
    Ews(&'a str),
    Graph(&'a str),
}

impl TenantMailProbe {
    pub(crate) fn probe(&self) -> Result<ProbeRef<'_>, String> {
        match (&self.ews, &self.graph) {
            (Some(ews), None) => Ok(ProbeRef::Ews(ews)),
            (None, Some(graph)) => Ok(ProbeRef::Graph(graph)),
            _ => Err(
                "name exactly one probe: ews = \"<account in [probes.ews]>\" \
                 or graph = \"<app in [probes.graph]>\""
                    .into(),
            ),
        }
    }
}

// `#[serde(flatten)]` cannot refuse unknown fields, so a tenant is read as
// a table: `mail_probe` is taken out, and the rest must be a TenantConfig,
// whose own refusal keeps its path inside the tenant.
impl<'de> Deserialize<'de> for ServiceTenant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let mail_probe = match table.remove("mail_probe") {
            None => None,
            Some(value) => Some(read_at("mail_probe.", value)?),
        };
        let config = read_at("", toml::Value::Table(table))?;
        Ok(ServiceTenant { config, mail_probe })
    }
}

/// `value` read as `T`; a refusal says where below `prefix`.
fn read_at<T: de::DeserializeOwned, E: de::Error>(
    prefix: &str,
    value: toml::Value,
) -> Result<T, E> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().message().trim_end().to_owned();
        match (prefix, path.as_str()) {
            ("", ".") => E::custom(message),
            (p, ".") => E::custom(format!("{}: {message}", p.trim_end_matches('.'))),
            (p, path) => E::custom(format!("{p}{path}: {message}")),
        }
    })
}

impl ServiceConfig {
    /// Reads a configuration from TOML and checks it (see
    /// [`check`](Self::check)).
    ///
    /// # Errors
    ///
    /// A [`ServiceError`] naming the field: a syntax error with its line, an
    /// unknown field or a wrong value with its path
    /// (`notifiers.sms.timeout`, `tenants[2] "acme": outbound.failures`),
    /// and what [`check`](Self::check) refuses.
    pub fn from_toml_str(text: &str) -> Result<Self, ServiceError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| syntax(text, &e))?;
        let config: ServiceConfig =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let line = e.inner().span().map(|s| line_of(text, s.start));
                let (field, tenant) = split_tenant(e.path());
                let name = tenant.and_then(|i| tenant_name(text, i));
                let field = match tenant {
                    Some(i) => tenant_label(i, name.as_deref(), &field),
                    None => field,
                };
                let mut reason = e.inner().message().trim_end().to_owned();
                // A tenant's refusal names its own path first.
                let field = match (tenant, reason.split_once(": ")) {
                    (Some(_), Some((inner, rest))) if !inner.contains(' ') => {
                        let field = format!("{field}: {inner}");
                        reason = rest.to_owned();
                        field
                    }
                    _ => field,
                };
                ServiceError::Config {
                    field,
                    reason: match line {
                        Some(line) => format!("{reason} (line {line})"),
                        None => reason,
                    },
                }
            })?;
        config.check()?;
        Ok(config)
    }

    /// Reads the file at `path` (see [`from_toml_str`](Self::from_toml_str)).
    ///
    /// # Errors
    ///
    /// [`ServiceError::File`] when the file cannot be read, and those of
    /// [`from_toml_str`](Self::from_toml_str) naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ServiceError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ServiceError::File {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| e.in_file(path))
    }

    /// Checks what needs no secret, file or network: one store, the cluster
    /// name, the portal URL, the runner, at least one notifier, each tenant
    /// ([`TenantConfig::validate`]), tenant ids unique, every recipient's
    /// channel configured, every probe a tenant names defined, with the
    /// mailboxes, gateway address and inbound sender its probing needs, an
    /// EWS account's bearer app defined.
    ///
    /// # Errors
    ///
    /// The first problem, as a [`ServiceError::Config`] naming the field.
    pub fn check(&self) -> Result<(), ServiceError> {
        self.store.kind()?;
        if let Some(instance) = &self.store.cluster
            && (instance.is_empty() || instance.len() > 200)
        {
            return Err(ServiceError::config(
                "store.cluster",
                "the instance name must be 1 to 200 bytes long, unique among the instances",
            ));
        }
        MonitorBuilder::checked_portal_url(&self.portal_url).map_err(|e| from_core("", e))?;
        self.runner.validate()?;
        if self.runner.interval >= self.monitor.lease {
            return Err(ServiceError::config(
                "runner.interval",
                "must be shorter than monitor.lease (2m by default): what this instance holds \
                 would lapse between two ticks",
            ));
        }
        let channels = self.notifiers.channels();
        if channels.is_empty() {
            return Err(ServiceError::config(
                "notifiers",
                "configure at least one of [notifiers.sms], [notifiers.email], [notifiers.webhook]: \
                 without one no alert can go out",
            ));
        }
        for (name, account) in &self.probes.ews {
            let field = format!("probes.ews.{name}");
            match (&account.client.auth, &account.app) {
                (EwsAuthSettings::Bearer, None) => {
                    return Err(ServiceError::config(
                        format!("{field}.app"),
                        "bearer authentication needs the name of a [probes.graph.NAME] app registration for its tokens",
                    ));
                }
                (EwsAuthSettings::Bearer, Some(app)) if !self.probes.graph.contains_key(app) => {
                    return Err(ServiceError::config(
                        format!("{field}.app"),
                        format!("no app registration [probes.graph.{app}]"),
                    ));
                }
                (EwsAuthSettings::Bearer, Some(_)) | (_, None) => {}
                (_, Some(_)) => {
                    return Err(ServiceError::config(
                        format!("{field}.app"),
                        "only bearer authentication takes tokens from an app registration",
                    ));
                }
            }
        }
        let mut seen = HashSet::new();
        for (i, tenant) in self.tenants.iter().enumerate() {
            let config = &tenant.config;
            let label = |field: &str| tenant_label(i, Some(config.tenant.as_str()), field);
            config.validate().map_err(|e| from_core_at(&label(""), e))?;
            if !seen.insert(config.tenant.as_str()) {
                return Err(ServiceError::config(
                    label("tenant"),
                    "the same tenant id is configured twice",
                ));
            }
            for (r, recipient) in config.recipients.iter().enumerate() {
                if !channels.contains(&recipient.channel) {
                    return Err(ServiceError::config(
                        label(&format!("recipients[{r}].channel")),
                        format!(
                            "no {} notifier is configured (add [notifiers.{}])",
                            recipient.channel,
                            section_of(recipient.channel)
                        ),
                    ));
                }
            }
            if let Some(probe) = &tenant.mail_probe {
                self.check_mail_probe(config, probe)
                    .map_err(|(field, reason)| ServiceError::config(label(&field), reason))?;
            }
        }
        Ok(())
    }

    fn check_mail_probe(
        &self,
        config: &TenantConfig,
        probe: &TenantMailProbe,
    ) -> Result<(), (String, String)> {
        let refused = |field: &str, reason: String| Err((format!("mail_probe.{field}"), reason));
        let chosen = match probe.probe() {
            Ok(chosen) => chosen,
            Err(reason) => return Err(("mail_probe".into(), reason)),
        };
        match chosen {
            ProbeRef::Ews(name) if !self.probes.ews.contains_key(name) => {
                return refused("ews", format!("no EWS account [probes.ews.{name}]"));
            }
            ProbeRef::Graph(name) if !self.probes.graph.contains_key(name) => {
                return refused(
                    "graph",
                    format!("no app registration [probes.graph.{name}]"),
                );
            }
            ProbeRef::Graph(_) if probe.save_sent_copy => {
                return refused(
                    "save_sent_copy",
                    "is EWS's only: Graph's probes leave nothing in Sent Items".into(),
                );
            }
            _ => {}
        }
        if config.probes.outbound {
            if probe.outbound_from.is_none() {
                return refused(
                    "outbound_from",
                    "the mailbox outbound probes are sent from is needed while probes.outbound is on \
                     (set probes = { outbound = false } to probe inbound only)"
                        .into(),
                );
            }
            if self.probes.gateway_address.is_none() {
                return refused(
                    "outbound_from",
                    "outbound probes need [probes] gateway_address, where they are sent".into(),
                );
            }
        }
        if config.probes.inbound {
            if probe.inbound_mailbox.is_none() {
                return refused(
                    "inbound_mailbox",
                    "the mailbox inbound probes are sent to is needed while probes.inbound is on \
                     (set probes = { inbound = false } to probe outbound only)"
                        .into(),
                );
            }
            if self.probes.smtp_sender.is_none() {
                return refused(
                    "inbound_mailbox",
                    "inbound probes need [probes.smtp_sender], which sends them as the gateway would"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

/// `[notifiers.<section>]` of a channel.
pub(crate) fn section_of(channel: ChannelKind) -> &'static str {
    match channel {
        ChannelKind::Sms => "sms",
        ChannelKind::Email => "email",
        ChannelKind::Webhook => "webhook",
    }
}

/// A core configuration error under `prefix` (`links.`, ...).
pub(crate) fn from_core(prefix: &str, e: Error) -> ServiceError {
    match e {
        Error::InvalidConfig { field, reason } => {
            ServiceError::config(format!("{prefix}{field}"), reason)
        }
        e => ServiceError::config(prefix.trim_end_matches('.'), e.to_string()),
    }
}

/// A core configuration error inside a tenant: `label` is
/// `tenants[2] "acme": ` with the field to follow.
pub(crate) fn from_core_at(label: &str, e: Error) -> ServiceError {
    let label = label.trim_end_matches([':', ' ']);
    match e {
        Error::InvalidConfig { field, reason } => {
            ServiceError::config(format!("{label}: {field}"), reason)
        }
        e => ServiceError::config(label, e.to_string()),
    }
}

fn syntax(text: &str, e: &toml::de::Error) -> ServiceError {
    let reason = e.message().trim_end().to_owned();
    match e.span() {
        Some(span) => ServiceError::config(format!("line {}", line_of(text, span.start)), reason),
        None => ServiceError::config("(the file)", reason),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// The path as written, and the tenant's index when it is inside one.
fn split_tenant(path: &serde_path_to_error::Path) -> (String, Option<usize>) {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    match segments.as_slice() {
        [Segment::Map { key }, Segment::Seq { index }, rest @ ..] if key == "tenants" => {
            let field = rest
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(".");
            (field, Some(*index))
        }
        _ => (path.to_string(), None),
    }
}

/// The `tenant` id written in the `index`th `[[tenants]]`, if readable.
fn tenant_name(text: &str, index: usize) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    table
        .get("tenants")?
        .as_array()?
        .get(index)?
        .get("tenant")?
        .as_str()
        .map(str::to_owned)
}
