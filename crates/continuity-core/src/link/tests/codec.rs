//! The codec's primitives on known vectors: varints, zigzag, base64url.

use super::*;
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
