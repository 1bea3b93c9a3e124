//! The webhook notifier against a local receiver that verifies signatures
//! on its own (HMAC-SHA256 over `timestamp.body`), refuses stale and
//! replayed requests, and drops duplicates by idempotency key.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use chrono::TimeDelta;
use continuity_core::{
    Clock, ManualClock,
    config::{ChannelKind, Recipient},
    machine::AlertKind,
    notify::Notifier,
};
use continuity_notify::{
    NotifyError,
    webhook::{WebhookConfig, WebhookNotifier, WebhookPayload},
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::common::{LINK, alert, serve, serve_tls, t0};
use continuity_test_support::smtp_peer::TestCert;

const SECRET: &[u8] = b"webhook-shared-secret-0123456789";
const TOLERANCE_SECS: i64 = 300;

/// Timestamp, signature and body of the last request.
type Captured = (String, String, Vec<u8>);

#[derive(Clone)]
pub struct Receiver {
    clock: ManualClock,
    pub seen_signatures: Arc<Mutex<HashSet<String>>>,
    seen_keys: Arc<Mutex<HashSet<String>>>,
    pub accepted: Arc<Mutex<Vec<WebhookPayload>>>,
    last_request: Arc<Mutex<Option<Captured>>>,
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, why.to_string()).into_response()
}

async fn hook(
    State(r): State<Receiver>,
    Path(script): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if get(header::CONTENT_TYPE.as_str()).as_deref() != Some("application/json") {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, "json only");
    }
    let (Some(ts), Some(sig)) = (get("x-continuity-timestamp"), get("x-continuity-signature"))
    else {
        return refuse(StatusCode::UNAUTHORIZED, "unsigned");
    };
    *r.last_request.lock().unwrap() = Some((ts.clone(), sig.clone(), body.to_vec()));
    // Verified here independently of the crate's WebhookVerifier.
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if sig != format!("v1={expected}") {
        return refuse(StatusCode::UNAUTHORIZED, "bad signature");
    }
    let Ok(ts) = ts.parse::<i64>() else {
        return refuse(StatusCode::BAD_REQUEST, "bad timestamp");
    };
    if (r.clock.now().timestamp() - ts).abs() > TOLERANCE_SECS {
        return refuse(StatusCode::UNAUTHORIZED, "stale timestamp");
    }
    if !r.seen_signatures.lock().unwrap().insert(sig) {
        return refuse(StatusCode::CONFLICT, "replayed request");
    }
    match script.as_str() {
        "down" => return refuse(StatusCode::SERVICE_UNAVAILABLE, "maintenance"),
        "gone" => return refuse(StatusCode::GONE, "this hook was deleted"),
        "locked" => return refuse(StatusCode::FORBIDDEN, "token revoked"),
        "busy" => {
            let mut resp = refuse(StatusCode::TOO_MANY_REQUESTS, "slow down");
            resp.headers_mut()
                .insert(header::RETRY_AFTER, "3".parse().unwrap());
            return resp;
        }
        _ => {}
    }
    let payload: WebhookPayload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    if get("idempotency-key").as_deref() != Some(payload.id.as_str()) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "idempotency key differs from the payload id",
        );
    }
    if r.seen_keys.lock().unwrap().insert(payload.id.clone()) {
        r.accepted.lock().unwrap().push(payload);
    }
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert("x-request-id", "req-1".parse().unwrap());
    resp
}

fn receiver(clock: &ManualClock) -> Receiver {
    Receiver {
        clock: clock.clone(),
        seen_signatures: Arc::default(),
        seen_keys: Arc::default(),
        accepted: Arc::default(),
        last_request: Arc::default(),
    }
}

/// Sends an alert of `kind` to `url` with `hook`.
async fn send_to(
    hook: &WebhookNotifier,
    kind: AlertKind,
    url: &str,
) -> Result<continuity_core::notify::Receipt, NotifyError> {
    hook.send(&alert(kind, 1, to(url), t0())).await
}

async fn start() -> (Receiver, String, ManualClock) {
    let clock = ManualClock::new(t0());
    let r = receiver(&clock);
    let addr = serve(router(&r)).await;
    (r, format!("http://{addr}/hook"), clock)
}

fn router(r: &Receiver) -> Router {
    Router::new()
        .route("/hook/{script}", post(hook))
        .with_state(r.clone())
}

/// The receiver over HTTPS with `cert`; returns it and its base URL.
pub async fn start_tls(clock: &ManualClock, cert: &TestCert) -> (Receiver, String) {
    let r = receiver(clock);
    let addr = serve_tls(router(&r), cert).await;
    (r, format!("https://{addr}/hook"))
}

/// A notifier for the HTTPS receiver, trusting `cert`'s CA.
pub fn tls_notifier(clock: &ManualClock, cert: &TestCert) -> WebhookNotifier {
    let mut c = WebhookConfig::new(SECRET.to_vec());
    c.root_certificates_pem = vec![cert.ca_pem.clone()];
    WebhookNotifier::new(c, Arc::new(clock.clone())).unwrap()
}

#[tokio::test]
async fn over_https_with_a_private_ca() {
    let clock = ManualClock::new(t0());
    let cert = TestCert::generate();
    let (receiver, base) = start_tls(&clock, &cert).await;
    let message = alert(AlertKind::Raised, 5, to(&format!("{base}/ok")), t0());
    tls_notifier(&clock, &cert).deliver(&message).await.unwrap();
    assert_eq!(receiver.accepted.lock().unwrap().len(), 1);

    // Without the CA the receiver's certificate is not trusted: nothing is sent.
    let untrusting =
        WebhookNotifier::new(WebhookConfig::new(SECRET.to_vec()), Arc::new(clock.clone())).unwrap();
    let e = untrusting.send(&message).await.unwrap_err();
    assert!(matches!(e, NotifyError::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert_eq!(receiver.seen_signatures.lock().unwrap().len(), 1);
}

fn notifier(clock: &ManualClock) -> WebhookNotifier {
    let mut c = WebhookConfig::new(SECRET.to_vec());
    c.allow_plain_http = true;
    WebhookNotifier::new(c, Arc::new(clock.clone())).unwrap()
}

fn to(url: &str) -> Recipient {
    Recipient::new("ops-hook", ChannelKind::Webhook, url)
}

#[tokio::test]
async fn signed_json_is_accepted_and_a_replay_is_refused() {
    let (receiver, base, clock) = start().await;
    let hook = notifier(&clock);
    let message = alert(AlertKind::Raised, 9, to(&format!("{base}/ok")), t0());
    let receipt = hook.deliver(&message).await.unwrap();
    assert_eq!(receipt.provider_id.as_deref(), Some("req-1"));
    let accepted = receiver.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1);
    let p = &accepted[0];
    assert_eq!(p.id, "acme/9/ops-hook");
    assert_eq!(p.kind, "alert.raised");
    assert_eq!(p.alert_id, 9);
    assert_eq!(p.link, LINK);
    assert_eq!(p.conditions.len(), 2);
    assert!(
        p.headline
            .starts_with("ALERT ACME <Corp>: outbound p95 latency 42 min"),
        "{}",
        p.headline
    );

    // An attacker who captured the request sends it again: refused.
    let (ts, sig, body) = receiver.last_request.lock().unwrap().clone().unwrap();
    let client = reqwest::Client::new();
    let replay = |body: Vec<u8>, ts: String| {
        client
            .post(format!("{base}/ok"))
            .header("content-type", "application/json")
            .header("x-continuity-timestamp", ts)
            .header("x-continuity-signature", sig.clone())
            .body(body)
            .send()
    };
    assert_eq!(
        replay(body.clone(), ts.clone()).await.unwrap().status(),
        StatusCode::CONFLICT
    );
    // Tampering with the body or the timestamp breaks the signature.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        replay(tampered, ts.clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let later = (ts.parse::<i64>().unwrap() + 1).to_string();
    assert_eq!(
        replay(body, later).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // A retry of the same alert is signed afresh, so it is no replay; the
    // receiver recognises the idempotency key and keeps one copy.
    clock.advance(TimeDelta::seconds(30));
    hook.deliver(&message).await.unwrap();
    assert_eq!(receiver.accepted.lock().unwrap().len(), 1);
    assert_eq!(receiver.seen_signatures.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_sender_clock_far_off_is_refused_as_stale() {
    let (receiver, base, clock) = start().await;
    let sender_clock = ManualClock::new(clock.now() - TimeDelta::minutes(10));
    let hook = notifier(&sender_clock);
    let e = send_to(&hook, AlertKind::Reminder, &format!("{base}/ok"))
        .await
        .unwrap_err();
    assert!(matches!(e, NotifyError::Auth { .. }), "{e:?}");
    assert!(e.to_string().contains("stale timestamp"), "{e}");
    assert!(receiver.accepted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn receiver_answers_become_typed_errors() {
    let (_receiver, base, clock) = start().await;
    let hook = notifier(&clock);
    let send = |script: &str| {
        let m = alert(
            AlertKind::Resolved,
            2,
            to(&format!("{base}/{script}")),
            t0(),
        );
        let hook = &hook;
        async move { hook.send(&m).await }
    };
    let e = send("down").await.unwrap_err();
    assert!(
        matches!(e, NotifyError::Unavailable { .. }) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(e.code(), Some("503"));
    assert!(e.to_string().contains("maintenance"), "{e}");
    let e = send("busy").await.unwrap_err();
    assert!(matches!(e, NotifyError::RateLimited { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    let e = send("gone").await.unwrap_err();
    assert!(
        matches!(e, NotifyError::Rejected { .. }) && !e.is_retryable(),
        "{e:?}"
    );
    let e = send("locked").await.unwrap_err();
    assert!(
        matches!(e, NotifyError::Auth { .. }) && !e.is_retryable(),
        "{e:?}"
    );

    // Plain http:// is refused unless allowed.
    let strict =
        WebhookNotifier::new(WebhookConfig::new(SECRET.to_vec()), Arc::new(clock.clone())).unwrap();
    let e = send_to(&strict, AlertKind::Raised, &format!("{base}/ok"))
        .await
        .unwrap_err();
    assert!(matches!(e, NotifyError::Rejected { .. }), "{e:?}");
    assert!(e.to_string().contains("plain http"), "{e}");
}
