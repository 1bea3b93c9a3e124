//! A relay as written in configuration ([`RelaySettings`]): the password as
//! a [`SecretRef`], extra CA certificates as file paths. Building it reads
//! both and hands the result to the checked [`SmtpRelay::new`].

use std::{path::PathBuf, time::Duration};

use continuity_core::{duration::serde_duration, files, secret::SecretRef};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::{
    credentials::SmtpCredentials,
    error::RelayConfigError,
    relay::{DEFAULT_TIMEOUT, RelayConfig, SmtpRelay},
    security::SmtpSecurity,
};

/// A relay's settings as configured; every field but `host` is optional,
/// with the defaults of [`RelayConfig::new`]:
///
/// ```toml
/// host = "relay.example.net"
/// port = 587                                 # default: by security, 587 / 465 / 25
/// security = "starttls"                      # or "implicit_tls", "insecure_plaintext"
/// allow_insecure_plaintext = false           # needed for "insecure_plaintext"
/// tls_domain = "relay.example.net"           # default: host
/// root_certificates = ["/etc/continuity/ca.pem"]
/// hello_name = "mx1.example.net"             # default: the sender's domain
/// timeout = "30s"
/// credentials = { user = "alerts", password = { env = "RELAY_PASSWORD" } }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// The relay's host name or IP address.
    pub host: String,
    /// The port (default: [`SmtpSecurity::default_port`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// How the connection is protected (default STARTTLS).
    #[serde(default)]
    pub security: SmtpSecurity,
    /// Must be true for [`SmtpSecurity::InsecurePlaintext`] (default false).
    #[serde(default)]
    pub allow_insecure_plaintext: bool,
    /// The name the relay's certificate must carry (default: `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_domain: Option<String>,
    /// Files of extra trusted root certificates (PEM), e.g. a private CA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_certificates: Vec<PathBuf>,
    /// AUTH credentials, if the relay needs them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialSettings>,
    /// The EHLO name (default: the sender's domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_name: Option<String>,
    /// Timeout of each SMTP step (default [`DEFAULT_TIMEOUT`], 30 s).
    #[serde(default = "default_timeout", with = "serde_duration")]
    pub timeout: Duration,
}

/// AUTH credentials as configured: `{ user = "alerts", password = { env = "RELAY_PASSWORD" } }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSettings {
    /// The user name.
    pub user: String,
    /// Where the password is.
    pub password: SecretRef,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

impl RelaySettings {
    /// Settings for `host` with the defaults.
    pub fn new(host: impl Into<String>) -> Self {
        RelaySettings {
            host: host.into(),
            port: None,
            security: SmtpSecurity::default(),
            allow_insecure_plaintext: false,
            tls_domain: None,
            root_certificates: Vec::new(),
            credentials: None,
            hello_name: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Reads the password and the certificate files into a [`RelayConfig`].
    ///
    /// # Errors
    ///
    /// A [`RelayConfigError`] for `credentials.password` (naming the
    /// variable or file) or `root_certificates` (with the file's index).
    pub fn config(&self) -> Result<RelayConfig, RelayConfigError> {
        let root_certificates_pem =
            files::read_files(&self.root_certificates).map_err(|(i, e)| RelayConfigError {
                field: "root_certificates",
                index: Some(i),
                reason: e.to_string(),
            })?;
        let credentials = match &self.credentials {
            None => None,
            Some(c) => {
                let password = c.password.resolve().map_err(|e| RelayConfigError {
                    field: "credentials.password",
                    index: None,
                    reason: e.to_string(),
                })?;
                Some(SmtpCredentials::new(
                    c.user.clone(),
                    password.expose_secret(),
                ))
            }
        };
        Ok(RelayConfig {
            host: self.host.clone(),
            port: self.port,
            security: self.security,
            allow_insecure_plaintext: self.allow_insecure_plaintext,
            tls_domain: self.tls_domain.clone(),
            root_certificates_pem,
            credentials,
            hello_name: self.hello_name.clone(),
            timeout: self.timeout,
        })
    }

    /// Builds the checked relay (see [`SmtpRelay::new`]); `sender_domain`
    /// is the EHLO name unless `hello_name` is set.
    ///
    /// # Errors
    ///
    /// Those of [`config`](Self::config) and [`SmtpRelay::new`], the field
    /// named as written here (`root_certificates`, not `root_certificates_pem`).
    pub fn relay(&self, sender_domain: &str) -> Result<SmtpRelay, RelayConfigError> {
        SmtpRelay::new(self.config()?, sender_domain).map_err(|mut e| {
            if e.field == "root_certificates_pem" {
                e.field = "root_certificates";
            }
            e
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
        host = "relay.example.net"
        port = 2525
        security = "implicit_tls"
        tls_domain = "mail.example.net"
        hello_name = "mx1.example.net"
        timeout = "10s"
        credentials = { user = "alerts", password = { env = "CARGO_PKG_NAME" } }
    "#;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("continuity-smtp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_toml_example_reads_to_the_values_written() {
        let s: RelaySettings = toml::from_str(TOML).unwrap();
        assert_eq!(
            s,
            RelaySettings {
                port: Some(2525),
                security: SmtpSecurity::ImplicitTls,
                tls_domain: Some("mail.example.net".into()),
                hello_name: Some("mx1.example.net".into()),
                timeout: Duration::from_secs(10),
                credentials: Some(CredentialSettings {
                    user: "alerts".into(),
                    password: SecretRef::env("CARGO_PKG_NAME"),
                }),
                ..RelaySettings::new("relay.example.net")
            }
        );
        let relay = s.relay("example.net").unwrap();
        assert_eq!(
            (relay.port(), relay.security(), relay.is_authenticated()),
            (2525, SmtpSecurity::ImplicitTls, true)
        );
        for (text, security) in [
            ("starttls", SmtpSecurity::StartTls),
            ("insecure_plaintext", SmtpSecurity::InsecurePlaintext),
        ] {
            let s: RelaySettings =
                toml::from_str(&format!("host = \"h\"\nsecurity = \"{text}\"")).unwrap();
            assert_eq!(s.security, security);
        }
    }

    #[test]
    fn defaults_are_the_constructors() {
        let s: RelaySettings = toml::from_str("host = \"relay.example.net\"").unwrap();
        assert_eq!(s, RelaySettings::new("relay.example.net"));
        let built = s.config().unwrap();
        let made = RelayConfig::new("relay.example.net");
        assert_eq!(built.port, made.port);
        assert_eq!(built.security, made.security);
        assert_eq!(
            built.allow_insecure_plaintext,
            made.allow_insecure_plaintext
        );
        assert_eq!(built.tls_domain, made.tls_domain);
        assert_eq!(built.root_certificates_pem, made.root_certificates_pem);
        assert_eq!(built.hello_name, made.hello_name);
        assert_eq!(built.timeout, made.timeout);
        assert!(built.credentials.is_none() && made.credentials.is_none());
        assert_eq!(s.timeout, Duration::from_secs(30));
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let e = toml::from_str::<RelaySettings>("host = \"h\"\ntimeout_secs = 5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `timeout_secs`"), "{e}");
        let e = toml::from_str::<RelaySettings>(
            "host = \"h\"\ncredentials = { user = \"u\", pass = { env = \"X\" } }",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `pass`"), "{e}");
        let e = toml::from_str::<RelaySettings>("host = \"h\"\nsecurity = \"tls\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `tls`"), "{e}");
    }

    #[test]
    fn the_password_comes_from_the_environment_or_a_file_and_is_never_shown() {
        let s: RelaySettings = toml::from_str(TOML).unwrap();
        let config = s.config().unwrap();
        let password = config.credentials.as_ref().unwrap().password();
        assert_eq!(password.expose_secret(), env!("CARGO_PKG_NAME"));

        let file = temp_dir().join("relay-password");
        std::fs::write(&file, "s3cret-from-file\n").unwrap();
        let mut s = s;
        s.credentials = Some(CredentialSettings {
            user: "alerts".into(),
            password: SecretRef::file(&file),
        });
        let config = s.config().unwrap();
        let password = config.credentials.as_ref().unwrap().password();
        assert_eq!(password.expose_secret(), "s3cret-from-file");
        for shown in [
            format!("{s:?}"),
            format!("{config:?}"),
            format!("{:?}", s.relay("example.net").unwrap()),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }

        s.credentials = Some(CredentialSettings {
            user: "alerts".into(),
            password: SecretRef::env("CONTINUITY_TEST_RELAY_PASSWORD_NOT_SET"),
        });
        let e = s.relay("example.net").unwrap_err();
        assert_eq!(e.field, "credentials.password");
        assert!(
            e.to_string()
                .contains("env:CONTINUITY_TEST_RELAY_PASSWORD_NOT_SET"),
            "{e}"
        );
    }

    #[test]
    fn certificate_files_are_read_and_errors_name_the_setting() {
        let dir = temp_dir();
        let missing = dir.join("missing-ca.pem");
        let mut s = RelaySettings::new("relay.example.net");
        s.root_certificates = vec![missing.clone()];
        let e = s.relay("example.net").unwrap_err();
        assert_eq!((e.field, e.index), ("root_certificates", Some(0)));
        assert!(
            e.to_string().contains(&missing.display().to_string()),
            "{e}"
        );

        let not_pem = dir.join("not-a-ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        s.root_certificates = vec![not_pem];
        let e = s.relay("example.net").unwrap_err();
        assert_eq!((e.field, e.index), ("root_certificates", Some(0)), "{e}");
    }
}
