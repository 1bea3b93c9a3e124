//! AUTH credentials, kept out of `Debug` and logs.

use std::fmt;

use lettre::transport::smtp::authentication::Credentials;
use secrecy::{ExposeSecret, SecretString};

/// User name and password for SMTP AUTH (PLAIN or LOGIN). The password never
/// appears in `Debug`.
#[derive(Clone)]
pub struct SmtpCredentials {
    user: String,
    password: SecretString,
}

impl SmtpCredentials {
    /// Credentials from a user name and a password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        SmtpCredentials {
            user: user.into(),
            password: SecretString::from(password.into()),
        }
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password.
    pub fn password(&self) -> &SecretString {
        &self.password
    }

    pub(crate) fn to_lettre(&self) -> Credentials {
        Credentials::new(self.user.clone(), self.password.expose_secret().to_owned())
    }
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}
