//! CSRF tokens bound to a portal link: HMAC-SHA256 of the link token under
//! the portal's own key, so a form is only accepted for the link it was
//! served with, and no server-side session is needed.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub(crate) struct Csrf {
    mac: HmacSha256,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf(<redacted>)")
    }
}

impl Csrf {
    pub(crate) fn new(key: &[u8]) -> Self {
        Csrf {
            // HMAC takes keys of any length; the options check the minimum.
            mac: HmacSha256::new_from_slice(key).expect("HMAC accepts any key length"),
        }
    }

    /// The token for forms of `link`, in lower-case hex.
    pub(crate) fn token(&self, link: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(link.as_bytes());
        let tag = mac.finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `candidate` is the token for `link` (compared in constant time).
    pub(crate) fn check(&self, link: &str, candidate: &str) -> bool {
        let Some(bytes) = unhex(candidate) else {
            return false;
        };
        let mut mac = self.mac.clone();
        mac.update(link.as_bytes());
        mac.verify_slice(&bytes).is_ok()
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_accepted_for_its_link_only() {
        let csrf = Csrf::new(&[9u8; 32]);
        let t = csrf.token("link-a");
        assert_eq!(t.len(), 64);
        assert!(csrf.check("link-a", &t));
        assert!(!csrf.check("link-b", &t));
        assert!(!Csrf::new(&[8u8; 32]).check("link-a", &t));
        for bad in ["", "zz", &t[..63], &t.to_uppercase(), &format!("{t}00")] {
            assert!(!csrf.check("link-a", bad), "{bad}");
        }
    }
}
