//! The client against the local EWS server: the probe operations, paging,
//! every injected error, retries, back-off, timeouts, the concurrency cap,
//! Bearer tokens and the connection check.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::TimeDelta;
use common::{SVC_PASS, SVC_USER, arc_clock, client, config, manual_clock};
use continuity_core::{
    Clock,
    access_token::{AccessToken, AccessTokenSource},
};
use continuity_ews::{
    Auth, EwsClient, EwsConnectionProblem, EwsError,
    request::{Disposition, Folder, ProbeMessage},
};
use continuity_test_support::ews_server::{EwsServer, Inject};

const SENDER: &str = "probe-sender@contoso.example";
const TARGET: &str = "probe-target@contoso.example";

async fn server() -> (continuity_core::ManualClock, EwsServer) {
    let clock = manual_clock();
    let s = EwsServer::start(arc_clock(&clock)).await;
    s.add_account(SVC_USER, SVC_PASS, true);
    s.add_account("CONTOSO\\no-role", "pw", false);
    s.add_mailbox(SENDER);
    s.add_mailbox(TARGET);
    (clock, s)
}

fn probe<'a>(id: &'a str, to: &'a str) -> ProbeMessage<'a> {
    ProbeMessage {
        probe_id: id,
        to,
        disposition: Disposition::SendOnly,
    }
}

fn assert_clean(s: &EwsServer) {
    let v = s.violations();
    assert!(v.is_empty(), "protocol/schema violations: {v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_find_read_and_delete_a_probe() {
    let (clock, s) = server().await;
    let c = client(&s.url);
    c.send_probe(SENDER, &probe("p-1", TARGET)).await.unwrap();
    // Not delivered yet (20 s delivery delay).
    let found = c
        .find_probe(TARGET, "p-1", &[Folder::Inbox, Folder::JunkEmail], None)
        .await
        .unwrap();
    assert!(found.items.is_empty());
    clock.advance(TimeDelta::seconds(30));
    let found = c
        .find_probe(TARGET, "p-1", &[Folder::Inbox], None)
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    let first = &found.items[0];
    // The mailbox's first message with the X-header only provisions it: found by the subject token.
    assert_eq!(first.probe_header, None);
    assert_eq!(first.subject.as_deref(), Some("[continuity-probe] p-1"));
    assert_eq!(
        first.received.unwrap() - first.sent.unwrap(),
        TimeDelta::seconds(20)
    );

    // From the second message on the header is stored and returned.
    c.send_probe(SENDER, &probe("p-2", TARGET)).await.unwrap();
    clock.advance(TimeDelta::seconds(30));
    let found = c
        .find_probe(
            TARGET,
            "p-2",
            &[Folder::Inbox],
            Some(clock.now() - TimeDelta::hours(1)),
        )
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1, "only p-2, not p-1");
    assert_eq!(found.items[0].probe_header.as_deref(), Some("p-2"));

    let id = found.items[0].id.clone().unwrap();
    let items = c
        .get_items(TARGET, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0]
            .headers
            .iter()
            .any(|(n, v)| n == "X-Continuity-Probe-Id" && v == "p-2")
    );
    assert!(items[0].headers.iter().any(|(n, _)| n == "Received"));
    assert!(
        items[0]
            .internet_message_id
            .as_deref()
            .is_some_and(|m| m.starts_with('<'))
    );

    c.delete_items(TARGET, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(s.inbox(TARGET).len(), 1);
    // Deleting again: ErrorItemNotFound counts as done.
    c.delete_items(TARGET, &[id]).await.unwrap();

    for l in s.log() {
        assert_eq!(l.auth_scheme.as_deref(), Some("Basic"));
        assert_eq!(
            l.impersonated.as_deref(),
            l.anchor.as_deref(),
            "X-AnchorMailbox names the impersonated mailbox"
        );
    }
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_follows_pages_and_keeps_exact_matches_only() {
    let (clock, s) = server().await;
    s.set_page_cap(2);
    let sent = clock.now();
    for subject in ["p-7", "p-70", "p-7", "xp-7y", "p-7"] {
        s.deliver(TARGET, &format!("[continuity-probe] {subject}"), None, sent);
    }
    clock.advance(TimeDelta::minutes(1));
    let c = client(&s.url);
    let found = c
        .find_probe(TARGET, "p-7", &[Folder::Inbox], None)
        .await
        .unwrap();
    assert_eq!(found.items.len(), 3);
    assert_eq!(
        s.requests("FindItem"),
        3,
        "5 matches of the restriction, 2 per page"
    );
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_then_succeed() {
    let (_clock, s) = server().await;
    let c = client(&s.url);
    let cases = [
        Inject::BusyFault(50),
        Inject::BusyResponse(20),
        Inject::Http {
            status: 503,
            retry_after: Some(1),
            content_type: Some("text/html"),
            body: "<html><body>Service Unavailable</body></html>",
        },
        Inject::Http {
            status: 500,
            retry_after: None,
            content_type: None,
            body: "",
        },
        Inject::Redirect,
        Inject::ResponseError {
            code: "ErrorMailboxStoreUnavailable",
            message: "The mailbox database is temporarily unavailable.",
        },
        Inject::Fault {
            code: "ErrorInternalServerTransientError",
            message: "transient",
        },
        Inject::Delay(Duration::from_millis(300)),
    ];
    for (n, inject) in cases.into_iter().enumerate() {
        let before = s.requests("FindItem");
        let retried = !matches!(inject, Inject::Delay(_));
        s.inject(inject.clone());
        let r = c
            .find_probe(TARGET, &format!("t-{n}"), &[Folder::Inbox], None)
            .await;
        assert!(r.is_ok(), "{inject:?}: {r:?}");
        assert_eq!(
            s.requests("FindItem") - before,
            if retried { 2 } else { 1 },
            "{inject:?}"
        );
    }
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_keep_what_the_server_said() {
    let (_clock, s) = server().await;
    let c = client(&s.url);
    let find = |c: EwsClient| async move {
        c.find_probe(TARGET, "x", &[Folder::Inbox], None)
            .await
            .unwrap_err()
    };

    // Persistent 502 HTML page: three attempts, then a clear error with status and excerpt.
    for _ in 0..3 {
        s.inject(Inject::Http { status: 502, retry_after: None, content_type: Some("text/html"), body: "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>" });
    }
    let before = s.requests("FindItem");
    let e = find(c.clone()).await;
    assert_eq!(s.requests("FindItem") - before, 3);
    assert!(
        matches!(e, EwsError::Http { status: 502, .. }) && e.is_retryable(),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("HTTP 502") && text.contains("502 Bad Gateway") && text.contains("text/html"),
        "{text}"
    );

    // Redirect to the generic error page.
    for _ in 0..3 {
        s.inject(Inject::Redirect);
    }
    let e = find(c.clone()).await;
    assert!(e.to_string().contains("genericerrorpage.htm"), "{e}");

    // Impersonation denied: a fault, not retried.
    let before = s.requests("FindItem");
    s.inject(Inject::Fault {
        code: "ErrorImpersonateUserDenied",
        message: "The account does not have permission to impersonate the requested user.",
    });
    let e = find(c.clone()).await;
    assert_eq!(s.requests("FindItem") - before, 1);
    assert!(e.is_permission() && !e.is_retryable(), "{e:?}");
    assert_eq!(
        e.response_code().unwrap().as_str(),
        "ErrorImpersonateUserDenied"
    );
    assert!(
        e.to_string()
            .contains("does not have permission to impersonate")
    );

    // A response-message error keeps ResponseCode and MessageText.
    s.inject(Inject::ResponseError {
        code: "ErrorAccessDenied",
        message: "Access is denied. Check credentials and try again.",
    });
    match find(c.clone()).await {
        EwsError::Response {
            code,
            message,
            operation,
            warning: false,
            ..
        } => {
            assert_eq!(
                (code.as_str(), operation),
                ("ErrorAccessDenied", "FindItem")
            );
            assert!(message.starts_with("Access is denied"));
        }
        other => panic!("{other:?}"),
    }

    // Server busy for longer than the client will wait: fails at once, and the
    // back-off holds for the whole account (no request goes out meanwhile).
    s.inject(Inject::BusyFault(600_000));
    let e = find(c.clone()).await;
    assert!(
        matches!(e, EwsError::ServerBusy { back_off: Some(b), .. } if b == Duration::from_secs(600)),
        "{e:?}"
    );
    let before = s.requests("FindItem");
    let e = c.send_probe(SENDER, &probe("q", TARGET)).await.unwrap_err();
    assert!(matches!(e, EwsError::ServerBusy { .. }), "{e:?}");
    assert_eq!(
        s.requests("FindItem") + s.requests("CreateItem"),
        before,
        "backing off: nothing sent"
    );
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_tokens_and_ews_disabled() {
    let (_clock, s) = server().await;
    // Wrong password: 401 with the offered schemes, not retried, no secret in the text.
    let mut cfg = config(&s.url);
    cfg.auth = Auth::basic(SVC_USER, "wrong-password");
    let c = EwsClient::new(cfg.clone()).unwrap();
    let e = c
        .find_probe(TARGET, "x", &[Folder::Inbox], None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, EwsError::Unauthorized { .. }) && e.is_configuration() && !e.is_retryable(),
        "{e:?}"
    );
    assert!(e.to_string().contains("Negotiate, NTLM, Basic"), "{e}");
    for text in [
        e.to_string(),
        format!("{e:?}"),
        format!("{cfg:?}"),
        format!("{c:?}"),
    ] {
        assert!(!text.contains("wrong-password"), "secret leaked: {text}");
    }
    assert_eq!(s.requests("(unauthenticated)"), 1);

    // 403 saying EWS is off.
    let c = client(&s.url);
    s.inject(Inject::EwsDisabled);
    let e = c
        .find_probe(TARGET, "x", &[Folder::Inbox], None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, EwsError::EwsDisabled { status: 403, .. }) && !e.is_retryable(),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("EWS disabled for this tenant"),
        "{e}"
    );

    // Bearer: a refused token is invalidated and fetched again, once.
    #[derive(Debug, Default)]
    struct Rotating {
        invalidated: AtomicUsize,
    }
    #[async_trait::async_trait]
    impl AccessTokenSource for Rotating {
        async fn access_token(&self) -> continuity_core::Result<AccessToken> {
            let t = if self.invalidated.load(Ordering::SeqCst) == 0 {
                "stale-token"
            } else {
                "fresh-token"
            };
            Ok(AccessToken::new(t, "2026-03-02T09:00:00Z".parse().unwrap()))
        }
        fn invalidate(&self, _t: &AccessToken) {
            self.invalidated.fetch_add(1, Ordering::SeqCst);
        }
    }
    s.add_token("fresh-token", true);
    let source = Arc::new(Rotating::default());
    let mut cfg = config(&s.url);
    cfg.auth = Auth::Bearer(source.clone());
    let c = EwsClient::new(cfg).unwrap();
    assert!(
        c.config().is_exchange_online(),
        "Bearer means the Exchange Online (legacy EWS) mode"
    );
    c.find_probe(TARGET, "x", &[Folder::Inbox], None)
        .await
        .unwrap();
    assert_eq!(source.invalidated.load(Ordering::SeqCst), 1);
    assert!(
        s.log()
            .iter()
            .any(|l| l.auth_scheme.as_deref() == Some("Bearer"))
    );
    assert!(!format!("{c:?}").contains("fresh-token"));
    // In that mode any bare 403 means EWS is off for the tenant.
    s.inject(Inject::Http {
        status: 403,
        retry_after: None,
        content_type: None,
        body: "",
    });
    let e = c
        .find_probe(TARGET, "x", &[Folder::Inbox], None)
        .await
        .unwrap_err();
    assert!(matches!(e, EwsError::EwsDisabled { .. }), "{e:?}");
    assert_clean(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_tls_unreachable_and_size_limit() {
    let (clock, s) = server().await;
    let mut cfg = config(&s.url);
    cfg.request_timeout = Duration::from_millis(1500);
    cfg.retry.max_attempts = 1;
    let c = EwsClient::new(cfg.clone()).unwrap();
    s.inject(Inject::Hang);
    let e = c
        .find_probe(TARGET, "x", &[Folder::Inbox], None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            EwsError::Timeout {
                operation: "FindItem",
                ..
            }
        ) && e.is_retryable(),
        "{e:?}"
    );

    // TLS to a server that speaks plain HTTP.
    let mut tls = cfg.clone();
    tls.endpoint = s.url.replace("http://", "https://");
    let e = EwsClient::new(tls)
        .unwrap()
        .find_probe(TARGET, "x", &[Folder::Inbox], None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, EwsError::Tls { .. }) && e.is_configuration(),
        "{e:?}"
    );

    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut gone = cfg.clone();
    gone.endpoint = format!("http://127.0.0.1:{port}/EWS/Exchange.asmx");
    let e = EwsClient::new(gone)
        .unwrap()
        .find_probe(TARGET, "x", &[Folder::Inbox], None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, EwsError::Unreachable { .. }) && e.is_retryable(),
        "{e:?}"
    );

    // A response over the size limit.
    for n in 0..40 {
        s.deliver(
            TARGET,
            &format!("[continuity-probe] big {n}"),
            None,
            clock.now(),
        );
    }
    clock.advance(TimeDelta::minutes(1));
    let mut small = cfg.clone();
    small.max_response_bytes = 4096;
    let e = EwsClient::new(small)
        .unwrap()
        .find_probe(TARGET, "big", &[Folder::Inbox], None)
        .await
        .unwrap_err();
    assert!(matches!(e, EwsError::TooLarge { limit: 4096 }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_capped_per_account() {
    let (_clock, s) = server().await;
    let mut cfg = config(&s.url);
    cfg.max_concurrency = 3;
    let c = EwsClient::new(cfg).unwrap();
    for _ in 0..9 {
        s.inject(Inject::Delay(Duration::from_millis(200)));
    }
    let tasks: Vec<_> = (0..9)
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move {
                c.find_probe(TARGET, &format!("c-{n}"), &[Folder::Inbox], None)
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        s.max_in_flight(),
        3,
        "never more than the cap, and the cap is used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_check_names_the_problem() {
    let (_clock, s) = server().await;
    s.refuse_version("Exchange2016");
    let ok = client(&s.url).check_connection(TARGET).await.unwrap();
    assert_eq!(ok.server.unwrap().version.as_deref(), Some("V2017_07_11"));
    assert_eq!(ok.inbox.unwrap().display_name.as_deref(), Some("Inbox"));

    let mut bad_pw = config(&s.url);
    bad_pw.auth = Auth::basic(SVC_USER, "nope");
    let mut no_role = config(&s.url);
    no_role.auth = Auth::basic("CONTOSO\\no-role", "pw");
    let mut version = config(&s.url);
    version.server_version = "Exchange2016".parse().unwrap();
    let mut tls = config(&s.url);
    tls.endpoint = s.url.replace("http://", "https://");
    let mut gone = config(&s.url);
    gone.endpoint = "http://127.0.0.1:9/EWS/Exchange.asmx".into();
    gone.retry.max_attempts = 1;

    let check = |cfg, mailbox: &'static str| async move {
        EwsClient::new(cfg)
            .unwrap()
            .check_connection(mailbox)
            .await
            .unwrap_err()
    };
    let p = check(bad_pw, TARGET).await;
    assert!(
        matches!(p, EwsConnectionProblem::BadCredentials(_)),
        "{p:?}"
    );
    assert!(p.to_string().contains("credentials were refused"), "{p}");
    let p = check(no_role, TARGET).await;
    assert!(
        matches!(p, EwsConnectionProblem::ImpersonationDenied(_)),
        "{p:?}"
    );
    assert!(p.to_string().contains("ApplicationImpersonation"), "{p}");
    let p = check(config(&s.url), "nobody@contoso.example").await;
    assert!(
        matches!(p, EwsConnectionProblem::MailboxNotFound(_)),
        "{p:?}"
    );
    let p = check(version, TARGET).await;
    assert!(
        matches!(p, EwsConnectionProblem::ServerVersionUnsupported(_)),
        "{p:?}"
    );
    let p = check(tls, TARGET).await;
    assert!(matches!(p, EwsConnectionProblem::Tls(_)), "{p:?}");
    let p = check(gone, TARGET).await;
    assert!(matches!(p, EwsConnectionProblem::Unreachable(_)), "{p:?}");
    s.inject(Inject::EwsDisabled);
    let p = check(config(&s.url), TARGET).await;
    assert!(matches!(p, EwsConnectionProblem::EwsDisabled(_)), "{p:?}");
    assert!(p.to_string().contains("Graph"), "{p}");
    assert_clean(&s);
}

#[test]
fn configuration_is_checked() {
    let mut c = config("http://exchange.contoso.example/EWS/Exchange.asmx");
    c.allow_plain_http = false;
    let e = EwsClient::new(c.clone()).unwrap_err();
    assert!(e.to_string().contains("plain http is refused"), "{e}");
    c.endpoint = "https://user:pw@exchange.contoso.example/EWS/Exchange.asmx".into();
    assert!(EwsClient::new(c.clone()).is_err());
    c.endpoint = "https://exchange.contoso.example/EWS/Exchange.asmx".into();
    c.max_concurrency = 28;
    let e = EwsClient::new(c.clone()).unwrap_err();
    assert!(e.to_string().contains("27"), "{e}");
    c.max_concurrency = 27;
    // The client may not read more than the parser takes.
    c.max_response_bytes = continuity_ews::response::MAX_BODY_BYTES + 1;
    let e = EwsClient::new(c.clone()).unwrap_err();
    assert!(e.to_string().contains("max_response_bytes"), "{e}");
    c.max_response_bytes = continuity_ews::response::MAX_BODY_BYTES;
    EwsClient::new(c).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_other_accounts_share_the_http_stack_not_credentials() {
    let (_clock, s) = server().await;
    let first = client(&s.url);
    let mut cfg = config(&s.url);
    cfg.auth = Auth::basic("CONTOSO\\no-role", "pw");
    let other = first.sharing_http(cfg.clone()).unwrap();
    first.check_connection(TARGET).await.unwrap();
    // Its own credentials: this account may not impersonate.
    match other.check_connection(TARGET).await.unwrap_err() {
        EwsConnectionProblem::ImpersonationDenied(_) => {}
        p => panic!("{p:?}"),
    }
    let users: Vec<_> = s.log().into_iter().map(|l| l.auth_scheme).collect();
    assert!(
        users.iter().all(|u| u.as_deref() == Some("Basic")),
        "{users:?}"
    );

    // Settings of the shared stack must agree.
    let mut plain = cfg.clone();
    plain.allow_plain_http = false;
    plain.endpoint = s.url.replace("http://", "https://");
    assert!(matches!(
        first.sharing_http(plain),
        Err(EwsError::InvalidConfig {
            field: "allow_plain_http",
            ..
        })
    ));
    // Its own request timeout (the first client's is 10 s).
    let mut quick = cfg.clone();
    quick.auth = Auth::basic(SVC_USER, SVC_PASS);
    quick.request_timeout = Duration::from_millis(800);
    quick.retry.max_attempts = 1;
    let quick = first.sharing_http(quick).unwrap();
    s.inject(Inject::Hang);
    // Well before the shared stack's 10 s, or the 800 ms were not applied.
    let e = tokio::time::timeout(
        Duration::from_secs(5),
        quick.find_probe(TARGET, "x", &[Folder::Inbox], None),
    )
    .await
    .expect("the client's own request timeout applies")
    .unwrap_err();
    assert!(matches!(e, EwsError::Timeout { .. }), "{e:?}");

    let mut slow = cfg;
    slow.connect_timeout = Duration::from_secs(99);
    assert!(matches!(
        first.sharing_http(slow),
        Err(EwsError::InvalidConfig {
            field: "connect_timeout",
            ..
        })
    ));
    assert_clean(&s);
}
