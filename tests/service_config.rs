//! `continuity::service::ServiceConfig`: a whole service from one TOML
//! file, and what each kind of mistake in it is told as.

#![cfg(all(feature = "service", feature = "sqlite"))]

use std::{path::Path, sync::Arc};

use continuity::{
    ManualClock, TenantId,
    policy::{FailureLimit, FailurePolicy, FailureThreshold, PolicyFactory, ThresholdPolicy},
    service::{ServiceConfig, ServiceError},
};
use continuity_test_support::{TempDir, app_cert::rsa_cert};

const LINK_KEY: &str = "link-key-0123456789abcdef-0123456";
const CSRF_KEY: &str = "csrf-key-0123456789abcdef-0123456";
const WEBHOOK_SECRET: &str = "webhook-secret-0123456789abcdef";
const RELAY_PASSWORD: &str = "relay-password-never-shown";

/// A file with every section, its secrets and certificate in `dir`.
fn full_config(dir: &Path) -> String {
    let cert = rsa_cert("continuity-test");
    let pem = dir.join("app.pem");
    std::fs::write(&pem, format!("{}{}", cert.cert_pem, cert.pkcs8_pem)).unwrap();
    for (name, value) in [
        ("link", LINK_KEY),
        ("csrf", CSRF_KEY),
        ("webhook", WEBHOOK_SECRET),
        ("relay", RELAY_PASSWORD),
        ("twilio", "twilio-token"),
        ("ews", "ews-password"),
    ] {
        std::fs::write(dir.join(name), value).unwrap();
    }
    let d = dir.display();
    format!(
        r#"
portal_url = "https://gateway.example/continuity"

[store]
sqlite = {{ path = "{d}/state.db" }}

[monitor]
lease = "3m"

[runner]
interval = "30s"
max_backoff = "5m"

[links]
keys = [ {{ id = "k2", secret = {{ file = "{d}/link" }} }}, {{ id = "k1", secret = {{ inline = "{LINK_KEY}" }} }} ]

[portal]
csrf_key = {{ file = "{d}/csrf" }}

[notifiers.sms]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = {{ file = "{d}/twilio" }}
sender = {{ from = "+15550100" }}

[notifiers.email]
from = "Continuity <alerts@gateway.example>"
relay = {{ host = "relay.gateway.example", credentials = {{ user = "alerts", password = {{ file = "{d}/relay" }} }} }}

[notifiers.webhook]
secret = {{ file = "{d}/webhook" }}

[notifiers.delivery]
fallback_after = "5m"

[probes]
gateway_address = "probe@gateway.example"
smtp_sender = {{ from = "probe@gateway.example", relay = {{ host = "relay.gateway.example" }} }}

[probes.ews.onprem]
client = {{ endpoint = "https://mail.acme.example/EWS/Exchange.asmx", auth = {{ method = "basic", username = "svc", password = {{ file = "{d}/ews" }} }} }}

[probes.ews.online]
client = {{ endpoint = "https://outlook.office365.com/EWS/Exchange.asmx", auth = {{ method = "bearer" }} }}
app = "contoso"

[probes.graph.contoso]
app = {{ tenant = "contoso.onmicrosoft.com", client_id = "11111111-2222-3333-4444-555555555555", certificate = {{ pem = "{pem}" }} }}

[[tenants]]
tenant = "acme"
recipients = [ {{ id = "ops", channel = "sms", address = "+15550100" }} ]
mail_probe = {{ ews = "onprem", outbound_from = "probe-out@acme.example", inbound_mailbox = "probe-in@acme.example" }}

[[tenants]]
tenant = "contoso"
recipients = [ {{ id = "it", channel = "email", address = "it@contoso.example" }} ]
mail_probe = {{ graph = "contoso", outbound_from = "probe-out@contoso.com", inbound_mailbox = "probe-in@contoso.com" }}

[[tenants]]
tenant = "fabrikam"
outbound = {{ failures = {{ count = 3 }} }}
recipients = [ {{ id = "noc", channel = "webhook", address = "https://noc.fabrikam.example/hook" }} ]
probes = {{ inbound = false }}
mail_probe = {{ ews = "online", outbound_from = "probe@fabrikam.onmicrosoft.com" }}

[[tenants]]
tenant = "passive"
recipients = [ {{ id = "ops", channel = "sms", address = "+15550101" }} ]
"#,
        pem = pem.display()
    )
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2026-03-02T09:00:00Z".parse().unwrap()))
}

/// The full file with `from` replaced by `to` (which must be there).
fn edited(dir: &Path, from: &str, to: &str) -> String {
    let text = full_config(dir);
    assert!(text.contains(from), "the full file has {from:?}");
    text.replacen(from, to, 1)
}

fn refused(text: &str) -> String {
    ServiceConfig::from_toml_str(text).unwrap_err().to_string()
}

#[tokio::test(flavor = "current_thread")]
async fn a_full_file_builds_the_whole_service_on_sqlite() {
    let dir = TempDir::new("service-config-full");
    let config = ServiceConfig::from_toml_str(&full_config(dir.path())).unwrap();
    let service = config.service().clock(clock()).build().await.unwrap();
    let monitor = service.monitor();
    assert_eq!(monitor.tenant_count(), 4);
    for tenant in ["acme", "contoso", "fabrikam", "passive"] {
        monitor.status(&TenantId::new(tenant).unwrap()).unwrap();
    }
    // One delivery wraps the three channels.
    assert_eq!(service.delivery().notifiers().len(), 3);
    assert!(
        dir.path().join("state.db").exists(),
        "the SQLite file is opened"
    );
    let _router = service.portal_router();
    // No tick here: the probes would go to Exchange and Entra ID.
}

/// The check of a `--check` mode passes a file that builds, and opens,
/// creates and connects to nothing (the relays and servers the file names
/// do not exist).
#[tokio::test(flavor = "current_thread")]
async fn a_check_passes_what_builds_and_opens_nothing() {
    let dir = TempDir::new("service-config-check");
    let config = ServiceConfig::from_toml_str(&full_config(dir.path())).unwrap();
    config.service().clock(clock()).check().await.unwrap();
    assert!(
        !dir.path().join("state.db").exists(),
        "the SQLite file is not created"
    );
}

/// A relay that would send in the clear without the file saying so
/// passes reading (every field is well-formed) and is refused by the
/// check, naming the field, as building refuses it.
#[tokio::test(flavor = "current_thread")]
async fn a_check_refuses_an_unencrypted_relay_not_allowed_naming_it() {
    let text = r#"
        portal_url = "https://gateway.example/continuity/"
        [store]
        memory = true
        [links]
        keys = [ { id = "k1", secret = { inline = "0123456789abcdef0123456789abcdef" } } ]
        [portal]
        csrf_key = { inline = "fedcba9876543210fedcba9876543210" }
        [notifiers.email]
        from = "Continuity <alerts@gateway.example>"
        relay = { host = "127.0.0.1", port = 2525, security = "insecure_plaintext" }
        [[tenants]]
        tenant = "acme"
        recipients = [ { id = "ops", channel = "email", address = "ops@acme.example" } ]
    "#;
    let config = ServiceConfig::from_toml_str(text).expect("well-formed");
    let e = config.service().check().await.unwrap_err();
    assert_eq!(e.field(), Some("notifiers.email.relay.security"), "{e}");
    assert!(
        e.to_string()
            .contains("unencrypted SMTP needs allow_insecure_plaintext = true"),
        "{e}"
    );
    let allowed = text.replace(
        "security = \"insecure_plaintext\"",
        "security = \"insecure_plaintext\", allow_insecure_plaintext = true",
    );
    ServiceConfig::from_toml_str(&allowed)
        .unwrap()
        .service()
        .check()
        .await
        .expect("allowed in the file");
}

/// A tenant selecting a policy only the embedder registers is refused by
/// the check without it, naming the tenant and the field, and passes with
/// it: the check builds the engine as the service would.
#[tokio::test(flavor = "current_thread")]
async fn a_check_builds_the_engine_with_the_embedders_policies() {
    let text = r#"
        portal_url = "https://gateway.example/continuity/"
        [store]
        memory = true
        [links]
        keys = [ { id = "k1", secret = { inline = "0123456789abcdef0123456789abcdef" } } ]
        [portal]
        csrf_key = { inline = "fedcba9876543210fedcba9876543210" }
        [notifiers.webhook]
        secret = { inline = "a webhook secret of 32 bytes...." }
        [[tenants]]
        tenant = "acme"
        recipients = [ { id = "ops", channel = "webhook", address = "https://ops.acme.example/hook" } ]
        [[tenants]]
        tenant = "globex"
        recipients = [ { id = "ops", channel = "webhook", address = "https://ops.globex.example/hook" } ]
        outbound = { policies = [ { name = "strict", params = { count = 0 } } ] }
    "#;
    let config = ServiceConfig::from_toml_str(text).expect("well-formed");
    let e = config.service().check().await.unwrap_err();
    assert_eq!(
        e.field(),
        Some("tenants[1] \"globex\": outbound.policies[0].name"),
        "{e}"
    );
    let strict = || {
        let factory: PolicyFactory = Arc::new(|params| {
            #[derive(serde::Deserialize)]
            struct Params {
                count: u32,
            }
            let p: Params = params.parse()?;
            let threshold = FailureThreshold::new(FailureLimit::Count(p.count));
            threshold.validate("")?;
            Ok(Box::new(FailurePolicy::new(threshold)) as Box<dyn ThresholdPolicy>)
        });
        factory
    };
    // Registered, the factory refuses the tenant's parameters.
    let e = config
        .service()
        .monitor(move |b| b.policy("strict", strict()))
        .check()
        .await
        .unwrap_err();
    assert!(
        e.field()
            .is_some_and(|f| f.starts_with("tenants[1] \"globex\": outbound.policies[0].params")),
        "{e}"
    );
    let fixed = ServiceConfig::from_toml_str(&text.replace("count = 0", "count = 3")).unwrap();
    fixed
        .service()
        .monitor(move |b| b.policy("strict", strict()))
        .check()
        .await
        .expect("the embedder's policy takes these parameters");
}

#[test]
fn the_summary_says_what_would_run_without_a_secret() {
    let dir = TempDir::new("service-config-describe");
    let config = ServiceConfig::from_toml_str(&full_config(dir.path())).unwrap();
    let summary = config.describe().to_string();
    for expected in [
        "store: SQLite",
        "state.db",
        "cluster: none",
        "portal: https://gateway.example/continuity/",
        "ticks: every 30s, backing off up to 5m",
        "link keys: k2 (signs), k1 (verify only)",
        "sms (Twilio, from +15550100)",
        "email (relay relay.gateway.example, from Continuity <alerts@gateway.example>)",
        "webhook",
        "EWS \"onprem\" (https://mail.acme.example/EWS/Exchange.asmx, basic)",
        "EWS \"online\" (https://outlook.office365.com/EWS/Exchange.asmx, bearer from app \"contoso\")",
        "Graph \"contoso\" (tenant contoso.onmicrosoft.com",
        "tenants: 4",
        "probes:\n  outbound probes to probe@gateway.example\n",
        "(durability full)",
        "acme: probed by EWS \"onprem\" every 5m: outbound from probe-out@acme.example, inbound to probe-in@acme.example",
        "fabrikam: probed by EWS \"online\" every 5m: outbound from probe@fabrikam.onmicrosoft.com;",
        "passive: passive only",
    ] {
        assert!(
            summary.contains(expected),
            "{expected:?} not in:\n{summary}"
        );
    }
    let debug = format!("{config:?}");
    for secret in [LINK_KEY, CSRF_KEY, WEBHOOK_SECRET, RELAY_PASSWORD] {
        assert!(!summary.contains(secret), "{summary}");
        assert!(!debug.contains(secret), "{debug}");
    }
    // Not even where the secrets are kept.
    assert!(
        !summary.contains("/link") && !summary.contains("inline"),
        "{summary}"
    );
}

#[test]
fn an_unknown_top_level_field_is_refused_by_name() {
    let dir = TempDir::new("service-config-unknown");
    let e = refused(&edited(
        dir.path(),
        "portal_url =",
        "colour = \"blue\"\nportal_url =",
    ));
    assert!(e.starts_with("colour: unknown field `colour`"), "{e}");
    assert!(e.contains("(line 2)"), "{e}");
    let e = refused(&edited(
        dir.path(),
        "lease = \"3m\"",
        "lease = \"3m\"\nleese = 1",
    ));
    assert!(e.starts_with("monitor.leese: unknown field `leese`"), "{e}");
}

#[test]
fn an_unknown_field_inside_a_tenant_names_the_tenant_and_the_path() {
    let dir = TempDir::new("service-config-tenant");
    let e = refused(&edited(
        dir.path(),
        "outbound = { failures = { count = 3 } }",
        "outbound = { failures = { count = 3, sount = 4 } }",
    ));
    assert!(
        e.starts_with("tenants[2] \"fabrikam\": outbound.failures.sount: unknown field `sount`"),
        "{e}"
    );
    assert!(e.contains("(line "), "{e}");
    let e = refused(&edited(
        dir.path(),
        "mail_probe = { ews = \"online\",",
        "mail_probe = { ewz = \"online\",",
    ));
    assert!(
        e.starts_with("tenants[2] \"fabrikam\": mail_probe.ewz: unknown field `ewz`"),
        "{e}"
    );
}

#[test]
fn a_bad_duration_is_refused_with_its_path() {
    let dir = TempDir::new("service-config-duration");
    let e = refused(&edited(
        dir.path(),
        "interval = \"30s\"",
        "interval = \"30 parsecs\"",
    ));
    assert!(e.starts_with("runner.interval: "), "{e}");
    let e = refused(&edited(
        dir.path(),
        "outbound = { failures = { count = 3 } }",
        "outbound = { window = \"an hour\" }",
    ));
    assert!(
        e.starts_with("tenants[2] \"fabrikam\": outbound.window: "),
        "{e}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_missing_secret_names_the_field_and_the_variable_and_nothing_is_opened() {
    let dir = TempDir::new("service-config-secret");
    let text = edited(
        dir.path(),
        &format!("secret = {{ file = \"{}/webhook\" }}", dir.path().display()),
        "secret = { env = \"CONTINUITY_TEST_NOT_SET_WEBHOOK\" }",
    );
    let config = ServiceConfig::from_toml_str(&text).unwrap();
    let e = config.service().clock(clock()).build().await.unwrap_err();
    assert_eq!(e.field(), Some("notifiers.webhook.secret"), "{e}");
    assert!(
        e.to_string()
            .contains("env:CONTINUITY_TEST_NOT_SET_WEBHOOK"),
        "{e}"
    );
    assert!(
        !dir.path().join("state.db").exists(),
        "the store is not opened"
    );

    let text = edited(
        dir.path(),
        &format!(
            "{{ id = \"k2\", secret = {{ file = \"{}/link\" }} }}",
            dir.path().display()
        ),
        "{ id = \"k2\", secret = { env = \"CONTINUITY_TEST_NOT_SET_LINK\" } }",
    );
    let e = ServiceConfig::from_toml_str(&text)
        .unwrap()
        .service()
        .build()
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("links.keys[0].secret"), "{e}");
}

#[test]
fn a_portal_url_links_cannot_follow_is_refused_naming_it() {
    let dir = TempDir::new("service-config-portal");
    let e = refused(&edited(
        dir.path(),
        "portal_url = \"https://gateway.example/continuity\"",
        "portal_url = \"https://gateway.example/continuity?link=\"",
    ));
    assert!(e.starts_with("portal_url: "), "{e}");
    assert!(e.contains("query or fragment"), "{e}");
    let e = refused(&edited(
        dir.path(),
        "portal_url = \"https://gateway.example/continuity\"",
        "portal_url = \"gateway.example/continuity/\"",
    ));
    assert!(e.contains("not an http(s) URL"), "{e}");
}

#[test]
fn the_references_between_sections_are_checked() {
    let dir = TempDir::new("service-config-refs");
    let d = dir.path();
    for (from, to, expected) in [
        (
            "mail_probe = { ews = \"onprem\",",
            "mail_probe = { ews = \"nowhere\",",
            "tenants[0] \"acme\": mail_probe.ews: no EWS account [probes.ews.nowhere]",
        ),
        (
            "[[tenants]]\ntenant = \"passive\"",
            "[[tenants]]\ntenant = \"acme\"",
            "tenants[3] \"acme\": tenant: the same tenant id is configured twice",
        ),
        (
            "tenant = \"contoso\"",
            "tenant = \"contoso\"\nrepeat_interval = \"30s\"",
            "tenants[1] \"contoso\": repeat_interval: must be at least 1 minute",
        ),
        (
            "app = \"contoso\"",
            "app = \"contosso\"",
            "probes.ews.online.app: no app registration [probes.graph.contosso]",
        ),
        (
            "mail_probe = { ews = \"online\", outbound_from = \"probe@fabrikam.onmicrosoft.com\" }",
            "mail_probe = { ews = \"online\" }",
            "tenants[2] \"fabrikam\": mail_probe.outbound_from: the mailbox outbound probes are sent from is needed",
        ),
        (
            "[store]\nsqlite",
            "[store]\nmemory = true\nsqlite",
            "store: choose exactly one store",
        ),
        (
            "interval = \"30s\"",
            "interval = \"5m\"",
            "runner.interval: must be shorter than monitor.lease",
        ),
    ] {
        let e = refused(&edited(d, from, to));
        assert!(e.starts_with(expected), "{expected:?}, got {e:?}");
    }
    // A recipient's channel needs its notifier.
    let text = edited(d, "[notifiers.webhook]", "[notifiers.not_webhook]");
    let e = refused(&text);
    assert!(e.starts_with("notifiers.not_webhook: unknown field"), "{e}");
}

#[test]
fn a_recipient_on_a_channel_without_notifier_is_refused() {
    let dir = TempDir::new("service-config-channel");
    let text = full_config(dir.path());
    let start = text.find("[notifiers.webhook]").unwrap();
    let end = text.find("[notifiers.delivery]").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]);
    let e = refused(&text);
    assert!(
        e.starts_with("tenants[2] \"fabrikam\": recipients[0].channel: no webhook notifier is configured (add [notifiers.webhook])"),
        "{e}"
    );
}

#[test]
fn a_file_is_read_and_its_errors_name_it() {
    let dir = TempDir::new("service-config-file");
    let path = dir.path().join("service.toml");
    std::fs::write(&path, full_config(dir.path())).unwrap();
    ServiceConfig::from_file(&path).unwrap();
    std::fs::write(&path, "portal_url = 1").unwrap();
    let e = ServiceConfig::from_file(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: portal_url: ", path.display())),
        "{e}"
    );
    let missing = dir.path().join("missing.toml");
    let e = ServiceConfig::from_file(&missing).unwrap_err();
    assert!(matches!(e, ServiceError::File { .. }), "{e}");
}

#[test]
fn a_syntax_error_names_its_line() {
    let e = refused("portal_url = \"https://x.example/\"\n[store\nmemory = true\n");
    assert!(e.starts_with("line 2: "), "{e}");
}

#[tokio::test(flavor = "current_thread")]
async fn an_in_memory_service_builds_and_its_links_point_below_the_portal_url() {
    let text = r#"
        portal_url = "https://gateway.example/continuity"
        [store]
        memory = true
        [links]
        keys = [ { id = "k1", secret = { inline = "0123456789abcdef0123456789abcdef" } } ]
        [portal]
        csrf_key = { inline = "fedcba9876543210fedcba9876543210" }
        [notifiers.webhook]
        secret = { inline = "0123456789abcdef0123456789abcdef" }
        [[tenants]]
        tenant = "acme"
        recipients = [ { id = "ops", channel = "webhook", address = "https://ops.acme.example/hook" } ]
    "#;
    let service = ServiceConfig::from_toml_str(text)
        .unwrap()
        .service()
        .clock(clock())
        .build()
        .await
        .unwrap();
    assert_eq!(service.portal_url(), "https://gateway.example/continuity/");
    assert_eq!(service.portal_path(), "/continuity");
    let debug = format!("{:?}", service.monitor());
    assert!(
        debug.contains("portal_url: \"https://gateway.example/continuity/\""),
        "{debug}"
    );
}

/// The complete file of `continuity::service`'s docs reads and passes the
/// checks (its secrets and certificates are not there to build it).
#[test]
fn the_module_docs_complete_file_reads_and_checks() {
    let docs = include_str!("../src/service/mod.rs")
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.trim_start_matches("//!").strip_prefix(' ').unwrap_or(""))
        .skip_while(|l| *l != "```toml")
        .skip(1)
        .take_while(|l| *l != "```")
        .collect::<Vec<_>>()
        .join("\n");
    assert!(docs.contains("[[tenants]]"), "{docs}");
    let config = ServiceConfig::from_toml_str(&docs).unwrap();
    assert_eq!(config.tenants.len(), 2);
    let summary = config.describe().to_string();
    assert!(
        summary.contains("store: SQLite /var/lib/continuity/state.db"),
        "{summary}"
    );
    assert!(
        summary.contains("contoso: probed by Graph \"contoso\""),
        "{summary}"
    );
}

/// What only building finds (files, key lengths, the store) is named by
/// the section it is in, and nothing is opened after it; the check of a
/// `--check` mode refuses the same, with the same words, opening nothing.
#[tokio::test(flavor = "current_thread")]
async fn build_errors_name_the_section_they_come_from() {
    let dir = TempDir::new("service-config-build");
    let d = dir.path();
    let text = full_config(d);
    let link = format!(
        "{{ id = \"k2\", secret = {{ file = \"{}/link\" }} }}",
        d.display()
    );
    for (from, to, field) in [
        (
            link.as_str(),
            "{ id = \"k1\", secret = { inline = \"0123456789abcdef0123456789abcdef\" } }",
            "links.keys",
        ),
        (
            "csrf_key = {",
            "csrf_key = { inline = \"short\" }\nbody_limit = 8192\n#",
            "portal.csrf_key",
        ),
        ("app.pem", "missing.pem", "probes.graph.contoso.app"),
        ("state.db", "no-such-dir/state.db", "store.sqlite"),
        (
            "relay = { host = \"relay.gateway.example\", credentials",
            "relay = { host = \"relay.gateway.example\", security = \"insecure_plaintext\", credentials",
            "notifiers.email.relay.security",
        ),
        ("lease = \"3m\"", "lease = \"3m\"\nbatch = 0", "monitor"),
        (
            "lease = \"3m\"",
            "lease = \"3m\"\nretention = { audit = \"10m\" }",
            "monitor.retention",
        ),
        (
            "[probes.ews.onprem]\nclient = { endpoint = \"https://",
            "[probes.ews.onprem]\nclient = { endpoint = \"ftp://",
            "probes.ews.onprem.client.endpoint",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let config = ServiceConfig::from_toml_str(&text.replacen(from, to, 1)).unwrap();
        let checked = config.service().clock(clock()).check().await.unwrap_err();
        let e = config.service().clock(clock()).build().await.unwrap_err();
        assert_eq!(e.field(), Some(field), "{e}");
        assert!(!e.to_string().contains("short\""), "{e}");
        assert_eq!(checked.to_string(), e.to_string(), "check and build agree");
    }
    assert!(
        !d.join("state.db").exists(),
        "no store opened after a refusal"
    );
}
