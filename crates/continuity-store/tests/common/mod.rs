//! Helpers shared by the store tests.
#![allow(dead_code, unused_imports)] // each test file uses a part

use std::path::Path;

use continuity_store::{PostgresOptions, PostgresStore};
use continuity_test_support::postgres::{exec_in_schema, unique_schema};
pub use continuity_test_support::{TempDir, postgres::pg_url};

/// A PostgreSQL store in a schema of its own, so tests do not see each
/// other's rows.
pub struct PgSchema {
    pub store: PostgresStore,
    pub schema: String,
}

impl PgSchema {
    pub async fn new(label: &str) -> Self {
        let schema = unique_schema(label);
        let options = PostgresOptions {
            schema: schema.clone(),
            ..Default::default()
        };
        let store = PostgresStore::connect_with(&pg_url(), options)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is needed for this test ({}): {e}; run scripts/prepare-test-env",
                    pg_url()
                )
            });
        PgSchema { store, schema }
    }

    pub fn options(&self) -> PostgresOptions {
        PostgresOptions {
            schema: self.schema.clone(),
            ..Default::default()
        }
    }

    /// Runs SQL in the schema.
    pub async fn exec(&self, sql: &str) {
        exec_in_schema(&self.schema, sql).await;
    }

    pub async fn drop(self) {
        self.store.drop_schema().await.expect("drop schema");
    }
}

/// Runs SQL on a SQLite file directly.
pub fn sqlite_exec(path: &Path, sql: &str) {
    let c = rusqlite::Connection::open(path).expect("open");
    c.execute_batch(sql).expect("exec");
}
