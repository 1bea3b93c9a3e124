//! The crate's one error type.

/// Result alias of this crate.
pub type Result<T, E = PortalError> = std::result::Result<T, E>;

/// What can go wrong building the portal's [`PortalOptions`](crate::PortalOptions).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    /// The CSRF key is too short to be a secret (fix the configuration).
    #[error("the portal's CSRF key must be at least {min} bytes, got {len}")]
    CsrfKeyTooShort {
        /// The key's length.
        len: usize,
        /// The minimum.
        min: usize,
    },

    /// The CSRF key's secret cannot be read (fix the configuration: the
    /// text names the variable or the file).
    #[error("the portal's CSRF key: {0}")]
    CsrfKeyUnreadable(#[from] continuity_core::secret::SecretError),
}

impl PortalError {
    /// Whether the configuration must be fixed (every variant so far).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            PortalError::CsrfKeyTooShort { .. } | PortalError::CsrfKeyUnreadable(_)
        )
    }
}
