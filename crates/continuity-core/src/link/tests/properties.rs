//! Properties over random input: round trips, no panics, every single
//! change refused.

use super::*;
use proptest::prelude::*;
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
