//! [`Summary`]: what a [`ServiceConfig`] would run, in words, without a
//! secret (nor where a secret is kept).

use std::fmt;

use continuity_core::{MonitorBuilder, duration::compact};
use continuity_ews::settings::EwsAuthSettings;
use continuity_notify::sms::SmsSender;

use super::config::{ProbeRef, ServiceConfig, StoreKind};

/// What a [`ServiceConfig`] would run (from [`ServiceConfig::describe`]):
/// the store and cluster, the portal URL, the tick loop, the notifiers,
/// the probes and each tenant's probe and recipients. Shows host names,
/// addresses and mailboxes, never a secret nor where one is kept.
#[derive(Debug)]
pub struct Summary<'a> {
    config: &'a ServiceConfig,
}

impl ServiceConfig {
    /// What this configuration would run, for a `--check` mode or a
    /// start-up log line: a line each for the store, the cluster, the
    /// portal, the ticks, the link keys and the notifiers, the probes one
    /// a line, then the tenants one a line.
    pub fn describe(&self) -> Summary<'_> {
        Summary { config: self }
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.config;
        match c.store.kind() {
            #[cfg(feature = "sqlite")]
            Ok(StoreKind::Sqlite(s)) => writeln!(
                f,
                "store: SQLite {} (durability {})",
                s.path.display(),
                match s.durability {
                    continuity_store::Durability::Full => "full",
                    continuity_store::Durability::Normal => "normal",
                }
            )?,
            #[cfg(feature = "postgres")]
            Ok(StoreKind::Postgres(s)) => writeln!(
                f,
                "store: PostgreSQL, schema {:?}, pool of {}, {}",
                s.schema,
                s.pool_size,
                if s.tls.is_some() { "TLS" } else { "no TLS" }
            )?,
            Ok(StoreKind::Memory(_)) => writeln!(
                f,
                "store: in memory (the state is lost when the process ends)"
            )?,
            Err(_) => writeln!(f, "store: not chosen")?,
        }
        match &c.store.cluster {
            Some(name) => writeln!(f, "cluster: instance {name:?}")?,
            None => writeln!(f, "cluster: none (a single instance owns every tenant)")?,
        }
        match MonitorBuilder::checked_portal_url(&c.portal_url) {
            Ok(url) => writeln!(f, "portal: {url}")?,
            Err(_) => writeln!(f, "portal: {:?} (refused)", c.portal_url)?,
        }
        writeln!(
            f,
            "http: {} (headers within {}, requests within {}, bodies up to {} bytes)",
            c.http.listen,
            compact(c.http.header_timeout),
            compact(c.http.request_timeout),
            c.http.max_body_bytes
        )?;
        writeln!(
            f,
            "ticks: every {}, backing off up to {} after failures",
            compact(c.runner.interval),
            compact(c.runner.max_backoff)
        )?;
        writeln!(
            f,
            "link keys: {}",
            ids(c.links.keys.iter().map(|k| k.id.as_str()))
        )?;

        let n = &c.notifiers;
        let mut notifiers = Vec::new();
        if let Some(sms) = &n.sms {
            notifiers.push(match &sms.sender {
                SmsSender::From(number) => format!("sms (Twilio, from {number})"),
                SmsSender::MessagingService(id) => format!("sms (Twilio, messaging service {id})"),
            });
        }
        if let Some(email) = &n.email {
            notifiers.push(format!(
                "email (relay {}{}, from {})",
                email.relay.host,
                email
                    .relay
                    .port
                    .map(|p| format!(":{p}"))
                    .unwrap_or_default(),
                email.from
            ));
        }
        if n.webhook.is_some() {
            notifiers.push("webhook".into());
        }
        writeln!(
            f,
            "notifiers: {}; through one delivery ({} attempts per call, fallback after {})",
            if notifiers.is_empty() {
                "none".into()
            } else {
                notifiers.join(", ")
            },
            n.delivery.retry.max_attempts,
            compact(n.delivery.fallback_after)
        )?;

        let p = &c.probes;
        let mut probes = Vec::new();
        if let Some(gateway) = &p.gateway_address {
            probes.push(format!("outbound probes to {gateway}"));
        }
        if let Some(sender) = &p.smtp_sender {
            probes.push(format!(
                "inbound probes from {} through {}",
                sender.from, sender.relay.host
            ));
        }
        for (name, account) in &p.ews {
            let auth = match &account.client.auth {
                EwsAuthSettings::Basic { .. } => "basic".to_owned(),
                EwsAuthSettings::Ntlm { .. } => "NTLM".to_owned(),
                EwsAuthSettings::Bearer => format!(
                    "bearer from app {:?}",
                    account.app.as_deref().unwrap_or("?")
                ),
            };
            probes.push(format!(
                "EWS {name:?} ({}, {auth})",
                account.client.endpoint
            ));
        }
        for (name, app) in &p.graph {
            probes.push(format!(
                "Graph {name:?} (tenant {}, client {})",
                app.app.tenant, app.app.client_id
            ));
        }
        if probes.is_empty() {
            writeln!(f, "probes: none")?;
        } else {
            writeln!(f, "probes:")?;
            for probe in probes {
                writeln!(f, "  {probe}")?;
            }
        }

        writeln!(f, "tenants: {}", c.tenants.len())?;
        for t in &c.tenants {
            let probe = match t.mail_probe.as_ref().map(|m| (m, m.probe())) {
                None => "passive only".to_owned(),
                Some((_, Err(_))) => "probe not chosen".to_owned(),
                Some((m, Ok(chosen))) => {
                    let by = match chosen {
                        ProbeRef::Ews(name) => format!("EWS {name:?}"),
                        ProbeRef::Graph(name) => format!("Graph {name:?}"),
                    };
                    let mut directions = Vec::new();
                    if t.config.probes.outbound {
                        directions.push(format!(
                            "outbound from {}",
                            m.outbound_from.as_deref().unwrap_or("?")
                        ));
                    }
                    if t.config.probes.inbound {
                        directions.push(format!(
                            "inbound to {}",
                            m.inbound_mailbox.as_deref().unwrap_or("?")
                        ));
                    }
                    format!(
                        "probed by {by} every {}: {}",
                        compact(t.config.probes.interval),
                        directions.join(", ")
                    )
                }
            };
            let recipients: Vec<String> = t
                .config
                .recipients
                .iter()
                .map(|r| format!("{} ({})", r.id, r.channel))
                .collect();
            writeln!(
                f,
                "  {}: {probe}; recipients {}",
                t.config.tenant,
                recipients.join(", ")
            )?;
        }
        Ok(())
    }
}

fn ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let ids: Vec<&str> = ids.collect();
    match ids.split_first() {
        None => "none".into(),
        Some((first, [])) => format!("{first} (signs)"),
        Some((first, rest)) => format!("{first} (signs), {} (verify only)", rest.join(", ")),
    }
}
