//! The stores as written in configuration. The PostgreSQL connection
//! string may hold a password, so it is a [`SecretRef`]; TLS roots are file
//! paths; durations read `"5s"`.
//!
//! ```toml
//! [sqlite]                                    # SqliteSettings
//! path = "/var/lib/continuity/state.db"
//! durability = "full"                         # or "normal"
//! busy_timeout = "5s"
//!
//! [postgres]                                  # PostgresSettings
//! url = { env = "CONTINUITY_DATABASE_URL" }   # postgres://user:password@host/db
//! schema = "continuity"
//! pool_size = 16
//! connect_timeout = "5s"
//! tls = { root_certificates = ["/etc/continuity/db-ca.pem"] }   # left out: no TLS
//! ```

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::{path::PathBuf, time::Duration};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use continuity_core::duration::serde_duration;
#[cfg(feature = "postgres")]
use continuity_core::{files, secret::SecretRef};
#[cfg(feature = "postgres")]
use secrecy::ExposeSecret;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use serde::{Deserialize, Serialize};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::error::StoreError;
#[cfg(feature = "postgres")]
use crate::postgres::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_SCHEMA, PostgresOptions, PostgresStore,
    PostgresTls,
};
#[cfg(feature = "sqlite")]
use crate::sqlite::{DEFAULT_BUSY_TIMEOUT, Durability, SqliteOptions, SqliteStore};

#[cfg(feature = "sqlite")]
/// A [`SqliteStore`] as configured; the defaults are [`SqliteOptions::default`]'s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSettings {
    /// The database file (created if missing).
    pub path: PathBuf,
    /// How hard a commit is kept through a crash (default `"full"`).
    #[serde(default)]
    pub durability: Durability,
    /// How long a write waits for another process's lock (default
    /// [`DEFAULT_BUSY_TIMEOUT`], 5 s).
    #[serde(default = "busy_timeout", with = "serde_duration")]
    pub busy_timeout: Duration,
}

#[cfg(feature = "postgres")]
/// A [`PostgresStore`] as configured; the defaults are
/// [`PostgresOptions::default`]'s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Where the connection string (libpq form or `postgres://` URL) is.
    pub url: SecretRef,
    /// The schema that holds the tables (default [`DEFAULT_SCHEMA`], `public`).
    #[serde(default = "schema")]
    pub schema: String,
    /// Connections in the pool (default [`DEFAULT_POOL_SIZE`], 16).
    #[serde(default = "pool_size")]
    pub pool_size: usize,
    /// How long to wait for a connection (default [`DEFAULT_CONNECT_TIMEOUT`], 5 s).
    #[serde(default = "connect_timeout", with = "serde_duration")]
    pub connect_timeout: Duration,
    /// TLS to the server; left out (the default), no TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PostgresTlsSettings>,
}

#[cfg(feature = "postgres")]
/// TLS to PostgreSQL: the system's roots, plus the certificates in these files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTlsSettings {
    /// PEM files of extra trusted roots (a private CA, a self-signed server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_certificates: Vec<PathBuf>,
}

#[cfg(feature = "sqlite")]
fn busy_timeout() -> Duration {
    DEFAULT_BUSY_TIMEOUT
}
#[cfg(feature = "postgres")]
fn schema() -> String {
    DEFAULT_SCHEMA.into()
}
#[cfg(feature = "postgres")]
fn pool_size() -> usize {
    DEFAULT_POOL_SIZE
}
#[cfg(feature = "postgres")]
fn connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

#[cfg(feature = "sqlite")]
impl SqliteSettings {
    /// The options to open with.
    pub fn options(&self) -> SqliteOptions {
        SqliteOptions {
            durability: self.durability,
            busy_timeout: self.busy_timeout,
        }
    }

    /// What [`open`](Self::open) checks before it opens the file (see
    /// [`SqliteStore::check_path`]); opens nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] naming the file and its directory.
    pub fn check(&self) -> Result<(), StoreError> {
        SqliteStore::check_path(&self.path)
    }

    /// Opens the store (see [`SqliteStore::open_with`]).
    pub async fn open(&self) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(&self.path, self.options()).await
    }
}

#[cfg(feature = "postgres")]
impl PostgresSettings {
    /// Reads the TLS roots into the options to connect with.
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] naming `tls.root_certificates[i]` and the file.
    pub fn options(&self) -> Result<PostgresOptions, StoreError> {
        let tls = match &self.tls {
            None => None,
            Some(t) => {
                let pems = files::read_files(&t.root_certificates).map_err(|(i, e)| {
                    StoreError::Config(format!("tls.root_certificates[{i}]: {e}"))
                })?;
                let mut tls = PostgresTls::system_roots();
                for (i, pem) in pems.iter().enumerate() {
                    tls = tls.with_roots_pem(pem).map_err(|e| {
                        StoreError::Config(format!("tls.root_certificates[{i}]: {e}"))
                    })?;
                }
                Some(tls)
            }
        };
        Ok(PostgresOptions {
            schema: self.schema.clone(),
            pool_size: self.pool_size,
            connect_timeout: self.connect_timeout,
            tls,
        })
    }

    /// What [`connect`](Self::connect) checks before it connects: the
    /// connection string read and parsed, the TLS roots read, the schema
    /// name and the pool size (see [`PostgresStore::check_with`]).
    /// Connects nowhere.
    ///
    /// # Errors
    ///
    /// Those of [`connect`](Self::connect) short of connecting.
    pub fn check(&self) -> Result<(), StoreError> {
        let url = self.read_url()?;
        PostgresStore::check_with(url.expose_secret(), self.options()?)
    }

    fn read_url(&self) -> Result<secrecy::SecretString, StoreError> {
        self.url
            .resolve()
            .map_err(|e| StoreError::Config(format!("url: {e}")))
    }

    /// Reads the connection string and connects (see [`PostgresStore::connect_with`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Config`] naming `url` (and the variable or file) when
    /// the connection string cannot be read, and those of `options` and
    /// of connecting.
    pub async fn connect(&self) -> Result<PostgresStore, StoreError> {
        let url = self.read_url()?;
        PostgresStore::connect_with(url.expose_secret(), self.options()?).await
    }
}

#[cfg(all(test, feature = "sqlite", feature = "postgres"))]
mod tests {
    use continuity_test_support::TempDir;

    use super::*;

    #[test]
    fn a_toml_example_reads_to_the_values_written() {
        let sqlite: SqliteSettings = toml::from_str(
            "path = \"/var/lib/continuity/state.db\"\ndurability = \"normal\"\nbusy_timeout = \"2s\"",
        )
        .unwrap();
        assert_eq!(sqlite.durability, Durability::Normal);
        assert_eq!(sqlite.options().busy_timeout, Duration::from_secs(2));
        assert_eq!(sqlite.options().durability, Durability::Normal);

        let pg: PostgresSettings = toml::from_str(
            r#"
            url = { env = "CONTINUITY_DATABASE_URL" }
            schema = "continuity"
            pool_size = 4
            connect_timeout = "2s"
            tls = {}
            "#,
        )
        .unwrap();
        assert_eq!(pg.url, SecretRef::env("CONTINUITY_DATABASE_URL"));
        let options = pg.options().unwrap();
        assert_eq!(
            (
                options.schema.as_str(),
                options.pool_size,
                options.connect_timeout
            ),
            ("continuity", 4, Duration::from_secs(2))
        );
        assert!(options.tls.is_some());
    }

    #[test]
    fn defaults_are_the_constructors() {
        let sqlite: SqliteSettings = toml::from_str("path = \"state.db\"").unwrap();
        let (built, made) = (sqlite.options(), SqliteOptions::default());
        assert_eq!(
            (built.durability, built.busy_timeout),
            (made.durability, made.busy_timeout)
        );
        assert_eq!(made.busy_timeout, Duration::from_secs(5));

        let pg: PostgresSettings = toml::from_str("url = { env = \"DB\" }").unwrap();
        let (built, made) = (pg.options().unwrap(), PostgresOptions::default());
        assert_eq!(built.schema, made.schema);
        assert_eq!(built.pool_size, made.pool_size);
        assert_eq!(built.connect_timeout, made.connect_timeout);
        assert_eq!(built.tls.is_none(), made.tls.is_none());
        assert_eq!(
            (made.schema.as_str(), made.pool_size, made.connect_timeout),
            ("public", 16, Duration::from_secs(5))
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let e = toml::from_str::<SqliteSettings>("path = \"p\"\nsync = \"full\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `sync`"), "{e}");
        let e = toml::from_str::<PostgresSettings>("url = { env = \"DB\" }\npool = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `pool`"), "{e}");
        let e = toml::from_str::<PostgresSettings>("url = { env = \"DB\" }\ntls = { roots = [] }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `roots`"), "{e}");
        let e = toml::from_str::<SqliteSettings>("path = \"p\"\ndurability = \"off\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `off`"), "{e}");
    }

    #[test]
    fn tls_roots_are_read_and_errors_name_the_file() {
        let dir = TempDir::new("store-settings");
        let mut pg: PostgresSettings = toml::from_str("url = { env = \"DB\" }\ntls = {}").unwrap();
        let absent = dir.path().join("absent.pem");
        pg.tls = Some(PostgresTlsSettings {
            root_certificates: vec![absent.clone()],
        });
        let e = pg.options().unwrap_err().to_string();
        assert!(
            e.contains("tls.root_certificates[0]") && e.contains(&absent.display().to_string()),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate").unwrap();
        pg.tls = Some(PostgresTlsSettings {
            root_certificates: vec![empty],
        });
        let e = pg.options().unwrap_err().to_string();
        assert!(
            e.contains("tls.root_certificates[0]: ") && e.contains("no certificate"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_connection_string_is_a_secret_named_in_errors_never_shown() {
        let pg: PostgresSettings =
            toml::from_str("url = { env = \"CONTINUITY_TEST_DATABASE_URL_NOT_SET\" }").unwrap();
        let e = pg.connect().await.unwrap_err().to_string();
        assert!(
            e.contains("url: env:CONTINUITY_TEST_DATABASE_URL_NOT_SET"),
            "{e}"
        );

        let dir = TempDir::new("store-settings-url");
        let file = dir.path().join("url");
        // Not a connection string: refused before any connection, the text not echoed.
        std::fs::write(&file, "postgres://continuity:pg-s3cret@[::1\n").unwrap();
        let pg = PostgresSettings {
            url: SecretRef::file(&file),
            ..pg
        };
        assert!(!format!("{pg:?}").contains("pg-s3cret"));
        let e = pg.connect().await.unwrap_err().to_string();
        assert!(!e.contains("pg-s3cret"), "{e}");
    }

    #[tokio::test]
    async fn sqlite_opens_where_the_settings_say() {
        let dir = TempDir::new("store-settings-sqlite");
        let settings = SqliteSettings {
            path: dir.path().join("state.db"),
            durability: Durability::Normal,
            busy_timeout: busy_timeout(),
        };
        let store = settings.open().await.unwrap();
        assert_eq!(store.path(), settings.path);
    }

    #[test]
    fn a_check_refuses_what_opening_would_and_opens_nothing() {
        let dir = TempDir::new("store-settings-check");
        let sqlite = SqliteSettings {
            path: dir.path().join("state.db"),
            durability: Durability::Normal,
            busy_timeout: busy_timeout(),
        };
        sqlite.check().unwrap();
        assert!(!sqlite.path.exists(), "nothing is created");
        let missing = SqliteSettings {
            path: dir.path().join("no-such-dir/state.db"),
            ..sqlite
        };
        let e = missing.check().unwrap_err().to_string();
        assert!(
            e.contains("no-such-dir") && e.contains("does not exist"),
            "{e}"
        );

        // Nothing listens there: a check that connected would fail.
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://continuity:pg-s3cret@127.0.0.1:1/db").unwrap();
        let pg: PostgresSettings = toml::from_str(&format!(
            "url = {{ file = \"{}\" }}\nconnect_timeout = \"100ms\"",
            file.display()
        ))
        .unwrap();
        pg.check().unwrap();
        let refused = |pg: PostgresSettings| {
            let e = pg.check().unwrap_err().to_string();
            assert!(!e.contains("pg-s3cret"), "{e}");
            e
        };
        let e = refused(PostgresSettings {
            schema: "Not A Schema".into(),
            ..pg.clone()
        });
        assert!(e.contains("schema \"Not A Schema\""), "{e}");
        let e = refused(PostgresSettings {
            pool_size: 0,
            ..pg.clone()
        });
        assert!(e.contains("pool_size"), "{e}");
        let e = refused(PostgresSettings {
            url: SecretRef::env("CONTINUITY_TEST_DATABASE_URL_NOT_SET"),
            ..pg.clone()
        });
        assert!(
            e.contains("url: env:CONTINUITY_TEST_DATABASE_URL_NOT_SET"),
            "{e}"
        );
        std::fs::write(&file, "postgres://continuity:pg-s3cret@[::1\n").unwrap();
        let e = refused(pg.clone());
        assert!(e.contains("connection string"), "{e}");
        let e = refused(PostgresSettings {
            tls: Some(PostgresTlsSettings {
                root_certificates: vec![dir.path().join("absent.pem")],
            }),
            ..pg
        });
        assert!(e.contains("tls.root_certificates[0]"), "{e}");
    }
}
