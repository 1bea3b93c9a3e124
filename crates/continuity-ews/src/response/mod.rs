//! Namespace-aware, event-driven parsing of EWS responses.
//!
//! Elements are recognised by namespace URI and local name, never by prefix,
//! so `s:`/`soap:`/`m:`/`t:`, default namespaces and any other prefixes all
//! parse alike. The parser pulls events from quick-xml and builds only the
//! small result structs below (no document tree). Every failure is a typed
//! [`EwsError`]; nothing here panics on bad input.

use chrono::{DateTime, Utc};

use crate::{
    error::{EwsError, ResponseCode, Result, back_off_of, excerpt},
    request::ItemId,
};

/// `ResponseClass` of a response message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseClass {
    /// It worked.
    Success,
    /// Partly done (the batch stopped); retry the rest.
    Warning,
    /// It failed; see the code.
    Error,
}

/// `ServerVersionInfo` from the response header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerVersionInfo {
    /// `MajorVersion` (15 for Exchange 2013 and later).
    pub major: Option<u32>,
    /// `MinorVersion`.
    pub minor: Option<u32>,
    /// `MajorBuildNumber`.
    pub major_build: Option<u32>,
    /// `MinorBuildNumber`.
    pub minor_build: Option<u32>,
    /// `Version`, e.g. `V2017_07_11`.
    pub version: Option<String>,
}

/// One item of a `FindItem` or `GetItem` answer (only the fields probes read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Item {
    /// `ItemId`.
    pub id: Option<ItemId>,
    /// `Subject`.
    pub subject: Option<String>,
    /// `DateTimeReceived`: delivery into the mailbox.
    pub received: Option<DateTime<Utc>>,
    /// `DateTimeSent`.
    pub sent: Option<DateTime<Utc>>,
    /// `InternetMessageId`.
    pub internet_message_id: Option<String>,
    /// The value of the probe X-header, when the server returned it.
    pub probe_header: Option<String>,
    /// `InternetMessageHeaders` as (name, value), in order.
    pub headers: Vec<(String, String)>,
}

/// `RootFolder` of a `FindItem` answer: paging state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RootFolder {
    /// `TotalItemsInView`.
    pub total_items_in_view: u32,
    /// `IncludesLastItemInRange`.
    pub includes_last_item_in_range: bool,
    /// `IndexedPagingOffset`: where the next page starts.
    pub indexed_paging_offset: Option<u32>,
}

/// A folder of a `GetFolder` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FolderInfo {
    /// `DisplayName`.
    pub display_name: Option<String>,
    /// `TotalCount`.
    pub total_count: Option<u32>,
}

/// One `…ResponseMessage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseMessage {
    /// `ResponseClass`.
    pub class: ResponseClass,
    /// `ResponseCode` (`NoError` on success).
    pub code: ResponseCode,
    /// `MessageText`, empty if absent.
    pub message_text: String,
    /// `MessageXml` as (name, value) pairs.
    pub details: Vec<(String, String)>,
    /// Items (`m:Items` or `RootFolder/t:Items`).
    pub items: Vec<Item>,
    /// `RootFolder`, for `FindItem`.
    pub root_folder: Option<RootFolder>,
    /// Folders, for `GetFolder`.
    pub folders: Vec<FolderInfo>,
}

impl ResponseMessage {
    /// The error this message stands for, or `None` on `Success`.
    pub fn error(&self, operation: &'static str) -> Option<EwsError> {
        if self.class == ResponseClass::Success {
            return None;
        }
        let inner_busy = self
            .details
            .iter()
            .any(|(k, v)| k == "InnerErrorResponseCode" && v == "ErrorServerBusy");
        if self.code.as_str() == "ErrorServerBusy" || inner_busy {
            return Some(EwsError::ServerBusy {
                back_off: back_off_of(&self.details),
                message: self.message_text.clone(),
            });
        }
        if looks_disabled(&self.message_text) {
            return Some(EwsError::EwsDisabled {
                status: 200,
                message: self.message_text.clone(),
            });
        }
        Some(EwsError::Response {
            operation,
            code: self.code.clone(),
            message: self.message_text.clone(),
            warning: self.class == ResponseClass::Warning,
            details: self.details.clone(),
        })
    }
}

/// A parsed EWS answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// `ServerVersionInfo`, when the server sent one.
    pub server: Option<ServerVersionInfo>,
    /// The response messages, one per request item, in request order.
    pub messages: Vec<ResponseMessage>,
}

impl Response {
    /// The first message, or its error.
    pub fn first(self, operation: &'static str) -> Result<ResponseMessage> {
        let Some(m) = self.messages.into_iter().next() else {
            return Err(EwsError::Malformed {
                status: 200,
                reason: format!("{operation} response holds no response message"),
            });
        };
        match m.error(operation) {
            Some(e) => Err(e),
            None => Ok(m),
        }
    }
}

/// Whether a server message says EWS is switched off (Exchange Online's
/// EWS retirement; the exact text is not documented, so this matches the
/// wording of the announcements and of `EWSEnabled` refusals).
pub(crate) fn looks_disabled(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    (t.contains("ews") || t.contains("exchange web services"))
        && (t.contains("disabled")
            || t.contains("not enabled")
            || t.contains("blocked")
            || t.contains("turned off"))
}

/// What came with the body, for [`parse_http`].
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpMeta<'a> {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Retry-After` in seconds, if sent in that form.
    pub retry_after: Option<std::time::Duration>,
    /// `Location` of a redirect.
    pub location: Option<&'a str>,
}

fn not_soap(meta: &HttpMeta<'_>, body: &[u8]) -> EwsError {
    EwsError::Http {
        status: meta.status,
        retry_after: meta.retry_after,
        content_type: meta.content_type.map(str::to_owned),
        excerpt: match meta.location {
            Some(l) if body.is_empty() => format!("redirect to {l}"),
            _ => excerpt(body),
        },
    }
}

/// The largest body [`parse_http`] and [`parse_envelope`] take: 16 MiB.
/// A larger one is refused with [`EwsError::TooLarge`] before it is read,
/// so a caller that hands over whatever arrived cannot make the parser
/// work through (and build results from) an unbounded answer. The answers
/// to this crate's requests are far smaller (a page of `FindItem` is tens
/// of KiB); the client reads at most
/// [`EwsConfig::max_response_bytes`](crate::EwsConfig::max_response_bytes)
/// (default 4 MiB), which may not be set above this.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// [`EwsError::TooLarge`] for a body over [`MAX_BODY_BYTES`].
pub(crate) fn check_size(body: &[u8]) -> Result<()> {
    if body.len() > MAX_BODY_BYTES {
        return Err(EwsError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

/// Parses a complete HTTP answer: SOAP response, SOAP fault, or a body that
/// is not SOAP at all (a proxy's HTML page, an empty body).
///
/// 401 and 403 are left to the client (they depend on the auth mode); this
/// handles the body. A fault yields `Err`; a response with errors yields
/// `Ok` (each message carries its own class, see [`ResponseMessage::error`]).
/// A body over [`MAX_BODY_BYTES`] is [`EwsError::TooLarge`].
pub fn parse_http(operation: &'static str, meta: &HttpMeta<'_>, body: &[u8]) -> Result<Response> {
    check_size(body)?;
    let trimmed = trim_start(body);
    if trimmed.is_empty() || trimmed[0] != b'<' || is_html(trimmed) {
        return Err(if meta.status == 200 {
            EwsError::Malformed {
                status: 200,
                reason: format!("not XML: {:?}", excerpt(body)),
            }
        } else {
            not_soap(meta, body)
        });
    }
    match parse_envelope(operation, meta.status, body) {
        Ok(r) if meta.status == 200 => Ok(r),
        // A non-200 that still carries response messages: use them, but make
        // sure an error status never passes as success.
        Ok(r) => match r.messages.iter().find_map(|m| m.error(operation)) {
            Some(e) => Err(e),
            None => Err(not_soap(meta, body)),
        },
        Err(
            e @ (EwsError::Fault { .. }
            | EwsError::ServerBusy { .. }
            | EwsError::EwsDisabled { .. }),
        ) => Err(e),
        Err(e) if meta.status == 200 => Err(e),
        Err(_) => Err(not_soap(meta, body)),
    }
}

fn trim_start(body: &[u8]) -> &[u8] {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let n = body.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &body[n..]
}

fn is_html(body: &[u8]) -> bool {
    let head: Vec<u8> = body.iter().take(64).map(u8::to_ascii_lowercase).collect();
    head.starts_with(b"<!doctype html")
        || head.starts_with(b"<html")
        || head.starts_with(b"<head")
        || head.starts_with(b"<body")
}

mod cursor;
mod envelope;
#[cfg(test)]
mod tests;

pub use envelope::parse_envelope;
