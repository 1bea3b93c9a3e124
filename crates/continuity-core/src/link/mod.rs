//! Portal links: signed, expiring tokens bound to tenant, alert and recipient.
//! Their keys and ttl are configured with [`LinkSettings`].
//!
//! Every alert carries, per recipient, a link such as
//! `https://portal.example/c/<token>`. The token is produced by
//! [`LinkSigner::sign`] and checked by [`LinkSigner::verify`].
//!
//! A *standing link* opens the portal without an alert, so that an
//! administrator can plan maintenance at any time: the embedder's admin
//! console issues one with [`Monitor::standing_link`](crate::Monitor::standing_link)
//! (or [`LinkSigner::sign_standing`]) for a tenant and a person, valid for
//! 24 hours by default and at most [`LinkSigner::MAX_STANDING_TTL`] (7 days).
//! It verifies like an alert's link ([`VerifiedLink::origin`] is
//! [`LinkOrigin::Standing`]), acts like one, and the audit trail records the
//! action as [`Actor::StandingLink`](crate::machine::Actor::StandingLink).
//!
//! # Token format
//!
//! A token is one base64url string (RFC 4648 §5 alphabet, no padding) of this
//! binary layout:
//!
//! | field        | encoding                                               |
//! |--------------|--------------------------------------------------------|
//! | version      | 1 byte: `1` for an alert's link, `2` for a standing one |
//! | key id       | 1 length byte (1–16), then the ASCII id                |
//! | issued at    | unix seconds, zigzag LEB128 varint                     |
//! | ttl          | seconds, LEB128 varint                                 |
//! | alert id     | LEB128 varint (version `1` only)                       |
//! | tenant       | LEB128 length, then UTF-8 bytes                        |
//! | recipient    | LEB128 length, then UTF-8 bytes (standing: issued to)  |
//! | tag          | first 16 bytes of HMAC-SHA256                          |
//!
//! The tag is computed over the domain label `continuity/link` followed by
//! every byte before the tag (version, key id, payload), so nothing in the
//! token can change without invalidating it; in particular an alert's link
//! cannot be turned into a standing one (or back). Version `1` is the format
//! alert links have always had: links already sent keep verifying. A
//! standing link's ttl must lie between [`LinkSigner::MIN_TTL`] and
//! [`LinkSigner::MAX_STANDING_TTL`], an alert link's up to
//! [`LinkSigner::MAX_TTL`].
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
mod claims;
mod codec;
mod key;
mod settings;
mod signer;
#[cfg(test)]
mod tests;

pub use claims::{LinkClaims, LinkOrigin, LinkRejection, StandingLink, VerifiedLink};
pub use codec::{MAX_RECIPIENT_LEN, MAX_TOKEN_LEN};
pub use key::LinkKey;
pub use settings::{LinkKeySettings, LinkSettings};
pub use signer::LinkSigner;
