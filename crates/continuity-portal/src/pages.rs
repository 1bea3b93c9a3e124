//! The pages: a view of the tenant, the action forms, and the answers.

use chrono::{DateTime, Utc};
use continuity_core::{
    link::{LinkOrigin, LinkRejection},
    machine::{ContinuityEvent, Rejection},
    portal::{DURATION_PRESETS, PortalView},
    time_zone::TimeZone,
};

use crate::{chart, html::Html, input::Kind};

fn event(h: &mut Html, zone: TimeZone, e: &ContinuityEvent) {
    h.text(zone.format(e.start))
        .raw(" – ")
        .text(zone.format(e.end));
}

/// A link to an action form; `base` is the path from the current page to
/// the link's own pages (`TOKEN/` on the status page, empty below it).
fn button(h: &mut Html, base: &str, kind: Kind) {
    h.raw("<a class=\"button\" href=\"")
        .text(base)
        .text(kind.path())
        .raw("\">")
        .text(kind.title())
        .raw("</a>");
}

/// The tenant's state and what can be done about it.
pub(crate) fn view(h: &mut Html, v: &PortalView, base: &str) {
    let at = |t: &DateTime<Utc>| v.time_zone.format(*t);
    h.raw("<h1>").text(&v.organisation).raw("</h1>");
    h.raw("<h2>Mail flow</h2><ul>");
    if v.conditions.is_empty() {
        h.raw("<li>No readings yet.</li>");
    }
    for c in &v.conditions {
        // Too little data is not good news: it is shown as such, never as "ok".
        let (class, label) = match (c.raised, c.breached, c.no_data) {
            (true, _, true) => ("bad", "ALERT, no data"),
            (true, _, false) => ("bad", "ALERT"),
            (false, true, _) => ("bad", "over threshold"),
            (false, false, true) => ("nodata", "no data"),
            (false, false, false) => ("ok", "ok"),
        };
        h.raw("<li><span class=\"")
            .text(class)
            .raw("\">")
            .text(label)
            .raw("</span> ")
            .text(&c.summary)
            .raw("</li>");
    }
    h.raw("</ul>");
    if !v.failing.is_empty() {
        // The reply is the remote server's text: escaped like every value.
        h.raw("<h2>What is failing</h2><ul>");
        for f in &v.failing {
            h.raw("<li>").text(f.direction).raw(": ");
            let counts = f.counts_text();
            h.text(if counts.is_empty() {
                "no failures"
            } else {
                &counts
            });
            if let Some(r) = &f.last_reply {
                h.raw("; last reply <code>").text(r.as_str()).raw("</code>");
            }
            h.raw("</li>");
        }
        h.raw("</ul>");
    }
    if !v.history.is_empty() {
        h.raw("<h2>Recent flow</h2>");
        for d in &v.history {
            h.raw("<h3>")
                .text(capitalised(&d.direction.to_string()))
                .raw("</h3>");
            chart::direction(h, d, v.time_zone);
        }
    }
    match (&v.incident, &v.last_alert_at) {
        (Some(i), _) => {
            h.raw("<p>Trouble since ")
                .text(at(&i.opened_at))
                .raw("; ")
                .text(i.alerts_sent)
                .raw(if i.alerts_sent == 1 {
                    " alert sent"
                } else {
                    " alerts sent"
                });
            if let Some(last) = &i.last_alert_at {
                h.raw(", the last at ").text(at(last));
            }
            h.raw(".</p>");
        }
        (None, Some(last)) => {
            h.raw("<p>Last alert at ").text(at(last)).raw(".</p>");
        }
        (None, None) => {}
    }
    if !v.recent_alerts.is_empty() {
        h.raw("<h2>Last alerts</h2><ul>");
        for a in &v.recent_alerts {
            h.raw("<li>#")
                .text(a.id)
                .raw(" ")
                .text(a.kind.as_str())
                .raw(", ")
                .text(at(&a.at));
            for (i, c) in a.active.iter().enumerate() {
                h.raw(if i == 0 { ": " } else { ", " })
                    .text(c.direction)
                    .raw(" ")
                    .text(&c.name);
            }
            h.raw("</li>");
        }
        h.raw("</ul>");
    }
    h.raw("<h2>Continuity event</h2><p>");
    match &v.active_event {
        Some(e) => {
            h.raw("<span class=\"bad\">Running</span> ");
            event(h, v.time_zone, e);
            h.raw("</p><p>");
            button(h, base, Kind::Extend);
            button(h, base, Kind::End);
        }
        None => {
            h.raw("None running.</p><p>");
            button(h, base, Kind::Start);
        }
    }
    h.raw("</p><p>");
    match &v.scheduled_event {
        Some(e) => {
            h.raw("Scheduled: ");
            event(h, v.time_zone, e);
            h.raw("</p><p>");
            button(h, base, Kind::Cancel);
        }
        None => {
            h.raw("None scheduled.</p><p>");
            button(h, base, Kind::Schedule);
        }
    }
    h.raw("</p><h2>Notifications</h2><p>");
    match &v.suspension {
        Some(s) => {
            h.raw("Suspended until ")
                .text(at(&s.until))
                .raw(" by ")
                .text(&s.by)
                .raw(".</p><p>");
            button(h, base, Kind::Lift);
        }
        None => {
            h.raw("Alerts are on.</p><p>");
            button(h, base, Kind::Suspend);
        }
    }
    h.raw("</p>");
    if !v.audit.is_empty() {
        // Actors and descriptions hold embedder- and recipient-given names:
        // escaped like every value.
        h.raw("<h2>Activity</h2><ul>");
        for r in &v.audit {
            h.raw("<li>")
                .text(at(&r.entry.at))
                .raw(" <b>")
                .text(&r.entry.action)
                .raw("</b> by ")
                .text(&r.entry.actor);
            if !r.entry.after.is_empty() {
                h.raw(": ").text(&r.entry.after);
            }
            h.raw("</li>");
        }
        h.raw("</ul>");
    }
    h.raw("<p><small>");
    match v.link_origin {
        LinkOrigin::Standing => h.raw("Standing link issued to ").text(&v.recipient),
        _ => h
            .raw("Link sent to ")
            .text(v.recipient_name.as_deref().unwrap_or(&v.recipient))
            .raw(" with alert #")
            .text(v.alert_id),
    };
    h.raw(", valid until ")
        .text(at(&v.expires_at))
        .raw(". Shown at ")
        .text(at(&v.now))
        .raw(".</small></p>");
}

/// The form for `kind`.
pub(crate) fn form(h: &mut Html, v: &PortalView, kind: Kind, token: &str, csrf: &str) {
    h.raw("<h1>")
        .text(kind.title())
        .raw("</h1><p>")
        .text(&v.organisation)
        .raw("</p>");
    h.raw("<form method=\"post\" action=\"")
        .text(kind.path())
        .raw("\"><input type=\"hidden\" name=\"csrf\" value=\"")
        .text(csrf)
        .raw("\"><input type=\"hidden\" name=\"version\" value=\"")
        .text(v.version)
        .raw("\">");
    if kind == Kind::Schedule {
        h.raw("<label>Start (")
            .text(v.time_zone)
            .raw(") <input type=\"datetime-local\" name=\"start\" required></label>");
    }
    if kind.takes_duration() {
        h.raw("<fieldset><legend>")
            .text(if kind == Kind::Extend { "By" } else { "For" })
            .raw("</legend>");
        for (i, p) in DURATION_PRESETS.iter().enumerate() {
            h.raw("<label><input type=\"radio\" name=\"minutes\" value=\"")
                .text(p.duration.as_secs() / 60)
                .raw("\"")
                .raw(if i == 0 { " checked" } else { "" })
                .raw("> ")
                .text(p.label)
                .raw("</label>");
        }
        h.raw("<label>or until (")
            .text(v.time_zone)
            .raw(") <input type=\"datetime-local\" name=\"until\"></label></fieldset>");
    }
    h.raw("<p><button type=\"submit\">")
        .text(kind.title())
        .raw("</button></p></form>");
    back(h, token);
}

/// A link back to the status page from a page below it.
pub(crate) fn back(h: &mut Html, token: &str) {
    h.raw("<p><a href=\"../")
        .text(token)
        .raw("\">Back to the status</a></p>");
}

pub(crate) fn link_refused(reason: &LinkRejection, zone: TimeZone) -> (&'static str, Html) {
    let title = match reason {
        LinkRejection::Expired { .. } => "This link has expired",
        LinkRejection::Malformed => "This is not a portal link",
        _ => "This link cannot be used",
    };
    let mut h = Html::new();
    h.raw("<h1>")
        .text(title)
        .raw("</h1><p class=\"note\">")
        .text(reason.describe(zone))
        .raw("</p>");
    (title, h)
}

pub(crate) fn refused(v: &PortalView, reason: &Rejection, token: &str) -> Html {
    let mut h = Html::new();
    h.raw("<h1>Not possible</h1><p class=\"note\">")
        .text(capitalised(&reason.describe(v.time_zone)))
        .raw(".</p>");
    back(&mut h, token);
    view(&mut h, v, "");
    h
}

pub(crate) fn conflict(v: &PortalView) -> Html {
    let mut h = Html::new();
    h.raw(
        "<h1>The state changed</h1><p class=\"note\">Someone else acted at the same time; \
         nothing was done. Here it is now: choose again.</p>",
    );
    view(&mut h, v, "");
    h
}

pub(crate) fn message(title: &str, text: &str) -> Html {
    let mut h = Html::new();
    h.raw("<h1>")
        .text(title)
        .raw("</h1><p class=\"note\">")
        .text(text)
        .raw("</p>");
    h
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
