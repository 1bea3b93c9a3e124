//! Unit tests of signing and verification; tampered tokens, the codec and
//! properties over random input are in submodules.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::codec::*;
use super::*;
use crate::{
    domain::{MAX_TENANT_ID_LEN, TenantId},
    error::{Error, Result},
};

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
mod codec;
mod properties;
mod tampering;
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
        assert!(matches!(&err, Error::InvalidConfig { field, .. } if field == "link.recipient"));
    }
    let claims = LinkClaims {
        recipient: "r".repeat(MAX_RECIPIENT_LEN),
        ..claims()
    };
    let token = signer.sign(&claims, t0()).unwrap();
    assert_eq!(signer.verify(&token, None, t0()).unwrap().claims, claims);
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
            "This link expired at 2025-10-10 09:06 UTC. A fresh link comes with the next alert.",
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

/// An alert's link as signers before standing links wrote it (format 1),
/// computed from the documented layout outside this code: `k1`/`SECRET_1`,
/// issued at `t0()`, 24 h, alert 12 345, `acme-corp`, `ops-sms-1`.
const FORMAT_1_LINK: &str = "AQJrMYDgu44NgKMFuWAJYWNtZS1jb3JwCW9wcy1zbXMtMZefC-jBfs7L00d5qvwKf9M";

/// The same claims as a standing link (format 2), computed the same way.
const FORMAT_2_LINK: &str = "AgJrMYDgu44NgKMFCWFjbWUtY29ycAlvcHMtc21zLTHwFSzdcEFpn7CcznPA_zCn";

#[test]
fn links_already_sent_keep_verifying_and_are_still_signed_the_same() {
    let link = signer().verify(FORMAT_1_LINK, None, t0()).unwrap();
    assert_eq!(link.claims, claims());
    assert_eq!(link.origin, LinkOrigin::Alert);
    assert_eq!(link.expires_at, t0() + secs(86_400));
    assert_eq!(token(), FORMAT_1_LINK);
    // A VerifiedLink serialised before `origin` existed reads as an alert's.
    let mut json = serde_json::to_value(&link).unwrap();
    json.as_object_mut().unwrap().remove("origin");
    let old: VerifiedLink = serde_json::from_value(json).unwrap();
    assert_eq!(old, link);
}

#[test]
fn standing_link_round_trip() {
    let signer = signer();
    let tenant = tenant("acme-corp");
    let token = signer
        .sign_standing(&tenant, "ops-sms-1", LinkSigner::DEFAULT_STANDING_TTL, t0())
        .unwrap();
    assert_eq!(token, FORMAT_2_LINK);
    let link = signer.verify(&token, Some(&tenant), t0()).unwrap();
    assert_eq!(link.origin, LinkOrigin::Standing);
    assert_eq!(
        link.claims,
        LinkClaims {
            tenant: tenant.clone(),
            alert_id: 0,
            recipient: "ops-sms-1".into(),
        }
    );
    assert_eq!(link.expires_at, t0() + secs(86_400));
    // Shorter than an alert's link with the same claims: no alert id.
    assert!(token.len() < FORMAT_1_LINK.len());
    assert!(matches!(
        rejection(signer.verify(&token, None, t0() + secs(86_400))),
        LinkRejection::Expired { .. }
    ));
    assert_eq!(
        rejection(signer.verify(&token, Some(&self::tenant("globex")), t0())),
        LinkRejection::WrongTenant
    );
}

#[test]
fn standing_link_validity_is_bounded_when_signing_and_verifying() {
    let signer = signer();
    let tenant = tenant("acme");
    for ok in [LinkSigner::MIN_TTL, LinkSigner::MAX_STANDING_TTL] {
        let token = signer.sign_standing(&tenant, "noc", ok, t0()).unwrap();
        let link = signer.verify(&token, None, t0()).unwrap();
        assert_eq!(
            link.expires_at - link.issued_at,
            TimeDelta::from_std(ok).unwrap()
        );
    }
    for bad in [
        Duration::from_secs(59),
        LinkSigner::MAX_STANDING_TTL + Duration::from_secs(1),
        LinkSigner::MAX_TTL,
    ] {
        let e = signer.sign_standing(&tenant, "noc", bad, t0()).unwrap_err();
        assert!(e.to_string().contains("link.valid_for"), "{e}");
    }
    for bad in ["", &"x".repeat(MAX_RECIPIENT_LEN + 1)] {
        let e = signer
            .sign_standing(&tenant, bad, LinkSigner::DEFAULT_STANDING_TTL, t0())
            .unwrap_err();
        assert!(e.to_string().contains("link.issued_to"), "{e}");
    }

    // A properly signed format-2 token claiming more than 7 days is refused
    // (a key holder's bug, not a forgery), while format 1 may hold 30 days.
    let k = key("k1", SECRET_1);
    let long = 8 * 86_400;
    let mut standing = vec![VERSION_STANDING, 2, b'k', b'1'];
    let mut p = payload(t0().timestamp(), long, 7, b"acme", b"noc");
    // Format 2 has no alert id: drop the one `payload` wrote (one byte, 7).
    p.remove(varint_len(zigzag_encode(t0().timestamp())) + varint_len(long));
    standing.extend_from_slice(&p);
    assert_eq!(
        rejection(signer.verify(&seal(&k, &standing), None, t0())),
        LinkRejection::Malformed
    );
    let mut alert = header();
    alert.extend_from_slice(&payload(t0().timestamp(), long, 7, b"acme", b"noc"));
    assert!(signer.verify(&seal(&k, &alert), None, t0()).is_ok());
}

#[test]
fn an_alert_link_cannot_be_relabelled_standing_or_back() {
    let signer = signer();
    for token in [FORMAT_1_LINK, FORMAT_2_LINK] {
        let mut blob = decode(token).unwrap();
        blob[0] = if blob[0] == VERSION {
            VERSION_STANDING
        } else {
            VERSION
        };
        assert_eq!(
            rejection(signer.verify(&base64url_encode(&blob), None, t0())),
            LinkRejection::BadSignature
        );
    }
    // Any other version byte is not a token of this library.
    let mut blob = decode(FORMAT_2_LINK).unwrap();
    blob[0] = 3;
    assert_eq!(
        rejection(signer.verify(&base64url_encode(&blob), None, t0())),
        LinkRejection::Malformed
    );
}
