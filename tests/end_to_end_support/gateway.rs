//! The gateway service in its own process, and the test's handle on it.
//!
//! The test binary runs itself again (`current_exe`) with [`GATEWAY_ENV`]
//! set to a [`GatewaySpec`], filtered to the `end_to_end_gateway` test,
//! which builds the service from the TOML file the test wrote
//! (`ServiceConfig::from_file`, SQLite in the test's directory), installs
//! a Prometheus recorder as `examples/gateway.rs` does, and serves
//! `Service::router()` with `GET /metrics` merged in on the configured
//! `[http] listen` address, for real, while it answers commands on stdin,
//! one a line, with one answer a line on stdout (prefixed [`REPLY`], since
//! the test harness writes there too):
//!
//! | command | answer |
//! |---|---|
//! | `tick <RFC 3339 time>` | the clock set to that time, one `Monitor::tick`: `{"errors": [...], "alerts": n, ...}` |
//! | `arrive <JSON>` | an outbound probe reached the gateway (`Service::arrivals()`): `{"tenant": ...}` |
//! | `quit` | `{"stopped": true}` after `Monitor::shut_down`, then the process ends |
//!
//! Time is the test's: the service's clock is a `ManualClock` set at each
//! `tick`, and the service ticks only when told to, instead of its
//! `Runner`'s real-time loop, so that hours of mail flow take seconds.
//! The hook appends one line a call to the spec's `hook_log`, flushed
//! before it returns, so that the test reads what it saw even after a
//! `kill -9`.

use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::{
        Arc,
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    time::Duration,
};

use axum::{Router, routing::get};
use chrono::{DateTime, Utc};
use continuity::{
    ManualClock, TenantId, async_trait,
    hook::ContinuityHook,
    machine::ContinuityEvent,
    service::{Service, ServiceConfig, http},
};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The variable that makes the test binary the gateway.
pub const GATEWAY_ENV: &str = "CONTINUITY_E2E_GATEWAY";
/// What starts each answer line.
pub const REPLY: &str = "@@ ";

/// What the gateway process needs to start.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GatewaySpec {
    /// The service's configuration file.
    pub config: PathBuf,
    /// The clock's time at start.
    pub start: DateTime<Utc>,
    /// Where the hook writes its calls, one a line.
    pub hook_log: PathBuf,
}

/// An outbound probe as the gateway received it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Arrival {
    pub subject: String,
    pub header: Option<String>,
    pub at: DateTime<Utc>,
}

/// The hook: one line a call, `started <tenant> <event id>` or
/// `ended <tenant> <event id>`.
#[derive(Debug)]
struct FileHook(PathBuf);

impl FileHook {
    fn append(&self, line: &str) -> continuity::Result<()> {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.0)
            .and_then(|mut f| {
                writeln!(f, "{line}")?;
                f.sync_data()
            });
        written.map_err(|e| continuity::Error::hook_transient(format!("{}: {e}", self.0.display())))
    }
}

#[async_trait]
impl ContinuityHook for FileHook {
    async fn event_started(
        &self,
        tenant: &TenantId,
        event: &ContinuityEvent,
    ) -> continuity::Result<()> {
        self.append(&format!("started {tenant} {}", event.id))
    }

    async fn event_ended(
        &self,
        tenant: &TenantId,
        event: &ContinuityEvent,
    ) -> continuity::Result<()> {
        self.append(&format!("ended {tenant} {}", event.id))
    }
}

/// The gateway's side: runs until `quit`, the end of its stdin, or SIGKILL.
pub fn serve(spec: &str) {
    let spec: GatewaySpec = serde_json::from_str(spec).expect("the gateway's spec");
    // Two workers: the HTTP side answers while the main thread waits for
    // the next command.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("the Prometheus recorder");
    let clock = ManualClock::new(spec.start);
    let (service, address) = rt.block_on(async {
        let config = ServiceConfig::from_file(&spec.config).unwrap_or_else(|e| panic!("{e}"));
        let service: Service = config
            .service()
            .clock(Arc::new(clock.clone()))
            .hook(Arc::new(FileHook(spec.hook_log.clone())))
            .build()
            .await
            .unwrap_or_else(|e| panic!("building the service: {e}"));
        let settings = service.http_settings().clone();
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .unwrap_or_else(|e| panic!("listening on {}: {e}", settings.listen));
        let address = listener.local_addr().expect("the listener's address");
        let app = service.router().merge(
            Router::new().route("/metrics", get(move || async move { prometheus.render() })),
        );
        tokio::spawn(async move {
            if let Err(e) = http::serve(listener, app, &settings, std::future::pending()).await {
                eprintln!("the gateway's HTTP server stopped: {e}");
            }
        });
        (service, address)
    });
    println!(
        "{REPLY}{}",
        json!({"ready": true, "address": address.to_string()})
    );
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (answer, quit) = rt.block_on(handle(&service, &clock, line.trim()));
        println!("{REPLY}{answer}");
        if quit {
            break;
        }
    }
}

async fn handle(service: &Service, clock: &ManualClock, line: &str) -> (Value, bool) {
    let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
    match command {
        "tick" => (tick(service, clock, rest).await, false),
        "arrive" => (arrive(service, rest), false),
        "quit" => {
            let stopped = service.monitor().shut_down().await;
            (
                json!({"stopped": stopped.is_ok(), "error": stopped.err().map(|e| e.to_string())}),
                true,
            )
        }
        other => (
            json!({"error": format!("unknown command {other:?}")}),
            false,
        ),
    }
}

async fn tick(service: &Service, clock: &ManualClock, at: &str) -> Value {
    let now: DateTime<Utc> = match at.parse() {
        Ok(t) => t,
        Err(e) => return json!({"errors": [format!("time {at:?}: {e}")]}),
    };
    clock.set(now);
    match service.monitor().tick(now).await {
        Ok(r) => json!({
            "errors": r.errors,
            "probes_dispatched": r.probes_dispatched,
            "probes_arrived": r.probes_arrived,
            "probes_lost": r.probes_lost,
            "transitions": r.transitions,
            "alerts": r.alerts,
            "deliveries": r.deliveries,
            "delivery_failures": r.delivery_failures,
            "hook_calls": r.hook_calls,
        }),
        Err(e) => json!({"errors": [format!("tick: {e}")]}),
    }
}

fn arrive(service: &Service, arrival: &str) -> Value {
    let arrival: Arrival = match serde_json::from_str(arrival) {
        Ok(a) => a,
        Err(e) => return json!({"error": format!("arrival: {e}")}),
    };
    let found = service.arrivals().report_message(
        Some(&arrival.subject),
        arrival.header.as_deref(),
        arrival.at,
    );
    json!({"tenant": found.map(|(tenant, _)| tenant.to_string())})
}

/// Forwards the gateway's answers until its stdout ends.
fn read_answers(mut stdout: BufReader<ChildStdout>, answers: &Sender<Value>) {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                // The harness's "test end_to_end_gateway ... " may start
                // the first answer's line.
                if let Some(at) = line.find(REPLY) {
                    let answer = line[at + REPLY.len()..].trim_end();
                    let answer = serde_json::from_str(answer)
                        .unwrap_or_else(|e| Value::String(format!("not JSON ({e}): {answer}")));
                    if answers.send(answer).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The test's handle on the gateway process.
pub struct GatewayProcess {
    /// Where its HTTP side listens.
    pub address: String,
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<Value>,
}

/// The longest the gateway may take to answer one command.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

impl GatewayProcess {
    /// Starts the gateway and waits until it serves.
    pub fn spawn(spec: &GatewaySpec) -> GatewayProcess {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "end_to_end_gateway",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(GATEWAY_ENV, serde_json::to_string(spec).expect("the spec"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the gateway");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || read_answers(stdout, &tx));
        let mut gateway = GatewayProcess {
            address: String::new(),
            child,
            stdin,
            answers,
        };
        let ready = gateway
            .read()
            .expect("the gateway ended before it was ready (see its stderr above)");
        assert_eq!(ready["ready"], true, "{ready}");
        gateway.address = ready["address"].as_str().expect("an address").to_owned();
        gateway
    }

    /// Sends one command without waiting for its answer.
    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("the gateway: write: {e}"));
    }

    /// The next answer if one comes within `timeout`.
    ///
    /// # Panics
    /// When the process ended.
    pub fn try_answer(&mut self, timeout: Duration) -> Option<Value> {
        match self.answers.recv_timeout(timeout) {
            Ok(answer) => Some(answer),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("the gateway ended"),
        }
    }

    fn read(&mut self) -> Option<Value> {
        match self.answers.recv_timeout(ANSWER_WITHIN) {
            Ok(answer) => Some(answer),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("the gateway answered nothing within {ANSWER_WITHIN:?}")
            }
        }
    }

    /// Sends one command and waits for its answer.
    pub fn ask(&mut self, command: &str) -> Value {
        self.send(command);
        self.read()
            .unwrap_or_else(|| panic!("the gateway ended during {command:.40}"))
    }

    /// Sends `command`, then SIGKILLs the process `after` later, whatever
    /// it is doing then (the command may be done, half done or not begun).
    pub fn kill_during(mut self, command: &str, after: Duration) {
        self.send(command);
        std::thread::sleep(after);
        self.kill();
    }

    /// SIGKILL: no shut-down, no clean-up, whatever it was doing.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the gateway");
        let status = self.child.wait().expect("the gateway's exit");
        assert!(!status.success(), "killed, yet it exited cleanly: {status}");
    }

    /// A clean stop: `Monitor::shut_down`, then the process's exit status.
    pub fn quit(mut self) -> Value {
        let answer = self.ask("quit");
        let status = self.child.wait().expect("the gateway's exit");
        assert!(status.success(), "the gateway exited with {status}");
        answer
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        // A failing test leaves no process behind (a no-op once it has ended).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
