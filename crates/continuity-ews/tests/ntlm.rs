//! NTLM against an independent acceptor: pyspnego's NTLM server context
//! behind a keep-alive HTTP/1.1 server (`tests/peers/ntlm_acceptor.py`),
//! which binds the handshake to the TCP connection as IIS does.
#![cfg(feature = "ntlm")]

mod common;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use continuity_ews::{Auth, EwsClient, EwsConnectionProblem, EwsError};

/// The Python peer; killed on drop.
struct Acceptor {
    child: Child,
    port: u16,
    _users: tempfile_guard::TempFile,
}

mod tempfile_guard {
    pub struct TempFile(pub std::path::PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> PathBuf {
    let p = std::env::var_os("CONTINUITY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/venv/bin/python")
        });
    assert!(
        p.exists(),
        "Python test venv missing at {} (run scripts/prepare-test-env)",
        p.display()
    );
    p
}

fn start_acceptor() -> Acceptor {
    let users = std::env::temp_dir().join(format!(
        "continuity-ntlm-users-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&users, "CONTOSO:svc-continuity:Pa55w.rd-NTLM\n").unwrap();
    let mut child = Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ntlm_acceptor.py"))
        .env("NTLM_USER_FILE", &users)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the NTLM acceptor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("the NTLM acceptor did not start (is pyspnego installed? scripts/prepare-test-env): {line:?}")
    });
    Acceptor {
        child,
        port,
        _users: tempfile_guard::TempFile(users),
    }
}

async fn stats(port: u16) -> serde_like::Stats {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/stats"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_like::parse(&body)
}

/// Tiny reader of the peer's flat JSON counters (no serde in this crate).
mod serde_like {
    #[derive(Debug)]
    pub struct Stats {
        pub connections: u64,
        pub handshakes: u64,
        pub authenticated_requests: u64,
        pub failures: u64,
        pub body: String,
    }
    fn num(body: &str, key: &str) -> u64 {
        let at = body
            .find(&format!("\"{key}\": "))
            .unwrap_or_else(|| panic!("{key} in {body}"))
            + key.len()
            + 4;
        body[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap()
    }
    pub fn parse(body: &str) -> Stats {
        Stats {
            connections: num(body, "connections"),
            handshakes: num(body, "handshakes"),
            authenticated_requests: num(body, "authenticated_requests"),
            failures: num(body, "failures"),
            body: body.to_owned(),
        }
    }
}

fn ntlm_client(port: u16, password: &str) -> EwsClient {
    let mut cfg = common::config(&format!("http://127.0.0.1:{port}/EWS/Exchange.asmx"));
    cfg.auth = Auth::ntlm("CONTOSO", "svc-continuity", password);
    cfg.retry.max_attempts = 1;
    EwsClient::new(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_handshake_is_accepted_and_the_connection_stays_authenticated() {
    let peer = start_acceptor();
    let c = ntlm_client(peer.port, "Pa55w.rd-NTLM");
    let info = c.check_connection("probe@contoso.example").await.unwrap();
    let inbox = info.inbox.unwrap().display_name.unwrap();
    assert!(
        inbox.contains("svc-continuity"),
        "the acceptor saw our user: {inbox}"
    );
    for _ in 0..3 {
        c.check_connection("probe@contoso.example").await.unwrap();
    }
    let s = stats(peer.port).await;
    assert_eq!(
        s.handshakes, 1,
        "one handshake, then the kept-alive connection is reused: {}",
        s.body
    );
    assert_eq!(s.authenticated_requests, 4, "{}", s.body);
    assert_eq!(s.failures, 0, "{}", s.body);
    assert!(s.body.contains("CONTOSO\\\\svc-continuity"), "{}", s.body);
    assert!(!format!("{c:?}").contains("Pa55w.rd"), "password in Debug");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ntlm_password_is_refused() {
    let peer = start_acceptor();
    let c = ntlm_client(peer.port, "not-the-password");
    let p = c
        .check_connection("probe@contoso.example")
        .await
        .unwrap_err();
    assert!(
        matches!(
            p,
            EwsConnectionProblem::BadCredentials(EwsError::Unauthorized { .. })
        ),
        "{p:?}"
    );
    assert!(!p.to_string().contains("not-the-password"));
    let s = stats(peer.port).await;
    assert_eq!((s.handshakes, s.failures), (0, 1), "{}", s.body);
    assert!(s.connections >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_against_a_server_without_it_and_over_broken_tls() {
    let clock = common::manual_clock();
    let s = continuity_test_support::ews_server::EwsServer::start(common::arc_clock(&clock)).await;
    // The local EWS server offers NTLM in its challenge list but cannot do it.
    let mut cfg = common::config(&s.url);
    cfg.auth = Auth::ntlm("CONTOSO", "svc-continuity", "pw");
    cfg.retry.max_attempts = 1;
    let e = EwsClient::new(cfg.clone())
        .unwrap()
        .check_connection("a@contoso.example")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            EwsConnectionProblem::BadCredentials(EwsError::Unauthorized { .. })
        ),
        "{e:?}"
    );
    // https to a plain-HTTP server: a TLS error, as with the pooled client.
    cfg.endpoint = s.url.replace("http://", "https://");
    let e = EwsClient::new(cfg)
        .unwrap()
        .check_connection("a@contoso.example")
        .await
        .unwrap_err();
    assert!(matches!(e, EwsConnectionProblem::Tls(_)), "{e:?}");
}
