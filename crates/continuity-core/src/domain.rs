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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Delivered after `latency` (from hand-over to arrival).
    Delivered {
        /// Time from hand-over to arrival.
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
        }
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
