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

use super::verify_access_token;

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
        status: u16,
        code: &'static str,
        message: &'static str,
        retry_after: Option<&'static str>,
    },
    /// A body that is not Graph's (a gateway's HTML page).
    Raw {
        status: u16,
        content_type: &'static str,
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

#[derive(Clone, Debug)]
pub struct Msg {
    pub id: String,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    /// Whether the probe header has a named property (not on the first delivery of a name).
    pub header_mapped: bool,
    pub to: String,
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

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// Path and query as received.
    pub target: String,
    pub mailbox: Option<String>,
    pub status: u16,
    /// The `uti` of the token used.
    pub token: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub in_flight: usize,
    pub max_in_flight: usize,
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

    pub fn set_delivery_delay(&self, d: TimeDelta) {
        self.world().delay = d;
    }

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

    pub fn inbox(&self, address: &str) -> Vec<Msg> {
        self.world().mailboxes[&lower(address)].inbox.clone()
    }

    pub fn junk(&self, address: &str) -> Vec<Msg> {
        self.world().mailboxes[&lower(address)].junk.clone()
    }

    pub fn sent_items(&self, address: &str) -> Vec<Msg> {
        self.world().mailboxes[&lower(address)].sent_items.clone()
    }

    pub fn deleted_items(&self, address: &str) -> Vec<Msg> {
        self.world().mailboxes[&lower(address)]
            .deleted_items
            .clone()
    }

    /// Messages sent to addresses this server does not hold (the gateway's), in order.
    pub fn external(&self) -> Vec<Msg> {
        self.world().external.clone()
    }

    pub fn log(&self) -> Vec<Logged> {
        self.world().log.clone()
    }

    pub fn requests(&self, method: &str, path_part: &str) -> usize {
        self.world()
            .log
            .iter()
            .filter(|l| l.method == method && l.target.contains(path_part))
            .count()
    }

    pub fn usage(&self, mailbox: &str) -> Usage {
        self.world()
            .usage
            .get(&lower(mailbox))
            .cloned()
            .unwrap_or_default()
    }

    pub fn in_flight(&self, mailbox: &str) -> usize {
        self.usage(mailbox).in_flight
    }

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
    claims: Option<Result<super::AccessClaims, String>>,
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

fn send_mail(
    w: &mut World,
    from: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Reply {
    let bad = |m: &str| error(400, "ErrorInvalidRequest", m);
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return error(
            415,
            "UnsupportedMediaType",
            "Content-Type application/json expected.",
        );
    }
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) else {
        return error(400, "BadRequest", "Unable to read JSON request payload.");
    };
    for k in top.keys() {
        if k != "message" && k != "saveToSentItems" {
            return error(
                400,
                "BadRequest",
                &format!("The property '{k}' does not exist on type 'microsoft.graph.sendMail'."),
            );
        }
    }
    let save = match top.get("saveToSentItems") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return bad("saveToSentItems must be a boolean."),
    };
    let Some(Value::Object(m)) = top.get("message") else {
        return bad("The message is missing.");
    };
    let Some(subject) = m.get("subject").and_then(Value::as_str) else {
        return bad("The subject is missing.");
    };
    let body_ok = m.get("body").is_some_and(|b| {
        b["content"].is_string()
            && b["contentType"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("text") || t.eq_ignore_ascii_case("html"))
    });
    if !body_ok {
        return bad("The body needs contentType Text or HTML and a content.");
    }
    let recipients: Vec<String> = match m.get("toRecipients") {
        Some(Value::Array(rs)) if !rs.is_empty() => {
            match rs
                .iter()
                .map(|r| r["emailAddress"]["address"].as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
            {
                Some(v) if v.iter().all(|a| a.contains('@')) => v,
                _ => {
                    return error(
                        400,
                        "ErrorInvalidRecipients",
                        "At least one recipient is not valid.",
                    );
                }
            }
        }
        _ => {
            return error(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient is not valid.",
            );
        }
    };
    let mut internet_headers = Vec::new();
    if let Some(hs) = m.get("internetMessageHeaders") {
        let Some(hs) = hs.as_array() else {
            return bad("internetMessageHeaders must be an array.");
        };
        for h in hs {
            let (Some(name), Some(value)) = (h["name"].as_str(), h["value"].as_str()) else {
                return bad("An internet message header needs a name and a value.");
            };
            if !(name.starts_with("x-") || name.starts_with("X-")) {
                return error(
                    400,
                    "InvalidInternetMessageHeader",
                    &format!(
                        "The internet message header name '{name}' should start with 'x-' or 'X-'."
                    ),
                );
            }
            internet_headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let at = now + w.delay;
    for to in &recipients {
        w.deliver(to, subject, internet_headers.clone(), at);
    }
    if save {
        let id = format!("sent-{}", w.next_id);
        w.next_id += 1;
        w.mailboxes.get_mut(from).unwrap().sent_items.push(Msg {
            id,
            subject: subject.into(),
            headers: internet_headers,
            header_mapped: true,
            to: recipients.join(","),
            received: now,
        });
    }
    ok(202, None)
}

#[derive(Debug)]
enum Clause {
    ReceivedGe(DateTime<Utc>),
    SubjectContains(String),
    Header { name: String, value: String },
}

/// An OData string literal at the start of `s`: (value, rest).
fn literal(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if s[i + 1..].starts_with('\'') {
                out.push('\'');
                chars.next();
            } else {
                return Some((out, &s[i + 1..]));
            }
        } else {
            out.push(c);
        }
    }
    None
}

fn parse_clause(s: &str) -> Result<(Clause, &str), String> {
    let invalid = || format!("Invalid filter clause: {s}");
    if let Some(rest) = s.strip_prefix("receivedDateTime ge ") {
        let end = rest.find(' ').unwrap_or(rest.len());
        let at = rest[..end].parse().map_err(|_| invalid())?;
        return Ok((Clause::ReceivedGe(at), &rest[end..]));
    }
    if let Some(rest) = s.strip_prefix("contains(subject,") {
        let (v, rest) = literal(rest.trim_start()).ok_or_else(invalid)?;
        let rest = rest.strip_prefix(')').ok_or_else(invalid)?;
        return Ok((Clause::SubjectContains(v), rest));
    }
    if let Some(rest) = s.strip_prefix("singleValueExtendedProperties/any(ep: ep/id eq ") {
        let (id, rest) = literal(rest).ok_or_else(invalid)?;
        let rest = rest.strip_prefix(" and ep/value eq ").ok_or_else(invalid)?;
        let (value, rest) = literal(rest).ok_or_else(invalid)?;
        let rest = rest.strip_prefix(')').ok_or_else(invalid)?;
        let name = id
            .strip_prefix("String ")
            .and_then(|r| {
                let (guid, name) = r.split_once(" Name ")?;
                guid.eq_ignore_ascii_case(PS_INTERNET_HEADERS)
                    .then_some(name)
            })
            .ok_or_else(|| format!("The extended property id '{id}' is not valid."))?;
        return Ok((
            Clause::Header {
                name: name.to_owned(),
                value,
            },
            rest,
        ));
    }
    Err(invalid())
}

fn parse_filter(f: &str) -> Result<Vec<Clause>, String> {
    let mut clauses = Vec::new();
    let mut rest = f.trim();
    loop {
        let (c, r) = parse_clause(rest)?;
        clauses.push(c);
        rest = r.trim_start();
        if rest.is_empty() {
            return Ok(clauses);
        }
        rest = rest
            .strip_prefix("and ")
            .ok_or_else(|| format!("Invalid filter clause near '{rest}'"))?;
    }
}

fn matches(m: &Msg, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| match c {
        Clause::ReceivedGe(at) => m.received >= *at,
        Clause::SubjectContains(v) => m.subject.to_lowercase().contains(&v.to_lowercase()),
        Clause::Header { name, value } => {
            m.header_mapped
                && m.headers
                    .iter()
                    .any(|(n, v)| n == name && v.eq_ignore_ascii_case(value))
        }
    })
}

fn list(
    w: &mut World,
    mailbox: &str,
    folder: &str,
    uri: &Uri,
    base: &str,
    foreign_next_link: bool,
    now: DateTime<Utc>,
) -> Reply {
    let query = uri.query().unwrap_or("");
    let mut options: HashMap<String, String> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (percent_decode(k), percent_decode(v)) else {
            return error(400, "BadRequest", "Malformed query string.");
        };
        if !k.starts_with('$') {
            continue;
        }
        if !["$filter", "$select", "$top", "$skip", "$orderby"].contains(&k.as_str()) {
            return error(
                400,
                "BadRequest",
                &format!("Query option '{k}' is not allowed."),
            );
        }
        if options.insert(k.clone(), v).is_some() {
            return error(
                400,
                "BadRequest",
                &format!("Query option '{k}' was specified more than once."),
            );
        }
    }
    let clauses = match options.get("$filter").map(|f| parse_filter(f)) {
        None => Vec::new(),
        Some(Ok(c)) => c,
        Some(Err(e)) => return error(400, "BadRequest", &e),
    };
    // Graph takes contains(subject, …) only after a date restriction.
    let subject_at = clauses
        .iter()
        .position(|c| matches!(c, Clause::SubjectContains(_)));
    let dated = |i: usize| {
        clauses[..i]
            .iter()
            .any(|c| matches!(c, Clause::ReceivedGe(_)))
    };
    if subject_at.is_some_and(|i| !dated(i)) {
        return error(
            400,
            "InefficientFilter",
            "The restriction or sort order is too complex for this operation.",
        );
    }
    if let Some(order) = options.get("$orderby") {
        let prop = order.split_whitespace().next().unwrap_or("");
        if !matches!(clauses.first(), Some(Clause::ReceivedGe(_))) || prop != "receivedDateTime" {
            return error(
                400,
                "InefficientFilter",
                "The restriction or sort order is too complex for this operation.",
            );
        }
    }
    let select: Vec<String> = match options.get("$select") {
        Some(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        None => SELECTABLE.iter().map(|s| s.to_string()).collect(),
    };
    if let Some(p) = select.iter().find(|p| !SELECTABLE.contains(&p.as_str())) {
        return error(
            400,
            "RequestBroker--ParseUri",
            &format!("Could not find a property named '{p}' on type 'microsoft.graph.message'."),
        );
    }
    let top = match options.get("$top").map(|t| t.parse::<usize>()) {
        None => 10,
        Some(Ok(t)) if (1..=1000).contains(&t) => t,
        _ => return error(400, "BadRequest", "Invalid $top value."),
    };
    let skip = match options.get("$skip").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(s)) => s,
        Some(Err(_)) => return error(400, "BadRequest", "Invalid $skip value."),
    };
    let mb = &w.mailboxes[mailbox];
    let messages = match folder.to_ascii_lowercase().as_str() {
        "inbox" => &mb.inbox,
        "junkemail" => &mb.junk,
        "sentitems" => &mb.sent_items,
        "deleteditems" => &mb.deleted_items,
        other => {
            return error(
                404,
                "ErrorItemNotFound",
                &format!("The specified folder '{other}' could not be found in the store."),
            );
        }
    };
    let mut hits: Vec<&Msg> = messages
        .iter()
        .filter(|m| m.received <= now && matches(m, &clauses))
        .collect();
    // Graph's default order: newest first.
    hits.sort_by_key(|m| std::cmp::Reverse(m.received));
    let page = top.min(w.page_cap);
    let value: Vec<Value> = hits
        .iter()
        .skip(skip)
        .take(page)
        .map(|m| {
            let mut o = serde_json::Map::new();
            o.insert("@odata.etag".into(), json!(format!("W/\"{}\"", m.id)));
            for p in &select {
                let v = match p.as_str() {
                    "id" => json!(m.id),
                    "subject" => json!(m.subject),
                    "receivedDateTime" | "sentDateTime" => {
                        json!(m.received.to_rfc3339_opts(SecondsFormat::Secs, true))
                    }
                    "internetMessageHeaders" => Value::Array(
                        m.headers
                            .iter()
                            .map(|(n, v)| json!({ "name": n, "value": v }))
                            .chain([json!({ "name": "Received", "value": "from gateway.example by EXO" })])
                            .collect(),
                    ),
                    _ => Value::Null,
                };
                o.insert(p.clone(), v);
            }
            Value::Object(o)
        })
        .collect();
    let mut body = json!({
        "@odata.context": format!("{base}/$metadata#users('{mailbox}')/mailFolders('{folder}')/messages"),
        "value": value,
    });
    if skip + page < hits.len() {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with("%24skip=") && !p.starts_with("$skip="))
            .collect();
        let origin = if foreign_next_link {
            "https://graph.attacker.example/v1.0".to_owned()
        } else {
            base.to_owned()
        };
        body["@odata.nextLink"] = json!(format!(
            "{origin}/users/{mailbox}/mailFolders/{folder}/messages?{}&%24skip={}",
            kept.join("&"),
            skip + page
        ));
    }
    ok(200, Some(body))
}

fn delete(w: &mut World, mailbox: &str, id: &str, purge: bool) -> Reply {
    let mb = w.mailboxes.get_mut(mailbox).unwrap();
    for folder in [&mut mb.inbox, &mut mb.junk, &mut mb.sent_items] {
        if let Some(i) = folder.iter().position(|m| m.id == id) {
            let m = folder.remove(i);
            if !purge {
                mb.deleted_items.push(m);
            }
            return ok(204, None);
        }
    }
    if let Some(i) = mb.deleted_items.iter().position(|m| m.id == id) {
        mb.deleted_items.remove(i);
        return ok(204, None);
    }
    error(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}
