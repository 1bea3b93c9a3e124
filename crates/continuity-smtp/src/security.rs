//! How the connection to a relay is protected.

use serde::{Deserialize, Serialize};

/// How the connection to the relay is protected. In configuration:
/// `"starttls"`, `"implicit_tls"` or `"insecure_plaintext"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must be offered
    /// (default; port 587).
    #[default]
    #[serde(rename = "starttls")]
    StartTls,
    /// TLS from the first byte (port 465).
    #[serde(rename = "implicit_tls")]
    ImplicitTls,
    /// No TLS at all (port 25). Refused unless
    /// [`RelayConfig::allow_insecure_plaintext`](crate::RelayConfig::allow_insecure_plaintext)
    /// is set too.
    #[serde(rename = "insecure_plaintext")]
    InsecurePlaintext,
}

impl SmtpSecurity {
    /// The port used when none is configured: 587, 465 or 25.
    pub const fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::ImplicitTls => 465,
            SmtpSecurity::InsecurePlaintext => 25,
        }
    }
}
