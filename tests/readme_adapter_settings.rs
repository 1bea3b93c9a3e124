//! The README's adapter settings (a TOML block, which doc tests do not
//! run) read, section by section, into the types it names.

#![cfg(all(
    feature = "store",
    feature = "notify",
    feature = "ews",
    feature = "graph",
    feature = "web"
))]

use std::time::Duration;

use continuity::{
    ews::settings::EwsSettings,
    graph::{AppRegistrationSettings, GraphSettings},
    link::LinkSettings,
    monitor::MonitorSettings,
    notifiers::settings::{DeliverySettings, SmtpSettings, TwilioSettings, WebhookSettings},
    secret::SecretRef,
    stores::PostgresSettings,
    web::PortalSettings,
};

fn readme_block() -> toml::Table {
    let readme = include_str!("../README.md");
    let section = readme
        .split("### Adapter settings")
        .nth(1)
        .expect("the README has an adapter settings section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a TOML block");
    toml::from_str(block).expect("the README's TOML parses")
}

/// The section at `path`, read into its type (named at the call).
macro_rules! section {
    ($table:expr, $($key:literal).+) => {{
        let mut value = toml::Value::Table($table.clone());
        for key in [$($key),+] {
            value = value.get(key).cloned().unwrap_or_else(|| panic!("no [{key}]"));
        }
        value
            .try_into()
            .unwrap_or_else(|e| panic!("[{}]: {e}", [$($key),+].join(".")))
    }};
}

#[test]
fn every_section_reads_into_the_type_it_names() {
    let t = readme_block();
    let monitor: MonitorSettings = section!(t, "monitor");
    assert_eq!(monitor, MonitorSettings::default());
    let links: LinkSettings = section!(t, "links");
    assert_eq!(links.keys[1].secret, SecretRef::env("CONTINUITY_LINK_K1"));
    let sms: TwilioSettings = section!(t, "sms");
    assert_eq!(sms.auth_token, SecretRef::env("TWILIO_AUTH_TOKEN"));
    let _: SmtpSettings = section!(t, "email");
    let _: WebhookSettings = section!(t, "webhook");
    let delivery: DeliverySettings = section!(t, "delivery");
    assert_eq!(delivery, DeliverySettings::default());
    let _: EwsSettings = section!(t, "ews");
    let _: AppRegistrationSettings = section!(t, "graph"."app");
    let graph: GraphSettings = section!(t, "graph"."client");
    assert_eq!(graph.request_timeout, Duration::from_secs(30));
    let _: PostgresSettings = section!(t, "postgres");
    let _: PortalSettings = section!(t, "portal");
}
