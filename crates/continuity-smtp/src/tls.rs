//! TLS towards the relay: rustls through lettre, the platform's roots plus
//! any configured private CA.

use lettre::transport::smtp::client::{Certificate, TlsParameters};
use rustls::pki_types::{CertificateDer, pem::PemObject};

use crate::error::RelayConfigError;

/// TLS parameters checking the relay's certificate for `name` against the
/// platform's roots and `extra_roots_pem`.
pub(crate) fn parameters(
    name: String,
    extra_roots_pem: &[Vec<u8>],
) -> Result<TlsParameters, RelayConfigError> {
    let mut b = TlsParameters::builder(name);
    for (i, pem) in extra_roots_pem.iter().enumerate() {
        // lettre accepts PEM text without a certificate in it (and then
        // trusts nothing more): a wrong file must say so instead.
        let found = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RelayConfigError {
                field: "root_certificates_pem",
                index: Some(i),
                reason: format!("not PEM certificates: {e}"),
            })?;
        if found.is_empty() {
            return Err(RelayConfigError {
                field: "root_certificates_pem",
                index: Some(i),
                reason: "no CERTIFICATE block in the PEM text".into(),
            });
        }
        let cert = Certificate::from_pem(pem).map_err(|e| RelayConfigError {
            field: "root_certificates_pem",
            index: Some(i),
            reason: e.to_string(),
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| RelayConfigError {
        field: "tls",
        index: None,
        reason: e.to_string(),
    })
}

/// Whether the TLS handshake failed on the relay's certificate (untrusted,
/// expired, wrong name). lettre reports those as connection errors, with
/// rustls's error somewhere in the source chain.
pub fn is_certificate_error(e: &lettre::transport::smtp::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        let tls = s.downcast_ref::<rustls::Error>().or_else(|| {
            s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        source = s.source();
    }
    false
}
