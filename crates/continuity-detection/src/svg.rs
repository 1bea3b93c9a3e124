//! The pictures: one SVG per scenario, written by hand.
//!
//! Hand-written rather than drawn with `plotters`: the picture is a few
//! polylines, rectangles and labels, which is less code than configuring a
//! plotting crate, adds no dependency to build on a 2-core machine, needs
//! no font library (the viewer lays out the text), and gives byte-identical
//! files for the same run, so a re-run shows up in `git diff` only when the
//! detector changed.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use continuity_core::{Direction, machine::AlertKind};

use crate::{
    runner::{AlertEvent, Sample},
    trace::Incident,
};

const WIDTH: f64 = 960.0;
const PANEL: f64 = 170.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const GAP: f64 = 40.0;
/// At most this many points per line: a 30-day trace is drawn as the
/// maximum of each slice.
const POINTS: usize = 720;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What a picture shows.
#[derive(Debug)]
pub struct Picture<'a> {
    /// The heading.
    pub title: &'a str,
    /// The direction drawn.
    pub direction: Direction,
    /// Readings (every condition; those of `direction` are drawn).
    pub samples: &'a [Sample],
    /// Alerts, marked as vertical lines.
    pub alerts: &'a [AlertEvent],
    /// Shaded.
    pub incidents: &'a [Incident],
    /// The time span drawn.
    pub from: DateTime<Utc>,
    /// The end of the span.
    pub to: DateTime<Utc>,
}

impl Picture<'_> {
    /// The SVG text.
    pub fn render(&self) -> String {
        let mut conditions: Vec<&str> = Vec::new();
        for s in self
            .samples
            .iter()
            .filter(|s| s.direction == self.direction)
        {
            if !conditions.contains(&s.condition.as_str()) {
                conditions.push(&s.condition);
            }
        }
        let panels = conditions.len().max(1) as f64;
        let height = TOP + panels * (PANEL + GAP) + 30.0;
        let span = (self.to - self.from).num_seconds().max(1) as f64;
        let plot_w = WIDTH - LEFT - RIGHT;
        let x = |t: DateTime<Utc>| {
            LEFT + ((t - self.from).num_seconds() as f64 / span).clamp(0.0, 1.0) * plot_w
        };
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{}</text>"#,
            escape(self.title)
        );
        let _ = writeln!(
            svg,
            r##"<text x="{LEFT}" y="38" fill="#444">{} direction, {} to {} UTC. Blue: reading; grey dashes: threshold; shaded: incident; red: raised, orange: reminder, green: resolved.</text>"##,
            self.direction,
            self.from.format("%m-%d %H:%M"),
            self.to.format("%m-%d %H:%M")
        );
        for (p, condition) in conditions.iter().enumerate() {
            let top = TOP + p as f64 * (PANEL + GAP) + 10.0;
            let bottom = top + PANEL;
            let points: Vec<&Sample> = self
                .samples
                .iter()
                .filter(|s| {
                    s.direction == self.direction
                        && s.condition == *condition
                        && s.at >= self.from
                        && s.at <= self.to
                })
                .collect();
            let threshold = points.iter().find_map(|s| s.threshold);
            let max = points
                .iter()
                .filter_map(|s| s.value)
                .chain(threshold)
                .fold(0.0_f64, f64::max)
                .max(1e-9)
                * 1.15;
            let y = |v: f64| bottom - (v / max).clamp(0.0, 1.0) * PANEL;
            let _ = writeln!(
                svg,
                r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#999"/>"##
            );
            for i in self
                .incidents
                .iter()
                .filter(|i| i.direction == self.direction)
            {
                let (a, b) = (x(i.start), x(i.end));
                let _ = writeln!(
                    svg,
                    r##"<rect x="{a:.1}" y="{top}" width="{:.1}" height="{PANEL}" fill="#f4c7c3" fill-opacity="0.6"/>"##,
                    (b - a).max(1.0)
                );
            }
            if let Some(t) = threshold {
                let _ = writeln!(
                    svg,
                    r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#777" stroke-dasharray="6 4"/>"##,
                    LEFT + plot_w,
                    y(t),
                    y(t)
                );
            }
            // The maximum per slice, so a short spike stays visible.
            let slices = POINTS.min(points.len().max(1));
            let mut line = String::new();
            let mut segments = Vec::new();
            for k in 0..slices {
                let lo = k * points.len() / slices;
                let hi = ((k + 1) * points.len() / slices)
                    .max(lo + 1)
                    .min(points.len());
                let slice = &points[lo.min(points.len())..hi];
                let v = slice
                    .iter()
                    .filter_map(|s| s.value)
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
                match (v, slice.first()) {
                    (Some(v), Some(s)) => {
                        let _ = write!(line, "{:.1},{:.1} ", x(s.at), y(v));
                    }
                    _ if !line.is_empty() => segments.push(std::mem::take(&mut line)),
                    _ => {}
                }
            }
            if !line.is_empty() {
                segments.push(line);
            }
            for seg in segments {
                let _ = writeln!(
                    svg,
                    r##"<polyline points="{}" fill="none" stroke="#1f5fbf" stroke-width="1.2"/>"##,
                    seg.trim_end()
                );
            }
            for a in self
                .alerts
                .iter()
                .filter(|a| a.at >= self.from && a.at <= self.to)
            {
                let colour = match a.kind {
                    AlertKind::Raised => "#d62728",
                    AlertKind::Reminder => "#ff9f1c",
                    AlertKind::Resolved => "#2ca02c",
                };
                let ax = x(a.at);
                let _ = writeln!(
                    svg,
                    r#"<line x1="{ax:.1}" x2="{ax:.1}" y1="{top}" y2="{bottom}" stroke="{colour}" stroke-width="1"/>"#
                );
            }
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
                LEFT + 4.0,
                top + 14.0,
                escape(condition)
            );
            let label = threshold.map_or_else(String::new, |t| format!("threshold {t}"));
            let _ = writeln!(
                svg,
                r##"<text x="4" y="{:.1}" fill="#444">{:.3}</text><text x="4" y="{bottom}" fill="#444">0</text><text x="{}" y="{}" fill="#444">{}</text>"##,
                top + 12.0,
                max,
                LEFT + 4.0,
                top + 28.0,
                escape(&label)
            );
        }
        if conditions.is_empty() {
            let _ = writeln!(
                svg,
                r#"<text x="{LEFT}" y="{}">no reading with figures for this direction</text>"#,
                TOP + 30.0
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}
