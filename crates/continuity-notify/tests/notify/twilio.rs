//! A local stand-in for Twilio's Messages API that checks requests the way
//! Twilio does (Basic authentication by account SID and auth token, the
//! account in the path, the form fields) and answers with Twilio's own
//! success and error bodies.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;

pub const SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "auth-token-0123456789";

/// Numbers with a scripted answer (Twilio's own magic test numbers where one exists).
pub const INVALID_NUMBER: &str = "+15005550001";
pub const NOT_MOBILE: &str = "+15005550009";
pub const RATE_LIMITED: &str = "+15005550429";
pub const BROKEN: &str = "+15005550503";

#[derive(Clone, Debug)]
pub struct Sent {
    pub form: HashMap<String, String>,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Default)]
pub struct Twilio {
    pub sent: Arc<Mutex<Vec<Sent>>>,
    /// Requests answered (any status).
    pub requests: Arc<Mutex<u32>>,
    /// While set, every request gets a 503.
    pub down: Arc<Mutex<bool>>,
    /// While set, requests wait for `release` before they are answered.
    pub held: Arc<Mutex<bool>>,
    /// Requests waiting on `held` now.
    pub waiting: Arc<Mutex<u32>>,
    pub release: Arc<tokio::sync::Notify>,
    /// While set, the account's status is `suspended`.
    pub suspended: Arc<Mutex<bool>>,
}

fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

/// Twilio's check: Basic authentication by the account SID and auth token,
/// for the account in the path.
fn authorized(headers: &HeaderMap, account: &str) -> bool {
    let expected = format!("Basic {}", base64(format!("{SID}:{TOKEN}").as_bytes()));
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
        && account == SID
}

/// `GET /2010-04-01/Accounts/{sid}.json`: the account resource.
async fn account(
    State(t): State<Twilio>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    *t.requests.lock().unwrap() += 1;
    let Some(account) = file.strip_suffix(".json") else {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    };
    if !authorized(&headers, account) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let status = if *t.suspended.lock().unwrap() {
        "suspended"
    } else {
        "active"
    };
    Json(json!({
        "sid": SID, "friendly_name": "continuity tests", "status": status,
        "type": "Full", "owner_account_sid": SID,
    }))
    .into_response()
}

async fn messages(
    State(t): State<Twilio>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    *t.requests.lock().unwrap() += 1;
    if !authorized(&headers, &account) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_ok {
        return error(StatusCode::BAD_REQUEST, 20001, "Expected a form body");
    }
    let held = *t.held.lock().unwrap();
    if held {
        *t.waiting.lock().unwrap() += 1;
        // Re-checked now and then, so a release racing this wait is not missed.
        while *t.held.lock().unwrap() {
            let _ =
                tokio::time::timeout(std::time::Duration::from_millis(20), t.release.notified())
                    .await;
        }
        *t.waiting.lock().unwrap() -= 1;
    }
    if *t.down.lock().unwrap() {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    let Some(to) = form.get("To") else {
        return error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number is required.",
        );
    };
    if form.get("Body").is_none_or(|b| b.is_empty()) {
        return error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    if form.contains_key("From") == form.contains_key("MessagingServiceSid") {
        return error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required.",
        );
    }
    match to.as_str() {
        INVALID_NUMBER => {
            return error(
                StatusCode::BAD_REQUEST,
                21211,
                &format!("The 'To' number {to} is not a valid phone number."),
            );
        }
        NOT_MOBILE => {
            return error(
                StatusCode::BAD_REQUEST,
                21614,
                &format!("'To' number {to} is not a valid mobile number"),
            );
        }
        RATE_LIMITED => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            r.headers_mut()
                .insert(header::RETRY_AFTER, "7".parse().unwrap());
            return r;
        }
        BROKEN => return (StatusCode::INTERNAL_SERVER_ERROR, "<html>oops</html>").into_response(),
        _ => {}
    }
    let mut sent = t.sent.lock().unwrap();
    sent.push(Sent {
        form: form.clone(),
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let sid = format!("SM{:032x}", sent.len());
    (
        StatusCode::CREATED,
        Json(json!({ "sid": sid, "status": "queued", "to": to, "body": form["Body"], "account_sid": SID })),
    )
        .into_response()
}

impl Twilio {
    pub async fn start(&self) -> SocketAddr {
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(messages),
            )
            .route("/2010-04-01/Accounts/{account}", get(account))
            .with_state(self.clone());
        super::common::serve(router).await
    }

    /// Lets held requests (and later ones) through.
    pub fn unhold(&self) {
        *self.held.lock().unwrap() = false;
        self.release.notify_waiters();
    }

    pub fn requests(&self) -> u32 {
        *self.requests.lock().unwrap()
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}
