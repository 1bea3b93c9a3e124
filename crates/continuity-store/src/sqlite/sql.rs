//! rusqlite's errors as the store's, and the row plumbing every table shares.

use super::BACKEND;
use crate::{
    codec::{Fail, unsigned},
    error::StoreError,
};

/// SQLite's error, with its extended code name (`SQLITE_BUSY`, …) kept.
pub(super) fn sql_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let (retryable, code) = match &e {
        rusqlite::Error::SqliteFailure(f, _) => (
            matches!(
                f.code,
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::SystemIoFailure
            ),
            Some(
                match f.code {
                    ErrorCode::NotADatabase => "SQLITE_NOTADB".to_string(),
                    ErrorCode::DatabaseCorrupt => "SQLITE_CORRUPT".to_string(),
                    ErrorCode::DatabaseBusy => "SQLITE_BUSY".to_string(),
                    ErrorCode::DatabaseLocked => "SQLITE_LOCKED".to_string(),
                    ErrorCode::DiskFull => "SQLITE_FULL".to_string(),
                    ErrorCode::SystemIoFailure => "SQLITE_IOERR".to_string(),
                    ErrorCode::ReadOnly => "SQLITE_READONLY".to_string(),
                    _ => format!("SQLITE_{}", f.extended_code),
                }
                .to_string(),
            ),
        ),
        _ => (false, None),
    };
    StoreError::Query {
        backend: BACKEND,
        retryable,
        code,
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Store(sql_error(e))
    }
}

/// Converts a row-mapping closure's error. rusqlite wants its own error
/// type out of `query_map`, so decode failures travel inside it.
pub(super) fn decode_err(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

pub(super) fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>, Fail> {
    let mut out = Vec::new();
    for r in rows {
        out.push(r.map_err(undecode)?);
    }
    Ok(out)
}

/// Gets a decode error back out of rusqlite's wrapper.
pub(super) fn undecode(e: rusqlite::Error) -> Fail {
    match e {
        rusqlite::Error::ToSqlConversionFailure(inner) => match inner.downcast::<StoreError>() {
            Ok(store) => Fail::Store(*store),
            Err(other) => Fail::Store(sql_error(rusqlite::Error::ToSqlConversionFailure(other))),
        },
        other => other.into(),
    }
}

pub(super) fn next_lease(tx: &rusqlite::Transaction<'_>) -> Result<u64, Fail> {
    let id: i64 = tx
        .prepare_cached(
            "UPDATE continuity_meta SET value = value + 1 WHERE key = 'lease_seq' RETURNING value",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(unsigned(BACKEND, "lease id", id)?)
}
