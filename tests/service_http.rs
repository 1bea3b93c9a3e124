//! The service's HTTP side over real sockets: `POST /observe` takes one
//! observation or a batch and says what became of each; a client that is
//! slow with its headers, its body or its request is cut off within the
//! configured bounds; a body over the limit is refused; at shutdown a
//! request in flight still gets its answer.

#![cfg(all(feature = "service", feature = "sqlite"))]

use std::{sync::Arc, time::Duration};

use continuity::{
    ManualClock,
    service::{Service, ServiceConfig, http::ObserveAnswer},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};

const CONFIG: &str = r#"
    portal_url = "http://127.0.0.1/continuity/"
    [store]
    memory = true
    [http]
    header_timeout = "1s"
    request_timeout = "1s"
    max_body_bytes = 4096
    drain = "5s"
    [links]
    keys = [ { id = "k1", secret = { inline = "0123456789abcdef0123456789abcdef" } } ]
    [portal]
    csrf_key = { inline = "fedcba9876543210fedcba9876543210" }
    [notifiers.webhook]
    secret = { inline = "a webhook secret of 32 bytes...." }
    [[tenants]]
    tenant = "acme"
    recipients = [ { id = "ops", channel = "webhook", address = "https://ops.acme.example/hook" } ]
"#;

struct Running {
    address: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    clock: ManualClock,
}

async fn start(extra: axum::Router) -> Running {
    let config = ServiceConfig::from_toml_str(CONFIG).unwrap();
    let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
    let service: Service = config
        .service()
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        service
            .serve_on(listener, extra, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        address,
        stop,
        task,
        clock,
    }
}

/// Sends `request` as it is and reads the answer until the server closes.
async fn raw(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(address).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn answer_json(answer: &str) -> ObserveAnswer {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_takes_one_or_a_batch_and_says_what_became_of_each() {
    let s = start(axum::Router::new()).await;
    let now = s.clock.now_rfc3339();
    let one = raw(
        s.address,
        &post(
            "/observe",
            &format!(r#"{{"tenant":"acme","direction":"inbound","at":"{now}","latency_ms":1200}}"#),
        ),
    )
    .await;
    assert!(one.starts_with("HTTP/1.1 200"), "{one}");
    assert_eq!(answer_json(&one).counted, 1);

    let batch = format!(
        r#"[{{"tenant":"acme","direction":"outbound","at":"{now}","failed":"timed_out","reply":"421 4.4.2 timed out"}},
            {{"tenant":"nobody","direction":"inbound","at":"{now}","latency_ms":5}},
            {{"tenant":"acme","direction":"inbound","at":"{now}"}},
            {{"tenant":"acme","direction":"inbound","at":"2026-03-01T09:00:00Z","latency_ms":5}}]"#
    );
    let answer = answer_json(&raw(s.address, &post("/observe", &batch)).await);
    assert_eq!((answer.counted, answer.too_old), (1, 1), "{answer:?}");
    let refused: Vec<(usize, &str)> = answer
        .refused
        .iter()
        .map(|r| (r.index, r.reason.as_str()))
        .collect();
    assert_eq!(refused.len(), 2, "{answer:?}");
    assert_eq!(refused[0].0, 1);
    assert!(refused[0].1.contains("nobody"), "{answer:?}");
    assert_eq!(refused[1].0, 2);
    assert!(refused[1].1.contains("latency_ms"), "{answer:?}");

    // Health: the runner ticked as it started, the store answers.
    let health = raw(
        s.address,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    assert!(health.contains(r#""last_tick_age":"0s""#), "{health}");
    assert!(health.contains(r#""store_reachable":true"#), "{health}");

    let _ = s.stop.send(());
    s.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_oversized_requests_are_cut_off() {
    let s = start(axum::Router::new()).await;
    // Headers a byte at a time, never finished: closed after the header timeout.
    let mut slow = TcpStream::connect(s.address).await.unwrap();
    slow.write_all(b"POST /observe HTTP/1.1\r\nhost")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 256];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a client that never finished its headers was kept"
    );

    // A body announced and never sent: 408 after the request timeout.
    let mut stalled = TcpStream::connect(s.address).await.unwrap();
    stalled
        .write_all(b"POST /observe HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n[")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled body was kept");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A body over the limit: 413.
    let big = format!("[{}]", vec!["{}"; 3000].join(","));
    let answer = raw(s.address, &post("/observe", &big)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let _ = s.stop.send(());
    s.task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_shutdown_gets_its_answer() {
    let (entered_tx, entered) = oneshot::channel::<()>();
    let entered_tx = Arc::new(std::sync::Mutex::new(Some(entered_tx)));
    let extra = axum::Router::new().route(
        "/slow",
        axum::routing::get(move || {
            let entered_tx = entered_tx.clone();
            async move {
                if let Some(tx) = entered_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }
        }),
    );
    let s = start(extra).await;
    let client = tokio::spawn(raw(
        s.address,
        b"GET /slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ));
    entered.await.unwrap();
    let _ = s.stop.send(());
    let answer = client.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("done"), "{answer}");
    s.task.await.unwrap();
    // Nothing listens any more.
    assert!(TcpStream::connect(s.address).await.is_err());
}

trait Rfc3339 {
    fn now_rfc3339(&self) -> String;
}

impl Rfc3339 for ManualClock {
    fn now_rfc3339(&self) -> String {
        use continuity::Clock;
        self.now().to_rfc3339()
    }
}
