//! The status page's chart of a direction's recent flow: an inline SVG
//! drawn on the server, with no script, that scales to the width of a
//! phone.
//!
//! Above the axis, one bar per window bucket for its latency statistic
//! (red where it is over the latency limit, which is the dashed line), and
//! in the newest bucket an outline as high as the oldest probe still on its
//! way; below, the bucket's failures (red) and, in grey, that it saw no
//! mail. A bucket this instance did not watch is left blank. Every bar
//! carries a `<title>` with its figures (shown on hover or a long press),
//! and the whole chart a text description for screen readers.

use std::{fmt::Write as _, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{
    duration::{compact, human},
    monitor::{BucketReading, DirectionHistory},
    policy::FailureLimit,
    time_zone::TimeZone,
};

use crate::html::Html;

// The drawing's own units; the viewBox scales them to the page's width.
const WIDTH: f64 = 320.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 6.0;
const LAT_TOP: f64 = 10.0;
const LAT_BOTTOM: f64 = 90.0;
const FAIL_TOP: f64 = 96.0;
const FAIL_BOTTOM: f64 = 124.0;
const HEIGHT: f64 = 140.0;

/// A number with one decimal, as an SVG attribute.
fn n(x: f64) -> String {
    format!("{x:.1}")
}

/// `t + d`, or `t` where that would leave the calendar.
fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(t)
}

/// A count short enough for the axis: `999`, `12k`, `3M`, `>999M`.
fn short_count(c: u64) -> String {
    match c {
        0..1_000 => c.to_string(),
        1_000..1_000_000 => format!("{}k", c / 1_000),
        1_000_000..1_000_000_000 => format!("{}M", c / 1_000_000),
        _ => ">999M".to_owned(),
    }
}

/// The oldest probe still on its way.
fn oldest_overdue(h: &DirectionHistory) -> Option<Duration> {
    h.overdue.iter().map(|p| p.age).max()
}

/// The top of the latency scale: the largest bar, the oldest probe on its
/// way or a half above the limit, rounded up to a round figure, so that the
/// limit line sits inside.
fn latency_top(h: &DirectionHistory) -> Option<Duration> {
    let highest = h
        .buckets
        .iter()
        .filter_map(|b| b.latency)
        .chain(oldest_overdue(h))
        .max();
    let limit = h.latency_limit.map(|l| l.saturating_add(l / 2));
    let top = highest.max(limit)?;
    const STEPS: [u64; 16] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 14_400, 86_400,
    ];
    let secs = top.as_secs_f64();
    let step = STEPS
        .iter()
        .copied()
        .find(|&s| s as f64 >= secs)
        .unwrap_or_else(|| secs.ceil() as u64);
    Some(Duration::from_secs(step.max(1)))
}

/// What a bucket's bar says when pointed at.
fn bucket_title(h: &DirectionHistory, b: &BucketReading, zone: TimeZone) -> String {
    let end = plus(b.start, h.bucket_width);
    let mut s = format!(
        "{}–{}: ",
        zone.format_clock(b.start),
        zone.format_clock(end)
    );
    if !b.watched {
        s.push_str("not watched by this instance");
        return s;
    }
    if b.deliveries.saturating_add(b.failures) == 0 {
        s.push_str("no mail seen");
        return s;
    }
    let _ = write!(
        s,
        "{} {}, {} failed",
        b.deliveries,
        if b.deliveries == 1 {
            "delivery"
        } else {
            "deliveries"
        },
        b.failures
    );
    if let Some(l) = b.latency {
        let _ = write!(s, ", {} latency {}", h.statistic, human(l));
    }
    s
}

/// What the outline of the probes on their way says.
fn overdue_title(h: &DirectionHistory, oldest: Duration) -> String {
    let count = h.overdue.len();
    format!(
        "{count} {} on {} way for up to {}",
        if count == 1 { "probe" } else { "probes" },
        if count == 1 { "its" } else { "their" },
        human(oldest)
    )
}

/// The sentence a screen reader gives for the chart.
fn description(h: &DirectionHistory) -> String {
    let total = |f: fn(&BucketReading) -> u64| {
        h.buckets
            .iter()
            .filter(|b| b.watched)
            .map(f)
            .fold(0u64, u64::saturating_add)
    };
    let (deliveries, failures) = (total(|b| b.deliveries), total(|b| b.failures));
    let watched = h.buckets.iter().filter(|b| b.watched).count();
    let mut s = format!("{} buckets of {}", h.buckets.len(), human(h.bucket_width));
    if watched < h.buckets.len() {
        let _ = write!(s, " ({watched} watched here)");
    }
    let _ = write!(s, ": {deliveries} deliveries, {failures} failures");
    if let Some(top) = h.buckets.iter().filter_map(|b| b.latency).max() {
        let _ = write!(s, "; highest {} latency {}", h.statistic, human(top));
    }
    if let Some(limit) = h.latency_limit {
        let over = h
            .buckets
            .iter()
            .filter(|b| b.latency.is_some_and(|l| l > limit))
            .count();
        let _ = write!(s, " against a limit of {}, over it in {over}", human(limit));
    }
    if let Some(oldest) = oldest_overdue(h) {
        let _ = write!(s, "; {}", overdue_title(h, oldest));
        if h.latency_limit.is_some_and(|l| oldest > l) {
            s.push_str(", over the limit");
        }
    }
    s.push('.');
    s
}

/// One direction's chart, with a caption naming what is drawn.
pub(crate) fn direction(out: &mut Html, h: &DirectionHistory, zone: TimeZone) {
    let count = h.buckets.len().max(1) as f64;
    let slot = (WIDTH - LEFT - RIGHT) / count;
    let top = latency_top(h);
    let y_of = |d: Duration| match top {
        Some(t) if !t.is_zero() => {
            let share = (d.as_secs_f64() / t.as_secs_f64()).min(1.0);
            LAT_BOTTOM - share * (LAT_BOTTOM - LAT_TOP)
        }
        _ => LAT_BOTTOM,
    };
    let most_failures = h
        .buckets
        .iter()
        .filter(|b| b.watched)
        .map(|b| b.failures)
        .max()
        .unwrap_or(0);

    out.raw("<figure class=\"chart\"><svg viewBox=\"0 0 320 140\" role=\"img\" aria-label=\"")
        .text(h.direction)
        .raw(": ")
        .text(description(h))
        .raw("\">");
    // Scale: the top of the latency axis, zero, the most failures.
    let top_label = top.map_or_else(|| "–".to_owned(), compact);
    label(out, LEFT - 3.0, LAT_TOP + 3.0, "end", top_label);
    label(out, LEFT - 3.0, LAT_BOTTOM, "end", 0);
    let failed = format!("{} failed", short_count(most_failures));
    label(out, LEFT - 3.0, FAIL_BOTTOM, "end", failed);
    // The failure bars' scale: the most in one bucket (at least one, so
    // that a single failure fills its bar).
    let most_failures = most_failures.max(1);
    hline(out, "base", LAT_BOTTOM);
    let w = (slot - 1.0).max(0.5);
    for (i, b) in h.buckets.iter().enumerate() {
        let x = LEFT + i as f64 * slot + 0.5;
        out.raw("<g><title>")
            .text(bucket_title(h, b, zone))
            .raw("</title>");
        if b.watched {
            bucket(out, h, b, x, w, most_failures, &y_of);
        }
        out.raw("</g>");
    }
    if let (Some(oldest), Some(last)) = (oldest_overdue(h), h.buckets.len().checked_sub(1)) {
        // Probes on their way: at least this late already, in the bucket of
        // now, outlined since their latency is not known yet.
        let over = h.latency_limit.is_some_and(|l| oldest > l);
        let x = LEFT + last as f64 * slot + 0.5;
        let y = y_of(oldest).min(LAT_BOTTOM - 1.0);
        out.raw("<g><title>")
            .text(overdue_title(h, oldest))
            .raw("</title>");
        let class = if over {
            "pending over-pending"
        } else {
            "pending"
        };
        rect(out, class, x, y, w, LAT_BOTTOM - y);
        out.raw("</g>");
    }
    if let Some(limit) = h.latency_limit {
        let y = y_of(limit);
        hline(out, "limit", y);
        label(out, LEFT - 3.0, y + 3.0, "end", compact(limit));
    }
    // Time: the first bucket's start, the middle, and now's bucket's end.
    if let (Some(first), Some(last)) = (h.buckets.first(), h.buckets.last()) {
        let end = plus(last.start, h.bucket_width);
        let middle = first.start + (end - first.start) / 2;
        let ticks = [
            (LEFT, first.start, "start"),
            (LEFT + (WIDTH - LEFT - RIGHT) / 2.0, middle, "middle"),
            (WIDTH - RIGHT, end, "end"),
        ];
        for (x, t, anchor) in ticks {
            label(out, x, HEIGHT - 4.0, anchor, zone.format_clock(t));
        }
    }
    out.raw("</svg><figcaption>")
        .text(caption(h, zone))
        .raw("</figcaption></figure>");
}

/// The bars of one watched bucket.
fn bucket(
    out: &mut Html,
    h: &DirectionHistory,
    b: &BucketReading,
    x: f64,
    w: f64,
    most_failures: u64,
    y_of: &dyn Fn(Duration) -> f64,
) {
    if let Some(l) = b.latency {
        let over = h.latency_limit.is_some_and(|limit| l > limit);
        let y = y_of(l).min(LAT_BOTTOM - 1.0);
        rect(
            out,
            if over { "over" } else { "lat" },
            x,
            y,
            w,
            LAT_BOTTOM - y,
        );
    }
    if b.failures > 0 {
        let share = b.failures as f64 / most_failures as f64;
        let height = (share * (FAIL_BOTTOM - FAIL_TOP)).max(2.0);
        rect(out, "fail", x, FAIL_TOP, w, height);
    } else if b.deliveries == 0 {
        // Silence is not good news: marked, never left blank.
        rect(out, "none", x, LAT_BOTTOM - 2.0, w, 2.0);
    }
}

/// A rectangle of the drawing.
fn rect(out: &mut Html, class: &'static str, x: f64, y: f64, width: f64, height: f64) {
    out.raw("<rect class=\"")
        .raw(class)
        .raw("\" x=\"")
        .text(n(x))
        .raw("\" y=\"")
        .text(n(y))
        .raw("\" width=\"")
        .text(n(width))
        .raw("\" height=\"")
        .text(n(height))
        .raw("\"/>");
}

/// A line across the plot at height `y`.
fn hline(out: &mut Html, class: &'static str, y: f64) {
    out.raw("<line class=\"")
        .raw(class)
        .raw("\" x1=\"")
        .text(n(LEFT))
        .raw("\" x2=\"")
        .text(n(WIDTH - RIGHT))
        .raw("\" y1=\"")
        .text(n(y))
        .raw("\" y2=\"")
        .text(n(y))
        .raw("\"/>");
}

/// An axis label at `(x, y)`, anchored `start`, `middle` or `end`.
fn label(out: &mut Html, x: f64, y: f64, anchor: &'static str, text: impl std::fmt::Display) {
    out.raw("<text class=\"axis\" x=\"")
        .text(n(x))
        .raw("\" y=\"")
        .text(n(y))
        .raw("\" text-anchor=\"")
        .raw(anchor)
        .raw("\">")
        .text(text)
        .raw("</text>");
}

/// What the chart draws, in words.
fn caption(h: &DirectionHistory, zone: TimeZone) -> String {
    let span = u32::try_from(h.buckets.len())
        .ok()
        .and_then(|c| h.bucket_width.checked_mul(c))
        .unwrap_or(Duration::ZERO);
    let mut s = format!(
        "{} latency per {} over the last {} (bars; red over ",
        h.statistic,
        human(h.bucket_width),
        human(span)
    );
    match h.latency_limit {
        Some(l) => {
            let _ = write!(s, "the limit of {}, dashed)", human(l));
        }
        None => s.push_str("a limit: none known yet)"),
    }
    if !h.overdue.is_empty() {
        s.push_str("; outlined: probes still on their way");
    }
    s.push_str("; failures below the axis");
    match h.failure_limit {
        Some(FailureLimit::Count(c)) => {
            let _ = write!(s, " (the threshold is {c} in the window)");
        }
        Some(FailureLimit::Rate(r)) => {
            let _ = write!(
                s,
                " (the threshold is {:.0} % of the window's mail)",
                r * 100.0
            );
        }
        None => s.push_str(" (judged against what is usual for the organisation)"),
    }
    s.push_str("; grey: no mail seen");
    if h.buckets.iter().any(|b| !b.watched) {
        s.push_str("; blank: not watched by this instance");
    }
    s.push_str(". Times in ");
    s.push_str(zone.name());
    s.push('.');
    s
}

#[cfg(test)]
mod tests {
    use continuity_core::{Direction, monitor::OverdueProbe, policy::LatencyStatistic};

    use super::*;

    fn at(min: i64) -> DateTime<Utc> {
        "2026-03-02T08:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::minutes(min)
    }

    fn history(latencies: &[Option<u64>], failures: &[u64]) -> DirectionHistory {
        DirectionHistory {
            direction: Direction::Outbound,
            bucket_width: Duration::from_secs(300),
            statistic: LatencyStatistic::P95,
            latency_limit: Some(Duration::from_secs(1_800)),
            failure_limit: Some(FailureLimit::Count(3)),
            buckets: latencies
                .iter()
                .zip(failures)
                .enumerate()
                .map(|(i, (l, f))| BucketReading {
                    start: at(5 * i as i64),
                    watched: true,
                    deliveries: u64::from(l.is_some()) * 4,
                    failures: *f,
                    latency: l.map(Duration::from_secs),
                })
                .collect(),
            overdue: Vec::new(),
        }
    }

    fn svg(h: &DirectionHistory, zone: TimeZone) -> String {
        let mut out = Html::new();
        direction(&mut out, h, zone);
        out.document("t")
    }

    #[test]
    fn bars_over_the_limit_are_marked_and_silence_is_shown() {
        let h = history(&[Some(60), Some(2_700), None, Some(120)], &[0, 2, 0, 0]);
        let page = svg(&h, "Europe/Berlin".parse().unwrap());
        // One bar over the 30-minute limit, two under it, one silent bucket.
        assert_eq!(page.matches("class=\"over\"").count(), 1, "{page}");
        assert_eq!(page.matches("class=\"lat\"").count(), 2, "{page}");
        assert_eq!(page.matches("class=\"fail\"").count(), 1, "{page}");
        assert_eq!(page.matches("class=\"none\"").count(), 1, "{page}");
        assert_eq!(page.matches("class=\"limit\"").count(), 1, "{page}");
        assert!(!page.contains("class=\"pending"), "{page}");
        // Times in the zone: 08:00 UTC is 09:00 in Berlin.
        assert!(
            page.contains("<title>09:05–09:10: 4 deliveries, 2 failed, p95 latency 45 min</title>"),
            "{page}"
        );
        assert!(
            page.contains("<title>09:10–09:15: no mail seen</title>"),
            "{page}"
        );
        assert!(
            page.contains(">09:00</text>") && page.contains(">09:20</text>"),
            "{page}"
        );
        assert!(page.contains("over it in 1."), "{page}");
        assert!(page.contains("per 5 min over the last 20 min"), "{page}");
        assert!(page.contains("the threshold is 3 in the window"), "{page}");
        assert!(page.contains("Times in Europe/Berlin."), "{page}");
        // Scaled to the width it is given, with no script.
        assert!(page.contains("viewBox=\"0 0 320 140\""), "{page}");
        assert!(!page.contains("<script"), "{page}");
    }

    #[test]
    fn probes_on_their_way_show_before_they_fail() {
        // A black hole: nothing delivered, nothing failed yet, two probes
        // pending 40 and 12 minutes against a 30-minute limit.
        let mut h = history(&[None, None, None], &[0, 0, 0]);
        h.overdue = vec![
            OverdueProbe {
                age: Duration::from_secs(2_400),
            },
            OverdueProbe {
                age: Duration::from_secs(720),
            },
        ];
        let page = svg(&h, TimeZone::UTC);
        assert_eq!(
            page.matches("class=\"pending over-pending\"").count(),
            1,
            "{page}"
        );
        assert!(
            page.contains("<title>2 probes on their way for up to 40 min</title>"),
            "{page}"
        );
        assert!(
            page.contains("2 probes on their way for up to 40 min, over the limit."),
            "{page}"
        );
        assert!(
            page.contains("outlined: probes still on their way"),
            "{page}"
        );
    }

    #[test]
    fn buckets_not_watched_here_are_blank_not_silent() {
        let mut h = history(&[None, None, Some(60)], &[0, 0, 0]);
        h.buckets[0].watched = false;
        h.buckets[1].watched = false;
        let page = svg(&h, TimeZone::UTC);
        assert_eq!(page.matches("class=\"none\"").count(), 0, "{page}");
        assert!(
            page.contains("<title>08:00–08:05: not watched by this instance</title>"),
            "{page}"
        );
        assert!(page.contains("(1 watched here)"), "{page}");
        assert!(
            page.contains("blank: not watched by this instance"),
            "{page}"
        );
    }

    /// Every coordinate of the drawing, by attribute.
    fn coordinates(page: &str) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        for attr in ["x", "y", "width", "height", "x1", "x2", "y1", "y2"] {
            let marker = format!(" {attr}=\"");
            for rest in page.split(&marker).skip(1) {
                let value = rest.split('"').next().unwrap();
                let v: f64 = value
                    .parse()
                    .unwrap_or_else(|_| panic!("{attr}={value:?} is not a number in {page}"));
                out.push((attr, v));
            }
        }
        out
    }

    #[test]
    fn the_drawing_stays_inside_its_box_whatever_the_figures() {
        let huge = u64::MAX / 2_000_000_000;
        // Latencies and failures per bucket, and the limit, in seconds.
        type Case = (Vec<Option<u64>>, Vec<u64>, Option<u64>);
        let cases: [Case; 5] = [
            (vec![Some(huge), Some(0)], vec![u64::MAX, 0], Some(1)),
            (vec![Some(huge), Some(0)], vec![u64::MAX, 0], Some(huge)),
            (vec![None, None], vec![0, 0], None),
            (vec![], vec![], Some(60)),
            (vec![Some(0); 16], vec![1; 16], Some(0)),
        ];
        for (latencies, failures, limit) in cases {
            let mut h = history(&latencies, &failures);
            h.latency_limit = limit.map(Duration::from_secs);
            h.overdue = vec![OverdueProbe {
                age: Duration::from_secs(huge),
            }];
            for zone in [TimeZone::UTC, "Pacific/Kiritimati".parse().unwrap()] {
                let page = svg(&h, zone);
                for (attr, v) in coordinates(&page) {
                    let bound = if attr.starts_with('x') || attr == "width" {
                        WIDTH
                    } else {
                        HEIGHT
                    };
                    assert!((0.0..=bound).contains(&v), "{attr}={v} in {page}");
                }
                assert!(!page.contains("NaN") && !page.contains("inf"), "{page}");
            }
        }
        assert_eq!(short_count(999), "999");
        assert_eq!(short_count(12_345), "12k");
        assert_eq!(short_count(u64::MAX), ">999M");
    }
}
