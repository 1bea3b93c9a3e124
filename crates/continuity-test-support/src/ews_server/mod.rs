//! A local EWS server (axum on 127.0.0.1) that behaves like Exchange for the
//! probe cycle: it keeps mailboxes, delivers CreateItem messages to the
//! mailboxes it holds after a configurable delay, evaluates FindItem
//! restrictions, checks credentials, the impersonation right and
//! `X-AnchorMailbox`, validates every request body against Microsoft's
//! schema, and injects errors, slow answers and hangs on request.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use continuity_core::Clock;

use crate::ews_schema as schema;

mod dom;
mod items;

use dom::{El, M, SOAP, T, esc};
use items::{create_item, delete_item, find_item, get_item};

/// The internet header carrying a probe's id (the one the EWS probe sets).
pub const PROBE_HEADER: &str = "X-Continuity-Probe-Id";

/// One answer to inject (consumed by the next request, in order).
#[derive(Clone, Debug)]
pub enum Inject {
    /// SOAP fault `ErrorServerBusy` (HTTP 500) with BackOffMilliseconds.
    BusyFault(u64),
    /// ErrorServerBusy as a response message (HTTP 200).
    BusyResponse(u64),
    /// Any SOAP fault (HTTP 500).
    Fault {
        /// The fault code (`ErrorAccessDenied`, ...).
        code: &'static str,
        /// Its text.
        message: &'static str,
    },
    /// A response message with ResponseClass=Error.
    ResponseError {
        /// The response code.
        code: &'static str,
        /// Its message text.
        message: &'static str,
    },
    /// A raw HTTP answer (HTML page, empty body), with optional Retry-After.
    Http {
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
        /// `Content-Type`, if any.
        content_type: Option<&'static str>,
        /// The body.
        body: &'static str,
    },
    /// 302 to genericerrorpage.htm.
    Redirect,
    /// 403 with the text Exchange Online might send when EWS is off.
    EwsDisabled,
    /// Answer normally, after this delay.
    Delay(Duration),
    /// Never answer.
    Hang,
}

/// A message held in a mailbox.
#[derive(Clone, Debug)]
pub struct Msg {
    /// Its item id.
    pub id: String,
    /// Its subject.
    pub subject: String,
    /// The X-header value as stored in the mailbox (None when not provisioned yet).
    pub probe_header: Option<String>,
    /// The sender's address.
    pub from: String,
    /// The recipient's address.
    pub to: String,
    /// When it was sent (server time).
    pub sent: DateTime<Utc>,
    /// When it is (or was) delivered (server time).
    pub received: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Mailbox {
    inbox: Vec<Msg>,
    sent_items: Vec<Msg>,
    /// Header names already mapped to a named property.
    known_headers: HashSet<String>,
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The SOAP operation (`CreateItem`, `FindItem`, ...).
    pub operation: String,
    /// The impersonated mailbox (`ExchangeImpersonation`), if any.
    pub impersonated: Option<String>,
    /// The `X-AnchorMailbox` header, if any.
    pub anchor: Option<String>,
    /// The `Authorization` scheme (`Basic`, `Bearer`, `NTLM`), if any.
    pub auth_scheme: Option<String>,
    /// The request body.
    pub body: String,
}

/// Validates a bearer token as Exchange Online does (signature, audience,
/// lifetime, roles): `Ok(may_impersonate)` or the reason it is refused.
pub type TokenCheck = Arc<dyn Fn(&str) -> Result<bool, String> + Send + Sync>;

struct CheckFn(TokenCheck);

impl std::fmt::Debug for CheckFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck")
    }
}

#[derive(Debug)]
struct World {
    accounts: HashMap<String, (String, bool)>,
    tokens: HashMap<String, bool>,
    token_check: Option<CheckFn>,
    mailboxes: HashMap<String, Mailbox>,
    external: Vec<Msg>,
    delay: TimeDelta,
    injections: VecDeque<Inject>,
    log: Vec<Logged>,
    violations: Vec<String>,
    next_id: u64,
    refused_versions: HashSet<String>,
    page_cap: usize,
}

#[derive(Debug)]
struct Shared {
    clock: Arc<dyn Clock>,
    world: Mutex<World>,
    validate: bool,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct EwsServer {
    /// The EWS endpoint, `http://127.0.0.1:<port>/EWS/Exchange.asmx`.
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EwsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EwsServer {
    /// A server with schema validation of every request.
    /// Starts a server on a free loopback port (on the current tokio
    /// runtime) that validates every request against the schema; its time
    /// is `clock`. It starts with no account, token or mailbox, and
    /// delivers after 20 seconds.
    pub async fn start(clock: Arc<dyn Clock>) -> Self {
        Self::start_with(clock, true).await
    }

    /// [`EwsServer::start`], validating each request as it comes only when
    /// `validate` (otherwise [`EwsServer::validate_log`] does it in one run).
    pub async fn start_with(clock: Arc<dyn Clock>, validate: bool) -> Self {
        if validate {
            let _ = schema::driver();
        }
        let shared = Arc::new(Shared {
            clock,
            world: Mutex::new(World {
                accounts: HashMap::new(),
                tokens: HashMap::new(),
                token_check: None,
                mailboxes: HashMap::new(),
                external: Vec::new(),
                delay: TimeDelta::seconds(20),
                injections: VecDeque::new(),
                log: Vec::new(),
                violations: Vec::new(),
                next_id: 1,
                refused_versions: HashSet::new(),
                page_cap: 1000,
            }),
            validate,
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/EWS/Exchange.asmx", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        EwsServer {
            url: format!("http://{addr}/EWS/Exchange.asmx"),
            shared,
            task,
        }
    }

    /// Accepts Basic/NTLM `user` with `password`, with the impersonation right or not.
    pub fn add_account(&self, user: &str, password: &str, may_impersonate: bool) {
        lock(&self.shared.world)
            .accounts
            .insert(user.into(), (password.into(), may_impersonate));
    }
    /// Accepts the bearer token `token`, with the impersonation right or not.
    pub fn add_token(&self, token: &str, may_impersonate: bool) {
        lock(&self.shared.world)
            .tokens
            .insert(token.into(), may_impersonate);
    }
    /// Bearer tokens are checked by `check` (besides the fixed ones of `add_token`).
    pub fn set_token_check(&self, check: TokenCheck) {
        lock(&self.shared.world).token_check = Some(CheckFn(check));
    }
    /// Holds a mailbox for `address` (impersonable, deliverable).
    pub fn add_mailbox(&self, address: &str) {
        lock(&self.shared.world)
            .mailboxes
            .entry(address.to_ascii_lowercase())
            .or_default();
    }
    /// Messages arrive `d` after they are sent.
    pub fn set_delivery_delay(&self, d: TimeDelta) {
        lock(&self.shared.world).delay = d;
    }
    /// FindItem answers at most `n` items a page.
    pub fn set_page_cap(&self, n: usize) {
        lock(&self.shared.world).page_cap = n;
    }
    /// Answers `ErrorInvalidServerVersion` to requests for version `v`.
    pub fn refuse_version(&self, v: &str) {
        lock(&self.shared.world).refused_versions.insert(v.into());
    }
    /// Queues an answer for the next request.
    pub fn inject(&self, i: Inject) {
        lock(&self.shared.world).injections.push_back(i);
    }
    /// The requests received so far.
    pub fn log(&self) -> Vec<Logged> {
        lock(&self.shared.world).log.clone()
    }
    /// How many `op` requests were received.
    pub fn requests(&self, op: &str) -> usize {
        lock(&self.shared.world)
            .log
            .iter()
            .filter(|l| l.operation == op)
            .count()
    }
    /// Schema and protocol violations seen so far (tests assert it is empty).
    pub fn violations(&self) -> Vec<String> {
        lock(&self.shared.world).violations.clone()
    }
    /// For servers started without per-request validation: validates every
    /// logged request body now, in one xmllint run, and returns the failures.
    pub fn validate_log(&self) -> Result<usize, String> {
        let bodies: Vec<(String, String)> = self
            .log()
            .into_iter()
            .enumerate()
            .filter(|(_, l)| l.operation != "(unauthenticated)")
            .map(|(n, l)| (format!("req-{n:04}-{}", l.operation), l.body))
            .collect();
        let refs: Vec<(&str, String)> = bodies
            .iter()
            .map(|(n, b)| (n.as_str(), b.clone()))
            .collect();
        schema::validate_with_script(&refs).map(|()| refs.len())
    }
    /// The most requests handled at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
    /// What `mailbox`'s inbox holds now (delivered messages only).
    pub fn inbox(&self, mailbox: &str) -> Vec<Msg> {
        lock(&self.shared.world)
            .mailboxes
            .get(&mailbox.to_ascii_lowercase())
            .map(|m| m.inbox.clone())
            .unwrap_or_default()
    }
    /// What `mailbox`'s Sent Items holds.
    pub fn sent_items(&self, mailbox: &str) -> Vec<Msg> {
        lock(&self.shared.world)
            .mailboxes
            .get(&mailbox.to_ascii_lowercase())
            .map(|m| m.sent_items.clone())
            .unwrap_or_default()
    }
    /// Messages sent to addresses this server does not hold (e.g. the gateway's probe address).
    pub fn external(&self) -> Vec<Msg> {
        lock(&self.shared.world).external.clone()
    }
    /// Delivers a message into `mailbox`'s Inbox as transport would (used
    /// for the inbound direction, where the message comes from outside).
    pub fn deliver(
        &self,
        mailbox: &str,
        subject: &str,
        probe_header: Option<&str>,
        sent: DateTime<Utc>,
    ) {
        let mut w = lock(&self.shared.world);
        let received = sent + w.delay;
        let id = next_id(&mut w);
        let Some(mb) = w.mailboxes.get_mut(&mailbox.to_ascii_lowercase()) else {
            return;
        };
        let header = store_header(mb, probe_header);
        mb.inbox.push(Msg {
            id,
            subject: subject.into(),
            probe_header: header,
            from: "gateway@gateway.example".into(),
            to: mailbox.into(),
            sent,
            received,
        });
    }
}

fn next_id(w: &mut World) -> String {
    w.next_id += 1;
    base64::engine::general_purpose::STANDARD.encode(format!("AAMkItem{:08}", w.next_id))
}

/// Exchange maps an X-header to a named property the first time a message
/// carrying it is delivered, and stores the value only from the next one on.
fn store_header(mb: &mut Mailbox, value: Option<&str>) -> Option<String> {
    let value = value?;
    if mb.known_headers.insert(PROBE_HEADER.to_ascii_lowercase()) {
        None
    } else {
        Some(value.to_owned())
    }
}

struct InFlight<'a>(&'a Shared);
impl<'a> InFlight<'a> {
    fn new(s: &'a Shared) -> Self {
        let n = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_in_flight.fetch_max(n, Ordering::SeqCst);
        InFlight(s)
    }
}
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

fn fault(code: &str, message: &str, extra: &str) -> Response {
    xml(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:{code}</faultcode><faultstring xml:lang="en-US">{m}</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{m}</e:Message>{extra}</detail></s:Fault></s:Body></s:Envelope>"#,
            m = esc(message)
        ),
    )
}

fn envelope(op: &str, messages: &str) -> Response {
    xml(
        StatusCode::OK,
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4" Version="V2017_07_11" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" xmlns="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/></s:Header><s:Body><m:{op}Response xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>{messages}</m:ResponseMessages></m:{op}Response></s:Body></s:Envelope>"#
        ),
    )
}

fn error_message(op: &str, code: &str, message: &str, xml_extra: &str) -> String {
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Error"><m:MessageText>{}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{xml_extra}</m:{op}ResponseMessage>"#,
        esc(message)
    )
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

enum Caller {
    Account(bool),
}

// The refusal is the response to send as is; it is built once per request.
#[allow(clippy::result_large_err)]
fn authenticate(w: &World, headers: &HeaderMap) -> Result<(Caller, String), Response> {
    let unauthorized = || {
        let mut r = (StatusCode::UNAUTHORIZED, "").into_response();
        r.headers_mut()
            .append("www-authenticate", HeaderValue::from_static("Negotiate"));
        r.headers_mut()
            .append("www-authenticate", HeaderValue::from_static("NTLM"));
        r.headers_mut().append(
            "www-authenticate",
            HeaderValue::from_static(r#"Basic realm="exchange.example""#),
        );
        r
    };
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized());
    };
    if let Some(b) = auth.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|_| unauthorized())?;
        let decoded = String::from_utf8(decoded).map_err(|_| unauthorized())?;
        let (user, pass) = decoded.split_once(':').ok_or_else(unauthorized)?;
        match w.accounts.get(user) {
            Some((p, imp)) if p == pass => Ok((Caller::Account(*imp), "Basic".into())),
            _ => Err(unauthorized()),
        }
    } else if let Some(t) = auth.strip_prefix("Bearer ") {
        let t = t.trim();
        let known = w
            .tokens
            .get(t)
            .copied()
            .or_else(|| w.token_check.as_ref().and_then(|check| (check.0)(t).ok()));
        match known {
            Some(imp) => Ok((Caller::Account(imp), "Bearer".into())),
            None => {
                let mut r = (StatusCode::UNAUTHORIZED, "").into_response();
                r.headers_mut().insert(
                    "x-ms-diagnostics",
                    HeaderValue::from_static(
                        r#"2000001;reason="The token is invalid.";error_category="invalid_token""#,
                    ),
                );
                r.headers_mut().insert(
                    "www-authenticate",
                    HeaderValue::from_static(
                        r#"Bearer client_id="00000002-0000-0ff1-ce00-000000000000""#,
                    ),
                );
                Err(r)
            }
        }
    } else {
        Err(unauthorized())
    }
}

async fn handle(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let _guard = InFlight::new(&s);
    let text = String::from_utf8_lossy(&body).into_owned();
    // Credentials first, as IIS does.
    let auth = {
        let w = lock(&s.world);
        authenticate(&w, &headers)
    };
    let (caller, scheme) = match auth {
        Ok(c) => c,
        Err(r) => {
            lock(&s.world).log.push(Logged {
                operation: "(unauthenticated)".into(),
                impersonated: None,
                anchor: None,
                auth_scheme: None,
                body: text,
            });
            return r;
        }
    };
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("text/xml") {
        lock(&s.world)
            .violations
            .push(format!("content-type {ct:?}"));
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "").into_response();
    }
    if s.validate {
        let t = text.clone();
        let result = tokio::task::spawn_blocking(move || schema::validate(&t))
            .await
            .unwrap();
        if let Err(why) = result {
            lock(&s.world)
                .violations
                .push(format!("schema: {why}\n{text}"));
            return fault(
                "ErrorSchemaValidation",
                &format!("The request failed schema validation: {why}"),
                "",
            );
        }
    }
    let doc = match dom::parse(&text) {
        Ok(d) => d,
        Err(e) => return fault("ErrorInvalidRequest", &format!("not XML: {e}"), ""),
    };
    let header = doc.child(SOAP, "Header").cloned().unwrap_or_default();
    let Some(op_el) = doc
        .child(SOAP, "Body")
        .and_then(|b| b.children.first())
        .cloned()
    else {
        return fault("ErrorInvalidRequest", "empty body", "");
    };
    let op = op_el.name.clone();
    let impersonated = header
        .path(&[
            (T, "ExchangeImpersonation"),
            (T, "ConnectingSID"),
            (T, "PrimarySmtpAddress"),
        ])
        .map(|e| e.text.trim().to_owned());
    let anchor = headers
        .get("x-anchormailbox")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let injection = {
        let mut w = lock(&s.world);
        w.log.push(Logged {
            operation: op.clone(),
            impersonated: impersonated.clone(),
            anchor: anchor.clone(),
            auth_scheme: Some(scheme),
            body: text.clone(),
        });
        w.injections.pop_front()
    };
    match injection {
        None => {}
        Some(Inject::Delay(d)) => tokio::time::sleep(d).await,
        Some(Inject::Hang) => std::future::pending::<()>().await,
        Some(Inject::BusyFault(ms)) => {
            return fault(
                "ErrorServerBusy",
                "The server cannot service this request right now. Try again later.",
                &format!(
                    r#"<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">{ms}</t:Value></t:MessageXml>"#
                ),
            );
        }
        Some(Inject::BusyResponse(ms)) => {
            return envelope(
                &op,
                &error_message(
                    &op,
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    &format!(
                        r#"<m:MessageXml><t:Value Name="BackOffMilliseconds">{ms}</t:Value></m:MessageXml>"#
                    ),
                ),
            );
        }
        Some(Inject::Fault { code, message }) => return fault(code, message, ""),
        Some(Inject::ResponseError { code, message }) => {
            return envelope(&op, &error_message(&op, code, message, ""));
        }
        Some(Inject::Http {
            status,
            retry_after,
            content_type,
            body,
        }) => {
            let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
            if let Some(ra) = retry_after {
                r.headers_mut().insert(
                    "retry-after",
                    HeaderValue::from_str(&ra.to_string()).unwrap(),
                );
            }
            if let Some(ct) = content_type {
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static(ct));
            }
            return r;
        }
        Some(Inject::Redirect) => {
            let mut r = (StatusCode::FOUND, "").into_response();
            r.headers_mut().insert(
                "location",
                HeaderValue::from_static(
                    "/ews/genericerrorpage.htm?aspxerrorpath=/ews/exchange.asmx",
                ),
            );
            return r;
        }
        Some(Inject::EwsDisabled) => {
            return (
                StatusCode::FORBIDDEN,
                "EWS is disabled for this organization. Use Microsoft Graph.",
            )
                .into_response();
        }
    }
    // Request version.
    let version = header
        .child(T, "RequestServerVersion")
        .and_then(|e| e.attr("Version"))
        .unwrap_or("")
        .to_owned();
    if lock(&s.world).refused_versions.contains(&version) {
        return fault(
            "ErrorInvalidServerVersion",
            "The specified server version is invalid.",
            "",
        );
    }
    // DateTimePrecision is bound for FindItem/GetItem only (services.wsdl).
    if header.child(T, "DateTimePrecision").is_some()
        && !matches!(op.as_str(), "FindItem" | "GetItem")
    {
        lock(&s.world)
            .violations
            .push(format!("DateTimePrecision sent with {op}"));
        return fault(
            "ErrorInvalidRequest",
            "DateTimePrecision is not valid for this operation.",
            "",
        );
    }
    let Some(mailbox) = impersonated else {
        return fault(
            "ErrorInvalidExchangeImpersonationHeaderData",
            "ExchangeImpersonation SOAP header must be present for this type of OAuth token.",
            "",
        );
    };
    let Caller::Account(may_impersonate) = caller;
    if !may_impersonate {
        return fault(
            "ErrorImpersonateUserDenied",
            "The account does not have permission to impersonate the requested user.",
            "",
        );
    }
    if !anchor
        .as_deref()
        .is_some_and(|a| a.eq_ignore_ascii_case(&mailbox))
    {
        lock(&s.world).violations.push(format!(
            "X-AnchorMailbox {anchor:?} for impersonated {mailbox}"
        ));
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "<html><body>Service Unavailable</body></html>",
        )
            .into_response();
    }
    let key = mailbox.to_ascii_lowercase();
    let now = s.clock.now();
    let mut w = lock(&s.world);
    if !w.mailboxes.contains_key(&key) {
        return envelope(
            &op,
            &error_message(
                &op,
                "ErrorNonExistentMailbox",
                &format!("The SMTP address has no mailbox associated with it: {mailbox}"),
                "",
            ),
        );
    }
    match op.as_str() {
        "CreateItem" => create_item(&mut w, &key, &mailbox, &op_el, now),
        "FindItem" => find_item(&mut w, &key, &op_el, now),
        "GetItem" => get_item(&mut w, &key, &op_el, now),
        "DeleteItem" => delete_item(&mut w, &key, &op_el),
        "GetFolder" => {
            let n = w.mailboxes[&key]
                .inbox
                .iter()
                .filter(|m| m.received <= now)
                .count();
            envelope(
                &op,
                &format!(
                    r#"<m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders><t:Folder><t:FolderId Id="AQMkInbox" ChangeKey="AQAAAA=="/><t:DisplayName>Inbox</t:DisplayName><t:TotalCount>{n}</t:TotalCount><t:ChildFolderCount>0</t:ChildFolderCount><t:UnreadCount>{n}</t:UnreadCount></t:Folder></m:Folders></m:GetFolderResponseMessage>"#
                ),
            )
        }
        other => fault(
            "ErrorInvalidRequest",
            &format!("operation {other} not supported by the test server"),
            "",
        ),
    }
}
