//! Starts the aiosmtpd peer (`peers/smtp_server.py` of this crate) on a free
//! loopback port, with a test CA and server certificate made at test time,
//! and reads the messages it received (headers, body and the raw message, as
//! JSON). The peer refuses `reject-*` recipients. Used by the SMTP notifier's
//! tests and bench and by the SMTP probe sender's tests.

use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{Receiver, RecvTimeoutError, channel},
    time::Duration,
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

/// A test CA and a `localhost` / `127.0.0.1` certificate it signed, as files.
#[derive(Debug)]
pub struct TestCert {
    /// The CA's certificate (PEM), for clients to trust.
    pub ca_pem: Vec<u8>,
    /// The server certificate (DER).
    pub cert_der: Vec<u8>,
    /// The server's private key (PKCS#8 DER).
    pub key_der: Vec<u8>,
    /// The server certificate as a PEM file.
    pub cert_path: PathBuf,
    /// The server's private key as a PEM file.
    pub key_path: PathBuf,
    dir: PathBuf,
}

impl TestCert {
    /// A new CA and server certificate, written to a temporary directory
    /// removed on drop.
    ///
    /// # Panics
    /// When the files cannot be written.
    pub fn generate() -> TestCert {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "continuity test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &*ca).unwrap();

        let dir = std::env::temp_dir().join(format!(
            "continuity-notify-cert-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let cert_path = dir.join("server.pem");
        let key_path = dir.join("server.key");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        TestCert {
            ca_pem: ca.pem().into_bytes(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            cert_path,
            key_path,
            dir,
        }
    }
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The user the peer accepts (AUTH), when started with a certificate.
pub const USER: &str = "alerts@relay.example";
/// [`USER`]'s password.
pub const PASSWORD: &str = "relay-password-42";

/// The running server; killed on drop.
#[derive(Debug)]
pub struct SmtpPeer {
    /// The loopback port it listens on.
    pub port: u16,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl SmtpPeer {
    /// Starts the peer; `mode`: `starttls`, `implicit` or `plain`. With
    /// `cert` it serves that certificate and requires AUTH as [`USER`].
    ///
    /// # Panics
    /// When Python or aiosmtpd is missing (run `scripts/prepare-test-env`)
    /// or the peer does not start within 30 s.
    pub fn start(mode: &str, cert: Option<&TestCert>) -> SmtpPeer {
        let python = crate::test_python();
        assert!(
            python.exists(),
            "Python for the SMTP test peer not found at {} (set CONTINUITY_TEST_PYTHON or run scripts/prepare-test-env)",
            python.display()
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/smtp_server.py");
        let mut cmd = Command::new(&python);
        cmd.arg(&script).arg(mode);
        if let Some(c) = cert {
            cmd.arg(&c.cert_path)
                .arg(&c.key_path)
                .arg(USER)
                .arg(PASSWORD);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the aiosmtpd peer did not start (is aiosmtpd installed? run scripts/prepare-test-env); see its stderr above"
                )
            }
        };
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the SMTP peer: {first:?}"));
        let stdin = child.stdin.take();
        SmtpPeer {
            port,
            child,
            stdin,
            lines,
        }
    }

    /// The next message received, parsed, within `timeout`.
    ///
    /// # Panics
    /// When none comes within `timeout` or the peer exited.
    pub fn next_message(&self, timeout: Duration) -> serde_json::Value {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => serde_json::from_str(&l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")),
            Err(RecvTimeoutError::Timeout) => {
                panic!("no message reached the SMTP server within {timeout:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the SMTP server exited"),
        }
    }

    /// The next message received within `timeout`, if one came.
    pub fn try_next_message(&self, timeout: Duration) -> Option<serde_json::Value> {
        self.lines
            .recv_timeout(timeout)
            .ok()
            .map(|l| serde_json::from_str(&l).unwrap())
    }

    /// Messages received so far without waiting.
    pub fn drain(&self) -> Vec<serde_json::Value> {
        self.lines
            .try_iter()
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect()
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The values of header `name` (case-insensitive) in a parsed message.
///
/// # Panics
/// When `msg` is not a message of [`SmtpPeer`].
pub fn header<'a>(msg: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    msg["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
        .collect()
}
