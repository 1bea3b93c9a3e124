//! The mail operations: sendMail (delivery after the delay, to a held
//! mailbox or outside), message listings with `$filter`, `$select`,
//! `$top`, `$orderby` and paging, and deletion.

use super::filter::{Clause, matches, parse_filter};
use super::*;

pub(super) fn send_mail(
    w: &mut World,
    from: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Reply {
    let bad = |m: &str| error(400, "ErrorInvalidRequest", m);
    if !headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return error(
            415,
            "UnsupportedMediaType",
            "Content-Type application/json expected.",
        );
    }
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) else {
        return error(400, "BadRequest", "Unable to read JSON request payload.");
    };
    for k in top.keys() {
        if k != "message" && k != "saveToSentItems" {
            return error(
                400,
                "BadRequest",
                &format!("The property '{k}' does not exist on type 'microsoft.graph.sendMail'."),
            );
        }
    }
    let save = match top.get("saveToSentItems") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return bad("saveToSentItems must be a boolean."),
    };
    let Some(Value::Object(m)) = top.get("message") else {
        return bad("The message is missing.");
    };
    let Some(subject) = m.get("subject").and_then(Value::as_str) else {
        return bad("The subject is missing.");
    };
    let body_ok = m.get("body").is_some_and(|b| {
        b["content"].is_string()
            && b["contentType"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("text") || t.eq_ignore_ascii_case("html"))
    });
    if !body_ok {
        return bad("The body needs contentType Text or HTML and a content.");
    }
    let recipients: Vec<String> = match m.get("toRecipients") {
        Some(Value::Array(rs)) if !rs.is_empty() => {
            match rs
                .iter()
                .map(|r| r["emailAddress"]["address"].as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
            {
                Some(v) if v.iter().all(|a| a.contains('@')) => v,
                _ => {
                    return error(
                        400,
                        "ErrorInvalidRecipients",
                        "At least one recipient is not valid.",
                    );
                }
            }
        }
        _ => {
            return error(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient is not valid.",
            );
        }
    };
    let mut internet_headers = Vec::new();
    if let Some(hs) = m.get("internetMessageHeaders") {
        let Some(hs) = hs.as_array() else {
            return bad("internetMessageHeaders must be an array.");
        };
        for h in hs {
            let (Some(name), Some(value)) = (h["name"].as_str(), h["value"].as_str()) else {
                return bad("An internet message header needs a name and a value.");
            };
            if !(name.starts_with("x-") || name.starts_with("X-")) {
                return error(
                    400,
                    "InvalidInternetMessageHeader",
                    &format!(
                        "The internet message header name '{name}' should start with 'x-' or 'X-'."
                    ),
                );
            }
            internet_headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let at = now + w.delay;
    for to in &recipients {
        w.deliver(to, subject, internet_headers.clone(), at);
    }
    if save {
        let id = format!("sent-{}", w.next_id);
        w.next_id += 1;
        w.mailboxes.get_mut(from).unwrap().sent_items.push(Msg {
            id,
            subject: subject.into(),
            headers: internet_headers,
            header_mapped: true,
            to: recipients.join(","),
            received: now,
        });
    }
    ok(202, None)
}

pub(super) fn list(
    w: &mut World,
    mailbox: &str,
    folder: &str,
    uri: &Uri,
    base: &str,
    foreign_next_link: bool,
    now: DateTime<Utc>,
) -> Reply {
    let query = uri.query().unwrap_or("");
    let mut options: HashMap<String, String> = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (percent_decode(k), percent_decode(v)) else {
            return error(400, "BadRequest", "Malformed query string.");
        };
        if !k.starts_with('$') {
            continue;
        }
        if !["$filter", "$select", "$top", "$skip", "$orderby"].contains(&k.as_str()) {
            return error(
                400,
                "BadRequest",
                &format!("Query option '{k}' is not allowed."),
            );
        }
        if options.insert(k.clone(), v).is_some() {
            return error(
                400,
                "BadRequest",
                &format!("Query option '{k}' was specified more than once."),
            );
        }
    }
    let clauses = match options.get("$filter").map(|f| parse_filter(f)) {
        None => Vec::new(),
        Some(Ok(c)) => c,
        Some(Err(e)) => return error(400, "BadRequest", &e),
    };
    // Graph takes contains(subject, …) only after a date restriction.
    let subject_at = clauses
        .iter()
        .position(|c| matches!(c, Clause::SubjectContains(_)));
    let dated = |i: usize| {
        clauses[..i]
            .iter()
            .any(|c| matches!(c, Clause::ReceivedGe(_)))
    };
    if subject_at.is_some_and(|i| !dated(i)) {
        return error(
            400,
            "InefficientFilter",
            "The restriction or sort order is too complex for this operation.",
        );
    }
    if let Some(order) = options.get("$orderby") {
        let prop = order.split_whitespace().next().unwrap_or("");
        if !matches!(clauses.first(), Some(Clause::ReceivedGe(_))) || prop != "receivedDateTime" {
            return error(
                400,
                "InefficientFilter",
                "The restriction or sort order is too complex for this operation.",
            );
        }
    }
    let select: Vec<String> = match options.get("$select") {
        Some(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        None => SELECTABLE.iter().map(|s| s.to_string()).collect(),
    };
    if let Some(p) = select.iter().find(|p| !SELECTABLE.contains(&p.as_str())) {
        return error(
            400,
            "RequestBroker--ParseUri",
            &format!("Could not find a property named '{p}' on type 'microsoft.graph.message'."),
        );
    }
    let top = match options.get("$top").map(|t| t.parse::<usize>()) {
        None => 10,
        Some(Ok(t)) if (1..=1000).contains(&t) => t,
        _ => return error(400, "BadRequest", "Invalid $top value."),
    };
    let skip = match options.get("$skip").map(|t| t.parse::<usize>()) {
        None => 0,
        Some(Ok(s)) => s,
        Some(Err(_)) => return error(400, "BadRequest", "Invalid $skip value."),
    };
    let mb = &w.mailboxes[mailbox];
    let messages = match folder.to_ascii_lowercase().as_str() {
        "inbox" => &mb.inbox,
        "junkemail" => &mb.junk,
        "sentitems" => &mb.sent_items,
        "deleteditems" => &mb.deleted_items,
        other => {
            return error(
                404,
                "ErrorItemNotFound",
                &format!("The specified folder '{other}' could not be found in the store."),
            );
        }
    };
    let mut hits: Vec<&Msg> = messages
        .iter()
        .filter(|m| m.received <= now && matches(m, &clauses))
        .collect();
    // Graph's default order: newest first.
    hits.sort_by_key(|m| std::cmp::Reverse(m.received));
    let page = top.min(w.page_cap);
    let value: Vec<Value> = hits
        .iter()
        .skip(skip)
        .take(page)
        .map(|m| {
            let mut o = serde_json::Map::new();
            o.insert("@odata.etag".into(), json!(format!("W/\"{}\"", m.id)));
            for p in &select {
                let v = match p.as_str() {
                    "id" => json!(m.id),
                    "subject" => json!(m.subject),
                    "receivedDateTime" | "sentDateTime" => {
                        json!(m.received.to_rfc3339_opts(SecondsFormat::Secs, true))
                    }
                    "internetMessageHeaders" => Value::Array(
                        m.headers
                            .iter()
                            .map(|(n, v)| json!({ "name": n, "value": v }))
                            .chain([json!({ "name": "Received", "value": "from gateway.example by EXO" })])
                            .collect(),
                    ),
                    _ => Value::Null,
                };
                o.insert(p.clone(), v);
            }
            Value::Object(o)
        })
        .collect();
    let mut body = json!({
        "@odata.context": format!("{base}/$metadata#users('{mailbox}')/mailFolders('{folder}')/messages"),
        "value": value,
    });
    if skip + page < hits.len() {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.starts_with("%24skip=") && !p.starts_with("$skip="))
            .collect();
        let origin = if foreign_next_link {
            "https://graph.attacker.example/v1.0".to_owned()
        } else {
            base.to_owned()
        };
        body["@odata.nextLink"] = json!(format!(
            "{origin}/users/{mailbox}/mailFolders/{folder}/messages?{}&%24skip={}",
            kept.join("&"),
            skip + page
        ));
    }
    ok(200, Some(body))
}

pub(super) fn delete(w: &mut World, mailbox: &str, id: &str, purge: bool) -> Reply {
    let mb = w.mailboxes.get_mut(mailbox).unwrap();
    for folder in [&mut mb.inbox, &mut mb.junk, &mut mb.sent_items] {
        if let Some(i) = folder.iter().position(|m| m.id == id) {
            let m = folder.remove(i);
            if !purge {
                mb.deleted_items.push(m);
            }
            return ok(204, None);
        }
    }
    if let Some(i) = mb.deleted_items.iter().position(|m| m.id == id) {
        mb.deleted_items.remove(i);
        return ok(204, None);
    }
    error(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}
