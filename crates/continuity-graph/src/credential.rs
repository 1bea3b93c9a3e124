//! The app's certificate and private key, checked when loaded.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use continuity_core::Clock;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use sha1::Digest as _;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::GraphError;

/// OID of `rsaEncryption` (RFC 8017), the only public key type accepted.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// A certificate and its RSA private key, as registered on an Entra ID app.
///
/// Loading checks that the key matches the certificate and that the
/// certificate is valid at the clock's current time, so a bad credential is
/// reported at start-up, not at the first token request. The key never shows
/// in `Debug`.
#[derive(Clone)]
pub struct CertificateCredential {
    cert_der: Vec<u8>,
    key: EncodingKey,
    x5t: String,
    x5t_s256: String,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    subject: String,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("subject", &self.subject)
            .field("x5t#S256", &self.x5t_s256)
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl CertificateCredential {
    /// Loads from PEM: `cert_pem` holds the certificate (the first `CERTIFICATE`
    /// block is the app's), `key_pem` a PKCS#8 (`PRIVATE KEY`) or PKCS#1
    /// (`RSA PRIVATE KEY`) key. Both may be the same combined file.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        clock: &dyn Clock,
    ) -> Result<Self, GraphError> {
        let cert = CertificateDer::pem_slice_iter(cert_pem)
            .next()
            .ok_or(GraphError::CertificateMissing {
                source_kind: "PEM input",
            })?
            .map_err(|e| GraphError::InvalidCredential {
                what: "certificate",
                reason: e.to_string(),
            })?;
        // The PEM reader skips blocks it does not know, an encrypted key
        // among them, and would report "no private key": say what it is.
        if let Some(e) = encrypted_key(key_pem) {
            return Err(e);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => GraphError::PrivateKeyMissing {
                source_kind: "PEM input",
            },
            e => GraphError::InvalidCredential {
                what: "private key",
                reason: e.to_string(),
            },
        })?;
        let key = match key {
            PrivateKeyDer::Pkcs1(k) => k.secret_pkcs1_der().to_vec(),
            PrivateKeyDer::Pkcs8(k) => pkcs8_to_pkcs1(k.secret_pkcs8_der())?,
            // Named, not `Debug`-printed: the key bytes must not reach an error message.
            PrivateKeyDer::Sec1(_) => return Err(not_rsa("an EC key (SEC1)")),
            _ => {
                return Err(GraphError::UnsupportedKey {
                    reason: "not an RSA key".into(),
                });
            }
        };
        Self::new(cert.as_ref().to_vec(), key, clock)
    }

    /// Loads from PEM files (see [`from_pem`](Self::from_pem)).
    pub fn from_pem_files(
        cert_path: &Path,
        key_path: &Path,
        clock: &dyn Clock,
    ) -> Result<Self, GraphError> {
        Self::from_pem(&read(cert_path)?, &read(key_path)?, clock)
    }

    /// Loads from a PKCS#12 (`.pfx`) archive protected by `password`.
    pub fn from_pkcs12(
        data: &[u8],
        password: &SecretString,
        clock: &dyn Clock,
    ) -> Result<Self, GraphError> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            data,
            password.expose_secret(),
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| GraphError::InvalidCredential {
            what: "PKCS#12 file",
            reason: format!("{e} (wrong password or damaged file)"),
        })?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or(GraphError::PrivateKeyMissing {
                source_kind: "PKCS#12 file",
            })?;
        let cert = chain
            .certs()
            .first()
            .ok_or(GraphError::CertificateMissing {
                source_kind: "PKCS#12 file",
            })?;
        let key = pkcs8_to_pkcs1(chain.key().as_der())?;
        Self::new(cert.as_der().to_vec(), key, clock)
    }

    /// Loads a PKCS#12 file (see [`from_pkcs12`](Self::from_pkcs12)).
    pub fn from_pkcs12_file(
        path: &Path,
        password: &SecretString,
        clock: &dyn Clock,
    ) -> Result<Self, GraphError> {
        Self::from_pkcs12(&read(path)?, password, clock)
    }

    fn new(cert_der: Vec<u8>, pkcs1_key: Vec<u8>, clock: &dyn Clock) -> Result<Self, GraphError> {
        let (_, cert) =
            X509Certificate::from_der(&cert_der).map_err(|e| GraphError::InvalidCredential {
                what: "certificate",
                reason: e.to_string(),
            })?;
        let spki = cert.public_key();
        let oid = spki.algorithm.algorithm.to_id_string();
        if oid != RSA_ENCRYPTION {
            return Err(GraphError::UnsupportedKey {
                reason: format!(
                    "certificate public key algorithm {oid}; an RSA certificate is required"
                ),
            });
        }
        let not_before = to_utc(cert.validity().not_before.timestamp())?;
        let not_after = to_utc(cert.validity().not_after.timestamp())?;
        let subject = cert.subject().to_string();
        let public_pkcs1 = spki.subject_public_key.data.to_vec();

        // A signature made with the key must verify under the certificate's key:
        // this catches a key from another certificate (and a damaged key) now.
        let key = EncodingKey::from_rsa_der(&pkcs1_key);
        let probe = b"continuity-graph key check";
        let sig = jsonwebtoken::crypto::sign(probe, &key, Algorithm::RS256).map_err(|e| {
            GraphError::InvalidCredential {
                what: "private key",
                reason: e.to_string(),
            }
        })?;
        let matches = jsonwebtoken::crypto::verify(
            &sig,
            probe,
            &DecodingKey::from_rsa_der(&public_pkcs1),
            Algorithm::RS256,
        )
        .unwrap_or(false);
        if !matches {
            return Err(GraphError::KeyMismatch);
        }

        let now = clock.now();
        if now < not_before {
            return Err(GraphError::CertificateNotYetValid { not_before, now });
        }
        if now > not_after {
            return Err(GraphError::CertificateExpired { not_after, now });
        }
        Ok(CertificateCredential {
            x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&cert_der)),
            x5t_s256: URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&cert_der)),
            cert_der,
            key,
            not_before,
            not_after,
            subject,
        })
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// base64url(SHA-1(DER)), the `x5t` header value (the portal shows this thumbprint in hex).
    pub fn x5t(&self) -> &str {
        &self.x5t
    }

    /// base64url(SHA-256(DER)), the `x5t#S256` header value.
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// Start of the certificate's validity.
    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    /// End of the certificate's validity (renew before).
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// The certificate's subject, e.g. `CN=continuity-monitor`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.key
    }
}

fn read(path: &Path) -> Result<Vec<u8>, GraphError> {
    std::fs::read(path).map_err(|e| GraphError::FileUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn to_utc(ts: i64) -> Result<DateTime<Utc>, GraphError> {
    DateTime::from_timestamp(ts, 0).ok_or(GraphError::InvalidCredential {
        what: "certificate",
        reason: format!("validity time {ts} out of range"),
    })
}

/// The error for a PEM key that is encrypted, if it is.
fn encrypted_key(pem: &[u8]) -> Option<GraphError> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        Some(GraphError::PrivateKeyEncrypted {
            format: "PKCS#8",
            command: "openssl pkcs8 -in key.pem -out plain.pem",
        })
    } else if text.contains("Proc-Type: 4,ENCRYPTED") {
        Some(GraphError::PrivateKeyEncrypted {
            format: "OpenSSL legacy PEM",
            command: "openssl pkey -in key.pem -out plain.pem",
        })
    } else {
        None
    }
}

/// A key of another type than RSA, named.
fn not_rsa(found: &str) -> GraphError {
    GraphError::UnsupportedKey {
        reason: format!(
            "{found} was given where an RSA key is required (Entra ID client assertions here are RS256)"
        ),
    }
}

/// OIDs of the key algorithms (RFC 5480, RFC 8410) a PKCS#8 key may hold instead of RSA.
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const ED25519: &str = "1.3.101.112";
const ED448: &str = "1.3.101.113";

/// The algorithm OID of a PKCS#8 `PrivateKeyInfo`
/// (`SEQUENCE { version, SEQUENCE { algorithm, parameters }, privateKey }`).
fn pkcs8_algorithm(pkcs8: &[u8]) -> Option<String> {
    use x509_parser::asn1_rs::{Integer, Oid, Sequence};
    let (_, info) = Sequence::from_der(pkcs8).ok()?;
    let (rest, _version) = Integer::from_der(&info.content).ok()?;
    let (_, algorithm) = Sequence::from_der(rest).ok()?;
    let (_, oid) = Oid::from_der(&algorithm.content).ok()?;
    Some(oid.to_id_string())
}

/// PKCS#8 `PrivateKeyInfo` → the PKCS#1 `RSAPrivateKey` inside it (what the
/// signer takes), going through jsonwebtoken's own PEM reader so that there is
/// one ASN.1 path for both PEM and PKCS#12 keys.
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Result<Vec<u8>, GraphError> {
    // jsonwebtoken only says "InvalidKeyFormat" for a key of another type.
    match pkcs8_algorithm(pkcs8).as_deref() {
        Some(RSA_ENCRYPTION) | None => {}
        Some(EC_PUBLIC_KEY) => return Err(not_rsa("an EC key (PKCS#8)")),
        Some(ED25519) => return Err(not_rsa("an Ed25519 key")),
        Some(ED448) => return Err(not_rsa("an Ed448 key")),
        Some(other) => return Err(not_rsa(&format!("a key of algorithm {other}"))),
    }
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(pkcs8)
    );
    let key =
        EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| GraphError::UnsupportedKey {
            reason: format!("PKCS#8 key is not a usable RSA key: {e}"),
        })?;
    Ok(key.as_bytes().to_vec())
}
