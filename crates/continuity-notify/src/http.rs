//! What the HTTP notifiers (SMS, webhook) share: the client, URL checks and
//! the classification of HTTP failures.

use std::time::Duration;

use continuity_core::config::ChannelKind;
use reqwest::{StatusCode, header::HeaderMap};

use crate::error::NotifyError;

/// Default time for one request, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// A client trusting the platform's roots plus `extra_roots` (PEM).
pub(crate) fn client(
    channel: ChannelKind,
    timeout: Duration,
    extra_roots: &[Vec<u8>],
) -> Result<reqwest::Client, NotifyError> {
    let roots = extra_roots
        .iter()
        .enumerate()
        .map(|(i, pem)| {
            reqwest::Certificate::from_pem(pem).map_err(|e| {
                NotifyError::config(
                    channel,
                    format!("root_certificates_pem[{i}]"),
                    format!("not a usable PEM certificate: {}", with_causes(&e)),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    reqwest::Client::builder()
        .tls_certs_merge(roots.iter().cloned())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("continuity-notify/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            // reqwest decodes the certificates only here: name the one that
            // fails, found by trying each alone (on this error path only).
            let bad = roots.iter().position(|root| {
                reqwest::Client::builder()
                    .tls_certs_merge([root.clone()])
                    .build()
                    .is_err()
            });
            match bad {
                Some(i) => NotifyError::config(
                    channel,
                    format!("root_certificates_pem[{i}]"),
                    format!("not a usable PEM certificate: {}", with_causes(&e)),
                ),
                None => NotifyError::config(channel, "http client", with_causes(&e)),
            }
        })
}

/// An error with its causes, `a: b: c`: reqwest's own text for a bad
/// certificate is "builder error", which says nothing of what to fix.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Checks that `url` is `https://`, or `http://` when `allow_plain` says so.
pub(crate) fn check_url(
    channel: ChannelKind,
    field: &str,
    url: &str,
    allow_plain: bool,
) -> Result<reqwest::Url, NotifyError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| NotifyError::config(channel, field, format!("{url:?}: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_plain => Ok(parsed),
        "http" => Err(NotifyError::config(
            channel,
            field,
            "plain http:// is refused unless explicitly allowed (allow_plain_http)",
        )),
        other => Err(NotifyError::config(
            channel,
            field,
            format!("unsupported scheme {other:?}"),
        )),
    }
}

/// A transport failure (no HTTP answer): connection refused, timeout, TLS.
pub(crate) fn transport_error(channel: ChannelKind, e: &reqwest::Error) -> NotifyError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // reqwest's Display omits the cause chain, which holds the useful part.
    let mut message = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    NotifyError::unavailable(channel, message)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these APIs and is ignored).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Classifies a non-success HTTP answer by its status.
pub(crate) fn status_error(
    channel: ChannelKind,
    status: StatusCode,
    code: Option<String>,
    message: String,
    retry_after: Option<Duration>,
) -> NotifyError {
    match status.as_u16() {
        401 | 403 => NotifyError::Auth {
            channel,
            code,
            message,
        },
        429 => NotifyError::RateLimited {
            channel,
            code,
            message,
            retry_after,
        },
        408 | 500..=599 => NotifyError::Unavailable {
            channel,
            code,
            message,
            retry_after,
        },
        _ => NotifyError::Rejected {
            channel,
            code,
            message,
        },
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_root_certificate_says_which_and_why() {
        let bad = b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
        let e = client(ChannelKind::Webhook, DEFAULT_TIMEOUT, &[bad.to_vec()]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("root_certificates_pem[0]"), "{text}");
        assert!(text.contains("not a usable PEM certificate"), "{text}");
        // More than reqwest's bare "builder error".
        let reason = text
            .split("not a usable PEM certificate: ")
            .nth(1)
            .unwrap_or("");
        assert_ne!(reason.trim(), "builder error", "{text}");
    }
}
