//! Per-test PostgreSQL schemas on the tests' server, so tests running at the
//! same time do not see each other's rows.
//!
//! The server is `CONTINUITY_TEST_PG` or the one `scripts/prepare-test-env`
//! starts (127.0.0.1:5432, trust auth, database `test`).

use crate::unique_name;

/// The connection string of the tests' PostgreSQL server.
pub fn pg_url() -> String {
    std::env::var("CONTINUITY_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// A schema name no other test (in this or another process) uses:
/// `t_<label>_<pid>_<n>_<nanos>`. The schema itself is created by whoever
/// connects with it (the store does on connect).
pub fn unique_schema(label: &str) -> String {
    format!("t_{}", unique_name(label))
}

/// Runs `sql` on the tests' server with `schema` first on the search path.
///
/// # Panics
/// When the server is unreachable or the SQL fails: this is for tests.
pub async fn exec_in_schema(schema: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is needed for this test ({}): {e}; run scripts/prepare-test-env",
                pg_url()
            )
        });
    tokio::spawn(conn);
    client
        .batch_execute(&format!("SET search_path = {schema}; {sql}"))
        .await
        .expect("exec");
}
