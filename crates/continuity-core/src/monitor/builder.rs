//! Building a [`Monitor`]: the [`MonitorBuilder`] that checks the parts, and
//! the engine's own [`MonitorSettings`].
//!
//! Kept apart from the tick: nothing here runs after [`MonitorBuilder::build`].

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, RwLock, atomic::AtomicBool},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use super::{
    HealthThresholds, Links, Membership, Monitor, Parts, Schedule, StoreOutage, TenantRegistry,
    TickState, registry::PolicyRegistry,
};
use crate::{
    clock::{Clock, SystemClock},
    cluster::ShardSet,
    config::ChannelKind,
    domain::Direction,
    duration::serde_duration,
    error::{Error, Result},
    fxhash::FxHashMap,
    hook::ContinuityHook,
    link::LinkSigner,
    memory::InMemoryEventStore,
    metrics::{Instruments, MeteredStore},
    notify::Notifier,
    policy::PolicyFactory,
    probe::MailProbe,
    store::{EventStore, RetentionSettings},
};

/// Tuning knobs of the engine itself (not per tenant). The defaults suit a
/// tick every minute.
///
/// Deserialises (unknown fields refused, every field optional with the
/// default below, durations as `"2m"`, `"30s"`); [`validate`](Self::validate)
/// checks the values, as [`MonitorBuilder::build`] does:
///
/// ```
/// use std::time::Duration;
/// use continuity_core::monitor::MonitorSettings;
///
/// let s: MonitorSettings = toml::from_str(r#"
///     lease = "5m"
///     baseline_every = "30m"
/// "#).unwrap();
/// assert_eq!(s.lease, Duration::from_secs(300));
/// assert_eq!(s.batch, MonitorSettings::default().batch);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorSettings {
    /// How long a claimed outbox entry or probe is reserved for this instance (default 2 min).
    #[serde(with = "serde_duration")]
    pub lease: Duration,
    /// Items claimed from the store per round trip, and probes put and
    /// settled per round trip (default 500). On PostgreSQL, where a round
    /// trip's commit is most of its cost, 5,000 took a fifth off a fleet's
    /// day (BENCHMARKS.md, "Held probes in batches").
    pub batch: usize,
    /// First retry delay of a failed delivery or hook call; doubles per attempt (default 30 s).
    #[serde(with = "serde_duration")]
    pub retry_base: Duration,
    /// Longest retry delay (default 15 min).
    #[serde(with = "serde_duration")]
    pub retry_max: Duration,
    /// Times a commit is retried after a compare-and-swap conflict within one call (default 5).
    pub conflict_retries: u32,
    /// How often each tenant's learned baselines (the flow detector's, and
    /// any policy's [`snapshot`](crate::policy::ThresholdPolicy::snapshot))
    /// are saved to the store (default 1 h; at least 1 s). This bounds what a
    /// crash or a take-over by another instance forgets: at most this much
    /// learning. A tenant's first save comes within this time of its
    /// registration, at a point fixed by its id, so that tenants registered
    /// together do not all save at the same tick; saves go in batches of
    /// [`batch`](Self::batch) records, only for the tenants this instance
    /// owns, and skip baselines unchanged since their last save. A save the
    /// store refuses is tried again after [`retry_base`](Self::retry_base).
    #[serde(with = "serde_duration")]
    pub baseline_every: Duration,
    /// Adds a `tenant` label to the per-tenant [metrics](crate::metrics)
    /// (observations, probes, alerts, deliveries; default off). With many
    /// tenants this multiplies the series an exporter keeps, and each
    /// labelled recording looks its series up (an allocation per
    /// observation); off, those metrics are totals over all tenants.
    pub per_tenant_metrics: bool,
    /// When [`Monitor::health`] calls the monitor degraded or failing.
    pub health: HealthThresholds,
    /// How long the store keeps audit records, dead letters and the rows of
    /// stopped cluster instances (defaults 400 days, 30 days, 1 day; each at
    /// least 1 h), pruned by
    /// [`Monitor::prune_records`](crate::Monitor::prune_records).
    pub retention: RetentionSettings,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            lease: Duration::from_secs(120),
            batch: 500,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(900),
            conflict_retries: 5,
            baseline_every: Duration::from_secs(3600),
            per_tenant_metrics: false,
            health: HealthThresholds::default(),
            retention: RetentionSettings::default(),
        }
    }
}

impl MonitorSettings {
    /// Checks the values, as [`MonitorBuilder::build`] does: `batch`
    /// positive, `lease` and `baseline_every` at least 1 s, `retry_base`
    /// positive and at most `retry_max`, each `retention` at least 1 h,
    /// `health.tick_stale` at least `health.tick_late`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `settings`, `settings.retention` or
    /// `settings.health`.
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0
            || self.lease < Duration::from_secs(1)
            || self.retry_base.is_zero()
            || self.retry_max < self.retry_base
            || self.baseline_every < Duration::from_secs(1)
        {
            return Err(Error::config(
                "settings",
                "batch must be positive, lease and baseline_every at least 1 s, and retry_max at least retry_base",
            ));
        }
        let r = &self.retention;
        if r.audit < RetentionSettings::MIN
            || r.dead_letters < RetentionSettings::MIN
            || r.instances < RetentionSettings::MIN
        {
            return Err(Error::config(
                "settings.retention",
                "audit, dead_letters and instances must each be at least 1 h",
            ));
        }
        if self.health.tick_stale < self.health.tick_late {
            return Err(Error::config(
                "settings.health",
                "tick_stale (failing) must be at least tick_late (degraded)",
            ));
        }
        Ok(())
    }
}

/// Builds a [`Monitor`].
pub struct MonitorBuilder {
    store: Option<Arc<dyn EventStore>>,
    clock: Arc<dyn Clock>,
    notifiers: HashMap<ChannelKind, Arc<dyn Notifier>>,
    probes: [Option<Arc<dyn MailProbe>>; 2],
    hook: Option<Arc<dyn ContinuityHook>>,
    links: Option<LinkSigner>,
    portal_url: Option<String>,
    settings: MonitorSettings,
    instance: Option<String>,
    policies: PolicyRegistry,
}

impl fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorBuilder")
            .field("store", &self.store)
            .field("notifiers", &self.notifiers.keys().collect::<Vec<_>>())
            .field("portal_url", &self.portal_url)
            .finish_non_exhaustive()
    }
}

impl MonitorBuilder {
    /// The event store, durable in production (required: this or
    /// [`in_memory_store`](Self::in_memory_store)).
    pub fn store(mut self, store: Arc<dyn EventStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Keeps the state in a new [`InMemoryEventStore`]: everything the
    /// monitor knows (alerts, windows, probes in flight, the outbox) is lost
    /// when the process ends. For tests, simulations and single-shot tools;
    /// a service gives a durable store to [`store`](Self::store).
    pub fn in_memory_store(self) -> Self {
        self.store(Arc::new(InMemoryEventStore::new()))
    }

    /// The clock used by [`Monitor::tick_now`] and [`Monitor::observe`] (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds the notifier for its channel (replacing an earlier one for the same channel).
    pub fn notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifiers.insert(notifier.channel(), notifier);
        self
    }

    /// The probe for `direction` (without one, the direction is watched passively only).
    pub fn probe(mut self, direction: Direction, probe: Arc<dyn MailProbe>) -> Self {
        self.probes[direction.index()] = Some(probe);
        self
    }

    /// The embedder's continuity hook.
    pub fn hook(mut self, hook: Arc<dyn ContinuityHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Signs portal links (required).
    pub fn link_signer(mut self, signer: LinkSigner) -> Self {
        self.links = Some(signer);
        self
    }

    /// The portal's base URL; a link is this URL followed by the signed text (required),
    /// e.g. `https://continuity.example.net/c/`. The signed text is a path
    /// segment of its own: a URL without a trailing `/` gets one
    /// (`https://gw.example/continuity` links as
    /// `https://gw.example/continuity/<link>`). [`build`](Self::build)
    /// refuses anything but an `http://` or `https://` URL with a host, and
    /// a query or fragment, after which a link would not be a path.
    pub fn portal_url(mut self, url: impl Into<String>) -> Self {
        self.portal_url = Some(url.into());
        self
    }

    /// Engine settings.
    pub fn settings(mut self, settings: MonitorSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Runs this monitor as `instance`, one of several sharing the store:
    /// it then evaluates and probes only the tenants of the shards it owns
    /// (see [`cluster`](crate::cluster)). Every instance registers every
    /// tenant; `instance` must be unique among them (a host name and
    /// process id, say). Without it the monitor owns every tenant.
    pub fn cluster(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Registers a policy of the embedder's under `name`: a tenant selects
    /// it in a direction's `policies` list with its own parameters,
    /// `{"name": "my-policy", "params": {...}}`, and `factory` builds one
    /// policy per tenant and direction from those parameters when the tenant
    /// is registered. An unknown name or parameters the factory refuses make
    /// [`Monitor::register_tenant`] fail with the field's path and the
    /// tenant. The built-in names (`latency`, `failures`, `leaky`) are
    /// refused by [`build`](Self::build); a later registration under the same
    /// name replaces an earlier one.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use continuity_core::{
    ///     Monitor,
    ///     policy::{FailureLimit, FailurePolicy, FailureThreshold, ThresholdPolicy},
    /// };
    ///
    /// // A failure count of its own; a tenant selecting it turns the
    /// // built-in `failures` of that direction off (one policy per condition).
    /// let builder = Monitor::builder().policy(
    ///     "strict-failures",
    ///     Arc::new(|params| {
    ///         #[derive(serde::Deserialize)]
    ///         struct Params { count: u32 }
    ///         let p: Params = params.parse()?;
    ///         let threshold = FailureThreshold::new(FailureLimit::Count(p.count));
    ///         threshold.validate("")?;
    ///         Ok(Box::new(FailurePolicy::new(threshold)) as Box<dyn ThresholdPolicy>)
    ///     }),
    /// );
    /// # let _ = builder;
    /// ```
    pub fn policy(mut self, name: impl Into<String>, factory: PolicyFactory) -> Self {
        self.policies.insert(name.into(), factory);
        self
    }

    /// Checks the parts and builds the monitor.
    pub fn build(self) -> Result<Monitor> {
        let links = self.links.ok_or_else(|| {
            Error::config(
                "link_signer",
                "a link signer is required: alerts carry signed portal links",
            )
        })?;
        let portal_url = self
            .portal_url
            .ok_or_else(|| Error::config("portal_url", "the portal's base URL is required"))?;
        let portal_url = Self::checked_portal_url(&portal_url)?;
        if self.notifiers.is_empty() {
            return Err(Error::config(
                "notifiers",
                "at least one notifier is needed, or no alert can go out",
            ));
        }
        // No silent default: a service that forgot its durable store would
        // lose its state on every restart without a word.
        let store = self.store.ok_or_else(|| {
            Error::config(
                "store",
                "an event store is required: a durable one via .store(..), \
                 or the in-memory one, which loses the state when the process ends, \
                 chosen by name via .in_memory_store()",
            )
        })?;
        let s = &self.settings;
        if let Some(instance) = &self.instance
            && (instance.is_empty() || instance.len() > 200)
        {
            return Err(Error::config(
                "cluster",
                "the instance name must be 1 to 200 bytes long",
            ));
        }
        self.policies.validate()?;
        s.validate()?;
        // Every store call is timed and its failures counted; the wrapper
        // prints as the store it wraps.
        let store: Arc<dyn EventStore> = Arc::new(MeteredStore::new(store, self.clock.clone()));
        let instruments = Instruments::register(
            s.per_tenant_metrics,
            [
                self.probes[0]
                    .as_ref()
                    .map(|p| p.kinds())
                    .unwrap_or_default(),
                self.probes[1]
                    .as_ref()
                    .map(|p| p.kinds())
                    .unwrap_or_default(),
            ],
        );
        Ok(Monitor {
            parts: Parts {
                instruments,
                store,
                clock: self.clock,
                notifiers: self.notifiers,
                probes: self.probes,
                hook: self.hook,
                policies: self.policies,
            },
            links: Links {
                signer: links,
                portal_url,
            },
            settings: self.settings,
            tenants: TenantRegistry {
                by_id: RwLock::new(FxHashMap::default()),
                dense: RwLock::new(Vec::new()),
            },
            ticks: TickState {
                last: Mutex::new(None),
                running: AtomicBool::new(false),
                schedule: Mutex::new(Schedule::default()),
                held_probes: Mutex::new(Vec::new()),
                last_pruned: Mutex::new(None),
                gauges: Default::default(),
            },
            cluster: Membership {
                owned: Mutex::new(if self.instance.is_some() {
                    ShardSet::EMPTY
                } else {
                    ShardSet::ALL
                }),
                instance: self.instance,
                forwarding: Default::default(),
                left: AtomicBool::new(false),
            },
            outage: StoreOutage::default(),
        })
    }
}

impl MonitorBuilder {
    /// The base URL [`build`](Self::build) makes of `url` (see
    /// [`portal_url`](Self::portal_url)): `url` ending in `/`, or an
    /// [`Error::InvalidConfig`] naming `portal_url` and what to write instead.
    ///
    /// ```
    /// use continuity_core::MonitorBuilder;
    ///
    /// let base = MonitorBuilder::checked_portal_url("https://gw.example/continuity").unwrap();
    /// assert_eq!(base, "https://gw.example/continuity/");
    /// assert!(MonitorBuilder::checked_portal_url("https://gw.example/c?link=").is_err());
    /// ```
    pub fn checked_portal_url(url: &str) -> Result<String> {
        portal_base(url)
    }
}

/// The portal URL links are appended to: checked, and ending in `/`.
fn portal_base(url: &str) -> Result<String> {
    let refuse = |why: &str| Error::config("portal_url", format!("{url:?} {why}"));
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| refuse("is not an http(s) URL"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse("holds white space or control characters"));
    }
    if rest.contains(['?', '#']) {
        return Err(refuse(
            "has a query or fragment: links are appended to it as a path segment, \
             so give the portal's base path, e.g. https://gateway.example/continuity/",
        ));
    }
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') || host.contains('@') {
        return Err(refuse(
            "has no host (or carries user information): expected https://host[:port]/path/",
        ));
    }
    let mut base = url.to_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    Ok(base)
}

impl Monitor {
    /// A builder with the defaults.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder {
            store: None,
            clock: Arc::new(SystemClock),
            notifiers: HashMap::new(),
            probes: [None, None],
            hook: None,
            links: None,
            portal_url: None,
            settings: MonitorSettings::default(),
            instance: None,
            policies: PolicyRegistry::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::ChannelKind, link::LinkKey, testing::RecordingNotifier};

    fn built(url: &str) -> Result<Monitor> {
        Monitor::builder()
            .in_memory_store()
            .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
            .link_signer(LinkSigner::new(LinkKey::new("k1", [1u8; 32]).unwrap()))
            .portal_url(url)
            .build()
    }

    #[test]
    fn a_portal_url_gets_the_slash_its_links_need() {
        for (given, base) in [
            (
                "https://gw.example/continuity",
                "https://gw.example/continuity/",
            ),
            (
                "https://gw.example/continuity/",
                "https://gw.example/continuity/",
            ),
            ("https://gw.example", "https://gw.example/"),
            ("http://127.0.0.1:8080/c", "http://127.0.0.1:8080/c/"),
        ] {
            let monitor = built(given).unwrap();
            assert_eq!(monitor.links.portal_url, base, "{given}");
        }
    }

    #[test]
    fn a_portal_url_links_cannot_be_appended_to_is_refused_naming_it() {
        for (given, why) in [
            ("gw.example/continuity/", "not an http(s) URL"),
            ("ftp://gw.example/", "not an http(s) URL"),
            ("https://gw.example/c?link=", "query or fragment"),
            ("https://gw.example/c/#", "query or fragment"),
            ("https:///c/", "no host"),
            ("https://user@gw.example/c/", "no host"),
            ("https://gw.example/c /", "white space"),
        ] {
            let e = built(given).unwrap_err().to_string();
            assert!(e.contains("portal_url") && e.contains(why), "{given}: {e}");
        }
    }
}
