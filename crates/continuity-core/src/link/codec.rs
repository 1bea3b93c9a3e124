//! The token's wire format: its constants and lengths, strict LEB128
//! varints, zigzag, the key-id syntax and strict unpadded base64url.
//!
//! Apart from the signer because none of it is keyed: each function can be
//! checked on bytes alone. Every byte string has exactly one encoding, which
//! the tamper checks of verification rely on.

use crate::domain::MAX_TENANT_ID_LEN;
/// Format version of an alert's link (the first byte of its token).
pub(super) const VERSION: u8 = 1;

/// Format version of a standing link: the alert link's layout without the
/// alert id. A distinct version rather than a reserved alert id, so that no
/// alert link (signed before standing links existed or after) can ever be
/// read as one.
pub(super) const VERSION_STANDING: u8 = 2;

/// Bytes of the HMAC-SHA256 output kept in the token (see the module docs).
pub(super) const TAG_LEN: usize = 16;
/// Longest recipient id a link can carry, in bytes.
///
/// Bounds the token length (it travels by SMS) and lets verification decode
/// into a fixed stack buffer.
pub const MAX_RECIPIENT_LEN: usize = 64;

/// Longest key id, in characters.
pub(super) const MAX_KEY_ID_LEN: usize = 16;

/// A LEB128 `u64` never needs more than this many bytes.
const MAX_VARINT_LEN: usize = 10;

/// Largest binary token the signer can produce.
pub(super) const MAX_BLOB_LEN: usize = 1 // version
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
/// The part of a token after the key id, borrowed from the decoded blob.
pub(super) struct Payload<'a> {
    pub(super) issued_at: i64,
    pub(super) ttl_secs: u64,
    pub(super) alert_id: u64,
    pub(super) tenant: &'a [u8],
    pub(super) recipient: &'a [u8],
}

impl<'a> Payload<'a> {
    /// Decodes the payload of a token of `version` ([`VERSION`] carries an
    /// alert id, [`VERSION_STANDING`] none: its `alert_id` is 0).
    pub(super) fn decode(version: u8, mut reader: Reader<'a>) -> Option<Self> {
        let issued_at = zigzag_decode(reader.varint()?);
        let ttl_secs = reader.varint()?;
        let alert_id = match version {
            VERSION => reader.varint()?,
            VERSION_STANDING => 0,
            _ => return None,
        };
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
pub(super) struct Reader<'a> {
    pub(super) rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    pub(super) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(taken)
    }

    /// LEB128, minimal encoding only: each value has exactly one token form.
    pub(super) fn varint(&mut self) -> Option<u64> {
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

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(super) const fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// Maps signed to unsigned so small magnitudes of either sign stay short;
/// times before 1970 are legal `DateTime`s and must not break signing.
pub(super) fn zigzag_encode(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn zigzag_decode(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

pub(super) fn is_valid_key_id(id: &[u8]) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(super) const BASE64URL_ALPHABET: &[u8; 64] =
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
pub(super) const fn base64url_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

pub(super) fn base64url_encode(input: &[u8]) -> String {
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
pub(super) fn base64url_decode_into(input: &[u8], out: &mut [u8]) -> Option<usize> {
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
