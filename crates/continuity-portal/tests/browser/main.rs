//! The portal end to end in a real browser: headless Chromium, on a phone's
//! viewport, opens the link an alert sent and goes through the whole flow
//! (start, extend and end an event, suspend and lift the notifications),
//! then a tampered and an expired link. Each page is checked for what it
//! says, for fitting the phone's width, and against the monitor's state, and
//! saved as a screenshot under `target/browser-screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`; `CHROMIUM` and `CHROMEDRIVER` override
//! the paths), and fails without them.

mod webdriver;

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    ManualClock, Monitor, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkKey, LinkSigner},
    machine::TenantState,
    testing::RecordingNotifier,
};
use continuity_portal::{PortalOptions, router};
use tokio::runtime::Runtime;
use webdriver::{Browser, PHONE};

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Where the screenshots go: `target/browser-screenshots/`, emptied first so
/// that what is there comes from this run.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("browser-screenshots");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The portal served on 127.0.0.1 for acme, whose outbound mail has been
/// 42 minutes late for the last 50; returns the monitor, its clock, the
/// link of the alert the outage raised, and the portal's address.
fn serve_an_outage(rt: &Runtime) -> (Arc<Monitor>, ManualClock, String, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}/p/", listener.local_addr().unwrap());
    let clock = ManualClock::new(t0());
    let sms = Arc::new(RecordingNotifier::new(ChannelKind::Sms));
    let monitor = Arc::new(
        Monitor::builder()
            .in_memory_store()
            .clock(Arc::new(clock.clone()))
            .notifier(sms.clone())
            .link_signer(LinkSigner::new(LinkKey::new("k1", [4u8; 32]).unwrap()))
            .portal_url(base.clone())
            .build()
            .unwrap(),
    );
    let acme = TenantId::new("acme").unwrap();
    let mut ops = Recipient::new("ops", ChannelKind::Sms, "+15550100");
    ops.name = Some("Dana (ops)".into());
    let mut config = continuity_core::testing::absolute_thresholds(
        TenantConfig::new(acme.clone(), vec![ops]),
        3,
    );
    config.display_name = Some("Acme Corporation".into());
    rt.block_on(async {
        monitor.register_tenant(config).await.unwrap();
        continuity_core::testing::late_outbound_mail(&monitor, &acme, t0());
        monitor.tick(t0()).await.unwrap();
        monitor
            .tick(clock.advance(TimeDelta::minutes(1)))
            .await
            .unwrap();
    });
    let alert = sms.messages().pop().expect("the outage raised an alert");
    assert!(alert.link.starts_with(&base), "{}", alert.link);

    let app = axum::Router::new().nest(
        "/p",
        router(monitor.clone(), PortalOptions::new([6u8; 32]).unwrap()),
    );
    // Its own thread and runtime: the test blocks on the browser meanwhile.
    std::thread::spawn(move || {
        current_thread().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (monitor, clock, alert.link, base)
}

fn state(monitor: &Monitor) -> TenantState {
    monitor
        .status(&TenantId::new("acme").unwrap())
        .unwrap()
        .state
        .state
}

/// Numbers and saves the screenshots, and checks each page fits the phone.
struct Pages<'a> {
    browser: &'a Browser,
    dir: PathBuf,
    saved: Vec<PathBuf>,
}

impl Pages<'_> {
    fn shoot(&mut self, name: &str) {
        // A page wider than the phone widens a mobile viewport (or scrolls
        // sideways): either way it does not fit.
        let (layout, viewport) = self.browser.widths();
        assert!(
            viewport == u64::from(PHONE.0) && layout <= viewport,
            "{name}: does not fit a {} px wide phone (viewport {viewport} px, page {layout} px)",
            PHONE.0
        );
        let path = self
            .dir
            .join(format!("{:02}-{name}.png", self.saved.len() + 1));
        self.browser.screenshot(&path);
        self.saved.push(path);
    }
}

/// Clicks the link to `action`'s form (titled `title`), picks `preset` (its value in
/// minutes) if given, submits, and returns the confirmation's text.
fn act(pages: &mut Pages<'_>, action: &str, title: &str, preset: Option<&str>) -> String {
    let b = pages.browser;
    b.click_link(title);
    b.wait_for("h1", title);
    if let Some(minutes) = preset {
        let radio = format!("input[name=minutes][value=\"{minutes}\"]");
        b.click(&radio);
        assert!(
            b.is_selected(&radio),
            "{action}: preset {minutes} not chosen"
        );
    }
    pages.shoot(&format!("{action}-form"));
    b.click("button[type=submit]");
    let text = b.wait_for("h1", "Done");
    pages.shoot(&format!("{action}-done"));
    text
}

/// The HTTP status the portal answers `url` with (which the browser does
/// not tell).
fn status_of(url: &str) -> u16 {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn says(text: &str, expected: &str) {
    assert!(text.contains(expected), "expected {expected:?} in:\n{text}");
}

#[test]
fn an_administrator_goes_through_the_portal_in_chromium() {
    let dir = screenshot_dir();
    let rt = current_thread();
    let (monitor, clock, link, base) = serve_an_outage(&rt);
    let browser = Browser::start(&dir.join("chromedriver.log"));
    let mut pages = Pages {
        browser: &browser,
        dir,
        saved: Vec::new(),
    };
    let now = t0() + TimeDelta::minutes(1);

    // The link from the SMS: the outage and what can be done.
    browser.navigate(&link);
    let text = browser.wait_for("h1", "Acme Corporation");
    says(
        &text,
        "ALERT outbound p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h",
    );
    says(
        &text,
        "Trouble since 2026-03-02 08:01 UTC; 1 alert sent, the last at 2026-03-02 08:01 UTC.",
    );
    says(&text, "None running.");
    says(&text, "Alerts are on.");
    says(&text, "Link sent to Dana (ops) with alert #0");
    // The charts of the last hour, drawn and captioned (`shoot` checks that
    // the page, charts included, fits the phone).
    says(
        &text,
        "p95 latency per 5 min over the last 1 h (bars; red over the limit of 30 min, dashed)",
    );
    pages.shoot("status");

    // Start a 4 h event.
    let text = act(&mut pages, "start", "Start a continuity event", Some("240"));
    says(&text, "The continuity event is running.");
    says(&text, "Running 2026-03-02 08:01 UTC – 2026-03-02 12:01 UTC");
    let event = state(&monitor).active_event.expect("an event runs");
    assert_eq!((event.start, event.end), (now, now + TimeDelta::hours(4)));

    // Extend it by 1 h (the preset chosen by default).
    let text = act(&mut pages, "extend", "Extend the continuity event", None);
    says(&text, "The continuity event was extended.");
    says(&text, "– 2026-03-02 13:01 UTC");
    let event = state(&monitor).active_event.expect("the event still runs");
    assert_eq!(event.end, now + TimeDelta::hours(5));

    // End it.
    let text = act(&mut pages, "end", "End the continuity event", None);
    says(&text, "The continuity event was ended.");
    says(&text, "None running.");
    let s = state(&monitor);
    assert!(s.active_event.is_none(), "{:?}", s.active_event);
    assert_eq!(s.last_event.expect("the ended event").end, now);

    // Suspend the notifications for 24 h.
    let text = act(&mut pages, "suspend", "Suspend notifications", Some("1440"));
    says(&text, "Notifications are suspended.");
    says(
        &text,
        "Suspended until 2026-03-03 08:01 UTC by ops (link of alert #0).",
    );
    let suspension = state(&monitor).suspension.expect("suspended");
    assert_eq!(suspension.until, now + TimeDelta::hours(24));

    // Lift the suspension.
    let text = act(&mut pages, "lift", "Lift the suspension", None);
    says(&text, "Notifications are back on.");
    says(&text, "Alerts are on.");
    let s = state(&monitor);
    assert!(
        s.suspension.as_ref().is_none_or(|x| x.until <= now),
        "{:?}",
        s.suspension
    );

    // The link again: the state as left, and five actions in the audit log.
    browser.navigate(&link);
    let text = browser.wait_for("h1", "Acme Corporation");
    says(&text, "None running.");
    says(&text, "Alerts are on.");
    pages.shoot("status-again");
    let log = rt
        .block_on(
            monitor
                .store()
                .audit_log(&TenantId::new("acme").unwrap(), 0, 100),
        )
        .unwrap();
    // The alerts sent are in the trail too, by the system.
    let by_admin = log
        .iter()
        .filter(|r| r.entry.actor != continuity_core::machine::Actor::System)
        .count();
    assert_eq!(by_admin, 5, "{log:?}");
    assert_eq!(log[0].entry.action, "alert.raised", "{log:?}");

    // A link altered by one character of its signature.
    let token = link.strip_prefix(&base).unwrap();
    let mut tampered = token.as_bytes().to_vec();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{base}{}", String::from_utf8(tampered).unwrap());
    browser.navigate(&tampered);
    let text = browser.wait_for("h1", "This link cannot be used");
    says(&text, "altered or mistyped");
    pages.shoot("tampered");
    assert_eq!(status_of(&tampered), 403);

    // A form opened before the link expired and sent after: refused as expired.
    browser.navigate(&link);
    browser.wait_for("h1", "Acme Corporation");
    browser.click_link("Start a continuity event");
    browser.wait_for("h1", "Start a continuity event");
    clock.advance(TimeDelta::hours(25));
    browser.click("button[type=submit]");
    let text = browser.wait_for("h1", "This link has expired");
    says(&text, "A fresh link comes with the next alert.");
    pages.shoot("expired-form");
    assert!(
        state(&monitor).active_event.is_none(),
        "an expired link acted"
    );

    // The expired link itself.
    browser.navigate(&link);
    let text = browser.wait_for("h1", "This link has expired");
    says(&text, "This link expired at 2026-03-03 08:01 UTC.");
    says(&text, "A fresh link comes with the next alert.");
    pages.shoot("expired");
    assert_eq!(status_of(&link), 410);

    for png in &pages.saved {
        assert!(
            fs::metadata(png).unwrap().len() > 1_000,
            "{}",
            png.display()
        );
    }
    assert_eq!(pages.saved.len(), 15);
}
