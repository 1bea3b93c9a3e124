//! A local Microsoft Graph (axum on 127.0.0.1) that behaves like Graph for
//! the probe cycle: it keeps mailboxes, checks the bearer token the local
//! token endpoint issued (signature, audience, lifetime, the app's roles),
//! an application access policy, request shapes as Graph does (sendMail's
//! JSON, the `$filter` forms it evaluates, `$select`, `$top`, `$orderby`
//! rules, unknown query options), delivers sent mail after a delay on the
//! manual clock, pages with `@odata.nextLink`, deletes, injects errors, and
//! counts concurrent requests and requests per window per mailbox, answering
//! 429 as Graph would above its limits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use continuity_core::Clock;
use serde_json::{Value, json};

use crate::token_endpoint::verify_access_token;

mod filter;
mod messages;

use messages::{delete, list, send_mail};

/// The audience of Graph access tokens.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
const PS_INTERNET_HEADERS: &str = "{00020386-0000-0000-C000-000000000046}";
const SELECTABLE: [&str; 9] = [
    "id",
    "subject",
    "receivedDateTime",
    "sentDateTime",
    "internetMessageHeaders",
    "internetMessageId",
    "from",
    "toRecipients",
    "parentFolderId",
];

/// One answer to inject, consumed by the next request (in order).
#[derive(Clone, Debug)]
pub enum Inject {
    /// A Graph JSON error.
    Json {
        /// The HTTP status.
        status: u16,
        /// Graph's error code.
        code: &'static str,
        /// Its message.
        message: &'static str,
        /// `Retry-After`, if any.
        retry_after: Option<&'static str>,
    },
    /// A body that is not Graph's (a gateway's HTML page).
    Raw {
        /// The HTTP status.
        status: u16,
        /// `Content-Type`.
        content_type: &'static str,
        /// The body.
        body: &'static str,
    },
    /// 401 InvalidAuthenticationToken, whatever the token.
    Unauthorized,
    /// The next listing's `@odata.nextLink` points to another host.
    ForeignNextLink,
}

impl Inject {
    /// 403 ErrorAccessDenied, Graph's answer to a missing application permission.
    pub fn access_denied() -> Inject {
        Inject::Json {
            status: 403,
            code: "ErrorAccessDenied",
            message: "Access is denied. Check credentials and try again.",
            retry_after: None,
        }
    }

    /// 429 with `Retry-After` seconds, as the mail resources send it.
    pub fn throttled(retry_after: &'static str) -> Inject {
        Inject::Json {
            status: 429,
            code: "ApplicationThrottled",
            message: "Application is over its MailboxConcurrency limit.",
            retry_after: Some(retry_after),
        }
    }

    /// `status` (503, 504) ServiceUnavailable, with or without `Retry-After`.
    pub fn unavailable(status: u16, retry_after: Option<&'static str>) -> Inject {
        Inject::Json {
            status,
            code: "ServiceUnavailable",
            message: "Service unavailable.",
            retry_after,
        }
    }
}

/// A message held in a mailbox (or sent outside).
#[derive(Clone, Debug)]
pub struct Msg {
    /// Its id.
    pub id: String,
    /// Its subject.
    pub subject: String,
    /// Its internet headers, (name, value).
    pub headers: Vec<(String, String)>,
    /// Whether the probe header has a named property (not on the first delivery of a name).
    pub header_mapped: bool,
    /// The recipient's address.
    pub to: String,
    /// When it is (or was) delivered (server time).
    pub received: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Mailbox {
    inbox: Vec<Msg>,
    junk: Vec<Msg>,
    sent_items: Vec<Msg>,
    deleted_items: Vec<Msg>,
    /// Header names already mapped to a named property (exact spelling).
    known_headers: HashSet<String>,
    /// A spam verdict on everything delivered here.
    junk_everything: bool,
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Logged {
    /// The HTTP method.
    pub method: String,
    /// Path and query as received.
    pub target: String,
    /// The mailbox addressed (`/users/{mailbox}/...`), if any.
    pub mailbox: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The `uti` of the token used.
    pub token: Option<String>,
}

/// The requests of one mailbox, against Graph's per-mailbox limits.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    /// Requests being handled now.
    pub in_flight: usize,
    /// The most handled at once so far.
    pub max_in_flight: usize,
    /// When each request came (server time).
    pub times: Vec<DateTime<Utc>>,
}

impl Usage {
    /// The most requests within any window of `window` (a window is half-open, like Graph's).
    pub fn max_in_window(&self, window: TimeDelta) -> usize {
        let mut times = self.times.clone();
        times.sort();
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| **t < times[i] + window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug)]
struct World {
    mailboxes: HashMap<String, Mailbox>,
    /// appid → the mailboxes its access policy allows (absent: all).
    scope: HashMap<String, HashSet<String>>,
    external: Vec<Msg>,
    delay: TimeDelta,
    injections: VecDeque<Inject>,
    log: Vec<Logged>,
    page_cap: usize,
    next_id: u64,
    concurrency: usize,
    per_window: usize,
    window: TimeDelta,
    usage: HashMap<String, Usage>,
    app_in_flight: usize,
    app_max_in_flight: usize,
    limit_throttles: usize,
}

struct Shared {
    clock: Arc<dyn Clock>,
    world: Mutex<World>,
    holding: AtomicBool,
    gate: tokio::sync::Semaphore,
    base: String,
}

/// The running server; stops when dropped.
pub struct GraphServer {
    /// The service root, `http://127.0.0.1:port/v1.0`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for GraphServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphServer")
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for GraphServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lower(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl GraphServer {
    /// Starts a server on a free loopback port (on the current tokio
    /// runtime); its time is `clock`. It holds no mailbox.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(clock: Arc<dyn Clock>) -> GraphServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1.0", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            clock,
            world: Mutex::new(World {
                mailboxes: HashMap::new(),
                scope: HashMap::new(),
                external: Vec::new(),
                delay: TimeDelta::seconds(30),
                injections: VecDeque::new(),
                log: Vec::new(),
                page_cap: 2,
                next_id: 1,
                concurrency: 4,
                per_window: 10_000,
                window: TimeDelta::minutes(10),
                usage: HashMap::new(),
                app_in_flight: 0,
                app_max_in_flight: 0,
                limit_throttles: 0,
            }),
            holding: AtomicBool::new(false),
            gate: tokio::sync::Semaphore::new(0),
            base: url.clone(),
        });
        let state = shared.clone();
        let task = tokio::spawn(async move {
            let app = axum::Router::new().fallback(handle).with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
        GraphServer { url, shared, task }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.shared.world.lock().unwrap()
    }

    /// Holds a mailbox for `address`.
    pub fn add_mailbox(&self, address: &str) {
        self.world()
            .mailboxes
            .insert(lower(address), Mailbox::default());
    }

    /// Everything delivered to `address` goes to Junk Email.
    pub fn junk_everything(&self, address: &str) {
        self.world()
            .mailboxes
            .get_mut(&lower(address))
            .unwrap()
            .junk_everything = true;
    }

    /// The application access policy of `appid`: only these mailboxes.
    pub fn restrict_app(&self, appid: &str, mailboxes: &[&str]) {
        self.world()
            .scope
            .insert(appid.into(), mailboxes.iter().map(|m| lower(m)).collect());
    }

    /// Messages arrive `d` after they are sent.
    pub fn set_delivery_delay(&self, d: TimeDelta) {
        self.world().delay = d;
    }

    /// Listings answer at most `n` messages a page.
    pub fn set_page_cap(&self, n: usize) {
        self.world().page_cap = n;
    }

    /// Graph's own limits per app and mailbox (429 above them).
    pub fn set_limits(&self, concurrency: usize, per_window: usize, window: TimeDelta) {
        let mut w = self.world();
        w.concurrency = concurrency;
        w.per_window = per_window;
        w.window = window;
    }

    /// Queues an answer for the next request.
    pub fn inject(&self, i: Inject) {
        self.world().injections.push_back(i);
    }

    /// Requests wait at a gate until released.
    pub fn hold(&self) {
        self.shared.holding.store(true, Ordering::SeqCst);
    }

    /// Lets `n` held requests through.
    pub fn release(&self, n: usize) {
        self.shared.gate.add_permits(n);
    }

    /// Stops holding; everything waiting goes on.
    pub fn stop_holding(&self) {
        self.shared.holding.store(false, Ordering::SeqCst);
        self.shared.gate.add_permits(1 << 20);
    }

    /// Delivers a message into `to`'s mailbox as transport would (the inbound path).
    pub fn deliver(&self, to: &str, subject: &str, headers: &[(&str, &str)], at: DateTime<Utc>) {
        let mut w = self.world();
        let delay = w.delay;
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        w.deliver(to, subject, headers, at + delay);
    }

    /// What `address`'s inbox holds now (delivered messages only).
    pub fn inbox(&self, address: &str) -> Vec<Msg> {
        self.world().mailboxes[&lower(address)].inbox.clone()
    }

    /// What `address`'s Junk Email holds now.
    pub fn junk(&self, address: &str) -> Vec<Msg> {
        self.world().mailboxes[&lower(address)].junk.clone()
    }

    /// What `address`'s Sent Items holds.
    pub fn sent_items(&self, address: &str) -> Vec<Msg> {
        self.world().mailboxes[&lower(address)].sent_items.clone()
    }

    /// What `address`'s Deleted Items holds.
    pub fn deleted_items(&self, address: &str) -> Vec<Msg> {
        self.world().mailboxes[&lower(address)]
            .deleted_items
            .clone()
    }

    /// Messages sent to addresses this server does not hold (the gateway's), in order.
    pub fn external(&self) -> Vec<Msg> {
        self.world().external.clone()
    }

    /// The requests received so far.
    pub fn log(&self) -> Vec<Logged> {
        self.world().log.clone()
    }

    /// How many `method` requests had `path_part` in their target.
    pub fn requests(&self, method: &str, path_part: &str) -> usize {
        self.world()
            .log
            .iter()
            .filter(|l| l.method == method && l.target.contains(path_part))
            .count()
    }

    /// The requests of `mailbox` so far.
    pub fn usage(&self, mailbox: &str) -> Usage {
        self.world()
            .usage
            .get(&lower(mailbox))
            .cloned()
            .unwrap_or_default()
    }

    /// Requests of `mailbox` being handled now.
    pub fn in_flight(&self, mailbox: &str) -> usize {
        self.usage(mailbox).in_flight
    }

    /// The most requests handled at once across mailboxes.
    pub fn app_max_in_flight(&self) -> usize {
        self.world().app_max_in_flight
    }

    /// 429s this server answered because a limit was exceeded (not injected ones).
    pub fn limit_throttles(&self) -> usize {
        self.world().limit_throttles
    }
}

impl World {
    fn deliver(
        &mut self,
        to: &str,
        subject: &str,
        headers: Vec<(String, String)>,
        received: DateTime<Utc>,
    ) {
        let id = format!("AAMkAD{:06}/+x=", self.next_id);
        self.next_id += 1;
        let mut msg = Msg {
            id,
            subject: subject.into(),
            headers,
            header_mapped: false,
            to: to.into(),
            received,
        };
        match self.mailboxes.get_mut(&lower(to)) {
            Some(mb) => {
                // A new X-header name gets its named property from the mailbox's second such message on.
                let mut mapped = true;
                for (name, _) in &msg.headers {
                    if name.to_ascii_lowercase().starts_with("x-") {
                        mapped &= !mb.known_headers.insert(name.clone());
                    }
                }
                msg.header_mapped = mapped;
                if mb.junk_everything {
                    mb.junk.push(msg);
                } else {
                    mb.inbox.push(msg);
                }
            }
            None => self.external.push(msg),
        }
    }
}

/// Decodes a query component (`+` is a space there).
fn percent_decode(s: &str) -> Option<String> {
    decode(s, true)
}

/// Decodes a path segment (`+` is itself there).
fn decode_segment(s: &str) -> Option<String> {
    decode(s, false)
}

fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

struct Reply {
    status: u16,
    body: Option<Value>,
    raw: Option<(&'static str, &'static str)>,
    retry_after: Option<String>,
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply {
        status,
        body: Some(json!({ "error": { "code": code, "message": message } })),
        raw: None,
        retry_after: None,
    }
}

fn ok(status: u16, body: Option<Value>) -> Reply {
    Reply {
        status,
        body,
        raw: None,
        retry_after: None,
    }
}

fn denied() -> Reply {
    error(
        403,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let segments: Option<Vec<String>> = uri
        .path()
        .strip_prefix("/v1.0/")
        .unwrap_or("")
        .split('/')
        .map(decode_segment)
        .collect();
    let segments = segments.unwrap_or_default();
    let mailbox = match segments.as_slice() {
        [users, m, ..] if users == "users" => Some(lower(m)),
        _ => None,
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let now = shared.clock.now();
    let claims = auth
        .as_deref()
        .map(|t| verify_access_token(t, GRAPH_AUDIENCE, now.timestamp()));

    // Count the request against its mailbox, as Graph does, refused or not.
    let over_limit = {
        let mut w = shared.world.lock().unwrap();
        w.app_in_flight += 1;
        w.app_max_in_flight = w.app_max_in_flight.max(w.app_in_flight);
        match &mailbox {
            Some(m) => {
                let (concurrency, per_window, window) = (w.concurrency, w.per_window, w.window);
                let u = w.usage.entry(m.clone()).or_default();
                u.in_flight += 1;
                u.max_in_flight = u.max_in_flight.max(u.in_flight);
                u.times.push(now);
                let recent = u.times.iter().filter(|t| **t > now - window).count();
                let over = u.in_flight > concurrency || recent > per_window;
                if over {
                    w.limit_throttles += 1;
                }
                over
            }
            None => false,
        }
    };
    if shared.holding.load(Ordering::SeqCst) {
        shared.gate.acquire().await.unwrap().forget();
    }

    let reply = if over_limit {
        Reply {
            retry_after: Some("10".into()),
            ..error(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            )
        }
    } else {
        answer(
            &shared, &method, &uri, &segments, claims, &headers, &body, now,
        )
    };

    let mut w = shared.world.lock().unwrap();
    w.app_in_flight -= 1;
    if let Some(u) = mailbox.as_ref().and_then(|m| w.usage.get_mut(m)) {
        u.in_flight -= 1;
    }
    let request_id = format!("req-{}", w.log.len() + 1);
    w.log.push(Logged {
        method: method.to_string(),
        target,
        mailbox,
        status: reply.status,
        token: claims_uti(auth.as_deref(), now),
    });
    drop(w);
    render(reply, &request_id, &headers, now)
}

fn claims_uti(token: Option<&str>, now: DateTime<Utc>) -> Option<String> {
    verify_access_token(token?, GRAPH_AUDIENCE, now.timestamp())
        .ok()
        .map(|c| c.uti)
}

fn render(reply: Reply, request_id: &str, req_headers: &HeaderMap, now: DateTime<Utc>) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap();
    let client_request_id = req_headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut resp = match (reply.raw, reply.body) {
        (Some((content_type, body)), _) => {
            let mut r = (status, body).into_response();
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static(content_type));
            r
        }
        (None, Some(mut body)) => {
            if let Some(e) = body.get_mut("error") {
                e["innerError"] = json!({
                    "date": now.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                });
            }
            (status, axum::Json(body)).into_response()
        }
        (None, None) => status.into_response(),
    };
    let h = resp.headers_mut();
    h.insert("request-id", HeaderValue::from_str(request_id).unwrap());
    if let Ok(v) = HeaderValue::from_str(&client_request_id) {
        h.insert("client-request-id", v);
    }
    if let Some(r) = reply.retry_after {
        h.insert("retry-after", HeaderValue::from_str(&r).unwrap());
    }
    resp
}

#[allow(clippy::too_many_arguments)]
fn answer(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    segments: &[String],
    claims: Option<Result<crate::token_endpoint::AccessClaims, String>>,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Reply {
    let mut w = shared.world.lock().unwrap();
    let injected = w.injections.pop_front();
    let mut foreign_next_link = false;
    match injected {
        Some(Inject::Json {
            status,
            code,
            message,
            retry_after,
        }) => {
            return Reply {
                retry_after: retry_after.map(str::to_owned),
                ..error(status, code, message)
            };
        }
        Some(Inject::Raw {
            status,
            content_type,
            body,
        }) => {
            return Reply {
                status,
                body: None,
                raw: Some((content_type, body)),
                retry_after: None,
            };
        }
        Some(Inject::Unauthorized) => {
            return error(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            );
        }
        Some(Inject::ForeignNextLink) => foreign_next_link = true,
        None => {}
    }
    let claims = match claims {
        None => {
            return error(401, "InvalidAuthenticationToken", "Access token is empty.");
        }
        Some(Err(reason)) => {
            return error(
                401,
                "InvalidAuthenticationToken",
                &format!("Access token validation failure: {reason}"),
            );
        }
        Some(Ok(c)) => c,
    };
    let has = |role: &str| claims.roles.iter().any(|r| r == role);
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (user, op) = match (method.as_str(), seg.as_slice()) {
        ("POST", ["users", u, "sendMail"]) => (*u, "send"),
        ("GET", ["users", u, "mailFolders", _, "messages"]) => (*u, "list"),
        ("DELETE", ["users", u, "messages", _]) => (*u, "delete"),
        ("POST", ["users", u, "messages", _, "permanentDelete"]) => (*u, "purge"),
        _ => {
            return error(
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    seg.last().unwrap_or(&"")
                ),
            );
        }
    };
    let allowed = match op {
        "send" => has("Mail.Send"),
        "list" => has("Mail.Read") || has("Mail.ReadWrite") || has("Mail.ReadBasic.All"),
        _ => has("Mail.ReadWrite"),
    };
    if !allowed {
        return denied();
    }
    let key = lower(user);
    if !w.mailboxes.contains_key(&key) {
        return error(
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{user}' is invalid."),
        );
    }
    if w.scope
        .get(&claims.appid)
        .is_some_and(|s| !s.contains(&key))
    {
        return error(403, "ErrorAccessDenied", "Access to OData is disabled.");
    }
    match op {
        "send" => send_mail(&mut w, &key, headers, body, now),
        "list" => {
            let base = shared.base.clone();
            list(&mut w, &key, seg[3], uri, &base, foreign_next_link, now)
        }
        _ => delete(&mut w, &key, seg[3], op == "purge"),
    }
}
