//! A pull cursor over quick-xml events that tracks namespace bindings.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use quick_xml::{
    events::{BytesStart, Event},
    reader::Reader,
};

use crate::{
    error::{EwsError, Result},
    request::{ERRORS_NS, MESSAGES_NS, SOAP_NS, TYPES_NS},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ns {
    Soap,
    Types,
    Messages,
    Errors,
    Other,
}

pub(super) fn ns_of(uri: &str) -> Ns {
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
pub(super) struct Binding {
    depth: u32,
    prefix: Box<str>,
    ns: Ns,
}

pub(super) enum Tok<'i> {
    Open(Ns, BytesStart<'i>),
    Close,
    Text(Cow<'i, str>),
    Eof,
}

pub(super) struct Cursor<'i> {
    pub(super) r: Reader<&'i [u8]>,
    pub(super) status: u16,
    pub(super) depth: u32,
    pub(super) bindings: Vec<Binding>,
}

impl<'i> Cursor<'i> {
    pub(super) fn bad(&self, reason: impl Into<String>) -> EwsError {
        EwsError::Malformed {
            status: self.status,
            reason: reason.into(),
        }
    }

    pub(super) fn next(&mut self) -> Result<Tok<'i>> {
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
    pub(super) fn enter(&mut self, e: &BytesStart<'_>) -> Result<Ns> {
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
    pub(super) fn consume(&mut self, keep_text: bool) -> Result<Cow<'i, str>> {
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
    pub(super) fn skip(&mut self) -> Result<()> {
        self.consume(false).map(drop)
    }

    /// The text of the element just opened, borrowed where possible.
    pub(super) fn text_cow(&mut self) -> Result<Cow<'i, str>> {
        self.consume(true)
    }

    /// The text of the element just opened.
    pub(super) fn text(&mut self) -> Result<String> {
        self.consume(true).map(Cow::into_owned)
    }

    /// Calls `f` for each child element of the element just opened; `f` must
    /// consume the child (with `skip`, `text` or its own loop).
    pub(super) fn children(
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

    pub(super) fn attr<'e>(
        &self,
        e: &'e BytesStart<'_>,
        name: &str,
    ) -> Result<Option<Cow<'e, str>>> {
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

    pub(super) fn num_attr(&self, e: &BytesStart<'_>, name: &str) -> Result<Option<u32>> {
        match self.attr(e, name)? {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.bad(format!("attribute {name}={v:?} is not a number"))),
        }
    }

    pub(super) fn date(&mut self, field: &str) -> Result<DateTime<Utc>> {
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
pub(super) fn fast_datetime(s: &str) -> Option<DateTime<Utc>> {
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

pub(super) fn local<'a>(e: &'a BytesStart<'_>) -> &'a str {
    e.local_name().into_inner()
}
