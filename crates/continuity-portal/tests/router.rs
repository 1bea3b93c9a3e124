//! The portal router in-process: every page, action and error, the security
//! headers on every response, concurrent conflicting actions, and arbitrary
//! input never answered with a 5xx.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    Direction, FailureKind, ManualClock, Monitor, Observation, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkClaims, LinkKey, LinkSigner},
    machine::EventLimits,
    testing::RecordingNotifier,
    time_zone::TimeZone,
};
use continuity_portal::{PortalError, PortalOptions, router};
use proptest::prelude::*;
use tower::ServiceExt;

const HOUR: Duration = Duration::from_secs(3_600);
const EVIL: &str = "<script>alert('acme')</script>";

struct Fixture {
    /// The portal nested under `/p`, as an embedder would.
    app: Router,
    /// The portal itself, at the root.
    bare: Router,
    monitor: Arc<Monitor>,
    clock: ManualClock,
    token: String,
}

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

async fn fixture() -> Fixture {
    fixture_in(TimeZone::UTC).await
}

/// The fixture with the tenant's administrators in `zone`.
async fn fixture_in(zone: TimeZone) -> Fixture {
    let clock = ManualClock::new(t0());
    let monitor = Arc::new(
        Monitor::builder()
            .in_memory_store()
            .clock(Arc::new(clock.clone()))
            .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
            .link_signer(LinkSigner::new(LinkKey::new("k2", [2u8; 32]).unwrap()))
            .portal_url("https://ops.example.net/p/")
            .build()
            .unwrap(),
    );
    let acme = TenantId::new("acme").unwrap();
    let mut ops = Recipient::new("ops", ChannelKind::Sms, "+15550100");
    ops.name = Some(format!("Ops {EVIL}"));
    // A known count of failures raises: the page under test, not the judgement.
    let mut config = continuity_core::testing::absolute_thresholds(
        TenantConfig::new(acme.clone(), vec![ops]),
        3,
    );
    config.display_name = Some(format!("Acme {EVIL}"));
    config.time_zone = zone;
    config.limits = EventLimits {
        max_event_duration: 48 * HOUR,
        max_schedule_ahead: 7 * 24 * HOUR,
        max_suspension: 24 * HOUR,
    };
    monitor.register_tenant(config).await.unwrap();
    continuity_core::testing::late_outbound_mail(&monitor, &acme, t0());
    let token = monitor
        .link_signer()
        .sign(
            &LinkClaims {
                tenant: acme,
                alert_id: 3,
                recipient: "ops".into(),
            },
            t0(),
        )
        .unwrap();
    let portal = router(monitor.clone(), PortalOptions::new([5u8; 32]).unwrap());
    Fixture {
        app: Router::new().nest("/p", portal.clone()),
        bare: portal,
        monitor,
        clock,
        token,
    }
}

/// The tenant's audit log.
async fn audit(f: &Fixture) -> Vec<continuity_core::store::AuditRecord> {
    let acme = TenantId::new("acme").unwrap();
    f.monitor.store().audit_log(&acme, 0, 100).await.unwrap()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let uri = request.uri().to_string();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let answer = Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    assert_secure(&uri, &answer);
    answer
}

fn assert_secure(uri: &str, a: &Answer) {
    let h = &a.headers;
    assert!(
        h.contains_key(header::REFERRER_POLICY),
        "{uri} {}: {}",
        a.status,
        a.body
    );
    assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"));
}

async fn get(app: &Router, path: &str) -> Answer {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn post_form(app: &Router, path: &str, body: &str) -> Answer {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap();
    send(app, request).await
}

async fn post_json(app: &Router, path: &str, body: serde_json::Value) -> Answer {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, request).await
}

/// The value of the hidden input `name` in a form page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The form's csrf and version fields, as a form body prefix.
async fn form_fields(f: &Fixture, action: &str) -> String {
    let page = get(&f.app, &format!("/p/{}/{action}", f.token)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    format!(
        "csrf={}&version={}",
        hidden(&page.body, "csrf"),
        hidden(&page.body, "version")
    )
}

#[tokio::test]
async fn the_status_page_shows_figures_state_and_link_with_tenant_data_escaped() {
    let f = fixture().await;
    let page = get(&f.app, &format!("/p/{}", f.token)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let body = &page.body;
    assert!(
        body.contains("outbound p95 latency 42 min, threshold 30 min, 18 samples in the last 1 h"),
        "{body}"
    );
    assert!(body.contains("name=\"viewport\""));
    assert!(
        body.contains("Acme &lt;script&gt;alert(&#39;acme&#39;)&lt;/script&gt;"),
        "{body}"
    );
    assert!(body.contains("Ops &lt;script&gt;"));
    assert!(!body.contains("<script"), "unescaped tenant data: {body}");
    assert!(body.contains("valid until 2026-03-03 08:00 UTC"));
    // Links are relative, so the router works under any prefix.
    let start = format!("href=\"{}/start\"", f.token);
    assert!(body.contains(&start), "{body}");
    assert!(body.contains(&format!("href=\"{}/suspend\"", f.token)));
    assert!(body.contains(&format!("href=\"{}/schedule\"", f.token)));
    assert!(!body.contains("Trouble since"));
    assert!(!body.contains("Last alerts"));

    // Once the breach has raised an alert, the page says so.
    f.monitor.tick(t0()).await.unwrap();
    f.monitor
        .tick(f.clock.advance(TimeDelta::minutes(1)))
        .await
        .unwrap();
    let page = get(&f.app, &format!("/p/{}", f.token)).await;
    assert!(
        page.body.contains(
            "Trouble since 2026-03-02 08:01 UTC; 1 alert sent, the last at 2026-03-02 08:01 UTC."
        ),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            "<h2>Last alerts</h2><ul><li>#0 raised, 2026-03-02 08:01 UTC: outbound latency</li></ul>"
        ),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("ALERT</span> outbound p95 latency"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_status_page_shows_what_is_failing_with_the_remote_reply_as_text() {
    let f = fixture().await;
    let acme = TenantId::new("acme").unwrap();
    for _ in 0..3 {
        f.monitor
            .observe(
                Observation::failed(acme.clone(), Direction::Inbound, t0(), FailureKind::Refused)
                    .with_reply(format!("550 5.7.1 {EVIL}\r\n")),
            )
            .unwrap();
    }
    let page = get(&f.app, &format!("/p/{}", f.token)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(!body.contains("<script>"), "{body}");
    assert!(
        body.contains(
            "<li>inbound: 3 refused; last reply <code>550 5.7.1 &lt;script&gt;alert(&#39;acme&#39;)&lt;/script&gt;</code></li>"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn a_direction_without_deliveries_shows_no_data_not_ok() {
    let f = fixture().await;
    // The fixture reports outbound mail only: inbound has seen nothing.
    let page = get(&f.app, &format!("/p/{}", f.token)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    for condition in ["inbound", "outbound"] {
        assert!(
            !body.contains(&format!("class=\"ok\">ok</span> {condition} no deliveries")),
            "{body}"
        );
    }
    assert!(
        body.contains(
            "<span class=\"nodata\">no data</span> inbound no deliveries seen in the last 1 h"
        ),
        "{body}"
    );
    assert!(!body.contains("0 failures of 0"), "{body}");
    // Outbound has its deliveries, none failed: that is healthy.
    assert!(
        body.contains("<span class=\"ok\">ok</span> outbound 0 failures of 18 deliveries"),
        "{body}"
    );

    let api = get(&f.app, &format!("/p/api/{}", f.token)).await;
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    let conditions = v["view"]["conditions"].as_array().unwrap();
    let no_data: Vec<(&str, &str)> = conditions
        .iter()
        .filter(|c| c["no_data"] == true)
        .map(|c| {
            (
                c["direction"].as_str().unwrap(),
                c["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        no_data,
        [("inbound", "latency"), ("inbound", "failures")],
        "{conditions:?}"
    );
}

#[tokio::test]
async fn every_action_goes_through_its_form_and_confirms() {
    let f = fixture().await;
    let base = format!("/p/{}", f.token);
    let steps: [(&str, &str, &str); 7] = [
        ("start", "&minutes=240", "The continuity event is running."),
        (
            "extend",
            "&minutes=60",
            "The continuity event was extended.",
        ),
        ("end", "", "The continuity event was ended."),
        (
            "schedule",
            "&start=2026-03-03T09:00&minutes=1440",
            "The continuity event is scheduled.",
        ),
        ("cancel", "", "The scheduled event was cancelled."),
        ("suspend", "&minutes=60", "Notifications are suspended."),
        ("lift", "", "Notifications are back on."),
    ];
    for (action, extra, done) in steps {
        let form = get(&f.app, &format!("{base}/{action}")).await;
        assert!(
            form.body.contains(&format!("action=\"{action}\"")),
            "{}",
            form.body
        );
        if ["start", "extend", "suspend", "schedule"].contains(&action) {
            for minutes in ["60", "240", "1440"] {
                assert!(
                    form.body.contains(&format!("value=\"{minutes}\"")),
                    "{action}: presets"
                );
            }
        }
        let fields = form_fields(&f, action).await;
        let answer = post_form(
            &f.app,
            &format!("{base}/{action}"),
            &format!("{fields}{extra}"),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{action}: {}", answer.body);
        assert!(answer.body.contains(done), "{action}: {}", answer.body);
        let state = f
            .monitor
            .status(&TenantId::new("acme").unwrap())
            .unwrap()
            .state
            .state;
        match action {
            "start" => assert_eq!(state.active_event.unwrap().end, t0() + TimeDelta::hours(4)),
            "extend" => assert_eq!(state.active_event.unwrap().end, t0() + TimeDelta::hours(5)),
            "end" => assert!(state.active_event.is_none()),
            "schedule" => {
                let e = state.scheduled_event.unwrap();
                assert_eq!(e.start.to_rfc3339(), "2026-03-03T09:00:00+00:00");
                assert_eq!(e.end - e.start, TimeDelta::hours(24));
            }
            "cancel" => assert!(state.scheduled_event.is_none()),
            "suspend" => assert_eq!(state.suspension.unwrap().until, t0() + TimeDelta::hours(1)),
            _ => assert!(state.suspension.is_none_or(|s| s.until <= t0())),
        }
    }
    let log = audit(&f).await;
    assert_eq!(log.len(), 7);
}

#[tokio::test]
async fn the_status_page_charts_each_directions_last_hour() {
    let f = fixture().await;
    let page = get(&f.app, &format!("/p/{}", f.token)).await;
    let body = &page.body;
    let chart = |direction: &str| {
        let start = body
            .find(&format!("<h3>{direction}</h3><figure class=\"chart\">"))
            .unwrap_or_else(|| panic!("no {direction} chart in {body}"));
        let end = start + body[start..].find("</figure>").unwrap();
        body[start..end].to_owned()
    };
    // Outbound: 18 deliveries 42 minutes late, from 07:10 to 07:27, in the
    // buckets of 07:10, 07:15, 07:20 and 07:25; each over the 30-minute limit.
    let outbound = chart("Outbound");
    assert_eq!(outbound.matches("class=\"over\"").count(), 4, "{outbound}");
    assert_eq!(outbound.matches("class=\"lat\"").count(), 0, "{outbound}");
    // The monitor took the tenant on at 08:00: of the empty buckets, those
    // before say nothing (blank), the one since is silence (grey).
    let unwatched = "not watched by this instance</title>";
    assert_eq!(outbound.matches(unwatched).count(), 7, "{outbound}");
    assert_eq!(outbound.matches("class=\"none\"").count(), 1, "{outbound}");
    for (bucket, n) in [("07:10–07:15", 5), ("07:15–07:20", 5), ("07:25–07:30", 3)] {
        let title =
            format!("<title>{bucket}: {n} deliveries, 0 failed, p95 latency 42 min</title>");
        assert!(outbound.contains(&title), "{title} in {outbound}");
    }
    assert!(outbound.contains("limit of 30 min, dashed"), "{outbound}");
    assert!(outbound.contains("over it in 4."), "{outbound}");
    // Inbound saw nothing since: no bucket is drawn as healthy.
    let inbound = chart("Inbound");
    assert_eq!(inbound.matches(unwatched).count(), 11, "{inbound}");
    assert_eq!(inbound.matches("class=\"none\"").count(), 1, "{inbound}");
    assert!(!inbound.contains("class=\"lat\""), "{inbound}");
    // The JSON API carries the same figures.
    let api = get(&f.app, &format!("/p/api/{}", f.token)).await;
    let json: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    let history = &json["view"]["history"];
    assert_eq!(history[1]["direction"], "outbound");
    assert_eq!(history[1]["bucket_width"], "5m");
    assert_eq!(history[1]["latency_limit"], "30m");
    let buckets = history[1]["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 12);
    assert_eq!(buckets[1]["start"], "2026-03-02T07:10:00Z");
    assert_eq!(buckets[1]["deliveries"], 5);
    assert_eq!(buckets[1]["latency"], "42m");
}

#[tokio::test]
async fn times_are_written_and_read_in_the_tenants_zone() {
    let f = fixture_in("Europe/Berlin".parse().unwrap()).await;
    let base = format!("/p/{}", f.token);
    let page = get(&f.app, &base).await;
    // 08:00 UTC is 09:00 in Berlin in March; the link lasts 24 hours.
    assert!(
        page.body
            .contains("valid until 2026-03-03 09:00 CET. Shown at 2026-03-02 09:00 CET."),
        "{}",
        page.body
    );
    assert!(!page.body.contains("UTC"), "{}", page.body);
    let form = get(&f.app, &format!("{base}/schedule")).await;
    assert!(form.body.contains("Start (Europe/Berlin)"), "{}", form.body);
    assert!(
        form.body.contains("or until (Europe/Berlin)"),
        "{}",
        form.body
    );

    // A wall-clock time typed into the form is Berlin's.
    let fields = form_fields(&f, "schedule").await;
    let body = format!("{fields}&start=2026-03-03T09:00&until=2026-03-03T17:30");
    let answer = post_form(&f.app, &format!("{base}/schedule"), &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let acme = TenantId::new("acme").unwrap();
    let e = f
        .monitor
        .status(&acme)
        .unwrap()
        .state
        .state
        .scheduled_event
        .unwrap();
    assert_eq!(e.start.to_rfc3339(), "2026-03-03T08:00:00+00:00");
    assert_eq!(e.end.to_rfc3339(), "2026-03-03T16:30:00+00:00");
    assert!(
        answer
            .body
            .contains("Scheduled: 2026-03-03 09:00 CET – 2026-03-03 17:30 CET"),
        "{}",
        answer.body
    );
    // The audit trail's description too (to the second, as records are).
    assert!(
        answer.body.contains(
            "scheduled 2026-03-03 09:00:00 CET (UTC+01:00) .. 2026-03-03 17:30:00 CET (UTC+01:00)"
        ),
        "{}",
        answer.body
    );

    // A refusal writes its times in the zone too, on the page and in JSON.
    let fields = form_fields(&f, "schedule").await;
    let body = format!("{fields}&start=2026-03-04T09:00&minutes=60");
    let answer = post_form(&f.app, &format!("{base}/schedule"), &body).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert!(
        answer
            .body
            .contains("already scheduled to start at 2026-03-03 09:00 CET"),
        "{}",
        answer.body
    );
    let view = get(&f.app, &format!("/p/api/{}", f.token)).await;
    let json: serde_json::Value = serde_json::from_str(&view.body).unwrap();
    assert_eq!(json["view"]["time_zone"], "Europe/Berlin");
    let answer = post_json(
        &f.app,
        &format!("/p/api/{}/schedule", f.token),
        serde_json::json!({"csrf": json["csrf"], "start": "2026-03-04T08:00:00Z", "minutes": 60}),
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(json["outcome"], "refused", "{json}");
    let message = json["message"].as_str().unwrap();
    assert!(message.contains("2026-03-03 09:00 CET"), "{message}");

    // An expired link says when, in the zone, on the page and in JSON.
    let claims = LinkClaims {
        tenant: acme,
        alert_id: 3,
        recipient: "ops".into(),
    };
    let old = f
        .monitor
        .link_signer()
        .sign(&claims, t0() - TimeDelta::days(2))
        .unwrap();
    let page = get(&f.app, &format!("/p/{old}")).await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.body);
    assert!(
        page.body
            .contains("This link expired at 2026-03-01 09:00 CET."),
        "{}",
        page.body
    );
    let answer = get(&f.app, &format!("/p/api/{old}")).await;
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        json["message"],
        "This link expired at 2026-03-01 09:00 CET. A fresh link comes with the next alert."
    );

    // In summer the zone says so (with a link of that day).
    let summer: DateTime<Utc> = "2026-07-01T08:00:00Z".parse().unwrap();
    f.clock.set(summer);
    let token = f.monitor.link_signer().sign(&claims, summer).unwrap();
    let page = get(&f.app, &format!("/p/{token}")).await;
    assert!(
        page.body.contains("Shown at 2026-07-01 10:00 CEST."),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn bad_links_get_their_own_pages() {
    let f = fixture().await;
    // Garbage.
    for path in ["/p/garbage", "/p/%00%ff", "/p/garbage/start"] {
        let a = get(&f.app, path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.body);
        assert!(
            a.body.contains("not a valid continuity portal link")
                || a.body.contains("not a portal page"),
            "{}",
            a.body
        );
    }
    // Tampered.
    // One character of the signature (at the end) changed.
    let mut tampered = f.token.clone().into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let a = get(&f.app, &format!("/p/{tampered}")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("altered or mistyped"), "{}", a.body);
    // Signed by a retired key.
    let old = LinkSigner::new(LinkKey::new("k1", [1u8; 32]).unwrap())
        .sign(
            &LinkClaims {
                tenant: TenantId::new("acme").unwrap(),
                alert_id: 1,
                recipient: "ops".into(),
            },
            t0(),
        )
        .unwrap();
    let a = get(&f.app, &format!("/p/{old}")).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("retired"), "{}", a.body);
    // Expired, for pages and for a form filled in before it expired.
    let fields = form_fields(&f, "start").await;
    f.clock.advance(TimeDelta::hours(25));
    for a in [
        get(&f.app, &format!("/p/{}", f.token)).await,
        get(&f.app, &format!("/p/{}/suspend", f.token)).await,
        post_form(
            &f.app,
            &format!("/p/{}/start", f.token),
            &format!("{fields}&minutes=60"),
        )
        .await,
        post_form(&f.app, &format!("/p/{}/start", f.token), "minutes=60").await,
    ] {
        assert_eq!(a.status, StatusCode::GONE, "{}", a.body);
        assert!(
            a.body.contains("A fresh link comes with the next alert."),
            "{}",
            a.body
        );
    }
}

#[tokio::test]
async fn bad_input_gets_a_4xx_page() {
    let f = fixture().await;
    let base = format!("/p/{}", f.token);
    let fields = form_fields(&f, "start").await;
    let cases: Vec<(String, &str, StatusCode)> = vec![
        (fields.clone(), "choose a duration", StatusCode::BAD_REQUEST),
        (
            format!("{fields}&minutes=-5"),
            "whole number of minutes",
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{fields}&minutes=0"),
            "whole number of minutes",
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{fields}&minutes=99999999999999999999"),
            "whole number of minutes",
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{fields}&minutes=527041"),
            "whole number of minutes",
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{fields}&until=soon"),
            "not a date and time",
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("{fields}&minutes=2940"),
            "longer than the maximum of 2 d",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            format!("{fields}&until=2026-03-02T07:00"),
            "The end must be after the start",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "minutes=60".to_owned(),
            "CSRF token is missing or wrong",
            StatusCode::FORBIDDEN,
        ),
        (
            format!("csrf={}&minutes=60", "0".repeat(64)),
            "CSRF token is missing or wrong",
            StatusCode::FORBIDDEN,
        ),
        (
            "csrf=%ZZ&&&=&minutes=60".to_owned(),
            "CSRF token",
            StatusCode::FORBIDDEN,
        ),
    ];
    for (body, says, status) in cases {
        let a = post_form(&f.app, &format!("{base}/start"), &body).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert!(a.body.contains(says), "{body}: {}", a.body);
    }
    // A CSRF token of another link is refused too.
    let other = f
        .monitor
        .link_signer()
        .sign(
            &LinkClaims {
                tenant: TenantId::new("acme").unwrap(),
                alert_id: 9,
                recipient: "ops".into(),
            },
            t0(),
        )
        .unwrap();
    let other_page = get(&f.app, &format!("/p/{other}/start")).await;
    let a = post_form(
        &f.app,
        &format!("{base}/start"),
        &format!("csrf={}&minutes=60", hidden(&other_page.body, "csrf")),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // Refused by the state: nothing to end.
    let end = form_fields(&f, "end").await;
    let a = post_form(&f.app, &format!("{base}/end"), &end).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        a.body.contains("No continuity event is running."),
        "{}",
        a.body
    );

    // Unknown action, wrong method, wrong content type, oversized body.
    assert_eq!(
        get(&f.app, &format!("{base}/explode")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post_form(&f.app, &format!("{base}/explode"), &fields)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        let a = send(
            &f.app,
            Request::builder()
                .method(method.clone())
                .uri(format!("{base}/start"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert!(a.body.contains("<h1>Not allowed</h1>"));
    }
    let a = send(&f.app, Request::post(&base).body(Body::empty()).unwrap()).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    let a = send(
        &f.app,
        Request::post(format!("{base}/start"))
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(fields.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.body);
    let huge = format!("{fields}&minutes=60&pad={}", "x".repeat(9 * 1024));
    let a = post_form(&f.app, &format!("{base}/start"), &huge).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    assert_eq!(get(&f.app, "/p").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&f.app, "/p/a/b/c/d").await.status,
        StatusCode::NOT_FOUND
    );

    // None of it changed anything.
    let log = audit(&f).await;
    assert!(log.is_empty(), "{log:?}");
}

#[tokio::test]
async fn two_administrators_posting_on_the_same_version_one_wins_one_sees_the_change() {
    let f = fixture().await;
    let base = format!("/p/{}", f.token);
    let start = form_fields(&f, "start").await;
    let suspend = form_fields(&f, "suspend").await;
    let (start_path, start_body) = (format!("{base}/start"), format!("{start}&minutes=60"));
    let (suspend_path, suspend_body) =
        (format!("{base}/suspend"), format!("{suspend}&minutes=240"));
    let (a, b) = tokio::join!(
        post_form(&f.app, &start_path, &start_body),
        post_form(&f.app, &suspend_path, &suspend_body),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} / {}",
        a.body,
        b.body
    );
    let loser = if a.status == StatusCode::CONFLICT {
        &a
    } else {
        &b
    };
    assert!(loser.body.contains("The state changed"), "{}", loser.body);
    // The loser sees what the winner did.
    let winner_did = if a.status == StatusCode::OK {
        "Running"
    } else {
        "Suspended until"
    };
    assert!(loser.body.contains(winner_did), "{}", loser.body);
    let log = audit(&f).await;
    assert_eq!(log.len(), 1);
}

#[tokio::test]
async fn a_standing_link_opens_the_page_and_acts_through_forms_and_json() {
    let f = fixture().await;
    let acme = TenantId::new("acme").unwrap();
    let standing = f
        .monitor
        .standing_link(&acme, &format!("jane {EVIL}"), Some(HOUR))
        .unwrap();
    assert_eq!(
        standing.url,
        format!("https://ops.example.net/p/{}", standing.token)
    );
    let token = &standing.token;

    let page = get(&f.app, &format!("/p/{token}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(
            "Standing link issued to jane &lt;script&gt;alert(&#39;acme&#39;)&lt;/script&gt;, \
             valid until 2026-03-02 09:00 UTC"
        ),
        "{}",
        page.body
    );
    assert!(!page.body.contains("with alert #"), "{}", page.body);

    let form = get(&f.app, &format!("/p/{token}/start")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let body = format!(
        "csrf={}&version={}&minutes=60",
        hidden(&form.body, "csrf"),
        hidden(&form.body, "version")
    );
    let done = post_form(&f.app, &format!("/p/{token}/start"), &body).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);

    let api = get(&f.app, &format!("/p/api/{token}")).await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["view"]["link_origin"], "standing");
    assert_eq!(v["view"]["alert_id"], 0);
    assert!(v["view"]["active_event"].is_object());
    let end = post_json(
        &f.app,
        &format!("/p/api/{token}/end"),
        serde_json::json!({"csrf": v["csrf"], "version": v["view"]["version"]}),
    )
    .await;
    assert_eq!(end.status, StatusCode::OK, "{}", end.body);

    let log = audit(&f).await;
    assert_eq!(log.len(), 2);
    for record in &log {
        assert_eq!(
            record.entry.actor.to_string(),
            format!("jane {EVIL} (standing link)")
        );
    }

    // The trail is on the page (escaped) and in the JSON view, newest first.
    let page = get(&f.app, &format!("/p/{token}")).await;
    assert!(
        page.body.contains(
            "<h2>Activity</h2><ul><li>2026-03-02 08:00 UTC <b>event.end</b> by \
             jane &lt;script&gt;alert(&#39;acme&#39;)&lt;/script&gt; (standing link): "
        ),
        "{}",
        page.body
    );
    let api = get(&f.app, &format!("/p/api/{token}")).await;
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    let actions: Vec<_> = v["view"]["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["entry"]["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["event.end", "event.start"]);
    assert_eq!(
        v["view"]["audit"][0]["entry"]["actor"]["kind"],
        "standing_link"
    );

    // Its hour over, it opens nothing.
    f.clock.advance(TimeDelta::hours(1));
    let gone = get(&f.app, &format!("/p/{token}")).await;
    assert_eq!(gone.status, StatusCode::GONE, "{}", gone.body);
}

#[tokio::test]
async fn the_json_api_has_the_same_answers_and_checks() {
    let f = fixture().await;
    let status = get(&f.app, &format!("/p/api/{}", f.token)).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.body);
    let v: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    let csrf = v["csrf"].as_str().unwrap().to_owned();
    let version = v["view"]["version"].as_u64().unwrap();
    assert_eq!(v["view"]["organisation"], format!("Acme {EVIL}"));
    assert_eq!(v["presets"].as_array().unwrap().len(), 3);
    let path = |a: &str| format!("/p/api/{}/{a}", f.token);

    let done = post_json(
        &f.app,
        &path("start"),
        serde_json::json!({"csrf": csrf, "version": version, "minutes": 60}),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let d: serde_json::Value = serde_json::from_str(&done.body).unwrap();
    assert_eq!(d["outcome"], "done");
    assert!(d["view"]["active_event"].is_object());

    let stale = post_json(
        &f.app,
        &path("suspend"),
        serde_json::json!({"csrf": csrf, "version": version, "minutes": 60}),
    )
    .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    let s: serde_json::Value = serde_json::from_str(&stale.body).unwrap();
    assert_eq!(s["outcome"], "conflict");
    assert!(s["view"]["active_event"].is_object(), "the fresh view");

    let refused = post_json(
        &f.app,
        &path("start"),
        serde_json::json!({"csrf": csrf, "minutes": 60}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("already running"), "{}", refused.body);

    for (body, status) in [
        (
            serde_json::json!({"csrf": "00", "minutes": 60}),
            StatusCode::FORBIDDEN,
        ),
        (
            serde_json::json!({"minutes": 60}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"csrf": csrf, "minutes": -5}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"csrf": csrf, "minutes": 1e30}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            serde_json::json!({"csrf": csrf, "minutes": 0}),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({"csrf": csrf, "bogus": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let a = post_json(&f.app, &path("extend"), body.clone()).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert!(
            a.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
    assert_eq!(
        post_json(&f.app, &path("nuke"), serde_json::json!({"csrf": csrf}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&f.app, "/p/api/garbage").await.status,
        StatusCode::NOT_FOUND
    );
    let big = serde_json::json!({"csrf": csrf, "minutes": 60, "pad": "x".repeat(9 * 1024)});
    assert_eq!(
        post_json(&f.app, &path("extend"), big).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let plain = Request::post(path("extend"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(
            serde_json::json!({"csrf": csrf, "minutes": 60}).to_string(),
        ))
        .unwrap();
    assert_eq!(
        send(&f.app, plain).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        send(
            &f.app,
            Request::get(path("extend")).body(Body::empty()).unwrap()
        )
        .await
        .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    f.clock.advance(TimeDelta::hours(25));
    let expired = get(&f.app, &format!("/p/api/{}", f.token)).await;
    assert_eq!(expired.status, StatusCode::GONE);
    assert!(
        expired
            .body
            .contains("A fresh link comes with the next alert.")
    );
}

#[test]
fn options_refuse_a_short_csrf_key_and_hide_it() {
    let e = PortalOptions::new([1u8; 16]).unwrap_err();
    assert!(matches!(
        e,
        PortalError::CsrfKeyTooShort { len: 16, min: 32 }
    ));
    assert!(e.is_config());
    assert!(e.to_string().contains("at least 32 bytes"));
    let o = PortalOptions::new([0xabu8; 32]).unwrap();
    assert!(!format!("{o:?}").contains("171"), "{o:?}");
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever arrives, the answer is never a server error, and always
    /// carries the security headers.
    #[test]
    fn arbitrary_requests_never_get_a_5xx(
        method in method(),
        valid in any::<bool>(),
        segment in "[ -~]{0,40}",
        tail in prop::option::of("[a-z/%0-9]{0,12}"),
        body in prop::collection::vec(any::<u8>(), 0..600),
        form in "[a-z=&%0-9+-]{0,200}",
        use_form in any::<bool>(),
        json in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let f = fixture().await;
            let token = if valid { f.token.clone() } else { segment.clone() };
            let mut path = format!("/{}{token}", if json { "api/" } else { "" });
            if let Some(tail) = &tail {
                path.push('/');
                path.push_str(tail);
            }
            let Ok(request) = Request::builder()
                .method(method)
                .uri(&path)
                .header(header::CONTENT_TYPE, if json { "application/json" } else { "application/x-www-form-urlencoded" })
                .body(Body::from(if use_form { form.clone().into_bytes() } else { body.clone() }))
            else {
                return; // not a request a client could send
            };
            let response = f.bare.clone().oneshot(request).await.unwrap();
            let status = response.status();
            assert!(!status.is_server_error(), "{path}: {status}");
            assert_eq!(response.headers()[header::REFERRER_POLICY], "no-referrer");
        });
    }
}
