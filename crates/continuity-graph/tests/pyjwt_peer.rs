//! Independent check: Python's PyJWT + cryptography verify our client
//! assertions against the certificate (installed by `scripts/prepare-test-env`).

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::TimeDelta;
use common::*;
use continuity_core::{Clock, SystemClock};
use continuity_graph::{AppRegistration, AssertionAlgorithm, CertificateCredential};
use secrecy::SecretString;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CONTINUITY_TEST_PYTHON") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/venv/bin/python");
    assert!(
        p.exists(),
        "Python with PyJWT not found at {}: run scripts/prepare-test-env (or set CONTINUITY_TEST_PYTHON)",
        p.display()
    );
    p
}

/// Runs the peer; `Ok` if PyJWT accepted the assertion, else its reason.
fn pyjwt(cert_pem: &std::path::Path, aud: &str, alg: &str, jwt: &str) -> Result<(), String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/verify_assertion.py");
    let mut child = Command::new(python())
        .arg(script)
        .args([cert_pem.to_str().unwrap(), aud, CLIENT_ID, alg])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the python peer");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(jwt.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "PyJWT/cryptography missing: run scripts/prepare-test-env\n{stderr}"
    );
    match out.status.code() {
        Some(0) if stdout == "ok" => Ok(()),
        Some(1) => Err(stdout),
        _ => panic!("python peer failed: {stdout}\n{stderr}"),
    }
}

struct TempFile(PathBuf);
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn pyjwt_verifies_our_assertions_against_the_certificate() {
    let c = rsa_cert_valid("monitor", (2020, 1, 1), (2100, 1, 1));
    let file = TempFile(std::env::temp_dir().join(format!(
        "continuity-graph-{}-{}.pem",
        std::process::id(),
        rand_suffix()
    )));
    std::fs::write(&file.0, &c.cert_pem).unwrap();
    // Real time: PyJWT checks exp/nbf/iat against this machine's clock.
    let clock = SystemClock;
    let from_pem =
        CertificateCredential::from_pem(c.cert_pem.as_bytes(), c.pkcs1_pem.as_bytes(), &clock)
            .unwrap();
    let from_pfx =
        CertificateCredential::from_pkcs12(&pkcs12(&c, "pw"), &SecretString::from("pw"), &clock)
            .unwrap();
    for cred in [from_pem, from_pfx] {
        let app = AppRegistration::new(TENANT, CLIENT_ID, Arc::new(cred)).unwrap();
        let aud = app.token_endpoint();
        let ps = app.client_assertion(clock.now()).unwrap();
        pyjwt(&file.0, &aud, "PS256", &ps).unwrap();
        let rs_app = app.clone().with_algorithm(AssertionAlgorithm::Rs256);
        pyjwt(
            &file.0,
            &aud,
            "RS256",
            &rs_app.client_assertion(clock.now()).unwrap(),
        )
        .unwrap();

        // The peer refuses what Entra ID would refuse: expired, wrong audience, altered.
        let stale = app
            .client_assertion(clock.now() - TimeDelta::minutes(20))
            .unwrap();
        let e = pyjwt(&file.0, &aud, "PS256", &stale).unwrap_err();
        assert!(e.contains("Expired"), "{e}");
        let e = pyjwt(
            &file.0,
            "https://login.microsoftonline.com/other/oauth2/v2.0/token",
            "PS256",
            &ps,
        )
        .unwrap_err();
        assert!(e.contains("Audience"), "{e}");
        let mut parts: Vec<String> = ps.split('.').map(str::to_owned).collect();
        let mut sig = parts[2].clone().into_bytes();
        let i = sig.len() / 2;
        sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
        parts[2] = String::from_utf8(sig).unwrap();
        let e = pyjwt(&file.0, &aud, "PS256", &parts.join(".")).unwrap_err();
        assert!(e.contains("Signature"), "{e}");
    }
    // Another certificate's assertion: refused.
    let other = rsa_cert_valid("other", (2020, 1, 1), (2100, 1, 1));
    let other_cred = CertificateCredential::from_pem(
        other.cert_pem.as_bytes(),
        other.pkcs8_pem.as_bytes(),
        &clock,
    )
    .unwrap();
    let other_app = AppRegistration::new(TENANT, CLIENT_ID, Arc::new(other_cred)).unwrap();
    let e = pyjwt(
        &file.0,
        &other_app.token_endpoint(),
        "PS256",
        &other_app.client_assertion(clock.now()).unwrap(),
    )
    .unwrap_err();
    assert!(e.contains("thumbprint"), "{e}");
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}
