//! [`ServiceError`]: what reading, checking or building a service refused,
//! by the field as written in the file.

use std::{fmt, path::PathBuf};

/// What reading, checking or building a [`ServiceConfig`](super::ServiceConfig)
/// refused. The field is the path as written in the file
/// (`notifiers.sms.auth_token`, `tenants[2] "acme": outbound.failures`);
/// the reason says what is wrong and what is expected. No secret is ever
/// part of either.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration file cannot be read.
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A field is missing, unknown or wrong, or a part it configures could
    /// not be built (a secret not readable, a certificate refused, the
    /// store not reachable).
    Config {
        /// Where, as written in the file (a file's name first when read
        /// with [`from_file`](super::ServiceConfig::from_file)).
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

impl ServiceError {
    /// A [`Config`](Self::Config) error.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ServiceError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field named, if the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ServiceError::Config { field, .. } => Some(field),
            ServiceError::File { .. } => None,
        }
    }

    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            ServiceError::Config { field, reason } => ServiceError::Config {
                field: format!("{}: {field}", path.display()),
                reason,
            },
            e => e,
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::File { path, source } => {
                write!(f, "{}: cannot be read: {source}", path.display())
            }
            ServiceError::Config { field, reason } => write!(f, "{field}: {reason}"),
        }
    }
}

impl std::error::Error for ServiceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServiceError::File { source, .. } => Some(source),
            ServiceError::Config { .. } => None,
        }
    }
}

/// `tenants[2] "acme": field` (or without the field, or the name when unknown).
pub(crate) fn tenant_label(index: usize, name: Option<&str>, field: &str) -> String {
    let mut label = format!("tenants[{index}]");
    if let Some(name) = name {
        label.push_str(&format!(" {name:?}"));
    }
    if !field.is_empty() {
        label.push_str(": ");
        label.push_str(field);
    }
    label
}
