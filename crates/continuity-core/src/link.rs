//! Portal links: signed, expiring tokens bound to tenant, alert and recipient.
//!
//! Every alert carries, per recipient, a link such as
//! `https://portal.example/c/<token>`. The token is produced by
//! [`LinkSigner::sign`] and checked by [`LinkSigner::verify`].
//!
//! # Token format
//!
//! A token is one base64url string (RFC 4648 §5 alphabet, no padding) of this
//! binary layout:
//!
//! | field        | encoding                                               |
//! |--------------|--------------------------------------------------------|
//! | version      | 1 byte, currently `1`                                  |
//! | key id       | 1 length byte (1–16), then the ASCII id                |
//! | issued at    | unix seconds, zigzag LEB128 varint                     |
//! | ttl          | seconds, LEB128 varint                                 |
//! | alert id     | LEB128 varint                                          |
//! | tenant       | LEB128 length, then UTF-8 bytes                        |
//! | recipient    | LEB128 length, then UTF-8 bytes                        |
//! | tag          | first 16 bytes of HMAC-SHA256                          |
//!
//! The tag is computed over the domain label `continuity/link` followed by
//! every byte before the tag (version, key id, payload), so nothing in the
//! token can change without invalidating it.
//!
//! With key id `k1`, tenant `acme-corp`, recipient `ops-sms-1`, an alert id
//! below 16 384 and the default 24-hour ttl the token is 50 bytes, i.e.
//! 67 characters: short enough for an SMS. Each further key id character
//! adds about 1.3 characters; the longest possible token is
//! [`MAX_TOKEN_LEN`] characters.
//!
//! # Why a 128-bit tag is enough
//!
//! Forging a link means producing a tag for a payload the signer never
//! signed. Without the key the best attack is guessing, and every guess has to
//! be submitted to the portal (verification is online; there is nothing to
//! test offline), with a success probability of 2⁻¹²⁸ each. Collision-style
//! (birthday) attacks do not help against a keyed MAC whose key the attacker
//! lacks. Truncating HMAC output is explicitly allowed (RFC 2104 §5,
//! NIST SP 800-107) and 128 bits is the same strength as an AES-GCM tag.
//!
//! # Verification order
//!
//! Parse (`Malformed`), look up the key id (`UnknownKey`), check the tag in
//! constant time (`BadSignature`), decode the claims (`Malformed`), check the
//! time (`NotYetValid`, `Expired`), check the tenant (`WrongTenant`). The
//! signature is checked before anything inside the payload is trusted.

use std::{fmt, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{
    domain::{MAX_TENANT_ID_LEN, TenantId},
    error::{Error, Result},
};

type HmacSha256 = Hmac<Sha256>;

/// Format version written into every token.
const VERSION: u8 = 1;

/// Bytes of the HMAC-SHA256 output kept in the token (see the module docs).
const TAG_LEN: usize = 16;

/// Separates link tags from any other HMAC-SHA256 use of the same secret,
/// should an operator reuse it. Short, so a typical token still fits the
/// single SHA-256 block that follows the precomputed key block.
const MAC_CONTEXT: &[u8] = b"continuity/link";

/// Longest recipient id a link can carry, in bytes.
///
/// Bounds the token length (it travels by SMS) and lets verification decode
/// into a fixed stack buffer.
pub const MAX_RECIPIENT_LEN: usize = 64;

/// Longest key id, in characters.
const MAX_KEY_ID_LEN: usize = 16;

/// A LEB128 `u64` never needs more than this many bytes.
const MAX_VARINT_LEN: usize = 10;

/// Largest binary token the signer can produce.
const MAX_BLOB_LEN: usize = 1 // version
    + 1 + MAX_KEY_ID_LEN
    + MAX_VARINT_LEN // issued at
    + MAX_VARINT_LEN // ttl
    + MAX_VARINT_LEN // alert id
    + varint_len(MAX_TENANT_ID_LEN as u64) + MAX_TENANT_ID_LEN
    + varint_len(MAX_RECIPIENT_LEN as u64) + MAX_RECIPIENT_LEN
    + TAG_LEN;

/// Longest token string the signer can produce; anything longer is refused
/// before any decoding work is done.
pub const MAX_TOKEN_LEN: usize = base64url_len(MAX_BLOB_LEN);

/// Why a portal link was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LinkRejection {
    /// Not a token this library issued (wrong shape, bad encoding, bad version).
    Malformed,
    /// Signed under a key id this deployment does not (or no longer) know.
    UnknownKey {
        /// The key id in the token.
        key_id: String,
    },
    /// The signature does not match: the token was altered.
    BadSignature,
    /// The link's 24 hours are over.
    Expired {
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// The link is not valid yet (issued in the future: a clock problem).
    NotYetValid {
        /// When it becomes valid.
        valid_from: DateTime<Utc>,
    },
    /// The link belongs to another tenant.
    WrongTenant,
    /// The link's recipient is no longer configured for the tenant.
    UnknownRecipient,
}

impl fmt::Display for LinkRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkRejection::Malformed => f.write_str("This is not a valid continuity portal link."),
            LinkRejection::UnknownKey { .. } => f.write_str(
                "This link was signed with a key that is no longer accepted (retired). \
                 A fresh link comes with the next alert.",
            ),
            LinkRejection::BadSignature => {
                f.write_str("This link is not valid: it was altered or mistyped.")
            }
            LinkRejection::Expired { expired_at } => write!(
                f,
                "This link expired at {}. A fresh link comes with the next alert.",
                expired_at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            LinkRejection::NotYetValid { .. } => {
                f.write_str("This link is not valid yet (is a clock wrong?).")
            }
            LinkRejection::WrongTenant => f.write_str("This link belongs to another organisation."),
            LinkRejection::UnknownRecipient => {
                f.write_str("This link was sent to a recipient who no longer receives this organisation's alerts.")
            }
        }
    }
}

/// What a link is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// The tenant.
    pub tenant: TenantId,
    /// The alert the link was sent with.
    pub alert_id: u64,
    /// The recipient it was sent to (recipient id from the tenant configuration).
    pub recipient: String,
}

/// A verified link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedLink {
    /// What the link is bound to.
    pub claims: LinkClaims,
    /// The key id it was signed with.
    pub key_id: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// A signing key: an id (for rotation) and a secret.
#[derive(Clone)]
pub struct LinkKey {
    id: String,
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
    fn tag(&self, signed: &[u8]) -> [u8; TAG_LEN] {
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
    fn verifies(&self, signed: &[u8], tag: &[u8]) -> bool {
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

/// Signs and verifies portal links.
///
/// The first key signs; it and every verification key verify. Rotate by
/// making the new key current and keeping the old one as a verification key
/// for one ttl, then dropping it.
#[derive(Clone, Debug)]
pub struct LinkSigner {
    signing: LinkKey,
    verification: Vec<LinkKey>,
    ttl: Duration,
}

impl LinkSigner {
    /// Default validity of a link: 24 hours.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

    /// Shortest validity accepted by [`LinkSigner::with_ttl`]: 1 minute.
    pub const MIN_TTL: Duration = Duration::from_secs(60);

    /// Longest validity accepted by [`LinkSigner::with_ttl`]: 30 days.
    pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

    /// How far in the future a link's issue time may be before it is refused
    /// as [`LinkRejection::NotYetValid`]: the signing and verifying hosts'
    /// clocks may disagree a little.
    pub const CLOCK_SKEW_TOLERANCE: Duration = Duration::from_secs(5 * 60);

    /// A signer that signs with `current` (and verifies it).
    pub fn new(current: LinkKey) -> Self {
        LinkSigner {
            signing: current,
            verification: Vec::new(),
            ttl: Self::DEFAULT_TTL,
        }
    }

    /// Also accepts links signed with `key` (a previous key during rotation).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for field `link.key` if the signer already has
    /// a key with the same id: the id in a token must pick exactly one key.
    pub fn with_verification_key(mut self, key: LinkKey) -> Result<Self> {
        if self.keys().any(|k| k.id == key.id) {
            return Err(Error::config(
                "link.key",
                format!("duplicate key id {:?}", key.id),
            ));
        }
        self.verification.push(key);
        Ok(self)
    }

    /// Sets how long links are valid.
    ///
    /// Tokens carry whole seconds, so a fractional part is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for field `link.ttl` unless `ttl` is between
    /// [`LinkSigner::MIN_TTL`] and [`LinkSigner::MAX_TTL`].
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self> {
        let ttl = Duration::from_secs(ttl.as_secs());
        if !(Self::MIN_TTL..=Self::MAX_TTL).contains(&ttl) {
            return Err(Error::config(
                "link.ttl",
                format!("must be between 1 minute and 30 days (got {ttl:?})"),
            ));
        }
        self.ttl = ttl;
        Ok(self)
    }

    /// How long links are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The id of the key new links are signed with.
    pub fn signing_key_id(&self) -> &str {
        &self.signing.id
    }

    /// Signs `claims` as issued at `now`; returns the URL-safe token.
    ///
    /// `now` is truncated to whole seconds.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for field `link.recipient` if the recipient id
    /// is empty or longer than [`MAX_RECIPIENT_LEN`] bytes.
    pub fn sign(&self, claims: &LinkClaims, now: DateTime<Utc>) -> Result<String> {
        let recipient = claims.recipient.as_bytes();
        if recipient.is_empty() || recipient.len() > MAX_RECIPIENT_LEN {
            return Err(Error::config(
                "link.recipient",
                format!(
                    "recipient id must be 1 to {MAX_RECIPIENT_LEN} bytes to fit in a link (got {})",
                    recipient.len()
                ),
            ));
        }
        let tenant = claims.tenant.as_str().as_bytes();
        let key = &self.signing;

        let mut blob = Vec::with_capacity(MAX_BLOB_LEN);
        blob.push(VERSION);
        // At most 16: LinkKey::new checked it.
        blob.push(key.id.len() as u8);
        blob.extend_from_slice(key.id.as_bytes());
        put_varint(&mut blob, zigzag_encode(now.timestamp()));
        put_varint(&mut blob, self.ttl.as_secs());
        put_varint(&mut blob, claims.alert_id);
        put_varint(&mut blob, tenant.len() as u64);
        blob.extend_from_slice(tenant);
        put_varint(&mut blob, recipient.len() as u64);
        blob.extend_from_slice(recipient);
        let tag = key.tag(&blob);
        blob.extend_from_slice(&tag);

        Ok(base64url_encode(&blob))
    }

    /// Verifies `token` at `now`. With `tenant`, a link of another tenant is refused.
    ///
    /// # Errors
    ///
    /// [`Error::Link`] with the [`LinkRejection`] (see the module docs for the
    /// order of the checks). Any input, of any length, gives an error rather
    /// than a panic.
    pub fn verify(
        &self,
        token: &str,
        tenant: Option<&TenantId>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedLink> {
        self.check(token, tenant, now)
            .map_err(|reason| Error::Link { reason })
    }

    fn keys(&self) -> impl Iterator<Item = &LinkKey> {
        std::iter::once(&self.signing).chain(&self.verification)
    }

    fn check(
        &self,
        token: &str,
        expected_tenant: Option<&TenantId>,
        now: DateTime<Utc>,
    ) -> std::result::Result<VerifiedLink, LinkRejection> {
        use LinkRejection::Malformed;

        // Bounds decoding work and lets the blob live on the stack.
        if token.len() > MAX_TOKEN_LEN {
            return Err(Malformed);
        }
        let mut buf = [0u8; MAX_BLOB_LEN];
        let len = base64url_decode_into(token.as_bytes(), &mut buf).ok_or(Malformed)?;
        let blob = buf.get(..len).ok_or(Malformed)?;
        let signed_len = blob.len().checked_sub(TAG_LEN).ok_or(Malformed)?;
        let (signed, tag) = blob.split_at_checked(signed_len).ok_or(Malformed)?;

        let mut reader = Reader { rest: signed };
        if reader.byte() != Some(VERSION) {
            return Err(Malformed);
        }
        let key_id_len = reader.byte().ok_or(Malformed)?;
        let key_id = reader.bytes(usize::from(key_id_len)).ok_or(Malformed)?;
        // Validated before use so that UnknownKey only ever carries a short,
        // printable id, whatever the attacker sent.
        if !is_valid_key_id(key_id) {
            return Err(Malformed);
        }
        let key_id = std::str::from_utf8(key_id).map_err(|_| Malformed)?;
        let key =
            self.keys()
                .find(|k| k.id == key_id)
                .ok_or_else(|| LinkRejection::UnknownKey {
                    key_id: key_id.to_owned(),
                })?;

        if !key.verifies(signed, tag) {
            return Err(LinkRejection::BadSignature);
        }

        let payload = Payload::decode(reader).ok_or(Malformed)?;
        let issued_at = DateTime::from_timestamp(payload.issued_at, 0).ok_or(Malformed)?;
        let ttl = Duration::from_secs(payload.ttl_secs);
        if !(Self::MIN_TTL..=Self::MAX_TTL).contains(&ttl) {
            return Err(Malformed);
        }
        let ttl = TimeDelta::from_std(ttl).map_err(|_| Malformed)?;
        let expires_at = issued_at.checked_add_signed(ttl).ok_or(Malformed)?;
        let recipient = std::str::from_utf8(payload.recipient).map_err(|_| Malformed)?;
        let tenant_str = std::str::from_utf8(payload.tenant).map_err(|_| Malformed)?;
        // Reusing the caller's TenantId when it matches saves an allocation
        // on the common path.
        let tenant = match expected_tenant {
            Some(t) if t.as_str() == tenant_str => t.clone(),
            _ => TenantId::new(tenant_str).map_err(|_| Malformed)?,
        };

        let skew = TimeDelta::from_std(Self::CLOCK_SKEW_TOLERANCE).map_err(|_| Malformed)?;
        // No instant precedes the start of the DateTime range, so a link
        // issued within the tolerance of it cannot be too early.
        if let Some(valid_from) = issued_at.checked_sub_signed(skew)
            && now < valid_from
        {
            return Err(LinkRejection::NotYetValid { valid_from });
        }
        if now >= expires_at {
            return Err(LinkRejection::Expired {
                expired_at: expires_at,
            });
        }
        if let Some(expected) = expected_tenant
            && expected.as_str() != tenant.as_str()
        {
            return Err(LinkRejection::WrongTenant);
        }

        Ok(VerifiedLink {
            claims: LinkClaims {
                tenant,
                alert_id: payload.alert_id,
                recipient: recipient.to_owned(),
            },
            key_id: key.id.clone(),
            issued_at,
            expires_at,
        })
    }
}

/// The part of a token after the key id, borrowed from the decoded blob.
struct Payload<'a> {
    issued_at: i64,
    ttl_secs: u64,
    alert_id: u64,
    tenant: &'a [u8],
    recipient: &'a [u8],
}

impl<'a> Payload<'a> {
    fn decode(mut reader: Reader<'a>) -> Option<Self> {
        let issued_at = zigzag_decode(reader.varint()?);
        let ttl_secs = reader.varint()?;
        let alert_id = reader.varint()?;
        let tenant_len = usize::try_from(reader.varint()?).ok()?;
        let tenant = reader.bytes(tenant_len)?;
        let recipient_len = usize::try_from(reader.varint()?).ok()?;
        let recipient = reader.bytes(recipient_len)?;
        // Trailing bytes would mean two encodings of the same claims.
        if !reader.rest.is_empty() {
            return None;
        }
        Some(Payload {
            issued_at,
            ttl_secs,
            alert_id,
            tenant,
            recipient,
        })
    }
}

/// Consumes a byte slice front to back; every read is bounds-checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(taken)
    }

    /// LEB128, minimal encoding only: each value has exactly one token form.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let b = self.byte()?;
            // The tenth byte holds bit 63 only; more would overflow.
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                return None;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return None;
                }
                return Some(value);
            }
        }
        None
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

const fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// Maps signed to unsigned so small magnitudes of either sign stay short;
/// times before 1970 are legal `DateTime`s and must not break signing.
fn zigzag_encode(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn zigzag_decode(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn is_valid_key_id(id: &[u8]) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

const BASE64URL_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const NOT_BASE64: u8 = 0xff;

const BASE64URL_DECODE: [u8; 256] = {
    let mut table = [NOT_BASE64; 256];
    let mut i = 0;
    while i < BASE64URL_ALPHABET.len() {
        table[BASE64URL_ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Length of the unpadded base64url encoding of `n` bytes.
const fn base64url_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

fn base64url_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(base64url_len(input.len()));
    for chunk in input.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let group = u32::from(b0) << 16 | u32::from(b1) << 8 | u32::from(b2);
        // A group of n bytes needs n + 1 characters.
        for i in 0..=chunk.len() {
            let index = (group >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(BASE64URL_ALPHABET[index as usize]));
        }
    }
    out
}

/// Strict unpadded base64url decoding into `out`; returns the byte count.
///
/// Refuses padding, characters outside the alphabet, impossible lengths and
/// non-zero unused trailing bits, so that every byte string has exactly one
/// accepted encoding (a token cannot be altered without the change showing).
/// `None` also when `out` is too small.
fn base64url_decode_into(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut written = 0;
    for chunk in input.chunks(4) {
        let mut group = 0u32;
        for &c in chunk {
            let v = BASE64URL_DECODE[usize::from(c)];
            if v == NOT_BASE64 {
                return None;
            }
            group = group << 6 | u32::from(v);
        }
        let (bytes, unused_bits) = match chunk.len() {
            4 => (3, 0),
            3 => (2, 2),
            2 => (1, 4),
            _ => return None,
        };
        if group & ((1 << unused_bits) - 1) != 0 {
            return None;
        }
        let be = (group >> unused_bits).to_be_bytes();
        let src = be.get(4 - bytes..)?;
        let dst = out.get_mut(written..written + bytes)?;
        dst.copy_from_slice(src);
        written += bytes;
    }
    Some(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET_1: &[u8; 32] = b"0123456789abcdef0123456789ABCDEF";
    const SECRET_2: &[u8; 36] = b"another-secret-that-is-long-enough!!";
    const SECRET_3: &[u8; 32] = b"third-key-secret-material-000000";

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_760_000_000, 0).unwrap()
    }

    fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }

    fn key(id: &str, secret: &[u8]) -> LinkKey {
        LinkKey::new(id, secret).unwrap()
    }

    fn signer() -> LinkSigner {
        LinkSigner::new(key("k1", SECRET_1))
    }

    fn tenant(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    fn claims() -> LinkClaims {
        LinkClaims {
            tenant: tenant("acme-corp"),
            alert_id: 12_345,
            recipient: "ops-sms-1".into(),
        }
    }

    fn token() -> String {
        signer().sign(&claims(), t0()).unwrap()
    }

    fn rejection(result: Result<VerifiedLink>) -> LinkRejection {
        match result {
            Err(Error::Link { reason }) => reason,
            other => panic!("expected a link rejection, got {other:?}"),
        }
    }

    fn decode(s: &str) -> Option<Vec<u8>> {
        let mut out = vec![0u8; s.len()];
        let n = base64url_decode_into(s.as_bytes(), &mut out)?;
        out.truncate(n);
        Some(out)
    }

    /// A token with a valid tag over arbitrary bytes, for payloads the signer
    /// would never produce.
    fn seal(key: &LinkKey, signed: &[u8]) -> String {
        let mut blob = signed.to_vec();
        blob.extend_from_slice(&key.tag(signed));
        base64url_encode(&blob)
    }

    /// Version and key id `k1`, ready for a payload.
    fn header() -> Vec<u8> {
        vec![VERSION, 2, b'k', b'1']
    }

    /// A well-formed payload, as the signer writes it.
    fn payload(issued: i64, ttl: u64, alert: u64, tenant: &[u8], recipient: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        put_varint(&mut p, zigzag_encode(issued));
        put_varint(&mut p, ttl);
        put_varint(&mut p, alert);
        put_varint(&mut p, tenant.len() as u64);
        p.extend_from_slice(tenant);
        put_varint(&mut p, recipient.len() as u64);
        p.extend_from_slice(recipient);
        p
    }

    #[test]
    fn round_trip() {
        let signer = signer();
        let token = signer.sign(&claims(), t0()).unwrap();
        let link = signer.verify(&token, None, t0()).unwrap();
        assert_eq!(link.claims, claims());
        assert_eq!(link.key_id, "k1");
        assert_eq!(link.issued_at, t0());
        assert_eq!(link.expires_at, t0() + secs(24 * 3600));

        let same = signer
            .verify(&token, Some(&tenant("acme-corp")), t0())
            .unwrap();
        assert_eq!(same, link);
    }

    #[test]
    fn issued_at_is_truncated_to_whole_seconds() {
        let signer = signer();
        let now = t0() + TimeDelta::milliseconds(999);
        let link = signer
            .verify(&signer.sign(&claims(), now).unwrap(), None, now)
            .unwrap();
        assert_eq!(link.issued_at, t0());
    }

    #[test]
    fn signing_is_deterministic() {
        assert_eq!(token(), token());
    }

    #[test]
    fn token_is_short_and_url_safe() {
        let token = token();
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        // 4 header + 5 issued + 3 ttl + 2 alert + 10 tenant + 10 recipient + 16 tag.
        assert_eq!(decode(&token).unwrap().len(), 50);
        assert_eq!(token.len(), 67, "{token}");
    }

    #[test]
    fn largest_claims_round_trip_within_max_token_len() {
        let signer = LinkSigner::new(key("abcdefghijklmnop", SECRET_1))
            .with_ttl(LinkSigner::MAX_TTL)
            .unwrap();
        let claims = LinkClaims {
            tenant: tenant(&"é".repeat(MAX_TENANT_ID_LEN / 2)),
            alert_id: u64::MAX,
            recipient: "ü".repeat(MAX_RECIPIENT_LEN / 2),
        };
        let now = DateTime::from_timestamp(-62_000_000_000, 0).unwrap();
        let token = signer.sign(&claims, now).unwrap();
        assert!(token.len() <= MAX_TOKEN_LEN);
        let link = signer.verify(&token, None, now).unwrap();
        assert_eq!(link.claims, claims);
        assert_eq!(link.issued_at, now);
    }

    #[test]
    fn times_before_1970_round_trip() {
        let signer = signer();
        let now = DateTime::from_timestamp(-1_234_567, 0).unwrap();
        let link = signer
            .verify(&signer.sign(&claims(), now).unwrap(), None, now)
            .unwrap();
        assert_eq!(link.issued_at, now);
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let signer = signer();
        for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let token = signer.sign(&claims(), now).unwrap();
            for at in [DateTime::<Utc>::MIN_UTC, t0(), DateTime::<Utc>::MAX_UTC] {
                let _ = signer.verify(&token, None, at);
            }
        }
        // Its expiry is beyond what a DateTime can hold.
        let token = signer.sign(&claims(), DateTime::<Utc>::MAX_UTC).unwrap();
        assert_eq!(
            rejection(signer.verify(&token, None, DateTime::<Utc>::MAX_UTC)),
            LinkRejection::Malformed
        );
    }

    #[test]
    fn expires_exactly_at_the_24_hour_boundary() {
        let signer = signer();
        let token = token();
        let end = t0() + secs(24 * 3600);
        assert!(signer.verify(&token, None, end - secs(1)).is_ok());
        assert!(
            signer
                .verify(&token, None, end - TimeDelta::nanoseconds(1))
                .is_ok()
        );
        let expired = LinkRejection::Expired { expired_at: end };
        assert_eq!(rejection(signer.verify(&token, None, end)), expired);
        assert_eq!(
            rejection(signer.verify(&token, None, end + secs(3600 * 24 * 365))),
            expired
        );
    }

    #[test]
    fn custom_ttl_is_carried_in_the_token() {
        let short = signer().with_ttl(Duration::from_secs(60)).unwrap();
        let token = short.sign(&claims(), t0()).unwrap();
        // The verifier's own ttl does not matter: the token says.
        let verifier = signer();
        assert_eq!(
            verifier.verify(&token, None, t0()).unwrap().expires_at,
            t0() + secs(60)
        );
        assert!(matches!(
            rejection(verifier.verify(&token, None, t0() + secs(60))),
            LinkRejection::Expired { .. }
        ));
    }

    #[test]
    fn not_yet_valid_beyond_the_skew_tolerance() {
        let signer = signer();
        let token = token();
        let valid_from = t0() - secs(5 * 60);
        assert!(signer.verify(&token, None, valid_from).is_ok());
        assert_eq!(
            rejection(signer.verify(&token, None, valid_from - secs(1))),
            LinkRejection::NotYetValid { valid_from }
        );
        assert_eq!(
            rejection(signer.verify(&token, None, DateTime::<Utc>::MIN_UTC)),
            LinkRejection::NotYetValid { valid_from }
        );
    }

    #[test]
    fn wrong_tenant() {
        let signer = signer();
        let token = token();
        assert_eq!(
            rejection(signer.verify(&token, Some(&tenant("other-corp")), t0())),
            LinkRejection::WrongTenant
        );
        assert_eq!(
            rejection(signer.verify(&token, Some(&tenant("acme-corp2")), t0())),
            LinkRejection::WrongTenant
        );
    }

    #[test]
    fn time_is_checked_before_tenant() {
        let signer = signer();
        let token = token();
        let other = tenant("other-corp");
        assert!(matches!(
            rejection(signer.verify(&token, Some(&other), t0() + secs(48 * 3600))),
            LinkRejection::Expired { .. }
        ));
    }

    #[test]
    fn unknown_key() {
        let token = token();
        let other = LinkSigner::new(key("k2", SECRET_2));
        assert_eq!(
            rejection(other.verify(&token, None, t0())),
            LinkRejection::UnknownKey {
                key_id: "k1".into()
            }
        );
    }

    #[test]
    fn same_key_id_with_another_secret_is_a_bad_signature() {
        let token = token();
        let impostor = LinkSigner::new(key("k1", SECRET_2));
        assert_eq!(
            rejection(impostor.verify(&token, None, t0())),
            LinkRejection::BadSignature
        );
    }

    #[test]
    fn rotation_old_key_verifies_while_configured() {
        let old = signer();
        let old_token = old.sign(&claims(), t0()).unwrap();

        let rotated = LinkSigner::new(key("k2", SECRET_2))
            .with_verification_key(key("k1", SECRET_1))
            .unwrap();
        assert_eq!(rotated.signing_key_id(), "k2");
        assert_eq!(rotated.verify(&old_token, None, t0()).unwrap().key_id, "k1");
        let new_token = rotated.sign(&claims(), t0()).unwrap();
        assert_eq!(rotated.verify(&new_token, None, t0()).unwrap().key_id, "k2");
        // Servers not yet rotated refuse the new key.
        assert!(matches!(
            rejection(old.verify(&new_token, None, t0())),
            LinkRejection::UnknownKey { .. }
        ));

        let retired = LinkSigner::new(key("k2", SECRET_2));
        assert_eq!(
            rejection(retired.verify(&old_token, None, t0())),
            LinkRejection::UnknownKey {
                key_id: "k1".into()
            }
        );
        assert!(retired.verify(&new_token, None, t0()).is_ok());
    }

    #[test]
    fn several_verification_keys() {
        let s3 = LinkSigner::new(key("k3", SECRET_3));
        let t3 = s3.sign(&claims(), t0()).unwrap();
        let t1 = token();
        let all = LinkSigner::new(key("k2", SECRET_2))
            .with_verification_key(key("k1", SECRET_1))
            .unwrap()
            .with_verification_key(key("k3", SECRET_3))
            .unwrap();
        assert_eq!(all.verify(&t1, None, t0()).unwrap().key_id, "k1");
        assert_eq!(all.verify(&t3, None, t0()).unwrap().key_id, "k3");
    }

    #[test]
    fn duplicate_key_ids_are_refused() {
        let err = signer()
            .with_verification_key(key("k1", SECRET_2))
            .unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig { field, .. } if field == "link.key"));
        let err = signer()
            .with_verification_key(key("k2", SECRET_2))
            .unwrap()
            .with_verification_key(key("k2", SECRET_3))
            .unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig { field, .. } if field == "link.key"));
    }

    #[test]
    fn key_validation() {
        let bad_ids = [
            String::new(),
            "a".repeat(17),
            "k.1".into(),
            "k 1".into(),
            "ké".into(),
            "k/1".into(),
            "k=".into(),
            "k\0".into(),
        ];
        for id in bad_ids {
            let err = LinkKey::new(id.clone(), SECRET_1.to_vec()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidConfig { field, .. } if field == "link.key"),
                "{id:?}: {err}"
            );
        }
        for id in ["a", "Z", "0", "_", "-", "k2025-01_A", &"x".repeat(16)] {
            assert_eq!(LinkKey::new(id, SECRET_1.to_vec()).unwrap().id(), id);
        }
        let err = LinkKey::new("k1", vec![7u8; 31]).unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig { field, .. } if field == "link.key"));
        assert!(LinkKey::new("k1", vec![7u8; 32]).is_ok());
        assert!(LinkKey::new("k1", vec![7u8; 1000]).is_ok());
    }

    #[test]
    fn ttl_validation() {
        for bad in [0, 1, 59, 30 * 24 * 3600 + 1, u64::MAX] {
            let err = signer().with_ttl(Duration::from_secs(bad)).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidConfig { field, .. } if field == "link.ttl"),
                "{bad}"
            );
        }
        assert!(signer().with_ttl(Duration::from_millis(59_999)).is_err());
        for good in [60, 3600, 30 * 24 * 3600] {
            let ttl = Duration::from_secs(good);
            assert_eq!(signer().with_ttl(ttl).unwrap().ttl(), ttl);
        }
        let fractional = signer().with_ttl(Duration::from_millis(90_500)).unwrap();
        assert_eq!(fractional.ttl(), Duration::from_secs(90));
        assert_eq!(signer().ttl(), LinkSigner::DEFAULT_TTL);
    }

    #[test]
    fn recipient_validation() {
        let signer = signer();
        for bad in [String::new(), "r".repeat(MAX_RECIPIENT_LEN + 1)] {
            let claims = LinkClaims {
                recipient: bad,
                ..claims()
            };
            let err = signer.sign(&claims, t0()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidConfig { field, .. } if field == "link.recipient")
            );
        }
        let claims = LinkClaims {
            recipient: "r".repeat(MAX_RECIPIENT_LEN),
            ..claims()
        };
        let token = signer.sign(&claims, t0()).unwrap();
        assert_eq!(signer.verify(&token, None, t0()).unwrap().claims, claims);
    }

    #[test]
    fn every_character_substitution_is_refused() {
        let signer = signer();
        let token = token();
        let chars: Vec<char> = token.chars().collect();
        for i in 0..chars.len() {
            for &c in BASE64URL_ALPHABET.iter().chain(b"=+/.~ \0") {
                let c = char::from(c);
                if c == chars[i] {
                    continue;
                }
                let mut altered = chars.clone();
                altered[i] = c;
                let altered: String = altered.into_iter().collect();
                assert!(
                    signer.verify(&altered, None, t0()).is_err(),
                    "position {i} -> {c:?} accepted: {altered}"
                );
            }
        }
    }

    #[test]
    fn every_bit_flip_is_refused_with_the_expected_reason() {
        let signer = signer();
        let blob = decode(&token()).unwrap();
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut altered = blob.clone();
                altered[i] ^= 1 << bit;
                let reason = rejection(signer.verify(&base64url_encode(&altered), None, t0()));
                match i {
                    // Version.
                    0 => assert_eq!(reason, LinkRejection::Malformed),
                    // Key id length and key id.
                    1..=3 => assert!(
                        matches!(
                            reason,
                            LinkRejection::Malformed | LinkRejection::UnknownKey { .. }
                        ),
                        "byte {i} bit {bit}: {reason:?}"
                    ),
                    // Payload and tag.
                    _ => assert_eq!(reason, LinkRejection::BadSignature, "byte {i} bit {bit}"),
                }
            }
        }
    }

    #[test]
    fn truncated_tokens_are_refused() {
        let signer = signer();
        let token = token();
        for n in 0..token.len() {
            let reason = rejection(signer.verify(&token[..n], None, t0()));
            assert!(
                matches!(
                    reason,
                    LinkRejection::Malformed | LinkRejection::BadSignature
                ),
                "{n}: {reason:?}"
            );
        }
    }

    #[test]
    fn extra_characters_are_refused() {
        let signer = signer();
        let token = token();
        for &c in BASE64URL_ALPHABET.iter().chain(b"=.?/ \n") {
            let c = char::from(c);
            for altered in [
                format!("{token}{c}"),
                format!("{c}{token}"),
                format!("{token}{c}{c}"),
                format!("{token}{c}{c}{c}{c}"),
            ] {
                assert!(signer.verify(&altered, None, t0()).is_err(), "{altered}");
            }
        }
        assert!(
            signer
                .verify(&format!("{token}{token}"), None, t0())
                .is_err()
        );
    }

    #[test]
    fn empty_huge_and_non_ascii_inputs_are_malformed() {
        let signer = signer();
        let token = token();
        let huge_valid_alphabet = "A".repeat(10_000_000);
        let huge_repeated = token.repeat(100_000);
        let just_over = "A".repeat(MAX_TOKEN_LEN + 1);
        let inputs: Vec<&str> = vec![
            "",
            "A",
            "AA",
            "====",
            "v1.k1.abc.def",
            "https://portal.example/c/",
            "é",
            "日本語のトークン",
            "\u{0}\u{0}\u{0}\u{0}",
            "\u{feff}",
            &huge_valid_alphabet,
            &huge_repeated,
            &just_over,
        ];
        for input in inputs {
            let shown: String = input.chars().take(40).collect();
            assert_eq!(
                rejection(signer.verify(input, None, t0())),
                LinkRejection::Malformed,
                "{shown:?}"
            );
        }
        // A non-ASCII character in place of a valid one, and one appended.
        let mut replaced = token.clone();
        replaced.replace_range(10..11, "é");
        assert_eq!(
            rejection(signer.verify(&replaced, None, t0())),
            LinkRejection::Malformed
        );
        assert_eq!(
            rejection(signer.verify(&format!("{token}€"), None, t0())),
            LinkRejection::Malformed
        );
    }

    #[test]
    fn padded_token_is_malformed() {
        let signer = signer();
        let token = token();
        // 67 characters: standard padding would add one '='.
        assert_eq!(
            rejection(signer.verify(&format!("{token}="), None, t0())),
            LinkRejection::Malformed
        );
    }

    #[test]
    fn unsupported_version_is_malformed_even_with_a_valid_tag() {
        let signer = signer();
        let mut blob = decode(&token()).unwrap();
        blob.truncate(blob.len() - TAG_LEN);
        blob[0] = 2;
        let sealed = seal(&signer.signing, &blob);
        assert_eq!(
            rejection(signer.verify(&sealed, None, t0())),
            LinkRejection::Malformed
        );
    }

    #[test]
    fn invalid_key_ids_in_tokens_are_malformed_not_echoed() {
        let signer = signer();
        for id in [&b""[..], b"k.1", b"k\xff", &[b'a'; 17]] {
            let mut blob = vec![VERSION, id.len() as u8];
            blob.extend_from_slice(id);
            blob.extend_from_slice(&payload(1, 3600, 1, b"t", b"r"));
            let sealed = seal(&signer.signing, &blob);
            assert_eq!(
                rejection(signer.verify(&sealed, None, t0())),
                LinkRejection::Malformed,
                "{id:?}"
            );
        }
    }

    #[test]
    fn validly_signed_but_undecodable_payloads_are_malformed() {
        let signer = signer();
        let k = &signer.signing;
        let now = t0();
        let ts = now.timestamp();
        let good = payload(ts, 3600, 7, b"acme-corp", b"ops");
        let sealed = seal(k, &[header(), good.clone()].concat());
        assert!(signer.verify(&sealed, None, now).is_ok(), "control case");

        let mut overlong_alert = Vec::new();
        put_varint(&mut overlong_alert, zigzag_encode(ts));
        put_varint(&mut overlong_alert, 3600);
        overlong_alert.extend_from_slice(&[0x87, 0x00]); // 7, not minimal
        overlong_alert.extend_from_slice(&[9]);
        overlong_alert.extend_from_slice(b"acme-corp");
        overlong_alert.extend_from_slice(&[3]);
        overlong_alert.extend_from_slice(b"ops");

        let payloads: Vec<Vec<u8>> = vec![
            vec![],
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
            overlong_alert,
            vec![0xff; 11],
            payload(ts, 3600, 7, b"", b"ops"),
            payload(ts, 3600, 7, b"acme corp", b"ops"),
            payload(ts, 3600, 7, &[b'a'; MAX_TENANT_ID_LEN + 1], b"ops"),
            payload(ts, 3600, 7, b"acme-\xffcorp", b"ops"),
            payload(ts, 3600, 7, b"acme-corp", b"\xc3"),
            payload(ts, 59, 7, b"acme-corp", b"ops"),
            payload(ts, 30 * 24 * 3600 + 1, 7, b"acme-corp", b"ops"),
            payload(i64::MAX, 3600, 7, b"acme-corp", b"ops"),
            payload(i64::MIN, 3600, 7, b"acme-corp", b"ops"),
        ];
        for (i, p) in payloads.into_iter().enumerate() {
            let sealed = seal(k, &[header(), p].concat());
            assert_eq!(
                rejection(signer.verify(&sealed, None, now)),
                LinkRejection::Malformed,
                "payload {i}"
            );
        }
    }

    #[test]
    fn short_tag_is_refused() {
        let signer = signer();
        assert!(!signer.signing.verifies(b"x", &[]));
        assert!(!signer.signing.verifies(b"x", &[0; 15]));
        assert!(!signer.signing.verifies(b"x", &[0; 32]));
        let tag = signer.signing.tag(b"x");
        assert!(signer.signing.verifies(b"x", &tag));
    }

    #[test]
    fn secrets_never_appear_in_debug() {
        let secret = "TOP-SECRET-do-not-log-0123456789";
        let k = LinkKey::new("k1", secret).unwrap();
        let s = LinkSigner::new(k.clone())
            .with_verification_key(LinkKey::new("k0", secret.repeat(2)).unwrap())
            .unwrap();
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        let bytes_debug = format!("{:?}", secret.as_bytes());
        for shown in [
            format!("{k:?}"),
            format!("{k:#?}"),
            format!("{s:?}"),
            format!("{s:#?}"),
        ] {
            assert!(!shown.contains("TOP-SECRET"), "{shown}");
            assert!(!shown.contains(&hex), "{shown}");
            assert!(!shown.contains(&bytes_debug), "{shown}");
            assert!(shown.contains("k1"), "{shown}");
        }
        let err = LinkKey::new("k1", &secret.as_bytes()[..20]).unwrap_err();
        assert!(!err.to_string().contains("TOP-SECRET"));
    }

    #[test]
    fn rejection_messages() {
        let at: DateTime<Utc> = "2025-10-10T09:06:40Z".parse().unwrap();
        let cases = [
            (
                LinkRejection::Expired { expired_at: at },
                "This link expired at 2025-10-10 09:06:40 UTC. A fresh link comes with the next alert.",
            ),
            (
                LinkRejection::UnknownKey {
                    key_id: "k0".into(),
                },
                "This link was signed with a key that is no longer accepted (retired). A fresh link comes with the next alert.",
            ),
            (
                LinkRejection::BadSignature,
                "This link is not valid: it was altered or mistyped.",
            ),
            (
                LinkRejection::Malformed,
                "This is not a valid continuity portal link.",
            ),
            (
                LinkRejection::NotYetValid { valid_from: at },
                "This link is not valid yet (is a clock wrong?).",
            ),
            (
                LinkRejection::WrongTenant,
                "This link belongs to another organisation.",
            ),
        ];
        for (rejection, message) in cases {
            assert_eq!(rejection.to_string(), message);
            assert_eq!(
                Error::Link {
                    reason: rejection.clone()
                }
                .to_string(),
                format!("portal link refused: {message}")
            );
            let json = serde_json::to_string(&rejection).unwrap();
            assert_eq!(
                serde_json::from_str::<LinkRejection>(&json).unwrap(),
                rejection
            );
        }
    }

    #[test]
    fn varint_is_strict() {
        for v in [0, 1, 127, 128, 300, 86_400, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v));
            let mut r = Reader { rest: &buf };
            assert_eq!(r.varint(), Some(v));
            assert!(r.rest.is_empty());
        }
        let refused: [&[u8]; 6] = [
            &[],
            &[0x80],
            // Not minimal: 0 with a continuation byte.
            &[0x80, 0x00],
            &[0x81, 0x80, 0x00],
            // Would overflow 64 bits.
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[0x80; 11],
        ];
        for bytes in refused {
            assert_eq!(Reader { rest: bytes }.varint(), None, "{bytes:?}");
        }
        let mut r = Reader {
            rest: &[0x7f, 0x00],
        };
        assert_eq!(r.varint(), Some(0x7f));
        assert_eq!(r.rest, [0x00]);
    }

    #[test]
    fn zigzag_round_trips() {
        for v in [0, 1, -1, 63, -64, i64::MAX, i64::MIN, 1_760_000_000] {
            assert_eq!(zigzag_decode(zigzag_encode(v)), v);
        }
        assert_eq!(zigzag_encode(-1), 1);
        assert_eq!(zigzag_encode(1), 2);
    }

    #[test]
    fn base64url_known_vectors() {
        // RFC 4648 §10, without padding.
        let vectors = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64url_encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64url_encode(&[0xfb, 0xff, 0xbf]), "-_-_");
        assert_eq!(decode("-_-_").unwrap(), [0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn base64url_is_strict() {
        for bad in [
            "Zg==", "Zg=", "Zm8=", "A", "Zm9vY", "+/+/", "Zm 9", "Zm\n9v", "Zm9v\0",
            "Zh",  // 'h' sets unused bits
            "Zm9", // '9' sets unused bits
            "Zm9vYmF=",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        let mut small = [0u8; 2];
        assert_eq!(base64url_decode_into(b"Zm9v", &mut small), None);
    }

    fn arb_tenant() -> impl Strategy<Value = TenantId> {
        "[!-~]{1,128}".prop_map(|s| TenantId::new(s).unwrap())
    }

    proptest! {
        #[test]
        fn prop_base64url_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let encoded = base64url_encode(&bytes);
            prop_assert_eq!(encoded.len(), base64url_len(bytes.len()));
            prop_assert_eq!(decode(&encoded), Some(bytes));
        }

        #[test]
        fn prop_base64url_decode_then_encode_is_identity(s in "[A-Za-z0-9_-]{0,64}") {
            if let Some(bytes) = decode(&s) {
                prop_assert_eq!(base64url_encode(&bytes), s);
            }
        }

        #[test]
        fn prop_random_strings_never_panic(s in any::<String>()) {
            let signer = signer();
            prop_assert!(signer.verify(&s, None, t0()).is_err());
            prop_assert!(signer.verify(&s, Some(&tenant("acme-corp")), t0()).is_err());
        }

        #[test]
        fn prop_random_alphabet_strings_never_panic(s in "[A-Za-z0-9_-]{0,400}") {
            prop_assert!(signer().verify(&s, None, t0()).is_err());
        }

        #[test]
        fn prop_random_bytes_behind_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            let signer = signer();
            let blob = [header(), tail].concat();
            // Unsigned: must be refused. Sealed: must not panic, whatever it decodes to.
            prop_assert!(signer.verify(&base64url_encode(&blob), None, t0()).is_err());
            let _ = signer.verify(&seal(&signer.signing, &blob), None, t0());
        }

        #[test]
        fn prop_any_single_character_change_is_refused(
            index in any::<proptest::sample::Index>(),
            replacement in any::<char>(),
            alert_id in any::<u64>(),
        ) {
            let signer = signer();
            let claims = LinkClaims { alert_id, ..claims() };
            let token = signer.sign(&claims, t0()).unwrap();
            let mut chars: Vec<char> = token.chars().collect();
            let i = index.index(chars.len());
            prop_assume!(chars[i] != replacement);
            chars[i] = replacement;
            let altered: String = chars.into_iter().collect();
            prop_assert!(signer.verify(&altered, None, t0()).is_err());
        }

        #[test]
        fn prop_any_single_alphabet_change_is_refused(
            index in any::<proptest::sample::Index>(),
            replacement in proptest::sample::select(BASE64URL_ALPHABET.to_vec()),
        ) {
            let signer = signer();
            let token = token();
            let mut bytes = token.into_bytes();
            let i = index.index(bytes.len());
            prop_assume!(bytes[i] != replacement);
            bytes[i] = replacement;
            let altered = String::from_utf8(bytes).unwrap();
            prop_assert!(signer.verify(&altered, None, t0()).is_err());
        }

        #[test]
        fn prop_claims_round_trip(
            tenant in arb_tenant(),
            alert_id in any::<u64>(),
            recipient in "\\PC{1,16}",
            issued in -100_000_000_000i64..100_000_000_000,
            ttl in 60u64..=30 * 24 * 3600,
            age in 0u64..=30 * 24 * 3600,
        ) {
            prop_assume!(recipient.len() <= MAX_RECIPIENT_LEN);
            let signer = signer().with_ttl(Duration::from_secs(ttl)).unwrap();
            let claims = LinkClaims { tenant: tenant.clone(), alert_id, recipient };
            let now = DateTime::from_timestamp(issued, 0).unwrap();
            let token = signer.sign(&claims, now).unwrap();
            prop_assert!(token.len() <= MAX_TOKEN_LEN);
            let at = now + secs(age as i64);
            let result = signer.verify(&token, Some(&tenant), at);
            if age < ttl {
                let link = result.unwrap();
                prop_assert_eq!(link.claims, claims);
                prop_assert_eq!(link.expires_at, now + secs(ttl as i64));
            } else {
                prop_assert_eq!(
                    rejection(result),
                    LinkRejection::Expired { expired_at: now + secs(ttl as i64) }
                );
            }
        }
    }
}
