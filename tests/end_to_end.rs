//! End to end through real parts (issue #15, item 9): the gateway service
//! built from a configuration file, in its own process, against the EWS
//! test server (as Exchange), aiosmtpd (as the alert relay and the
//! gateway's relay towards Exchange) and SQLite.
//!
//! The parts:
//! - the gateway: this test binary run again (`end_to_end_support/gateway.rs`),
//!   which builds the service from the TOML file this test writes
//!   (`ServiceConfig::from_file`, `.service().clock(..).hook(..).build()`)
//!   and serves its HTTP side for real (the portal under `/continuity`,
//!   `POST /observe`, `GET /metrics` from a Prometheus recorder) on the
//!   configured address;
//! - Exchange: the EWS server of `continuity-test-support`, in this
//!   process, holding the tenant's two probe mailboxes; the gateway's EWS
//!   probes send outbound probes through it (CreateItem) and look for
//!   inbound ones in its mailbox (FindItem, DeleteItem). Every request is
//!   validated against Microsoft's schema at the end;
//! - the mail relay: aiosmtpd (`peers/smtp_server.py`, from the test venv).
//!   The gateway's e-mail notifier sends its alerts there, and its SMTP
//!   probe sender the inbound probes, which this test then delivers into
//!   the Exchange mailbox as transport would; the outbound probes Exchange
//!   sends to the gateway's address are handed to the gateway's
//!   `Service::arrivals()` (the `arrive` command), as a gateway does with
//!   the messages it receives.
//!
//! **The test drives time.** The gateway's clock is a `ManualClock` set by
//! each `tick` command, and the service ticks only on that command (one
//! a simulated minute) rather than in its `Runner`'s real-time loop; the
//! EWS server's clock is this process's `ManualClock`, set to the same
//! minute first. So about three hours of mail flow take well under a
//! minute.
//!
//! The scenario:
//! 1. a healthy hour: probes in both directions arrive, the gateway's own
//!    observations go to `POST /observe`; no alert;
//! 2. Exchange's outbound mail stops reaching the gateway; the probes get
//!    lost and the alert e-mail reaches aiosmtpd, where Python's `email`
//!    package parses it (headers, text part). The relay's `250 ... queued`
//!    is held back by a proxy (`end_to_end_support/relay_proxy.rs`) and
//!    the gateway is killed with SIGKILL while it waits for it, then
//!    started again on the same file and database: once the dead process's
//!    outbox lease runs out, the alert is sent again, byte for byte, with
//!    the same idempotency key;
//! 3. the alert's portal link is followed over HTTP: the page, then the
//!    JSON API for the CSRF token and the version (a forged token is
//!    refused); a continuity event is started and the hook sees it;
//! 4. half way through the outage the gateway is killed in the middle of a
//!    tick and started again: the event is still running, at the same
//!    version, through the same link;
//! 5. the event is ended through the link's HTML pages as a browser would
//!    (the page's link to the form, the form's hidden fields posted back);
//!    the hook sees it;
//! 6. the outage ends and the resolved e-mail comes.
//!
//! At the end every alert e-mail is checked: one alert (received twice,
//! the same key and content) and one resolved notice; the hook was called
//! once for each. Last, `/metrics` answers in Prometheus's text format;
//! its samples are printed, and those of the restarted process must show
//! that it ticked, probed, counted observations and decided and delivered
//! the resolved notice, with nothing journaled or given up.
//!
//! Python with aiosmtpd is required (`CONTINUITY_TEST_PYTHON`, or the
//! venv of `scripts/prepare-test-env`): the test fails, saying so, without
//! it; it is never skipped.

#![cfg(all(feature = "service", feature = "sqlite"))]

mod end_to_end_support {
    pub mod gateway;
    pub mod http_client;
    pub mod relay_proxy;
}

use std::{collections::BTreeMap, path::Path, sync::Arc};

use chrono::{DateTime, TimeDelta, Utc};
use continuity::{Clock, ManualClock};
use continuity_test_support::{
    TempDir,
    ews_server::{EwsServer, PROBE_HEADER},
    smtp_peer::{SmtpPeer, header},
};
use serde_json::{Value, json};

use self::end_to_end_support::{
    gateway::{Arrival, GATEWAY_ENV, GatewayProcess, GatewaySpec},
    http_client,
    relay_proxy::RelayProxy,
};

const EWS_USER: &str = "svc-continuity";
const EWS_PASSWORD: &str = "correct horse battery staple";
const OUTBOUND_FROM: &str = "probe-out@acme.example";
const INBOUND_MAILBOX: &str = "probe-in@acme.example";
const GATEWAY_ADDRESS: &str = "probe@gateway.example";
const OPS: &str = "ops@acme.example";
/// The outage lasts this many minutes.
const OUTAGE: i64 = 45;

/// The gateway's entry: returns at once unless the test started this
/// process as the gateway.
#[test]
fn end_to_end_gateway() {
    if let Ok(spec) = std::env::var(GATEWAY_ENV) {
        end_to_end_support::gateway::serve(&spec);
    }
}

/// The service's configuration: alerts to the relay on `alert_port`,
/// inbound probes to the one on `probe_port`.
fn config(alert_port: u16, probe_port: u16, listen: &str, ews_url: &str, db: &Path) -> String {
    let relay = |port: u16| {
        format!(
            r#"{{ host = "127.0.0.1", port = {port}, security = "insecure_plaintext", allow_insecure_plaintext = true }}"#
        )
    };
    let (alert_relay, probe_relay) = (relay(alert_port), relay(probe_port));
    // Absolute thresholds (three lost probes in 20 minutes, raised after
    // two evaluations) instead of the learned flow policy: what raises
    // and when is then known from the probes alone.
    let direction = r#"{ window = "20m", failures = { count = 3 }, latency = { statistic = "p95", limit = "30m" }, flow = "off" }"#;
    format!(
        r#"
portal_url = "http://{listen}/continuity/"

[store]
sqlite = {{ path = "{db}" }}

[http]
listen = "{listen}"

[links]
keys = [ {{ id = "k1", secret = {{ inline = "0123456789abcdef0123456789abcdef" }} }} ]

[portal]
csrf_key = {{ inline = "fedcba9876543210fedcba9876543210" }}

[notifiers.email]
from = "Continuity <alerts@gateway.example>"
relay = {alert_relay}

[probes]
gateway_address = "{GATEWAY_ADDRESS}"
smtp_sender = {{ from = "{GATEWAY_ADDRESS}", relay = {probe_relay} }}

[probes.ews.exchange]
client = {{ endpoint = "{ews_url}", allow_plain_http = true, min_send_interval = "0s", auth = {{ method = "basic", username = "{EWS_USER}", password = {{ inline = "{EWS_PASSWORD}" }} }} }}

[[tenants]]
tenant = "acme"
display_name = "Acme Corp"
time_zone = "Europe/Berlin"
repeat_interval = "6h"
recipients = [ {{ id = "ops", channel = "email", address = "{OPS}" }} ]
probes = {{ interval = "2m", deadline = "10m" }}
inbound = {direction}
outbound = {direction}
mail_probe = {{ ews = "exchange", outbound_from = "{OUTBOUND_FROM}", inbound_mailbox = "{INBOUND_MAILBOX}" }}
"#,
        db = db.display(),
    )
}

/// A loopback port free now, for the gateway's `[http] listen`: the
/// portal links carry it, so it stays the same across the restart.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Everything around the gateway, and what the test saw of it.
struct World {
    clock: ManualClock,
    exchange: EwsServer,
    relay: SmtpPeer,
    /// External messages of Exchange handed on (or dropped) so far.
    outbound_seen: usize,
    /// Whether Exchange's outbound mail reaches the gateway.
    outbound_up: bool,
    /// The alert e-mails received, in order.
    alerts: Vec<Value>,
    inbound_relayed: u64,
    outbound_handed: u64,
    probes_arrived: u64,
    probes_lost: u64,
    observed: u64,
}

impl World {
    /// One simulated minute at `t`: Exchange's outbound mail that reached
    /// the gateway by then is reported to it, the gateway's own deliveries
    /// every five minutes go to `POST /observe`, the gateway ticks, and
    /// the mail it sent through the relay is delivered (inbound probes
    /// into Exchange) or kept (alerts).
    fn minute(&mut self, gateway: &mut GatewayProcess, t: DateTime<Utc>) -> Value {
        self.before_tick(gateway, t);
        let report = gateway.ask(&format!("tick {}", t.to_rfc3339()));
        self.after_tick(t, &report);
        report
    }

    /// [`minute`](Self::minute), with the relay's acceptance of alerts
    /// held back ([`RelayProxy::hold`]): the tick does not end while an
    /// alert is being sent, so this returns the alert as soon as the relay
    /// has it, the gateway still waiting; `None` after a tick without one.
    fn minute_until_held_alert(
        &mut self,
        gateway: &mut GatewayProcess,
        t: DateTime<Utc>,
    ) -> Option<Value> {
        self.before_tick(gateway, t);
        gateway.send(&format!("tick {}", t.to_rfc3339()));
        loop {
            let before = self.alerts.len();
            self.relay_only(t);
            if let Some(alert) = self.alerts.get(before) {
                return Some(alert.clone());
            }
            if let Some(report) = gateway.try_answer(std::time::Duration::from_millis(10)) {
                self.after_tick(t, &report);
                return self.alerts.get(before).cloned();
            }
        }
    }

    fn before_tick(&mut self, gateway: &mut GatewayProcess, t: DateTime<Utc>) {
        self.clock.set(t);
        let external = self.exchange.external();
        for m in external.iter().skip(self.outbound_seen) {
            if m.received > t {
                break;
            }
            self.outbound_seen += 1;
            assert_eq!(m.to, GATEWAY_ADDRESS, "outbound probes go to the gateway");
            if !self.outbound_up {
                continue;
            }
            let arrival = Arrival {
                subject: m.subject.clone(),
                header: m.probe_header.clone(),
                at: m.received,
            };
            let answer = gateway.ask(&format!(
                "arrive {}",
                serde_json::to_string(&arrival).expect("JSON")
            ));
            assert_eq!(answer["tenant"], "acme", "{answer}");
            self.outbound_handed += 1;
        }
        if t.timestamp() % 300 == 0 {
            self.observe(gateway, t);
        }
    }

    fn after_tick(&mut self, t: DateTime<Utc>, report: &Value) {
        assert_eq!(report["errors"], json!([]), "tick at {t}: {report}");
        self.probes_arrived += report["probes_arrived"].as_u64().unwrap_or(0);
        self.probes_lost += report["probes_lost"].as_u64().unwrap_or(0);
        self.relay_only(t);
    }

    /// The mail the gateway sent through the relay by `t`: inbound probes
    /// delivered into Exchange, alerts kept.
    fn relay_only(&mut self, t: DateTime<Utc>) {
        for message in self.relay.drain() {
            let to = &message["rcpt_tos"];
            if to == &json!([INBOUND_MAILBOX]) {
                let subject = header(&message, "Subject")[0];
                let probe_id = header(&message, PROBE_HEADER).first().copied();
                self.exchange.deliver(INBOUND_MAILBOX, subject, probe_id, t);
                self.inbound_relayed += 1;
            } else {
                assert_eq!(to, &json!([OPS]), "an unexpected message: {message}");
                println!("{t} alert: {}", header(&message, "Subject")[0]);
                self.alerts.push(message);
            }
        }
    }

    /// The gateway's own deliveries over the last five minutes, through
    /// `POST /observe`: inbound always (the gateway delivers into
    /// Exchange), outbound only while Exchange's mail reaches it.
    fn observe(&mut self, gateway: &GatewayProcess, t: DateTime<Utc>) {
        let mut batch = Vec::new();
        for s in [10, 70, 130, 190, 250] {
            let at = (t - TimeDelta::seconds(300 - s)).to_rfc3339();
            batch.push(
                json!({"tenant": "acme", "direction": "inbound", "at": at, "latency_ms": 1800}),
            );
            if self.outbound_up {
                batch.push(json!({"tenant": "acme", "direction": "outbound", "at": at, "latency_ms": 2400}));
            }
        }
        let answer = http_client::post_json(
            &format!("http://{}/observe", gateway.address),
            &Value::Array(batch.clone()),
        );
        assert_eq!(answer.status, 200, "{answer:?}");
        let answer = answer.json();
        assert_eq!(answer["counted"], batch.len(), "{answer}");
        self.observed += batch.len() as u64;
    }

    /// Ticks from `*t` on, a minute at a time, until an alert e-mail whose
    /// subject contains `what` comes (at most `within` minutes).
    fn until_alert(
        &mut self,
        gateway: &mut GatewayProcess,
        t: &mut DateTime<Utc>,
        what: &str,
        within: i64,
    ) -> Value {
        for _ in 0..within {
            *t += TimeDelta::minutes(1);
            let before = self.alerts.len();
            self.minute(gateway, *t);
            if let Some(m) = self.alerts[before..]
                .iter()
                .find(|m| header(m, "Subject")[0].contains(what))
            {
                return m.clone();
            }
        }
        panic!(
            "no {what:?} e-mail within {within} minutes (until {t}); received: {:?}",
            self.subjects()
        )
    }

    fn subjects(&self) -> Vec<&str> {
        self.alerts
            .iter()
            .map(|m| header(m, "Subject")[0])
            .collect()
    }
}

/// The portal link in an alert e-mail's text.
fn portal_link(message: &Value, base: &str) -> String {
    let text = message["text"].as_str().expect("a plain-text part");
    let at = text
        .find(base)
        .unwrap_or_else(|| panic!("no link to {base} in:\n{text}"));
    text[at..]
        .split_whitespace()
        .next()
        .expect("the link")
        .to_owned()
}

/// The link's JSON view (`GET <portal>/api/<token>`): the state, the
/// CSRF token, the version.
fn api_view(base: &str, token: &str) -> Value {
    let answer = http_client::get(&format!("{base}api/{token}"));
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()
}

/// Posts `action` through the link's JSON API, with the CSRF token and
/// the version the view gave; the answer's view.
fn act(base: &str, token: &str, action: &str, extra: Value) -> Value {
    let view = api_view(base, token);
    let mut body = json!({"csrf": view["csrf"], "version": view["view"]["version"]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let answer = http_client::post_json(&format!("{base}api/{token}/{action}"), &body);
    assert_eq!(answer.status, 200, "{action}: {answer:?}");
    let answer = answer.json();
    assert_eq!(answer["outcome"], "done", "{action}: {answer}");
    answer["view"].clone()
}

/// The value of the hidden input `name` of an HTML form (the portal's
/// values need no unescaping: a base64url token, a number).
fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in the form: {html}"))
        + marker.len();
    let value = &html[at..at + html[at..].find('"').expect("the value's end")];
    assert!(!value.contains('&'), "an escaped value: {value}");
    value.to_owned()
}

fn hook_calls(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_gateway_service_end_to_end_through_two_kills() {
    let dir = TempDir::new("end-to-end");
    let start: DateTime<Utc> = "2026-03-02T08:00:00Z".parse().expect("a time");
    let clock = ManualClock::new(start);
    // The EWS server's tasks run on this runtime while the test's thread
    // waits for the gateway's answers.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let arc_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    // Requests are validated in one xmllint run at the end (a run per
    // request would take most of the test's time).
    let exchange = rt.block_on(EwsServer::start_with(arc_clock, false));
    exchange.add_account(EWS_USER, EWS_PASSWORD, true);
    exchange.add_mailbox(OUTBOUND_FROM);
    exchange.add_mailbox(INBOUND_MAILBOX);
    exchange.set_delivery_delay(TimeDelta::seconds(30));
    let relay = SmtpPeer::start("plain", None);
    // Alerts go through the proxy, which can hold back the relay's "queued".
    let proxy = RelayProxy::start(relay.port);

    let listen = format!("127.0.0.1:{}", free_port());
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(
        &config_path,
        config(
            proxy.port,
            relay.port,
            &listen,
            &exchange.url,
            &dir.path().join("state.db"),
        ),
    )
    .expect("write the configuration");
    let hook_log = dir.path().join("hook.log");
    let spec = GatewaySpec {
        config: config_path,
        start,
        hook_log: hook_log.clone(),
    };
    let portal = format!("http://{listen}/continuity/");

    let mut world = World {
        clock,
        exchange,
        relay,
        outbound_seen: 0,
        outbound_up: true,
        alerts: Vec::new(),
        inbound_relayed: 0,
        outbound_handed: 0,
        probes_arrived: 0,
        probes_lost: 0,
        observed: 0,
    };
    let mut gateway = GatewayProcess::spawn(&spec);
    assert_eq!(gateway.address, listen);

    // A healthy hour.
    let mut t = start;
    for _ in 0..60 {
        t += TimeDelta::minutes(1);
        world.minute(&mut gateway, t);
    }
    assert!(
        world.alerts.is_empty(),
        "no alert while healthy: {:?}",
        world.subjects()
    );
    assert_eq!(world.probes_lost, 0, "no probe lost while healthy");
    assert!(
        world.inbound_relayed >= 25 && world.outbound_handed >= 25,
        "probes both ways every 2 minutes: {} inbound, {} outbound",
        world.inbound_relayed,
        world.outbound_handed
    );
    assert!(
        world.probes_arrived >= 50,
        "the probes were found: {}",
        world.probes_arrived
    );

    // Exchange's outbound mail stops reaching the gateway. The alert
    // reaches the relay, and the gateway is killed (SIGKILL) before it
    // hears that the relay took it: the alert must be sent again after the
    // restart, with the same idempotency key.
    world.outbound_up = false;
    let outage_from = t;
    proxy.hold(true);
    let raised = loop {
        t += TimeDelta::minutes(1);
        assert!(
            t <= outage_from + TimeDelta::minutes(25),
            "no alert 25 minutes into the outage; received: {:?}",
            world.subjects()
        );
        if let Some(alert) = world.minute_until_held_alert(&mut gateway, t) {
            break alert;
        }
    };
    gateway.kill();
    proxy.hold(false);
    assert!(
        header(&raised, "Subject")[0].contains("ALERT Acme Corp: outbound"),
        "{raised}"
    );
    println!(
        "raised {} min into the outage; killed while the relay's answer was held",
        (t - outage_from).num_minutes()
    );
    assert!(world.probes_lost >= 3, "lost probes: {}", world.probes_lost);
    t += TimeDelta::minutes(1);
    let mut gateway = GatewayProcess::spawn(&GatewaySpec {
        start: t,
        ..spec.clone()
    });
    world.minute(&mut gateway, t);

    // The link, followed: the page, then the JSON API to start an event.
    let link = portal_link(&raised, &portal);
    let token = link
        .strip_prefix(&portal)
        .expect("the link is the portal's");
    let page = http_client::get(&link);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{page:?}"
    );
    assert!(page.body.contains("Acme Corp"), "{}", page.body);
    // Times in the tenant's zone (Berlin, UTC+1 in March), in the e-mail
    // and on the page, which charts the outbound outage's last hour.
    let expires: DateTime<Utc> = api_view(&portal, token)["view"]["expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("the link's expiry");
    let local = (expires + TimeDelta::hours(1)).format("%Y-%m-%d %H:%M");
    let text = raised["text"].as_str().expect("a plain-text part");
    assert!(
        text.contains(&format!("works until {local} CET.")),
        "{text}"
    );
    assert!(
        page.body.contains(&format!("valid until {local} CET.")),
        "{}",
        page.body
    );
    let chart_at = page
        .body
        .find("<h3>Outbound</h3><figure class=\"chart\">")
        .unwrap_or_else(|| panic!("no outbound chart in {}", page.body));
    let chart = &page.body[chart_at..];
    let chart = &chart[..chart.find("</figure>").unwrap_or(chart.len())];
    // The outage is drawn: probes lost (failures) or still on their way.
    assert!(
        chart.contains("class=\"fail\"") || chart.contains("class=\"pending"),
        "{chart}"
    );
    // Without the CSRF token of the page, nothing is done.
    let forged = http_client::post_json(
        &format!("{portal}api/{token}/start"),
        &json!({"csrf": "forged", "minutes": 120}),
    );
    assert_eq!(forged.status, 403, "{forged:?}");
    // The restarted gateway shows what the dead one decided: the outbound
    // condition raised, the alert it sent.
    let restored = api_view(&portal, token);
    assert!(restored["view"]["active_event"].is_null(), "{restored}");
    assert!(
        restored["view"]["conditions"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["direction"] == "outbound" && c["raised"] == true)),
        "the outbound condition is still raised: {restored}"
    );
    assert!(
        restored["view"]["incident"].is_object(),
        "an incident runs: {restored}"
    );
    let view = act(&portal, token, "start", json!({"minutes": 120}));
    let event = view["active_event"].clone();
    assert!(event.is_object(), "an event runs: {view}");
    let started = format!("started acme {}", event["id"]);
    let ended = format!("ended acme {}", event["id"]);
    t += TimeDelta::minutes(1);
    world.minute(&mut gateway, t);
    assert_eq!(
        hook_calls(&hook_log),
        [started.as_str()],
        "the hook saw the start"
    );

    // Half way through the outage: SIGKILL, and a start on the same file
    // and database.
    while t < outage_from + TimeDelta::minutes(OUTAGE / 2 + 5) {
        t += TimeDelta::minutes(1);
        world.minute(&mut gateway, t);
    }
    let before_kill = api_view(&portal, token);
    // In the middle of a tick: probes being sent and checked over EWS and
    // SMTP, the store written.
    t += TimeDelta::minutes(1);
    world.clock.set(t);
    gateway.kill_during(
        &format!("tick {}", t.to_rfc3339()),
        std::time::Duration::from_millis(15),
    );
    world.relay_only(t);
    t += TimeDelta::minutes(1);
    let mut gateway = GatewayProcess::spawn(&GatewaySpec {
        start: t,
        ..spec.clone()
    });
    let after = api_view(&portal, token);
    assert_eq!(
        after["view"]["active_event"], before_kill["view"]["active_event"],
        "the event survives the kill"
    );
    assert_eq!(after["view"]["version"], before_kill["view"]["version"]);
    assert_eq!(after["view"]["active_event"]["id"], event["id"]);
    for _ in 0..5 {
        t += TimeDelta::minutes(1);
        world.minute(&mut gateway, t);
    }

    // The event ended through the same link, in the HTML portal this
    // time, as a browser would: the page, its link to the form, the form's
    // hidden CSRF token and version posted back.
    let page = http_client::get(&link);
    assert_eq!(page.status, 200, "{page:?}");
    let end_form = format!("{token}/end");
    assert!(
        page.body.contains(&format!("href=\"{end_form}\"")),
        "the page offers to end the event: {}",
        page.body
    );
    let form = http_client::get(&format!("{portal}{end_form}"));
    assert_eq!(form.status, 200, "{form:?}");
    let fields = [
        ("csrf", hidden_field(&form.body, "csrf")),
        ("version", hidden_field(&form.body, "version")),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = http_client::post_form(&format!("{portal}{end_form}"), &fields);
    assert_eq!(done.status, 200, "{done:?}");
    assert!(
        done.body.contains("The continuity event was ended."),
        "{}",
        done.body
    );
    assert!(
        api_view(&portal, token)["view"]["active_event"].is_null(),
        "the event ended"
    );
    t += TimeDelta::minutes(1);
    world.minute(&mut gateway, t);
    assert_eq!(
        hook_calls(&hook_log),
        [started.as_str(), ended.as_str()],
        "the hook saw the end"
    );

    // The outage ends; the resolved notice comes.
    while t < outage_from + TimeDelta::minutes(OUTAGE) {
        t += TimeDelta::minutes(1);
        world.minute(&mut gateway, t);
    }
    world.outbound_up = true;
    let outage_to = t;
    world.until_alert(&mut gateway, &mut t, "RESOLVED Acme Corp", 40);
    println!(
        "resolved {} min after the outage",
        (t - outage_to).num_minutes()
    );
    for _ in 0..5 {
        t += TimeDelta::minutes(1);
        world.minute(&mut gateway, t);
    }

    // Every alert e-mail: one alert, one resolved notice; a message sent
    // twice (the first kill) only ever with the same key and content.
    let mut by_key: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for m in &world.alerts {
        let key = header(m, "X-Continuity-Idempotency-Key");
        assert_eq!(key.len(), 1, "one idempotency key: {m}");
        by_key.entry(key[0].to_owned()).or_default().push(m);
    }
    for (key, copies) in &by_key {
        for m in copies {
            assert_eq!(header(m, "Subject"), header(copies[0], "Subject"), "{key}");
            assert_eq!(m["text"], copies[0]["text"], "{key}");
            assert_eq!(
                header(m, "Message-ID"),
                header(copies[0], "Message-ID"),
                "{key}"
            );
        }
    }
    let kinds: Vec<&str> = by_key
        .values()
        .map(|copies| header(copies[0], "Subject")[0])
        .collect();
    assert_eq!(
        kinds.len(),
        2,
        "one alert and one resolved notice: {kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .filter(|s| s.contains("ALERT Acme Corp: outbound"))
            .count()
            == 1
            && kinds
                .iter()
                .filter(|s| s.contains("RESOLVED Acme Corp"))
                .count()
                == 1,
        "{kinds:?}"
    );
    let raised_key = header(&raised, "X-Continuity-Idempotency-Key")[0];
    assert_eq!(
        by_key[raised_key].len(),
        2,
        "the alert the relay took while the gateway died was sent again: {:?}",
        world.subjects()
    );
    println!(
        "{} alert e-mails, {} distinct",
        world.alerts.len(),
        by_key.len()
    );
    assert_eq!(
        hook_calls(&hook_log),
        [started.as_str(), ended.as_str()],
        "the hook was called once each"
    );

    // /metrics, from the restarted process's recorder.
    let metrics = http_client::get(&format!("http://{listen}/metrics"));
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{metrics:?}"
    );
    println!("/metrics:\n{}", metrics.body);
    let samples = samples(&metrics.body);
    for (name, value) in &samples {
        if name.starts_with(continuity::service::TICK_ERRORS_METRIC) {
            assert_eq!(*value, 0.0, "no tick went wrong, yet {name} = {value}");
        }
    }
    // The restarted process's counts: since the last kill it ticked,
    // checked probes (the outage's lost ones among them) and sent the
    // resolved notice.
    let value = |name: &str| {
        samples
            .iter()
            .filter(|(n, _)| n == name || n.starts_with(&format!("{name}{{")))
            .map(|(_, v)| *v)
            .sum::<f64>()
    };
    assert!(value("continuity_ticks_total") > 0.0, "the gateway ticked");
    assert!(
        value("continuity_probes_dispatched_total") > 0.0,
        "probes went out"
    );
    assert_eq!(
        value("continuity_probes_dispatched_total"),
        value("continuity_probes_dispatched_total{adapter=\"ews\",direction=\"inbound\"}")
            + value("continuity_probes_dispatched_total{adapter=\"ews\",direction=\"outbound\"}"),
        "every probe counted under the adapter that sent it, EWS"
    );
    assert!(
        value("continuity_probes_arrived_total") > 0.0,
        "probes arrived"
    );
    assert!(
        value("continuity_observations_total") > 0.0,
        "observations counted"
    );
    assert_eq!(
        value("continuity_alerts_total{kind=\"resolved\"}"),
        1.0,
        "the resolved notice, decided by the restarted process"
    );
    assert!(
        value("continuity_deliveries_total{channel=\"email\",result=\"ok\"}") >= 1.0,
        "the resolved e-mail delivered"
    );
    assert_eq!(value("continuity_journal_transitions"), 0.0);
    assert_eq!(value("continuity_dead_letters"), 0.0);

    let stopped = gateway.quit();
    assert_eq!(stopped["stopped"], true, "{stopped}");
    assert!(
        world.exchange.violations().is_empty(),
        "{:?}",
        world.exchange.violations()
    );
    let validated = world
        .exchange
        .validate_log()
        .unwrap_or_else(|e| panic!("requests fail the EWS schema:\n{e}"));
    println!(
        "{validated} EWS requests valid; {} observations posted; probes: {} arrived, {} lost",
        world.observed, world.probes_arrived, world.probes_lost
    );
}

/// The samples of a Prometheus text exposition: (name with labels, value).
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample: {l:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|e| panic!("not a number in {l:?}: {e}"));
            (name.to_owned(), value)
        })
        .collect()
}
