//! Probe tokens on the wire, and the arrival registry the embedding gateway
//! feeds with outbound probes it received. Shared by the mail adapters
//! (`continuity-ews`, `continuity-graph`), so that one gateway feeds one
//! registry and one [`ProbeSender`](crate::probe::ProbeSender) serves every
//! adapter.
//!
//! Core's probe ids are unique per tenant only, so the probe token a message
//! carries (subject and X-header) is `<probe id>.<tenant>`, both parts
//! percent-encoded to plain ASCII letters, digits, `-`, `_` and `~`: it
//! survives any mail header, and the gateway can read the tenant back.
//!
//! ```
//! use continuity_core::{TenantId, arrival::{self, ArrivalRegistry}};
//!
//! let acme = TenantId::new("acme").unwrap();
//! let probe_token = arrival::wire_id(&acme, "ou-19a8b");
//! assert_eq!(probe_token, "ou-19a8b.acme");
//! let subject = arrival::probe_subject(&probe_token);
//! assert_eq!(subject, "[continuity-probe] ou-19a8b.acme");
//!
//! // The gateway reports what it received; the probe takes it when it checks.
//! let arrivals = ArrivalRegistry::default();
//! let at = "2026-03-02T08:00:41Z".parse().unwrap();
//! let (tenant, probe_id) = arrivals.report_message(Some(&subject), None, at).unwrap();
//! assert_eq!((tenant, probe_id.as_str()), (acme, "ou-19a8b"));
//! assert_eq!(arrivals.take(&probe_token), Some(at));
//! ```

use std::{collections::HashMap, fmt::Write as _, sync::Mutex};

use chrono::{DateTime, Utc};

use crate::domain::TenantId;

/// The one X-header carrying the probe token. One fixed name: a per-probe
/// name would use up a mailbox's named-property quota, and Exchange finds a
/// header by the exact name it first stored (PROTOCOLS.md §3.1, §7.2).
pub const PROBE_HEADER: &str = "X-Continuity-Probe-Id";

/// Subject prefix of probe messages; the probe token follows after a space.
pub const SUBJECT_PREFIX: &str = "[continuity-probe]";

/// The subject of the probe carrying `probe_token`.
pub fn probe_subject(probe_token: &str) -> String {
    format!("{SUBJECT_PREFIX} {probe_token}")
}

/// Whether a message with `subject` and probe header value `header` is the
/// probe carrying `probe_token` (exactly: the header's value, or the subject's
/// probe token after [`SUBJECT_PREFIX`]).
pub fn carries_probe_token(subject: Option<&str>, header: Option<&str>, probe_token: &str) -> bool {
    header.map(str::trim) == Some(probe_token)
        || subject
            .and_then(|s| s.trim().strip_prefix(SUBJECT_PREFIX))
            .map(str::trim)
            == Some(probe_token)
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// The probe token carried by the probe `probe_id` of `tenant`.
pub fn wire_id(tenant: &TenantId, probe_id: &str) -> String {
    let mut out = String::with_capacity(probe_id.len() + tenant.as_str().len() + 8);
    encode_into(&mut out, probe_id);
    out.push('.');
    encode_into(&mut out, tenant.as_str());
    out
}

/// Reads a probe token back into (tenant, probe id); `None` if it is not one.
pub fn parse_wire_id(probe_token: &str) -> Option<(TenantId, String)> {
    let (probe, tenant) = probe_token.trim().split_once('.')?;
    let probe = decode(probe).filter(|p| !p.is_empty())?;
    let tenant = TenantId::new(decode(tenant)?).ok()?;
    Some((tenant, probe))
}

/// The probe token of a received message, from its `X-Continuity-Probe-Id`
/// header or, when a hop stripped that, from its subject.
pub fn probe_token_of(subject: Option<&str>, header: Option<&str>) -> Option<String> {
    if let Some(h) = header.map(str::trim).filter(|h| parse_wire_id(h).is_some()) {
        return Some(h.to_owned());
    }
    let rest = subject?.trim().strip_prefix(SUBJECT_PREFIX)?.trim();
    let probe_token = rest.split_whitespace().next()?;
    parse_wire_id(probe_token).map(|_| probe_token.to_owned())
}

/// Where the embedding gateway reports outbound probes it received; the
/// outbound probe of a mail adapter checks it.
///
/// Bounded: when it holds `capacity` unclaimed arrivals, the oldest half is
/// dropped (those probes will count as lost, which is what an arrival no
/// one asks about for that long means anyway).
#[derive(Debug)]
pub struct ArrivalRegistry {
    capacity: usize,
    arrivals: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Default for ArrivalRegistry {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl ArrivalRegistry {
    /// A registry holding at most `capacity` unclaimed arrivals.
    pub fn new(capacity: usize) -> Self {
        ArrivalRegistry {
            capacity: capacity.max(2),
            arrivals: Mutex::new(HashMap::new()),
        }
    }

    /// The name of the header the gateway reads the probe token from.
    pub const HEADER: &'static str = PROBE_HEADER;

    /// Reports a message the gateway received at `at`. Returns the probe's
    /// tenant and id if the message was a probe (otherwise nothing is kept).
    pub fn report_message(
        &self,
        subject: Option<&str>,
        probe_header: Option<&str>,
        at: DateTime<Utc>,
    ) -> Option<(TenantId, String)> {
        let probe_token = probe_token_of(subject, probe_header)?;
        let parsed = parse_wire_id(&probe_token)?;
        self.report(&probe_token, at);
        Some(parsed)
    }

    /// Reports the probe with `probe_token` as received at `at` (the earliest
    /// report of a probe token wins: a duplicate delivery is not a later arrival).
    pub fn report(&self, probe_token: &str, at: DateTime<Utc>) {
        let mut map = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity && !map.contains_key(probe_token) {
            let mut times: Vec<DateTime<Utc>> = map.values().copied().collect();
            let mid = times.len() / 2;
            let (_, cut, _) = times.select_nth_unstable(mid);
            let cut = *cut;
            map.retain(|_, t| *t > cut);
        }
        map.entry(probe_token.to_owned())
            .and_modify(|t| *t = (*t).min(at))
            .or_insert(at);
    }

    /// Takes the arrival of `probe_token`, if reported.
    pub fn take(&self, probe_token: &str) -> Option<DateTime<Utc>> {
        self.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(probe_token)
    }

    /// Unclaimed arrivals held.
    pub fn len(&self) -> usize {
        self.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ids_round_trip_any_tenant() {
        for t in ["acme", "ACME.corp", "ünïcødé/租户", "a%2Eb", "x.y.z"] {
            let tenant = TenantId::new(t).unwrap();
            let w = wire_id(&tenant, "ou-19a8b");
            assert!(
                w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_~.%".contains(&b)),
                "{w}"
            );
            assert_eq!(w.matches('.').count(), 1);
            assert_eq!(parse_wire_id(&w), Some((tenant, "ou-19a8b".to_owned())));
        }
        assert_eq!(parse_wire_id("nodot"), None);
        assert_eq!(parse_wire_id("a.b c"), None);
        assert_eq!(parse_wire_id("a.%ZZ"), None);
        assert_eq!(parse_wire_id(".acme"), None);
    }

    #[test]
    fn tokens_from_header_or_subject() {
        let tenant = TenantId::new("acme").unwrap();
        let w = wire_id(&tenant, "ou-1");
        let subject = format!("{SUBJECT_PREFIX} {w}");
        assert_eq!(probe_token_of(None, Some(&w)).as_deref(), Some(w.as_str()));
        assert_eq!(
            probe_token_of(Some(&subject), None).as_deref(),
            Some(w.as_str())
        );
        assert_eq!(probe_token_of(Some(&format!("RE: {subject}")), None), None);
        assert_eq!(probe_token_of(Some("hello"), Some("garbage")), None);
    }

    #[test]
    fn carrying_a_token_is_an_exact_match() {
        let subject = probe_subject("p1.acme");
        assert!(carries_probe_token(Some(&subject), None, "p1.acme"));
        assert!(carries_probe_token(None, Some(" p1.acme "), "p1.acme"));
        assert!(carries_probe_token(
            Some("hello"),
            Some("p1.acme"),
            "p1.acme"
        ));
        assert!(!carries_probe_token(Some(&subject), None, "p1.acm"));
        assert!(!carries_probe_token(
            Some(&probe_subject("xp1.acme")),
            None,
            "p1.acme"
        ));
        assert!(!carries_probe_token(
            Some(&format!("RE: {subject}")),
            None,
            "p1.acme"
        ));
        assert!(!carries_probe_token(None, None, "p1.acme"));
    }

    #[test]
    fn registry_keeps_the_earliest_and_stays_bounded() {
        let r = ArrivalRegistry::new(4);
        let t0: DateTime<Utc> = "2026-03-02T08:00:00Z".parse().unwrap();
        r.report("a.x", t0 + chrono::TimeDelta::seconds(5));
        r.report("a.x", t0);
        assert_eq!(r.take("a.x"), Some(t0));
        assert_eq!(r.take("a.x"), None);
        for n in 0..10 {
            r.report(&format!("p{n}.x"), t0 + chrono::TimeDelta::seconds(n));
        }
        assert!(r.len() <= 4);
        assert!(r.take("p9.x").is_some(), "the newest is kept");
        assert!(r.take("p0.x").is_none(), "the oldest went first");
    }
}
