//! The recipients' end: an HTTP server (on its own thread and runtime, so
//! that the test's blocking conversation with the nodes never stalls it)
//! that checks each webhook request's signature and records it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use chrono::{DateTime, Utc};
use continuity::notifiers::webhook::{
    IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookPayload, WebhookVerifier,
};

/// The secret the nodes sign with.
pub const SECRET: &[u8] = b"cluster-kill-test-secret";

/// How long each request is held before it is answered.
const HOLD: Duration = Duration::from_millis(150);

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The URL path's recipient (`/hook/<recipient>`).
    pub path_recipient: String,
    /// The `Idempotency-Key` header.
    pub key: String,
    pub payload: WebhookPayload,
}

#[derive(Debug, Default)]
pub struct Log {
    pub received: Vec<Received>,
    /// Requests refused, and why (a bad signature, a malformed body).
    pub refused: Vec<String>,
}

struct Shared {
    verifier: WebhookVerifier,
    log: Mutex<Log>,
    /// The simulated time (Unix seconds) the signatures' timestamps are
    /// judged against: the nodes sign with their manual clocks.
    now: AtomicI64,
}

/// The running receiver.
pub struct Receiver {
    shared: Arc<Shared>,
    pub url: String,
}

impl Receiver {
    pub fn start() -> Self {
        let shared = Arc::new(Shared {
            verifier: WebhookVerifier::new(SECRET, Duration::from_secs(600)),
            log: Mutex::new(Log::default()),
            now: AtomicI64::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let state = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the receiver");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind the receiver");
                tx.send(listener.local_addr().expect("its address"))
                    .expect("the test waits for the address");
                let app = Router::new()
                    .route("/hook/{recipient}", post(hook))
                    .with_state(state);
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("the receiver started");
        Receiver {
            shared,
            // As the tenants' configuration must name it; the nodes send
            // over plain HTTP (see `node.rs`, `PlainHttp`).
            url: format!("https://{addr}"),
        }
    }

    pub fn set_now(&self, now: DateTime<Utc>) {
        self.shared.now.store(now.timestamp(), Ordering::Relaxed);
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.shared.log.lock().expect("the log").received.len()
    }

    /// Waits up to `limit` for more than `seen` requests; the tenant of the
    /// first new one.
    pub fn wait_for_request(&self, seen: usize, limit: Duration) -> Option<String> {
        let step = Duration::from_millis(5);
        for _ in 0..(limit.as_millis() / step.as_millis()).max(1) {
            if let Some(r) = self.shared.log.lock().expect("the log").received.get(seen) {
                return Some(r.payload.tenant.to_string());
            }
            std::thread::sleep(step);
        }
        None
    }

    pub fn take(&self) -> Log {
        std::mem::take(&mut *self.shared.log.lock().expect("the log"))
    }
}

async fn hook(
    State(shared): State<Arc<Shared>>,
    Path(recipient): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = DateTime::from_timestamp(shared.now.load(Ordering::Relaxed), 0).unwrap_or_default();
    let checked = shared
        .verifier
        .verify(
            header(TIMESTAMP_HEADER),
            header(SIGNATURE_HEADER),
            &body,
            now,
        )
        .map_err(|e| e.to_string())
        .and_then(|()| {
            serde_json::from_slice::<WebhookPayload>(&body).map_err(|e| format!("body: {e}"))
        });
    let key = header(IDEMPOTENCY_HEADER).unwrap_or_default().to_string();
    match checked {
        Ok(payload) => {
            shared.log.lock().expect("the log").received.push(Received {
                path_recipient: recipient,
                key,
                payload,
            });
            // Recorded, not yet answered: a node killed now has delivered
            // without knowing it, as with a crash before the answer.
            tokio::time::sleep(HOLD).await;
            StatusCode::OK
        }
        Err(why) => {
            shared.log.lock().expect("the log").refused.push(why);
            // Not retried by the notifier: a refusal shows as missing alerts.
            StatusCode::BAD_REQUEST
        }
    }
}
