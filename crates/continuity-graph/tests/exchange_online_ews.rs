//! Exchange Online over EWS: `continuity-ews` with tokens from this crate's
//! cache, against the EWS test server of `continuity-ews` (every request
//! validated against Microsoft's schema) that checks each bearer token as
//! Exchange Online does (signature, audience `https://outlook.office365.com`,
//! lifetime, tenant, the `full_access_as_app` role), the impersonation header
//! and `X-AnchorMailbox`.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::TimeDelta;
use common::*;
use continuity_core::Clock;
use continuity_ews::request::{Disposition, Folder, ProbeMessage};
use continuity_ews::{Auth, EwsClient, EwsConnectionProblem, EwsError};
use continuity_ews::{EwsConfig, EwsRetryPolicy};
use continuity_test_support::ews_server::EwsServer;

const MAILBOX: &str = "probe@contoso.com";
const GATEWAY: &str = "probe@gateway.example";

/// The EWS server, trusting tokens that the local endpoint issued for EWS
/// to applications holding `full_access_as_app` in `TENANT`.
async fn exchange_online(rig: &GraphRig) -> EwsServer {
    let ews = EwsServer::start(Arc::new(rig.clock.clone())).await;
    ews.add_mailbox(MAILBOX);
    let clock = rig.clock.clone();
    ews.set_token_check(Arc::new(move |token| {
        let claims = verify_access_token(
            token,
            "https://outlook.office365.com",
            clock.now().timestamp(),
        )?;
        if claims.tid != TENANT {
            return Err(format!("token of tenant {}", claims.tid));
        }
        if !claims.roles.iter().any(|r| r == "full_access_as_app") {
            return Err("no full_access_as_app role".into());
        }
        Ok(true)
    }));
    ews
}

fn with_ews_role(d: &mut Directory) {
    d.roles
        .get_mut(&(TENANT.to_string(), CLIENT_ID.to_string()))
        .unwrap()
        .push("full_access_as_app".into());
}

fn ews_client(rig: &GraphRig, ews: &EwsServer, scope: &str) -> EwsClient {
    let mut cfg = EwsConfig::new(
        &ews.url,
        Auth::Bearer(Arc::new(rig.cache.source(rig.app.clone(), scope))),
    );
    // The local server: plain http, short timeouts, fast retries, no send
    // pacing (as the EWS crate's own tests set it).
    cfg.allow_plain_http = true;
    cfg.request_timeout = std::time::Duration::from_secs(10);
    cfg.min_send_interval = std::time::Duration::ZERO;
    cfg.retry = EwsRetryPolicy {
        max_attempts: 3,
        base_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        max_server_wait: std::time::Duration::from_secs(2),
    };
    cfg.clock = Arc::new(rig.clock.clone());
    EwsClient::new(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_talks_to_exchange_online_with_cached_app_tokens() {
    let rig = graph_rig_with(with_ews_role).await;
    let ews = exchange_online(&rig).await;
    let c = ews_client(&rig, &ews, EWS_SCOPE);
    assert!(c.config().is_exchange_online());

    let info = c.check_connection(MAILBOX).await.unwrap();
    assert!(
        info.inbox.is_some(),
        "the impersonated mailbox's Inbox: {info:?}"
    );
    // Many requests at once: one token request for all of them.
    let calls = (0..8).map(|i| {
        let c = c.clone();
        async move {
            c.send_probe(
                MAILBOX,
                &ProbeMessage {
                    probe_id: &format!("p-{i}"),
                    to: GATEWAY,
                    disposition: Disposition::SendOnly,
                },
            )
            .await
        }
    });
    for r in futures_join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(
        rig.ep.requests.load(Ordering::SeqCst),
        1,
        "one token request"
    );

    // An inbound probe delivered to the mailbox is found with the same token.
    ews.deliver(
        MAILBOX,
        "[continuity-probe] in-1.contoso",
        Some("in-1.contoso"),
        rig.clock.now(),
    );
    rig.clock.advance(TimeDelta::seconds(30));
    let found = c
        .find_probe(MAILBOX, "in-1.contoso", &[Folder::Inbox], None)
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);

    // Every request: Bearer, impersonating the mailbox, anchored on it.
    let log = ews.log();
    assert!(log.len() >= 10, "{}", log.len());
    for l in &log {
        assert_eq!(l.auth_scheme.as_deref(), Some("Bearer"), "{}", l.operation);
        assert_eq!(l.impersonated.as_deref(), Some(MAILBOX), "{}", l.operation);
        assert_eq!(l.anchor.as_deref(), Some(MAILBOX), "{}", l.operation);
    }
    assert!(ews.violations().is_empty(), "{:?}", ews.violations());
    assert_eq!(ews.validate_log().unwrap(), log.len());

    // The token lives 3,900 s; 5 minutes before it ends the next call gets
    // a fresh one, which Exchange Online accepts as well.
    rig.clock.advance(TimeDelta::seconds(3900 - 300));
    c.check_connection(MAILBOX).await.unwrap();
    assert_eq!(rig.ep.requests.load(Ordering::SeqCst), 2, "refreshed ahead");
    assert_eq!(ews.requests("(unauthenticated)"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_online_refuses_a_graph_token_and_an_app_without_the_role() {
    // A token for Graph is not a token for Exchange Online: refused as bad
    // credentials, after the client dropped it and tried a fresh one once.
    let rig = graph_rig_with(with_ews_role).await;
    let ews = exchange_online(&rig).await;
    let c = ews_client(&rig, &ews, GRAPH_SCOPE);
    match c.check_connection(MAILBOX).await.unwrap_err() {
        EwsConnectionProblem::BadCredentials(EwsError::Unauthorized { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(rig.ep.requests.load(Ordering::SeqCst), 2, "one fresh token");
    assert_eq!(ews.requests("(unauthenticated)"), 2);

    // The right audience but no full_access_as_app (consent for the legacy
    // EWS permission missing): refused too.
    let rig = graph_rig().await;
    let ews = exchange_online(&rig).await;
    let c = ews_client(&rig, &ews, EWS_SCOPE);
    assert!(matches!(
        c.check_connection(MAILBOX).await.unwrap_err(),
        EwsConnectionProblem::BadCredentials(_)
    ));
}

/// Runs `futures` concurrently (the workspace has no `futures` crate).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
