//! How values are laid out in the tables, shared by both backends.
//!
//! Times are stored as microseconds since the Unix epoch (`BIGINT`), which
//! covers chrono's whole range, orders correctly in SQL and keeps the
//! precision any clock here delivers. Structured values (tenant state, audit
//! entries, outbox items) are stored as JSON text: the store never looks
//! inside them, and the engine's types stay the single definition.

use chrono::{DateTime, Utc};
use continuity_core::Direction;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::StoreError;

/// `at` as microseconds since the epoch.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The time `us` microseconds after the epoch.
pub(crate) fn from_micros(
    backend: &'static str,
    what: impl FnOnce() -> String,
    us: i64,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| StoreError::Decode {
        backend,
        what: what(),
        message: format!("{us} µs is outside the representable time range"),
    })
}

/// `now + lease`, saturating at the end of time.
pub(crate) fn lease_end(now: DateTime<Utc>, lease: std::time::Duration) -> i64 {
    let us = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
    micros(now).saturating_add(us.max(1))
}

pub(crate) fn to_json<T: Serialize>(
    backend: &'static str,
    what: impl FnOnce() -> String,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Decode {
        backend,
        what: what(),
        message: format!("cannot be encoded: {e}"),
    })
}

pub(crate) fn from_json<T: DeserializeOwned>(
    backend: &'static str,
    what: impl FnOnce() -> String,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Decode {
        backend,
        what: what(),
        message: e.to_string(),
    })
}

pub(crate) fn direction_code(d: Direction) -> i16 {
    match d {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

pub(crate) fn direction_from(backend: &'static str, code: i64) -> Result<Direction, StoreError> {
    match code {
        0 => Ok(Direction::Inbound),
        1 => Ok(Direction::Outbound),
        other => Err(StoreError::Decode {
            backend,
            what: "probe direction".into(),
            message: format!("unknown direction code {other}"),
        }),
    }
}

/// The direction of a stored baseline of `tenant`.
pub(crate) fn baseline_direction(
    backend: &'static str,
    tenant: &continuity_core::TenantId,
    code: i64,
) -> Result<Direction, StoreError> {
    direction_from(backend, code).map_err(|e| match e {
        StoreError::Decode { message, .. } => StoreError::Decode {
            backend,
            what: format!("baseline direction of tenant {tenant}"),
            message,
        },
        other => other,
    })
}

/// A stored shard number, refused unless it is one of the
/// [`SHARDS`](continuity_core::cluster::SHARDS).
pub(crate) fn shard_from(
    backend: &'static str,
    what: impl FnOnce() -> String,
    stored: i64,
) -> Result<u16, StoreError> {
    u16::try_from(stored)
        .ok()
        .filter(|s| *s < continuity_core::cluster::SHARDS)
        .ok_or_else(|| StoreError::Decode {
            backend,
            what: what(),
            message: format!("shard {stored} out of range"),
        })
}

/// A `u64` from the engine as a signed SQL integer.
pub(crate) fn signed(backend: &'static str, what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Decode {
        backend,
        what: what.to_string(),
        message: format!("{v} does not fit a signed 64-bit column"),
    })
}

/// A signed SQL integer back as the engine's `u64`.
pub(crate) fn unsigned(backend: &'static str, what: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Decode {
        backend,
        what: what.to_string(),
        message: format!("{v} is negative"),
    })
}

/// Refuses a schema written by a newer build (`supported`: the number of
/// migrations this build knows).
pub(crate) fn check_schema(
    backend: &'static str,
    found: i64,
    supported: usize,
) -> Result<(), StoreError> {
    let supported = i64::try_from(supported).unwrap_or(i64::MAX);
    if found > supported {
        Err(StoreError::SchemaTooNew {
            backend,
            found,
            supported,
        })
    } else {
        Ok(())
    }
}

/// An error of a store operation: the store's own, or one the engine's
/// contract names (a compare-and-swap conflict, a lost lease).
#[derive(Debug)]
pub(crate) enum Fail {
    Store(StoreError),
    Core(continuity_core::Error),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<continuity_core::Error> for Fail {
    fn from(e: continuity_core::Error) -> Self {
        Fail::Core(e)
    }
}

impl From<Fail> for continuity_core::Error {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Store(e) => e.into(),
            Fail::Core(e) => e,
        }
    }
}

pub(crate) fn conflict(tenant: &continuity_core::TenantId, expected: u64, actual: u64) -> Fail {
    Fail::Core(continuity_core::Error::Conflict {
        tenant: tenant.to_string(),
        expected,
        actual,
    })
}

pub(crate) fn lease_lost(what: String) -> Fail {
    Fail::Core(continuity_core::Error::LeaseLost { what })
}

/// The number of rows to ask for, from the engine's `usize` limit.
pub(crate) fn row_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The results of a batch whose transaction failed: every item failed alike.
/// The last one carries the error itself (so a batch of one, as the
/// single-item forms send, keeps its source); the others a copy of its text.
pub(crate) fn every_one_failed(
    backend: &'static str,
    e: continuity_core::Error,
    n: usize,
) -> Vec<continuity_core::Result<()>> {
    let (message, retryable) = (e.to_string(), e.is_retryable());
    let mut out: Vec<continuity_core::Result<()>> = (1..n)
        .map(|_| {
            Err(continuity_core::Error::Store {
                backend,
                retryable,
                message: message.clone(),
                source: None,
            })
        })
        .collect();
    if n > 0 {
        out.push(Err(e));
    }
    out
}

/// The probes of a batch, a probe id put more than once kept once, in its
/// last place and form: what a put stores (within a batch, the last one
/// wins), to be handed back under its lease.
pub(crate) fn last_of_each(
    batch: Vec<continuity_core::store::PendingProbe>,
) -> Vec<continuity_core::store::PendingProbe> {
    let keep: Vec<bool> = {
        let mut seen = std::collections::HashSet::new();
        let mut keep: Vec<bool> = batch
            .iter()
            .rev()
            .map(|p| seen.insert((p.tenant.as_str(), &*p.probe_id)))
            .collect();
        keep.reverse();
        keep
    };
    batch
        .into_iter()
        .zip(keep)
        .filter_map(|(p, kept)| kept.then_some(p))
        .collect()
}
