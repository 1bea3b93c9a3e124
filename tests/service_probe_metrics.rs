//! The service's probe metrics name the adapter that probed each tenant:
//! a tenant probed through EWS counts under `adapter="ews"`, not under the
//! service's per-tenant router.

#![cfg(feature = "service")]

use std::sync::Arc;

use chrono::TimeDelta;
use continuity::{
    Clock, ManualClock,
    metrics::{PROBES_ARRIVED_TOTAL, PROBES_DISPATCHED_TOTAL},
    service::ServiceConfig,
    testing::TestRecorder,
};
use continuity_test_support::ews_server::EwsServer;

const EWS_USER: &str = "svc-continuity";
const EWS_PASSWORD: &str = "correct horse battery staple";
const OUTBOUND_FROM: &str = "probe-out@acme.example";
const GATEWAY_ADDRESS: &str = "probe@gateway.example";

fn config(ews_url: &str) -> String {
    format!(
        r#"
portal_url = "https://gateway.example/continuity/"

[store]
memory = true

[links]
keys = [ {{ id = "k1", secret = {{ inline = "0123456789abcdef0123456789abcdef" }} }} ]

[portal]
csrf_key = {{ inline = "fedcba9876543210fedcba9876543210" }}

[notifiers.webhook]
secret = {{ inline = "a webhook secret of 32 bytes...." }}

[probes]
gateway_address = "{GATEWAY_ADDRESS}"

[probes.ews.exchange]
client = {{ endpoint = "{ews_url}", allow_plain_http = true, min_send_interval = "0s", auth = {{ method = "basic", username = "{EWS_USER}", password = {{ inline = "{EWS_PASSWORD}" }} }} }}

[[tenants]]
tenant = "acme"
recipients = [ {{ id = "ops", channel = "webhook", address = "https://ops.acme.example/hook" }} ]
probes = {{ interval = "2m", inbound = false }}
mail_probe = {{ ews = "exchange", outbound_from = "{OUTBOUND_FROM}" }}
"#
    )
}

#[tokio::test(flavor = "current_thread")]
async fn a_tenant_probed_through_ews_counts_under_ews() {
    let clock = ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap());
    let arc_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let exchange = EwsServer::start_with(arc_clock.clone(), false).await;
    exchange.add_account(EWS_USER, EWS_PASSWORD, true);
    exchange.add_mailbox(OUTBOUND_FROM);
    exchange.set_delivery_delay(TimeDelta::seconds(30));

    // The monitor registers its instruments with the recorder installed
    // when it is built.
    let recorder = TestRecorder::new();
    let _local = recorder.install_local();
    let service = ServiceConfig::from_toml_str(&config(&exchange.url))
        .unwrap()
        .service()
        .clock(arc_clock)
        .build()
        .await
        .unwrap();
    let mut reported = 0;
    for _ in 0..6 {
        let now = clock.advance(TimeDelta::minutes(1));
        // The gateway's side: the outbound probes that reached it.
        for m in exchange.external().iter().skip(reported) {
            if m.received <= now {
                service.arrivals().report_message(
                    Some(&m.subject),
                    m.probe_header.as_deref(),
                    m.received,
                );
                reported += 1;
            }
        }
        let report = service.monitor().tick(now).await.unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }

    let ews = [("adapter", "ews"), ("direction", "outbound")];
    assert!(
        recorder.counter(PROBES_DISPATCHED_TOTAL, &ews) >= 2,
        "{:?}",
        recorder.counter_labels(PROBES_DISPATCHED_TOTAL)
    );
    assert!(
        recorder.counter(PROBES_ARRIVED_TOTAL, &ews) >= 1,
        "{:?}",
        recorder.counter_labels(PROBES_ARRIVED_TOTAL)
    );
    for name in [PROBES_DISPATCHED_TOTAL, PROBES_ARRIVED_TOTAL] {
        for labels in recorder.counter_labels(name) {
            assert!(
                labels.contains(&("adapter".to_owned(), "ews".to_owned())),
                "{name} {labels:?}: only the adapter's own name"
            );
        }
    }
}
