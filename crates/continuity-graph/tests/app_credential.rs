//! Certificate loading, client assertions and the token request against a
//! local token endpoint that checks them the way Entra ID does.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::TimeDelta;
use common::*;
use continuity_core::ManualClock;
use continuity_graph::{
    AadstsKind, AppRegistration, AssertionAlgorithm, Authority, CertificateCredential, GraphError,
    TokenClient,
};
use secrecy::SecretString;

fn clock() -> ManualClock {
    ManualClock::new(t("2026-03-02T08:00:00Z"))
}

fn load(cert: &AppCert, clock: &ManualClock) -> Arc<CertificateCredential> {
    Arc::new(
        CertificateCredential::from_pem(cert.cert_pem.as_bytes(), cert.pkcs8_pem.as_bytes(), clock)
            .unwrap(),
    )
}

#[test]
fn loads_pem_pkcs8_pkcs1_and_pkcs12_to_the_same_credential() {
    let c = rsa_cert("monitor");
    let clock = clock();
    let a = CertificateCredential::from_pem(c.cert_pem.as_bytes(), c.pkcs8_pem.as_bytes(), &clock)
        .unwrap();
    let b = CertificateCredential::from_pem(c.cert_pem.as_bytes(), c.pkcs1_pem.as_bytes(), &clock)
        .unwrap();
    let combined = format!("{}{}", c.pkcs1_pem, c.cert_pem);
    let d =
        CertificateCredential::from_pem(combined.as_bytes(), combined.as_bytes(), &clock).unwrap();
    let pfx = pkcs12(&c, "s3cret-pfx");
    let e = CertificateCredential::from_pkcs12(&pfx, &SecretString::from("s3cret-pfx"), &clock)
        .unwrap();
    for x in [&b, &d, &e] {
        assert_eq!(x.certificate_der(), a.certificate_der());
        assert_eq!(x.x5t_s256(), a.x5t_s256());
    }
    assert_eq!(a.not_after(), t("2027-01-01T00:00:00Z"));
    assert!(a.subject().contains("monitor"), "{}", a.subject());
    assert!(
        !format!("{a:?}").contains("BEGIN"),
        "key must not show in Debug"
    );
}

#[test]
fn thumbprints_are_base64url_sha1_and_sha256_of_the_der() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let c = rsa_cert("thumb");
    let cred = load(&c, &clock());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    assert_eq!(cred.x5t(), b64.encode(sha1::Sha1::digest(&c.cert_der)));
    assert_eq!(
        cred.x5t_s256(),
        b64.encode(sha2::Sha256::digest(&c.cert_der))
    );
    assert_eq!(cred.x5t().len(), 27);
    assert_eq!(cred.x5t_s256().len(), 43);
}

#[test]
fn bad_credentials_are_typed_errors_at_load_time() {
    let c = rsa_cert("monitor");
    let other = rsa_cert("other");
    let clock = clock();
    let err = |r: Result<CertificateCredential, GraphError>| r.unwrap_err();

    assert!(matches!(
        err(CertificateCredential::from_pem(
            c.cert_pem.as_bytes(),
            other.pkcs8_pem.as_bytes(),
            &clock
        )),
        GraphError::KeyMismatch
    ));
    let e = err(CertificateCredential::from_pem(
        c.pkcs8_pem.as_bytes(),
        c.pkcs8_pem.as_bytes(),
        &clock,
    ));
    assert!(matches!(e, GraphError::CertificateMissing { .. }), "{e:?}");
    let e = err(CertificateCredential::from_pem(
        c.cert_pem.as_bytes(),
        c.cert_pem.as_bytes(),
        &clock,
    ));
    assert!(matches!(e, GraphError::PrivateKeyMissing { .. }), "{e:?}");
    let e = err(CertificateCredential::from_pem_files(
        std::path::Path::new("/nonexistent/monitor.crt"),
        std::path::Path::new("/nonexistent/monitor.key"),
        &clock,
    ));
    assert!(
        matches!(e, GraphError::FileUnreadable { .. })
            && e.to_string().contains("/nonexistent/monitor.crt"),
        "{e}"
    );

    let expired = rsa_cert_valid("old", (2024, 1, 1), (2026, 3, 1));
    let e = err(CertificateCredential::from_pem(
        expired.cert_pem.as_bytes(),
        expired.pkcs8_pem.as_bytes(),
        &clock,
    ));
    assert!(matches!(e, GraphError::CertificateExpired { .. }), "{e:?}");
    assert!(e.is_config() && !e.is_retryable());
    let future = rsa_cert_valid("new", (2026, 4, 1), (2027, 4, 1));
    let e = err(CertificateCredential::from_pem(
        future.cert_pem.as_bytes(),
        future.pkcs8_pem.as_bytes(),
        &clock,
    ));
    assert!(
        matches!(e, GraphError::CertificateNotYetValid { .. }),
        "{e:?}"
    );
    // The same certificate is fine once the clock reaches its validity.
    clock.advance(TimeDelta::days(31));
    CertificateCredential::from_pem(
        future.cert_pem.as_bytes(),
        future.pkcs8_pem.as_bytes(),
        &clock,
    )
    .unwrap();

    let pfx = pkcs12(&c, "right");
    let e = err(CertificateCredential::from_pkcs12(
        &pfx,
        &SecretString::from("wrong"),
        &clock,
    ));
    assert!(
        matches!(
            e,
            GraphError::InvalidCredential {
                what: "PKCS#12 file",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        !e.to_string().contains("wrong\""),
        "password must not show: {e}"
    );

    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_cert = rcgen::CertificateParams::new(vec!["ec".into()])
        .unwrap()
        .self_signed(&ec)
        .unwrap();
    let e = err(CertificateCredential::from_pem(
        ec_cert.pem().as_bytes(),
        ec.serialize_pem().as_bytes(),
        &clock,
    ));
    assert!(matches!(e, GraphError::UnsupportedKey { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("an EC key (PKCS#8) was given where an RSA key is required"),
        "{e}"
    );
    // The same key in SEC1 form (`EC PRIVATE KEY`) says the same.
    let sec1 = format!(
        "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            sec1_of(&ec.serialize_der())
        )
    );
    let e = err(CertificateCredential::from_pem(
        ec_cert.pem().as_bytes(),
        sec1.as_bytes(),
        &clock,
    ));
    assert!(
        e.to_string()
            .contains("an EC key (SEC1) was given where an RSA key is required"),
        "{e}"
    );
}

/// A throwaway P-256 key, encrypted by `openssl pkcs8 -topk8 -v2 aes-256-cbc`
/// (password `test-only`).
const ENCRYPTED_PKCS8: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAiKCORdW81W2gICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEJoFQ0/e11pCnpdQ8GqHYVcEgZAC
C5PymOIQtMvBLbjR4NFT7nxDNpksanvvMm3zHtpDtcxHfsNT8LlQ/xxOSZNK9eFQ
GwqzMly93+JlD3zzkko5fBTpHS+YI8VyK4TkLdxY/t7Ik3+30toV4Li66FL+liqF
ser1UCFA624VjVks6G+r4d1f1zdt9DNo+Z6Dfdf8lg0XPfRPA55FaKNLaOcUmTQ=
-----END ENCRYPTED PRIVATE KEY-----
";

#[test]
fn an_encrypted_key_says_it_is_encrypted_and_how_to_decrypt_it() {
    let c = rsa_cert("monitor");
    let clock = clock();
    let err = |r: Result<CertificateCredential, GraphError>| r.unwrap_err();
    let e = err(CertificateCredential::from_pem(
        c.cert_pem.as_bytes(),
        ENCRYPTED_PKCS8.as_bytes(),
        &clock,
    ));
    assert!(
        matches!(
            e,
            GraphError::PrivateKeyEncrypted {
                format: "PKCS#8",
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("encrypted") && text.contains("openssl pkcs8 -in key.pem -out plain.pem"),
        "{text}"
    );
    assert!(e.is_config() && !e.is_retryable());

    // OpenSSL's older form: the encryption in the PEM headers.
    let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,7E220BD1DB7936CFF114529AE73DEA91\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    let e = err(CertificateCredential::from_pem(
        c.cert_pem.as_bytes(),
        legacy.as_bytes(),
        &clock,
    ));
    assert!(matches!(e, GraphError::PrivateKeyEncrypted { .. }), "{e:?}");
}

/// The SEC1 `ECPrivateKey` inside a PKCS#8 EC key: the content of the
/// `PrivateKeyInfo`'s OCTET STRING.
fn sec1_of(pkcs8: &[u8]) -> Vec<u8> {
    /// Tag, content and what follows of the DER element at the start of `b`.
    fn element(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, header) = if b[1] < 0x80 {
            (usize::from(b[1]), 2)
        } else {
            let n = usize::from(b[1] & 0x7f);
            let len = b[2..2 + n]
                .iter()
                .fold(0, |acc, &x| (acc << 8) | usize::from(x));
            (len, 2 + n)
        };
        (b[0], &b[header..header + len], &b[header + len..])
    }
    let (_, mut inner, _) = element(pkcs8);
    loop {
        let (tag, content, rest) = element(inner);
        if tag == 0x04 {
            return content.to_vec();
        }
        inner = rest;
    }
}

#[test]
fn assertion_header_and_claims_as_entra_expects() {
    let c = rsa_cert("monitor");
    let clock = clock();
    let cred = load(&c, &clock);
    let now = t("2026-03-02T08:00:00Z");
    let (_, cert) = x509_parser::parse_x509_certificate(&c.cert_der).unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_der(&cert.public_key().subject_public_key.data);
    let decode = |jwt: &str, alg| {
        let mut v = jsonwebtoken::Validation::new(alg);
        v.validate_exp = false;
        v.set_audience(&[
            "https://login.chinacloudapi.cn/contoso.onmicrosoft.com/oauth2/v2.0/token",
        ]);
        jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v).unwrap()
    };

    let app = AppRegistration::new(TENANT, CLIENT_ID, cred.clone())
        .unwrap()
        .with_authority(Authority::China);
    let a = app.client_assertion(now).unwrap();
    let b = app.client_assertion(now).unwrap();
    let da = decode(&a, jsonwebtoken::Algorithm::PS256);
    let db = decode(&b, jsonwebtoken::Algorithm::PS256);
    assert_eq!(da.header.alg, jsonwebtoken::Algorithm::PS256);
    assert_eq!(da.header.typ.as_deref(), Some("JWT"));
    assert_eq!(da.header.x5t_s256.as_deref(), Some(cred.x5t_s256()));
    assert_eq!(da.header.x5t, None);
    let claims = &da.claims;
    assert_eq!(claims["iss"], CLIENT_ID);
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(claims["nbf"], now.timestamp());
    assert_eq!(claims["iat"], now.timestamp());
    assert_eq!(claims["exp"], now.timestamp() + 600);
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 36);
    assert_ne!(
        jti,
        db.claims["jti"].as_str().unwrap(),
        "every assertion has a fresh jti"
    );
    // The raw header carries the RFC 7515 name.
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(a.split('.').next().unwrap())
        .unwrap();
    assert!(String::from_utf8(raw).unwrap().contains("\"x5t#S256\""));

    let rs = app
        .clone()
        .with_algorithm(AssertionAlgorithm::Rs256)
        .with_assertion_lifetime(TimeDelta::minutes(5))
        .unwrap();
    let d = decode(
        &rs.client_assertion(now).unwrap(),
        jsonwebtoken::Algorithm::RS256,
    );
    assert_eq!(d.header.x5t.as_deref(), Some(cred.x5t()));
    assert_eq!(d.header.x5t_s256, None);
    assert_eq!(d.claims["exp"], now.timestamp() + 300);

    assert!(
        app.clone()
            .with_assertion_lifetime(TimeDelta::minutes(11))
            .is_err()
    );
    assert!(
        app.clone()
            .with_assertion_lifetime(TimeDelta::minutes(4))
            .is_err()
    );
    assert_eq!(
        AppRegistration::new("t", CLIENT_ID, cred.clone())
            .unwrap()
            .token_endpoint(),
        "https://login.microsoftonline.com/t/oauth2/v2.0/token"
    );
    for bad in ["", "common", "a/b", "x?y", "../etc"] {
        assert!(
            AppRegistration::new(bad, CLIENT_ID, cred.clone()).is_err(),
            "{bad:?}"
        );
    }
    assert!(AppRegistration::new(TENANT, " ", cred).is_err());
}

fn local_app(ep: &Endpoint, cred: Arc<CertificateCredential>) -> AppRegistration {
    AppRegistration::new(TENANT, CLIENT_ID, cred)
        .unwrap()
        .with_authority(Authority::Custom(ep.base_url.clone()))
}

#[tokio::test]
async fn token_request_is_accepted_with_both_algorithms() {
    let c = rsa_cert("monitor");
    let clock = clock();
    let ep = start(directory(&c), clock.clone()).await;
    let client = TokenClient::new(Arc::new(clock.clone())).unwrap();
    let app = local_app(&ep, load(&c, &clock));
    let tok = client.request_token(&app, GRAPH_SCOPE).await.unwrap();
    let claims = verify_access_token(
        tok.secret().expose(),
        "https://graph.microsoft.com",
        t("2026-03-02T08:00:00Z").timestamp(),
    )
    .unwrap();
    assert_eq!(
        (
            claims.uti.as_str(),
            claims.tid.as_str(),
            claims.appid.as_str()
        ),
        ("token-1", TENANT, CLIENT_ID)
    );
    assert_eq!(
        tok.expires_at(),
        t("2026-03-02T08:00:00Z") + TimeDelta::seconds(3900),
        "expires_in is used, not 3600"
    );
    let rs = app.with_algorithm(AssertionAlgorithm::Rs256);
    client.request_token(&rs, EWS_SCOPE).await.unwrap();
    assert_eq!(ep.issued.load(Ordering::SeqCst), 2);
}

async fn refused(app: &AppRegistration, clock: &ManualClock, scope: &str) -> GraphError {
    let client = TokenClient::new(Arc::new(clock.clone())).unwrap();
    client.request_token(app, scope).await.unwrap_err()
}

fn kind_code(e: &GraphError) -> (AadstsKind, Option<u32>) {
    match e {
        GraphError::Aadsts { kind, code, .. } => (*kind, *code),
        other => panic!("not an AADSTS error: {other:?}"),
    }
}

#[tokio::test]
async fn refusals_are_typed_as_what_the_administrator_must_fix() {
    let c = rsa_cert("monitor");
    let clock = clock();
    let ep = start(directory(&c), clock.clone()).await;
    let cred = load(&c, &clock);

    let unknown_tenant = AppRegistration::new("fabrikam.example", CLIENT_ID, cred.clone())
        .unwrap()
        .with_authority(Authority::Custom(ep.base_url.clone()));
    let e = refused(&unknown_tenant, &clock, GRAPH_SCOPE).await;
    assert_eq!(kind_code(&e), (AadstsKind::UnknownTenant, Some(90002)));
    assert!(e.to_string().contains("tenant is unknown"), "{e}");

    let unknown_app =
        AppRegistration::new(TENANT, "00000000-0000-0000-0000-000000000000", cred.clone())
            .unwrap()
            .with_authority(Authority::Custom(ep.base_url.clone()));
    let e = refused(&unknown_app, &clock, GRAPH_SCOPE).await;
    assert_eq!(
        kind_code(&e),
        (AadstsKind::UnknownApplication, Some(700016))
    );

    // A valid certificate that is not the one registered on the app: unknown thumbprint.
    let other = rsa_cert("other");
    let e = refused(&local_app(&ep, load(&other, &clock)), &clock, GRAPH_SCOPE).await;
    assert_eq!(
        kind_code(&e),
        (AadstsKind::CertificateNotRegistered, Some(700027))
    );
    assert!(e.to_string().contains("upload this certificate"), "{e}");
    assert!(e.is_config() && !e.is_retryable());

    // Wrong audience: a token endpoint URL that is not this endpoint's.
    let wrong_aud = AppRegistration::new(TENANT, CLIENT_ID, cred.clone())
        .unwrap()
        .with_authority(Authority::Custom(format!(
            "{}/",
            ep.base_url.replace("127.0.0.1", "localhost")
        )));
    let e = refused(&wrong_aud, &clock, GRAPH_SCOPE).await;
    assert_eq!(
        kind_code(&e),
        (AadstsKind::CertificateNotRegistered, Some(700027))
    );
    assert!(e.to_string().contains("audience"), "{e}");

    // Consent missing for a resource.
    let e = refused(
        &local_app(&ep, cred.clone()),
        &clock,
        "https://management.azure.com/.default",
    )
    .await;
    assert_eq!(kind_code(&e), (AadstsKind::ConsentMissing, Some(65001)));

    // Our clock 20 minutes behind Entra ID's: the assertion has expired when it arrives.
    let behind = ManualClock::new(t("2026-03-02T07:40:00Z"));
    let e = refused(&local_app(&ep, cred.clone()), &behind, GRAPH_SCOPE).await;
    assert_eq!(kind_code(&e), (AadstsKind::ClockSkew, Some(700024)));
    assert!(e.to_string().contains("synchronise"), "{e}");

    // Mapped into core's error with the code kept.
    let core: continuity_core::Error = e.into();
    assert!(
        matches!(&core, continuity_core::Error::Probe { retryable: false, code: Some(c), .. } if c == "AADSTS700024")
    );

    assert_eq!(ep.issued.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unreachable_endpoint_is_retryable() {
    let c = rsa_cert("monitor");
    let clock = clock();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let app = AppRegistration::new(TENANT, CLIENT_ID, load(&c, &clock))
        .unwrap()
        .with_authority(Authority::Custom(format!("http://127.0.0.1:{port}")));
    let e = TokenClient::new(Arc::new(clock))
        .unwrap()
        .request_token(&app, GRAPH_SCOPE)
        .await
        .unwrap_err();
    assert!(
        matches!(e, GraphError::Transport { .. }) && e.is_retryable(),
        "{e:?}"
    );
}
