//! [`LinkKey`]: a key id and its keyed HMAC-SHA256 state, which computes a
//! token's truncated tag and checks one in constant time.
//!
//! On its own so that the handling of the secret (never kept, never printed)
//! can be reviewed in one small file.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::codec::{MAX_KEY_ID_LEN, TAG_LEN, is_valid_key_id};
use crate::error::{Error, Result};
type HmacSha256 = Hmac<Sha256>;
/// Separates link tags from any other HMAC-SHA256 use of the same secret,
/// should an operator reuse it. Short, so a typical token still fits the
/// single SHA-256 block that follows the precomputed key block.
const MAC_CONTEXT: &[u8] = b"continuity/link";
/// A signing key: an id (for rotation) and a secret.
#[derive(Clone)]
pub struct LinkKey {
    pub(super) id: String,
    /// HMAC state already keyed and fed the domain label; cloning it per
    /// token skips re-deriving the inner and outer pads (two SHA-256 blocks).
    /// The raw secret is not kept: this state is all that is needed.
    mac: HmacSha256,
}

impl LinkKey {
    /// Shortest secret accepted, in bytes (the HMAC-SHA256 output size).
    pub const MIN_SECRET_LEN: usize = 32;

    /// Longest key id accepted, in characters.
    pub const MAX_ID_LEN: usize = MAX_KEY_ID_LEN;

    /// A key with `id` (1–16 characters of `A-Za-z0-9_-`) and a secret of at least 32 bytes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for field `link.key` if the id or the secret
    /// is not acceptable. The message never contains the secret.
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Self> {
        let id = id.into();
        let secret = secret.into();
        if !is_valid_key_id(id.as_bytes()) {
            // The id is not echoed: it may be arbitrary (huge, control characters).
            return Err(Error::config(
                "link.key",
                format!(
                    "key id must be 1 to {MAX_KEY_ID_LEN} characters of A-Z a-z 0-9 _ - \
                     (got {} bytes)",
                    id.len()
                ),
            ));
        }
        if secret.len() < Self::MIN_SECRET_LEN {
            return Err(Error::config(
                "link.key",
                format!(
                    "secret of key {id:?} must be at least {} bytes (got {})",
                    Self::MIN_SECRET_LEN,
                    secret.len()
                ),
            ));
        }
        let mut mac = HmacSha256::new_from_slice(&secret).map_err(|_| {
            Error::config(
                "link.key",
                format!("secret of key {id:?} cannot key HMAC-SHA256"),
            )
        })?;
        mac.update(MAC_CONTEXT);
        Ok(LinkKey { id, mac })
    }

    /// The key id, written into every token signed with this key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The full HMAC-SHA256 of `signed` (domain label included).
    pub(super) fn tag(&self, signed: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(signed);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        for (dst, src) in tag.iter_mut().zip(full.iter()) {
            *dst = *src;
        }
        tag
    }

    /// Constant-time check of a truncated tag.
    pub(super) fn verifies(&self, signed: &[u8], tag: &[u8]) -> bool {
        if tag.len() != TAG_LEN {
            return false;
        }
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.verify_truncated_left(tag).is_ok()
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}
