//! tokio-postgres's errors as the store's, and reading a row's columns.

use tokio_postgres::{Row, error::SqlState};

use super::BACKEND;
use crate::{codec::Fail, error::StoreError};

/// PostgreSQL's error, SQLSTATE kept; connection trouble is `Unavailable`.
pub(super) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    // tokio-postgres has no public kind for TLS failures; its message names them.
    if e.code().is_none() && e.to_string().contains("TLS") {
        return StoreError::Tls {
            message: e.to_string(),
            source: Some(Box::new(e)),
        };
    }
    let Some(code) = e.code().cloned() else {
        // No SQLSTATE: the connection broke, timed out or never opened.
        return StoreError::Unavailable {
            backend: BACKEND,
            message: e.to_string(),
            source: Some(Box::new(e)),
        };
    };
    let class = &code.code()[..2];
    if class == "08" || code == SqlState::ADMIN_SHUTDOWN || code == SqlState::CANNOT_CONNECT_NOW {
        return StoreError::Unavailable {
            backend: BACKEND,
            message: e.to_string(),
            source: Some(Box::new(e)),
        };
    }
    let retryable = code == SqlState::T_R_SERIALIZATION_FAILURE
        || code == SqlState::T_R_DEADLOCK_DETECTED
        || code == SqlState::LOCK_NOT_AVAILABLE
        || class == "53"
        || class == "57";
    let message = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_string());
    StoreError::Query {
        backend: BACKEND,
        retryable,
        code: Some(code.code().to_string()),
        message,
        source: Some(Box::new(e)),
    }
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Store(pg_error(e))
    }
}

pub(super) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(pg_error)
}
