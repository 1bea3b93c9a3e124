//! SMS through a Twilio-compatible REST API.
//!
//! `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` with HTTP
//! Basic authentication (account SID, auth token) and the form fields `To`,
//! `Body` and `From` (a number) or `MessagingServiceSid`. A `201` answer
//! carries the message `sid`, which becomes the receipt's provider id. An
//! error answer is Twilio's JSON (`{"code": 21211, "message": "...",
//! "more_info": "...", "status": 400}`), classified so that a retry is made
//! only where it can help:
//!
//! | answer | error | retried |
//! |---|---|---|
//! | 401, 403, code 20003 | [`NotifyError::Auth`] | no |
//! | 429, code 20429 | [`NotifyError::RateLimited`] (with `Retry-After`) | yes |
//! | 5xx, 408, no answer | [`NotifyError::Unavailable`] | yes |
//! | other 4xx (21211 invalid `To`, 21614 not a mobile, 21610 opted out, ...) | [`NotifyError::Rejected`] | no |
//!
//! Every request also carries `Idempotency-Key: <tenant>/<alert>/<recipient>`
//! for providers that drop duplicates by it.
//!
//! [`TwilioSms::check_connection`] tries the account and its credentials
//! without sending anything: `GET {base_url}/2010-04-01/Accounts/{account_sid}.json`,
//! classified like a send (a refused token is [`NotifyError::Auth`], not
//! retried); an account that is not `active` (suspended, closed) is
//! [`NotifyError::Auth`] too.

use std::time::Duration;

use async_trait::async_trait;
use continuity_core::{
    config::ChannelKind,
    notify::{AlertMessage, Notifier, Receipt},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::{
    error::NotifyError,
    http,
    render::{SmsRenderer, SmsText},
};

const CHANNEL: ChannelKind = ChannelKind::Sms;

/// Twilio's API host.
pub const TWILIO_BASE_URL: &str = "https://api.twilio.com";

/// Most segments a message may take when none is configured: 4.
pub const DEFAULT_MAX_SEGMENTS: usize = 4;

/// Who the message is sent as. In configuration `{ from = "+15550100" }`
/// or `{ messaging_service = "MG..." }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsSender {
    /// A phone number in E.164 form (`From`).
    From(String),
    /// A messaging service id (`MessagingServiceSid`, `MG...`), which picks the number.
    MessagingService(String),
}

/// Settings of a [`TwilioSms`] notifier.
#[derive(Clone, Debug)]
pub struct TwilioConfig {
    /// Scheme, host and port of the API (default [`TWILIO_BASE_URL`]).
    pub base_url: String,
    /// The account SID (`AC...`), user name of the Basic authentication and part of the path.
    pub account_sid: String,
    /// The auth token (never logged or printed).
    pub auth_token: SecretString,
    /// The sender.
    pub sender: SmsSender,
    /// Time for one request (default 15 s).
    pub timeout: Duration,
    /// Messages longer than this many segments are refused before sending
    /// (default [`DEFAULT_MAX_SEGMENTS`], 4).
    pub max_segments: usize,
    /// Extra trusted root certificates (PEM), e.g. a private CA; default none.
    pub root_certificates_pem: Vec<Vec<u8>>,
    /// Allow an `http://` base URL (a local test double); default false.
    pub allow_plain_http: bool,
}

impl TwilioConfig {
    /// Settings for Twilio itself with the defaults.
    pub fn new(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        sender: SmsSender,
    ) -> Self {
        TwilioConfig {
            base_url: TWILIO_BASE_URL.into(),
            account_sid: account_sid.into(),
            auth_token: SecretString::from(auth_token.into()),
            sender,
            timeout: http::DEFAULT_TIMEOUT,
            max_segments: DEFAULT_MAX_SEGMENTS,
            root_certificates_pem: Vec::new(),
            allow_plain_http: false,
        }
    }
}

/// Sends alerts as SMS through a Twilio-compatible API. See the [module docs](self).
#[derive(Debug)]
pub struct TwilioSms {
    client: reqwest::Client,
    url: reqwest::Url,
    account_url: reqwest::Url,
    account_sid: String,
    auth_token: SecretString,
    sender: SmsSender,
    max_segments: usize,
    renderer: SmsRenderer,
}

#[derive(Deserialize)]
struct Created {
    sid: Option<String>,
}

/// The account the credentials opened, as [`TwilioSms::check_connection`] found it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SmsAccount {
    /// The account SID.
    pub sid: String,
    /// The account's name, as set at the provider.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// `active`, `suspended` or `closed`.
    #[serde(default)]
    pub status: Option<String>,
    /// `Trial` (sends only to verified numbers) or `Full`.
    #[serde(default, rename = "type")]
    pub account_type: Option<String>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<serde_json::Value>,
    message: Option<String>,
    more_info: Option<String>,
}

impl TwilioSms {
    /// Checks `config` and builds the notifier.
    pub fn new(config: TwilioConfig) -> Result<Self, NotifyError> {
        let base = http::check_url(
            CHANNEL,
            "base_url",
            &config.base_url,
            config.allow_plain_http,
        )?;
        let sid_ok = !config.account_sid.is_empty()
            && config.account_sid.len() <= 64
            && config
                .account_sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric());
        if !sid_ok {
            return Err(NotifyError::config(
                CHANNEL,
                "account_sid",
                "must be 1 to 64 letters and digits",
            ));
        }
        if config.auth_token.expose_secret().is_empty() {
            return Err(NotifyError::config(CHANNEL, "auth_token", "is empty"));
        }
        match &config.sender {
            SmsSender::From(n) if n.is_empty() => {
                return Err(NotifyError::config(CHANNEL, "sender", "empty From number"));
            }
            SmsSender::MessagingService(s) if s.is_empty() => {
                return Err(NotifyError::config(
                    CHANNEL,
                    "sender",
                    "empty messaging service id",
                ));
            }
            _ => {}
        }
        if config.max_segments == 0 {
            return Err(NotifyError::config(
                CHANNEL,
                "max_segments",
                "must be at least 1",
            ));
        }
        let join = |path: String| {
            base.join(&path)
                .map_err(|e| NotifyError::config(CHANNEL, "base_url", e.to_string()))
        };
        let url = join(format!(
            "2010-04-01/Accounts/{}/Messages.json",
            config.account_sid
        ))?;
        let account_url = join(format!("2010-04-01/Accounts/{}.json", config.account_sid))?;
        Ok(TwilioSms {
            client: http::client(CHANNEL, config.timeout, &config.root_certificates_pem)?,
            url,
            account_url,
            account_sid: config.account_sid,
            auth_token: config.auth_token,
            sender: config.sender,
            max_segments: config.max_segments,
            renderer: SmsRenderer::default(),
        })
    }

    /// The text `message` is sent as, with its encoding and segment count.
    pub fn render(&self, message: &AlertMessage) -> SmsText {
        self.renderer.render(message)
    }

    /// Sends `message`, with this crate's error.
    pub async fn send(&self, message: &AlertMessage) -> Result<Receipt, NotifyError> {
        let text = self.render(message);
        if text.segments > self.max_segments {
            return Err(NotifyError::Render {
                channel: CHANNEL,
                message: format!(
                    "{} segments needed, at most {} allowed",
                    text.segments, self.max_segments
                ),
            });
        }
        let (sender_field, sender) = match &self.sender {
            SmsSender::From(n) => ("From", n.as_str()),
            SmsSender::MessagingService(s) => ("MessagingServiceSid", s.as_str()),
        };
        let form = [
            ("To", message.recipient.address.as_str()),
            (sender_field, sender),
            ("Body", text.body.as_str()),
        ];
        debug!(key = %message.idempotency_key, segments = text.segments, encoding = ?text.encoding, "sending SMS");
        let (status, retry_after, body) = self
            .call(
                self.client
                    .post(self.url.clone())
                    .header("Idempotency-Key", &message.idempotency_key)
                    .form(&form),
            )
            .await?;
        if status.is_success() {
            let created: Created = serde_json::from_slice(&body)
                .map_err(|e| {
                    // Accepted, but the answer is unreadable: the message is out,
                    // so a retry would send it twice. Report success without an id.
                    tracing::warn!(error = %e, "SMS accepted with an unreadable answer");
                    e
                })
                .unwrap_or(Created { sid: None });
            return Ok(Receipt {
                provider_id: created.sid,
            });
        }
        Err(classify(status, retry_after, &body))
    }

    /// Sends `request` with the account's credentials: the answer's status,
    /// `Retry-After` and body.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Option<Duration>, Vec<u8>), NotifyError> {
        let response = request
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .send()
            .await
            .map_err(|e| http::transport_error(CHANNEL, &e))?;
        let status = response.status();
        let retry_after = http::retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| http::transport_error(CHANNEL, &e))?;
        Ok((status, retry_after, body.to_vec()))
    }

    /// Checks the provider and the credentials without sending a message:
    /// fetches the account (`GET .../Accounts/{account_sid}.json`). Refused
    /// credentials and an account that is not active are
    /// [`NotifyError::Auth`] (permanent); an unreachable or failing
    /// provider is [`NotifyError::Unavailable`].
    pub async fn check_connection(&self) -> Result<SmsAccount, NotifyError> {
        let (status, retry_after, body) =
            self.call(self.client.get(self.account_url.clone())).await?;
        if !status.is_success() {
            return Err(classify(status, retry_after, &body));
        }
        let account: SmsAccount =
            serde_json::from_slice(&body).map_err(|e| NotifyError::Unavailable {
                channel: CHANNEL,
                code: Some(status.as_u16().to_string()),
                message: format!("the account answer is not Twilio's account JSON: {e}"),
                retry_after: None,
            })?;
        match account.status.as_deref() {
            None | Some("active") => Ok(account),
            Some(other) => Err(NotifyError::Auth {
                channel: CHANNEL,
                code: None,
                message: format!(
                    "the account {} is {other}: the provider sends no message from it until it is active again",
                    account.sid
                ),
            }),
        }
    }
}

fn classify(
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
) -> NotifyError {
    let parsed: Option<ApiError> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|p| match &p.code {
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        _ => None,
    });
    let mut message = parsed
        .as_ref()
        .and_then(|p| p.message.clone())
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status.to_string()
            } else {
                text.chars().take(300).collect()
            }
        });
    if let Some(info) = parsed.as_ref().and_then(|p| p.more_info.as_deref()) {
        message.push_str(" (");
        message.push_str(info);
        message.push(')');
    }
    match code.as_deref() {
        Some("20003") => NotifyError::Auth {
            channel: CHANNEL,
            code,
            message,
        },
        Some("20429") => NotifyError::RateLimited {
            channel: CHANNEL,
            code,
            message,
            retry_after,
        },
        _ => http::status_error(
            CHANNEL,
            status,
            code.or_else(|| Some(status.as_u16().to_string())),
            message,
            retry_after,
        ),
    }
}

#[async_trait]
impl Notifier for TwilioSms {
    fn channel(&self) -> ChannelKind {
        CHANNEL
    }

    async fn deliver(&self, message: &AlertMessage) -> continuity_core::Result<Receipt> {
        Ok(self.send(message).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows_in_debug() {
        let sms = TwilioSms::new(TwilioConfig::new(
            "AC123",
            "very-secret-token",
            SmsSender::From("+15550199".into()),
        ))
        .unwrap();
        let shown = format!("{sms:?}");
        assert!(!shown.contains("very-secret-token"), "{shown}");
    }

    #[test]
    fn bad_settings_name_their_field() {
        let mut c = TwilioConfig::new("AC123", "t", SmsSender::From("+15550199".into()));
        c.base_url = "http://127.0.0.1:9".into();
        match TwilioSms::new(c).unwrap_err() {
            NotifyError::Config { field, .. } => assert_eq!(field, "base_url"),
            e => panic!("{e:?}"),
        }
        let c = TwilioConfig::new("AC/../x", "t", SmsSender::From("+15550199".into()));
        match TwilioSms::new(c).unwrap_err() {
            NotifyError::Config { field, .. } => assert_eq!(field, "account_sid"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn provider_errors_are_classified() {
        let e = classify(
            reqwest::StatusCode::BAD_REQUEST,
            None,
            br#"{"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
        );
        assert!(matches!(e, NotifyError::Rejected { .. }), "{e:?}");
        assert_eq!(e.code(), Some("21211"));
        assert!(!e.is_retryable());
        let e = classify(
            reqwest::StatusCode::BAD_GATEWAY,
            None,
            b"<html>bad gateway</html>",
        );
        assert!(e.is_retryable(), "{e:?}");
        assert_eq!(e.code(), Some("502"));
    }
}
