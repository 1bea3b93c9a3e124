//! The status page's chart of a direction's last hour: an inline SVG drawn
//! on the server, with no script, that scales to the width of a phone.
//!
//! Above the axis, one bar per window bucket for its latency statistic
//! (red where it is over the latency limit, which is the dashed line);
//! below, the bucket's failures (red) and, in grey, that it saw no mail at
//! all. Every bar carries a `<title>` with its figures (shown on hover or a
//! long press), and the whole chart a text description for screen readers.

use std::{fmt::Write as _, time::Duration};

use chrono::TimeDelta;
use continuity_core::{
    duration::human,
    monitor::{BucketReading, DirectionHistory},
    policy::{FailureLimit, LatencyStatistic},
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

/// The statistic as people read it: `p95`, `max`.
fn statistic_name(s: LatencyStatistic) -> String {
    s.to_string()
}

/// A number with one decimal, as an SVG attribute.
fn n(x: f64) -> String {
    format!("{x:.1}")
}

/// The top of the latency scale: the largest bar or a half above the limit,
/// rounded up to a round figure, so that the limit line sits inside.
fn latency_top(h: &DirectionHistory) -> Option<Duration> {
    let highest = h.buckets.iter().filter_map(|b| b.latency).max();
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
fn bucket_title(
    h: &DirectionHistory,
    b: &BucketReading,
    zone: TimeZone,
    statistic: &str,
) -> String {
    let end = b.start + TimeDelta::from_std(h.bucket_width).unwrap_or(TimeDelta::zero());
    let mut s = format!(
        "{}–{}: ",
        zone.format_clock(b.start),
        zone.format_clock(end)
    );
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
        let _ = write!(s, ", {statistic} latency {}", human(l));
    }
    s
}

/// The sentence a screen reader gives for the chart.
fn description(h: &DirectionHistory, statistic: &str) -> String {
    let total =
        |f: fn(&BucketReading) -> u64| h.buckets.iter().map(f).fold(0u64, u64::saturating_add);
    let (deliveries, failures) = (total(|b| b.deliveries), total(|b| b.failures));
    let mut s = format!(
        "{} buckets of {}: {deliveries} deliveries, {failures} failures",
        h.buckets.len(),
        human(h.bucket_width)
    );
    if let Some(top) = h.buckets.iter().filter_map(|b| b.latency).max() {
        let _ = write!(s, "; highest {statistic} latency {}", human(top));
    }
    if let Some(limit) = h.latency_limit {
        let over = h
            .buckets
            .iter()
            .filter(|b| b.latency.is_some_and(|l| l > limit))
            .count();
        let _ = write!(s, " against a limit of {}, over it in {over}", human(limit));
    }
    s.push('.');
    s
}

/// One direction's chart, with a caption naming what is drawn.
pub(crate) fn direction(out: &mut Html, h: &DirectionHistory, zone: TimeZone) {
    let statistic = statistic_name(h.statistic);
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
    let most_failures = h.buckets.iter().map(|b| b.failures).max().unwrap_or(0);

    out.raw("<figure class=\"chart\"><svg viewBox=\"0 0 320 140\" role=\"img\" aria-label=\"")
        .text(h.direction)
        .raw(": ")
        .text(description(h, &statistic))
        .raw("\">");
    // Scale: the top of the latency axis and zero.
    out.raw("<text class=\"axis\" x=\"")
        .text(n(LEFT - 3.0))
        .raw("\" y=\"")
        .text(n(LAT_TOP + 3.0))
        .raw("\" text-anchor=\"end\">")
        .text(top.map_or_else(|| "–".to_owned(), |t| human(t).to_string()))
        .raw("</text><text class=\"axis\" x=\"")
        .text(n(LEFT - 3.0))
        .raw("\" y=\"")
        .text(n(LAT_BOTTOM))
        .raw("\" text-anchor=\"end\">0</text><text class=\"axis\" x=\"")
        .text(n(LEFT - 3.0))
        .raw("\" y=\"")
        .text(n(FAIL_BOTTOM))
        .raw("\" text-anchor=\"end\">")
        .text(most_failures)
        .raw(" failed</text>");
    // The failure bars' scale: the most in one bucket (at least one, so
    // that a single failure fills its bar).
    let most_failures = most_failures.max(1);
    out.raw("<line class=\"base\" x1=\"")
        .text(n(LEFT))
        .raw("\" x2=\"")
        .text(n(WIDTH - RIGHT))
        .raw("\" y1=\"")
        .text(n(LAT_BOTTOM))
        .raw("\" y2=\"")
        .text(n(LAT_BOTTOM))
        .raw("\"/>");
    for (i, b) in h.buckets.iter().enumerate() {
        let x = LEFT + i as f64 * slot + 0.5;
        let w = (slot - 1.0).max(0.5);
        out.raw("<g><title>")
            .text(bucket_title(h, b, zone, &statistic))
            .raw("</title>");
        if let Some(l) = b.latency {
            let over = h.latency_limit.is_some_and(|limit| l > limit);
            let y = y_of(l).min(LAT_BOTTOM - 1.0);
            out.raw(if over {
                "<rect class=\"over\" x=\""
            } else {
                "<rect class=\"lat\" x=\""
            })
            .text(n(x))
            .raw("\" y=\"")
            .text(n(y))
            .raw("\" width=\"")
            .text(n(w))
            .raw("\" height=\"")
            .text(n(LAT_BOTTOM - y))
            .raw("\"/>");
        }
        if b.failures > 0 {
            let share = b.failures as f64 / most_failures as f64;
            let height = (share * (FAIL_BOTTOM - FAIL_TOP)).max(2.0);
            out.raw("<rect class=\"fail\" x=\"")
                .text(n(x))
                .raw("\" y=\"")
                .text(n(FAIL_TOP))
                .raw("\" width=\"")
                .text(n(w))
                .raw("\" height=\"")
                .text(n(height))
                .raw("\"/>");
        } else if b.deliveries == 0 {
            // Silence is not good news: marked, never left blank.
            out.raw("<rect class=\"none\" x=\"")
                .text(n(x))
                .raw("\" y=\"")
                .text(n(LAT_BOTTOM - 2.0))
                .raw("\" width=\"")
                .text(n(w))
                .raw("\" height=\"2\"/>");
        }
        out.raw("</g>");
    }
    if let Some(limit) = h.latency_limit {
        let y = y_of(limit);
        out.raw("<line class=\"limit\" x1=\"")
            .text(n(LEFT))
            .raw("\" x2=\"")
            .text(n(WIDTH - RIGHT))
            .raw("\" y1=\"")
            .text(n(y))
            .raw("\" y2=\"")
            .text(n(y))
            .raw("\"/><text class=\"axis\" x=\"")
            .text(n(LEFT - 3.0))
            .raw("\" y=\"")
            .text(n(y + 3.0))
            .raw("\" text-anchor=\"end\">")
            .text(human(limit))
            .raw("</text>");
    }
    // Time: the first bucket's start, the middle, and now's bucket's end.
    if let (Some(first), Some(last)) = (h.buckets.first(), h.buckets.last()) {
        let width = TimeDelta::from_std(h.bucket_width).unwrap_or(TimeDelta::zero());
        let ticks = [
            (LEFT, first.start, "start"),
            (
                LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
                first.start + (last.start + width - first.start) / 2,
                "middle",
            ),
            (WIDTH - RIGHT, last.start + width, "end"),
        ];
        for (x, t, anchor) in ticks {
            out.raw("<text class=\"axis\" x=\"")
                .text(n(x))
                .raw("\" y=\"")
                .text(n(HEIGHT - 4.0))
                .raw("\" text-anchor=\"")
                .text(anchor)
                .raw("\">")
                .text(zone.format_clock(t))
                .raw("</text>");
        }
    }
    out.raw("</svg><figcaption>")
        .text(caption(h, &statistic, zone));
    out.raw("</figcaption></figure>");
}

/// What the chart draws, in words.
fn caption(h: &DirectionHistory, statistic: &str, zone: TimeZone) -> String {
    let mut s = format!(
        "{} latency per {} (bars; red over ",
        statistic,
        human(h.bucket_width)
    );
    match h.latency_limit {
        Some(l) => {
            let _ = write!(s, "the limit of {}, dashed)", human(l));
        }
        None => s.push_str("a limit: none known yet)"),
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
    s.push_str("; grey: no mail seen. Times in ");
    s.push_str(zone.name());
    s.push('.');
    s
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use continuity_core::Direction;

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
                    deliveries: u64::from(l.is_some()) * 4,
                    failures: *f,
                    latency: l.map(Duration::from_secs),
                })
                .collect(),
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
        assert!(page.contains("the threshold is 3 in the window"), "{page}");
        assert!(page.contains("Times in Europe/Berlin."), "{page}");
        // Scaled to the width it is given, with no script.
        assert!(page.contains("viewBox=\"0 0 320 140\""), "{page}");
        assert!(!page.contains("<script"), "{page}");
    }

    #[test]
    fn the_bars_stay_inside_the_drawing_whatever_the_figures() {
        for (latencies, failures) in [
            (
                vec![Some(u64::MAX / 2_000_000_000), Some(0)],
                vec![u64::MAX, 0],
            ),
            (vec![None, None], vec![0, 0]),
            (vec![], vec![]),
        ] {
            let mut h = history(&latencies, &failures);
            h.latency_limit = None;
            let page = svg(&h, TimeZone::UTC);
            for attr in ["y=\"", "height=\""] {
                for v in page.split(attr).skip(1) {
                    let v: f64 = v.split('"').next().unwrap().parse().unwrap_or(0.0);
                    assert!((0.0..=HEIGHT).contains(&v), "{attr}{v} in {page}");
                }
            }
            assert!(!page.contains("NaN") && !page.contains("inf"), "{page}");
        }
    }
}
