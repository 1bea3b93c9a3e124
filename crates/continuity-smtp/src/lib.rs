//! SMTP relays for `continuity`, in one place: the security modes, the AUTH
//! credentials, TLS (rustls through lettre, the platform's roots plus any
//! private CA) and the lettre connections and transports built from them.
//! The e-mail notifier (`continuity-notify`) and the inbound probe sender
//! (`continuity-ews`) both reach their relays through [`SmtpRelay`].
//!
//! ```
//! use std::time::Duration;
//! use continuity_smtp::{RelayConfig, SmtpCredentials, SmtpRelay, SmtpSecurity};
//!
//! // STARTTLS on port 587 unless told otherwise, the certificate checked
//! // against the platform's roots (plus `root_certificates_pem`).
//! let mut config = RelayConfig::new("relay.example.net");
//! config.credentials = Some(SmtpCredentials::new("alerts", "s3cret"));
//! config.timeout = Duration::from_secs(10);
//! let relay = SmtpRelay::new(config, "continuity.example.net")?;
//! assert_eq!((relay.port(), relay.security()), (587, SmtpSecurity::StartTls));
//! assert!(relay.is_authenticated());
//! assert!(!format!("{relay:?}").contains("s3cret"));
//!
//! // Implicit TLS defaults to port 465.
//! let mut config = RelayConfig::new("relay.example.net");
//! config.security = SmtpSecurity::ImplicitTls;
//! assert_eq!(SmtpRelay::new(config, "continuity.example.net")?.port(), 465);
//!
//! // Unencrypted SMTP needs an explicit opt-in.
//! let mut config = RelayConfig::new("127.0.0.1");
//! config.security = SmtpSecurity::InsecurePlaintext;
//! assert_eq!(SmtpRelay::new(config.clone(), "localhost").unwrap_err().field, "security");
//! config.allow_insecure_plaintext = true;
//! let relay = SmtpRelay::new(config, "continuity.example.net")?;
//! assert_eq!(relay.port(), 25);
//!
//! // Either lettre's pooled transport, or single connections for a pool of
//! // one's own (`relay.connect().await`, needs a Tokio runtime);
//! // `relay.check_connection().await` tries every step without sending mail.
//! let _transport = relay.transport();
//! # Ok::<(), continuity_smtp::RelayConfigError>(())
//! ```
//!
//! In configuration a relay is a [`RelaySettings`], which reads the
//! password from the environment or a file and the CA certificates from
//! files when it is built:
//!
//! ```
//! use continuity_smtp::{RelaySettings, SmtpSecurity};
//!
//! let settings: RelaySettings = toml::from_str(r#"
//!     host = "relay.example.net"
//!     security = "implicit_tls"
//!     credentials = { user = "alerts", password = { env = "RELAY_PASSWORD" } }
//! "#)?;
//! assert_eq!(settings.security, SmtpSecurity::ImplicitTls);
//! // Building reads RELAY_PASSWORD; unset, the error names it.
//! # if std::env::var_os("RELAY_PASSWORD").is_none() {
//! let e = settings.relay("continuity.example.net").unwrap_err();
//! assert_eq!(e.field, "credentials.password");
//! assert!(e.to_string().contains("env:RELAY_PASSWORD"));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//!
//! | module | holds |
//! |---|---|
//! | `security` | [`SmtpSecurity`]: STARTTLS, implicit TLS, or plaintext by opt-in |
//! | `credentials` | [`SmtpCredentials`], the password kept out of `Debug` |
//! | `relay` | [`RelayConfig`] and the checked [`SmtpRelay`]: lettre transports and connections |
//! | `settings` | [`RelaySettings`]: a relay as configured (serde), the password a [`SecretRef`](continuity_core::secret::SecretRef), CA certificates as files |
//! | `tls` | TLS parameters, and [`is_certificate_error`] for lettre's errors |
//! | `check` | [`SmtpRelay::check_connection`]: [`SmtpConnectionInfo`], or the [`SmtpConnectionProblem`] to fix |
//! | `error` | [`RelayConfigError`], [`ConnectError`] (by the step that failed), [`is_unknown_host_error`] |
#![forbid(unsafe_code)]

mod check;
mod credentials;
mod error;
mod relay;
mod security;
mod settings;
mod tls;

pub use check::{SmtpConnectionInfo, SmtpConnectionProblem, SmtpProblemKind};
pub use credentials::SmtpCredentials;
pub use error::{ConnectError, RelayConfigError, is_unknown_host_error};
pub use relay::{DEFAULT_TIMEOUT, RelayConfig, SmtpRelay};
pub use security::SmtpSecurity;
pub use settings::{CredentialSettings, RelaySettings};
pub use tls::is_certificate_error;

/// lettre, as this crate builds on it: messages, mailboxes and errors of the
/// same version.
pub use lettre;
