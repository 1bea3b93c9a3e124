//! The SOAP envelope: faults, response messages, items and folders.

use std::borrow::Cow;

use quick_xml::reader::Reader;

use super::{
    FolderInfo, Item, Response, ResponseClass, ResponseMessage, RootFolder, ServerVersionInfo,
    cursor::{Cursor, Ns, Tok, local},
    looks_disabled,
};
use crate::{
    error::{EwsError, ResponseCode, Result, back_off_of},
    request::{ItemId, PROBE_HEADER},
};

/// Parses a SOAP envelope holding an EWS response or fault.
///
/// A fault yields its error (`ServerBusy` for `ErrorServerBusy`); a body
/// over [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) is [`EwsError::TooLarge`].
pub fn parse_envelope(operation: &'static str, status: u16, body: &[u8]) -> Result<Response> {
    super::check_size(body)?;
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
