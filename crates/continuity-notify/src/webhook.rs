//! A generic HTTPS webhook: the alert as JSON, signed so that the receiver
//! can check where it came from and refuse replays.
//!
//! Each request is `POST <recipient address>` with `Content-Type:
//! application/json`, the body a [`WebhookPayload`], and these headers:
//!
//! | header | value |
//! |---|---|
//! | `X-Continuity-Timestamp` | Unix time of the request in seconds (from the notifier's [`Clock`]) |
//! | `X-Continuity-Signature` | `v1=` and the lower-case hex HMAC-SHA256, keyed with the shared secret, of `<timestamp>.<body>` |
//! | `Idempotency-Key` | the alert's `tenant/alert/recipient` key, the same on every retry |
//!
//! A receiver recomputes the signature over the timestamp and the raw body,
//! compares in constant time, refuses a timestamp outside its tolerance and a
//! signature it has already seen ([`WebhookVerifier`] does all three), and
//! treats a repeated `Idempotency-Key` as a duplicate (answering 2xx).
//! Every attempt is signed afresh over a body with a fresh random `nonce`,
//! so a retry is not a replay. Answers: 2xx
//! delivered; 401/403 credentials refused (no retry); 408, 429, 5xx retried;
//! other 4xx rejected (no retry).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use continuity_core::{
    Clock, TenantId,
    config::ChannelKind,
    machine::AlertKind,
    notify::{AlertMessage, ConditionReport, FailureSummary, Notifier, Receipt},
    time_zone::TimeZone,
};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{error::NotifyError, http};

const CHANNEL: ChannelKind = ChannelKind::Webhook;

/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "X-Continuity-Timestamp";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Continuity-Signature";
/// The idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

type HmacSha256 = Hmac<Sha256>;

/// The JSON body of a webhook request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPayload {
    /// The idempotency key (`tenant/alert/recipient`).
    pub id: String,
    /// `alert.raised`, `alert.reminder` or `alert.resolved`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The tenant's display name.
    pub tenant_name: String,
    /// Per-tenant alert id.
    pub alert_id: u64,
    /// The recipient id.
    pub recipient: String,
    /// When the alert was decided.
    pub created_at: DateTime<Utc>,
    /// One line: what and how bad.
    pub headline: String,
    /// The conditions holding.
    pub conditions: Vec<ConditionReport>,
    /// What is failing per direction: failures by kind and the last remote
    /// reply (absent in a payload of an older version: read it as empty).
    #[serde(default)]
    pub failing: Vec<FailureSummary>,
    /// The running continuity event, if any.
    pub event: Option<String>,
    /// The signed portal link.
    pub link: String,
    /// When the link stops working.
    pub link_expires_at: DateTime<Utc>,
    /// The tenant's IANA time zone, in which the `event` text writes its
    /// times (the RFC 3339 times here are UTC); absent in a payload of an
    /// older version: read it as `UTC`.
    #[serde(default)]
    pub time_zone: TimeZone,
    /// Random per request (32 hex digits): two attempts are never
    /// byte-identical, so a receiver refusing seen signatures refuses only
    /// true replays, even of attempts made within the same second.
    pub nonce: String,
}

impl WebhookPayload {
    /// The payload for `message`, with a fresh [`nonce`](Self::nonce).
    pub fn new(message: &AlertMessage) -> Self {
        WebhookPayload {
            id: message.idempotency_key.clone(),
            kind: match message.kind {
                AlertKind::Raised => "alert.raised",
                AlertKind::Reminder => "alert.reminder",
                AlertKind::Resolved => "alert.resolved",
            }
            .into(),
            tenant: message.tenant.clone(),
            tenant_name: message.tenant_name.clone(),
            alert_id: message.alert_id,
            recipient: message.recipient.id.clone(),
            created_at: message.created_at,
            headline: message.headline(),
            conditions: message.conditions.clone(),
            failing: message.failing.clone(),
            event: message.event.clone(),
            link: message.link.clone(),
            link_expires_at: message.link_expires_at,
            time_zone: message.time_zone,
            nonce: http::hex(&rand::random::<[u8; 16]>()),
        }
    }
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", http::hex(&mac.finalize().into_bytes()))
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}

/// Settings of a [`WebhookNotifier`].
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// The shared signing secret (at least 16 bytes; never logged or printed).
    pub secret: SecretSlice<u8>,
    /// Time for one request (default 15 s).
    pub timeout: Duration,
    /// Extra trusted root certificates (PEM), e.g. a private CA; default none.
    pub root_certificates_pem: Vec<Vec<u8>>,
    /// Allow `http://` recipient URLs (a local receiver in tests); default false.
    pub allow_plain_http: bool,
}

impl WebhookConfig {
    /// Settings with `secret` and the defaults.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        WebhookConfig {
            secret: SecretSlice::from(secret.into()),
            timeout: http::DEFAULT_TIMEOUT,
            root_certificates_pem: Vec::new(),
            allow_plain_http: false,
        }
    }
}

/// Posts alerts to the recipient's URL. See the [module docs](self).
#[derive(Debug)]
pub struct WebhookNotifier {
    client: reqwest::Client,
    secret: SecretSlice<u8>,
    allow_plain_http: bool,
    clock: Arc<dyn Clock>,
}

impl WebhookNotifier {
    /// Checks `config` and builds the notifier; timestamps come from `clock`.
    pub fn new(config: WebhookConfig, clock: Arc<dyn Clock>) -> Result<Self, NotifyError> {
        if config.secret.expose_secret().len() < 16 {
            return Err(NotifyError::config(
                CHANNEL,
                "secret",
                "must be at least 16 bytes",
            ));
        }
        Ok(WebhookNotifier {
            client: http::client(CHANNEL, config.timeout, &config.root_certificates_pem)?,
            secret: config.secret,
            allow_plain_http: config.allow_plain_http,
            clock,
        })
    }

    /// Sends `message`, with this crate's error.
    pub async fn send(&self, message: &AlertMessage) -> Result<Receipt, NotifyError> {
        let url = http::check_url(
            CHANNEL,
            "recipient.address",
            &message.recipient.address,
            self.allow_plain_http,
        )
        .map_err(|e| NotifyError::Rejected {
            channel: CHANNEL,
            code: None,
            message: e.to_string(),
        })?;
        let body =
            serde_json::to_vec(&WebhookPayload::new(message)).map_err(|e| NotifyError::Render {
                channel: CHANNEL,
                message: e.to_string(),
            })?;
        let timestamp = self.clock.now().timestamp();
        let signature = sign(self.secret.expose_secret(), timestamp, &body);
        let response = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, &message.idempotency_key)
            .body(body)
            .send()
            .await
            .map_err(|e| http::transport_error(CHANNEL, &e))?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if status.is_success() {
            return Ok(Receipt {
                provider_id: request_id,
            });
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.trim().chars().take(300).collect();
        let message = if text.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {text}")
        };
        Err(http::status_error(
            CHANNEL,
            status,
            Some(status.as_u16().to_string()),
            message,
            retry_after,
        ))
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn channel(&self) -> ChannelKind {
        CHANNEL
    }

    async fn deliver(&self, message: &AlertMessage) -> continuity_core::Result<Receipt> {
        Ok(self.send(message).await?)
    }
}

/// Why a [`WebhookVerifier`] refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookRejection {
    /// A header is missing or malformed.
    #[error("missing or malformed {0} header")]
    Malformed(&'static str),
    /// The signature does not match the body and timestamp.
    #[error("signature mismatch")]
    BadSignature,
    /// The timestamp is further from now than the tolerance.
    #[error("timestamp outside the tolerance ({skew_secs} s away)")]
    Stale {
        /// Seconds between the timestamp and now.
        skew_secs: i64,
    },
    /// This exact signed request was seen before.
    #[error("replayed request")]
    Replay,
}

/// The receiving side: checks signature and timestamp and refuses replays.
///
/// ```
/// use continuity_notify::webhook::{sign, WebhookRejection, WebhookVerifier};
/// let now = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap();
/// let verifier = WebhookVerifier::new(b"0123456789abcdef0123", std::time::Duration::from_secs(300));
/// let body = br#"{"id":"acme/1/ops"}"#;
/// let sig = sign(b"0123456789abcdef0123", now.timestamp(), body);
/// let ts = now.timestamp().to_string();
/// assert_eq!(verifier.verify(Some(&ts), Some(&sig), body, now), Ok(()));
/// assert_eq!(verifier.verify(Some(&ts), Some(&sig), body, now), Err(WebhookRejection::Replay));
/// ```
#[derive(Debug)]
pub struct WebhookVerifier {
    secret: SecretSlice<u8>,
    tolerance: Duration,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    by_signature: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl WebhookVerifier {
    /// A verifier for `secret` accepting timestamps within `tolerance` of now.
    pub fn new(secret: &[u8], tolerance: Duration) -> Self {
        WebhookVerifier {
            secret: SecretSlice::from(secret.to_vec()),
            tolerance,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Checks one request: the two header values, the raw body, and the receiver's time.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), WebhookRejection> {
        let ts: i64 = timestamp
            .and_then(|t| t.trim().parse().ok())
            .ok_or(WebhookRejection::Malformed(TIMESTAMP_HEADER))?;
        let sig = signature
            .and_then(|s| s.trim().strip_prefix("v1="))
            .and_then(parse_hex)
            .ok_or(WebhookRejection::Malformed(SIGNATURE_HEADER))?;
        let mut mac = mac(self.secret.expose_secret());
        mac.update(ts.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&sig)
            .map_err(|_| WebhookRejection::BadSignature)?;
        let skew = now.timestamp().saturating_sub(ts);
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        if skew.abs() > tolerance {
            return Err(WebhookRejection::Stale { skew_secs: skew });
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // Forget what is too old to pass the timestamp check anyway.
        while let Some((t, _)) = seen.order.front() {
            if now.timestamp().saturating_sub(*t) <= tolerance {
                break;
            }
            if let Some((_, s)) = seen.order.pop_front() {
                seen.by_signature.remove(&s);
            }
        }
        let key = http::hex(&sig);
        if seen.by_signature.contains_key(&key) {
            return Err(WebhookRejection::Replay);
        }
        seen.by_signature.insert(key.clone(), ts);
        seen.order.push_back((ts.max(now.timestamp()), key));
        Ok(())
    }
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn tampered_stale_and_malformed_requests_are_refused() {
        let v = WebhookVerifier::new(SECRET, Duration::from_secs(300));
        let body = br#"{"id":"acme/1/ops"}"#;
        let sig = sign(SECRET, 1000, body);
        assert_eq!(
            v.verify(
                Some("1000"),
                Some(&sig),
                br#"{"id":"acme/2/ops"}"#,
                at(1000)
            ),
            Err(WebhookRejection::BadSignature)
        );
        assert_eq!(
            v.verify(Some("1001"), Some(&sig), body, at(1001)),
            Err(WebhookRejection::BadSignature)
        );
        assert_eq!(
            v.verify(Some("1000"), Some(&sig), body, at(1301)),
            Err(WebhookRejection::Stale { skew_secs: 301 })
        );
        assert_eq!(
            v.verify(None, Some(&sig), body, at(1000)),
            Err(WebhookRejection::Malformed(TIMESTAMP_HEADER))
        );
        assert_eq!(
            v.verify(Some("1000"), Some("v1=zz"), body, at(1000)),
            Err(WebhookRejection::Malformed(SIGNATURE_HEADER))
        );
        let other = sign(b"another secret, 20 b", 1000, body);
        assert_eq!(
            v.verify(Some("1000"), Some(&other), body, at(1000)),
            Err(WebhookRejection::BadSignature)
        );
        assert_eq!(v.verify(Some("1000"), Some(&sig), body, at(1100)), Ok(()));
        assert_eq!(
            v.verify(Some("1000"), Some(&sig), body, at(1200)),
            Err(WebhookRejection::Replay)
        );
    }

    #[test]
    fn short_secrets_are_refused_and_secrets_never_print() {
        let clock = Arc::new(continuity_core::ManualClock::new(at(0)));
        assert!(
            WebhookNotifier::new(WebhookConfig::new(b"short".to_vec()), clock.clone()).is_err()
        );
        let n = WebhookNotifier::new(WebhookConfig::new(b"a-long-secret-value!".to_vec()), clock)
            .unwrap();
        assert!(!format!("{n:?}").contains("a-long-secret-value!"));
    }
}
