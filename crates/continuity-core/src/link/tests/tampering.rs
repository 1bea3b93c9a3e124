//! Altered, truncated, padded and malformed tokens are refused with the
//! expected reason.

use super::*;
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
    // 1 and 2 are the alert and standing formats.
    for version in [0, 3, 255] {
        blob[0] = version;
        let sealed = seal(&signer.signing, &blob);
        assert_eq!(
            rejection(signer.verify(&sealed, None, t0())),
            LinkRejection::Malformed
        );
    }
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
