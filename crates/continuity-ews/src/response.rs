//! Namespace-aware, event-driven parsing of EWS responses.
//!
//! Elements are recognised by namespace URI and local name, never by prefix,
//! so `s:`/`soap:`/`m:`/`t:`, default namespaces and any other prefixes all
//! parse alike. The parser pulls events from quick-xml and builds only the
//! small result structs below (no document tree). Every failure is a typed
//! [`EwsError`]; nothing here panics on bad input.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use quick_xml::{
    events::{BytesStart, Event},
    reader::Reader,
};

use crate::{
    error::{EwsError, ResponseCode, Result, back_off_of, excerpt},
    request::{ERRORS_NS, ItemId, MESSAGES_NS, PROBE_HEADER, SOAP_NS, TYPES_NS},
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

/// Parses a complete HTTP answer: SOAP response, SOAP fault, or a body that
/// is not SOAP at all (a proxy's HTML page, an empty body).
///
/// 401 and 403 are left to the client (they depend on the auth mode); this
/// handles the body. A fault yields `Err`; a response with errors yields
/// `Ok` (each message carries its own class, see [`ResponseMessage::error`]).
pub fn parse_http(operation: &'static str, meta: &HttpMeta<'_>, body: &[u8]) -> Result<Response> {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ns {
    Soap,
    Types,
    Messages,
    Errors,
    Other,
}

fn ns_of(uri: &str) -> Ns {
    match uri {
        SOAP_NS => Ns::Soap,
        TYPES_NS => Ns::Types,
        MESSAGES_NS => Ns::Messages,
        ERRORS_NS => Ns::Errors,
        _ => Ns::Other,
    }
}

/// A namespace declaration in scope: `xmlns` (empty prefix) or `xmlns:prefix`,
/// made by the element at `depth`. Only the namespace's class is kept: that
/// is all the parser asks of it.
#[derive(Debug)]
struct Binding {
    depth: u32,
    prefix: Box<str>,
    ns: Ns,
}

enum Tok<'i> {
    Open(Ns, BytesStart<'i>),
    Close,
    Text(Cow<'i, str>),
    Eof,
}

struct Cursor<'i> {
    r: Reader<&'i [u8]>,
    status: u16,
    depth: u32,
    bindings: Vec<Binding>,
}

impl<'i> Cursor<'i> {
    fn bad(&self, reason: impl Into<String>) -> EwsError {
        EwsError::Malformed {
            status: self.status,
            reason: reason.into(),
        }
    }

    fn next(&mut self) -> Result<Tok<'i>> {
        loop {
            let ev = match self.r.read_event() {
                Ok(ev) => ev,
                Err(e) => {
                    let pos = self.r.error_position();
                    return Err(self.bad(format!("XML error at byte {pos}: {e}")));
                }
            };
            return Ok(match ev {
                Event::Start(e) => {
                    let ns = self.enter(&e)?;
                    Tok::Open(ns, e)
                }
                Event::End(_) => {
                    while self.bindings.last().is_some_and(|b| b.depth == self.depth) {
                        self.bindings.pop();
                    }
                    self.depth = self.depth.saturating_sub(1);
                    Tok::Close
                }
                Event::Text(t) => Tok::Text(t.xml10_content()),
                Event::CData(c) => Tok::Text(c.into_inner()),
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match &*r.into_inner() {
                            "amp" => "&".into(),
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            other => return Err(self.bad(format!("unknown entity &{other};"))),
                        },
                        Err(e) => return Err(self.bad(format!("bad character reference: {e}"))),
                    };
                    Tok::Text(Cow::Owned(resolved))
                }
                Event::Eof => Tok::Eof,
                Event::DocType(_) => return Err(self.bad("DOCTYPE not allowed in a SOAP message")),
                Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => continue,
            });
        }
    }

    /// Records the namespace declarations of a start tag and resolves its
    /// name. Most tags declare nothing, so their attributes are not read.
    fn enter(&mut self, e: &BytesStart<'_>) -> Result<Ns> {
        self.depth += 1;
        if e.attributes_raw().contains("xmlns") {
            for a in e.attributes().with_checks(false) {
                let a = a.map_err(|err| self.bad(format!("bad attribute: {err}")))?;
                let key = a.key.into_inner();
                let prefix = match key.strip_prefix("xmlns") {
                    Some("") => "",
                    Some(p) if p.starts_with(':') => &p[1..],
                    _ => continue,
                };
                let uri = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(|err| self.bad(format!("bad namespace value: {err}")))?;
                self.bindings.push(Binding {
                    depth: self.depth,
                    prefix: prefix.into(),
                    ns: ns_of(&uri),
                });
            }
        }
        let name = e.name().into_inner();
        let prefix = name.split_once(':').map_or("", |(p, _)| p);
        Ok(self
            .bindings
            .iter()
            .rev()
            .find(|b| &*b.prefix == prefix)
            .map_or(Ns::Other, |b| b.ns))
    }

    /// Consumes the rest of the element just opened and, if `keep_text`,
    /// returns its text (nested elements' text included): borrowed from the
    /// input when it is one piece, as it usually is.
    fn consume(&mut self, keep_text: bool) -> Result<Cow<'i, str>> {
        let mut out: Cow<'i, str> = Cow::Borrowed("");
        let mut depth = 1usize;
        loop {
            match self.next()? {
                Tok::Open(..) => depth += 1,
                Tok::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(out);
                    }
                }
                Tok::Text(t) if keep_text => {
                    if out.is_empty() {
                        out = t;
                    } else {
                        out.to_mut().push_str(&t);
                    }
                }
                Tok::Text(_) => {}
                Tok::Eof => return Err(self.bad("document ends inside an element")),
            }
        }
    }

    /// Consumes the rest of the element just opened.
    fn skip(&mut self) -> Result<()> {
        self.consume(false).map(drop)
    }

    /// The text of the element just opened, borrowed where possible.
    fn text_cow(&mut self) -> Result<Cow<'i, str>> {
        self.consume(true)
    }

    /// The text of the element just opened.
    fn text(&mut self) -> Result<String> {
        self.consume(true).map(Cow::into_owned)
    }

    /// Calls `f` for each child element of the element just opened; `f` must
    /// consume the child (with `skip`, `text` or its own loop).
    fn children(
        &mut self,
        mut f: impl FnMut(&mut Self, Ns, &BytesStart<'i>) -> Result<()>,
    ) -> Result<()> {
        loop {
            match self.next()? {
                Tok::Open(ns, e) => f(self, ns, &e)?,
                Tok::Close => return Ok(()),
                Tok::Text(_) => {}
                Tok::Eof => return Err(self.bad("document ends inside an element")),
            }
        }
    }

    fn attr<'e>(&self, e: &'e BytesStart<'_>, name: &str) -> Result<Option<Cow<'e, str>>> {
        // Duplicate detection would allocate per element; the first match wins.
        for a in e.attributes().with_checks(false) {
            let a = a.map_err(|err| self.bad(format!("bad attribute: {err}")))?;
            if a.key.local_name().as_ref() == name {
                // Most values need neither unescaping nor whitespace normalisation.
                if !a
                    .value
                    .bytes()
                    .any(|b| matches!(b, b'&' | b'\t' | b'\n' | b'\r'))
                {
                    return Ok(Some(a.value));
                }
                let v = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .map_err(|err| self.bad(format!("bad attribute value: {err}")))?;
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn num_attr(&self, e: &BytesStart<'_>, name: &str) -> Result<Option<u32>> {
        match self.attr(e, name)? {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.bad(format!("attribute {name}={v:?} is not a number"))),
        }
    }

    fn date(&mut self, field: &str) -> Result<DateTime<Utc>> {
        let t = self.text_cow()?;
        if let Some(d) = fast_datetime(t.trim()) {
            return Ok(d);
        }
        DateTime::parse_from_rfc3339(t.trim())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| self.bad(format!("{field} {t:?} is not an xs:dateTime: {e}")))
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM)`, the form EWS sends, without
/// chrono's general parser; anything else goes to that parser.
fn fast_datetime(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = (i - start).min(9);
        if digits == 0 {
            return None;
        }
        nanos *= 10u32.pow(9 - digits as u32);
    }
    let offset_secs: i64 = match b.get(i..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let o = i64::from(num(i + 1..i + 3)?) * 3600 + i64::from(num(i + 4..i + 6)?) * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let naive =
        chrono::NaiveDate::from_ymd_opt(y as i32, mo, d)?.and_hms_nano_opt(h, mi, sec, nanos)?;
    naive
        .and_utc()
        .checked_sub_signed(chrono::TimeDelta::seconds(offset_secs))
}

fn local<'a>(e: &'a BytesStart<'_>) -> &'a str {
    e.local_name().into_inner()
}

/// Parses a SOAP envelope holding an EWS response or fault.
///
/// A fault yields its error (`ServerBusy` for `ErrorServerBusy`).
pub fn parse_envelope(operation: &'static str, status: u16, body: &[u8]) -> Result<Response> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|e| EwsError::Malformed {
        status,
        reason: format!("body is not UTF-8: {e}"),
    })?;
    let mut r = Reader::from_str(text);
    {
        let c = r.config_mut();
        c.expand_empty_elements = true;
        c.check_end_names = true;
    }
    let mut cur = Cursor {
        r,
        status,
        depth: 0,
        bindings: Vec::new(),
    };
    // Root element.
    let root = loop {
        match cur.next()? {
            Tok::Open(ns, e) => break (ns, e),
            Tok::Text(t) if t.trim().is_empty() => {}
            Tok::Text(_) => return Err(cur.bad("text before the root element")),
            Tok::Close | Tok::Eof => return Err(cur.bad("no root element")),
        }
    };
    if root.0 != Ns::Soap || local(&root.1) != "Envelope" {
        return Err(cur.bad(format!(
            "root element is {:?}, not a SOAP 1.1 Envelope",
            local(&root.1)
        )));
    }
    let mut server = None;
    let mut outcome: Option<Result<Vec<ResponseMessage>>> = None;
    cur.children(|cur, ns, e| match (ns, local(e)) {
        (Ns::Soap, "Header") => cur.children(|cur, ns, e| {
            if ns == Ns::Types && local(e) == "ServerVersionInfo" {
                server = Some(ServerVersionInfo {
                    major: cur.num_attr(e, "MajorVersion")?,
                    minor: cur.num_attr(e, "MinorVersion")?,
                    major_build: cur.num_attr(e, "MajorBuildNumber")?,
                    minor_build: cur.num_attr(e, "MinorBuildNumber")?,
                    version: cur.attr(e, "Version")?.map(Cow::into_owned),
                });
            }
            cur.skip()
        }),
        (Ns::Soap, "Body") => cur.children(|cur, ns, e| {
            if outcome.is_some() {
                return Err(cur.bad("more than one element in the SOAP Body"));
            }
            outcome = Some(match (ns, local(e)) {
                (Ns::Soap, "Fault") => Err(parse_fault(cur)?),
                (Ns::Messages, name) if name.ends_with("Response") => Ok(parse_messages(cur)?),
                (_, name) => {
                    let name = name.to_owned();
                    cur.skip()?;
                    Err(cur.bad(format!(
                        "unexpected {name:?} in the SOAP Body (expected {operation}Response)"
                    )))
                }
            });
            Ok(())
        }),
        _ => cur.skip(),
    })?;
    // Nothing but whitespace may follow the envelope.
    loop {
        match cur.next()? {
            Tok::Eof => break,
            Tok::Text(t) if t.trim().is_empty() => {}
            _ => return Err(cur.bad("content after the SOAP Envelope")),
        }
    }
    match outcome {
        None => Err(cur.bad("empty SOAP Body")),
        Some(Err(e)) => Err(e),
        Some(Ok(messages)) => Ok(Response { server, messages }),
    }
}

fn parse_fault(cur: &mut Cursor<'_>) -> Result<EwsError> {
    let mut fault_code = String::new();
    let mut fault_string = String::new();
    let mut code = None;
    let mut message = None;
    let mut details = Vec::new();
    cur.children(|cur, ns, e| match local(e) {
        "faultcode" => {
            fault_code = cur.text()?;
            Ok(())
        }
        "faultstring" => {
            fault_string = cur.text()?;
            Ok(())
        }
        "detail" => cur.children(|cur, ns, e| match (ns, local(e)) {
            (Ns::Errors, "ResponseCode") => {
                code = Some(cur.text()?);
                Ok(())
            }
            (Ns::Errors, "Message") => {
                message = Some(cur.text()?);
                Ok(())
            }
            // In a fault MessageXml is in the types namespace (PROTOCOLS.md pitfall 5);
            // accept the messages one too.
            (Ns::Types | Ns::Messages, "MessageXml") => parse_message_xml(cur, &mut details),
            _ => cur.skip(),
        }),
        _ => {
            let _ = ns;
            cur.skip()
        }
    })?;
    let code = code
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| {
            let c = fault_code.trim();
            c.rsplit(':').next().unwrap_or(c).to_owned()
        });
    let message = message.unwrap_or(fault_string);
    if code.is_empty() {
        return Err(cur.bad("SOAP fault without a code"));
    }
    Ok(if code == "ErrorServerBusy" {
        EwsError::ServerBusy {
            back_off: back_off_of(&details),
            message,
        }
    } else if looks_disabled(&message) {
        EwsError::EwsDisabled {
            status: cur.status,
            message,
        }
    } else {
        EwsError::Fault {
            code: ResponseCode::new(code),
            message,
            status: cur.status,
            details,
        }
    })
}

fn parse_message_xml(cur: &mut Cursor<'_>, details: &mut Vec<(String, String)>) -> Result<()> {
    cur.children(|cur, _, e| {
        let name = match (local(e), cur.attr(e, "Name")?) {
            ("Value", Some(n)) => n.into_owned(),
            (other, _) => other.to_owned(),
        };
        let value = cur.text()?;
        details.push((name, value.trim().to_owned()));
        Ok(())
    })
}

fn parse_messages(cur: &mut Cursor<'_>) -> Result<Vec<ResponseMessage>> {
    let mut out = Vec::new();
    cur.children(|cur, ns, e| {
        if ns != Ns::Messages || local(e) != "ResponseMessages" {
            return cur.skip();
        }
        cur.children(|cur, ns, e| {
            if ns != Ns::Messages || !local(e).ends_with("ResponseMessage") {
                return cur.skip();
            }
            let class = match cur.attr(e, "ResponseClass")?.as_deref() {
                Some("Success") => ResponseClass::Success,
                Some("Warning") => ResponseClass::Warning,
                Some("Error") => ResponseClass::Error,
                other => return Err(cur.bad(format!("ResponseClass {other:?}"))),
            };
            out.push(parse_message(cur, class)?);
            Ok(())
        })
    })?;
    Ok(out)
}

fn parse_message(cur: &mut Cursor<'_>, class: ResponseClass) -> Result<ResponseMessage> {
    let mut m = ResponseMessage {
        class,
        code: ResponseCode::new(""),
        message_text: String::new(),
        details: Vec::new(),
        items: Vec::new(),
        root_folder: None,
        folders: Vec::new(),
    };
    let mut code = None;
    cur.children(|cur, ns, e| match (ns, local(e)) {
        (Ns::Messages, "MessageText") => {
            m.message_text = cur.text()?;
            Ok(())
        }
        (Ns::Messages, "ResponseCode") => {
            code = Some(cur.text_cow()?.trim().to_owned());
            Ok(())
        }
        (Ns::Messages | Ns::Types, "MessageXml") => parse_message_xml(cur, &mut m.details),
        (Ns::Messages, "Items") => parse_items(cur, &mut m.items),
        (Ns::Messages, "RootFolder") => {
            m.root_folder = Some(RootFolder {
                total_items_in_view: cur.num_attr(e, "TotalItemsInView")?.unwrap_or(0),
                includes_last_item_in_range: matches!(
                    cur.attr(e, "IncludesLastItemInRange")?
                        .as_deref()
                        .map(str::trim),
                    Some("true" | "1")
                ),
                indexed_paging_offset: cur.num_attr(e, "IndexedPagingOffset")?,
            });
            cur.children(|cur, ns, e| match (ns, local(e)) {
                (Ns::Types, "Items") => parse_items(cur, &mut m.items),
                _ => cur.skip(),
            })
        }
        (Ns::Messages, "Folders") => cur.children(|cur, _, _| {
            let mut f = FolderInfo::default();
            cur.children(|cur, ns, e| match (ns, local(e)) {
                (Ns::Types, "DisplayName") => {
                    f.display_name = Some(cur.text()?);
                    Ok(())
                }
                (Ns::Types, "TotalCount") => {
                    let t = cur.text_cow()?;
                    f.total_count = Some(
                        t.trim()
                            .parse()
                            .map_err(|_| cur.bad(format!("TotalCount {t:?}")))?,
                    );
                    Ok(())
                }
                _ => cur.skip(),
            })?;
            m.folders.push(f);
            Ok(())
        }),
        _ => cur.skip(),
    })?;
    m.code = match code {
        Some(c) if !c.is_empty() => ResponseCode::new(c),
        _ if class == ResponseClass::Success => ResponseCode::new("NoError"),
        _ => return Err(cur.bad("error response message without a ResponseCode")),
    };
    Ok(m)
}

fn parse_items(cur: &mut Cursor<'_>, items: &mut Vec<Item>) -> Result<()> {
    cur.children(|cur, ns, _| {
        if ns != Ns::Types {
            return cur.skip();
        }
        let mut item = Item::default();
        cur.children(|cur, ns, e| {
            if ns != Ns::Types {
                return cur.skip();
            }
            match local(e) {
                "ItemId" => {
                    let id = cur
                        .attr(e, "Id")?
                        .ok_or_else(|| cur.bad("ItemId without Id"))?
                        .into_owned();
                    item.id = Some(ItemId {
                        id,
                        change_key: cur.attr(e, "ChangeKey")?.map(Cow::into_owned),
                    });
                    cur.skip()
                }
                "Subject" => {
                    item.subject = Some(cur.text()?);
                    Ok(())
                }
                "DateTimeReceived" => {
                    item.received = Some(cur.date("DateTimeReceived")?);
                    Ok(())
                }
                "DateTimeSent" => {
                    item.sent = Some(cur.date("DateTimeSent")?);
                    Ok(())
                }
                "InternetMessageId" => {
                    item.internet_message_id = Some(cur.text()?);
                    Ok(())
                }
                "InternetMessageHeaders" => {
                    // A delivered message carries a dozen headers or more: skip the small growth steps.
                    item.headers.reserve(16);
                    cur.children(|cur, _, e| {
                        let name = cur
                            .attr(e, "HeaderName")?
                            .map(Cow::into_owned)
                            .unwrap_or_default();
                        let value = cur.text()?;
                        item.headers.push((name, value));
                        Ok(())
                    })
                }
                "ExtendedProperty" => {
                    let mut is_probe = false;
                    let mut value = None;
                    cur.children(|cur, ns, e| match (ns, local(e)) {
                        (Ns::Types, "ExtendedFieldURI") => {
                            is_probe = cur
                                .attr(e, "PropertyName")?
                                .is_some_and(|n| n.eq_ignore_ascii_case(PROBE_HEADER));
                            cur.skip()
                        }
                        (Ns::Types, "Value") => {
                            value = Some(cur.text()?);
                            Ok(())
                        }
                        _ => cur.skip(),
                    })?;
                    if is_probe {
                        item.probe_header = value;
                    }
                    Ok(())
                }
                _ => cur.skip(),
            }
        })?;
        items.push(item);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIND: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"/></s:Header>
  <s:Body>
    <m:FindItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
      <m:ResponseMessages>
        <m:FindItemResponseMessage ResponseClass="Success">
          <m:ResponseCode>NoError</m:ResponseCode>
          <m:RootFolder IndexedPagingOffset="1" TotalItemsInView="1" IncludesLastItemInRange="true">
            <t:Items>
              <t:Message>
                <t:ItemId Id="AAMk=" ChangeKey="CQA"/>
                <t:Subject>[continuity-probe] p&amp;1 &#x263A;</t:Subject>
                <t:DateTimeReceived>2026-01-05T10:00:03.250Z</t:DateTimeReceived>
                <t:DateTimeSent>2026-01-05T09:59:58Z</t:DateTimeSent>
                <t:ExtendedProperty>
                  <t:ExtendedFieldURI DistinguishedPropertySetId="InternetHeaders" PropertyName="X-Continuity-Probe-Id" PropertyType="String"/>
                  <t:Value>p1</t:Value>
                </t:ExtendedProperty>
              </t:Message>
            </t:Items>
          </m:RootFolder>
        </m:FindItemResponseMessage>
      </m:ResponseMessages>
    </m:FindItemResponse>
  </s:Body>
</s:Envelope>"#;

    fn ok() -> HttpMeta<'static> {
        HttpMeta {
            status: 200,
            ..Default::default()
        }
    }

    #[test]
    fn find_item_success() {
        let r = parse_http("FindItem", &ok(), FIND.as_bytes()).unwrap();
        assert_eq!(
            r.server.as_ref().unwrap().version.as_deref(),
            Some("V2017_07_11")
        );
        let m = r.first("FindItem").unwrap();
        let rf = m.root_folder.unwrap();
        assert!(rf.includes_last_item_in_range);
        assert_eq!(rf.indexed_paging_offset, Some(1));
        let item = &m.items[0];
        assert_eq!(
            item.subject.as_deref(),
            Some("[continuity-probe] p&1 \u{263A}")
        );
        assert_eq!(item.probe_header.as_deref(), Some("p1"));
        assert_eq!(item.id.as_ref().unwrap().change_key.as_deref(), Some("CQA"));
        assert_eq!(
            item.received.unwrap().to_rfc3339(),
            "2026-01-05T10:00:03.250+00:00"
        );
    }

    #[test]
    fn attribute_values_are_unescaped() {
        let doc = FIND.replace(r#"ChangeKey="CQA""#, "ChangeKey=\"C&amp;Q&#x41;\tx\"");
        let m = parse_http("FindItem", &ok(), doc.as_bytes())
            .unwrap()
            .first("FindItem")
            .unwrap();
        assert_eq!(
            m.items[0].id.as_ref().unwrap().change_key.as_deref(),
            Some("C&QA x")
        );
    }

    #[test]
    fn prefixes_do_not_matter() {
        // Default namespaces everywhere, and other prefixes.
        let doc = FIND
            .replace("<s:", "<soapenv:")
            .replace("</s:", "</soapenv:")
            .replace("xmlns:s=", "xmlns:soapenv=")
            .replace("<m:", "<")
            .replace("</m:", "</")
            .replace("xmlns:m=", "xmlns=")
            .replace("<t:", "<types:")
            .replace("</t:", "</types:")
            .replace("xmlns:t=", "xmlns:types=");
        let m = parse_http("FindItem", &ok(), doc.as_bytes())
            .unwrap()
            .first("FindItem")
            .unwrap();
        assert_eq!(m.items.len(), 1);
        assert_eq!(m.items[0].probe_header.as_deref(), Some("p1"));
        // Same local names in a foreign namespace are not EWS elements.
        let foreign = FIND.replace("exchange/services/2006/messages", "example/other");
        assert!(matches!(
            parse_http("FindItem", &ok(), foreign.as_bytes()),
            Err(EwsError::Malformed { .. })
        ));
    }

    #[test]
    fn faults() {
        let busy = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/ews-schema/harness/samples/fault-serverbusy.xml"
        ))
        .expect("the shared EWS samples must be at <workspace>/../shared/ews-schema");
        let e = parse_http(
            "FindItem",
            &HttpMeta {
                status: 500,
                ..ok()
            },
            &busy,
        )
        .unwrap_err();
        assert!(
            matches!(e, EwsError::ServerBusy { back_off: Some(b), .. } if b.as_millis() == 30000),
            "{e:?}"
        );
        let denied = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorImpersonateUserDenied</faultcode><faultstring xml:lang="en-US">The account does not have permission to impersonate the requested user.</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorImpersonateUserDenied</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The account does not have permission to impersonate the requested user.</e:Message></detail></s:Fault></s:Body></s:Envelope>"#;
        let e = parse_http(
            "GetFolder",
            &HttpMeta {
                status: 500,
                ..ok()
            },
            denied.as_bytes(),
        )
        .unwrap_err();
        match e {
            EwsError::Fault {
                code,
                message,
                status,
                ..
            } => {
                assert_eq!(code.as_str(), "ErrorImpersonateUserDenied");
                assert!(message.contains("impersonate"));
                assert_eq!(status, 500);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_message_busy() {
        let doc = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/ews-schema/harness/samples/finditem-response-serverbusy.xml"
        ))
        .unwrap();
        let e = parse_http("FindItem", &ok(), &doc)
            .unwrap()
            .first("FindItem")
            .unwrap_err();
        assert!(
            matches!(e, EwsError::ServerBusy { back_off: Some(b), .. } if b.as_millis() == 5000),
            "{e:?}"
        );
    }

    #[test]
    fn html_and_empty_bodies() {
        let meta = HttpMeta {
            status: 502,
            content_type: Some("text/html"),
            ..ok()
        };
        let e = parse_http(
            "FindItem",
            &meta,
            b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("HTTP 502") && text.contains("Bad Gateway"),
            "{text}"
        );
        assert!(e.is_retryable());
        let e = parse_http(
            "FindItem",
            &HttpMeta {
                status: 503,
                ..ok()
            },
            b"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("empty body"), "{e}");
        let e = parse_http("FindItem", &ok(), b"").unwrap_err();
        assert!(matches!(e, EwsError::Malformed { .. }));
    }

    #[test]
    fn fast_dates_agree_with_chrono() {
        for s in [
            "2026-01-05T10:00:03Z",
            "2026-01-05T10:00:03.250Z",
            "2026-01-05T10:00:03.1234567Z",
            "2026-01-05T10:00:03.1234567891Z",
            "2026-01-05T10:00:03+01:30",
            "2026-01-05T10:00:03.5-08:00",
            "2024-02-29T23:59:59Z",
        ] {
            let want = DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
            assert_eq!(fast_datetime(s), Some(want), "{s}");
        }
        for s in [
            "2026-02-30T10:00:03Z",
            "2026-01-05T25:00:03Z",
            "2026-01-05T10:00:03",
            "2026-01-05T10:00:03.Z",
            "2026-01-05 10:00:03Z",
            "2026-01-05T10:00:03+0100",
        ] {
            assert_eq!(fast_datetime(s), None, "{s}");
        }
    }

    #[test]
    fn truncated_and_garbage() {
        for cut in [10, 100, 500, FIND.len() - 3] {
            let e = parse_http("FindItem", &ok(), &FIND.as_bytes()[..cut]).unwrap_err();
            assert!(matches!(e, EwsError::Malformed { .. }), "{cut}: {e:?}");
        }
        let e = parse_http(
            "FindItem",
            &ok(),
            FIND.replace("2026-01-05T10:00:03.250Z", "yesterday")
                .as_bytes(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("DateTimeReceived"), "{e}");
    }
}
