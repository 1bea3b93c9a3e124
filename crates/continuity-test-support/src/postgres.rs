//! Helpers shared by the store tests.
#![allow(dead_code)] // each test file uses a part

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use continuity_store::{PostgresOptions, PostgresStore};

/// The PostgreSQL server of the tests: `CONTINUITY_TEST_PG`, or the one
/// this machine kind runs (trust auth, database `test`).
pub fn pg_url() -> String {
    std::env::var("CONTINUITY_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(label: &str) -> String {
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

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        let p = std::env::temp_dir().join(format!("continuity-store-{}", unique(label)));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A PostgreSQL store in a schema of its own, so tests do not see each
/// other's rows.
pub struct PgSchema {
    pub store: PostgresStore,
    pub schema: String,
}

impl PgSchema {
    pub async fn new(label: &str) -> Self {
        let schema = format!("t_{}", unique(label));
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
        let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("SET search_path = {}; {sql}", self.schema))
            .await
            .expect("exec");
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
