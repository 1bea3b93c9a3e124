//! The reference service: a mail gateway's continuity service from one
//! configuration file.
//!
//! ```text
//! cargo run --example gateway -- --check examples/gateway.toml   # validate, print what would run
//! cargo run --example gateway -- examples/gateway.toml           # run until SIGTERM or ctrl-c
//! ```
//!
//! With `--check` it reads the file and refuses what building the service
//! would (secrets and files read, adapters and the engine built, the
//! store's settings checked), without opening the store or connecting
//! anywhere, then prints what it would run.
//!
//! Otherwise it reads the file (`continuity::service::ServiceConfig`:
//! SQLite by the example's file, PostgreSQL and a cluster name by
//! configuration; the notifiers wrapped in `Delivery`; EWS or Graph probes
//! per tenant), then serves on `[http] listen`, within the configured
//! header, request and body limits:
//!
//! - the portal under the path of `portal_url` (`/continuity`);
//! - `POST /observe`: the gateway's deliveries, one JSON object or an array
//!   (`continuity::service::http::ObservationInput`);
//! - `GET /healthz`: the monitor's health (`503` when failing);
//! - `GET /metrics`: every metric in Prometheus's text format (the exporter
//!   is this program's choice; the library only records through the
//!   `metrics` facade);
//!
//! and ticks every `[runner] interval`. SIGTERM or ctrl-c stops it cleanly:
//! the requests in flight finish, the running tick finishes, and the
//! monitor hands back what it holds.

use std::process::ExitCode;

use axum::{Router, routing::get};
use continuity::service::{ServiceConfig, shutdown_signal};
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (check, path) = match args.as_slice() {
        [flag, path] if flag == "--check" => (true, path),
        [path] if !path.starts_with('-') => (false, path),
        _ => {
            eprintln!("usage: gateway [--check] FILE.toml");
            return ExitCode::from(2);
        }
    };
    let config = match ServiceConfig::from_file(path) {
        Ok(c) => c,
        Err(e) => {
            // The error names the file.
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        // Everything building would refuse, short of opening the store.
        if let Err(e) = config.service().check().await {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
        println!("{path} is valid; it would run:\n{}", config.describe());
        return ExitCode::SUCCESS;
    }
    let prometheus = match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("installing the metrics recorder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let service = match config.service().build().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let extra = Router::new().route("/metrics", get(move || async move { prometheus.render() }));
    match service.serve(extra, shutdown_signal()).await {
        Ok(summary) => {
            println!("stopped after {} ticks", summary.ticks);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
