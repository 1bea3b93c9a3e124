//! The EWS HTTP client: one per service account.
//!
//! It sends the SOAP bodies of [`request`] over HTTPS with
//! Basic or Bearer authentication, impersonating a mailbox (the
//! `ExchangeImpersonation` header and `X-AnchorMailbox`), caps concurrency,
//! honours the server's back-off, retries what can succeed on retry, and
//! turns every answer into a typed result.

use std::{fmt, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use continuity_core::{Clock, SystemClock, token::AccessTokenSource};
use reqwest::{
    StatusCode, Url,
    header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT},
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::{
    error::{EwsError, Result, excerpt},
    request::{self, DeleteType, Envelope, FindQuery, Folder, ItemId, ProbeMessage, ServerVersion},
    response::{
        FolderInfo, HttpMeta, Item, Response, ServerVersionInfo, looks_disabled, parse_http,
    },
    throttle::{BackOff, EXCHANGE_MAX_CONCURRENCY, Jitter, SendPacer},
};

/// How the client authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum Auth {
    /// HTTP Basic with a service account (on-premises, HTTPS only).
    Basic {
        /// User name (`DOMAIN\user` or UPN).
        username: String,
        /// Password.
        password: SecretString,
    },
    /// `Authorization: Bearer` from a token source (Exchange Online, hybrid).
    Bearer(Arc<dyn AccessTokenSource>),
    /// NTLMv2 (on-premises): the handshake runs once per kept-alive
    /// connection, which then stays authenticated.
    #[cfg(feature = "ntlm")]
    Ntlm {
        /// NetBIOS domain (e.g. `CONTOSO`).
        domain: String,
        /// User name without the domain.
        username: String,
        /// Password.
        password: SecretString,
        /// Workstation name sent in the messages.
        workstation: String,
    },
}

impl Auth {
    /// Basic authentication.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Auth::Basic {
            username: username.into(),
            password: SecretString::from(password.into()),
        }
    }

    /// NTLM authentication as `domain\\username`.
    #[cfg(feature = "ntlm")]
    pub fn ntlm(
        domain: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Auth::Ntlm {
            domain: domain.into(),
            username: username.into(),
            password: SecretString::from(password.into()),
            workstation: "CONTINUITY".into(),
        }
    }

    fn scheme(&self) -> &'static str {
        match self {
            Auth::Basic { .. } => "Basic",
            Auth::Bearer(_) => "Bearer",
            #[cfg(feature = "ntlm")]
            Auth::Ntlm { .. } => "NTLM",
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Auth::Bearer(source) => f.debug_tuple("Bearer").field(source).finish(),
            #[cfg(feature = "ntlm")]
            Auth::Ntlm {
                domain,
                username,
                workstation,
                ..
            } => f
                .debug_struct("Ntlm")
                .field("domain", domain)
                .field("username", username)
                .field("password", &"<redacted>")
                .field("workstation", workstation)
                .finish(),
        }
    }
}

/// Retry settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 3).
    pub max_attempts: u32,
    /// First back-off (default 500 ms); doubles per retry, with jitter.
    pub base_delay: Duration,
    /// Largest back-off between two attempts (default 10 s).
    pub max_delay: Duration,
    /// Longest wait the client accepts from the server (`BackOffMilliseconds`,
    /// `Retry-After`) before giving up and returning the error (default 30 s):
    /// a probe must not hang for minutes.
    pub max_server_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_server_wait: Duration::from_secs(30),
        }
    }
}

/// Configuration of one [`EwsClient`] (one service account on one server).
#[derive(Clone, Debug)]
pub struct EwsConfig {
    /// `https://<host>/EWS/Exchange.asmx`.
    pub endpoint: String,
    /// Credentials.
    pub auth: Auth,
    /// `RequestServerVersion` (default `Exchange2013_SP1`).
    pub server_version: ServerVersion,
    /// Allow `http://` (tests only; default false: credentials never travel in clear).
    pub allow_plain_http: bool,
    /// Whole-request timeout (default 30 s).
    pub request_timeout: Duration,
    /// Connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Concurrent requests of this account (default 8; at most 27, Exchange's limit per user).
    pub max_concurrency: usize,
    /// Largest response body read (default 4 MiB).
    pub max_response_bytes: usize,
    /// Minimum time between two sends from one mailbox (default 6 s, i.e.
    /// at most 10 a minute, a third of Exchange Online's MessageRateLimit).
    pub min_send_interval: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Exchange Online (legacy EWS mode): an HTTP 403 means EWS is disabled
    /// for the tenant. `None` (the default): Exchange Online exactly when
    /// the auth is Bearer.
    pub exchange_online: Option<bool>,
    /// `User-Agent` (fixed per application, for the server's logs).
    pub user_agent: String,
    /// The time source (NTLM timestamps when the server sends none).
    pub clock: Arc<dyn Clock>,
}

impl EwsConfig {
    /// Defaults for `endpoint` and `auth`.
    pub fn new(endpoint: impl Into<String>, auth: Auth) -> Self {
        EwsConfig {
            endpoint: endpoint.into(),
            auth,
            server_version: ServerVersion::default(),
            allow_plain_http: false,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_concurrency: 8,
            max_response_bytes: 4 << 20,
            min_send_interval: Duration::from_secs(6),
            retry: RetryPolicy::default(),
            exchange_online: None,
            user_agent: concat!("continuity-ews/", env!("CARGO_PKG_VERSION")).into(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Whether the client talks to Exchange Online (see [`EwsConfig::exchange_online`]).
    pub fn is_exchange_online(&self) -> bool {
        self.exchange_online
            .unwrap_or(matches!(self.auth, Auth::Bearer(_)))
    }

    fn validate(&self) -> Result<Url> {
        let bad = |field, reason: String| EwsError::InvalidConfig { field, reason };
        let url = Url::parse(&self.endpoint)
            .map_err(|e| bad("endpoint", format!("{:?} is not a URL: {e}", self.endpoint)))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_plain_http => {}
            "http" => {
                return Err(bad(
                    "endpoint",
                    "plain http is refused (credentials would travel in clear); use https".into(),
                ));
            }
            s => return Err(bad("endpoint", format!("scheme {s:?}; use https"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "endpoint",
                "credentials belong in `auth`, not in the URL".into(),
            ));
        }
        if self.max_concurrency == 0 || self.max_concurrency > EXCHANGE_MAX_CONCURRENCY {
            return Err(bad(
                "max_concurrency",
                format!(
                    "{} not in 1..={EXCHANGE_MAX_CONCURRENCY} (Exchange's limit per user)",
                    self.max_concurrency
                ),
            ));
        }
        if self.retry.max_attempts == 0 {
            return Err(bad("retry.max_attempts", "must be at least 1".into()));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(bad("request_timeout", "timeouts must be positive".into()));
        }
        if self.max_response_bytes < 1024 {
            return Err(bad("max_response_bytes", "must be at least 1024".into()));
        }
        if let Auth::Basic { username, .. } = &self.auth
            && username.is_empty()
        {
            return Err(bad("auth.username", "empty".into()));
        }
        Ok(url)
    }
}

/// An EWS client for one service account. Cheap to clone; clones share the
/// connection pool, the concurrency cap, the back-off and the send pacing,
/// so every tenant using this account should use clones of one client.
/// Clients of other accounts or servers can share its HTTP stack
/// ([`sharing_http`](EwsClient::sharing_http)).
#[derive(Clone, Debug)]
pub struct EwsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    cfg: EwsConfig,
    permits: Semaphore,
    back_off: BackOff,
    pacer: SendPacer,
    jitter: Jitter,
    /// Authenticated NTLM connections, each its own one-connection client.
    #[cfg(feature = "ntlm")]
    ntlm_idle: std::sync::Mutex<Vec<crate::ntlm_conn::Connection>>,
}

type Answer = (StatusCode, HeaderMap, Vec<u8>);

/// The probe messages found in a mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Items whose X-header or subject token equals the probe id exactly.
    pub items: Vec<Item>,
}

impl EwsClient {
    /// A client for `cfg`, with an HTTP stack (TLS roots, connection pool)
    /// of its own.
    pub fn new(cfg: EwsConfig) -> Result<Self> {
        let endpoint = cfg.validate()?;
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.connect_timeout)
            .pool_max_idle_per_host(cfg.max_concurrency)
            .pool_idle_timeout(Duration::from_secs(90))
            // A redirect (to genericerrorpage.htm, to a login page) is an answer to report, not to follow.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!cfg.allow_plain_http)
            .build()
            .map_err(|e| EwsError::InvalidConfig {
                field: "endpoint",
                reason: format!("HTTP client: {e}"),
            })?;
        Ok(Self::build(cfg, endpoint, http))
    }

    /// A client for another account or server (`cfg`) over this client's
    /// HTTP stack. Building one costs milliseconds and about 100 KB (TLS
    /// roots, pool), which a process watching thousands of tenants would
    /// multiply; a shared one costs neither. The new client has its own
    /// concurrency cap, back-off and send pacing. `cfg.connect_timeout` and
    /// `cfg.allow_plain_http` must equal this client's (they belong to the
    /// shared stack); `cfg.request_timeout` applies per request.
    pub fn sharing_http(&self, cfg: EwsConfig) -> Result<Self> {
        let endpoint = cfg.validate()?;
        let mine = &self.inner.cfg;
        if cfg.connect_timeout != mine.connect_timeout {
            return Err(EwsError::InvalidConfig {
                field: "connect_timeout",
                reason: format!(
                    "{:?} differs from the shared HTTP stack's {:?}",
                    cfg.connect_timeout, mine.connect_timeout
                ),
            });
        }
        if cfg.allow_plain_http != mine.allow_plain_http {
            return Err(EwsError::InvalidConfig {
                field: "allow_plain_http",
                reason: "differs from the shared HTTP stack's".into(),
            });
        }
        Ok(Self::build(cfg, endpoint, self.inner.http.clone()))
    }

    fn build(cfg: EwsConfig, endpoint: Url, http: reqwest::Client) -> Self {
        EwsClient {
            inner: Arc::new(Inner {
                http,
                endpoint,
                permits: Semaphore::new(cfg.max_concurrency),
                back_off: BackOff::default(),
                pacer: SendPacer::new(cfg.min_send_interval),
                jitter: Jitter::default(),
                #[cfg(feature = "ntlm")]
                ntlm_idle: std::sync::Mutex::new(Vec::new()),
                cfg,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EwsConfig {
        &self.inner.cfg
    }

    fn envelope<'a>(&self, mailbox: &'a str) -> Envelope<'a> {
        Envelope::impersonating(self.inner.cfg.server_version, mailbox)
    }

    /// Sends a probe from `from` (impersonated) with `CreateItem`, pacing
    /// sends per mailbox.
    pub async fn send_probe(&self, from: &str, msg: &ProbeMessage<'_>) -> Result<()> {
        self.inner.pacer.wait_turn(from).await;
        let body = request::create_item(&self.envelope(from), msg);
        self.call("CreateItem", from, body)
            .await?
            .first("CreateItem")?;
        Ok(())
    }

    /// Finds the probe `probe_id` in `mailbox`'s `folders`, following pages.
    /// Only exact matches are returned (header value or subject token).
    pub async fn find_probe(
        &self,
        mailbox: &str,
        probe_id: &str,
        folders: &[Folder],
        received_after: Option<DateTime<Utc>>,
    ) -> Result<Found> {
        const PAGE: u32 = 50;
        const MAX_PAGES: u32 = 20;
        let mut found = Found::default();
        let mut offset = 0;
        for _ in 0..MAX_PAGES {
            let q = FindQuery {
                probe_id,
                folders,
                offset,
                page_size: PAGE,
                received_after,
            };
            let body = request::find_item(&self.envelope(mailbox), &q);
            let m = self
                .call("FindItem", mailbox, body)
                .await?
                .first("FindItem")?;
            let count = m.items.len() as u32;
            found
                .items
                .extend(m.items.into_iter().filter(|i| is_probe(i, probe_id)));
            let Some(rf) = m.root_folder else { break };
            if rf.includes_last_item_in_range || count == 0 {
                break;
            }
            offset = rf
                .indexed_paging_offset
                .unwrap_or(offset + count)
                .max(offset + 1);
        }
        Ok(found)
    }

    /// Reads timestamps and Internet headers of `ids` in `mailbox`.
    pub async fn get_items(&self, mailbox: &str, ids: &[ItemId]) -> Result<Vec<Item>> {
        let body = request::get_item(&self.envelope(mailbox), ids);
        let r = self.call("GetItem", mailbox, body).await?;
        let mut out = Vec::with_capacity(ids.len());
        for m in r.messages {
            if let Some(e) = m.error("GetItem") {
                return Err(e);
            }
            out.extend(m.items);
        }
        Ok(out)
    }

    /// Hard-deletes `ids` in `mailbox`; items already gone count as deleted.
    pub async fn delete_items(&self, mailbox: &str, ids: &[ItemId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let body = request::delete_item(&self.envelope(mailbox), ids, DeleteType::HardDelete);
        let r = self.call("DeleteItem", mailbox, body).await?;
        for m in r.messages {
            match m.error("DeleteItem") {
                Some(e)
                    if e.response_code()
                        .is_some_and(|c| c.as_str() == "ErrorItemNotFound") => {}
                Some(e) => return Err(e),
                None => {}
            }
        }
        Ok(())
    }

    /// Checks that the client can work with `mailbox`: reachable, TLS,
    /// credentials, impersonation, mailbox, request version. Read-only
    /// (`GetFolder` of the Inbox).
    pub async fn check_connection(
        &self,
        mailbox: &str,
    ) -> std::result::Result<ConnectionInfo, ConnectionProblem> {
        let body = request::get_folder(&self.envelope(mailbox), Folder::Inbox);
        let outcome = match self.call("GetFolder", mailbox, body).await {
            Ok(r) => {
                let server = r.server.clone();
                r.first("GetFolder").map(|m| ConnectionInfo {
                    server,
                    inbox: m.folders.into_iter().next(),
                })
            }
            Err(e) => Err(e),
        };
        outcome.map_err(|e| ConnectionProblem::diagnose(e, &self.inner.cfg, mailbox))
    }

    /// Sends one SOAP body, with retries; `mailbox` is the impersonated one.
    pub async fn call(
        &self,
        operation: &'static str,
        mailbox: &str,
        body: String,
    ) -> Result<Response> {
        let retry = self.inner.cfg.retry;
        let mut refreshed_token = false;
        let mut attempt = 1;
        loop {
            let e = match self.attempt(operation, mailbox, &body).await {
                // A response message that failed transiently (ErrorServerBusy, a Warning) is retried like a fault.
                Ok(r) => match r
                    .messages
                    .iter()
                    .find_map(|m| m.error(operation).filter(EwsError::is_retryable))
                {
                    Some(e) => e,
                    None => return Ok(r),
                },
                Err(e) => e,
            };
            if let EwsError::ServerBusy { back_off, .. } = &e {
                // EXL's default when the server names no time.
                self.inner
                    .back_off
                    .set(back_off.unwrap_or(Duration::from_secs(60)));
            }
            // A refused token is dropped and fetched again, once.
            if let (EwsError::Unauthorized { .. }, Auth::Bearer(source), false) =
                (&e, &self.inner.cfg.auth, refreshed_token)
            {
                refreshed_token = true;
                if let Ok(t) = source.token().await {
                    source.invalidate(&t);
                }
                continue;
            }
            if !e.is_retryable() || attempt >= retry.max_attempts {
                return Err(e);
            }
            let wait = match e.retry_after() {
                Some(w) => w,
                None => self
                    .inner
                    .jitter
                    .delay(attempt, retry.base_delay, retry.max_delay),
            };
            if wait > retry.max_server_wait {
                return Err(e);
            }
            tracing::debug!(operation, attempt, ?wait, error = %e, "EWS request failed; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        operation: &'static str,
        mailbox: &str,
        body: &str,
    ) -> Result<Response> {
        let inner = &*self.inner;
        let wait = inner.back_off.remaining();
        if wait > inner.cfg.retry.max_server_wait {
            return Err(EwsError::ServerBusy {
                back_off: Some(wait),
                message: "backing off after ErrorServerBusy from the server".into(),
            });
        }
        tokio::time::sleep(wait).await;
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| EwsError::Transport {
                message: "client shut down".into(),
            })?;
        let (status, headers, buf) = match &inner.cfg.auth {
            #[cfg(feature = "ntlm")]
            Auth::Ntlm { .. } => self.ntlm_exchange(operation, mailbox, body).await?,
            auth => {
                let req = self.base_request(&inner.http, mailbox);
                let req = match auth {
                    Auth::Basic { username, password } => {
                        req.basic_auth(username, Some(password.expose_secret()))
                    }
                    Auth::Bearer(source) => {
                        let token = source.token().await.map_err(|e| EwsError::Token {
                            retryable: e.is_retryable(),
                            message: e.to_string(),
                        })?;
                        req.bearer_auth(token.secret().expose())
                    }
                    #[cfg(feature = "ntlm")]
                    Auth::Ntlm { .. } => req,
                };
                self.exchange(operation, req.body(body.to_owned())).await?
            }
        };
        drop(_permit);
        log_diagnostics(operation, mailbox, status, &headers);
        interpret(operation, status, &headers, &buf, &inner.cfg)
    }

    fn base_request(&self, http: &reqwest::Client, mailbox: &str) -> reqwest::RequestBuilder {
        let inner = &*self.inner;
        let mut req = http
            .post(inner.endpoint.clone())
            // Per request: a client sharing another's HTTP stack keeps its own timeout.
            .timeout(inner.cfg.request_timeout)
            .header(CONTENT_TYPE, "text/xml; charset=utf-8")
            .header(ACCEPT, "text/xml")
            .header(USER_AGENT, &inner.cfg.user_agent)
            .header("client-request-id", inner.jitter.guid())
            .header("return-client-request-id", "true");
        if let Ok(v) = HeaderValue::from_str(mailbox) {
            req = req.header("X-AnchorMailbox", v);
        }
        req
    }

    /// Sends `req` and reads the whole answer, within the size limit.
    async fn exchange(
        &self,
        operation: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<Answer> {
        let inner = &*self.inner;
        let endpoint = || redacted_endpoint(&inner.endpoint);
        let mut resp = req
            .send()
            .await
            .map_err(|e| transport_error(&e, operation, inner.cfg.request_timeout, endpoint()))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let limit = inner.cfg.max_response_bytes;
        if resp.content_length().is_some_and(|l| l as usize > limit) {
            return Err(EwsError::TooLarge { limit });
        }
        let mut buf = Vec::with_capacity(
            resp.content_length()
                .map_or(8192, |l| (l as usize).min(limit)),
        );
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport_error(&e, operation, inner.cfg.request_timeout, endpoint()))?
        {
            if buf.len() + chunk.len() > limit {
                return Err(EwsError::TooLarge { limit });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((status, headers, buf))
    }

    /// One request with NTLM: on an idle authenticated connection if there
    /// is one, else negotiate → challenge → authenticate (with the body) on
    /// a new connection, which then stays authenticated and goes back to the
    /// idle list.
    #[cfg(feature = "ntlm")]
    async fn ntlm_exchange(
        &self,
        operation: &'static str,
        mailbox: &str,
        body: &str,
    ) -> Result<Answer> {
        use crate::ntlm_conn::Connection;
        let inner = &*self.inner;
        let cfg = &inner.cfg;
        let Auth::Ntlm {
            domain,
            username,
            password,
            workstation,
        } = &cfg.auth
        else {
            return Err(EwsError::InvalidConfig {
                field: "auth",
                reason: "not NTLM".into(),
            });
        };
        let headers = self.ntlm_headers(mailbox);
        let body = bytes::Bytes::copy_from_slice(body.as_bytes());
        let (timeout, limit) = (cfg.request_timeout, cfg.max_response_bytes);
        let idle = {
            let mut idle = inner.ntlm_idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|c| !c.is_closed());
            idle.pop()
        };
        if let Some(mut conn) = idle {
            match conn
                .post(
                    &inner.endpoint,
                    &headers,
                    body.clone(),
                    operation,
                    timeout,
                    limit,
                )
                .await
            {
                Ok(answer) if answer.0 != StatusCode::UNAUTHORIZED => {
                    self.ntlm_idle_push(conn);
                    return Ok(answer);
                }
                // Closed meanwhile, or the server forgot the authentication: start afresh.
                _ => drop(conn),
            }
        }
        let mut conn = Connection::open(&inner.endpoint, cfg.connect_timeout).await?;
        let with_auth = |token: String| -> Result<HeaderMap> {
            let mut h = headers.clone();
            let v = HeaderValue::from_str(&format!("NTLM {token}")).map_err(|e| {
                EwsError::Transport {
                    message: e.to_string(),
                }
            })?;
            h.insert(reqwest::header::AUTHORIZATION, v);
            Ok(h)
        };
        let negotiate = with_auth(crate::ntlm::negotiate(workstation)?)?;
        let first = conn
            .post(
                &inner.endpoint,
                &negotiate,
                bytes::Bytes::new(),
                operation,
                timeout,
                limit,
            )
            .await?;
        if first.0 != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let challenge = first
            .1
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(crate::ntlm::parse_challenge);
        let Some(challenge) = challenge else {
            // The server does not offer NTLM: report its 401 as it is.
            return Ok(first);
        };
        let token = crate::ntlm::authenticate(
            &challenge?,
            domain,
            username,
            password.expose_secret(),
            workstation,
            cfg.clock.now(),
        )?;
        let authenticate = with_auth(token)?;
        let answer = conn
            .post(
                &inner.endpoint,
                &authenticate,
                body,
                operation,
                timeout,
                limit,
            )
            .await?;
        if answer.0 != StatusCode::UNAUTHORIZED {
            conn.authenticated = true;
            self.ntlm_idle_push(conn);
        }
        Ok(answer)
    }

    #[cfg(feature = "ntlm")]
    fn ntlm_headers(&self, mailbox: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        h.insert(ACCEPT, HeaderValue::from_static("text/xml"));
        if let Ok(v) = HeaderValue::from_str(&self.inner.cfg.user_agent) {
            h.insert(USER_AGENT, v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.inner.jitter.guid()) {
            h.insert("client-request-id", v);
        }
        h.insert("return-client-request-id", HeaderValue::from_static("true"));
        if let Ok(v) = HeaderValue::from_str(mailbox) {
            h.insert("x-anchormailbox", v);
        }
        h
    }

    #[cfg(feature = "ntlm")]
    fn ntlm_idle_push(&self, conn: crate::ntlm_conn::Connection) {
        let mut idle = self
            .inner
            .ntlm_idle
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.inner.cfg.max_concurrency {
            idle.push(conn);
        }
    }
}

fn is_probe(item: &Item, probe_id: &str) -> bool {
    continuity_core::arrival::carries_token(
        item.subject.as_deref(),
        item.probe_header.as_deref(),
        probe_id,
    )
}

fn redacted_endpoint(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// Logs Exchange's troubleshooting headers with every answer (PROTOCOLS.md §1):
/// they let the administrator find the request in the server's logs.
fn log_diagnostics(
    operation: &'static str,
    mailbox: &str,
    status: StatusCode,
    headers: &HeaderMap,
) {
    tracing::debug!(
        operation,
        mailbox,
        status = status.as_u16(),
        request_id = header(headers, "request-id"),
        client_request_id = header(headers, "client-request-id"),
        fe_server = header(headers, "x-feserver"),
        be_server = header(headers, "x-targetbeserver"),
        diag_info = header(headers, "x-diaginfo"),
        cas_error = header(headers, "x-caserrorcode"),
        ms_diagnostics = header(headers, "x-ms-diagnostics"),
        "EWS answer"
    );
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn interpret(
    operation: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    cfg: &EwsConfig,
) -> Result<Response> {
    let retry_after = header(headers, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let diagnostics = header(headers, "x-ms-diagnostics").map(str::to_owned);
    match status.as_u16() {
        401 => {
            if diagnostics.as_deref().is_some_and(looks_disabled)
                || looks_disabled(&String::from_utf8_lossy(body))
            {
                return Err(EwsError::EwsDisabled {
                    status: 401,
                    message: diagnostics.unwrap_or_else(|| excerpt(body)),
                });
            }
            // Only the scheme names of the challenge: they tell the admin what the server expects.
            let challenge: Vec<&str> = headers
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split_whitespace().next())
                .collect();
            Err(EwsError::Unauthorized {
                challenge: (!challenge.is_empty()).then(|| challenge.join(", ")),
                diagnostics,
            })
        }
        403 => {
            let text = String::from_utf8_lossy(body);
            if cfg.is_exchange_online() || looks_disabled(&text) {
                return Err(EwsError::EwsDisabled {
                    status: 403,
                    message: if text.trim().is_empty() {
                        "HTTP 403 Forbidden".into()
                    } else {
                        excerpt(body)
                    },
                });
            }
            let meta = HttpMeta {
                status: 403,
                content_type: header(headers, "content-type"),
                retry_after,
                location: None,
            };
            match parse_http(operation, &meta, body) {
                Err(e @ (EwsError::Fault { .. } | EwsError::Response { .. })) => Err(e),
                _ => Err(EwsError::Forbidden {
                    excerpt: excerpt(body),
                }),
            }
        }
        s => {
            let meta = HttpMeta {
                status: s,
                content_type: header(headers, "content-type"),
                retry_after,
                location: header(headers, "location"),
            };
            parse_http(operation, &meta, body)
        }
    }
}

fn transport_error(
    e: &reqwest::Error,
    operation: &'static str,
    timeout: Duration,
    endpoint: String,
) -> EwsError {
    if e.is_timeout() {
        return EwsError::Timeout {
            operation,
            after: timeout,
        };
    }
    // The chain's text, without the URL (reqwest puts it in the top level).
    let chain = continuity_core::error::error_causes(e);
    let lower = chain.to_ascii_lowercase();
    let tls = [
        "certificate",
        "tls",
        "handshake",
        "invalidmessage",
        "corrupt message",
        "unknownissuer",
        "alert",
    ]
    .iter()
    .any(|k| lower.contains(k));
    if tls {
        EwsError::Tls {
            endpoint,
            message: chain,
        }
    } else if e.is_connect() {
        EwsError::Unreachable {
            endpoint,
            message: chain,
        }
    } else {
        EwsError::Transport { message: chain }
    }
}

/// What a successful connection check learnt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The server's `ServerVersionInfo`, when sent.
    pub server: Option<ServerVersionInfo>,
    /// The impersonated mailbox's Inbox.
    pub inbox: Option<FolderInfo>,
}

/// What is wrong, for an administrator. [`fmt::Display`] says what to do.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConnectionProblem {
    /// The endpoint cannot be reached (DNS, firewall, server down).
    Unreachable(EwsError),
    /// TLS failed: certificate untrusted, expired or for another name.
    Tls(EwsError),
    /// The service account's credentials (or token) were refused.
    BadCredentials(EwsError),
    /// The account may not impersonate the mailbox: the ApplicationImpersonation role is missing.
    ImpersonationDenied(EwsError),
    /// The mailbox does not exist.
    MailboxNotFound(EwsError),
    /// The server refuses the configured `RequestServerVersion`.
    ServerVersionUnsupported(EwsError),
    /// Exchange Online has EWS switched off for the tenant.
    EwsDisabled(EwsError),
    /// The server is busy or failing; try again later.
    Unavailable(EwsError),
    /// Anything else.
    Other(EwsError),
}

impl ConnectionProblem {
    fn diagnose(e: EwsError, cfg: &EwsConfig, mailbox: &str) -> Self {
        let code = e.response_code().map(|c| c.as_str().to_owned());
        let message = match &e {
            EwsError::Fault { message, .. } | EwsError::Response { message, .. } => {
                message.to_ascii_lowercase()
            }
            _ => String::new(),
        };
        let _ = (cfg, mailbox);
        match (&e, code.as_deref()) {
            (EwsError::Unreachable { .. } | EwsError::Timeout { .. }, _) => {
                ConnectionProblem::Unreachable(e)
            }
            (EwsError::Tls { .. }, _) => ConnectionProblem::Tls(e),
            (EwsError::Unauthorized { .. }, _) => ConnectionProblem::BadCredentials(e),
            (EwsError::EwsDisabled { .. }, _) => ConnectionProblem::EwsDisabled(e),
            (_, Some("ErrorImpersonateUserDenied" | "ErrorImpersonationDenied")) => {
                ConnectionProblem::ImpersonationDenied(e)
            }
            (
                _,
                Some(
                    "ErrorNonExistentMailbox"
                    | "ErrorInvalidSmtpAddress"
                    | "ErrorMailRecipientNotFound",
                ),
            ) => ConnectionProblem::MailboxNotFound(e),
            (
                _,
                Some(
                    "ErrorInvalidServerVersion"
                    | "ErrorInvalidSchemaVersionForMailboxVersion"
                    | "ErrorIncorrectSchemaVersion",
                ),
            ) => ConnectionProblem::ServerVersionUnsupported(e),
            (
                EwsError::Http {
                    status: 500,
                    excerpt,
                    ..
                },
                _,
            ) if excerpt
                .to_ascii_lowercase()
                .contains("server version is invalid") =>
            {
                ConnectionProblem::ServerVersionUnsupported(e)
            }
            (_, Some("ErrorSchemaValidation")) if message.contains("requestserverversion") => {
                ConnectionProblem::ServerVersionUnsupported(e)
            }
            _ if e.is_retryable() => ConnectionProblem::Unavailable(e),
            _ => ConnectionProblem::Other(e),
        }
    }

    /// The underlying error.
    pub fn error(&self) -> &EwsError {
        match self {
            ConnectionProblem::Unreachable(e)
            | ConnectionProblem::Tls(e)
            | ConnectionProblem::BadCredentials(e)
            | ConnectionProblem::ImpersonationDenied(e)
            | ConnectionProblem::MailboxNotFound(e)
            | ConnectionProblem::ServerVersionUnsupported(e)
            | ConnectionProblem::EwsDisabled(e)
            | ConnectionProblem::Unavailable(e)
            | ConnectionProblem::Other(e) => e,
        }
    }
}

impl fmt::Display for ConnectionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let advice = match self {
            ConnectionProblem::Unreachable(_) => {
                "the EWS endpoint cannot be reached: check the host name, DNS, the firewall and that IIS/EWS runs"
            }
            ConnectionProblem::Tls(_) => {
                "the TLS connection failed: the server's certificate is not trusted, expired, or issued for another name"
            }
            ConnectionProblem::BadCredentials(_) => {
                "the service account's credentials were refused: check user name and password (or the token's app registration)"
            }
            ConnectionProblem::ImpersonationDenied(_) => {
                "the service account may not impersonate this mailbox: grant it the ApplicationImpersonation role (New-ManagementRoleAssignment -Role ApplicationImpersonation -User <account>) with a scope covering the mailbox"
            }
            ConnectionProblem::MailboxNotFound(_) => {
                "the mailbox does not exist: check its primary SMTP address"
            }
            ConnectionProblem::ServerVersionUnsupported(_) => {
                "the server refuses the configured RequestServerVersion: configure an older version (e.g. Exchange2010_SP2)"
            }
            ConnectionProblem::EwsDisabled(_) => {
                "EWS is disabled for this tenant (Exchange Online retires EWS): use the Microsoft Graph adapter"
            }
            ConnectionProblem::Unavailable(_) => "the server is busy or failing: try again later",
            ConnectionProblem::Other(_) => "unexpected answer",
        };
        write!(f, "{advice} ({})", self.error())
    }
}

impl std::error::Error for ConnectionProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

impl Auth {
    /// The scheme name (`Basic`, `Bearer`), for logs.
    pub fn scheme_name(&self) -> &'static str {
        self.scheme()
    }
}
