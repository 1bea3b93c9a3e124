//! The crate's one error type.

use continuity_core::error::BoxError;

/// What can go wrong opening or using a store.
///
/// Every variant converts into [`continuity_core::Error::Store`], which is
/// what the [`EventStore`](continuity_core::store::EventStore) methods
/// return; [`is_retryable`](Self::is_retryable) says whether trying again
/// later can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached (connection refused, timed out, closed).
    #[error("{backend} unreachable: {message}")]
    Unavailable {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What happened, with the server's or driver's message.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },

    /// The TLS handshake with the server failed (certificate not trusted,
    /// name mismatch, server without TLS): a configuration to fix.
    #[error("postgres TLS failed: {message}")]
    Tls {
        /// rustls's and the driver's message.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },

    /// The database's schema was written by a newer version of this crate.
    #[error(
        "the {backend} database has schema version {found}, newer than the {supported} this build of continuity-store knows; upgrade continuity-store (or point it at another database)"
    )]
    SchemaTooNew {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The version found in the database.
        found: i64,
        /// The newest version this build can use.
        supported: i64,
    },

    /// The SQLite file is not a database, or it is damaged.
    #[error("{path} is not a usable SQLite database (corrupted or not a database file): {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// SQLite's message.
        message: String,
    },

    /// A statement failed.
    #[error("{backend} query failed{}: {message}", code.as_ref().map(|c| format!(" (SQLSTATE {c})")).unwrap_or_default())]
    Query {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// Whether the same statement can succeed later (serialization failure, deadlock, busy).
        retryable: bool,
        /// The database's own error code (PostgreSQL SQLSTATE, SQLite extended code), if any.
        code: Option<String>,
        /// The database's message.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<BoxError>,
    },

    /// A stored value could not be decoded (written by something else, or damaged).
    #[error("{backend}: stored {what} could not be decoded: {message}")]
    Decode {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// Which value (`state of tenant acme`, `outbox entry 17`).
        what: String,
        /// Why.
        message: String,
    },

    /// The store's configuration is invalid.
    #[error("invalid store configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Whether retrying later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Unavailable { .. } => true,
            StoreError::Query { retryable, .. } => *retryable,
            StoreError::SchemaTooNew { .. }
            | StoreError::Tls { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Decode { .. }
            | StoreError::Config(_) => false,
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            StoreError::Unavailable { backend, .. }
            | StoreError::SchemaTooNew { backend, .. }
            | StoreError::Query { backend, .. }
            | StoreError::Decode { backend, .. } => backend,
            StoreError::Corrupt { .. } => "sqlite",
            StoreError::Tls { .. } => "postgres",
            StoreError::Config(_) => "store",
        }
    }
}

/// The `StoreError` is kept as the core error's `source()`, for
/// [`source_as`](continuity_core::Error::source_as).
impl From<StoreError> for continuity_core::Error {
    fn from(e: StoreError) -> Self {
        let backend = e.backend();
        let retryable = e.is_retryable();
        let message = e.to_string();
        continuity_core::Error::Store {
            backend,
            retryable,
            message,
            source: Some(Box::new(e)),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::codec::Fail;

    #[test]
    fn core_error_keeps_the_store_error_as_its_source() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = StoreError::Unavailable {
            backend: "postgres",
            message: "connection refused".into(),
            source: Some(Box::new(refused)),
        };
        let text = e.to_string();
        let core = continuity_core::Error::from(e);
        assert_eq!(core.to_string(), format!("postgres store error: {text}"));
        assert!(core.is_retryable());
        let store = core
            .source()
            .and_then(|s| s.downcast_ref::<StoreError>())
            .expect("the store's error is the source");
        assert!(matches!(store, StoreError::Unavailable { .. }), "{store:?}");
        // The driver's error, one cause further.
        assert_eq!(
            core.source_as::<std::io::Error>().map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionRefused)
        );

        // What the backends return goes through `Fail`.
        let core = continuity_core::Error::from(Fail::from(StoreError::SchemaTooNew {
            backend: "sqlite",
            found: 9,
            supported: 3,
        }));
        assert!(matches!(
            core.source_as::<StoreError>(),
            Some(StoreError::SchemaTooNew { found: 9, .. })
        ));
    }
}
