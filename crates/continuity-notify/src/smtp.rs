//! E-mail through an SMTP relay that is not the organisation's own server.
//!
//! - **Security:** STARTTLS (default, port 587) or implicit TLS (port 465),
//!   both verified against the platform's roots plus any extra root
//!   certificates configured; unencrypted SMTP only with
//!   [`SmtpSecurity::InsecurePlaintext`] *and* `allow_insecure_plaintext`.
//! - **Authentication:** PLAIN or LOGIN with the configured credentials
//!   (the password never appears in `Debug` or logs).
//! - **Recipients:** `To` the alert's recipient, plus the configured `Cc` and
//!   `Bcc` addresses (a team list, an archive); `Bcc` stays out of the headers.
//! - **Message:** `multipart/alternative` with a plain-text and an HTML body
//!   from the [`EmailTemplate`]; `Message-ID` derived from the alert's
//!   idempotency key, so every attempt for one alert and recipient carries
//!   the same id and the receiving side can drop duplicates;
//!   `Auto-Submitted: auto-generated` and `X-Auto-Response-Suppress: All` so
//!   that no out-of-office reply comes back; `Date` from the notifier's clock.
//! - **Connections:** a pool reused across messages (default), or one
//!   connection per message. Connections come from
//!   [`SmtpRelay::connect`](continuity_smtp::SmtpRelay::connect), which
//!   opens sockets with `TCP_NODELAY`: lettre 0.11.23 does not set it and
//!   writes the end-of-data mark separately, so with Nagle's algorithm every
//!   message waits out the relay's delayed ACK (40 ms on Linux). The pool is
//!   therefore this crate's own (lettre's transport opens its sockets
//!   itself), built on lettre's `AsyncSmtpConnection`. Implicit TLS
//!   connections are opened by lettre and keep Nagle on.
//!
//! The relay settings (security, TLS, credentials) are `continuity-smtp`'s,
//! shared with `continuity-ews`'s inbound probe sender.
//!
//! SMTP replies are classified: `4xx` and network failures can be retried;
//! `530/534/535/538` are refused credentials; other `5xx` reject the message.
//! A relay that cannot work with this configuration fails at once, not at
//! every retry: a host name that does not exist, a relay without STARTTLS
//! when the security mode requires it, or without an AUTH mechanism when
//! credentials are set, is [`NotifyError::Config`] naming the setting.
//! [`SmtpNotifier::check_connection`] tries the whole way to the relay
//! without sending anything.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use continuity_core::duration::after;
use continuity_core::{
    Clock,
    config::ChannelKind,
    notify::{AlertMessage, Notifier, Receipt},
};
use continuity_smtp::{
    ConnectError, RelayConfigError, SmtpRelay,
    lettre::{
        Message,
        message::{
            Mailbox, MultiPart,
            header::{HeaderName, HeaderValue},
        },
        transport::smtp::{client::AsyncSmtpConnection, response::Response},
    },
};
pub use continuity_smtp::{
    RelayConfig, SmtpConnectionInfo, SmtpConnectionProblem, SmtpCredentials, SmtpProblemKind,
    SmtpSecurity,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    error::NotifyError,
    http::hex,
    render::{DefaultEmailTemplate, EmailTemplate},
};

const CHANNEL: ChannelKind = ChannelKind::Email;

/// How connections are used. In configuration `{ pooled = { max_size = 4 } }`
/// or `"per_message"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SmtpConnections {
    /// Keep up to `max_size` connections open and reuse them (default 4).
    Pooled {
        /// Most connections open at once.
        max_size: u32,
    },
    /// Open, authenticate, send one message and quit, every time.
    PerMessage,
}

impl Default for SmtpConnections {
    /// A pool of 4.
    fn default() -> Self {
        SmtpConnections::Pooled { max_size: 4 }
    }
}

/// Settings of an [`SmtpNotifier`].
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// The relay: host, port, security, TLS, credentials, EHLO name (default:
    /// the sender's domain) and the time for each SMTP step (default 30 s).
    pub relay: RelayConfig,
    /// The sender, e.g. `Continuity <alerts@example.net>`.
    pub from: String,
    /// Also sent to these addresses, visibly.
    pub cc: Vec<String>,
    /// Also sent to these addresses, invisibly.
    pub bcc: Vec<String>,
    /// Connection reuse (default a pool of 4).
    pub connections: SmtpConnections,
}

impl SmtpConfig {
    /// STARTTLS to `host` on port 587 as `from`, with the other defaults.
    pub fn new(host: impl Into<String>, from: impl Into<String>) -> Self {
        SmtpConfig {
            relay: RelayConfig::new(host),
            from: from.into(),
            cc: Vec::new(),
            bcc: Vec::new(),
            connections: SmtpConnections::default(),
        }
    }
}

/// Sends alerts by e-mail through an SMTP relay. See the [module docs](self).
pub struct SmtpNotifier {
    relay: SmtpRelay,
    from: Mailbox,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    pool: Option<Pool>,
    message_id_domain: String,
    template: Arc<dyn EmailTemplate>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SmtpNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpNotifier")
            .field("host", &self.relay.host())
            .field("port", &self.relay.port())
            .field("security", &self.relay.security())
            .field("authenticated", &self.relay.is_authenticated())
            .field("from", &self.from.to_string())
            .field("pooled", &self.pool.is_some())
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

fn mailbox(field: &str, s: &str) -> Result<Mailbox, NotifyError> {
    s.parse()
        .map_err(|e| NotifyError::config(CHANNEL, field, format!("{s:?}: {e}")))
}

impl SmtpNotifier {
    /// Checks `config` and builds the notifier; `Date` headers and the
    /// pool's idle times come from `clock`. Sending needs a Tokio runtime.
    pub fn new(config: SmtpConfig, clock: Arc<dyn Clock>) -> Result<Self, NotifyError> {
        let from = mailbox("from", &config.from)?;
        let cc = config
            .cc
            .iter()
            .enumerate()
            .map(|(i, a)| mailbox(&format!("cc[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        let bcc = config
            .bcc
            .iter()
            .enumerate()
            .map(|(i, a)| mailbox(&format!("bcc[{i}]"), a))
            .collect::<Result<Vec<_>, _>>()?;
        let domain = from.email.domain().to_string();
        let relay = SmtpRelay::new(config.relay, &domain).map_err(relay_config)?;
        let pool = match config.connections {
            SmtpConnections::PerMessage => None,
            SmtpConnections::Pooled { max_size } => Some(Pool::new(max_size)),
        };
        Ok(SmtpNotifier {
            relay,
            from,
            cc,
            bcc,
            pool,
            message_id_domain: domain,
            template: Arc::new(DefaultEmailTemplate::default()),
            clock,
        })
    }

    /// Uses `template` instead of the [`DefaultEmailTemplate`].
    pub fn with_template(mut self, template: Arc<dyn EmailTemplate>) -> Self {
        self.template = template;
        self
    }

    /// The `Message-ID` every attempt for `message` carries:
    /// `<` 32 hex digits of SHA-256 over the idempotency key `@` the sender's domain `>`.
    pub fn message_id(&self, message: &AlertMessage) -> String {
        let digest = Sha256::digest(message.idempotency_key.as_bytes());
        format!("<{}@{}>", &hex(&digest)[..32], self.message_id_domain)
    }

    /// Builds the e-mail for `message`.
    pub fn build_message(&self, message: &AlertMessage) -> Result<Message, NotifyError> {
        let address = message
            .recipient
            .address
            .parse()
            .map_err(|e| NotifyError::Rejected {
                channel: CHANNEL,
                code: None,
                message: format!("recipient address {:?}: {e}", message.recipient.address),
            })?;
        let to = Mailbox::new(message.recipient.name.clone(), address);
        let content = self.template.render(message);
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(content.subject)
            .message_id(Some(self.message_id(message)))
            .date(std::time::SystemTime::from(self.clock.now()))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".into(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
                "All".into(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Continuity-Idempotency-Key"),
                message.idempotency_key.clone(),
            ));
        for c in &self.cc {
            b = b.cc(c.clone());
        }
        for c in &self.bcc {
            b = b.bcc(c.clone());
        }
        b.multipart(MultiPart::alternative_plain_html(
            content.text,
            content.html,
        ))
        .map_err(|e| NotifyError::Render {
            channel: CHANNEL,
            message: e.to_string(),
        })
    }

    /// Sends `message`, with this crate's error.
    pub async fn send(&self, message: &AlertMessage) -> Result<Receipt, NotifyError> {
        let email = self.build_message(message)?;
        let response = match &self.pool {
            Some(pool) => self.send_pooled(pool, &email).await?,
            None => self.send_on_new_connection(&email).await?,
        };
        let reply: Vec<&str> = response.message().collect();
        Ok(Receipt {
            provider_id: Some(
                format!("{} {}", response.code(), reply.join(" "))
                    .trim()
                    .to_string(),
            ),
        })
    }

    /// Checks that alerts can be handed to the relay, without sending
    /// one: connect, EHLO, STARTTLS or implicit TLS as configured, AUTH if
    /// credentials are set (see [`SmtpRelay::check_connection`]). The
    /// problem says which step failed, what to fix and whether it is
    /// permanent.
    pub async fn check_connection(&self) -> Result<SmtpConnectionInfo, SmtpConnectionProblem> {
        self.relay.check_connection().await
    }

    /// Opens, secures and authenticates a connection.
    async fn connect(&self) -> Result<AsyncSmtpConnection, NotifyError> {
        self.relay.connect().await.map_err(connect_error)
    }

    async fn send_on_new_connection(&self, email: &Message) -> Result<Response, NotifyError> {
        let mut conn = self.connect().await?;
        let response = conn
            .send(email.envelope(), &email.formatted())
            .await
            .map_err(classify)?;
        // The message is accepted; a failing QUIT changes nothing about that.
        let _ = conn.quit().await;
        Ok(response)
    }

    async fn send_pooled(&self, pool: &Pool, email: &Message) -> Result<Response, NotifyError> {
        let _slot = pool
            .slots
            .acquire()
            .await
            .map_err(|_| NotifyError::unavailable(CHANNEL, "connection pool closed"))?;
        let now = self.clock.now();
        let mut conn = None;
        while let Some((mut c, idle_since)) = pool.take() {
            if c.has_broken() || after(idle_since, IDLE_TIMEOUT) <= now {
                c.abort().await;
                continue;
            }
            // A connection idle for a while may have been closed by the
            // relay: check with NOOP rather than risk the message on it.
            if after(idle_since, IDLE_CHECK) <= now && !c.test_connected().await {
                c.abort().await;
                continue;
            }
            conn = Some(c);
            break;
        }
        let mut conn = match conn {
            Some(c) => c,
            None => self.connect().await?,
        };
        match conn.send(email.envelope(), &email.formatted()).await {
            Ok(response) => {
                pool.put(conn, self.clock.now());
                Ok(response)
            }
            Err(e) => {
                conn.abort().await;
                Err(classify(e))
            }
        }
    }
}

/// Idle connections are closed after this long (relays drop them too).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections are checked with NOOP before reuse after this long.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// Open connections kept for reuse, and a limit on connections in use.
struct Pool {
    slots: tokio::sync::Semaphore,
    idle: std::sync::Mutex<Vec<(AsyncSmtpConnection, DateTime<Utc>)>>,
}

impl Pool {
    fn new(max_size: u32) -> Self {
        let n = usize::try_from(max_size.max(1)).unwrap_or(1);
        Pool {
            slots: tokio::sync::Semaphore::new(n),
            idle: std::sync::Mutex::new(Vec::with_capacity(n)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, DateTime<Utc>)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection.
    fn take(&self) -> Option<(AsyncSmtpConnection, DateTime<Utc>)> {
        self.lock().pop()
    }

    fn put(&self, conn: AsyncSmtpConnection, now: DateTime<Utc>) {
        self.lock().push((conn, now));
    }
}

/// A relay setting refused by `continuity-smtp`, as this channel's configuration error.
pub(crate) fn relay_config(e: RelayConfigError) -> NotifyError {
    let field = match e.index {
        Some(i) => format!("{}[{i}]", e.field),
        None => e.field.to_owned(),
    };
    NotifyError::config(CHANNEL, field, e.reason)
}

/// A connection that failed, as this channel's error: what no retry can
/// fix is a configuration error naming the relay setting.
fn connect_error(e: ConnectError) -> NotifyError {
    let problem = SmtpConnectionProblem::from(e);
    let field = match problem.kind() {
        SmtpProblemKind::UnknownHost => "host",
        SmtpProblemKind::StartTlsNotOffered => "security",
        SmtpProblemKind::AuthNotOffered => "credentials",
        _ => {
            return match problem.into_error() {
                ConnectError::Tls(e) | ConnectError::Auth(e) | ConnectError::Smtp(e) => classify(e),
                e => NotifyError::unavailable(CHANNEL, e.to_string()),
            };
        }
    };
    NotifyError::config(CHANNEL, field, problem.to_string())
}

fn classify(e: continuity_smtp::lettre::transport::smtp::Error) -> NotifyError {
    let code = e.status().map(|c| c.to_string());
    let message = e.to_string();
    if e.is_permanent() {
        return match code.as_deref() {
            Some("530" | "534" | "535" | "538") => NotifyError::Auth {
                channel: CHANNEL,
                code,
                message,
            },
            _ => NotifyError::Rejected {
                channel: CHANNEL,
                code,
                message,
            },
        };
    }
    if e.is_client() {
        return NotifyError::Rejected {
            channel: CHANNEL,
            code,
            message,
        };
    }
    NotifyError::Unavailable {
        channel: CHANNEL,
        code: code.or_else(|| e.is_tls().then(|| "tls".to_string())),
        message,
        retry_after: None,
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    fn channel(&self) -> ChannelKind {
        CHANNEL
    }

    async fn deliver(&self, message: &AlertMessage) -> continuity_core::Result<Receipt> {
        Ok(self.send(message).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup_failed(detail: &str) -> std::io::Error {
        // What the standard library returns when getaddrinfo fails; the
        // tests reach no resolver.
        std::io::Error::other(format!("failed to lookup address information: {detail}"))
    }

    #[test]
    fn a_relay_host_that_does_not_exist_is_a_configuration_error() {
        let e = connect_error(ConnectError::UnknownHost {
            host: "relay.nonexistent.invalid".into(),
            source: lookup_failed("Name or service not known"),
        });
        match &e {
            NotifyError::Config { field, reason, .. } => {
                assert_eq!(field, "host");
                assert!(reason.contains("relay.nonexistent.invalid"), "{reason}");
            }
            e => panic!("{e:?}"),
        }
        assert!(!e.is_retryable());

        // A resolver that cannot answer now is not the configuration's fault.
        let e = connect_error(ConnectError::Connect(lookup_failed(
            "Temporary failure in name resolution",
        )));
        assert!(e.is_retryable(), "{e:?}");
    }
}
