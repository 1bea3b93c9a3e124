//! The EWS HTTP client: one per service account.
//!
//! It sends the SOAP bodies of [`request`] over HTTPS with
//! Basic or Bearer authentication, impersonating a mailbox (the
//! `ExchangeImpersonation` header and `X-AnchorMailbox`), caps concurrency,
//! honours the server's back-off, retries what can succeed on retry, and
//! turns every answer into a typed result.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
#[cfg(feature = "ntlm")]
use continuity_core::Clock;
use continuity_core::access_token::AccessTokenSource;
use reqwest::{
    StatusCode, Url,
    header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT},
};
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;

use crate::{
    error::{EwsError, Result, excerpt},
    request::{self, DeleteType, Envelope, FindQuery, Folder, ItemId, ProbeMessage},
    response::{HttpMeta, Item, Response, looks_disabled, parse_http},
    throttle::{BackOff, Jitter, SendPacer},
};

mod config;
mod connection_check;

pub use config::{
    Auth, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MIN_SEND_INTERVAL, DEFAULT_NTLM_WORKSTATION, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_USER_AGENT, EwsConfig, EwsRetryPolicy,
};
pub use connection_check::{EwsConnectionInfo, EwsConnectionProblem};

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
                if let Ok(t) = source.access_token().await {
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
                        let access_token =
                            source
                                .access_token()
                                .await
                                .map_err(|e| EwsError::AccessToken {
                                    retryable: e.is_retryable(),
                                    message: e.to_string(),
                                })?;
                        req.bearer_auth(access_token.secret().expose())
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
        let with_auth = |ntlm_message: String| -> Result<HeaderMap> {
            let mut h = headers.clone();
            let v = HeaderValue::from_str(&format!("NTLM {ntlm_message}")).map_err(|e| {
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
        let authenticate_message = crate::ntlm::authenticate(
            &challenge?,
            domain,
            username,
            password.expose_secret(),
            workstation,
            cfg.clock.now(),
        )?;
        let authenticate = with_auth(authenticate_message)?;
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
    continuity_core::arrival::carries_probe_token(
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
