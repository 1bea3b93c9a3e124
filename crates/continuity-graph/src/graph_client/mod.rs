//! The Microsoft Graph client of the probe cycle (PROTOCOLS.md §7): send a
//! message, find a probe in a mailbox folder, delete it. Every request
//! carries a bearer token from an [`AccessTokenSource`], passes the
//! [`Limiter`], and comes back as data or a typed [`GraphError`] that keeps
//! Graph's JSON error body.
//!
//! No timed retries: a 401 is answered by dropping the token and asking once
//! more at once; a 429 (or 503/504 with `Retry-After`) holds the mailbox back
//! in the limiter and is returned, so the caller's next round is the retry.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use continuity_core::Clock;
use continuity_core::access_token::{AccessToken, AccessTokenSource};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, USER_AGENT};
use reqwest::{Method, Url};
use serde_json::json;

use crate::app_registration::random_uuid;
use crate::error::{GraphError, GraphOperation};
use crate::limiter::Limiter;
use crate::odata::{self, MESSAGE_SELECT, MailFolder};

mod answer;
mod config;
mod message;
#[cfg(test)]
mod tests;

use answer::{Answer, graph_error};
use message::{Message, Page};

pub use config::{
    DEFAULT_GRAPH_CONNECT_TIMEOUT, DEFAULT_GRAPH_MAX_RESPONSE_BYTES, DEFAULT_GRAPH_TIMEOUT,
    DEFAULT_GRAPH_USER_AGENT, DEFAULT_MAX_PAGES, DEFAULT_PAGE_SIZE, DeleteMode, GraphConfig,
};
pub use message::{FoundMessage, MailMessage};

/// Idle connections kept to Graph (per host), for all the applications
/// sharing a client's pool.
const IDLE_CONNECTIONS: usize = 32;

/// Wait after a 429 that names no `Retry-After` (Graph's mail resources
/// normally send one).
const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(60);

/// A Microsoft Graph client for one application registration (one token
/// source). Cheap to clone; clones share the connection pool and the limiter.
#[derive(Clone, Debug)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    root: Url,
    cfg: GraphConfig,
    access_tokens: Arc<dyn AccessTokenSource>,
    limiter: Arc<Limiter>,
    clock: Arc<dyn Clock>,
}

impl GraphClient {
    /// A client for `cfg`, with access tokens from `access_tokens` and its own limiter on `clock`.
    pub fn new(
        cfg: GraphConfig,
        access_tokens: Arc<dyn AccessTokenSource>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, GraphError> {
        let limiter = Limiter::new(cfg.limits, clock.clone())?;
        Self::build(cfg, access_tokens, limiter, clock)
    }

    /// A client sharing `limiter` with the application's other clients
    /// (`cfg.limits` is then the limiter's, not the config's).
    pub fn with_limiter(
        cfg: GraphConfig,
        access_tokens: Arc<dyn AccessTokenSource>,
        limiter: Arc<Limiter>,
    ) -> Result<Self, GraphError> {
        let clock = limiter.clock().clone();
        Self::build(cfg, access_tokens, limiter, clock)
    }

    fn build(
        mut cfg: GraphConfig,
        access_tokens: Arc<dyn AccessTokenSource>,
        limiter: Arc<Limiter>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, GraphError> {
        let root = cfg.validate()?;
        cfg.limits = limiter.limits();
        let http = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.connect_timeout)
            // Shared by every application derived with `for_app`.
            .pool_max_idle_per_host(IDLE_CONNECTIONS)
            // A redirect could carry the token elsewhere; Graph does not redirect these calls.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!cfg.allow_plain_http)
            .build()
            .map_err(|e| GraphError::InvalidConfig {
                field: "endpoint",
                reason: format!("HTTP client: {e}"),
            })?;
        Ok(GraphClient {
            inner: Arc::new(Inner {
                http,
                root,
                cfg,
                access_tokens,
                limiter,
                clock,
            }),
        })
    }

    /// A client for another application registration (its own `access_tokens` and
    /// a limiter of its own with the same limits and clock) over this
    /// client's HTTP connection pool and settings. A fleet builds one client
    /// with [`new`](GraphClient::new) and derives every tenant's from it:
    /// each HTTP stack costs milliseconds and about 100 KB (TLS roots, pool),
    /// which thousands of tenants would multiply.
    pub fn for_app(&self, access_tokens: Arc<dyn AccessTokenSource>) -> Result<Self, GraphError> {
        let limiter = Limiter::new(self.inner.cfg.limits, self.inner.clock.clone())?;
        Ok(self.share_http(access_tokens, limiter))
    }

    /// Like [`for_app`](GraphClient::for_app), sharing `limiter` (one per
    /// application, for several clients of the same application).
    pub fn for_app_with_limiter(
        &self,
        access_tokens: Arc<dyn AccessTokenSource>,
        limiter: Arc<Limiter>,
    ) -> Self {
        self.share_http(access_tokens, limiter)
    }

    fn share_http(&self, access_tokens: Arc<dyn AccessTokenSource>, limiter: Arc<Limiter>) -> Self {
        let mut cfg = self.inner.cfg.clone();
        cfg.limits = limiter.limits();
        GraphClient {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                root: self.inner.root.clone(),
                cfg,
                access_tokens,
                clock: limiter.clock().clone(),
                limiter,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GraphConfig {
        &self.inner.cfg
    }

    /// The limiter requests pass.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.inner.limiter
    }

    /// Sends `message` from `from` (`POST /users/{from}/sendMail`). Graph
    /// answers 202 when it accepted the message, which is not delivery.
    pub async fn send_mail(&self, from: &str, message: &MailMessage<'_>) -> Result<(), GraphError> {
        let headers: Vec<_> = message
            .headers
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        let mut mail = json!({
            "subject": message.subject,
            "body": { "contentType": "Text", "content": message.body },
            "toRecipients": [ { "emailAddress": { "address": message.to } } ],
        });
        if !headers.is_empty() {
            mail["internetMessageHeaders"] = headers.into();
        }
        let body = json!({ "message": mail, "saveToSentItems": message.save_to_sent_items });
        let url = self.url(&["users", from, "sendMail"], None)?;
        self.request(
            GraphOperation::SendMail,
            from,
            Method::POST,
            url,
            Some(body.to_string().into_bytes()),
        )
        .await?;
        Ok(())
    }

    /// Finds the probe carrying `token` in `mailbox`'s `folders`, stopping at
    /// the first folder holding it: by the named property of `header` first,
    /// then by the subject among messages received from `received_after` on.
    /// Only exact matches are returned (header value or subject probe token).
    pub async fn find_probe(
        &self,
        mailbox: &str,
        header: &str,
        probe_token: &str,
        folders: &[MailFolder],
        received_after: DateTime<Utc>,
    ) -> Result<Vec<FoundMessage>, GraphError> {
        for &folder in folders {
            for by_header in [true, false] {
                let filter = if by_header {
                    odata::header_filter(header, probe_token)
                } else {
                    odata::subject_filter(probe_token, received_after)
                };
                let found: Vec<FoundMessage> = self
                    .list_messages(mailbox, folder, &filter)
                    .await?
                    .into_iter()
                    .filter_map(|m| {
                        let probe_header = m.headers.as_ref().and_then(|hs| {
                            hs.iter()
                                .find(|h| h.name.eq_ignore_ascii_case(header))
                                .map(|h| h.value.trim().to_owned())
                        });
                        continuity_core::arrival::carries_probe_token(
                            m.subject.as_deref(),
                            probe_header.as_deref(),
                            probe_token,
                        )
                        .then_some(FoundMessage {
                            id: m.id,
                            subject: m.subject,
                            received: m.received,
                            probe_header,
                            folder,
                            by_header,
                        })
                    })
                    .collect();
                if !found.is_empty() {
                    return Ok(found);
                }
            }
        }
        Ok(Vec::new())
    }

    /// The messages of `folder` matching `filter`, following `@odata.nextLink`.
    async fn list_messages(
        &self,
        mailbox: &str,
        folder: MailFolder,
        filter: &str,
    ) -> Result<Vec<Message>, GraphError> {
        let top = self.inner.cfg.page_size.to_string();
        let query = odata::query(&[
            ("$filter", filter),
            ("$select", MESSAGE_SELECT),
            ("$top", &top),
        ]);
        let mut url = self.url(
            &[
                "users",
                mailbox,
                "mailFolders",
                folder.well_known_name(),
                "messages",
            ],
            Some(&query),
        )?;
        let mut out = Vec::new();
        for _ in 0..self.inner.cfg.max_pages {
            let answer = self
                .request(
                    GraphOperation::ListMessages,
                    mailbox,
                    Method::GET,
                    url,
                    None,
                )
                .await?;
            let page: Page =
                serde_json::from_slice(&answer.body).map_err(|e| GraphError::GraphResponse {
                    operation: GraphOperation::ListMessages,
                    status: answer.status,
                    reason: format!("not a message collection: {e}"),
                })?;
            out.extend(page.value);
            match page.next_link {
                Some(link) => url = self.next_link(&link)?,
                None => return Ok(out),
            }
        }
        tracing::warn!(
            mailbox,
            pages = self.inner.cfg.max_pages,
            "more probe candidates than pages followed"
        );
        Ok(out)
    }

    /// Removes message `id` from `mailbox` (see [`DeleteMode`]); a message
    /// already gone counts as removed.
    pub async fn delete_message(&self, mailbox: &str, id: &str) -> Result<(), GraphError> {
        let (method, url) = match self.inner.cfg.delete_mode {
            DeleteMode::Permanent => (
                Method::POST,
                self.url(&["users", mailbox, "messages", id, "permanentDelete"], None)?,
            ),
            DeleteMode::MoveToDeletedItems => (
                Method::DELETE,
                self.url(&["users", mailbox, "messages", id], None)?,
            ),
        };
        match self
            .request(GraphOperation::DeleteMessage, mailbox, method, url, None)
            .await
        {
            Err(GraphError::Graph {
                status: 404, code, ..
            }) if code == "ErrorItemNotFound" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The first page (`$top=1`, ids only) of `mailbox`'s Inbox: the
    /// connection check's read.
    pub(crate) async fn peek_inbox(&self, mailbox: &str) -> Result<(), GraphError> {
        let query = odata::query(&[("$select", "id"), ("$top", "1")]);
        let url = self.url(
            &["users", mailbox, "mailFolders", "inbox", "messages"],
            Some(&query),
        )?;
        self.request(
            GraphOperation::ListMessages,
            mailbox,
            Method::GET,
            url,
            None,
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn access_token(&self) -> Result<AccessToken, GraphError> {
        self.inner
            .access_tokens
            .access_token()
            .await
            .map_err(GraphError::from_token_source)
    }

    fn url(&self, segments: &[&str], query: Option<&str>) -> Result<Url, GraphError> {
        let mut url = self.inner.root.clone();
        url.path_segments_mut()
            .map_err(|()| GraphError::InvalidConfig {
                field: "endpoint",
                reason: "not a base URL".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        url.set_query(query);
        Ok(url)
    }

    /// `@odata.nextLink`, followed verbatim, but only within the service
    /// root: the bearer token goes nowhere else.
    fn next_link(&self, link: &str) -> Result<Url, GraphError> {
        let root = &self.inner.root;
        let refuse = |reason: String| GraphError::GraphResponse {
            operation: GraphOperation::ListMessages,
            status: 200,
            reason,
        };
        let url = Url::parse(link).map_err(|e| refuse(format!("@odata.nextLink {link:?}: {e}")))?;
        let same_origin = url.scheme() == root.scheme()
            && url.host_str() == root.host_str()
            && url.port_or_known_default() == root.port_or_known_default();
        let root_path = root.path().trim_end_matches('/');
        let within = url.path() == root_path || url.path().starts_with(&format!("{root_path}/"));
        if !(same_origin && within) {
            return Err(refuse(format!(
                "@odata.nextLink leaves the Graph endpoint {}: {}",
                root.as_str(),
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// One request through the limiter, with a fresh token once after a 401.
    pub(crate) async fn request(
        &self,
        operation: GraphOperation,
        mailbox: &str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, GraphError> {
        let inner = &*self.inner;
        let mut refreshed = false;
        loop {
            let access_token = self.access_token().await?;
            let admission = inner.limiter.admit(mailbox).await?;
            let answer = self
                .exchange(
                    operation,
                    method.clone(),
                    url.clone(),
                    body.clone(),
                    &access_token,
                )
                .await;
            drop(admission);
            let answer = answer?;
            log_answer(operation, mailbox, &answer);
            if (200..300).contains(&answer.status) {
                return Ok(answer);
            }
            // An expired or revoked access token is dropped and replaced, once.
            if answer.status == 401 && !refreshed {
                refreshed = true;
                inner.access_tokens.invalidate(&access_token);
                continue;
            }
            let e = graph_error(operation, &answer, inner.clock.now());
            if e.is_throttling() {
                let wait = e.retry_after().unwrap_or(DEFAULT_THROTTLE_WAIT);
                inner.limiter.back_off(mailbox, wait);
            }
            return Err(e);
        }
    }

    async fn exchange(
        &self,
        operation: GraphOperation,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        access_token: &AccessToken,
    ) -> Result<Answer, GraphError> {
        let inner = &*self.inner;
        let unreachable = |e: reqwest::Error| GraphError::GraphUnreachable {
            operation,
            reason: if e.is_timeout() {
                format!(
                    "no answer within {} s",
                    inner.cfg.request_timeout.as_secs_f32()
                )
            } else {
                continuity_core::error::error_causes(&e)
            },
        };
        let mut req = inner
            .http
            .request(method.clone(), url)
            .bearer_auth(access_token.secret().expose())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, &inner.cfg.user_agent)
            .header("client-request-id", random_uuid())
            .header("return-client-request-id", "true");
        let post = method == Method::POST;
        req = match body {
            Some(b) => req.header(CONTENT_TYPE, "application/json").body(b),
            // permanentDelete is a POST without a body: say so, or a front end may ask for a length (411).
            None if post => req.header(reqwest::header::CONTENT_LENGTH, "0"),
            None => req,
        };
        let mut resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let limit = inner.cfg.max_response_bytes;
        let too_large = || GraphError::GraphResponse {
            operation,
            status,
            reason: format!("answer larger than {limit} bytes"),
        };
        if resp.content_length().is_some_and(|l| l > limit as u64) {
            return Err(too_large());
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body: buf,
        })
    }
}

pub(super) fn header(
    headers: &HeaderMap,
    name: impl reqwest::header::AsHeaderName,
) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Logs Graph's request ids with every answer: they let Microsoft support find the request.
fn log_answer(operation: GraphOperation, mailbox: &str, answer: &Answer) {
    tracing::debug!(
        %operation,
        mailbox,
        status = answer.status,
        request_id = header(&answer.headers, "request-id"),
        client_request_id = header(&answer.headers, "client-request-id"),
        diagnostic = header(&answer.headers, "x-ms-ags-diagnostic"),
        "Graph answer"
    );
}
