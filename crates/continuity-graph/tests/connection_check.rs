//! The connection check names exactly what is missing: tenant, application,
//! certificate, consent, permission, mailbox scope, mailbox.

mod common;

use std::sync::Arc;

use common::graph_server::Inject;
use common::*;
use continuity_core::TenantId;
use continuity_core::arrival::ArrivalRegistry;
use continuity_graph::{
    AppRegistration, Authority, CertificateCredential, GraphConnectionProblem, GraphError,
    GraphProbe, GraphTenantProbe, MailboxUse, SendCheck,
};

async fn check(
    r: &GraphRig,
    usage: MailboxUse,
) -> Result<continuity_graph::GraphConnectionInfo, GraphConnectionProblem> {
    r.client().check_connection(MAILBOX, usage).await
}

fn app_with(r: &GraphRig, tenant: &str, client_id: &str, cert: &AppCert) -> Arc<AppRegistration> {
    let cred = CertificateCredential::from_pem(
        cert.cert_pem.as_bytes(),
        cert.pkcs8_pem.as_bytes(),
        &r.clock,
    )
    .unwrap();
    Arc::new(
        AppRegistration::new(tenant, client_id, Arc::new(cred))
            .unwrap()
            .with_authority(Authority::Custom(r.ep.base_url.clone())),
    )
}

#[tokio::test]
async fn a_working_setup_reports_what_it_verified() {
    let r = graph_rig().await;
    let info = check(&r, MailboxUse::SendsAndReceivesProbes).await.unwrap();
    assert_eq!(info.mailbox, MAILBOX);
    assert_eq!(
        info.roles,
        Some(vec!["Mail.Send".to_owned(), "Mail.ReadWrite".to_owned()])
    );
    assert!(info.mailbox_verified);
    assert_eq!(info.send, SendCheck::GrantedInToken);
    let info = check(&r, MailboxUse::ReceivesProbes).await.unwrap();
    assert_eq!(info.send, SendCheck::NotNeeded);
    // Read-only: one `$top=1` listing each, nothing sent.
    let log = r.graph.log();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|l| l.method == "GET" && l.target.contains("/inbox/messages?$select=id&$top=1")),
        "{log:?}"
    );
    assert!(r.graph.external().is_empty());
}

#[tokio::test]
async fn token_side_problems_are_named() {
    let r = graph_rig().await;
    let other_cert = rsa_cert("not-registered");
    type Case = (
        Arc<AppRegistration>,
        fn(&GraphConnectionProblem) -> bool,
        &'static str,
    );
    let cases: [Case; 3] = [
        (
            app_with(&r, "fabrikam.onmicrosoft.com", CLIENT_ID, &r.cert),
            |p| matches!(p, GraphConnectionProblem::UnknownTenant(_)),
            "tenant is unknown",
        ),
        (
            app_with(&r, TENANT, "00000000-0000-0000-0000-00000000dead", &r.cert),
            |p| matches!(p, GraphConnectionProblem::UnknownApplication(_)),
            "application is unknown",
        ),
        (
            app_with(&r, TENANT, CLIENT_ID, &other_cert),
            |p| matches!(p, GraphConnectionProblem::CertificateNotRegistered(_)),
            "upload this certificate",
        ),
    ];
    for (app, is, advice) in cases {
        let p = r
            .client_for(app, r.config())
            .check_connection(MAILBOX, MailboxUse::ReceivesProbes)
            .await
            .unwrap_err();
        assert!(is(&p), "{p:?}");
        assert!(p.to_string().contains(advice), "{p}");
        assert!(
            matches!(p.error(), GraphError::AccessToken { code: Some(c), .. } if c.starts_with("AADSTS"))
        );
    }
    assert!(r.graph.log().is_empty(), "no Graph request without a token");
}

#[tokio::test]
async fn missing_admin_consent_is_named() {
    let r = graph_rig_with(|d| d.consent.clear()).await;
    let p = check(&r, MailboxUse::ReceivesProbes).await.unwrap_err();
    assert!(
        matches!(p, GraphConnectionProblem::ConsentMissing(_)),
        "{p:?}"
    );
    assert!(p.to_string().contains("grant admin consent"), "{p}");
}

fn roles(r: &[&str]) -> impl FnOnce(&mut Directory) {
    let roles: Vec<String> = r.iter().map(|s| s.to_string()).collect();
    move |d: &mut Directory| {
        d.roles
            .insert((TENANT.to_string(), CLIENT_ID.to_string()), roles);
    }
}

fn missing(p: &GraphConnectionProblem) -> &'static str {
    match p {
        GraphConnectionProblem::PermissionMissing { permission, .. } => permission,
        other => panic!("not a missing permission: {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_permission_is_named() {
    // No read permission at all: Graph refuses the read.
    let r = graph_rig_with(roles(&["Mail.Send"])).await;
    let p = check(&r, MailboxUse::ReceivesProbes).await.unwrap_err();
    assert_eq!(missing(&p), "Mail.ReadWrite");
    assert!(matches!(p.error(), GraphError::Graph { status: 403, .. }));
    assert!(p.to_string().contains("grant admin consent"), "{p}");
    // A sending mailbox needs no read: the check passes, saying the mailbox was not verified.
    let info = check(&r, MailboxUse::SendsProbes).await.unwrap();
    assert!(!info.mailbox_verified);
    assert_eq!(info.send, SendCheck::GrantedInToken);

    // Mail.Read reads, but the probe deletes: the token's roles show what is missing.
    let r = graph_rig_with(roles(&["Mail.Read", "Mail.Send"])).await;
    let p = check(&r, MailboxUse::SendsAndReceivesProbes)
        .await
        .unwrap_err();
    assert_eq!(missing(&p), "Mail.ReadWrite");
    assert!(
        matches!(p.error(), GraphError::PermissionNotGranted { granted, .. } if granted.len() == 2),
        "{p:?}"
    );

    // No Mail.Send for a sending mailbox.
    let r = graph_rig_with(roles(&["Mail.ReadWrite"])).await;
    let p = check(&r, MailboxUse::SendsProbes).await.unwrap_err();
    assert_eq!(missing(&p), "Mail.Send");
    assert!(p.to_string().contains("Mail.Send is missing"), "{p}");
    check(&r, MailboxUse::ReceivesProbes).await.unwrap();
}

#[tokio::test]
async fn a_mailbox_out_of_scope_or_missing_is_named() {
    let r = graph_rig().await;
    r.graph.restrict_app(CLIENT_ID, &[SENDER]);
    let p = check(&r, MailboxUse::ReceivesProbes).await.unwrap_err();
    assert!(
        matches!(p, GraphConnectionProblem::MailboxOutOfScope(_)),
        "{p:?}"
    );
    assert!(p.to_string().contains("application access policy"), "{p}");
    assert!(
        r.client()
            .check_connection(SENDER, MailboxUse::SendsProbes)
            .await
            .is_ok()
    );

    let p = r
        .client()
        .check_connection("nobody@contoso.example", MailboxUse::ReceivesProbes)
        .await
        .unwrap_err();
    assert!(
        matches!(p, GraphConnectionProblem::MailboxNotFound(_)),
        "{p:?}"
    );
    assert!(p.to_string().contains("does not exist"), "{p}");
}

#[tokio::test]
async fn an_unavailable_graph_is_not_a_configuration_problem() {
    let r = graph_rig().await;
    r.graph.inject(Inject::unavailable(503, None));
    let p = check(&r, MailboxUse::ReceivesProbes).await.unwrap_err();
    assert!(matches!(p, GraphConnectionProblem::Unavailable(_)), "{p:?}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = r.config();
    cfg.endpoint = format!("http://{}/v1.0", listener.local_addr().unwrap());
    drop(listener);
    let p = r
        .client_for(r.app.clone(), cfg)
        .check_connection(MAILBOX, MailboxUse::ReceivesProbes)
        .await
        .unwrap_err();
    assert!(matches!(p, GraphConnectionProblem::Unreachable(_)), "{p:?}");
}

#[tokio::test]
async fn the_probe_checks_each_mailbox_of_a_tenant() {
    let r = graph_rig().await;
    let probe = GraphProbe::new(GATEWAY, Arc::new(ArrivalRegistry::default()), None);
    let acme = TenantId::new("acme").unwrap();
    let p = probe.check_tenant(&acme).await.unwrap_err();
    assert!(
        matches!(p, GraphConnectionProblem::NotConfigured(_)),
        "{p:?}"
    );
    probe.set_tenant(
        acme.clone(),
        GraphTenantProbe {
            client: r.client(),
            outbound_from: Some(SENDER.into()),
            inbound_mailbox: Some(MAILBOX.into()),
        },
    );
    let infos = probe.check_tenant(&acme).await.unwrap();
    assert_eq!(
        infos
            .iter()
            .map(|i| (i.mailbox.as_str(), i.send))
            .collect::<Vec<_>>(),
        [
            (SENDER, SendCheck::GrantedInToken),
            (MAILBOX, SendCheck::NotNeeded)
        ]
    );
    r.graph.restrict_app(CLIENT_ID, &[SENDER]);
    let p = probe.check_tenant(&acme).await.unwrap_err();
    assert!(
        matches!(p, GraphConnectionProblem::MailboxOutOfScope(_)),
        "{p:?}"
    );
}
