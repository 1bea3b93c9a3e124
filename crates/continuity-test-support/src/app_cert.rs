//! RSA certificates of test applications (generated per run; no key is
//! committed), in every form the certificate credential loader takes.

use base64::Engine as _;

/// A generated RSA certificate with its key in every form the loader takes.
#[derive(Clone, Debug)]
pub struct AppCert {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The certificate (DER): what an app registration lists.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 PEM.
    pub pkcs8_pem: String,
    /// The private key, PKCS#8 DER.
    pub pkcs8_der: Vec<u8>,
    /// The private key, PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`).
    pub pkcs1_pem: String,
}

/// An RSA-2048 certificate valid from 2026-01-01 to 2027-01-01.
pub fn rsa_cert(cn: &str) -> AppCert {
    rsa_cert_valid(cn, (2026, 1, 1), (2027, 1, 1))
}

/// An RSA-2048 certificate for `cn` valid from `from` to `to` (year, month, day).
///
/// # Panics
/// When key generation fails.
pub fn rsa_cert_valid(cn: &str, from: (i32, u8, u8), to: (i32, u8, u8)) -> AppCert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![cn.into()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
    let cert = params.self_signed(&key).unwrap();
    let pkcs8_pem = key.serialize_pem();
    // PKCS#1 RSAPrivateKey: the inner key of the PKCS#8 structure.
    let pkcs1 = jsonwebtoken::EncodingKey::from_rsa_pem(pkcs8_pem.as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs1.as_bytes());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    AppCert {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        pkcs8_der: key.serialize_der(),
        pkcs8_pem,
        pkcs1_pem: format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
            lines.join("\n")
        ),
    }
}

/// The certificate and key as a PKCS#12 archive (p12-keystore's writer, PBES2/AES-256).
pub fn pkcs12(cert: &AppCert, password: &str) -> Vec<u8> {
    let mut store = p12_keystore::KeyStore::new();
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![7u8; 20],
        p12_keystore::PrivateKey::from_der(&cert.pkcs8_der).unwrap(),
        [p12_keystore::Certificate::from_der(&cert.cert_der).unwrap()],
    );
    store.add_entry(
        "continuity",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(password).write().unwrap()
}
