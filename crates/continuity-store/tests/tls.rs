//! The PostgreSQL store over TLS, against the local server's own
//! certificate (Debian's "snakeoil" certificate for `localhost`, or the PEM
//! file named by `CONTINUITY_TEST_PG_TLS_ROOT`).

mod common;

use continuity_core::{
    TenantId,
    store::{Commit, EventStore},
};
use continuity_store::{PostgresOptions, PostgresStore, PostgresTls, StoreError};

fn server_certificate() -> Vec<u8> {
    let path = std::env::var("CONTINUITY_TEST_PG_TLS_ROOT")
        .unwrap_or_else(|_| "/etc/ssl/certs/ssl-cert-snakeoil.pem".into());
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("the PostgreSQL server's certificate is needed for the TLS tests ({path}): {e}")
    })
}

fn url(application: &str) -> String {
    format!("host=localhost port=5432 user=postgres dbname=test application_name={application}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_over_tls_works_and_the_server_sees_tls() {
    let pg = common::PgSchema::new("tls").await;
    let app = format!("continuity-tls-{}", std::process::id());
    let tls = PostgresTls::system_roots()
        .with_roots_pem(&server_certificate())
        .expect("the server's certificate");
    let store = PostgresStore::connect_with(
        &url(&app),
        PostgresOptions {
            schema: pg.schema.clone(),
            pool_size: 1,
            tls: Some(tls),
            ..Default::default()
        },
    )
    .await
    .expect("TLS connection to the local server");
    let t = TenantId::new("tls").unwrap();
    store.commit(&t, 0, Commit::default()).await.unwrap();
    assert_eq!(store.load(&t).await.unwrap().unwrap().version, 1);

    // The server's own view of the pooled connection.
    let (client, conn) = tokio_postgres::connect(&common::pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE s.ssl AND a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "the store's connection uses TLS");
    drop(store);
    pg.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_a_tls_error() {
    // The server's certificate is for "localhost"; connecting to 127.0.0.1
    // must not accept it (no schema is created: the handshake fails first).
    let options = PostgresOptions {
        schema: "tls_wrong_name".into(),
        tls: Some(
            PostgresTls::system_roots()
                .with_roots_pem(&server_certificate())
                .unwrap(),
        ),
        ..Default::default()
    };
    match PostgresStore::connect_with(
        "host=127.0.0.1 port=5432 user=postgres dbname=test",
        options,
    )
    .await
    {
        Err(e @ StoreError::Tls { .. }) => {
            assert!(!e.is_retryable(), "a certificate to fix, not a retry: {e}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[test]
fn a_pem_without_certificates_is_refused() {
    assert!(matches!(
        PostgresTls::system_roots().with_roots_pem(b"not a certificate"),
        Err(StoreError::Config(_))
    ));
}
