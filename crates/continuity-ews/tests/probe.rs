//! The EWS probe end to end: core's `Monitor` on a manual clock drives
//! `EwsProbe` against the local EWS server, with a test gateway that relays
//! inbound probes into the org's mailbox and reports outbound arrivals.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::{SVC_PASS, SVC_USER, arc_clock, client, manual_clock};
use continuity_core::{
    Clock, Direction, ManualClock, TenantId,
    machine::AlertKind,
    probe::{MailProbe, ProbeRequest, ProbeStatus},
    testing::ProbeHarness,
};
use continuity_ews::{
    ArrivalRegistry, EwsError, EwsProbe, EwsTenantProbe, OutgoingProbe, ProbeSender,
    arrival::wire_id,
};
use continuity_test_support::ews_server::EwsServer;

const ORG_SENDER: &str = "probe-out@acme.example";
const ORG_INBOX: &str = "probe-in@acme.example";
const GATEWAY: &str = "probe@gateway.example";

/// The gateway side: inbound probes are relayed into the org server's
/// mailbox as transport would deliver them.
#[derive(Debug)]
struct RelayIntoExchange {
    server: Arc<EwsServer>,
    clock: ManualClock,
}

#[async_trait::async_trait]
impl ProbeSender for RelayIntoExchange {
    async fn send(&self, p: &OutgoingProbe<'_>) -> continuity_core::Result<()> {
        assert_eq!(p.header_name, "X-Continuity-Probe-Id");
        self.server
            .deliver(p.to, p.subject, Some(p.header_value), self.clock.now());
        Ok(())
    }
}

struct Rig {
    server: Arc<EwsServer>,
    arrivals: Arc<ArrivalRegistry>,
    probe: Arc<EwsProbe>,
    h: ProbeHarness,
    reported: std::sync::Mutex<usize>,
}

async fn rig() -> Rig {
    let clock = manual_clock();
    // Validation of all bodies happens at the end, in one xmllint run.
    let server = Arc::new(EwsServer::start_with(arc_clock(&clock), false).await);
    server.add_account(SVC_USER, SVC_PASS, true);
    server.add_mailbox(ORG_SENDER);
    server.add_mailbox(ORG_INBOX);
    server.set_delivery_delay(TimeDelta::seconds(40));
    let arrivals = Arc::new(ArrivalRegistry::default());
    let sender = Arc::new(RelayIntoExchange {
        server: server.clone(),
        clock: clock.clone(),
    });
    let probe = Arc::new(EwsProbe::new(GATEWAY, arrivals.clone(), Some(sender)));
    probe.set_tenant(
        TenantId::new("acme").unwrap(),
        EwsTenantProbe {
            client: client(&server.url),
            outbound_from: Some(ORG_SENDER.into()),
            inbound_mailbox: Some(ORG_INBOX.into()),
            save_sent_copy: false,
        },
    );
    let h = ProbeHarness::new(clock, probe.clone()).await.unwrap();
    Rig {
        server,
        arrivals,
        probe,
        h,
        reported: std::sync::Mutex::new(0),
    }
}

impl Rig {
    /// The gateway reports outbound probes that reached it by `now`.
    fn gateway_pump(&self, now: DateTime<Utc>) {
        let mut done = self.reported.lock().unwrap();
        let external = self.server.external();
        for m in external.iter().skip(*done) {
            if m.received > now {
                break;
            }
            assert_eq!(m.to, GATEWAY);
            let r = self.arrivals.report_message(
                Some(&m.subject),
                m.probe_header.as_deref(),
                m.received,
            );
            assert_eq!(
                r.map(|(t, _)| t),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_flow_through_exchange_and_an_outage_raises_an_alert() {
    let r = rig().await;
    // A healthy hour: both directions probed every 5 minutes, found within a minute.
    let (arrived, lost) = r.run(60, true).await;
    assert!(arrived >= 20, "both directions arrive: {arrived}");
    assert_eq!(lost, 0);
    assert!(r.h.sms.messages().is_empty(), "no alert while healthy");
    // Inbound probes were deleted once found; the first was found by subject only.
    assert!(
        r.server.inbox(ORG_INBOX).len() <= 1,
        "found probes are deleted: {:?}",
        r.server.inbox(ORG_INBOX)
    );
    assert_eq!(
        r.probe.counters().header_missing,
        1,
        "only the provisioning (first) probe lacked the header"
    );
    assert!(r.server.requests("CreateItem") >= 10);
    assert!(r.server.requests("DeleteItem") >= 10);
    for l in r.server.log() {
        let expected = if l.operation == "CreateItem" {
            ORG_SENDER
        } else {
            ORG_INBOX
        };
        assert_eq!(l.impersonated.as_deref(), Some(expected), "{}", l.operation);
    }

    // The org server stops delivering inbound mail and the gateway stops receiving outbound.
    r.server.set_delivery_delay(TimeDelta::hours(6));
    let (_, lost) = r.run(70, false).await;
    assert!(lost >= 10, "probes now get lost: {lost}");
    let alerts = r.h.sms.messages();
    assert!(
        alerts.iter().any(|a| a.kind == AlertKind::Raised),
        "an outage alert went out: {alerts:?}"
    );

    assert!(
        r.server.violations().is_empty(),
        "{:?}",
        r.server.violations()
    );
    let n = r
        .server
        .validate_log()
        .unwrap_or_else(|e| panic!("requests fail the EWS schema:\n{e}"));
    assert!(n > 50, "{n} requests validated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_and_check_directly() {
    let r = rig().await;
    let sent_at = r.h.clock.now();
    let req = |direction, id: &str| ProbeRequest {
        tenant: r.h.tenant.clone(),
        direction,
        probe_id: id.into(),
        sent_at,
    };

    // Outbound: sent through Exchange, pending until the gateway reports it.
    let out = req(Direction::Outbound, "ou-1");
    let ticket = r.probe.dispatch(&out).await.unwrap();
    assert_eq!(ticket.as_str(), wire_id(&r.h.tenant, "ou-1"));
    assert_eq!(
        r.probe.check(&out, &ticket).await.unwrap(),
        ProbeStatus::Pending
    );
    r.h.clock.advance(TimeDelta::seconds(41));
    r.gateway_pump(r.h.clock.now());
    let at = sent_at + TimeDelta::seconds(40);
    assert_eq!(
        r.probe.check(&out, &ticket).await.unwrap(),
        ProbeStatus::Arrived { at }
    );
    assert!(r.arrivals.is_empty());

    // Inbound: relayed into the mailbox, found by token with its DateTimeReceived, then deleted.
    let inb = req(Direction::Inbound, "in-1");
    let ticket = r.probe.dispatch(&inb).await.unwrap();
    assert_eq!(
        r.probe.check(&inb, &ticket).await.unwrap(),
        ProbeStatus::Pending,
        "not delivered yet"
    );
    r.h.clock.advance(TimeDelta::seconds(41));
    let status = r.probe.check(&inb, &ticket).await.unwrap();
    assert_eq!(
        status,
        ProbeStatus::Arrived {
            at: sent_at + TimeDelta::seconds(41 + 40)
        }
    );
    assert!(
        r.server.inbox(ORG_INBOX).is_empty(),
        "deleted after it was found"
    );

    // Unknown tenant and a refused account are configuration errors (not counted as mail-flow failures).
    let other = ProbeRequest {
        tenant: TenantId::new("other").unwrap(),
        ..req(Direction::Outbound, "ou-2")
    };
    let e = r.probe.dispatch(&other).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    r.server
        .inject(continuity_test_support::ews_server::Inject::Fault {
            code: "ErrorImpersonateUserDenied",
            message: "The account does not have permission to impersonate the requested user.",
        });
    let e = r
        .probe
        .dispatch(&req(Direction::Outbound, "ou-3"))
        .await
        .unwrap_err();
    assert!(
        !e.is_retryable() && e.to_string().contains("ErrorImpersonateUserDenied"),
        "{e}"
    );
    // The server refusing connections is an outage: retryable, counted.
    r.server
        .inject(continuity_test_support::ews_server::Inject::Http {
            status: 503,
            retry_after: None,
            content_type: None,
            body: "",
        });
    r.server
        .inject(continuity_test_support::ews_server::Inject::Http {
            status: 503,
            retry_after: None,
            content_type: None,
            body: "",
        });
    r.server
        .inject(continuity_test_support::ews_server::Inject::Http {
            status: 503,
            retry_after: None,
            content_type: None,
            body: "",
        });
    let e = r
        .probe
        .dispatch(&req(Direction::Outbound, "ou-4"))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    r.server.validate_log().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_sent_copy_is_deleted_once_the_probe_arrived() {
    let r = rig().await;
    r.probe.set_tenant(
        r.h.tenant.clone(),
        EwsTenantProbe {
            client: client(&r.server.url),
            outbound_from: Some(ORG_SENDER.into()),
            inbound_mailbox: Some(ORG_INBOX.into()),
            save_sent_copy: true,
        },
    );
    let out = ProbeRequest {
        tenant: r.h.tenant.clone(),
        direction: Direction::Outbound,
        probe_id: "ou-9".into(),
        sent_at: r.h.clock.now(),
    };
    let ticket = r.probe.dispatch(&out).await.unwrap();
    assert_eq!(
        r.server.sent_items(ORG_SENDER).len(),
        1,
        "SendAndSaveCopy keeps a copy"
    );
    r.h.clock.advance(TimeDelta::minutes(1));
    r.gateway_pump(r.h.clock.now());
    assert!(matches!(
        r.probe.check(&out, &ticket).await.unwrap(),
        ProbeStatus::Arrived { .. }
    ));
    assert!(
        r.server.sent_items(ORG_SENDER).is_empty(),
        "the copy is cleaned up"
    );
    assert_eq!(r.probe.counters().delete_failures, 0);
    r.server.validate_log().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_permission_reaches_the_embedder_typed_and_the_tick_report_as_text() {
    let r = rig().await;
    let denied = || {
        r.server
            .inject(continuity_test_support::ews_server::Inject::Fault {
                code: "ErrorImpersonateUserDenied",
                message: "The account does not have permission to impersonate the requested user.",
            })
    };
    // An embedder calling the probe can ask the EWS error what it means.
    denied();
    let req = ProbeRequest {
        tenant: r.h.tenant.clone(),
        direction: Direction::Outbound,
        probe_id: "ou-denied".into(),
        sent_at: r.h.clock.now(),
    };
    let e = r.probe.dispatch(&req).await.unwrap_err();
    let ews = e
        .source_as::<EwsError>()
        .unwrap_or_else(|| panic!("the EWS error is the source: {e:?}"));
    assert!(ews.is_permission(), "{ews:?}");
    assert_eq!(
        ews.response_code().map(|c| c.as_str()),
        Some("ErrorImpersonateUserDenied")
    );

    // The monitor reports the same failure in its tick report, as text.
    denied();
    let now = r.h.clock.advance(TimeDelta::minutes(1));
    let report = r.h.monitor.tick(now).await.unwrap();
    let expected = format!("acme: outbound probe dispatch: {e}");
    assert!(report.errors.contains(&expected), "{:?}", report.errors);
    assert_eq!(
        report.probes_lost, 0,
        "a permission refused is not an outage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_busy_on_dispatch_is_throttling_not_a_failure() {
    let r = rig().await;
    let req = ProbeRequest {
        tenant: r.h.tenant.clone(),
        direction: Direction::Outbound,
        probe_id: "ou-busy".into(),
        sent_at: r.h.clock.now(),
    };
    for _ in 0..8 {
        r.server
            .inject(continuity_test_support::ews_server::Inject::BusyFault(20));
    }
    let e = r.probe.dispatch(&req).await.unwrap_err();
    match &e {
        continuity_core::Error::ProbeThrottled { code, .. } => {
            assert_eq!(code.as_deref(), Some("ErrorServerBusy"), "{e}");
        }
        other => panic!("ServerBusy must map to ProbeThrottled: {other:?}"),
    }
    assert!(e.is_retryable());
}
