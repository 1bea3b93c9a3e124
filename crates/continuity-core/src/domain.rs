//! Domain types: tenants, directions, observations.

use std::{fmt, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest tenant id accepted, in bytes.
pub const MAX_TENANT_ID_LEN: usize = 128;

/// Identifies one monitored organisation. Cheap to clone.
///
/// Ids are 1 to [`MAX_TENANT_ID_LEN`] bytes of printable characters without
/// whitespace (they appear in links, logs and store keys).
#[derive(Clone, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(Arc<str>);

impl std::hash::Hash for TenantId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Hashes the text, as equality compares it (pointers only short-cut).
        self.0.hash(state);
    }
}

impl PartialEq for TenantId {
    fn eq(&self, other: &Self) -> bool {
        // Ids are cloned from one registration, so the same allocation is the
        // common case; it avoids reading the text at all.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl TenantId {
    /// Validates and wraps a tenant id.
    pub fn new(id: impl AsRef<str>) -> Result<Self> {
        let id = id.as_ref();
        if id.is_empty() {
            return Err(Error::InvalidTenantId {
                reason: "empty".into(),
            });
        }
        if id.len() > MAX_TENANT_ID_LEN {
            return Err(Error::InvalidTenantId {
                reason: format!("{} bytes, at most {MAX_TENANT_ID_LEN}", id.len()),
            });
        }
        if let Some(c) = id.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return Err(Error::InvalidTenantId {
                reason: format!(
                    "contains {c:?}; whitespace and control characters are not allowed"
                ),
            });
        }
        Ok(TenantId(Arc::from(id)))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        TenantId::new(value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0.to_string()
    }
}

impl std::str::FromStr for TenantId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        TenantId::new(s)
    }
}

/// Which way mail flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the gateway to the organisation's mail server.
    Inbound,
    /// From the organisation's mail server to the gateway.
    Outbound,
}

impl Direction {
    /// Both directions, inbound first.
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    /// `"inbound"` or `"outbound"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// 0 for inbound, 1 for outbound: an index into per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a delivery or probe failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// The receiving server refused the message permanently (5xx).
    Refused,
    /// The receiving server deferred the message (4xx); it is still queued.
    Deferred,
    /// The connection or the transaction timed out.
    TimedOut,
    /// The receiving server could not be reached at all.
    Unreachable,
    /// An active probe did not arrive by its deadline.
    LostProbe,
    /// Any other failure.
    Other,
}

impl FailureKind {
    /// Every kind, in the order of [`FailureKind::index`].
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Refused,
        FailureKind::Deferred,
        FailureKind::TimedOut,
        FailureKind::Unreachable,
        FailureKind::LostProbe,
        FailureKind::Other,
    ];

    /// The kind's position in [`FailureKind::ALL`]: an index into per-kind counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short lowercase name, as used in logs and alert texts.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Refused => "refused",
            FailureKind::Deferred => "deferred",
            FailureKind::TimedOut => "timed out",
            FailureKind::Unreachable => "unreachable",
            FailureKind::LostProbe => "lost probe",
            FailureKind::Other => "failed",
        }
    }
}

/// What happened to one message.
///
/// In JSON the latency is written as configuration writes durations, to the
/// nanosecond (`{"delivered": {"latency": "1s250ms"}}`,
/// `{"failed": {"kind": "deferred"}}`); the form of earlier builds,
/// `{"latency": {"secs": 1, "nanos": 250000000}}`, still reads.
///
/// ```
/// use std::time::Duration;
/// use continuity_core::Outcome;
/// let o = Outcome::Delivered { latency: Duration::from_millis(1250) };
/// assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"delivered":{"latency":"1s250ms"}}"#);
/// let old: Outcome = serde_json::from_str(r#"{"delivered":{"latency":{"secs":1,"nanos":250000000}}}"#).unwrap();
/// assert_eq!(old, o);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Delivered after `latency` (from hand-over to arrival).
    Delivered {
        /// Time from hand-over to arrival.
        #[serde(with = "crate::duration::serde_duration_compat")]
        latency: Duration,
    },
    /// Not delivered.
    Failed {
        /// Why.
        kind: FailureKind,
    },
}

impl Outcome {
    /// Whether this outcome is a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }

    /// The latency of a delivery, `None` for a failure.
    pub fn latency(&self) -> Option<Duration> {
        match self {
            Outcome::Delivered { latency } => Some(*latency),
            Outcome::Failed { .. } => None,
        }
    }

    /// Reduces the attempts of one delivery over several routes (fail-over)
    /// to one outcome: a message that failed on one route but was delivered
    /// over another is **delivered** (with the successful attempt's latency);
    /// only a message that failed on every route is a failure (with the last
    /// attempt's kind). `None` when there were no attempts.
    pub fn from_route_attempts(attempts: &[Outcome]) -> Option<Outcome> {
        attempts
            .iter()
            .find(|o| !o.is_failure())
            .or_else(|| attempts.last())
            .copied()
    }
}

/// What the remote side answered to a failed delivery, as alerts quote it:
/// `421 4.3.2 Service not available`, `connection refused by 203.0.113.5:25`,
/// an EWS response code.
///
/// Bounded on entry, whatever it is given: control characters (line breaks,
/// tabs, escapes) become spaces, runs of whitespace one space, and the text
/// is cut to at most [`RemoteReply::MAX_LEN`] bytes on a character boundary
/// (marked with `...`). It is shown in SMS, e-mail and the portal, so it must
/// not be able to bloat them or break their lines; the portal and the HTML
/// e-mail escape it like every other value.
///
/// ```
/// use continuity_core::RemoteReply;
/// let r = RemoteReply::new("421 4.3.2 Service\r\n not available").unwrap();
/// assert_eq!(r.as_str(), "421 4.3.2 Service not available");
/// assert!(RemoteReply::new(" \t\n").is_none());
/// assert!(RemoteReply::new("x".repeat(1000)).unwrap().as_str().len() <= RemoteReply::MAX_LEN);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RemoteReply(Box<str>);

impl RemoteReply {
    /// Longest reply kept, in bytes (an SMTP reply line, a socket error with
    /// its address, an EWS response code all fit).
    pub const MAX_LEN: usize = 120;

    /// The cleaned, bounded reply; `None` when nothing printable is left.
    pub fn new(text: impl AsRef<str>) -> Option<Self> {
        // ASCII, so that an SMS quoting a cut reply stays in GSM-7.
        const MARK: &str = "...";
        let text = text.as_ref();
        let mut out = String::with_capacity(Self::MAX_LEN.min(text.len()));
        let mut space = false;
        let mut cut = false;
        for c in text.chars() {
            if c.is_control() || c.is_whitespace() {
                space = !out.is_empty();
                continue;
            }
            if out.len() + usize::from(space) + c.len_utf8() > Self::MAX_LEN {
                cut = true;
                break;
            }
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
        if cut {
            while out.len() + MARK.len() > Self::MAX_LEN {
                out.pop();
            }
            out.truncate(out.trim_end().len());
            out.push_str(MARK);
        }
        (!out.is_empty()).then(|| RemoteReply(out.into_boxed_str()))
    }

    /// The reply as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for RemoteReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for RemoteReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RemoteReply {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        // Cleaned again: stored or received text is held to the same bounds.
        RemoteReply::new(&value).ok_or_else(|| Error::InvalidObservation {
            reason: "empty remote reply".into(),
        })
    }
}

impl From<RemoteReply> for String {
    fn from(value: RemoteReply) -> Self {
        value.0.into()
    }
}

/// One observation of the mail flow: a probe result or a delivery reported by
/// the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The tenant the message belongs to.
    pub tenant: TenantId,
    /// Which way it flowed.
    pub direction: Direction,
    /// When the outcome was known (arrival, or the failure).
    pub at: DateTime<Utc>,
    /// What happened.
    pub outcome: Outcome,
    /// What the remote side answered, for a failure (see
    /// [`Observation::with_reply`]); ignored for a delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<RemoteReply>,
}

impl Observation {
    /// A delivery after `latency`, known at `at`.
    pub fn delivered(
        tenant: TenantId,
        direction: Direction,
        at: DateTime<Utc>,
        latency: Duration,
    ) -> Self {
        Observation {
            tenant,
            direction,
            at,
            outcome: Outcome::Delivered { latency },
            reply: None,
        }
    }

    /// A failure of `kind`, known at `at`.
    pub fn failed(
        tenant: TenantId,
        direction: Direction,
        at: DateTime<Utc>,
        kind: FailureKind,
    ) -> Self {
        Observation {
            tenant,
            direction,
            at,
            outcome: Outcome::Failed { kind },
            reply: None,
        }
    }

    /// The same observation with the remote's reply (cleaned and bounded as
    /// [`RemoteReply::new`] says; nothing is kept when nothing printable is
    /// left). Alerts quote the last reply of a direction's failures.
    ///
    /// ```
    /// use continuity_core::{Direction, FailureKind, Observation, TenantId};
    /// let at = "2026-03-02T08:00:00Z".parse().unwrap();
    /// let o = Observation::failed(TenantId::new("acme").unwrap(), Direction::Outbound, at, FailureKind::Deferred)
    ///     .with_reply("421 4.3.2 Service not available");
    /// assert_eq!(o.reply.unwrap().as_str(), "421 4.3.2 Service not available");
    /// ```
    pub fn with_reply(mut self, reply: impl AsRef<str>) -> Self {
        self.reply = RemoteReply::new(reply);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_validated() {
        assert!(TenantId::new("acme-corp.example").is_ok());
        assert!(matches!(
            TenantId::new(""),
            Err(Error::InvalidTenantId { .. })
        ));
        assert!(TenantId::new("a b").is_err());
        assert!(TenantId::new("a\u{0}").is_err());
        assert!(TenantId::new("x".repeat(MAX_TENANT_ID_LEN)).is_ok());
        assert!(TenantId::new("x".repeat(MAX_TENANT_ID_LEN + 1)).is_err());
    }

    #[test]
    fn tenant_id_round_trips_through_serde() {
        let t = TenantId::new("acme").unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"acme\"");
        assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), t);
        assert!(serde_json::from_str::<TenantId>("\"\"").is_err());
    }

    #[test]
    fn a_reply_is_cleaned_and_cut_on_a_char_boundary() {
        assert_eq!(
            RemoteReply::new("\t421  4.3.2\r\nService\u{0}not available \u{1b}")
                .unwrap()
                .as_str(),
            "421 4.3.2 Service not available"
        );
        assert_eq!(RemoteReply::new("\r\n\u{7f} "), None);
        let exact = "x".repeat(RemoteReply::MAX_LEN);
        assert_eq!(RemoteReply::new(&exact).unwrap().as_str(), exact);
        for filler in ["é", "€", "🚨", "a b"] {
            let long = filler.repeat(200);
            let r = RemoteReply::new(&long).unwrap();
            assert!(r.as_str().len() <= RemoteReply::MAX_LEN, "{r:?}");
            assert!(r.as_str().ends_with("..."), "{r:?}");
            assert!(
                long.starts_with(r.as_str().trim_end_matches("...")),
                "{r:?}"
            );
        }
        // Text read back from a store or a payload is held to the same bounds.
        let read: RemoteReply =
            serde_json::from_str(&format!("\"a\\n{}\"", "b".repeat(300))).unwrap();
        assert!(read.as_str().len() <= RemoteReply::MAX_LEN && !read.as_str().contains('\n'));
    }

    #[test]
    fn an_observation_writes_its_latency_as_configuration_does_to_the_nanosecond() {
        let at: DateTime<Utc> = "2026-03-02T09:00:12Z".parse().unwrap();
        let acme = TenantId::new("acme").unwrap();
        for (latency, text) in [
            (Duration::from_millis(1250), "1s250ms"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::new(3723, 4_005_006), "1h2m3s4ms5us6ns"),
        ] {
            let o = Observation::delivered(acme.clone(), Direction::Inbound, at, latency);
            let json = serde_json::to_value(&o).unwrap();
            assert_eq!(
                json,
                serde_json::json!({
                    "tenant": "acme",
                    "direction": "inbound",
                    "at": "2026-03-02T09:00:12Z",
                    "outcome": {"delivered": {"latency": text}},
                })
            );
            assert_eq!(serde_json::from_value::<Observation>(json).unwrap(), o);
        }
        let failed = Observation::failed(acme, Direction::Outbound, at, FailureKind::Deferred)
            .with_reply("421 try later");
        let json = serde_json::to_string(&failed).unwrap();
        assert_eq!(serde_json::from_str::<Observation>(&json).unwrap(), failed);
    }

    #[test]
    fn an_observation_stored_by_an_earlier_build_still_reads() {
        // Serde's default form of `Duration`, as earlier builds wrote it.
        let old = r#"{"tenant":"acme","direction":"outbound","at":"2026-03-02T09:00:12Z",
            "outcome":{"delivered":{"latency":{"secs":1,"nanos":250000001}}}}"#;
        let o: Observation = serde_json::from_str(old).unwrap();
        assert_eq!(o.outcome.latency(), Some(Duration::new(1, 250_000_001)));
        assert_eq!(
            serde_json::to_value(o.outcome).unwrap(),
            serde_json::json!({"delivered": {"latency": "1s250ms1ns"}})
        );
    }

    #[test]
    fn failover_delivery_is_not_a_failure() {
        let failed = Outcome::Failed {
            kind: FailureKind::Refused,
        };
        let ok = Outcome::Delivered {
            latency: Duration::from_secs(3),
        };
        assert_eq!(Outcome::from_route_attempts(&[failed, ok]), Some(ok));
        let timed_out = Outcome::Failed {
            kind: FailureKind::TimedOut,
        };
        assert_eq!(
            Outcome::from_route_attempts(&[failed, timed_out]),
            Some(timed_out)
        );
        assert_eq!(Outcome::from_route_attempts(&[]), None);
    }
}
