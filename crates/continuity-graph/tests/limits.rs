//! The limiter against the local Graph, which answers 429 above its limits
//! as Graph does: a burst is spread over windows and concurrency slots and
//! never goes above the limits; without the limiter the same burst would.

mod common;

use std::time::Duration;

use chrono::TimeDelta;
use common::*;
use continuity_core::Clock;
use continuity_core::arrival::probe_subject;
use continuity_graph::{GraphClient, GraphError, MailMessage, MailboxLimits, ThrottleReason};

async fn send(client: &GraphClient, n: usize) -> Result<(), GraphError> {
    let subject = probe_subject(&format!("ou-{n}.acme"));
    client
        .send_mail(
            SENDER,
            &MailMessage {
                to: GATEWAY,
                subject: &subject,
                body: "probe",
                headers: &[],
                save_to_sent_items: false,
            },
        )
        .await
}

/// Waits (bounded) until `cond` holds; the condition is event-driven, the bound only stops a hang.
async fn until(mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("condition reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_is_spread_over_windows_and_never_exceeds_the_limits() {
    let r = graph_rig().await;
    let window = TimeDelta::seconds(60);
    r.graph.set_limits(4, 6, window);
    let mut cfg = r.config();
    cfg.limits = MailboxLimits {
        concurrent_per_mailbox: 4,
        concurrent_per_app: 4,
        requests_per_window: 6,
        window: Duration::from_secs(60),
    };
    let client = r.client_for(r.app.clone(), cfg);
    let t0 = r.clock.now();
    let mut pending: Vec<usize> = (0..15).collect();
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        let results = futures_join(&client, &pending).await;
        let mut waits = Vec::new();
        let mut still = Vec::new();
        for (n, res) in pending.iter().zip(results) {
            match res {
                Ok(()) => {}
                Err(GraphError::Throttled {
                    reason: ThrottleReason::Window { limit: 6, .. },
                    retry_after,
                    ..
                }) => {
                    waits.push(retry_after);
                    still.push(*n);
                }
                Err(e) => panic!("round {rounds}: {e:?}"),
            }
        }
        assert!(
            pending.len() - still.len() <= 6,
            "at most a window's worth per round"
        );
        pending = still;
        if let Some(wait) = waits.into_iter().min() {
            assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
            r.clock.advance(TimeDelta::from_std(wait).unwrap());
        }
        assert!(rounds < 10, "the burst makes progress");
    }
    assert_eq!(
        r.graph.external().len(),
        15,
        "every message went in the end"
    );
    assert_eq!(rounds, 3, "15 requests at 6 per minute take three windows");
    assert!(r.clock.now() - t0 >= TimeDelta::seconds(120));
    let usage = r.graph.usage(SENDER);
    assert_eq!(
        usage.times.len(),
        15,
        "refused requests never reached Graph"
    );
    assert!(usage.max_in_window(window) <= 6, "{:?}", usage.times);
    assert!(usage.max_in_flight <= 4);
    assert_eq!(r.graph.limit_throttles(), 0, "Graph never had to throttle");
}

async fn futures_join(client: &GraphClient, ns: &[usize]) -> Vec<Result<(), GraphError>> {
    let tasks: Vec<_> = ns
        .iter()
        .map(|&n| {
            let c = client.clone();
            tokio::spawn(async move { send(&c, n).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_capped_per_mailbox() {
    let r = graph_rig().await;
    r.graph.set_limits(4, 10_000, TimeDelta::minutes(10));
    // The application's cap out of the way: the mailbox's alone holds.
    let mut cfg = r.config();
    cfg.limits.concurrent_per_app = 16;
    let client = r.client_for(r.app.clone(), cfg);
    // Warm the token so that every request goes straight to Graph.
    send(&client, 0).await.unwrap();
    r.graph.hold();
    let tasks: Vec<_> = (1..=12)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { send(&c, n).await })
        })
        .collect();
    until(|| r.graph.in_flight(SENDER) == 4).await;
    // Let them through one by one; each freed slot admits exactly one more.
    for done in 1..=12 {
        r.graph.release(1);
        let expected = (12 - done).min(4);
        until(|| r.graph.external().len() == 1 + done && r.graph.in_flight(SENDER) == expected)
            .await;
        assert!(r.graph.usage(SENDER).max_in_flight <= 4);
    }
    r.graph.stop_holding();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let usage = r.graph.usage(SENDER);
    assert_eq!(usage.max_in_flight, 4, "the burst did run 4 at a time");
    assert_eq!(r.graph.limit_throttles(), 0);
    assert_eq!(r.graph.external().len(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_application_cap_holds_across_mailboxes() {
    let r = graph_rig().await;
    let client = r.client();
    send(&client, 0).await.unwrap();
    r.graph.hold();
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let c = client.clone();
            // Half to each mailbox: listing MAILBOX's inbox, sending from SENDER.
            tokio::spawn(async move {
                if n % 2 == 0 {
                    send(&c, n).await
                } else {
                    c.check_connection(MAILBOX, continuity_graph::MailboxUse::ReceivesProbes)
                        .await
                        .map(|_| ())
                        .map_err(|p| p.error().clone())
                }
            })
        })
        .collect();
    until(|| r.graph.in_flight(SENDER) + r.graph.in_flight(MAILBOX) == 4).await;
    r.graph.stop_holding();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(r.graph.app_max_in_flight(), 4);
}

/// The control: the local Graph does catch a client that ignores its limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_limits_graph_throttles_the_same_burst() {
    let r = graph_rig().await;
    r.graph.set_limits(4, 10_000, TimeDelta::minutes(10));
    let mut cfg = r.config();
    cfg.limits = MailboxLimits {
        concurrent_per_mailbox: 16,
        concurrent_per_app: 16,
        ..MailboxLimits::default()
    };
    let client = r.client_for(r.app.clone(), cfg);
    send(&client, 0).await.unwrap();
    r.graph.hold();
    let tasks: Vec<_> = (1..=8)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { send(&c, n).await })
        })
        .collect();
    until(|| r.graph.in_flight(SENDER) == 8).await;
    r.graph.stop_holding();
    let mut throttled = 0;
    for t in tasks {
        if let Err(GraphError::Graph { status: 429, .. }) = t.await.unwrap() {
            throttled += 1;
        }
    }
    assert_eq!(r.graph.usage(SENDER).max_in_flight, 8);
    assert_eq!(throttled, 4, "the 5th to 8th concurrent requests");
    assert_eq!(r.graph.limit_throttles(), 4);
}
