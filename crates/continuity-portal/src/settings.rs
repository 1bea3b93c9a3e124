//! [`PortalSettings`]: the portal's options as written in configuration,
//! the CSRF key a [`SecretRef`].

use continuity_core::secret::SecretRef;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::{PortalOptions, Result};

/// The portal's options as configured:
///
/// ```toml
/// csrf_key = { file = "/run/secrets/portal-csrf" }   # at least 32 bytes, the same on every instance
/// body_limit = 8192                                  # bytes (the default)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSettings {
    /// Where the key the forms' CSRF tokens are derived from is (at least
    /// [`PortalOptions::MIN_CSRF_KEY_LEN`] bytes: the variable's value or
    /// the file's bytes without one trailing newline).
    pub csrf_key: SecretRef,
    /// Bound on request bodies in bytes (default [`PortalOptions::DEFAULT_BODY_LIMIT`], 8 KiB).
    #[serde(default = "body_limit")]
    pub body_limit: usize,
}

fn body_limit() -> usize {
    PortalOptions::DEFAULT_BODY_LIMIT
}

impl PortalSettings {
    /// Settings with the key at `csrf_key` and the default body limit.
    pub fn new(csrf_key: SecretRef) -> Self {
        PortalSettings {
            csrf_key,
            body_limit: body_limit(),
        }
    }

    /// Reads the key and builds the options (see [`PortalOptions::new`]).
    ///
    /// # Errors
    ///
    /// [`PortalError::CsrfKeyUnreadable`](crate::PortalError::CsrfKeyUnreadable)
    /// naming the variable or file, [`PortalError::CsrfKeyTooShort`](crate::PortalError::CsrfKeyTooShort).
    pub fn build(&self) -> Result<PortalOptions> {
        let key = self.csrf_key.resolve_bytes()?;
        Ok(PortalOptions::new(key.expose_secret())?.with_body_limit(self.body_limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PortalError;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_toml_example_reads_to_the_values_written_with_the_default_limit() {
        let s: PortalSettings =
            toml::from_str("csrf_key = { env = \"PORTAL_CSRF\" }\nbody_limit = 4096").unwrap();
        assert_eq!(
            s,
            PortalSettings {
                csrf_key: SecretRef::env("PORTAL_CSRF"),
                body_limit: 4096,
            }
        );
        let s: PortalSettings = toml::from_str("csrf_key = { env = \"PORTAL_CSRF\" }").unwrap();
        assert_eq!(s.body_limit, 8 * 1024);
        assert_eq!(s, PortalSettings::new(SecretRef::env("PORTAL_CSRF")));
        let built = PortalSettings::new(SecretRef::inline(KEY)).build().unwrap();
        let made = PortalOptions::new(KEY).unwrap();
        assert_eq!(format!("{built:?}"), format!("{made:?}"));
        let mut small = PortalSettings::new(SecretRef::inline(KEY));
        small.body_limit = 4096;
        let built = format!("{:?}", small.build().unwrap());
        assert!(built.contains("body_limit: 4096"), "{built}");
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let e = toml::from_str::<PortalSettings>("csrf_key = { env = \"K\" }\nlimit = 5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `limit`"), "{e}");
    }

    #[test]
    fn the_key_comes_from_a_file_or_the_environment_and_is_never_shown() {
        let dir = std::env::temp_dir().join(format!("continuity-portal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("csrf");
        std::fs::write(&file, format!("{KEY}\n")).unwrap();
        let s = PortalSettings::new(SecretRef::file(&file));
        let options = s.build().unwrap();
        for shown in [format!("{s:?}"), format!("{options:?}")] {
            assert!(!shown.contains(KEY), "{shown}");
        }
        // CARGO_MANIFEST_DIR, set by cargo for every test run, is long enough.
        PortalSettings::new(SecretRef::env("CARGO_MANIFEST_DIR"))
            .build()
            .unwrap();

        let e = PortalSettings::new(SecretRef::env("CONTINUITY_TEST_CSRF_NOT_SET"))
            .build()
            .unwrap_err();
        assert!(matches!(e, PortalError::CsrfKeyUnreadable(_)) && e.is_config());
        assert!(
            e.to_string().contains("env:CONTINUITY_TEST_CSRF_NOT_SET"),
            "{e}"
        );
        std::fs::write(&file, "short\n").unwrap();
        let e = s.build().unwrap_err();
        assert!(
            matches!(e, PortalError::CsrfKeyTooShort { len: 5, .. }),
            "{e}"
        );
    }
}
