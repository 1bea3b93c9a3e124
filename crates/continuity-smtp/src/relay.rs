//! A relay's settings, checked once, and the connections and transports
//! built from them.

use std::{fmt, io, net::SocketAddr, time::Duration};

use lettre::{
    AsyncSmtpTransport, Tokio1Executor,
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, Tls, TlsParameters},
        extension::ClientId,
    },
};

use crate::{
    credentials::SmtpCredentials,
    error::{self, ConnectError, RelayConfigError},
    security::SmtpSecurity,
    tls,
};

/// Timeout of each SMTP step when none is configured: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to reach a relay.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The relay's host name or IP address.
    pub host: String,
    /// The port (default: [`SmtpSecurity::default_port`]).
    pub port: Option<u16>,
    /// How the connection is protected (default STARTTLS).
    pub security: SmtpSecurity,
    /// Must be true for [`SmtpSecurity::InsecurePlaintext`] (default false).
    pub allow_insecure_plaintext: bool,
    /// The name the relay's certificate must carry (default: `host`).
    pub tls_domain: Option<String>,
    /// Extra trusted root certificates (PEM), e.g. a private CA.
    pub root_certificates_pem: Vec<Vec<u8>>,
    /// AUTH credentials, if the relay needs them.
    pub credentials: Option<SmtpCredentials>,
    /// The EHLO name (default: the sender's domain, given to [`SmtpRelay::new`]).
    pub hello_name: Option<String>,
    /// Timeout of each SMTP step: connect, each command (default
    /// [`DEFAULT_TIMEOUT`], 30 s).
    pub timeout: Duration,
}

impl RelayConfig {
    /// STARTTLS to `host` (port 587), 30 s timeouts, no AUTH, EHLO with
    /// the sender's domain.
    pub fn new(host: impl Into<String>) -> Self {
        RelayConfig {
            host: host.into(),
            port: None,
            security: SmtpSecurity::default(),
            allow_insecure_plaintext: false,
            tls_domain: None,
            root_certificates_pem: Vec::new(),
            credentials: None,
            hello_name: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A relay whose settings have been checked: TLS parameters built,
/// certificates parsed, port chosen. Cheap to clone.
#[derive(Clone)]
pub struct SmtpRelay {
    host: String,
    port: u16,
    security: SmtpSecurity,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
}

impl fmt::Debug for SmtpRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credentials stay out; whether there are any is enough.
        f.debug_struct("SmtpRelay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("authenticated", &self.credentials.is_some())
            .field("hello", &self.hello.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpRelay {
    /// Checks `config` (host, security, certificates) and prepares TLS.
    /// `sender_domain` (the domain of the messages' sender) is the EHLO
    /// name when `config` names none.
    pub fn new(config: RelayConfig, sender_domain: &str) -> Result<Self, RelayConfigError> {
        if config.host.trim().is_empty() {
            return Err(RelayConfigError {
                field: "host",
                index: None,
                reason: "is empty".into(),
            });
        }
        if config.timeout.is_zero() {
            return Err(RelayConfigError {
                field: "timeout",
                index: None,
                reason: "must be more than zero".into(),
            });
        }
        let port = config
            .port
            .unwrap_or_else(|| config.security.default_port());
        let tls = match config.security {
            SmtpSecurity::InsecurePlaintext if !config.allow_insecure_plaintext => {
                return Err(RelayConfigError {
                    field: "security",
                    index: None,
                    reason: "unencrypted SMTP needs allow_insecure_plaintext = true".into(),
                });
            }
            SmtpSecurity::InsecurePlaintext => None,
            SmtpSecurity::StartTls | SmtpSecurity::ImplicitTls => {
                let name = config.tls_domain.unwrap_or_else(|| config.host.clone());
                Some(tls::parameters(name, &config.root_certificates_pem)?)
            }
        };
        Ok(SmtpRelay {
            host: config.host,
            port,
            security: config.security,
            tls,
            credentials: config.credentials.as_ref().map(SmtpCredentials::to_lettre),
            hello: ClientId::Domain(
                config
                    .hello_name
                    .unwrap_or_else(|| sender_domain.to_owned()),
            ),
            timeout: config.timeout,
        })
    }

    /// The relay's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port connected to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How the connection is protected.
    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    /// Whether AUTH is sent.
    pub fn is_authenticated(&self) -> bool {
        self.credentials.is_some()
    }

    /// lettre's transport to this relay, with its own connection pool: for
    /// a sender that needs nothing more than `send`.
    pub fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        let tls = match (&self.tls, self.security) {
            (Some(p), SmtpSecurity::ImplicitTls) => Tls::Wrapper(p.clone()),
            (Some(p), _) => Tls::Required(p.clone()),
            (None, _) => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .hello_name(self.hello.clone())
            .timeout(Some(self.timeout));
        if let Some(c) = &self.credentials {
            builder = builder.credentials(c.clone());
        }
        builder.build()
    }

    /// Opens one connection: connected, secured (STARTTLS required where
    /// configured) and authenticated, for a caller that pools connections
    /// itself. The error names the step that failed.
    ///
    /// The host name is resolved first, on its own, so that a name that
    /// does not exist ([`ConnectError::UnknownHost`]) is told from a relay
    /// that does not answer.
    ///
    /// Plain and STARTTLS sockets are opened here with `TCP_NODELAY`:
    /// lettre writes the end-of-data mark separately, so with Nagle's
    /// algorithm every message would wait out the relay's delayed ACK
    /// (40 ms on Linux). Implicit TLS sockets are opened by lettre.
    pub async fn connect(&self) -> Result<AsyncSmtpConnection, ConnectError> {
        let addrs = self.resolve().await?;
        let mut conn = match (&self.tls, self.security) {
            (Some(p), SmtpSecurity::ImplicitTls) => AsyncSmtpConnection::connect_tokio1(
                &addrs[..],
                Some(self.timeout),
                &self.hello,
                Some(p.clone()),
                None,
            )
            .await
            .map_err(|e| {
                if e.is_tls() || tls::is_certificate_error(&e) {
                    ConnectError::Tls(e)
                } else {
                    ConnectError::Smtp(e)
                }
            })?,
            (tls, _) => {
                let tcp =
                    tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(&addrs[..]))
                        .await
                        .map_err(|_| ConnectError::Timeout)?
                        .map_err(ConnectError::Connect)?;
                tcp.set_nodelay(true).map_err(ConnectError::Socket)?;
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?;
                if let Some(p) = tls {
                    if !conn.can_starttls() {
                        return Err(ConnectError::StartTlsNotOffered);
                    }
                    conn.starttls(p.clone(), &self.hello).await.map_err(|e| {
                        // A reply (to STARTTLS or the EHLO after it) is the
                        // relay's answer; anything else is the handshake.
                        if e.status().is_some() {
                            ConnectError::Smtp(e)
                        } else {
                            ConnectError::Tls(e)
                        }
                    })?;
                }
                conn
            }
        };
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .await
                .map_err(ConnectError::Auth)?;
        }
        Ok(conn)
    }

    /// The relay's addresses. A name that does not exist is
    /// [`ConnectError::UnknownHost`]; a resolver that cannot answer now is
    /// [`ConnectError::Connect`].
    async fn resolve(&self) -> Result<Vec<SocketAddr>, ConnectError> {
        let found = tokio::time::timeout(
            self.timeout,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| ConnectError::Timeout)?
        .map_err(|e| lookup_error(&self.host, e))?;
        let addrs: Vec<SocketAddr> = found.collect();
        if addrs.is_empty() {
            return Err(ConnectError::UnknownHost {
                host: self.host.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address found"),
            });
        }
        Ok(addrs)
    }
}

/// A failed lookup of `host`, as the step's error.
fn lookup_error(host: &str, e: io::Error) -> ConnectError {
    if error::is_unknown_host(&e) {
        ConnectError::UnknownHost {
            host: host.to_owned(),
            source: e,
        }
    } else {
        ConnectError::Connect(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_are_refused_by_name() {
        let mut empty = RelayConfig::new("  ");
        empty.timeout = Duration::from_secs(5);
        assert_eq!(
            SmtpRelay::new(empty, "example.net").unwrap_err().field,
            "host"
        );

        let mut zero = RelayConfig::new("relay.example.net");
        zero.timeout = Duration::ZERO;
        assert_eq!(
            SmtpRelay::new(zero, "example.net").unwrap_err().field,
            "timeout"
        );

        let mut bad_ca = RelayConfig::new("relay.example.net");
        bad_ca.root_certificates_pem = vec![b"not a certificate".to_vec()];
        let e = SmtpRelay::new(bad_ca, "example.net").unwrap_err();
        assert_eq!(
            (e.field, e.index),
            ("root_certificates_pem", Some(0)),
            "{e}"
        );
    }

    #[test]
    fn a_name_that_does_not_exist_is_a_permanent_problem_and_a_resolver_outage_is_not() {
        // What the standard library returns when getaddrinfo fails; the
        // tests reach no resolver.
        let missing = lookup_error(
            "relay.nonexistent.invalid",
            io::Error::other("failed to lookup address information: Name or service not known"),
        );
        assert!(
            matches!(&missing, ConnectError::UnknownHost { host, .. } if host == "relay.nonexistent.invalid"),
            "{missing:?}"
        );
        let problem = crate::SmtpConnectionProblem::from(missing);
        assert!(problem.is_permanent(), "{problem:?}");
        let text = problem.to_string();
        assert!(
            text.contains("\"relay.nonexistent.invalid\" does not resolve")
                && text.contains("Name or service not known"),
            "{text}"
        );

        let outage = lookup_error(
            "relay.example.net",
            io::Error::other(
                "failed to lookup address information: Temporary failure in name resolution",
            ),
        );
        assert!(matches!(outage, ConnectError::Connect(_)), "{outage:?}");
        assert!(!crate::SmtpConnectionProblem::from(outage).is_permanent());
    }

    #[test]
    fn the_ehlo_name_is_the_senders_domain_unless_configured() {
        let relay =
            SmtpRelay::new(RelayConfig::new("relay.example.net"), "gateway.example").unwrap();
        assert_eq!(relay.hello.to_string(), "gateway.example");
        let mut named = RelayConfig::new("relay.example.net");
        named.hello_name = Some("mx1.gateway.example".into());
        let relay = SmtpRelay::new(named, "gateway.example").unwrap();
        assert_eq!(relay.hello.to_string(), "mx1.gateway.example");
    }
}
