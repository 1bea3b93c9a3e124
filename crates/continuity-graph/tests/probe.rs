//! The Graph probe end to end: core's `Monitor` on a manual clock drives
//! `GraphProbe` against the local Graph and token endpoint, with a test
//! gateway that relays inbound probes into the org's mailbox and reports
//! outbound arrivals.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::graph_server::Inject;
use common::*;
use continuity_core::arrival::{ArrivalRegistry, PROBE_HEADER, wire_id};
use continuity_core::machine::AlertKind;
use continuity_core::probe::{MailProbe, OutgoingProbe, ProbeRequest, ProbeSender, ProbeStatus};
use continuity_core::testing::ProbeHarness;
use continuity_core::{Clock, Direction, ManualClock, TenantId};
use continuity_graph::{GraphError, GraphProbe, GraphTenantProbe};

/// The gateway side: inbound probes are relayed into the org's mailbox as
/// transport would deliver them.
#[derive(Debug)]
struct RelayIntoExchange {
    graph: Arc<common::graph_server::GraphServer>,
    clock: ManualClock,
}

#[async_trait::async_trait]
impl ProbeSender for RelayIntoExchange {
    async fn send(&self, p: &OutgoingProbe<'_>) -> continuity_core::Result<()> {
        assert_eq!(p.header_name, "X-Continuity-Probe-Id");
        self.graph.deliver(
            p.to,
            p.subject,
            &[(p.header_name, p.header_value)],
            self.clock.now(),
        );
        Ok(())
    }
}

struct Rig {
    r: GraphRig,
    graph: Arc<common::graph_server::GraphServer>,
    arrivals: Arc<ArrivalRegistry>,
    probe: Arc<GraphProbe>,
    h: ProbeHarness,
    reported: Mutex<usize>,
}

async fn rig() -> Rig {
    let r = graph_rig().await;
    let graph = r.graph.clone();
    graph.set_delivery_delay(TimeDelta::seconds(40));
    let arrivals = Arc::new(ArrivalRegistry::default());
    let sender = Arc::new(RelayIntoExchange {
        graph: graph.clone(),
        clock: r.clock.clone(),
    });
    let probe = Arc::new(GraphProbe::new(GATEWAY, arrivals.clone(), Some(sender)));
    probe.set_tenant(
        TenantId::new("acme").unwrap(),
        GraphTenantProbe {
            client: r.client(),
            outbound_from: Some(SENDER.into()),
            inbound_mailbox: Some(MAILBOX.into()),
        },
    );
    let h = ProbeHarness::new(r.clock.clone(), probe.clone())
        .await
        .unwrap();
    Rig {
        r,
        graph,
        arrivals,
        probe,
        h,
        reported: Mutex::new(0),
    }
}

impl Rig {
    /// The gateway reports outbound probes that reached it by `now`.
    fn gateway_pump(&self, now: DateTime<Utc>) {
        let mut done = self.reported.lock().unwrap();
        for m in self.graph.external().iter().skip(*done) {
            if m.received > now {
                break;
            }
            assert_eq!(m.to, GATEWAY);
            let header = m
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(PROBE_HEADER))
                .map(|(_, v)| v.as_str());
            let reported = self
                .arrivals
                .report_message(Some(&m.subject), header, m.received);
            assert_eq!(
                reported.map(|(t, _)| t),
                Some(self.h.tenant.clone()),
                "outbound probes carry the tenant"
            );
            *done += 1;
        }
    }

    /// Runs `minutes` of one-minute ticks; returns (arrived, lost).
    async fn run(&self, minutes: u32, gateway_up: bool) -> (u64, u64) {
        self.h
            .run(minutes, |now| {
                if gateway_up {
                    self.gateway_pump(now)
                }
            })
            .await
    }

    fn request(&self, direction: Direction, id: &str) -> ProbeRequest {
        ProbeRequest {
            tenant: self.h.tenant.clone(),
            direction,
            probe_id: id.into(),
            sent_at: self.r.clock.now(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_flow_through_graph_and_an_outage_raises_an_alert() {
    let r = rig().await;
    // A healthy hour: both directions probed every 5 minutes, found within a minute.
    let (arrived, lost) = r.run(60, true).await;
    assert!(arrived >= 20, "both directions arrive: {arrived}");
    assert_eq!(lost, 0);
    assert!(r.h.sms.messages().is_empty(), "no alert while healthy");
    assert!(
        r.graph.inbox(MAILBOX).len() <= 1,
        "found probes are deleted: {:?}",
        r.graph.inbox(MAILBOX)
    );
    assert!(
        r.graph.deleted_items(MAILBOX).is_empty(),
        "purged, not moved"
    );
    assert_eq!(
        r.probe.counters().header_missing,
        1,
        "only the first inbound probe lacked the named property"
    );
    assert_eq!(r.probe.counters().delete_failures, 0);
    assert!(r.graph.requests("POST", "/sendMail") >= 10);
    assert!(r.graph.requests("POST", "/permanentDelete") >= 10);
    assert!(r.graph.sent_items(SENDER).is_empty());
    for l in r.graph.log() {
        let expected = if l.target.contains("/sendMail") {
            SENDER
        } else {
            MAILBOX
        };
        assert_eq!(l.mailbox.as_deref(), Some(expected), "{}", l.target);
        assert!(l.status < 300, "{l:?}");
    }

    // Exchange Online stops delivering inbound mail and the gateway stops receiving outbound.
    r.graph.set_delivery_delay(TimeDelta::hours(6));
    let (_, lost) = r.run(70, false).await;
    assert!(lost >= 10, "probes now get lost: {lost}");
    let alerts = r.h.sms.messages();
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::Raised),
        "an outage alert went out: {alerts:?}"
    );
    assert_eq!(r.graph.limit_throttles(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_and_check_directly() {
    let r = rig().await;
    let sent_at = r.r.clock.now();

    // Outbound: sent through Graph, pending until the gateway reports it.
    let out = r.request(Direction::Outbound, "ou-1");
    let ticket = r.probe.dispatch(&out).await.unwrap();
    assert_eq!(ticket.as_str(), wire_id(&r.h.tenant, "ou-1"));
    assert_eq!(
        r.probe.check(&out, &ticket).await.unwrap(),
        ProbeStatus::Pending
    );
    r.r.clock.advance(TimeDelta::seconds(41));
    r.gateway_pump(r.r.clock.now());
    assert_eq!(
        r.probe.check(&out, &ticket).await.unwrap(),
        ProbeStatus::Arrived {
            at: sent_at + TimeDelta::seconds(40)
        }
    );
    assert!(r.arrivals.is_empty());

    // Inbound: relayed into the mailbox, found with its receivedDateTime, then deleted.
    let inb = r.request(Direction::Inbound, "in-1");
    let ticket = r.probe.dispatch(&inb).await.unwrap();
    assert_eq!(
        r.probe.check(&inb, &ticket).await.unwrap(),
        ProbeStatus::Pending,
        "not delivered yet"
    );
    r.r.clock.advance(TimeDelta::seconds(41));
    assert_eq!(
        r.probe.check(&inb, &ticket).await.unwrap(),
        ProbeStatus::Arrived {
            at: inb.sent_at + TimeDelta::seconds(40)
        }
    );
    assert!(
        r.graph.inbox(MAILBOX).is_empty(),
        "deleted after it was found"
    );

    // An unknown tenant is a configuration error (not counted as a mail-flow failure).
    let other = ProbeRequest {
        tenant: TenantId::new("other").unwrap(),
        ..r.request(Direction::Outbound, "ou-2")
    };
    assert!(!r.probe.dispatch(&other).await.unwrap_err().is_retryable());

    // Graph refusing the send names the permission; not retryable.
    r.graph.inject(Inject::access_denied());
    let e = r
        .probe
        .dispatch(&r.request(Direction::Outbound, "ou-3"))
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("Mail.Send is missing") && text.contains("ErrorAccessDenied"),
        "{text}"
    );

    // Graph failing is an outage: retryable, counted.
    r.graph.inject(Inject::unavailable(503, None));
    let e = r
        .probe
        .dispatch(&r.request(Direction::Outbound, "ou-4"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            continuity_core::Error::Probe {
                retryable: true,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_in_junk_email_counts_and_is_deleted() {
    let r = rig().await;
    r.graph.junk_everything(MAILBOX);
    let inb = r.request(Direction::Inbound, "in-9");
    let ticket = r.probe.dispatch(&inb).await.unwrap();
    r.r.clock.advance(TimeDelta::minutes(1));
    assert!(matches!(
        r.probe.check(&inb, &ticket).await.unwrap(),
        ProbeStatus::Arrived { .. }
    ));
    assert!(r.graph.junk(MAILBOX).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_reported_as_such_in_both_phases() {
    let r = rig().await;
    r.graph.inject(Inject::throttled("30"));
    let out = r.request(Direction::Outbound, "ou-busy");
    let e = r.probe.dispatch(&out).await.unwrap_err();
    match &e {
        continuity_core::Error::ProbeThrottled {
            retry_after, code, ..
        } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(30)));
            assert_eq!(code.as_deref(), Some("ApplicationThrottled"));
        }
        other => panic!("429 must map to ProbeThrottled: {other:?}"),
    }
    // Graph's own answer is kept for the embedder.
    assert!(
        matches!(
            e.source_as::<GraphError>(),
            Some(GraphError::Graph { status: 429, code, .. }) if code == "ApplicationThrottled"
        ),
        "{e:?}"
    );
    // Held back locally meanwhile: throttled again, with the time left, and nothing sent.
    let sent = r.graph.log().len();
    r.r.clock.advance(TimeDelta::seconds(10));
    match r.probe.dispatch(&out).await.unwrap_err() {
        continuity_core::Error::ProbeThrottled { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(20)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.graph.log().len(), sent);

    // A check that is throttled is reported as throttling too.
    let inb = r.request(Direction::Inbound, "in-busy");
    let ticket = r.probe.dispatch(&inb).await.unwrap();
    r.graph.inject(Inject::throttled("5"));
    r.r.clock.advance(TimeDelta::minutes(1));
    assert!(matches!(
        r.probe.check(&inb, &ticket).await.unwrap_err(),
        continuity_core::Error::ProbeThrottled { .. }
    ));
    r.r.clock.advance(TimeDelta::seconds(5));
    assert!(matches!(
        r.probe.check(&inb, &ticket).await.unwrap(),
        ProbeStatus::Arrived { .. }
    ));
}
