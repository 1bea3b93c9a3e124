//! Graph's answers: `Retry-After` and the JSON error bodies, typed.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use super::header;
use crate::error::{GraphError, GraphInnerError, GraphOperation};

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// `Retry-After` in seconds or as an HTTP date.
pub(super) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = header(headers, RETRY_AFTER)?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some(
        (at - now)
            .max(TimeDelta::zero())
            .to_std()
            .unwrap_or_default(),
    )
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(rename = "innerError", alias = "innererror")]
    inner: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    code: Option<String>,
    #[serde(rename = "request-id")]
    request_id: Option<String>,
    #[serde(rename = "client-request-id")]
    client_request_id: Option<String>,
    date: Option<String>,
}

/// Graph's JSON error body typed, or the answer described when it has none.
pub(super) fn graph_error(
    operation: GraphOperation,
    answer: &Answer,
    now: DateTime<Utc>,
) -> GraphError {
    let retry_after = retry_after(&answer.headers, now);
    match serde_json::from_slice::<ErrorEnvelope>(&answer.body) {
        Ok(ErrorEnvelope { error }) => {
            let inner = error.inner;
            let from_header = |name| header(&answer.headers, name).map(str::to_owned);
            GraphError::Graph {
                operation,
                status: answer.status,
                code: error.code,
                message: error.message,
                inner: Box::new(GraphInnerError {
                    code: inner.as_ref().and_then(|i| i.code.clone()),
                    request_id: inner
                        .as_ref()
                        .and_then(|i| i.request_id.clone())
                        .or_else(|| from_header("request-id")),
                    client_request_id: inner
                        .as_ref()
                        .and_then(|i| i.client_request_id.clone())
                        .or_else(|| from_header("client-request-id")),
                    date: inner.and_then(|i| i.date),
                }),
                retry_after,
            }
        }
        Err(_) => GraphError::GraphHttp {
            operation,
            status: answer.status,
            retry_after,
            content_type: header(&answer.headers, CONTENT_TYPE).map(str::to_owned),
            excerpt: excerpt(&answer.body),
        },
    }
}

/// The start of a body on one line, at most 200 characters.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(2048)]);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
