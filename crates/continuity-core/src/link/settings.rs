//! [`LinkSettings`]: the link keys and ttl as configuration, built into a
//! [`LinkSigner`].

use std::time::Duration;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{LinkKey, LinkSigner};
use crate::{
    duration::serde_duration,
    error::{Error, Result},
    secret::SecretRef,
};

/// The portal links' keys and validity, as configured:
///
/// ```toml
/// ttl = "24h"                                  # default 24 h, 1 min to 30 days
/// [[keys]]                                     # the first signs
/// id = "k2"
/// secret = { file = "/run/secrets/link-k2" }   # at least 32 bytes
/// [[keys]]                                     # the others only verify
/// id = "k1"
/// secret = { env = "CONTINUITY_LINK_K1" }
/// ```
///
/// Rotate by putting a new key first and keeping the previous one after it
/// for one ttl, then dropping it: links already sent keep working.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSettings {
    /// The keys, the signing key first (at least one; ids unique).
    pub keys: Vec<LinkKeySettings>,
    /// How long a link is valid (default [`LinkSigner::DEFAULT_TTL`], 24 h).
    #[serde(default = "default_ttl", with = "serde_duration")]
    pub ttl: Duration,
}

/// One link key: its id (written into every link it signs) and where its
/// secret is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkKeySettings {
    /// 1 to [`LinkKey::MAX_ID_LEN`] characters of `A-Za-z0-9_-`.
    pub id: String,
    /// At least [`LinkKey::MIN_SECRET_LEN`] bytes: the variable's value or
    /// the file's bytes (without one trailing newline), used as they are.
    pub secret: SecretRef,
}

fn default_ttl() -> Duration {
    LinkSigner::DEFAULT_TTL
}

impl LinkSettings {
    /// Settings with `keys` (the first signs) and the default ttl.
    pub fn new(keys: Vec<LinkKeySettings>) -> Self {
        LinkSettings {
            keys,
            ttl: default_ttl(),
        }
    }

    /// Reads the secrets and builds the signer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field (`link.keys[1].secret`,
    /// `link.ttl`, ...): no key, a secret that cannot be read or is too
    /// short, a bad or duplicate id, a ttl out of range.
    pub fn build(&self) -> Result<LinkSigner> {
        let mut keys = self.keys.iter().enumerate().map(|(i, k)| {
            let field = |name: &str| format!("link.keys[{i}].{name}");
            let secret = k
                .secret
                .resolve_bytes()
                .map_err(|e| Error::config(field("secret"), e.to_string()))?;
            // LinkKey's reason says whether the id or the secret is wrong.
            LinkKey::new(k.id.clone(), secret.expose_secret()).map_err(|e| match e {
                Error::InvalidConfig { reason, .. } => {
                    Error::config(format!("link.keys[{i}]"), reason)
                }
                e => e,
            })
        });
        let first = keys.next().ok_or_else(|| {
            Error::config("link.keys", "at least one key is needed to sign links")
        })??;
        let mut signer = LinkSigner::new(first);
        for key in keys {
            signer = signer.with_verification_key(key?)?;
        }
        signer.with_ttl(self.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::LinkClaims;

    const TOML: &str = r#"
        ttl = "12h"
        [[keys]]
        id = "k2"
        secret = { inline = "0123456789abcdef0123456789abcdef" }
        [[keys]]
        id = "k1"
        secret = { env = "CONTINUITY_TEST_LINK_KEY_NOT_SET" }
    "#;

    #[test]
    fn reads_keys_in_order_and_the_ttl() {
        let s: LinkSettings = toml::from_str(TOML).unwrap();
        assert_eq!(s.ttl, Duration::from_secs(12 * 3600));
        assert_eq!(s.keys[0].id, "k2");
        assert_eq!(
            s.keys[1].secret,
            SecretRef::env("CONTINUITY_TEST_LINK_KEY_NOT_SET")
        );
        let debug = format!("{s:?}");
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }

    #[test]
    fn the_default_ttl_is_the_signers() {
        let s: LinkSettings =
            toml::from_str("[[keys]]\nid = \"k1\"\nsecret = { env = \"X\" }").unwrap();
        assert_eq!(s.ttl, LinkSigner::DEFAULT_TTL);
        assert_eq!(s, LinkSettings::new(s.keys.clone()));
    }

    #[test]
    fn refuses_unknown_fields_by_name() {
        let e = toml::from_str::<LinkSettings>("keys = []\nttl_s = 5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `ttl_s`"), "{e}");
        let e = toml::from_str::<LinkSettings>("[[keys]]\nid = \"k\"\nkey = { env = \"X\" }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `key`"), "{e}");
    }

    #[test]
    fn builds_a_signer_that_verifies_with_every_key() {
        let dir = std::env::temp_dir().join(format!("continuity-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("k1");
        std::fs::write(&old, "fedcba9876543210fedcba9876543210\n").unwrap();
        let mut s: LinkSettings = toml::from_str(TOML).unwrap();
        s.keys[1].secret = SecretRef::file(&old);
        let signer = s.build().unwrap();
        assert_eq!(signer.signing_key_id(), "k2");
        assert_eq!(signer.ttl(), Duration::from_secs(12 * 3600));

        // A link signed with the old key (from the file, newline removed) verifies.
        let previous = LinkSettings::new(vec![s.keys[1].clone()]).build().unwrap();
        let now = "2026-03-02T08:00:00Z".parse().unwrap();
        let tenant = crate::TenantId::new("acme").unwrap();
        let claims = LinkClaims {
            tenant: tenant.clone(),
            alert_id: 7,
            recipient: "ops".into(),
        };
        let link = previous.sign(&claims, now).unwrap();
        assert_eq!(
            signer.verify(&link, Some(&tenant), now).unwrap().key_id,
            "k1"
        );
    }

    #[test]
    fn build_errors_name_the_field() {
        let s: LinkSettings = toml::from_str(TOML).unwrap();
        let e = s.build().unwrap_err().to_string();
        assert!(
            e.contains("link.keys[1].secret")
                && e.contains("CONTINUITY_TEST_LINK_KEY_NOT_SET")
                && e.contains("not set"),
            "{e}"
        );
        let short = LinkSettings::new(vec![LinkKeySettings {
            id: "k1".into(),
            secret: SecretRef::inline("short"),
        }]);
        let e = short.build().unwrap_err().to_string();
        assert!(
            e.contains("link.keys[0]: secret of key") && e.contains("at least 32 bytes"),
            "{e}"
        );
        let e = LinkSettings::new(vec![]).build().unwrap_err().to_string();
        assert!(e.contains("link.keys"), "{e}");
        let mut twice: LinkSettings = toml::from_str(TOML).unwrap();
        twice.keys[1] = twice.keys[0].clone();
        assert!(
            twice
                .build()
                .unwrap_err()
                .to_string()
                .contains("duplicate key id")
        );
        let mut long: LinkSettings = toml::from_str(TOML).unwrap();
        long.keys.truncate(1);
        long.ttl = Duration::from_secs(90 * 86_400);
        assert!(long.build().unwrap_err().to_string().contains("link.ttl"));
    }
}
