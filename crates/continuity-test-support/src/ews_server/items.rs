//! The item operations: CreateItem (delivery to held mailboxes after the
//! delay), FindItem with its restriction, GetItem and DeleteItem.

use super::*;

pub(super) fn create_item(
    w: &mut World,
    key: &str,
    from: &str,
    op: &El,
    now: DateTime<Utc>,
) -> Response {
    let disposition = op.attr("MessageDisposition").unwrap_or("");
    if !matches!(disposition, "SendOnly" | "SendAndSaveCopy") {
        w.violations
            .push(format!("MessageDisposition {disposition:?}"));
        return fault(
            "ErrorInvalidRequest",
            "probe sends must use a send disposition",
            "",
        );
    }
    let Some(msg) = op.path(&[(M, "Items"), (T, "Message")]) else {
        return fault("ErrorInvalidRequest", "no message", "");
    };
    let subject = msg
        .child(T, "Subject")
        .map(|e| e.text.clone())
        .unwrap_or_default();
    let header = msg
        .all(T, "ExtendedProperty")
        .find(|p| {
            p.child(T, "ExtendedFieldURI").is_some_and(|u| {
                u.attr("DistinguishedPropertySetId") == Some("InternetHeaders")
                    && u.attr("PropertyName") == Some(PROBE_HEADER)
            })
        })
        .and_then(|p| p.child(T, "Value"))
        .map(|v| v.text.clone());
    let recipients: Vec<String> = msg
        .child(T, "ToRecipients")
        .map(|r| {
            r.all(T, "Mailbox")
                .filter_map(|m| m.child(T, "EmailAddress"))
                .map(|e| e.text.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    if recipients.is_empty() {
        return envelope(
            "CreateItem",
            &error_message(
                "CreateItem",
                "ErrorInvalidRecipients",
                "At least one recipient is required.",
                "",
            ),
        );
    }
    let received = now + w.delay;
    for to in recipients {
        let id = next_id(w);
        let base = Msg {
            id,
            subject: subject.clone(),
            probe_header: header.clone(),
            from: from.into(),
            to: to.clone(),
            sent: now,
            received,
        };
        match w.mailboxes.get_mut(&to.to_ascii_lowercase()) {
            Some(mb) => {
                let stored = store_header(mb, header.as_deref());
                mb.inbox.push(Msg {
                    probe_header: stored,
                    ..base
                });
            }
            None => w.external.push(base),
        }
    }
    if disposition == "SendAndSaveCopy" {
        let id = next_id(w);
        let copy = Msg {
            id,
            subject,
            probe_header: header,
            from: from.into(),
            to: String::new(),
            sent: now,
            received: now,
        };
        if let Some(mb) = w.mailboxes.get_mut(key) {
            mb.sent_items.push(copy);
        }
    }
    envelope(
        "CreateItem",
        r#"<m:CreateItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items/></m:CreateItemResponseMessage>"#,
    )
}

/// Evaluates a restriction element on a message.
fn matches(r: &El, m: &Msg) -> Result<bool, String> {
    let field = |e: &El| -> Result<Option<String>, String> {
        if let Some(u) = e.child(T, "ExtendedFieldURI") {
            if u.attr("DistinguishedPropertySetId") == Some("InternetHeaders")
                && u.attr("PropertyName")
                    .is_some_and(|n| n.eq_ignore_ascii_case(PROBE_HEADER))
            {
                return Ok(m.probe_header.clone());
            }
            return Ok(None);
        }
        match e.child(T, "FieldURI").and_then(|u| u.attr("FieldURI")) {
            Some("item:Subject") => Ok(Some(m.subject.clone())),
            Some("item:DateTimeReceived") => Ok(Some(ts(m.received))),
            Some(other) => Err(format!("field {other} not supported")),
            None => Err("no field".into()),
        }
    };
    let constant = |e: &El| {
        e.path(&[(T, "FieldURIOrConstant"), (T, "Constant")])
            .and_then(|c| c.attr("Value"))
            .map(str::to_owned)
    };
    match r.name.as_str() {
        "Or" => {
            for c in &r.children {
                if matches(c, m)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        "And" => {
            for c in &r.children {
                if !matches(c, m)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        "Not" => Ok(!matches(r.children.first().ok_or("empty Not")?, m)?),
        "IsEqualTo" => Ok(field(r)?.is_some_and(|v| Some(v) == constant(r))),
        "IsGreaterThan" => {
            let c = constant(r).ok_or("no constant")?;
            let c: DateTime<Utc> = c.parse().map_err(|e| format!("{c}: {e}"))?;
            Ok(m.received > c)
        }
        "Contains" => {
            let c = r
                .child(T, "Constant")
                .and_then(|c| c.attr("Value"))
                .ok_or("no constant")?;
            let ignore = r.attr("ContainmentComparison") == Some("IgnoreCase");
            Ok(field(r)?.is_some_and(|v| {
                if ignore {
                    v.to_lowercase().contains(&c.to_lowercase())
                } else {
                    v.contains(c)
                }
            }))
        }
        other => Err(format!("restriction {other} not supported")),
    }
}

fn item_xml(out: &mut String, m: &Msg, headers: bool) {
    let _ = write!(
        out,
        r#"<t:Message><t:ItemId Id="{}" ChangeKey="CQAAABYAAAA"/><t:Subject>{}</t:Subject><t:DateTimeReceived>{}</t:DateTimeReceived><t:DateTimeSent>{}</t:DateTimeSent>"#,
        esc(&m.id),
        esc(&m.subject),
        ts(m.received),
        ts(m.sent)
    );
    if headers {
        out.push_str("<t:InternetMessageHeaders>");
        let _ = write!(
            out,
            r#"<t:InternetMessageHeader HeaderName="Received">from gateway.example by exchange.example; {}</t:InternetMessageHeader>"#,
            m.received.to_rfc2822()
        );
        if let Some(h) = &m.probe_header {
            let _ = write!(
                out,
                r#"<t:InternetMessageHeader HeaderName="{PROBE_HEADER}">{}</t:InternetMessageHeader>"#,
                esc(h)
            );
        }
        out.push_str("</t:InternetMessageHeaders>");
    }
    if let Some(h) = &m.probe_header {
        let _ = write!(
            out,
            r#"<t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId="InternetHeaders" PropertyName="{PROBE_HEADER}" PropertyType="String"/><t:Value>{}</t:Value></t:ExtendedProperty>"#,
            esc(h)
        );
    }
    if headers {
        let _ = write!(
            out,
            "<t:InternetMessageId>&lt;{}@exchange.example&gt;</t:InternetMessageId>",
            esc(&m.id)
        );
    }
    out.push_str("</t:Message>");
}

pub(super) fn find_item(w: &mut World, key: &str, op: &El, now: DateTime<Utc>) -> Response {
    let folders: Vec<String> = op
        .child(M, "ParentFolderIds")
        .map(|p| {
            p.all(T, "DistinguishedFolderId")
                .filter_map(|f| f.attr("Id"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mb = &w.mailboxes[key];
    let mut items: Vec<&Msg> = Vec::new();
    for f in &folders {
        match f.as_str() {
            "inbox" => items.extend(mb.inbox.iter().filter(|m| m.received <= now)),
            "junkemail" => {}
            "sentitems" => items.extend(mb.sent_items.iter()),
            other => return fault("ErrorInvalidRequest", &format!("folder {other}"), ""),
        }
    }
    if let Some(r) = op.child(M, "Restriction").and_then(|r| r.children.first()) {
        let mut kept = Vec::new();
        for m in items {
            match matches(r, m) {
                Ok(true) => kept.push(m),
                Ok(false) => {}
                Err(e) => return fault("ErrorInvalidRequest", &e, ""),
            }
        }
        items = kept;
    }
    if op.child(M, "SortOrder").is_some() {
        items.sort_by_key(|m| std::cmp::Reverse(m.received));
    }
    let view = op.child(M, "IndexedPageItemView");
    let offset: usize = view
        .and_then(|v| v.attr("Offset"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let max: usize = view
        .and_then(|v| v.attr("MaxEntriesReturned"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .min(w.page_cap);
    let total = items.len();
    let page: Vec<&Msg> = items.into_iter().skip(offset).take(max).collect();
    let end = offset + page.len();
    let mut out = format!(
        r#"<m:FindItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:RootFolder IndexedPagingOffset="{end}" TotalItemsInView="{total}" IncludesLastItemInRange="{}"><t:Items>"#,
        end >= total
    );
    for m in page {
        item_xml(&mut out, m, false);
    }
    out.push_str("</t:Items></m:RootFolder></m:FindItemResponseMessage>");
    envelope("FindItem", &out)
}

fn ids(op: &El) -> Vec<String> {
    op.child(M, "ItemIds")
        .map(|i| {
            i.all(T, "ItemId")
                .filter_map(|e| e.attr("Id"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn get_item(w: &mut World, key: &str, op: &El, now: DateTime<Utc>) -> Response {
    let mb = &w.mailboxes[key];
    let mut out = String::new();
    for id in ids(op) {
        match mb
            .inbox
            .iter()
            .chain(mb.sent_items.iter())
            .find(|m| m.id == id && m.received <= now)
        {
            Some(m) => {
                out.push_str(r#"<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items>"#);
                item_xml(&mut out, m, true);
                out.push_str("</m:Items></m:GetItemResponseMessage>");
            }
            None => out.push_str(&error_message(
                "GetItem",
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
                "",
            )),
        }
    }
    envelope("GetItem", &out)
}

pub(super) fn delete_item(w: &mut World, key: &str, op: &El) -> Response {
    let mb = w.mailboxes.get_mut(key).unwrap();
    let mut out = String::new();
    for id in ids(op) {
        let before = mb.inbox.len() + mb.sent_items.len();
        mb.inbox.retain(|m| m.id != id);
        mb.sent_items.retain(|m| m.id != id);
        if mb.inbox.len() + mb.sent_items.len() < before {
            out.push_str(r#"<m:DeleteItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode></m:DeleteItemResponseMessage>"#);
        } else {
            out.push_str(&error_message(
                "DeleteItem",
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
                "",
            ));
        }
    }
    envelope("DeleteItem", &out)
}
