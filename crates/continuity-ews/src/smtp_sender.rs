//! A [`ProbeSender`] that sends inbound probes through an SMTP relay (feature
//! `smtp`, on by default).
//!
//! The inbound direction measures the path from the gateway side to the
//! org's mailbox, so the message must enter mail transport where real inbound
//! mail does: the gateway's relay, which hands it to the org's server. The
//! message carries the probe's X-header and the token in its subject, exactly
//! what [`EwsProbe`](crate::EwsProbe)'s check looks for.
//!
//! - STARTTLS is the default (required, not opportunistic: a relay that does
//!   not offer it is refused); implicit TLS (port 465) is selectable;
//!   unencrypted SMTP only when [`RelayConfig::allow_insecure_plaintext`]
//!   is set (local relays, tests).
//! - The relay's certificate is checked against the platform's roots plus
//!   [`RelayConfig::root_certificates_pem`] (a private CA).
//! - A failure keeps the relay's reply code: 4xx and connection trouble are
//!   retryable (the direction's failure), 5xx and TLS trust problems are not
//!   (configuration: the relay refuses the sender or the recipient).
//!
//! ```
//! use continuity_core::TenantId;
//! use continuity_ews::{
//!     OutgoingProbe, SmtpCredentials, SmtpProbeSender, SmtpSecurity, SmtpSenderConfig,
//!     arrival::wire_id, request::{PROBE_HEADER, probe_subject},
//! };
//!
//! let mut config = SmtpSenderConfig::new("relay.gateway.example", "probe@gateway.example");
//! config.relay.credentials = Some(SmtpCredentials::new("probe@gateway.example", "s3cret"));
//! assert_eq!(config.relay.security, SmtpSecurity::StartTls);
//! let sender = SmtpProbeSender::new(config)?;
//! assert!(!format!("{sender:?}").contains("s3cret"));
//!
//! // What `EwsProbe` hands over for an inbound probe, and the message built from it.
//! let tenant = TenantId::new("acme").unwrap();
//! let probe_token = wire_id(&tenant, "in-19a8b");
//! let subject = probe_subject(&probe_token);
//! let message = sender.message(&OutgoingProbe {
//!     tenant: &tenant, to: "probe-in@acme.example", subject: &subject,
//!     header_name: PROBE_HEADER, header_value: &probe_token,
//! }).unwrap();
//! let text = String::from_utf8(message.formatted()).unwrap();
//! assert!(text.contains(&format!("X-Continuity-Probe-Id: {probe_token}\r\n")));
//! assert!(text.contains(&format!("Subject: {subject}\r\n")));
//!
//! // Unencrypted SMTP needs an explicit opt-in.
//! let mut plain = SmtpSenderConfig::new("127.0.0.1", "probe@gateway.example");
//! plain.relay.security = SmtpSecurity::InsecurePlaintext;
//! assert!(SmtpProbeSender::new(plain).unwrap_err().is_configuration());
//! # Ok::<(), continuity_ews::EwsError>(())
//! ```

use std::fmt;

use async_trait::async_trait;
use continuity_core::Error as CoreError;
pub use continuity_smtp::{RelayConfig, SmtpCredentials, SmtpSecurity};
use continuity_smtp::{
    RelayConfigError, SmtpRelay, is_certificate_error, is_unknown_host_error,
    lettre::{
        AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
        message::{
            Mailbox,
            header::{ContentType, HeaderName, HeaderValue},
        },
    },
};

use crate::{
    error::{EwsError, Result},
    probe::{OutgoingProbe, ProbeSender},
};

/// Settings of an [`SmtpProbeSender`].
#[derive(Clone, Debug)]
pub struct SmtpSenderConfig {
    /// The relay: host, port (default: 587 for STARTTLS, 465 for implicit
    /// TLS, 25 plain), security, TLS, credentials, EHLO name (default: the
    /// domain of `from`) and the time for each SMTP step (default 30 s).
    pub relay: RelayConfig,
    /// Envelope sender and `From:` of the probes (on the gateway's side).
    pub from: String,
}

impl SmtpSenderConfig {
    /// STARTTLS to `host` (port 587), sending as `from`, 30 s timeouts, no AUTH.
    pub fn new(host: impl Into<String>, from: impl Into<String>) -> Self {
        SmtpSenderConfig {
            relay: RelayConfig::new(host),
            from: from.into(),
        }
    }
}

/// Sends inbound probes through an SMTP relay. See the [module docs](self).
#[derive(Clone)]
pub struct SmtpProbeSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    host: String,
    port: u16,
    security: SmtpSecurity,
}

impl fmt::Debug for SmtpProbeSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The transport holds the credentials; show only where it sends.
        f.debug_struct("SmtpProbeSender")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
    }
}

fn invalid(field: &'static str, reason: impl fmt::Display) -> EwsError {
    EwsError::InvalidConfig {
        field,
        reason: reason.to_string(),
    }
}

/// A relay setting refused by `continuity-smtp`, under this crate's names.
fn relay_config(e: RelayConfigError) -> EwsError {
    let field = match e.field {
        "host" => "smtp.relay.host",
        "timeout" => "smtp.relay.timeout",
        "security" => "smtp.relay.security",
        "root_certificates_pem" => "smtp.relay.root_certificates_pem",
        _ => "smtp.relay.tls",
    };
    invalid(field, e.reason)
}

impl SmtpProbeSender {
    /// A sender with `config`; checks it (addresses, certificates, security).
    pub fn new(config: SmtpSenderConfig) -> Result<Self> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| invalid("smtp.from", format!("{:?}: {e}", config.from)))?;
        let relay = SmtpRelay::new(config.relay, from.email.domain()).map_err(relay_config)?;
        Ok(SmtpProbeSender {
            transport: relay.transport(),
            from,
            host: relay.host().to_owned(),
            port: relay.port(),
            security: relay.security(),
        })
    }

    /// The message for `probe`: to the org mailbox, with the probe's header
    /// and subject.
    pub fn message(&self, probe: &OutgoingProbe<'_>) -> continuity_core::Result<Message> {
        let to: Mailbox = probe.to.parse().map_err(|e| {
            CoreError::probe_permanent(format!("inbound probe recipient {:?}: {e}", probe.to))
                .with_source(e)
        })?;
        let built = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(probe.subject)
            .message_id(Some(format!(
                "<{}@{}>",
                probe.header_value,
                self.from.email.domain()
            )))
            .header(ContentType::TEXT_PLAIN)
            .body(format!(
                "Mail-flow probe of continuity for tenant {} (token {}). It is deleted when found.\r\n",
                probe.tenant, probe.header_value
            ));
        let mut message = built.map_err(|e| {
            CoreError::probe_permanent(format!("cannot build the inbound probe message: {e}"))
                .with_source(e)
        })?;
        let name = HeaderName::new_from_ascii(probe.header_name.to_owned()).map_err(|e| {
            CoreError::probe_permanent(format!("probe header name {:?}: {e}", probe.header_name))
                .with_source(e)
        })?;
        message
            .headers_mut()
            .insert_raw(HeaderValue::new(name, probe.header_value.to_owned()));
        Ok(message)
    }
}

/// A relay failure as core's probe error, keeping the reply code, and
/// lettre's error as the source.
fn classify(e: continuity_smtp::lettre::transport::smtp::Error) -> CoreError {
    let code = e.status().map(|c| c.to_string());
    let certificate = is_certificate_error(&e);
    let unknown_host = is_unknown_host_error(&e);
    let retryable = if e.is_transient() {
        true
    } else if e.is_permanent() || e.is_client() || e.is_tls() || certificate || unknown_host {
        // 5xx: the relay refuses the sender, the recipient or our AUTH;
        // client: no STARTTLS offered or no AUTH mechanism in common;
        // TLS: the relay's certificate is not trusted; the relay's host
        // name does not exist. Retrying cannot help.
        false
    } else {
        // Connection refused or reset, timeouts, a garbled reply.
        true
    };
    CoreError::Probe {
        retryable,
        code: code.or_else(|| (e.is_tls() || certificate).then(|| "tls".to_owned())),
        message: if unknown_host {
            format!("SMTP relay: its host name does not resolve: {e}")
        } else {
            format!("SMTP relay: {e}")
        },
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl ProbeSender for SmtpProbeSender {
    async fn send(&self, probe: &OutgoingProbe<'_>) -> continuity_core::Result<()> {
        let message = self.message(probe)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = classify(e);
                tracing::warn!(tenant = %probe.tenant, relay = %self.host, error = %err, "inbound probe not sent");
                Err(err)
            }
        }
    }
}
