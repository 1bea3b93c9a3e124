//! The OData query strings the probe sends, within Graph's rules for mail
//! (PROTOCOLS.md §7.2): a filter on the probe header's named property, or on
//! the subject probe token after a date condition, and never an `$orderby` (Graph
//! refuses one whose properties do not open the `$filter`, with
//! `InefficientFilter`; the probe takes the earliest `receivedDateTime` itself).

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

/// The property set of Internet headers, `PS_INTERNET_HEADERS`.
pub const PS_INTERNET_HEADERS: &str = "{00020386-0000-0000-C000-000000000046}";

/// The message properties the probe reads.
pub const MESSAGE_SELECT: &str = "id,subject,receivedDateTime,internetMessageHeaders";

/// A well-known mail folder the inbound probe is looked for in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MailFolder {
    /// `inbox`.
    Inbox,
    /// `junkemail`: where a spam verdict puts a probe.
    JunkEmail,
}

impl MailFolder {
    /// Graph's well-known folder name.
    pub fn well_known_name(self) -> &'static str {
        match self {
            MailFolder::Inbox => "inbox",
            MailFolder::JunkEmail => "junkemail",
        }
    }
}

/// The single-value extended property id of the Internet header `name`.
/// Graph matches the name case-sensitively, so senders and this filter use
/// one fixed spelling ([`PROBE_HEADER`](continuity_core::arrival::PROBE_HEADER)).
pub fn header_property_id(name: &str) -> String {
    format!("String {PS_INTERNET_HEADERS} Name {name}")
}

/// `value` as an OData string literal (quotes doubled).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The filter finding messages whose header `name` has the value `probe_token`.
pub fn header_filter(name: &str, probe_token: &str) -> String {
    format!(
        "singleValueExtendedProperties/any(ep: ep/id eq {} and ep/value eq {})",
        literal(&header_property_id(name)),
        literal(probe_token)
    )
}

/// The filter finding messages received at or after `after` whose subject
/// contains `probe_token` (Graph takes `contains(subject, …)` after a date condition).
pub fn subject_filter(probe_token: &str, after: DateTime<Utc>) -> String {
    format!(
        "receivedDateTime ge {} and contains(subject,{})",
        after.to_rfc3339_opts(SecondsFormat::Secs, true),
        literal(probe_token)
    )
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved
/// characters, so spaces are `%20` (never `+`) and quotes, colons and
/// slashes arrive as sent.
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A query string of `$`-options, each value encoded.
pub fn query(options: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in options {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(&encode_component(value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_as_graph_expects_them() {
        assert_eq!(
            header_filter("X-Continuity-Probe-Id", "p1.acme"),
            "singleValueExtendedProperties/any(ep: ep/id eq 'String {00020386-0000-0000-C000-000000000046} Name X-Continuity-Probe-Id' and ep/value eq 'p1.acme')"
        );
        let after = "2026-03-02T07:50:00Z".parse().unwrap();
        assert_eq!(
            subject_filter("p1.acme", after),
            "receivedDateTime ge 2026-03-02T07:50:00Z and contains(subject,'p1.acme')"
        );
        assert_eq!(literal("o'brien"), "'o''brien'");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            query(&[("$filter", "a eq 'b c'/d:e"), ("$top", "50")]),
            "$filter=a%20eq%20%27b%20c%27%2Fd%3Ae&$top=50"
        );
        assert_eq!(encode_component("{é}+"), "%7B%C3%A9%7D%2B");
    }
}
