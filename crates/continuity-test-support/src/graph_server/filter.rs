//! The `$filter` forms the local Graph evaluates (as Graph does for
//! messages): `receivedDateTime ge`, `contains(subject, …)` and
//! `singleValueExtendedProperties/any(…)` on an internet header, joined by
//! `and`.

use super::*;

#[derive(Debug)]
pub(super) enum Clause {
    ReceivedGe(DateTime<Utc>),
    SubjectContains(String),
    Header { name: String, value: String },
}

/// An OData string literal at the start of `s`: (value, rest).
fn literal(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if s[i + 1..].starts_with('\'') {
                out.push('\'');
                chars.next();
            } else {
                return Some((out, &s[i + 1..]));
            }
        } else {
            out.push(c);
        }
    }
    None
}

fn parse_clause(s: &str) -> Result<(Clause, &str), String> {
    let invalid = || format!("Invalid filter clause: {s}");
    if let Some(rest) = s.strip_prefix("receivedDateTime ge ") {
        let end = rest.find(' ').unwrap_or(rest.len());
        let at = rest[..end].parse().map_err(|_| invalid())?;
        return Ok((Clause::ReceivedGe(at), &rest[end..]));
    }
    if let Some(rest) = s.strip_prefix("contains(subject,") {
        let (v, rest) = literal(rest.trim_start()).ok_or_else(invalid)?;
        let rest = rest.strip_prefix(')').ok_or_else(invalid)?;
        return Ok((Clause::SubjectContains(v), rest));
    }
    if let Some(rest) = s.strip_prefix("singleValueExtendedProperties/any(ep: ep/id eq ") {
        let (id, rest) = literal(rest).ok_or_else(invalid)?;
        let rest = rest.strip_prefix(" and ep/value eq ").ok_or_else(invalid)?;
        let (value, rest) = literal(rest).ok_or_else(invalid)?;
        let rest = rest.strip_prefix(')').ok_or_else(invalid)?;
        let name = id
            .strip_prefix("String ")
            .and_then(|r| {
                let (guid, name) = r.split_once(" Name ")?;
                guid.eq_ignore_ascii_case(PS_INTERNET_HEADERS)
                    .then_some(name)
            })
            .ok_or_else(|| format!("The extended property id '{id}' is not valid."))?;
        return Ok((
            Clause::Header {
                name: name.to_owned(),
                value,
            },
            rest,
        ));
    }
    Err(invalid())
}

pub(super) fn parse_filter(f: &str) -> Result<Vec<Clause>, String> {
    let mut clauses = Vec::new();
    let mut rest = f.trim();
    loop {
        let (c, r) = parse_clause(rest)?;
        clauses.push(c);
        rest = r.trim_start();
        if rest.is_empty() {
            return Ok(clauses);
        }
        rest = rest
            .strip_prefix("and ")
            .ok_or_else(|| format!("Invalid filter clause near '{rest}'"))?;
    }
}

pub(super) fn matches(m: &Msg, clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| match c {
        Clause::ReceivedGe(at) => m.received >= *at,
        Clause::SubjectContains(v) => m.subject.to_lowercase().contains(&v.to_lowercase()),
        Clause::Header { name, value } => {
            m.header_mapped
                && m.headers
                    .iter()
                    .any(|(n, v)| n == name && v.eq_ignore_ascii_case(value))
        }
    })
}
