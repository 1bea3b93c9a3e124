//! TLS to the server: rustls with the platform's verifier and extra roots.

use crate::error::StoreError;

/// TLS to PostgreSQL: required, with the server's certificate verified
/// against the system's trusted roots and the extra roots given here, and
/// its name checked against the host connected to.
#[derive(Clone, Debug, Default)]
pub struct PostgresTls {
    extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
}

impl PostgresTls {
    /// The system's trusted roots only.
    pub fn system_roots() -> Self {
        PostgresTls::default()
    }

    /// Also trusts the certificates in `pem` (a private CA, a self-signed
    /// server certificate).
    pub fn with_roots_pem(mut self, pem: &[u8]) -> Result<Self, StoreError> {
        use rustls_pki_types::pem::PemObject;
        let before = self.extra_roots.len();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            self.extra_roots
                .push(cert.map_err(|e| StoreError::Config(format!("TLS root certificates: {e}")))?);
        }
        if self.extra_roots.len() == before {
            return Err(StoreError::Config(
                "TLS root certificates: no certificate in the PEM given".into(),
            ));
        }
        Ok(self)
    }

    pub(super) fn connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
            self.extra_roots.iter().cloned(),
            provider.clone(),
        )
        .map_err(|e| StoreError::Config(format!("TLS certificate verifier: {e}")))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Config(format!("TLS: {e}")))?
            .dangerous() // a verifier of our own: the platform's, with the extra roots
            .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}
