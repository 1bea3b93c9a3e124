//! The notifiers and the delivery as written in configuration: secrets as
//! [`SecretRef`]s, CA certificates as file paths, durations as `"15s"`.
//! Each `...Settings` is turned into the notifier's checked config by
//! `config()` (reading secrets and files) and into the notifier by
//! `notifier()`, through the notifier's own checks.
//!
//! ```toml
//! [sms]                                          # TwilioSettings
//! account_sid = "AC0123456789abcdef0123456789abcdef"
//! auth_token = { env = "TWILIO_AUTH_TOKEN" }
//! sender = { messaging_service = "MG0123456789abcdef0123456789abcdef" }
//!
//! [email]                                        # SmtpSettings
//! from = "Continuity <alerts@example.net>"
//! relay = { host = "relay.example.net", credentials = { user = "alerts", password = { file = "/run/secrets/relay" } } }
//!
//! [webhook]                                      # WebhookSettings
//! secret = { file = "/run/secrets/webhook" }
//!
//! [delivery]                                     # DeliverySettings
//! retry = { max_attempts = 5 }
//! fallback_after = "5m"
//! ```

use std::{path::PathBuf, sync::Arc, time::Duration};

use continuity_core::{
    Clock, config::ChannelKind, duration::serde_duration, files, secret::SecretRef,
};
use continuity_smtp::RelaySettings;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};

use crate::{
    delivery::{
        BreakerPolicy, DEFAULT_FALLBACK_AFTER, DEFAULT_REMEMBER_FOR, DEFAULT_REMEMBER_MAX,
        RetryPolicy,
    },
    error::NotifyError,
    http::DEFAULT_TIMEOUT,
    sms::{DEFAULT_MAX_SEGMENTS, SmsSender, TWILIO_BASE_URL, TwilioConfig, TwilioSms},
    smtp::{SmtpConfig, SmtpConnections, SmtpNotifier, relay_config},
    webhook::{WebhookConfig, WebhookNotifier},
};

/// A [`TwilioSms`] notifier as configured. Defaults: those of
/// [`TwilioConfig::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSettings {
    /// Scheme, host and port of the API (default [`TWILIO_BASE_URL`]).
    #[serde(default = "twilio_base_url")]
    pub base_url: String,
    /// The account SID (`AC...`).
    pub account_sid: String,
    /// Where the auth token is.
    pub auth_token: SecretRef,
    /// The sender: `{ from = "+15550100" }` or `{ messaging_service = "MG..." }`.
    pub sender: SmsSender,
    /// Time for one request (default 15 s).
    #[serde(default = "default_timeout", with = "serde_duration")]
    pub timeout: Duration,
    /// Messages longer than this many segments are refused (default [`DEFAULT_MAX_SEGMENTS`], 4).
    #[serde(default = "default_max_segments")]
    pub max_segments: usize,
    /// Files of extra trusted root certificates (PEM); default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_certificates: Vec<PathBuf>,
    /// Allow an `http://` base URL (a local test double); default false.
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// A [`WebhookNotifier`] as configured. Defaults: those of [`WebhookConfig::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where the shared signing secret is (at least 16 bytes).
    pub secret: SecretRef,
    /// Time for one request (default 15 s).
    #[serde(default = "default_timeout", with = "serde_duration")]
    pub timeout: Duration,
    /// Files of extra trusted root certificates (PEM); default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_certificates: Vec<PathBuf>,
    /// Allow `http://` recipient URLs (a local receiver in tests); default false.
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// An [`SmtpNotifier`] as configured. Defaults: those of [`SmtpConfig::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// The relay (see [`RelaySettings`]; EHLO name by default the sender's domain).
    pub relay: RelaySettings,
    /// The sender, e.g. `Continuity <alerts@example.net>`.
    pub from: String,
    /// Also sent to these addresses, visibly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    /// Also sent to these addresses, invisibly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bcc: Vec<String>,
    /// `{ pooled = { max_size = 4 } }` (the default) or `"per_message"`.
    #[serde(default)]
    pub connections: SmtpConnections,
}

/// A [`Delivery`](crate::delivery::Delivery)'s policies as configured, applied
/// with [`DeliveryBuilder::settings`](crate::delivery::DeliveryBuilder::settings).
/// Every field is optional, with the builder's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Retries within one call (default [`RetryPolicy::default`]).
    pub retry: RetryPolicy,
    /// Each channel's circuit breaker (default [`BreakerPolicy::default`]).
    pub breaker: BreakerPolicy,
    /// Age of an alert after which a retryable failure of its channel
    /// sends it to the fallbacks (default [`DEFAULT_FALLBACK_AFTER`], 10 min).
    #[serde(with = "serde_duration")]
    pub fallback_after: Duration,
    /// How long a delivered key is remembered (default [`DEFAULT_REMEMBER_FOR`], 48 h).
    #[serde(with = "serde_duration")]
    pub remember_for: Duration,
    /// Most delivered keys remembered (default [`DEFAULT_REMEMBER_MAX`], 100,000).
    pub remember_max: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            retry: RetryPolicy::default(),
            breaker: BreakerPolicy::default(),
            fallback_after: DEFAULT_FALLBACK_AFTER,
            remember_for: DEFAULT_REMEMBER_FOR,
            remember_max: DEFAULT_REMEMBER_MAX,
        }
    }
}

fn twilio_base_url() -> String {
    TWILIO_BASE_URL.into()
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_max_segments() -> usize {
    DEFAULT_MAX_SEGMENTS
}

/// Reads the certificate files, errors under the name written in the settings.
fn root_certificates(channel: ChannelKind, paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, NotifyError> {
    files::read_files(paths).map_err(|(i, e)| {
        NotifyError::config(channel, format!("root_certificates[{i}]"), e.to_string())
    })
}

/// The relay's own checks name `root_certificates_pem`; configuration
/// says `root_certificates`.
fn as_written(e: NotifyError) -> NotifyError {
    match e {
        NotifyError::Config {
            channel,
            field,
            reason,
        } => NotifyError::Config {
            channel,
            field: field.replace("root_certificates_pem", "root_certificates"),
            reason,
        },
        e => e,
    }
}

fn secret_error(channel: ChannelKind, field: &str, e: impl ToString) -> NotifyError {
    NotifyError::config(channel, field, e.to_string())
}

impl TwilioSettings {
    /// Reads the auth token and the certificate files.
    pub fn config(&self) -> Result<TwilioConfig, NotifyError> {
        let token = self
            .auth_token
            .resolve()
            .map_err(|e| secret_error(ChannelKind::Sms, "auth_token", e))?;
        let mut config = TwilioConfig::new(
            self.account_sid.clone(),
            token.expose_secret(),
            self.sender.clone(),
        );
        config.base_url = self.base_url.clone();
        config.timeout = self.timeout;
        config.max_segments = self.max_segments;
        config.root_certificates_pem =
            root_certificates(ChannelKind::Sms, &self.root_certificates)?;
        config.allow_plain_http = self.allow_plain_http;
        Ok(config)
    }

    /// Builds the notifier (see [`TwilioSms::new`]).
    pub fn notifier(&self) -> Result<TwilioSms, NotifyError> {
        TwilioSms::new(self.config()?)
    }
}

impl WebhookSettings {
    /// Settings with the secret at `secret` and the defaults.
    pub fn new(secret: SecretRef) -> Self {
        WebhookSettings {
            secret,
            timeout: DEFAULT_TIMEOUT,
            root_certificates: Vec::new(),
            allow_plain_http: false,
        }
    }

    /// Reads the secret and the certificate files.
    pub fn config(&self) -> Result<WebhookConfig, NotifyError> {
        let secret: SecretSlice<u8> = self
            .secret
            .resolve_bytes()
            .map_err(|e| secret_error(ChannelKind::Webhook, "secret", e))?;
        let mut config = WebhookConfig::new(secret.expose_secret().to_vec());
        config.timeout = self.timeout;
        config.root_certificates_pem =
            root_certificates(ChannelKind::Webhook, &self.root_certificates)?;
        config.allow_plain_http = self.allow_plain_http;
        Ok(config)
    }

    /// Builds the notifier (see [`WebhookNotifier::new`]); timestamps come from `clock`.
    pub fn notifier(&self, clock: Arc<dyn Clock>) -> Result<WebhookNotifier, NotifyError> {
        WebhookNotifier::new(self.config()?, clock)
    }
}

impl SmtpSettings {
    /// Reads the relay's password and certificate files.
    pub fn config(&self) -> Result<SmtpConfig, NotifyError> {
        let mut config = SmtpConfig::new(self.relay.host.clone(), self.from.clone());
        config.relay = self
            .relay
            .config()
            .map_err(|e| prefix_relay(relay_config(e)))?;
        config.cc = self.cc.clone();
        config.bcc = self.bcc.clone();
        config.connections = self.connections;
        Ok(config)
    }

    /// Builds the notifier (see [`SmtpNotifier::new`]); `Date` headers come from `clock`.
    pub fn notifier(&self, clock: Arc<dyn Clock>) -> Result<SmtpNotifier, NotifyError> {
        SmtpNotifier::new(self.config()?, clock).map_err(|e| prefix_relay(as_written(e)))
    }
}

/// Relay errors name the relay's own fields; here they are under `relay.`.
fn prefix_relay(e: NotifyError) -> NotifyError {
    const RELAY_FIELDS: [&str; 6] = [
        "host",
        "timeout",
        "security",
        "root_certificates",
        "tls",
        "credentials",
    ];
    match e {
        NotifyError::Config {
            channel,
            field,
            reason,
        } if RELAY_FIELDS.iter().any(|f| field.starts_with(f)) => NotifyError::Config {
            channel,
            field: format!("relay.{field}"),
            reason,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use continuity_core::ManualClock;
    use continuity_smtp::SmtpSecurity;
    use continuity_test_support::TempDir;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct All {
        sms: TwilioSettings,
        email: SmtpSettings,
        webhook: WebhookSettings,
        #[serde(default)]
        delivery: DeliverySettings,
    }

    /// The module docs' example, the secrets swapped for ones a test can read.
    fn example() -> String {
        let docs = include_str!("settings.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(docs.contains("[delivery]"), "{docs}");
        docs
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(ManualClock::new("2026-03-02T08:00:00Z".parse().unwrap()))
    }

    /// A file in `dir`, removed with it.
    fn write(dir: &TempDir, name: &str, contents: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn refused<T: for<'de> Deserialize<'de> + std::fmt::Debug>(text: &str) -> String {
        toml::from_str::<T>(text).unwrap_err().to_string()
    }

    #[test]
    fn the_documented_example_reads_to_the_values_written() {
        let all: All = toml::from_str(&example()).unwrap();
        assert_eq!(all.sms.account_sid, "AC0123456789abcdef0123456789abcdef");
        assert_eq!(all.sms.auth_token, SecretRef::env("TWILIO_AUTH_TOKEN"));
        assert_eq!(
            all.sms.sender,
            SmsSender::MessagingService("MG0123456789abcdef0123456789abcdef".into())
        );
        assert_eq!(all.email.from, "Continuity <alerts@example.net>");
        assert_eq!(all.email.relay.host, "relay.example.net");
        assert_eq!(
            all.email.relay.credentials.as_ref().unwrap().password,
            SecretRef::file("/run/secrets/relay")
        );
        assert_eq!(all.webhook.secret, SecretRef::file("/run/secrets/webhook"));
        assert_eq!(
            all.delivery,
            DeliverySettings {
                retry: RetryPolicy {
                    max_attempts: 5,
                    ..RetryPolicy::default()
                },
                fallback_after: Duration::from_secs(300),
                ..DeliverySettings::default()
            }
        );

        let sms: TwilioSettings = toml::from_str(
            r#"
            base_url = "http://127.0.0.1:8080"
            account_sid = "AC1"
            auth_token = { inline = "token" }
            sender = { from = "+15550100" }
            timeout = "5s"
            max_segments = 2
            allow_plain_http = true
            "#,
        )
        .unwrap();
        assert_eq!(
            (
                sms.base_url.as_str(),
                &sms.sender,
                sms.timeout,
                sms.max_segments
            ),
            (
                "http://127.0.0.1:8080",
                &SmsSender::From("+15550100".into()),
                Duration::from_secs(5),
                2
            )
        );
        assert!(sms.allow_plain_http);
        let built = sms.config().unwrap();
        assert_eq!(
            (built.base_url.as_str(), built.timeout, built.max_segments),
            ("http://127.0.0.1:8080", Duration::from_secs(5), 2)
        );
        assert_eq!(built.sender, sms.sender);
        assert!(built.allow_plain_http);
        let email: SmtpSettings = toml::from_str(
            r#"
            from = "alerts@example.net"
            cc = ["team@example.net"]
            bcc = ["archive@example.net"]
            connections = "per_message"
            relay = { host = "relay.example.net", security = "implicit_tls" }
            "#,
        )
        .unwrap();
        assert_eq!(email.connections, SmtpConnections::PerMessage);
        assert_eq!(email.relay.security, SmtpSecurity::ImplicitTls);
        let built = email.config().unwrap();
        assert_eq!(built.connections, SmtpConnections::PerMessage);
        assert_eq!(built.relay.security, SmtpSecurity::ImplicitTls);
        assert_eq!(built.cc, ["team@example.net"]);
        assert_eq!(built.bcc, ["archive@example.net"]);
        let pooled: SmtpSettings = toml::from_str(
            "from = \"a@example.net\"\nrelay = { host = \"h\" }\nconnections = { pooled = { max_size = 2 } }",
        )
        .unwrap();
        assert_eq!(pooled.connections, SmtpConnections::Pooled { max_size: 2 });
    }

    #[test]
    fn defaults_are_the_constructors() {
        let sms: TwilioSettings = toml::from_str(
            "account_sid = \"AC1\"\nauth_token = { inline = \"t\" }\nsender = { from = \"+1\" }",
        )
        .unwrap();
        let built = sms.config().unwrap();
        let made = TwilioConfig::new("AC1", "t", SmsSender::From("+1".into()));
        assert_eq!(built.base_url, made.base_url);
        assert_eq!(built.timeout, made.timeout);
        assert_eq!(built.max_segments, made.max_segments);
        assert_eq!(built.root_certificates_pem, made.root_certificates_pem);
        assert_eq!(built.allow_plain_http, made.allow_plain_http);
        assert_eq!(
            (made.timeout, made.max_segments),
            (Duration::from_secs(15), 4)
        );

        let hook: WebhookSettings = toml::from_str("secret = { inline = \"s\" }").unwrap();
        assert_eq!(hook, WebhookSettings::new(SecretRef::inline("s")));
        let built = hook.config().unwrap();
        let made = WebhookConfig::new("s");
        assert_eq!(built.timeout, made.timeout);
        assert_eq!(built.root_certificates_pem, made.root_certificates_pem);
        assert_eq!(built.allow_plain_http, made.allow_plain_http);

        let email: SmtpSettings =
            toml::from_str("from = \"a@example.net\"\nrelay = { host = \"h\" }").unwrap();
        let built = email.config().unwrap();
        let made = SmtpConfig::new("h", "a@example.net");
        assert_eq!(built.connections, made.connections);
        assert_eq!((built.cc, built.bcc), (made.cc, made.bcc));
        assert_eq!(made.connections, SmtpConnections::Pooled { max_size: 4 });

        let delivery: DeliverySettings = toml::from_str("").unwrap();
        assert_eq!(delivery, DeliverySettings::default());
        assert_eq!(
            (
                delivery.fallback_after,
                delivery.remember_for,
                delivery.remember_max
            ),
            (
                Duration::from_secs(600),
                Duration::from_secs(48 * 3600),
                100_000
            )
        );
        let partial: DeliverySettings =
            toml::from_str("retry = { base = \"2s\" }\nbreaker = { open_for = \"2m\" }").unwrap();
        assert_eq!(
            partial.retry.max_attempts,
            RetryPolicy::default().max_attempts
        );
        assert_eq!(partial.retry.base, Duration::from_secs(2));
        assert_eq!(partial.breaker.failure_threshold, 5);
        assert_eq!(partial.breaker.open_for, Duration::from_secs(120));
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let e = refused::<TwilioSettings>(
            "account_sid = \"AC1\"\nauth_token = { env = \"T\" }\nsender = { from = \"+1\" }\ntoken = 1",
        );
        assert!(e.contains("unknown field `token`"), "{e}");
        let e = refused::<TwilioSettings>(
            "account_sid = \"AC1\"\nauth_token = { env = \"T\" }\nsender = { number = \"+1\" }",
        );
        assert!(e.contains("unknown variant `number`"), "{e}");
        let e = refused::<WebhookSettings>("secret = { env = \"S\" }\ntimeout_s = 3");
        assert!(e.contains("unknown field `timeout_s`"), "{e}");
        let e = refused::<SmtpSettings>("from = \"a@b\"\nrelay = { host = \"h\" }\nto = []");
        assert!(e.contains("unknown field `to`"), "{e}");
        let e = refused::<SmtpSettings>(
            "from = \"a@b\"\nrelay = { host = \"h\" }\nconnections = { pooled = { size = 2 } }",
        );
        assert!(e.contains("size"), "{e}");
        // JSON too: the variant's fields are checked by serde, not the format.
        let e =
            serde_json::from_str::<SmtpConnections>(r#"{"pooled": {"max_size": 2, "size": 3}}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown field `size`"), "{e}");
        let e = refused::<DeliverySettings>("fallback = \"5m\"");
        assert!(e.contains("unknown field `fallback`"), "{e}");
        let e = refused::<DeliverySettings>("retry = { attempts = 2 }");
        assert!(e.contains("unknown field `attempts`"), "{e}");
        let e = refused::<DeliverySettings>("breaker = { threshold = 2 }");
        assert!(e.contains("unknown field `threshold`"), "{e}");
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file_and_are_never_shown() {
        let dir = TempDir::new("notify-settings");
        let token = write(&dir, "twilio-token", "tw-s3cret\n");
        let sms = TwilioSettings {
            base_url: twilio_base_url(),
            account_sid: "AC1".into(),
            auth_token: SecretRef::file(&token),
            sender: SmsSender::From("+15550100".into()),
            timeout: DEFAULT_TIMEOUT,
            max_segments: DEFAULT_MAX_SEGMENTS,
            root_certificates: Vec::new(),
            allow_plain_http: false,
        };
        let config = sms.config().unwrap();
        assert_eq!(config.auth_token.expose_secret(), "tw-s3cret");
        let notifier = sms.notifier().unwrap();
        for shown in [
            format!("{sms:?}"),
            format!("{config:?}"),
            format!("{notifier:?}"),
        ] {
            assert!(!shown.contains("tw-s3cret"), "{shown}");
        }

        // The environment: cargo sets CARGO_MANIFEST_DIR for every test
        // run, a value long enough for a webhook secret.
        let hook = WebhookSettings::new(SecretRef::env("CARGO_MANIFEST_DIR"));
        let config = hook.config().unwrap();
        let value = env!("CARGO_MANIFEST_DIR");
        assert_eq!(config.secret.expose_secret(), value.as_bytes());
        let notifier = hook.notifier(clock()).unwrap();
        for shown in [
            format!("{hook:?}"),
            format!("{config:?}"),
            format!("{notifier:?}"),
        ] {
            assert!(!shown.contains(value), "{shown}");
        }

        let missing =
            WebhookSettings::new(SecretRef::env("CONTINUITY_TEST_WEBHOOK_SECRET_NOT_SET"));
        let e = missing.config().unwrap_err().to_string();
        assert!(
            e.contains("secret") && e.contains("env:CONTINUITY_TEST_WEBHOOK_SECRET_NOT_SET"),
            "{e}"
        );
        let mut sms = sms;
        sms.auth_token = SecretRef::file(token.with_file_name("absent"));
        let e = sms.notifier().unwrap_err().to_string();
        assert!(
            e.contains("auth_token: file:") && e.contains("absent"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_setting_as_written() {
        let dir = TempDir::new("notify-settings");
        let mut hook = WebhookSettings::new(SecretRef::inline("short"));
        let e = hook.notifier(clock()).unwrap_err().to_string();
        assert!(e.contains("secret: must be at least 16 bytes"), "{e}");
        hook.secret = SecretRef::inline("sixteen bytes at least");
        let ca = write(&dir, "ca.pem", "");
        hook.root_certificates = vec![ca.clone(), ca.with_file_name("absent.pem")];
        let e = hook.notifier(clock()).unwrap_err().to_string();
        assert!(
            e.contains("root_certificates[1]") && e.contains("absent.pem"),
            "{e}"
        );

        let email: SmtpSettings = toml::from_str(
            "from = \"a@example.net\"\nrelay = { host = \"h\", credentials = { user = \"u\", password = { env = \"CONTINUITY_TEST_RELAY_NOT_SET\" } } }",
        )
        .unwrap();
        let e = email.notifier(clock()).unwrap_err().to_string();
        assert!(e.contains("relay.credentials.password"), "{e}");
        let email: SmtpSettings =
            toml::from_str("from = \"a@example.net\"\nrelay = { host = \" \" }").unwrap();
        let e = email.notifier(clock()).unwrap_err().to_string();
        assert!(e.contains("relay.host: is empty"), "{e}");
        let mut email: SmtpSettings =
            toml::from_str("from = \"a@example.net\"\nrelay = { host = \"h\" }").unwrap();
        email.relay.root_certificates = vec![write(&dir, "not-a-ca.pem", "no certificate")];
        let e = email.notifier(clock()).unwrap_err().to_string();
        assert!(
            e.contains("relay.root_certificates[0]: no CERTIFICATE"),
            "{e}"
        );
    }
}
