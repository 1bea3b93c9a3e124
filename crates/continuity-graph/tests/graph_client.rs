//! `GraphClient` against the local Graph: sendMail's shape, finding probes
//! (named property, subject, Junk Email, paging), deletion, Graph's JSON
//! errors, throttling and `Retry-After`, a refused token replaced once.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::TimeDelta;
use common::graph_server::Inject;
use common::*;
use continuity_core::Clock;
use continuity_core::arrival::{PROBE_HEADER, probe_subject};
use continuity_graph::odata::MailFolder;
use continuity_graph::{
    DeleteMode, GraphClient, GraphError, GraphOperation, MailMessage, ThrottleReason,
};

const T1: &str = "in-1.acme";

/// Finds `token` in `MAILBOX`'s `folders` by the probe header or the subject.
async fn find(
    client: &GraphClient,
    token: &str,
    folders: &[MailFolder],
    after: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<continuity_graph::FoundMessage>, GraphError> {
    client
        .find_probe(MAILBOX, PROBE_HEADER, token, folders, after)
        .await
}

fn probe_mail<'a>(
    to: &'a str,
    subject: &'a str,
    headers: &'a [(&'a str, &'a str)],
) -> MailMessage<'a> {
    MailMessage {
        to,
        subject,
        body: "Continuity probe message; safe to delete.",
        headers,
        save_to_sent_items: false,
    }
}

#[tokio::test]
async fn send_mail_is_accepted_and_delivered_after_the_delay() {
    let r = graph_rig().await;
    r.graph.set_delivery_delay(TimeDelta::seconds(40));
    let client = r.client();
    let subject = probe_subject("ou-1.acme");
    client
        .send_mail(
            SENDER,
            &probe_mail(GATEWAY, &subject, &[(PROBE_HEADER, "ou-1.acme")]),
        )
        .await
        .unwrap();
    let out = r.graph.external();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, GATEWAY);
    assert_eq!(out[0].subject, "[continuity-probe] ou-1.acme");
    assert_eq!(
        out[0].headers,
        vec![(PROBE_HEADER.to_owned(), "ou-1.acme".to_owned())]
    );
    assert_eq!(out[0].received, r.clock.now() + TimeDelta::seconds(40));
    assert!(
        r.graph.sent_items(SENDER).is_empty(),
        "saveToSentItems false"
    );

    // Graph refuses a custom header not named x-…: a request error, neither a failure nor throttling.
    let e = client
        .send_mail(SENDER, &probe_mail(GATEWAY, &subject, &[("Probe", "x")]))
        .await
        .unwrap_err();
    match &e {
        GraphError::Graph {
            status: 400,
            code,
            operation: GraphOperation::SendMail,
            ..
        } => assert_eq!(code, "InvalidInternetMessageHeader"),
        other => panic!("{other:?}"),
    }
    assert!(!e.is_retryable() && !e.is_throttling() && !e.is_config());
    assert_eq!(r.graph.external().len(), 1);
}

#[tokio::test]
async fn probes_are_found_by_header_then_subject_across_pages() {
    let r = graph_rig().await;
    r.graph.set_page_cap(2);
    r.graph.set_delivery_delay(TimeDelta::zero());
    let client = r.client();
    let t0 = r.clock.now();
    // The mailbox's first message with the header: not mapped yet, so found by the subject.
    r.graph
        .deliver(MAILBOX, &probe_subject(T1), &[(PROBE_HEADER, T1)], t0);
    r.clock.advance(TimeDelta::seconds(5));
    let found = find(&client, T1, &[MailFolder::Inbox, MailFolder::JunkEmail], t0)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(!found[0].by_header);
    assert_eq!(found[0].probe_header.as_deref(), Some(T1));
    assert_eq!(found[0].received, Some(t0));
    assert_eq!(found[0].folder, MailFolder::Inbox);

    // Five copies of the next probe (mapped now) among decoys: three pages of two.
    let t2 = "in-2.acme";
    for i in 0..5 {
        r.graph.deliver(
            MAILBOX,
            &probe_subject(t2),
            &[(PROBE_HEADER, t2)],
            t0 + TimeDelta::seconds(i),
        );
    }
    r.graph.deliver(
        MAILBOX,
        &probe_subject("xin-2.acme"),
        &[(PROBE_HEADER, "xin-2.acme")],
        t0,
    );
    r.graph
        .deliver(MAILBOX, &format!("RE: {}", probe_subject(t2)), &[], t0);
    let before = r.graph.log().len();
    let found = find(&client, t2, &[MailFolder::Inbox, MailFolder::JunkEmail], t0)
        .await
        .unwrap();
    assert_eq!(found.len(), 5);
    assert!(found.iter().all(|m| m.by_header));
    let log = r.graph.log();
    let pages: Vec<_> = log[before..].iter().map(|l| l.target.clone()).collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(
        pages[0].contains("singleValueExtendedProperties"),
        "{}",
        pages[0]
    );
    assert!(!pages[0].contains("orderby"), "no $orderby: {}", pages[0]);
    // @odata.nextLink is followed verbatim.
    assert!(pages[1].ends_with("&%24skip=2"), "{}", pages[1]);
    assert!(pages[2].ends_with("&%24skip=4"), "{}", pages[2]);

    // Nothing there: both filters in both folders, and nothing found.
    let before = r.graph.log().len();
    let none = find(
        &client,
        "in-3.acme",
        &[MailFolder::Inbox, MailFolder::JunkEmail],
        t0,
    )
    .await
    .unwrap();
    assert!(none.is_empty());
    let targets: Vec<_> = r.graph.log()[before..]
        .iter()
        .map(|l| l.target.clone())
        .collect();
    assert_eq!(targets.len(), 4, "{targets:?}");
    assert!(targets[1].contains("/inbox/") && targets[1].contains("contains%28subject"));
    assert!(targets[2].contains("/junkemail/") && targets[3].contains("/junkemail/"));
    assert!(r.graph.log().iter().all(|l| l.status == 200));
}

#[tokio::test]
async fn a_probe_in_junk_email_is_found_and_messages_not_yet_delivered_are_not() {
    let r = graph_rig().await;
    r.graph.junk_everything(MAILBOX);
    r.graph.set_delivery_delay(TimeDelta::seconds(30));
    let client = r.client();
    let t0 = r.clock.now();
    r.graph
        .deliver(MAILBOX, &probe_subject(T1), &[(PROBE_HEADER, T1)], t0);
    let folders = [MailFolder::Inbox, MailFolder::JunkEmail];
    assert!(
        find(&client, T1, &folders, t0).await.unwrap().is_empty(),
        "not delivered yet"
    );
    r.clock.advance(TimeDelta::seconds(30));
    let found = find(&client, T1, &folders, t0).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].folder, MailFolder::JunkEmail);
    assert_eq!(found[0].received, Some(t0 + TimeDelta::seconds(30)));
}

#[tokio::test]
async fn deletion_purges_or_moves_and_a_gone_message_counts_as_deleted() {
    let r = graph_rig().await;
    r.graph.set_delivery_delay(TimeDelta::zero());
    let t0 = r.clock.now();
    for token in ["a.acme", "b.acme"] {
        r.graph
            .deliver(MAILBOX, &probe_subject(token), &[(PROBE_HEADER, token)], t0);
    }
    let ids: Vec<String> = r
        .graph
        .inbox(MAILBOX)
        .iter()
        .map(|m| m.id.clone())
        .collect();
    assert!(
        ids[0].contains('/') && ids[0].contains('+'),
        "ids need path encoding: {}",
        ids[0]
    );

    let purge = r.client();
    purge.delete_message(MAILBOX, &ids[0]).await.unwrap();
    assert_eq!(r.graph.inbox(MAILBOX).len(), 1);
    assert!(r.graph.deleted_items(MAILBOX).is_empty(), "permanentDelete");
    assert_eq!(r.graph.requests("POST", "/permanentDelete"), 1);
    // Already gone: fine.
    purge.delete_message(MAILBOX, &ids[0]).await.unwrap();

    let mut cfg = r.config();
    cfg.delete_mode = DeleteMode::MoveToDeletedItems;
    let mover = r.client_for(r.app.clone(), cfg);
    mover.delete_message(MAILBOX, &ids[1]).await.unwrap();
    assert!(r.graph.inbox(MAILBOX).is_empty());
    assert_eq!(r.graph.deleted_items(MAILBOX).len(), 1);
    assert_eq!(r.graph.requests("DELETE", "/messages/"), 1);
}

#[tokio::test]
async fn graph_error_bodies_are_kept_in_the_typed_error() {
    let r = graph_rig().await;
    let client = r.client();
    r.graph.inject(Inject::access_denied());
    let e = find(&client, T1, &[MailFolder::Inbox], r.clock.now())
        .await
        .unwrap_err();
    let GraphError::Graph {
        operation,
        status,
        code,
        message,
        inner,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (*operation, *status, code.as_str(), message.as_str()),
        (
            GraphOperation::ListMessages,
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again."
        )
    );
    assert_eq!(inner.request_id.as_deref(), Some("req-1"));
    assert_eq!(
        inner.client_request_id.as_deref().map(str::len),
        Some(36),
        "the GUID this client sent, echoed"
    );
    assert_eq!(inner.date.as_deref(), Some("2026-03-02T08:00:00"));
    assert!(e.is_config() && !e.is_retryable());
    let core: continuity_core::Error = e.into();
    let text = core.to_string();
    assert!(
        text.contains("Mail.ReadWrite is missing") && text.contains("ErrorAccessDenied"),
        "{text}"
    );

    // A gateway's HTML page: described, retryable, a failure (not throttling).
    r.graph.inject(Inject::Raw {
        status: 502,
        content_type: "text/html",
        body: "<html><body><h1>502 Bad Gateway</h1></body></html>",
    });
    let e = find(&client, T1, &[MailFolder::Inbox], r.clock.now())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, GraphError::GraphHttp { status: 502, excerpt, content_type: Some(ct), .. }
            if excerpt.contains("502 Bad Gateway") && ct == "text/html"),
        "{e:?}"
    );
    match continuity_core::Error::from(e) {
        continuity_core::Error::Probe {
            retryable: true,
            code,
            ..
        } => assert_eq!(code.as_deref(), Some("HTTP 502")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn throttling_holds_the_mailbox_back_until_retry_after() {
    let r = graph_rig().await;
    let client = r.client();
    let subject = probe_subject("ou-1.acme");
    let mail = probe_mail_static(&subject);
    let send = || client.send_mail(SENDER, &mail);
    r.graph.inject(Inject::throttled("7"));
    let e = send().await.unwrap_err();
    assert!(e.is_throttling() && e.is_retryable(), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    match continuity_core::Error::from(e) {
        continuity_core::Error::ProbeThrottled {
            retry_after, code, ..
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert_eq!(code.as_deref(), Some("ApplicationThrottled"));
        }
        other => panic!("{other:?}"),
    }
    // Until then nothing reaches Graph for this mailbox...
    let sent = r.graph.log().len();
    r.clock.advance(TimeDelta::seconds(3));
    match send().await.unwrap_err() {
        GraphError::Throttled {
            reason: ThrottleReason::RetryAfter,
            retry_after,
            ..
        } => assert_eq!(retry_after, Duration::from_secs(4)),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.graph.log().len(), sent, "held back locally");
    // ...while another mailbox is served.
    find(&client, T1, &[MailFolder::Inbox], r.clock.now())
        .await
        .unwrap();
    r.clock.advance(TimeDelta::seconds(4));
    send().await.unwrap();

    // 503 and 504 with Retry-After are throttling; a 503 without is a failure and holds nothing back.
    for (status, retry_after, throttling) in [
        (503, Some("2"), true),
        (504, Some("2"), true),
        (503, None, false),
    ] {
        r.graph.inject(Inject::unavailable(status, retry_after));
        let e = send().await.unwrap_err();
        assert_eq!(e.is_throttling(), throttling, "{status} {retry_after:?}");
        assert!(e.is_retryable());
        let core = continuity_core::Error::from(e);
        assert_eq!(
            matches!(core, continuity_core::Error::ProbeThrottled { .. }),
            throttling
        );
        if throttling {
            assert!(matches!(send().await, Err(GraphError::Throttled { .. })));
            r.clock.advance(TimeDelta::seconds(2));
        }
        send().await.unwrap();
    }
}

fn probe_mail_static(subject: &str) -> MailMessage<'_> {
    MailMessage {
        to: GATEWAY,
        subject,
        body: "probe",
        headers: &[],
        save_to_sent_items: false,
    }
}

#[tokio::test]
async fn a_refused_token_is_replaced_once() {
    let r = graph_rig().await;
    let client = r.client();
    let subject = probe_subject("ou-1.acme");
    client
        .send_mail(SENDER, &probe_mail_static(&subject))
        .await
        .unwrap();
    assert_eq!(r.ep.issued.load(Ordering::SeqCst), 1);
    r.graph.inject(Inject::Unauthorized);
    client
        .send_mail(SENDER, &probe_mail_static(&subject))
        .await
        .unwrap();
    assert_eq!(
        r.ep.issued.load(Ordering::SeqCst),
        2,
        "a new token was fetched"
    );
    let log = r.graph.log();
    let last: Vec<_> = log[log.len() - 2..]
        .iter()
        .map(|l| (l.status, l.token.clone()))
        .collect();
    assert_eq!(last[0].0, 401);
    assert_eq!(last[1].0, 202);
    assert_ne!(last[0].1, last[1].1, "the retry carried the new token");

    // Refused twice: reported, not retried again.
    r.graph.inject(Inject::Unauthorized);
    r.graph.inject(Inject::Unauthorized);
    let before = r.graph.log().len();
    let e = client
        .send_mail(SENDER, &probe_mail_static(&subject))
        .await
        .unwrap_err();
    assert_eq!(r.graph.log().len(), before + 2);
    assert!(
        matches!(&e, GraphError::Graph { status: 401, code, .. } if code == "InvalidAuthenticationToken"),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert!(
        continuity_core::Error::from(e)
            .to_string()
            .contains("authority")
    );
}

#[tokio::test]
async fn a_token_for_another_resource_is_refused_by_graph() {
    let r = graph_rig().await;
    // A token for EWS, not Graph (a misconfigured scope): Graph refuses its audience.
    let client = continuity_graph::GraphClient::new(
        r.config(),
        std::sync::Arc::new(r.cache.source(r.app.clone(), EWS_SCOPE)),
        std::sync::Arc::new(r.clock.clone()),
    )
    .unwrap();
    let subject = probe_subject("ou-1.acme");
    let e = client
        .send_mail(SENDER, &probe_mail_static(&subject))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, GraphError::Graph { status: 401, message, .. } if message.contains("InvalidAudience") || message.contains("audience")),
        "{e:?}"
    );
    assert_eq!(
        r.ep.issued.load(Ordering::SeqCst),
        2,
        "dropped and fetched again once"
    );
    assert_eq!(r.graph.log().len(), 2);
    assert!(r.graph.external().is_empty());
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed() {
    let r = graph_rig().await;
    r.graph.set_page_cap(1);
    r.graph.set_delivery_delay(TimeDelta::zero());
    let t0 = r.clock.now();
    // The first maps the header; two more make two pages.
    for token in ["in-0.acme", T1, T1] {
        r.graph
            .deliver(MAILBOX, &probe_subject(token), &[(PROBE_HEADER, token)], t0);
    }
    r.graph.inject(Inject::ForeignNextLink);
    let e = find(&r.client(), T1, &[MailFolder::Inbox], t0)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, GraphError::GraphResponse { reason, .. } if reason.contains("graph.attacker.example")),
        "{e:?}"
    );
    assert_eq!(r.graph.log().len(), 1);
}

#[tokio::test]
async fn an_unreachable_graph_is_retryable() {
    let r = graph_rig().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/v1.0", listener.local_addr().unwrap());
    drop(listener);
    let mut cfg = r.config();
    cfg.endpoint = closed;
    let e = find(
        &r.client_for(r.app.clone(), cfg),
        T1,
        &[MailFolder::Inbox],
        r.clock.now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, GraphError::GraphUnreachable { .. }), "{e:?}");
    assert!(e.is_retryable() && !e.is_throttling());
}

/// The local Graph refuses what Graph refuses, so that the client's requests
/// passing it means something.
#[tokio::test]
async fn the_local_graph_is_as_strict_as_graph() {
    use continuity_core::access_token::AccessTokenSource;
    let r = graph_rig().await;
    let token = r
        .cache
        .source(r.app.clone(), GRAPH_SCOPE)
        .access_token()
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let list = format!("{}/users/{MAILBOX}/mailFolders/inbox/messages", r.graph.url);
    for (query, code) in [
        ("$orderby=receivedDateTime%20desc", "InefficientFilter"),
        ("$filter=contains(subject,%27x%27)", "InefficientFilter"),
        (
            "$filter=receivedDateTime%20ge%202026-03-02T00:00:00Z&$orderby=subject",
            "InefficientFilter",
        ),
        ("$filter=subject%20eq%20%27x%27", "BadRequest"),
        ("$expand=attachments", "BadRequest"),
        ("$top=0", "BadRequest"),
        ("$select=id,bodyPreviewX", "RequestBroker--ParseUri"),
    ] {
        let resp = http
            .get(format!("{list}?{query}"))
            .bearer_auth(token.secret().expose())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
    // A dated subject filter, an $orderby opening the filter: accepted.
    let ok = http
        .get(format!(
            "{list}?$filter=receivedDateTime%20ge%202026-03-02T00:00:00Z%20and%20contains(subject,%27x%27)&$orderby=receivedDateTime%20desc"
        ))
        .bearer_auth(token.secret().expose())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // No token, or a sendMail without a JSON body.
    let resp = http.get(&list).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = http
        .post(format!("{}/users/{SENDER}/sendMail", r.graph.url))
        .bearer_auth(token.secret().expose())
        .header("content-type", "application/json")
        .body(r#"{"message":{"subject":"s","body":{"contentType":"Text","content":"c"},"toRecipients":[]}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn clients_derived_for_other_apps_share_the_pool_not_tokens_or_limits() {
    const OTHER_APP: &str = "0b9c6a52-7f1e-4f7e-9d55-2f0d5b0c7a11";
    let r = graph_rig_with(|d| {
        let cert = d.apps[TENANT][CLIENT_ID].clone();
        d.apps
            .get_mut(TENANT)
            .unwrap()
            .insert(OTHER_APP.into(), cert);
        let key = (TENANT.to_string(), CLIENT_ID.to_string());
        let consent = d.consent[&key].clone();
        let roles = d.roles[&key].clone();
        let other = (TENANT.to_string(), OTHER_APP.to_string());
        d.consent.insert(other.clone(), consent);
        d.roles.insert(other, roles);
    })
    .await;
    // The other application's access policy leaves out the sender mailbox.
    r.graph.restrict_app(OTHER_APP, &[MAILBOX]);
    let first = r.client();
    let other_app = Arc::new(
        continuity_graph::AppRegistration::new(
            TENANT,
            OTHER_APP,
            Arc::new(r.app.credential().clone()),
        )
        .unwrap()
        .with_authority(r.app.authority().clone()),
    );
    let other = first
        .for_app(Arc::new(r.cache.source(other_app, GRAPH_SCOPE)))
        .unwrap();
    assert!(!Arc::ptr_eq(first.limiter(), other.limiter()));
    assert_eq!(other.config().endpoint, first.config().endpoint);

    let subject = probe_subject("ou-2.acme");
    let mail = probe_mail(GATEWAY, &subject, &[(PROBE_HEADER, "ou-2.acme")]);
    first.send_mail(SENDER, &mail).await.unwrap();
    // Its own token: the other app is held to its own access policy.
    let e = other.send_mail(SENDER, &mail).await.unwrap_err();
    assert!(
        matches!(&e, GraphError::Graph { status: 403, .. }) && e.is_config(),
        "{e:?}"
    );
    other
        .find_probe(
            MAILBOX,
            PROBE_HEADER,
            "x",
            &[MailFolder::Inbox],
            r.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(r.ep.requests.load(Ordering::SeqCst), 2, "a token per app");
    let apps: std::collections::HashSet<_> =
        r.graph.log().into_iter().filter_map(|l| l.token).collect();
    assert_eq!(apps.len(), 2, "two tokens were used: {apps:?}");

    // Its own limiter: one app held back by Retry-After does not hold the other.
    first.limiter().back_off(MAILBOX, Duration::from_secs(60));
    assert!(matches!(
        find(&first, "x", &[MailFolder::Inbox], r.clock.now()).await,
        Err(GraphError::Throttled { .. })
    ));
    find(&other, "x", &[MailFolder::Inbox], r.clock.now())
        .await
        .unwrap();
}
