//! Building a [`Service`] from a [`ServiceConfig`]: secrets and files read,
//! notifiers wrapped in a `Delivery`, probes per tenant, the store opened,
//! the Monitor built and the tenants registered.

use std::{collections::BTreeMap, fmt, sync::Arc};

use continuity_core::{
    Clock, Direction, Error, Monitor, MonitorBuilder, SystemClock,
    arrival::ArrivalRegistry,
    hook::ContinuityHook,
    link::LinkSigner,
    memory::InMemoryEventStore,
    notify::Notifier,
    probe::{MailProbe, ProbeSender},
    store::EventStore,
};
use continuity_ews::{EwsProbe, EwsTenantProbe, error::EwsError};
use continuity_graph::{
    AppRegistration, Authority, GraphClient, GraphError, GraphProbe, GraphTenantProbe, TokenCache,
    TokenClient,
};
use continuity_notify::{NotifyError, delivery::Delivery};
use continuity_portal::PortalOptions;

use super::{
    config::{ProbeRef, ServiceConfig, StoreKind, from_core, from_core_at},
    error::{ServiceError, tenant_label},
    http::{HttpSettings, observe_router},
    probes::TenantProbes,
    runner::{RunSummary, Runner, RunnerSettings},
};

/// Customises the Monitor a [`ServiceBuilder`] builds (policies of the
/// embedder's own, say).
type Customize = Box<dyn FnOnce(MonitorBuilder) -> MonitorBuilder + Send>;

/// Builds a [`Service`] from a [`ServiceConfig`], with what a file cannot
/// hold: the clock (the system's by default), the embedder's
/// [`ContinuityHook`], and anything else the [`MonitorBuilder`] takes.
pub struct ServiceBuilder<'a> {
    config: &'a ServiceConfig,
    clock: Arc<dyn Clock>,
    hook: Option<Arc<dyn ContinuityHook>>,
    customize: Option<Customize>,
}

impl fmt::Debug for ServiceBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("hook", &self.hook)
            .field("customized", &self.customize.is_some())
            .finish_non_exhaustive()
    }
}

impl ServiceConfig {
    /// A builder of the service this configuration describes.
    pub fn service(&self) -> ServiceBuilder<'_> {
        ServiceBuilder {
            config: self,
            clock: Arc::new(SystemClock),
            hook: None,
            customize: None,
        }
    }
}

impl ServiceBuilder<'_> {
    /// The clock of the Monitor and of every adapter (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The embedder's hook, called when a continuity event starts and ends.
    pub fn hook(mut self, hook: Arc<dyn ContinuityHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Applies `f` to the [`MonitorBuilder`] once the configuration is in
    /// it, before it is built: to register policies of the embedder's own
    /// ([`MonitorBuilder::policy`]), say.
    pub fn monitor(
        mut self,
        f: impl FnOnce(MonitorBuilder) -> MonitorBuilder + Send + 'static,
    ) -> Self {
        self.customize = Some(Box::new(f));
        self
    }

    /// Reads the secrets and files, builds the notifiers (in one
    /// `Delivery`), the probes and the portal options, opens the store,
    /// builds the Monitor and registers the tenants, in that order: a
    /// secret missing is found before the store is touched.
    ///
    /// # Errors
    ///
    /// A [`ServiceError::Config`] naming the field whose part could not be
    /// built, with the adapter's reason: `links.keys[0].secret: env:NAME:
    /// the environment variable is not set`, `store.sqlite: ...`,
    /// `tenants[2] "acme": recipients[0].channel: ...`.
    pub async fn build(self) -> Result<Service, ServiceError> {
        let config = self.config;
        let parts = Parts::prepare(config, &self.clock)?;
        let store = open_store(config).await?;
        let monitor = self
            .assemble(store, parts.signer, &parts.delivery, parts.probes)
            .await?;
        Ok(Service {
            monitor,
            arrivals: parts.arrivals,
            portal_url: parts.portal_url,
            portal: parts.portal,
            delivery: parts.delivery,
            runner: config.runner,
            http: config.http.clone(),
        })
    }

    /// Refuses what [`build`](Self::build) would refuse, without connecting
    /// anywhere: for a `--check` mode. It takes the same steps as `build`
    /// but two: the store's settings are checked (the SQLite file's
    /// directory; the PostgreSQL connection string, schema, pool size and
    /// TLS roots) instead of opened, and the Monitor (with the embedder's
    /// additions: its policies judge the tenants' parameters) is built on a
    /// store in memory, the tenants registered, then dropped. The secrets
    /// and files are read as `build` reads them, so run it where the
    /// service runs, with its environment. No probe, alert or connection
    /// goes out.
    ///
    /// # Errors
    ///
    /// Those of [`build`](Self::build), naming the field (`notifiers.email.relay.security: ...`,
    /// `monitor: ...`, `tenants[2] "acme": ...`), except the store's
    /// errors that only connecting finds (a server down, a corrupt file).
    pub async fn check(self) -> Result<(), ServiceError> {
        let config = self.config;
        let parts = Parts::prepare(config, &self.clock)?;
        check_store(config)?;
        let store: Arc<dyn EventStore> = Arc::new(InMemoryEventStore::new());
        self.assemble(store, parts.signer, &parts.delivery, parts.probes)
            .await
            .map(drop)
    }

    /// The Monitor on `store` with the configuration's settings, the
    /// embedder's additions, and the tenants registered: the last steps of
    /// [`build`](Self::build) and [`check`](Self::check).
    async fn assemble(
        self,
        store: Arc<dyn EventStore>,
        signer: LinkSigner,
        delivery: &Delivery,
        probes: Option<Arc<dyn MailProbe>>,
    ) -> Result<Arc<Monitor>, ServiceError> {
        let config = self.config;
        let mut builder = Monitor::builder()
            .store(store)
            .clock(self.clock)
            .settings(config.monitor.clone())
            .link_signer(signer)
            .portal_url(config.portal_url.clone());
        for notifier in delivery.notifiers() {
            builder = builder.notifier(notifier);
        }
        if let Some(probes) = probes {
            builder = builder
                .probe(Direction::Inbound, probes.clone())
                .probe(Direction::Outbound, probes);
        }
        if let Some(hook) = self.hook {
            builder = builder.hook(hook);
        }
        if let Some(cluster) = &config.store.cluster {
            builder = builder.cluster(cluster.clone());
        }
        if let Some(customize) = self.customize {
            builder = customize(builder);
        }
        let monitor = Arc::new(builder.build().map_err(monitor_refused)?);

        for (i, tenant) in config.tenants.iter().enumerate() {
            let mut tenant_config = tenant.config.clone();
            if tenant.mail_probe.is_none() {
                // Watched passively: a round with no probe to send would
                // only report an error.
                tenant_config.probes.inbound = false;
                tenant_config.probes.outbound = false;
            }
            let label = tenant_label(i, Some(tenant_config.tenant.as_str()), "");
            monitor
                .register_tenant(tenant_config)
                .await
                .map_err(|e| from_core_at(&label, e))?;
        }
        Ok(monitor)
    }
}

/// What [`ServiceBuilder::build`] and [`ServiceBuilder::check`] both make
/// of a configuration before the store: the configuration checked
/// ([`ServiceConfig::check`]), the secrets and files read, the link
/// signer, the portal's options, the notifiers in one `Delivery` and the
/// probes built. Nothing here connects anywhere.
struct Parts {
    signer: LinkSigner,
    portal: PortalOptions,
    delivery: Arc<Delivery>,
    arrivals: Arc<ArrivalRegistry>,
    probes: Option<Arc<dyn MailProbe>>,
    portal_url: String,
}

/// A refusal of the [`MonitorBuilder`], under the file's names.
fn monitor_refused(e: Error) -> ServiceError {
    match e {
        Error::InvalidConfig { field, reason } => {
            // The builder names the settings `settings.…`; the file says `monitor`.
            let field = match field.as_str() {
                "cluster" => "store.cluster".into(),
                f => match f.strip_prefix("settings") {
                    Some(rest) => format!("monitor{rest}"),
                    None => field,
                },
            };
            ServiceError::config(field, reason)
        }
        e => ServiceError::config("monitor", e.to_string()),
    }
}

impl Parts {
    fn prepare(config: &ServiceConfig, clock: &Arc<dyn Clock>) -> Result<Parts, ServiceError> {
        config.check()?;
        // Checked again when the Monitor is built, but found here before
        // the store is opened.
        config.monitor.validate().map_err(monitor_refused)?;
        let signer = config.links.build().map_err(|e| match e {
            // LinkSettings names its fields `link.…`; the file says `links`.
            Error::InvalidConfig { field, reason } => {
                let field = match field.as_str() {
                    // A duplicate id: the list is where it is.
                    "link.key" => "links.keys".to_owned(),
                    f => match f.strip_prefix("link") {
                        Some(rest) => format!("links{rest}"),
                        None => format!("links.{f}"),
                    },
                };
                ServiceError::config(field, reason)
            }
            e => from_core("links.", e),
        })?;
        let portal = config
            .portal
            .build()
            .map_err(|e| ServiceError::config("portal.csrf_key", e.to_string()))?;
        let delivery = Arc::new(notifiers(config, clock)?);
        let arrivals = Arc::new(ArrivalRegistry::default());
        let probes = probes(config, clock, &arrivals)?;
        let portal_url =
            MonitorBuilder::checked_portal_url(&config.portal_url).map_err(|e| from_core("", e))?;
        Ok(Parts {
            signer,
            portal,
            delivery,
            arrivals,
            probes,
            portal_url,
        })
    }
}

/// A service built from its configuration: the [`Monitor`] with its
/// tenants registered, and what the embedder wires around it.
#[derive(Debug)]
pub struct Service {
    monitor: Arc<Monitor>,
    arrivals: Arc<ArrivalRegistry>,
    portal_url: String,
    portal: PortalOptions,
    delivery: Arc<Delivery>,
    runner: RunnerSettings,
    http: HttpSettings,
}

impl Service {
    /// The Monitor: `observe` from the gateway's delivery path.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// Where the gateway reports the outbound probes it receives
    /// (`ArrivalRegistry::record`), for the probes to find them.
    pub fn arrivals(&self) -> &Arc<ArrivalRegistry> {
        &self.arrivals
    }

    /// The portal's base URL as links carry it (ending in `/`).
    pub fn portal_url(&self) -> &str {
        &self.portal_url
    }

    /// The path of [`portal_url`](Self::portal_url) without its final `/`
    /// (`/continuity` for `https://gateway.example/continuity/`; empty
    /// for a portal at the root): where to nest
    /// [`portal_router`](Self::portal_router).
    pub fn portal_path(&self) -> &str {
        path_of(&self.portal_url)
    }

    /// The portal's options (the router's second input).
    pub fn portal_options(&self) -> &PortalOptions {
        &self.portal
    }

    /// The portal's router, to nest under [`portal_path`](Self::portal_path).
    pub fn portal_router(&self) -> axum::Router {
        continuity_portal::router(self.monitor.clone(), self.portal.clone())
    }

    /// The delivery every notifier goes through (its records, its breakers).
    pub fn delivery(&self) -> &Arc<Delivery> {
        &self.delivery
    }

    /// The tick loop as configured (see [`Runner`]).
    pub fn runner(&self) -> Runner {
        Runner::from_parts(self.monitor.clone(), self.runner)
    }

    /// The HTTP server as configured (`[http]`).
    pub fn http_settings(&self) -> &HttpSettings {
        &self.http
    }

    /// What the service answers over HTTP: the portal under
    /// [`portal_path`](Self::portal_path) and the gateway's `POST /observe`
    /// (see [`ObservationInput`](super::http::ObservationInput)). Merge the
    /// embedder's own routes (`/metrics`, `/healthz`) into it, or pass them
    /// to [`serve`](Self::serve).
    pub fn router(&self) -> axum::Router {
        let observe = observe_router(self.monitor.clone());
        match self.portal_path() {
            "" => observe.merge(self.portal_router()),
            path => observe.nest(path, self.portal_router()),
        }
    }

    /// Runs the whole service until `shutdown` completes: the HTTP server
    /// on `[http] listen` ([`router`](Self::router) merged with `extra`,
    /// within the timeouts of [`HttpSettings`]) and the tick loop. At
    /// shutdown the server stops accepting and lets the requests in flight
    /// finish, the running tick is finished, and the monitor hands back
    /// what it holds ([`Monitor::shut_down`]).
    ///
    /// # Errors
    ///
    /// [`ServiceError`] naming `http.listen` if the address cannot be
    /// bound; the errors of [`Runner::run_until`].
    pub async fn serve(
        self,
        extra: axum::Router,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<RunSummary, ServiceError> {
        let listener = tokio::net::TcpListener::bind(&self.http.listen)
            .await
            .map_err(|e| {
                ServiceError::config(
                    "http.listen",
                    format!("cannot listen on {}: {e}", self.http.listen),
                )
            })?;
        self.serve_on(listener, extra, shutdown).await
    }

    /// [`serve`](Self::serve) on a listener the caller bound (port 0 in
    /// tests, or a socket handed over by systemd).
    ///
    /// # Errors
    ///
    /// Those of [`Runner::run_until`].
    pub async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        extra: axum::Router,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<RunSummary, ServiceError> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            // A dropped sender also means stop.
            let _ = rx.wait_for(|s| *s).await;
        };
        let app = self.router().merge(extra);
        let http = super::http::serve(listener, app, &self.http, wait(stopped.clone()));
        let ticks = self.runner().run_until(wait(stopped));
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        let (served, ran, ()) = tokio::join!(http, ticks, signal);
        if let Err(e) = served {
            tracing::error!(error = %e, "the HTTP server stopped with an error");
        }
        ran.map_err(|e| ServiceError::config("monitor", e.to_string()))
    }
}

fn notifiers(config: &ServiceConfig, clock: &Arc<dyn Clock>) -> Result<Delivery, ServiceError> {
    let n = &config.notifiers;
    let mut delivery = Delivery::builder(clock.clone());
    let refused = |section: &str, e: NotifyError| match e {
        NotifyError::Config { field, reason, .. } => {
            ServiceError::config(format!("notifiers.{section}.{field}"), reason)
        }
        e => ServiceError::config(format!("notifiers.{section}"), e.to_string()),
    };
    if let Some(sms) = &n.sms {
        let sms: Arc<dyn Notifier> = Arc::new(sms.notifier().map_err(|e| refused("sms", e))?);
        delivery = delivery.channel(sms);
    }
    if let Some(email) = &n.email {
        let email: Arc<dyn Notifier> = Arc::new(
            email
                .notifier(clock.clone())
                .map_err(|e| refused("email", e))?,
        );
        delivery = delivery.channel(email);
    }
    if let Some(webhook) = &n.webhook {
        let webhook: Arc<dyn Notifier> = Arc::new(
            webhook
                .notifier(clock.clone())
                .map_err(|e| refused("webhook", e))?,
        );
        delivery = delivery.channel(webhook);
    }
    delivery
        .settings(&n.delivery)
        .build()
        .map_err(|e| refused("delivery", e))
}

/// The probe routing each tenant to its own, or `None` when no tenant has one.
fn probes(
    config: &ServiceConfig,
    clock: &Arc<dyn Clock>,
    arrivals: &Arc<ArrivalRegistry>,
) -> Result<Option<Arc<dyn MailProbe>>, ServiceError> {
    let p = &config.probes;
    if config.tenants.iter().all(|t| t.mail_probe.is_none()) {
        return Ok(None);
    }
    let sender: Option<Arc<dyn ProbeSender>> = match &p.smtp_sender {
        None => None,
        Some(s) => Some(Arc::new(s.sender().map_err(|e| match e {
            EwsError::InvalidConfig { field, reason } => ServiceError::config(
                format!(
                    "probes.smtp_sender.{}",
                    field.strip_prefix("smtp.").unwrap_or(field)
                ),
                reason,
            ),
            e => ServiceError::config("probes.smtp_sender", e.to_string()),
        })?)),
    };
    let gateway = p.gateway_address.clone().unwrap_or_default();

    // One token cache for every app registration: Graph's tokens and, for
    // EWS with bearer authentication, Exchange Online's.
    let tokens = if p.graph.is_empty() {
        None
    } else {
        Some(TokenCache::new(TokenClient::new(clock.clone()).map_err(
            |e| ServiceError::config("probes.graph", e.to_string()),
        )?))
    };
    let mut apps: BTreeMap<&str, (Arc<AppRegistration>, GraphClient)> = BTreeMap::new();
    for (name, g) in &p.graph {
        let Some(tokens) = &tokens else { break };
        let at = |part: &str, e: GraphError| match e {
            GraphError::InvalidConfig { field, reason } => {
                ServiceError::config(format!("probes.graph.{name}.{part}.{field}"), reason)
            }
            e => ServiceError::config(format!("probes.graph.{name}.{part}"), e.to_string()),
        };
        let app = Arc::new(g.app.build(clock.as_ref()).map_err(|e| at("app", e))?);
        let scope = app.authority().graph_scope().ok_or_else(|| {
            ServiceError::config(
                format!("probes.graph.{name}.app.authority"),
                "a custom authority has no known Graph scope; use public, us_government or china",
            )
        })?;
        let client = GraphClient::new(
            g.client
                .config(app.authority())
                .map_err(|e| at("client", e))?,
            Arc::new(tokens.source(app.clone(), scope)),
            clock.clone(),
        )
        .map_err(|e| at("client", e))?;
        apps.insert(name, (app, client));
    }
    build_probes(config, gateway, arrivals, sender, &apps, tokens.as_ref())
}

/// The scope of Exchange Online's EWS in `authority`'s cloud.
fn ews_scope(authority: &Authority) -> Option<&'static str> {
    match authority {
        Authority::Public => Some("https://outlook.office365.com/.default"),
        Authority::UsGovernment => Some("https://outlook.office365.us/.default"),
        Authority::China => Some("https://partner.outlook.cn/.default"),
        _ => None,
    }
}

fn build_probes(
    config: &ServiceConfig,
    gateway: String,
    arrivals: &Arc<ArrivalRegistry>,
    sender: Option<Arc<dyn ProbeSender>>,
    apps: &BTreeMap<&str, (Arc<AppRegistration>, GraphClient)>,
    tokens: Option<&Arc<TokenCache>>,
) -> Result<Option<Arc<dyn MailProbe>>, ServiceError> {
    let p = &config.probes;
    let mut accounts = BTreeMap::new();
    for (name, account) in &p.ews {
        let field = format!("probes.ews.{name}");
        let bearer = match (&account.app, tokens) {
            (Some(app), Some(tokens)) => {
                let (registration, _) = apps.get(app.as_str()).ok_or_else(|| {
                    ServiceError::config(
                        format!("{field}.app"),
                        format!("no app registration [probes.graph.{app}]"),
                    )
                })?;
                let scope = ews_scope(registration.authority()).ok_or_else(|| {
                    ServiceError::config(
                        format!("{field}.app"),
                        "a custom authority has no known EWS scope; use public, us_government or china",
                    )
                })?;
                let source: Arc<dyn continuity_core::access_token::AccessTokenSource> =
                    Arc::new(tokens.source(registration.clone(), scope));
                Some(source)
            }
            _ => None,
        };
        let client = account.client.client(bearer).map_err(|e| match e {
            EwsError::InvalidConfig { field: f, reason } => {
                ServiceError::config(format!("{field}.client.{f}"), reason)
            }
            e => ServiceError::config(format!("{field}.client"), e.to_string()),
        })?;
        accounts.insert(name.as_str(), client);
    }
    let ews = Arc::new(EwsProbe::new(
        gateway.clone(),
        arrivals.clone(),
        sender.clone(),
    ));
    let graph = Arc::new(GraphProbe::new(gateway, arrivals.clone(), sender));
    let mut routes = TenantProbes::default();
    for (i, tenant) in config.tenants.iter().enumerate() {
        let Some(probe) = &tenant.mail_probe else {
            continue;
        };
        let id = tenant.config.tenant.clone();
        let label = || tenant_label(i, Some(id.as_str()), "mail_probe");
        let chosen = probe
            .probe()
            .map_err(|reason| ServiceError::config(label(), reason))?;
        match chosen {
            ProbeRef::Ews(name) => {
                let client = accounts.get(name).ok_or_else(|| {
                    ServiceError::config(label(), format!("no EWS account [probes.ews.{name}]"))
                })?;
                ews.set_tenant(
                    id.clone(),
                    EwsTenantProbe {
                        client: client.clone(),
                        outbound_from: probe.outbound_from.clone(),
                        inbound_mailbox: probe.inbound_mailbox.clone(),
                        save_sent_copy: probe.save_sent_copy,
                    },
                );
                routes.insert(id, ews.clone());
            }
            ProbeRef::Graph(name) => {
                let (_, client) = apps.get(name).ok_or_else(|| {
                    ServiceError::config(
                        label(),
                        format!("no app registration [probes.graph.{name}]"),
                    )
                })?;
                graph.set_tenant(
                    id.clone(),
                    GraphTenantProbe {
                        client: client.clone(),
                        outbound_from: probe.outbound_from.clone(),
                        inbound_mailbox: probe.inbound_mailbox.clone(),
                    },
                );
                routes.insert(id, graph.clone());
            }
        }
    }
    Ok(Some(Arc::new(routes)))
}

async fn open_store(config: &ServiceConfig) -> Result<Arc<dyn EventStore>, ServiceError> {
    Ok(match config.store.kind()? {
        #[cfg(feature = "sqlite")]
        StoreKind::Sqlite(s) => Arc::new(s.open().await.map_err(store_refused("sqlite"))?),
        #[cfg(feature = "postgres")]
        StoreKind::Postgres(s) => Arc::new(s.connect().await.map_err(store_refused("postgres"))?),
        StoreKind::Memory(_) => Arc::new(InMemoryEventStore::new()),
    })
}

/// What [`open_store`] checks before it opens or connects (the stores'
/// own `check`, the first steps of `open` and `connect`).
fn check_store(config: &ServiceConfig) -> Result<(), ServiceError> {
    match config.store.kind()? {
        #[cfg(feature = "sqlite")]
        StoreKind::Sqlite(s) => s.check().map_err(store_refused("sqlite")),
        #[cfg(feature = "postgres")]
        StoreKind::Postgres(s) => s.check().map_err(store_refused("postgres")),
        StoreKind::Memory(_) => Ok(()),
    }
}

/// A store's refusal, under `store.<section>`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn store_refused(section: &str) -> impl Fn(continuity_store::StoreError) -> ServiceError + '_ {
    move |e| ServiceError::config(format!("store.{section}"), e.to_string())
}

/// The path of an `http(s)://host/path/` URL, without its final `/`.
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    rest.find('/')
        .map_or("", |slash| &rest[slash..])
        .trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn the_portal_path_is_the_url_path_without_its_final_slash() {
        for (url, path) in [
            ("https://gw.example/continuity/", "/continuity"),
            ("https://gw.example:8443/a/b/", "/a/b"),
            ("https://gw.example/", ""),
            ("http://127.0.0.1:8080/c/", "/c"),
        ] {
            assert_eq!(path_of(url), path, "{url}");
        }
    }
}
