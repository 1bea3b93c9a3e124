//! [`LinkSigner`]: signs claims into tokens and verifies tokens, with key
//! rotation, a configurable ttl and the check order of the
//! [module docs](super).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::{
    LinkClaims, LinkKey, LinkOrigin, LinkRejection, VerifiedLink,
    codec::{
        MAX_BLOB_LEN, MAX_RECIPIENT_LEN, MAX_TOKEN_LEN, Payload, Reader, TAG_LEN, VERSION,
        VERSION_STANDING, base64url_decode_into, base64url_encode, is_valid_key_id, put_varint,
        zigzag_encode,
    },
};
use crate::{
    domain::TenantId,
    error::{Error, Result},
};
/// Signs and verifies portal links.
///
/// The first key signs; it and every verification key verify. Rotate by
/// making the new key current and keeping the old one as a verification key
/// for one ttl, then dropping it.
#[derive(Clone, Debug)]
pub struct LinkSigner {
    pub(super) signing: LinkKey,
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

    /// Default validity of a standing link ([`LinkSigner::sign_standing`]): 24 hours.
    pub const DEFAULT_STANDING_TTL: Duration = Duration::from_secs(24 * 3600);

    /// Longest validity of a standing link: 7 days. A standing link opens
    /// the portal without any alert behind it, so it is kept shorter than
    /// the longest alert link; scheduling maintenance weeks ahead needs the
    /// link only on the day the event is planned, not until it starts.
    pub const MAX_STANDING_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

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
        check_recipient("link.recipient", "recipient id", &claims.recipient)?;
        Ok(self.seal(
            VERSION,
            Some(claims.alert_id),
            &claims.tenant,
            &claims.recipient,
            self.ttl,
            now,
        ))
    }

    /// Signs a standing link for `tenant`, issued at `now` to `issued_to`
    /// (who the embedder's admin console gives it to, as it names them: it
    /// need not be a configured recipient), valid for `valid_for` (whole
    /// seconds, between [`LinkSigner::MIN_TTL`] and
    /// [`LinkSigner::MAX_STANDING_TTL`]; [`LinkSigner::DEFAULT_STANDING_TTL`]
    /// is the usual choice). It verifies like an alert's link, with
    /// [`LinkOrigin::Standing`] and alert id 0.
    ///
    /// A standing link opens the portal without an alert, for planned
    /// maintenance; [`Monitor::standing_link`](crate::Monitor::standing_link)
    /// also checks the tenant and returns the full URL.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for field `link.issued_to` if `issued_to` is
    /// empty or longer than [`MAX_RECIPIENT_LEN`] bytes, for `link.valid_for`
    /// if `valid_for` is out of range.
    pub fn sign_standing(
        &self,
        tenant: &TenantId,
        issued_to: &str,
        valid_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<String> {
        check_recipient(
            "link.issued_to",
            "who a standing link is issued to",
            issued_to,
        )?;
        let ttl = Duration::from_secs(valid_for.as_secs());
        if !(Self::MIN_TTL..=Self::MAX_STANDING_TTL).contains(&ttl) {
            return Err(Error::config(
                "link.valid_for",
                format!("a standing link must be valid for 1 minute to 7 days (got {valid_for:?})"),
            ));
        }
        Ok(self.seal(VERSION_STANDING, None, tenant, issued_to, ttl, now))
    }

    /// Writes and tags a token; `alert_id` is there exactly for [`VERSION`].
    fn seal(
        &self,
        version: u8,
        alert_id: Option<u64>,
        tenant: &TenantId,
        recipient: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> String {
        let tenant = tenant.as_str().as_bytes();
        let recipient = recipient.as_bytes();
        let key = &self.signing;

        let mut blob = Vec::with_capacity(MAX_BLOB_LEN);
        blob.push(version);
        // At most 16: LinkKey::new checked it.
        blob.push(key.id.len() as u8);
        blob.extend_from_slice(key.id.as_bytes());
        put_varint(&mut blob, zigzag_encode(now.timestamp()));
        put_varint(&mut blob, ttl.as_secs());
        if let Some(alert_id) = alert_id {
            put_varint(&mut blob, alert_id);
        }
        put_varint(&mut blob, tenant.len() as u64);
        blob.extend_from_slice(tenant);
        put_varint(&mut blob, recipient.len() as u64);
        blob.extend_from_slice(recipient);
        let tag = key.tag(&blob);
        blob.extend_from_slice(&tag);

        base64url_encode(&blob)
    }

    /// Verifies `link` (the signed text a portal URL ends with, as [`sign`](Self::sign)
    /// returned it) at `now`. With `tenant`, a link of another tenant is refused.
    ///
    /// # Errors
    ///
    /// [`Error::Link`] with the [`LinkRejection`] (see the module docs for the
    /// order of the checks). Any input, of any length, gives an error rather
    /// than a panic.
    pub fn verify(
        &self,
        link: &str,
        tenant: Option<&TenantId>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedLink> {
        self.check(link, tenant, now)
            .map_err(|reason| Error::Link { reason })
    }

    fn keys(&self) -> impl Iterator<Item = &LinkKey> {
        std::iter::once(&self.signing).chain(&self.verification)
    }

    fn check(
        &self,
        link: &str,
        expected_tenant: Option<&TenantId>,
        now: DateTime<Utc>,
    ) -> std::result::Result<VerifiedLink, LinkRejection> {
        use LinkRejection::Malformed;

        // Bounds decoding work and lets the blob live on the stack.
        if link.len() > MAX_TOKEN_LEN {
            return Err(Malformed);
        }
        let mut buf = [0u8; MAX_BLOB_LEN];
        let len = base64url_decode_into(link.as_bytes(), &mut buf).ok_or(Malformed)?;
        let blob = buf.get(..len).ok_or(Malformed)?;
        let signed_len = blob.len().checked_sub(TAG_LEN).ok_or(Malformed)?;
        let (signed, tag) = blob.split_at_checked(signed_len).ok_or(Malformed)?;

        let mut reader = Reader { rest: signed };
        let (version, origin, max_ttl) = match reader.byte() {
            Some(VERSION) => (VERSION, LinkOrigin::Alert, Self::MAX_TTL),
            Some(VERSION_STANDING) => (
                VERSION_STANDING,
                LinkOrigin::Standing,
                Self::MAX_STANDING_TTL,
            ),
            _ => return Err(Malformed),
        };
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

        let payload = Payload::decode(version, reader).ok_or(Malformed)?;
        let issued_at = DateTime::from_timestamp(payload.issued_at, 0).ok_or(Malformed)?;
        let ttl = Duration::from_secs(payload.ttl_secs);
        if !(Self::MIN_TTL..=max_ttl).contains(&ttl) {
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
            origin,
        })
    }
}

/// Refuses an empty or over-long recipient (or standing link holder) id:
/// the token must stay short enough for an SMS.
fn check_recipient(field: &str, what: &str, id: &str) -> Result<()> {
    let len = id.len();
    if len == 0 || len > MAX_RECIPIENT_LEN {
        return Err(Error::config(
            field,
            format!("{what} must be 1 to {MAX_RECIPIENT_LEN} bytes to fit in a link (got {len})"),
        ));
    }
    Ok(())
}
