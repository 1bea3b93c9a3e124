//! E-mail subject, plain-text and HTML bodies, behind a trait the embedder
//! can replace.

use std::fmt::{self, Write as _};

use continuity_core::{machine::AlertKind, notify::AlertMessage};

/// The three parts of an alert e-mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailContent {
    /// One line: what and how bad.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// Renders alert e-mails. Implement it to use your own wording or layout
/// and pass it to [`SmtpNotifier::with_template`](crate::smtp::SmtpNotifier::with_template);
/// [`DefaultEmailTemplate`] is used otherwise.
pub trait EmailTemplate: Send + Sync + fmt::Debug {
    /// Renders `message` (for its recipient). Write times for people in the
    /// tenant's zone, as the default template does:
    /// `message.time_zone.format(message.link_expires_at)`.
    fn render(&self, message: &AlertMessage) -> EmailContent;
}

/// The built-in template.
///
/// - Subject: `[continuity] ALERT ACME Corp: outbound p95 latency 42 min,
///   threshold 30 min, ...` (the kind: `ALERT`, `STILL FAILING` for the hourly
///   reminder, `NO DATA` for a reminder whose conditions saw no data,
///   `RESOLVED`; then tenant, direction, figure against threshold).
/// - Bodies: which kind of notice it is, every condition with its figures,
///   what is failing per direction (failures by kind, the last remote
///   reply), the continuity event if one runs, the portal link with what it lets
///   the administrator do, and until when it works (times in the tenant's
///   zone, [`AlertMessage::time_zone`]). The HTML escapes all
///   values.
#[derive(Clone, Debug)]
pub struct DefaultEmailTemplate {
    subject_prefix: String,
}

impl Default for DefaultEmailTemplate {
    fn default() -> Self {
        DefaultEmailTemplate {
            subject_prefix: "[continuity] ".into(),
        }
    }
}

impl DefaultEmailTemplate {
    /// The default template with another subject prefix (may be empty).
    pub fn with_subject_prefix(prefix: impl Into<String>) -> Self {
        DefaultEmailTemplate {
            subject_prefix: prefix.into(),
        }
    }
}

/// A sentence saying which kind of notice this is.
pub fn kind_sentence(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Raised => "New alert: mail flow crossed a threshold you set.",
        AlertKind::Reminder => {
            "Reminder: the problem is still there (this notice repeats while it lasts)."
        }
        AlertKind::Resolved => "Resolved: every condition has cleared.",
    }
}

/// The opening sentence of `m`: [`kind_sentence`], except for a reminder
/// with no data, which must not claim that the problem is still there.
fn opening(m: &AlertMessage) -> &'static str {
    if m.kind == AlertKind::Reminder && m.no_data() {
        "Reminder: the alert still stands, but no deliveries were seen to tell whether the problem lasts (this notice repeats until they are)."
    } else {
        kind_sentence(m.kind)
    }
}

impl EmailTemplate for DefaultEmailTemplate {
    fn render(&self, m: &AlertMessage) -> EmailContent {
        let subject = format!("{}{}", self.subject_prefix, m.headline());
        let mut text = format!("{}\n\n", opening(m));
        text.push_str(&m.text_body());

        let mut html = String::with_capacity(1024);
        html.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
        html.push_str(&escape(&m.headline()));
        html.push_str("</title></head><body>\n");
        let _ = write!(
            html,
            "<p><strong>{}</strong></p>\n<p>{}</p>\n",
            escape(opening(m)),
            escape(&m.headline())
        );
        if !m.conditions.is_empty() {
            html.push_str("<ul>\n");
            for c in &m.conditions {
                let _ = writeln!(
                    html,
                    "<li>{} {}{}</li>",
                    escape(&c.direction.to_string()),
                    escape(&c.reading),
                    if c.newly_raised { " (new)" } else { "" }
                );
            }
            html.push_str("</ul>\n");
        }
        if !m.failing.is_empty() {
            html.push_str("<p>What is failing (in the window):</p>\n<ul>\n");
            for f in &m.failing {
                let _ = write!(html, "<li>{}: ", escape(f.direction.as_str()));
                let counts = f.counts_text();
                html.push_str(&escape(if counts.is_empty() {
                    "no failures"
                } else {
                    &counts
                }));
                if let Some(r) = &f.last_reply {
                    let _ = write!(html, "; last reply <code>{}</code>", escape(r.as_str()));
                }
                html.push_str("</li>\n");
            }
            html.push_str("</ul>\n");
        }
        if let Some(e) = &m.event {
            let _ = writeln!(html, "<p>Continuity event: {}</p>", escape(e));
        }
        let _ = write!(
            html,
            "<p><a href=\"{link}\">Open the continuity portal</a> to start, extend or end a continuity event, or to suspend alerts.</p>\n<p>{link_text}</p>\n<p>This link is for {who} only and works until {until}.</p>\n</body></html>\n",
            link = escape(&m.link),
            link_text = escape(&m.link),
            who = escape(m.recipient.name.as_deref().unwrap_or(&m.recipient.id)),
            until = escape(&m.time_zone.format(m.link_expires_at)),
        );
        EmailContent {
            subject,
            text,
            html,
        }
    }
}

/// Escapes `s` for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use continuity_core::{
        Direction, TenantId,
        config::{ChannelKind, Recipient},
        notify::ConditionReport,
    };

    use super::*;

    fn reminder(no_data: bool) -> AlertMessage {
        let at: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        AlertMessage {
            tenant: TenantId::new("acme").unwrap(),
            tenant_name: "ACME".into(),
            alert_id: 1,
            kind: AlertKind::Reminder,
            recipient: Recipient::new("ops", ChannelKind::Email, "ops@acme.example"),
            idempotency_key: "acme/1/ops".into(),
            created_at: at,
            link: "https://continuity.example.net/c/x".into(),
            link_expires_at: at,
            conditions: vec![ConditionReport {
                direction: Direction::Inbound,
                name: "failures".into(),
                reading: "no deliveries seen in the last 1 h".into(),
                newly_raised: false,
                no_data,
            }],
            event: None,
            failing: Vec::new(),
            time_zone: Default::default(),
        }
    }

    #[test]
    fn a_reminder_without_data_does_not_say_the_problem_is_still_there() {
        let template = DefaultEmailTemplate::default();
        let silent = template.render(&reminder(true));
        assert_eq!(
            silent.subject,
            "[continuity] NO DATA ACME: inbound no deliveries seen in the last 1 h"
        );
        assert!(
            silent
                .text
                .starts_with("Reminder: the alert still stands, but no deliveries")
        );
        assert!(!silent.text.contains("still there"), "{}", silent.text);
        assert!(
            silent.html.contains("no deliveries were seen"),
            "{}",
            silent.html
        );
        let failing = template.render(&reminder(false));
        assert!(
            failing
                .subject
                .starts_with("[continuity] STILL FAILING ACME")
        );
        assert!(failing.text.starts_with(kind_sentence(AlertKind::Reminder)));
    }

    #[test]
    fn times_are_in_the_tenants_zone() {
        let mut m = reminder(false);
        m.time_zone = "America/New_York".parse().unwrap();
        let rendered = DefaultEmailTemplate::default().render(&m);
        // 09:00 UTC on 2 March is 04:00 in New York (EST).
        for body in [&rendered.text, &rendered.html] {
            assert!(body.contains("works until 2026-03-02 04:00 EST."), "{body}");
            assert!(!body.contains("UTC"), "{body}");
        }
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
