//! The client credentials grant with a certificate assertion
//! (PROTOCOLS.md §6.2, §6.4): one form POST per token.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use continuity_core::Clock;
use continuity_core::access_token::AccessToken;
use serde::Deserialize;

use crate::app_registration::AppRegistration;
use crate::error::{AadstsKind, GraphError};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Default timeout of one token request.
pub const DEFAULT_TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest `expires_in` believed: a day. Entra ID issues 60–90 minutes; a larger
/// value is a misbehaving endpoint, and caching it would keep a revoked app working.
const MAX_EXPIRES_IN: i64 = 24 * 3600;

/// Requests app-only access tokens from an Entra ID token endpoint.
#[derive(Clone, Debug)]
pub struct TokenClient {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl TokenClient {
    /// A client with its own HTTP connection pool and a 30 s request timeout.
    pub fn new(clock: Arc<dyn Clock>) -> Result<Self, GraphError> {
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TOKEN_TIMEOUT)
            .build()
            .map_err(|e| GraphError::Transport {
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self::with_http(http, clock))
    }

    /// A client over an existing `reqwest::Client` (shared pool, proxy, timeouts).
    pub fn with_http(http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        TokenClient { http, clock }
    }

    /// The clock assertions and expiry times are taken from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Requests a new token for `scope` (e.g. `https://graph.microsoft.com/.default`),
    /// with a freshly built assertion. No caching: see [`TokenCache`](crate::TokenCache).
    pub async fn request_token(
        &self,
        app: &AppRegistration,
        scope: &str,
    ) -> Result<AccessToken, GraphError> {
        if scope.trim().is_empty() || scope.chars().any(char::is_whitespace) {
            return Err(GraphError::InvalidConfig {
                field: "scope",
                reason: format!("{scope:?}: one resource's `/.default` scope expected"),
            });
        }
        let now = self.clock.now();
        let assertion = app.client_assertion(now)?;
        let form = [
            ("client_id", app.client_id()),
            ("scope", scope),
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ];
        let response = self
            .http
            .post(app.token_endpoint())
            .form(&form)
            .send()
            .await
            .map_err(|e| GraphError::Transport {
                reason: without_url(e),
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|e| GraphError::Transport {
            reason: without_url(e),
        })?;
        if status == 200 {
            return parse_success(&body, now);
        }
        Err(parse_error(status, &body, retry_after))
    }
}

fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[derive(Deserialize)]
struct Success {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
}

fn parse_success(
    body: &[u8],
    sent_at: chrono::DateTime<chrono::Utc>,
) -> Result<AccessToken, GraphError> {
    let bad = |reason: String| GraphError::UnexpectedResponse {
        status: 200,
        reason,
    };
    let ok: Success =
        serde_json::from_slice(body).map_err(|e| bad(format!("not a token response: {e}")))?;
    let token = ok
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no access_token".into()))?;
    if !ok
        .token_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
    {
        return Err(bad(format!(
            "token_type {:?}, expected Bearer",
            ok.token_type
        )));
    }
    // Some Microsoft endpoints send `expires_in` as a string.
    let expires_in = match &ok.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        bad(format!(
            "expires_in missing or not a number: {:?}",
            ok.expires_in
        ))
    })?;
    if !(1..=MAX_EXPIRES_IN).contains(&expires_in) {
        return Err(bad(format!("expires_in {expires_in} s out of range")));
    }
    // Counted from before the request left, so the token is never believed to live longer than it does.
    Ok(AccessToken::new(
        token,
        sent_at + TimeDelta::seconds(expires_in),
    ))
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u32>,
}

fn parse_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> GraphError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error: Some(error),
            error_description,
            error_codes,
        }) => {
            let code = error_codes.first().copied();
            GraphError::Aadsts {
                kind: AadstsKind::classify(code, &error),
                code,
                error,
                description: error_description.unwrap_or_default(),
                status,
                retry_after,
            }
        }
        _ => GraphError::UnexpectedResponse {
            status,
            reason: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_keeps_code_and_message() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS700027: Client assertion failed signature validation.\r\nTrace ID: x","error_codes":[700027],"trace_id":"x"}"#;
        let e = parse_error(401, body, None);
        assert_eq!(e.aadsts_code(), Some(700027));
        assert!(matches!(
            e,
            GraphError::Aadsts {
                kind: AadstsKind::CertificateNotRegistered,
                ..
            }
        ));
        let text = e.to_string();
        assert!(
            text.contains("AADSTS700027") && text.contains("upload this certificate"),
            "{text}"
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn transient_and_unparseable_errors() {
        let e = parse_error(
            503,
            br#"{"error":"temporarily_unavailable"}"#,
            Some(Duration::from_secs(7)),
        );
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = parse_error(502, b"<html>bad gateway</html>", None);
        assert!(
            matches!(e, GraphError::UnexpectedResponse { status: 502, .. }) && e.is_retryable()
        );
    }

    #[test]
    fn expires_in_is_used_never_assumed() {
        let t0: chrono::DateTime<chrono::Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
        let t = parse_success(
            br#"{"token_type":"Bearer","expires_in":4711,"access_token":"a"}"#,
            t0,
        )
        .unwrap();
        assert_eq!(t.expires_at(), t0 + TimeDelta::seconds(4711));
        let t = parse_success(
            br#"{"token_type":"Bearer","expires_in":"5000","access_token":"a"}"#,
            t0,
        )
        .unwrap();
        assert_eq!(t.expires_at(), t0 + TimeDelta::seconds(5000));
        for body in [
            &br#"{"token_type":"Bearer","access_token":"a"}"#[..],
            br#"{"token_type":"Bearer","expires_in":0,"access_token":"a"}"#,
            br#"{"token_type":"mac","expires_in":60,"access_token":"a"}"#,
            br#"{"token_type":"Bearer","expires_in":60}"#,
        ] {
            assert!(
                parse_success(body, t0).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
