//! The EWS client and the SMTP probe sender as written in configuration:
//! passwords as [`SecretRef`]s, durations as `"30s"`. [`EwsSettings::config`]
//! reads the secrets into an [`EwsConfig`], which [`EwsClient::new`] checks.
//!
//! ```toml
//! endpoint = "https://mail.acme.example/EWS/Exchange.asmx"
//! auth = { method = "ntlm", domain = "ACME", username = "svc-continuity", password = { env = "EWS_PASSWORD" } }
//! request_timeout = "20s"
//! retry = { max_attempts = 4 }
//! ```
//!
//! Bearer authentication (Exchange Online) is written `auth = { method =
//! "bearer" }`: the access tokens come from an app registration, which
//! `continuity-graph` configures and turns into an
//! [`AccessTokenSource`] (scope `https://outlook.office365.com/.default`);
//! adapters do not depend on each other, so that source is handed to
//! [`EwsSettings::config`].

use std::{sync::Arc, time::Duration};

use continuity_core::{
    access_token::AccessTokenSource, duration::serde_duration, secret::SecretRef,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::{
    client::{
        Auth, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RESPONSE_BYTES,
        DEFAULT_MIN_SEND_INTERVAL, DEFAULT_NTLM_WORKSTATION, DEFAULT_REQUEST_TIMEOUT,
        DEFAULT_USER_AGENT, EwsClient, EwsConfig, EwsRetryPolicy,
    },
    error::{EwsError, Result},
    request::ServerVersion,
};

/// An [`EwsClient`] as configured; every field but `endpoint` and `auth`
/// is optional, with the defaults of [`EwsConfig::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwsSettings {
    /// `https://<host>/EWS/Exchange.asmx`.
    pub endpoint: String,
    /// How the client authenticates.
    pub auth: EwsAuthSettings,
    /// `RequestServerVersion`, as the schema spells it (default `"Exchange2013_SP1"`).
    #[serde(default, with = "server_version")]
    pub server_version: ServerVersion,
    /// Allow `http://` (tests only; default false).
    #[serde(default)]
    pub allow_plain_http: bool,
    /// Whole-request timeout (default [`DEFAULT_REQUEST_TIMEOUT`], 30 s).
    #[serde(default = "request_timeout", with = "serde_duration")]
    pub request_timeout: Duration,
    /// Connect timeout (default [`DEFAULT_CONNECT_TIMEOUT`], 10 s).
    #[serde(default = "connect_timeout", with = "serde_duration")]
    pub connect_timeout: Duration,
    /// Concurrent requests of this account (default [`DEFAULT_MAX_CONCURRENCY`], 8; at most 27).
    #[serde(default = "max_concurrency")]
    pub max_concurrency: usize,
    /// Largest response body read, in bytes (default [`DEFAULT_MAX_RESPONSE_BYTES`], 4 MiB).
    #[serde(default = "max_response_bytes")]
    pub max_response_bytes: usize,
    /// Minimum time between two sends from one mailbox (default [`DEFAULT_MIN_SEND_INTERVAL`], 6 s).
    #[serde(default = "min_send_interval", with = "serde_duration")]
    pub min_send_interval: Duration,
    /// Retries (default [`EwsRetryPolicy::default`]).
    #[serde(default)]
    pub retry: EwsRetryPolicy,
    /// Exchange Online (legacy EWS mode); unset (the default): exactly when
    /// the auth is bearer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_online: Option<bool>,
    /// `User-Agent` (default [`DEFAULT_USER_AGENT`]).
    #[serde(default = "user_agent")]
    pub user_agent: String,
}

/// How the client authenticates, by `method`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum EwsAuthSettings {
    /// `{ method = "basic", username = "ACME\\svc", password = { env = "EWS_PASSWORD" } }`.
    Basic {
        /// User name (`DOMAIN\user` or UPN).
        username: String,
        /// Where the password is.
        password: SecretRef,
    },
    /// `{ method = "ntlm", domain = "ACME", username = "svc", password = { .. } }`
    /// (needs the crate's `ntlm` feature, on by default).
    Ntlm {
        /// NetBIOS domain.
        domain: String,
        /// User name without the domain.
        username: String,
        /// Where the password is.
        password: SecretRef,
        /// Workstation name sent in the messages (default [`DEFAULT_NTLM_WORKSTATION`]).
        #[serde(default = "workstation")]
        workstation: String,
    },
    /// `{ method = "bearer" }`: tokens from the source given to
    /// [`EwsSettings::config`] (see the [module docs](self)).
    Bearer,
}

fn request_timeout() -> Duration {
    DEFAULT_REQUEST_TIMEOUT
}
fn connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn max_concurrency() -> usize {
    DEFAULT_MAX_CONCURRENCY
}
fn max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}
fn min_send_interval() -> Duration {
    DEFAULT_MIN_SEND_INTERVAL
}
fn user_agent() -> String {
    DEFAULT_USER_AGENT.into()
}
fn workstation() -> String {
    DEFAULT_NTLM_WORKSTATION.into()
}

/// `ServerVersion` by the schema's spelling (`"Exchange2013_SP1"`).
mod server_version {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &ServerVersion, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ServerVersion, D::Error> {
        let text = String::deserialize(d)?;
        ServerVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<_> = ServerVersion::ALL.iter().map(|v| v.as_str()).collect();
                de::Error::custom(format!(
                    "unknown server version {text:?}, expected one of {}",
                    known.join(", ")
                ))
            })
    }
}

fn secret(field: &'static str, password: &SecretRef) -> Result<String> {
    password
        .resolve()
        .map(|p| p.expose_secret().to_owned())
        .map_err(|e| EwsError::InvalidConfig {
            field,
            reason: e.to_string(),
        })
}

impl EwsSettings {
    /// Settings for `endpoint` and `auth` with the defaults.
    pub fn new(endpoint: impl Into<String>, auth: EwsAuthSettings) -> Self {
        EwsSettings {
            endpoint: endpoint.into(),
            auth,
            server_version: ServerVersion::default(),
            allow_plain_http: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            min_send_interval: DEFAULT_MIN_SEND_INTERVAL,
            retry: EwsRetryPolicy::default(),
            exchange_online: None,
            user_agent: DEFAULT_USER_AGENT.into(),
        }
    }

    /// Reads the password into an [`EwsConfig`]. `tokens` is the access-token
    /// source of bearer authentication; other methods ignore it.
    ///
    /// # Errors
    ///
    /// [`EwsError::InvalidConfig`] for `auth.password` (naming the variable or
    /// file), or for `auth` when bearer has no token source or NTLM is not
    /// built in.
    pub fn config(&self, tokens: Option<Arc<dyn AccessTokenSource>>) -> Result<EwsConfig> {
        let auth = match &self.auth {
            EwsAuthSettings::Basic { username, password } => {
                Auth::basic(username.clone(), secret("auth.password", password)?)
            }
            #[cfg(feature = "ntlm")]
            EwsAuthSettings::Ntlm {
                domain,
                username,
                password,
                workstation,
            } => Auth::Ntlm {
                domain: domain.clone(),
                username: username.clone(),
                password: secret("auth.password", password)?.into(),
                workstation: workstation.clone(),
            },
            #[cfg(not(feature = "ntlm"))]
            EwsAuthSettings::Ntlm { .. } => {
                return Err(EwsError::InvalidConfig {
                    field: "auth.method",
                    reason: "NTLM needs continuity-ews built with its `ntlm` feature".into(),
                });
            }
            EwsAuthSettings::Bearer => Auth::Bearer(tokens.ok_or_else(|| {
                EwsError::InvalidConfig {
                    field: "auth.method",
                    reason: "bearer needs an access-token source: an app registration \
                         (continuity-graph) with the scope https://outlook.office365.com/.default"
                        .into(),
                }
            })?),
        };
        let mut config = EwsConfig::new(self.endpoint.clone(), auth);
        config.server_version = self.server_version;
        config.allow_plain_http = self.allow_plain_http;
        config.request_timeout = self.request_timeout;
        config.connect_timeout = self.connect_timeout;
        config.max_concurrency = self.max_concurrency;
        config.max_response_bytes = self.max_response_bytes;
        config.min_send_interval = self.min_send_interval;
        config.retry = self.retry;
        config.exchange_online = self.exchange_online;
        config.user_agent = self.user_agent.clone();
        Ok(config)
    }

    /// Builds the client (see [`EwsClient::new`]).
    pub fn client(&self, tokens: Option<Arc<dyn AccessTokenSource>>) -> Result<EwsClient> {
        EwsClient::new(self.config(tokens)?)
    }
}

#[cfg(feature = "smtp")]
pub use self::smtp::SmtpSenderSettings;

#[cfg(feature = "smtp")]
mod smtp {
    use continuity_smtp::{RelayConfigError, RelaySettings};
    use serde::{Deserialize, Serialize};

    use crate::{
        error::{EwsError, Result},
        smtp_sender::{SmtpProbeSender, SmtpSenderConfig},
    };

    /// An [`SmtpProbeSender`] as configured (feature `smtp`):
    /// `{ from = "probe@gateway.example", relay = { host = "..", .. } }`,
    /// the relay a [`RelaySettings`] with its defaults.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SmtpSenderSettings {
        /// The relay (EHLO name by default the domain of `from`).
        pub relay: RelaySettings,
        /// Envelope sender and `From:` of the probes.
        pub from: String,
    }

    impl SmtpSenderSettings {
        /// Reads the relay's password and certificate files.
        pub fn config(&self) -> Result<SmtpSenderConfig> {
            let mut config = SmtpSenderConfig::new(self.relay.host.clone(), self.from.clone());
            config.relay = self.relay.config().map_err(relay_setting)?;
            Ok(config)
        }

        /// Builds the sender (see [`SmtpProbeSender::new`]).
        pub fn sender(&self) -> Result<SmtpProbeSender> {
            SmtpProbeSender::new(self.config()?).map_err(|e| match e {
                // The sender's own check names the runtime field.
                EwsError::InvalidConfig {
                    field: "smtp.relay.root_certificates_pem",
                    reason,
                } => EwsError::InvalidConfig {
                    field: "smtp.relay.root_certificates",
                    reason,
                },
                e => e,
            })
        }
    }

    /// What reading the relay's settings refused, under this crate's names.
    fn relay_setting(e: RelayConfigError) -> EwsError {
        let field = match e.field {
            "credentials.password" => "smtp.relay.credentials.password",
            _ => "smtp.relay.root_certificates",
        };
        EwsError::InvalidConfig {
            field,
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use continuity_test_support::TempDir;
    use std::path::PathBuf;

    use super::*;

    const EXAMPLE: &str = r#"
        endpoint = "https://mail.acme.example/EWS/Exchange.asmx"
        auth = { method = "ntlm", domain = "ACME", username = "svc-continuity", password = { env = "CARGO_PKG_NAME" } }
        server_version = "Exchange2016"
        request_timeout = "20s"
        connect_timeout = "5s"
        max_concurrency = 4
        max_response_bytes = 65536
        min_send_interval = "10s"
        exchange_online = false
        user_agent = "acme-gateway/1"
        retry = { max_attempts = 4, base_delay = "250ms" }
    "#;

    /// A file in `dir`, removed with it.
    fn write(dir: &TempDir, name: &str, contents: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_toml_example_reads_to_the_values_written() {
        let s: EwsSettings = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(
            s,
            EwsSettings {
                server_version: ServerVersion::Exchange2016,
                request_timeout: Duration::from_secs(20),
                connect_timeout: Duration::from_secs(5),
                max_concurrency: 4,
                max_response_bytes: 65536,
                min_send_interval: Duration::from_secs(10),
                exchange_online: Some(false),
                user_agent: "acme-gateway/1".into(),
                retry: EwsRetryPolicy {
                    max_attempts: 4,
                    base_delay: Duration::from_millis(250),
                    ..EwsRetryPolicy::default()
                },
                ..EwsSettings::new(
                    "https://mail.acme.example/EWS/Exchange.asmx",
                    EwsAuthSettings::Ntlm {
                        domain: "ACME".into(),
                        username: "svc-continuity".into(),
                        password: SecretRef::env("CARGO_PKG_NAME"),
                        workstation: DEFAULT_NTLM_WORKSTATION.into(),
                    },
                )
            }
        );
        // Every setting but the auth reaches the config (NTLM's is checked
        // where the password is, with the feature).
        let basic = EwsSettings {
            auth: EwsAuthSettings::Basic {
                username: "u".into(),
                password: SecretRef::inline("p"),
            },
            ..s.clone()
        };
        let config = basic.config(None).unwrap();
        assert_eq!(config.server_version, ServerVersion::Exchange2016);
        assert_eq!(
            (
                config.request_timeout,
                config.connect_timeout,
                config.min_send_interval
            ),
            (
                Duration::from_secs(20),
                Duration::from_secs(5),
                Duration::from_secs(10)
            )
        );
        assert_eq!(
            (config.max_concurrency, config.max_response_bytes),
            (4, 65536)
        );
        assert_eq!(config.retry, s.retry);
        assert_eq!(config.exchange_online, Some(false));
        assert_eq!(config.user_agent, "acme-gateway/1");
        let basic: EwsSettings = toml::from_str(
            "endpoint = \"https://h/EWS/Exchange.asmx\"\nauth = { method = \"basic\", username = \"u\", password = { env = \"P\" } }",
        )
        .unwrap();
        assert!(matches!(basic.auth, EwsAuthSettings::Basic { .. }));
    }

    #[test]
    fn defaults_are_the_constructors() {
        let s: EwsSettings = toml::from_str(
            "endpoint = \"https://h/EWS/Exchange.asmx\"\nauth = { method = \"basic\", username = \"u\", password = { inline = \"p\" } }",
        )
        .unwrap();
        let built = s.config(None).unwrap();
        let made = EwsConfig::new("https://h/EWS/Exchange.asmx", Auth::basic("u", "p"));
        assert_eq!(built.server_version, made.server_version);
        assert_eq!(built.allow_plain_http, made.allow_plain_http);
        assert_eq!(built.request_timeout, made.request_timeout);
        assert_eq!(built.connect_timeout, made.connect_timeout);
        assert_eq!(built.max_concurrency, made.max_concurrency);
        assert_eq!(built.max_response_bytes, made.max_response_bytes);
        assert_eq!(built.min_send_interval, made.min_send_interval);
        assert_eq!(built.retry, made.retry);
        assert_eq!(built.exchange_online, made.exchange_online);
        assert_eq!(built.user_agent, made.user_agent);
        assert_eq!(
            (
                made.request_timeout,
                made.max_concurrency,
                made.min_send_interval
            ),
            (Duration::from_secs(30), 8, Duration::from_secs(6))
        );
    }

    #[cfg(not(feature = "ntlm"))]
    #[test]
    fn ntlm_without_the_feature_says_so() {
        let s: EwsSettings = toml::from_str(EXAMPLE).unwrap();
        let e = s.config(None).unwrap_err();
        assert!(
            matches!(
                e,
                EwsError::InvalidConfig {
                    field: "auth.method",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("`ntlm` feature"), "{e}");
    }

    #[cfg(feature = "ntlm")]
    #[test]
    fn the_ntlm_workstation_defaults_to_the_constructors() {
        let ntlm: EwsAuthSettings = toml::from_str(
            "method = \"ntlm\"\ndomain = \"D\"\nusername = \"u\"\npassword = { inline = \"p\" }",
        )
        .unwrap();
        let EwsAuthSettings::Ntlm { workstation, .. } = ntlm else {
            panic!("{ntlm:?}");
        };
        let Auth::Ntlm {
            workstation: made, ..
        } = Auth::ntlm("D", "u", "p")
        else {
            panic!("not NTLM");
        };
        assert_eq!(workstation, made);
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let refused = |text: &str| toml::from_str::<EwsSettings>(text).unwrap_err().to_string();
        let auth = "auth = { method = \"bearer\" }";
        let e = refused(&format!(
            "endpoint = \"https://h\"\n{auth}\ntimeout = \"5s\""
        ));
        assert!(e.contains("unknown field `timeout`"), "{e}");
        let e = refused(&format!(
            "endpoint = \"https://h\"\n{auth}\nretry = {{ attempts = 2 }}"
        ));
        assert!(e.contains("unknown field `attempts`"), "{e}");
        let e = refused(
            "endpoint = \"https://h\"\nauth = { method = \"basic\", user = \"u\", password = { env = \"P\" } }",
        );
        assert!(e.contains("unknown field `user`"), "{e}");
        let e = refused("endpoint = \"https://h\"\nauth = { method = \"kerberos\" }");
        assert!(e.contains("unknown variant `kerberos`"), "{e}");
        let e = refused(&format!(
            "endpoint = \"https://h\"\n{auth}\nserver_version = \"Exchange2019\""
        ));
        assert!(e.contains("unknown server version \"Exchange2019\""), "{e}");
    }

    #[test]
    fn passwords_come_from_the_environment_or_a_file_and_are_never_shown() {
        let dir = TempDir::new("ews-settings");
        let file = write(&dir, "ews-password", "ews-s3cret\n");
        let s = EwsSettings::new(
            "https://mail.acme.example/EWS/Exchange.asmx",
            EwsAuthSettings::Basic {
                username: "ACME\\svc".into(),
                password: SecretRef::file(&file),
            },
        );
        let config = s.config(None).unwrap();
        let Auth::Basic { password, .. } = &config.auth else {
            panic!("{:?}", config.auth);
        };
        assert_eq!(password.expose_secret(), "ews-s3cret");
        let client = s.client(None).unwrap();
        for shown in [
            format!("{s:?}"),
            format!("{config:?}"),
            format!("{client:?}"),
        ] {
            assert!(!shown.contains("ews-s3cret"), "{shown}");
        }

        let from_env: EwsSettings = toml::from_str(EXAMPLE).unwrap();
        #[cfg(feature = "ntlm")]
        {
            let config = from_env.config(None).unwrap();
            let Auth::Ntlm { password, .. } = &config.auth else {
                panic!("{:?}", config.auth);
            };
            assert_eq!(password.expose_secret(), env!("CARGO_PKG_NAME"));
        }

        let mut missing = from_env;
        missing.auth = EwsAuthSettings::Basic {
            username: "u".into(),
            password: SecretRef::env("CONTINUITY_TEST_EWS_PASSWORD_NOT_SET"),
        };
        let e = missing.config(None).unwrap_err();
        assert!(
            matches!(
                e,
                EwsError::InvalidConfig {
                    field: "auth.password",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("env:CONTINUITY_TEST_EWS_PASSWORD_NOT_SET"),
            "{e}"
        );
    }

    #[test]
    fn bearer_needs_a_token_source() {
        let s: EwsSettings = toml::from_str(
            "endpoint = \"https://outlook.office365.com/EWS/Exchange.asmx\"\nauth = { method = \"bearer\" }",
        )
        .unwrap();
        let e = s.config(None).unwrap_err();
        assert!(
            matches!(
                e,
                EwsError::InvalidConfig {
                    field: "auth.method",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("access-token source"), "{e}");
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn the_smtp_sender_reads_its_relay() {
        let dir = TempDir::new("ews-settings");
        let s: SmtpSenderSettings = toml::from_str(
            r#"
            from = "probe@gateway.example"
            relay = { host = "relay.gateway.example", port = 2525, credentials = { user = "probe", password = { env = "CARGO_PKG_NAME" } } }
            "#,
        )
        .unwrap();
        let config = s.config().unwrap();
        assert_eq!(config.relay.port, Some(2525));
        assert_eq!(config.from, "probe@gateway.example");
        let sender = s.sender().unwrap();
        assert!(!format!("{sender:?}").contains(env!("CARGO_PKG_NAME")));
        let e = toml::from_str::<SmtpSenderSettings>(
            "from = \"a@b\"\nrelay = { host = \"h\" }\nto = \"x\"",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `to`"), "{e}");

        let mut bad = s;
        bad.relay.root_certificates = vec![write(&dir, "not-a-ca.pem", "no certificate")];
        let e = bad.sender().unwrap_err();
        assert!(
            matches!(
                e,
                EwsError::InvalidConfig {
                    field: "smtp.relay.root_certificates",
                    ..
                }
            ),
            "{e:?}"
        );
        bad.relay.root_certificates = vec![PathBuf::from("/nonexistent/ca.pem")];
        let e = bad.sender().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
