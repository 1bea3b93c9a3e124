//! Test support shared by continuity's crates (`publish = false`): local
//! stand-ins for the services the adapters talk to, so each crate's tests
//! and benches start them instead of including another crate's test files.
//!
//! | module | feature | what it holds |
//! |---|---|---|
//! | `ews_server` | `ews` | a local Exchange (EWS over axum) checking credentials, impersonation and every request against Microsoft's schema |
//! | `ews_schema` | `ews` | validation of EWS documents against Microsoft's schema with xmllint |
//! | `token_endpoint` | `graph` | a local Entra ID token endpoint checking client assertions and issuing signed access tokens |
//! | `app_cert` | `graph` | RSA certificates of test applications, in every form the credential loader takes |
//! | `graph_server` | `graph` | a local Microsoft Graph (send mail, list and delete messages) checking access tokens |
//! | `smtp_peer` | `smtp` | a real SMTP server (Python's aiosmtpd) with a test certificate authority |
//! | `postgres` | `postgres` | per-test PostgreSQL schemas |
//! | [`TempDir`] | | a temporary directory removed on drop |
//!
//! Each feature brings only the dependencies of its stand-ins, so a crate's
//! test build stays as lean as what it starts. The crate depends on
//! `continuity-core` only (never on an adapter), so any member can use it as
//! a dev-dependency without a cycle.
//!
//! ```
//! use continuity_test_support::TempDir;
//!
//! let dir = TempDir::new("example");
//! std::fs::write(dir.path().join("state.db"), b"").unwrap();
//! let path = dir.path().to_path_buf();
//! drop(dir);
//! assert!(!path.exists());
//! ```
//!
//! The Python peers need the venv of `scripts/prepare-test-env` (or
//! `CONTINUITY_TEST_PYTHON`); the schema validation needs xmllint and the
//! schema in `<workspace>/../shared/ews-schema`. A missing piece fails the
//! test with a message saying what to install.

#[cfg(feature = "graph")]
pub mod app_cert;
#[cfg(feature = "ews")]
pub mod ews_schema;
#[cfg(feature = "ews")]
pub mod ews_server;
#[cfg(feature = "graph")]
pub mod graph_server;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "smtp")]
pub mod smtp_peer;
mod temp_dir;
#[cfg(feature = "graph")]
pub mod token_endpoint;

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

pub use temp_dir::TempDir;

/// `<label>_<pid>_<n>_<nanos>`: unique across the tests of this process
/// (a counter) and across processes (pid and time).
pub fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{label}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Python of the test peers: `CONTINUITY_TEST_PYTHON`, or the venv
/// `scripts/prepare-test-env` makes in `<workspace>/.test-env/venv`.
pub fn test_python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONTINUITY_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    workspace_dir().join(".test-env/venv/bin/python")
}

/// The workspace's root directory.
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
