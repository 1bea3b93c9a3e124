//! One cluster instance in its own process, and the test's handle on it.
//!
//! The test binary runs itself again (`current_exe`) with [`NODE_ENV`] set
//! to a [`NodeSpec`], filtered to the `cluster_kill_node` test, which then
//! serves commands on stdin, one a line, with one answer a line on stdout
//! (prefixed [`REPLY`], since the test harness writes there too):
//!
//! | command | answer |
//! |---|---|
//! | `observe <JSON list of observations>` | `{"counted": n, "errors": [...]}` |
//! | `tick <RFC 3339 time>` | `{"errors": [...], "alerts": n, "deliveries": n, "owned": [tenant, ...]}` |
//! | `status <tenant> <RFC 3339 time>` | the portal's view of the tenant and `status_current`'s state |
//! | `quit` | `{"left": true}` after `leave_cluster`, then the process ends |
//!
//! Time is the test's: the node's `ManualClock` is set at every tick.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::{
        Arc,
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use continuity::{
    ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, TenantConfig},
    link::{LinkClaims, LinkKey, LinkSigner},
    monitor::MonitorSettings,
    notifiers::webhook::{WebhookConfig, WebhookNotifier},
    notify::{AlertMessage, Notifier, Receipt},
    portal::{self, PortalOutcome},
    stores::{PostgresOptions, PostgresStore},
    window::Recorded,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::receiver::SECRET;

/// The variable that makes the test binary a node.
pub const NODE_ENV: &str = "CONTINUITY_CLUSTER_KILL_NODE";
/// What starts each answer line.
pub const REPLY: &str = "@@ ";

/// What a node needs to start.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeSpec {
    pub pg_url: String,
    pub schema: String,
    pub instance: String,
    pub start: DateTime<Utc>,
    pub tenants: Vec<TenantConfig>,
}

/// The settings every instance (and the single instance the cluster is
/// compared with) runs with: the defaults, whose lease (2 min) bounds how
/// long a dead instance's shards wait for a new owner.
pub fn settings() -> MonitorSettings {
    MonitorSettings::default()
}

/// The portal links' signer: one key for every instance, so a link sent by
/// one opens the portal on any.
pub fn signer() -> LinkSigner {
    LinkSigner::new(LinkKey::new("k1", [7u8; 32]).expect("a valid key"))
}

pub const PORTAL_URL: &str = "https://continuity.example.net/c/";

/// The node's side: runs until `quit` or the end of its stdin.
pub fn serve(spec: &str) {
    let spec: NodeSpec = serde_json::from_str(spec).expect("the node's spec");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let node = rt.block_on(Node::start(spec));
    println!("{REPLY}{}", json!({"ready": true}));
    // Reads block outside the runtime: its tasks (pooled connections) are
    // idle between commands and go on at the next one.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (answer, quit) = rt.block_on(node.handle(line.trim()));
        println!("{REPLY}{answer}");
        if quit {
            break;
        }
    }
}

struct Node {
    monitor: Monitor,
    clock: ManualClock,
    tenants: Vec<TenantId>,
}

impl Node {
    async fn start(spec: NodeSpec) -> Node {
        let store = PostgresStore::connect_with(
            &spec.pg_url,
            PostgresOptions {
                schema: spec.schema.clone(),
                pool_size: 4,
                ..PostgresOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("node {}: PostgreSQL: {e}", spec.instance));
        let clock = ManualClock::new(spec.start);
        let webhook = WebhookNotifier::new(
            WebhookConfig {
                allow_plain_http: true,
                ..WebhookConfig::new(SECRET.to_vec())
            },
            Arc::new(clock.clone()),
        )
        .expect("the webhook notifier");
        let monitor = Monitor::builder()
            .clock(Arc::new(clock.clone()))
            .store(Arc::new(store))
            .notifier(Arc::new(PlainHttp(webhook)))
            .link_signer(signer())
            .portal_url(PORTAL_URL)
            .settings(settings())
            .cluster(spec.instance.clone())
            .build()
            .expect("the monitor");
        let mut tenants = Vec::new();
        for config in spec.tenants {
            tenants.push(config.tenant.clone());
            monitor
                .register_tenant(config)
                .await
                .expect("register a tenant");
        }
        Node {
            monitor,
            clock,
            tenants,
        }
    }

    async fn handle(&self, line: &str) -> (Value, bool) {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        match command {
            "observe" => (self.observe(rest), false),
            "tick" => (self.tick(rest).await, false),
            "status" => (self.status(rest).await, false),
            "quit" => {
                let left = self.monitor.leave_cluster().await;
                (
                    json!({"left": left.is_ok(), "error": left.err().map(|e| e.to_string())}),
                    true,
                )
            }
            other => (
                json!({"error": format!("unknown command {other:?}")}),
                false,
            ),
        }
    }

    fn observe(&self, batch: &str) -> Value {
        let batch: Vec<Observation> = match serde_json::from_str(batch) {
            Ok(b) => b,
            Err(e) => return json!({"counted": 0, "errors": [format!("batch: {e}")]}),
        };
        let (mut counted, mut errors) = (0u64, Vec::new());
        for o in batch {
            match self.monitor.observe(o) {
                // Forwarded: on its way to the owner, counted there.
                Ok(Recorded::Counted | Recorded::Forwarded) => counted += 1,
                Ok(Recorded::TooOld) => errors.push("an observation was too old".to_string()),
                Err(e) => errors.push(e.to_string()),
            }
        }
        json!({"counted": counted, "errors": errors})
    }

    async fn tick(&self, at: &str) -> Value {
        let now: DateTime<Utc> = match at.parse() {
            Ok(t) => t,
            Err(e) => return json!({"errors": [format!("time {at:?}: {e}")]}),
        };
        self.clock.set(now);
        match self.monitor.tick(now).await {
            Ok(report) => {
                let owned = self.monitor.owned_shards();
                let owned: Vec<&str> = self
                    .tenants
                    .iter()
                    .filter(|t| owned.holds(t))
                    .map(TenantId::as_str)
                    .collect();
                json!({
                    "errors": report.errors,
                    "alerts": report.alerts,
                    "deliveries": report.deliveries,
                    "owned": owned,
                })
            }
            Err(e) => json!({"errors": [format!("tick: {e}")]}),
        }
    }

    async fn status(&self, args: &str) -> Value {
        let (tenant, at) = args.split_once(' ').unwrap_or((args, ""));
        let (Ok(tenant), Ok(now)) = (TenantId::new(tenant), at.parse::<DateTime<Utc>>()) else {
            return json!({"error": format!("status {args:?}: a tenant and a time")});
        };
        let claims = LinkClaims {
            tenant: tenant.clone(),
            alert_id: 0,
            recipient: "ops-a".into(),
        };
        let link = match self.monitor.link_signer().sign(&claims, now) {
            Ok(l) => l,
            Err(e) => return json!({"error": format!("sign: {e}")}),
        };
        let view = match portal::open(&self.monitor, &link, None, now).await {
            Ok(PortalOutcome::Done(view)) => view,
            other => return json!({"error": format!("portal: {other:?}")}),
        };
        let current = match self.monitor.status_current(&tenant).await {
            Ok(s) => s,
            Err(e) => return json!({"error": format!("status_current: {e}")}),
        };
        // What the stored state decides; the readings (this instance's
        // windows) differ between instances by design and are left out.
        json!({
            "portal": {
                "version": view.version,
                "incident": view.incident,
                "last_alert_at": view.last_alert_at,
                "recent_alerts": view.recent_alerts,
                "active_event": view.active_event,
                "suspension": view.suspension,
                "raised": view.conditions.iter().map(|c| json!([c.direction, c.name, c.raised])).collect::<Vec<_>>(),
            },
            "current": {"version": current.state.version, "state": current.state.state},
        })
    }
}

/// Forwards the node's answers until its stdout ends.
fn read_answers(mut stdout: BufReader<ChildStdout>, answers: &Sender<Value>) {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                // The harness's "test cluster_kill_node ... " may start the
                // first answer's line.
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

/// The webhook notifier, to the receiver's plain-HTTP port: a tenant's
/// webhook recipient must be an `https://` URL (`TenantConfig` refuses
/// others), while `WebhookConfig::allow_plain_http` exists for local
/// receivers; this bridges the two by sending each message, signed by the
/// real notifier, to the same URL over plain HTTP.
#[derive(Debug)]
struct PlainHttp(WebhookNotifier);

#[async_trait]
impl Notifier for PlainHttp {
    fn channel(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    async fn deliver(&self, message: &AlertMessage) -> continuity::Result<Receipt> {
        let mut message = message.clone();
        if let Some(rest) = message.recipient.address.strip_prefix("https://") {
            message.recipient.address = format!("http://{rest}");
        }
        self.0.deliver(&message).await
    }
}

/// The test's handle on a node process.
pub struct NodeProcess {
    pub instance: String,
    child: Child,
    stdin: ChildStdin,
    /// The answers, read by a thread of their own so that a node that
    /// hangs fails the test instead of blocking it.
    answers: Receiver<Value>,
}

/// The longest a node may take to answer one command.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

impl NodeProcess {
    /// Starts a node and waits until it is ready (connected, tenants registered).
    pub fn spawn(spec: &NodeSpec) -> NodeProcess {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "cluster_kill_node",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(NODE_ENV, serde_json::to_string(spec).expect("the spec"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a node");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || read_answers(stdout, &tx));
        let mut node = NodeProcess {
            instance: spec.instance.clone(),
            child,
            stdin,
            answers,
        };
        let ready = node
            .read()
            .unwrap_or_else(|| panic!("node {} ended before it was ready", spec.instance));
        assert_eq!(ready["ready"], true, "{ready}");
        node
    }

    /// Sends one command without waiting for its answer.
    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("node {}: write: {e}", self.instance));
    }

    /// The next answer; `None` when the process ended.
    ///
    /// # Panics
    /// When the node answers nothing within [`ANSWER_WITHIN`].
    pub fn read(&mut self) -> Option<Value> {
        match self.answers.recv_timeout(ANSWER_WITHIN) {
            Ok(answer) => Some(answer),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!(
                "node {} answered nothing within {ANSWER_WITHIN:?}",
                self.instance
            ),
        }
    }

    /// Sends one command and waits for its answer.
    pub fn ask(&mut self, command: &str) -> Value {
        self.send(command);
        self.read()
            .unwrap_or_else(|| panic!("node {} ended during {command:.40}", self.instance))
    }

    /// SIGKILL: no `leave_cluster`, no clean-up, whatever it was doing.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A clean shutdown: `leave_cluster`, then the process's exit status.
    pub fn quit(mut self) -> Value {
        let answer = self.ask("quit");
        let status = self.child.wait().expect("the node's exit");
        assert!(
            status.success(),
            "node {} exited with {status}",
            self.instance
        );
        answer
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // A failing test leaves no node behind (a no-op once it has ended).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
