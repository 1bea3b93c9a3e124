//! The service's HTTP side: the portal, the gateway's observation endpoint
//! (`POST /observe`), its health (`GET /healthz`), and [`serve`], which bounds how long a client may
//! take with its headers, its request and its body.
//!
//! `axum::serve` sets no timeout at all: 200 clients sending their headers
//! a byte a second kept their connections for as long as they liked. So
//! [`serve`] drives hyper's HTTP/1 connections itself, with hyper's
//! header-read timeout, a timeout on the whole request (body included;
//! `408`), a body limit (`413`), and a graceful shutdown that lets
//! requests in flight finish.

use std::{future::Future, pin::pin, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use continuity_core::{
    Direction, Monitor, Observation, TenantId, domain::FailureKind, duration::serde_duration,
    monitor::HealthStatus, window::Recorded,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;
use tracing::{debug, info, warn};

/// Default address the service listens on: `127.0.0.1:8080`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default time a client has to send its request's headers: 10 seconds.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a request may take, its body and the answer included: 30 seconds.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest request body: 1 MiB (about 10,000 observations).
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Default time requests in flight get to finish at shutdown: 10 seconds.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// The HTTP server as configured (`[http]`; every field optional):
///
/// ```toml
/// listen = "127.0.0.1:8080"   # address and port
/// header_timeout = "10s"      # to send the request's headers
/// request_timeout = "30s"     # for the whole request, body and answer included (then 408)
/// max_body_bytes = 1048576    # larger bodies are refused (413)
/// drain = "10s"               # for requests in flight at shutdown
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address and port to listen on (default [`DEFAULT_LISTEN`]).
    pub listen: String,
    /// Time a client has to send its headers (default [`DEFAULT_HEADER_TIMEOUT`]).
    #[serde(with = "serde_duration")]
    pub header_timeout: Duration,
    /// Time a request may take, body and answer included (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]).
    #[serde(with = "serde_duration")]
    pub request_timeout: Duration,
    /// Largest request body in bytes (default [`DEFAULT_MAX_BODY`]).
    pub max_body_bytes: usize,
    /// Time requests in flight get to finish at shutdown (default [`DEFAULT_DRAIN`]).
    #[serde(with = "serde_duration")]
    pub drain: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: DEFAULT_LISTEN.into(),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY,
            drain: DEFAULT_DRAIN,
        }
    }
}

/// One delivery the gateway saw, as `POST /observe` takes it (one object,
/// or an array of them):
///
/// ```json
/// {"tenant": "acme", "direction": "inbound", "at": "2026-03-02T09:00:12Z", "latency_ms": 1250}
/// {"tenant": "acme", "direction": "outbound", "at": "2026-03-02T09:00:13Z",
///  "failed": "timed_out", "reply": "421 4.4.2 connection timed out"}
/// ```
///
/// `direction` is `inbound` (gateway → Exchange) or `outbound`; `at` is
/// when the outcome was known (RFC 3339); either `latency_ms` (delivered
/// after that long) or `failed` (`refused`, `deferred`, `timed_out`,
/// `unreachable`, `lost_probe`, `other`), with the remote's `reply` if
/// any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservationInput {
    /// The tenant's id.
    pub tenant: TenantId,
    /// Which way the message went.
    pub direction: Direction,
    /// When the outcome was known.
    pub at: DateTime<Utc>,
    /// Delivered after this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Not delivered, for this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailureKind>,
    /// What the remote answered to a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

impl ObservationInput {
    /// The observation, or why there is none.
    pub fn observation(self) -> Result<Observation, String> {
        match (self.latency_ms, self.failed) {
            (Some(ms), None) => Ok(Observation::delivered(
                self.tenant,
                self.direction,
                self.at,
                Duration::from_millis(ms),
            )),
            (None, Some(kind)) => {
                let o = Observation::failed(self.tenant, self.direction, self.at, kind);
                Ok(match self.reply {
                    Some(reply) => o.with_reply(reply),
                    None => o,
                })
            }
            _ => Err("give either latency_ms (delivered) or failed (not delivered)".into()),
        }
    }
}

/// Either one observation or a batch.
#[derive(Deserialize)]
#[serde(untagged)]
enum Batch {
    One(ObservationInput),
    Many(Vec<ObservationInput>),
}

/// What `POST /observe` did with a batch (`200`, even when some were
/// refused: the others count).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveAnswer {
    /// Counted here.
    pub counted: u64,
    /// Passed on to the instance that owns the tenant (in a cluster).
    pub forwarded: u64,
    /// Older than the tenant's window: dropped.
    pub too_old: u64,
    /// Refused, each with its place in the batch and the reason.
    pub refused: Vec<Refused>,
}

/// An observation `POST /observe` refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Its index in the batch (0 for a single object).
    pub index: usize,
    /// Why (unknown tenant, stamped too far ahead, neither or both outcomes).
    pub reason: String,
}

async fn observe(
    State(monitor): State<Arc<Monitor>>,
    Json(batch): Json<Batch>,
) -> (StatusCode, Json<ObserveAnswer>) {
    let batch = match batch {
        Batch::One(o) => vec![o],
        Batch::Many(v) => v,
    };
    let mut answer = ObserveAnswer::default();
    for (index, input) in batch.into_iter().enumerate() {
        let recorded = input
            .observation()
            .and_then(|o| monitor.observe(o).map_err(|e| e.to_string()));
        match recorded {
            Ok(Recorded::Counted) => answer.counted += 1,
            Ok(Recorded::Forwarded) => answer.forwarded += 1,
            Ok(Recorded::TooOld) => answer.too_old += 1,
            Err(reason) => answer.refused.push(Refused { index, reason }),
        }
    }
    (StatusCode::OK, Json(answer))
}

async fn healthz(
    State(monitor): State<Arc<Monitor>>,
) -> (StatusCode, Json<continuity_core::monitor::Health>) {
    let health = monitor.health_now().await;
    let status = match health.status {
        HealthStatus::Failing => StatusCode::SERVICE_UNAVAILABLE,
        HealthStatus::Ok | HealthStatus::Degraded => StatusCode::OK,
    };
    (status, Json(health))
}

/// The gateway's endpoints: `POST /observe` (see [`ObservationInput`])
/// and `GET /healthz`, the monitor's [`Health`](continuity_core::monitor::Health)
/// as JSON: `200` when `ok` or `degraded` (still doing its job; the
/// `reasons` say what needs a look), `503` when `failing` (the store does
/// not answer, or ticks stopped), for a load balancer or an orchestrator's
/// probe.
pub fn observe_router(monitor: Arc<Monitor>) -> Router {
    Router::new()
        .route("/observe", post(observe))
        .route("/healthz", get(healthz))
        .with_state(monitor)
}

/// Serves `app` on `listener` until `shutdown` completes, within the
/// bounds of `settings`: headers within `header_timeout` (the connection
/// is closed), the whole request within `request_timeout` (`408`), bodies
/// up to `max_body_bytes` (`413`). At shutdown it stops accepting, lets the
/// requests in flight finish for up to `drain`, then returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &HttpSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = app
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ));
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    info!(address = %listener.local_addr()?, "serving HTTP");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: wait rather than spin.
                        warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(settings.header_timeout);
                let service = TowerToHyperService::new(app.clone());
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(settings.drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(drain = ?settings.drain, "requests still in flight at shutdown were cut off");
    }
    Ok(())
}
