//! Runs every scenario × configuration × seed, writes `DETECTION.md` at the
//! workspace root and one picture per scenario in `docs/`.
//!
//! `cargo run -p continuity-detection --release --bin detection-report [ROOT]`
//! (ROOT defaults to the workspace root this crate is in).

use std::{path::PathBuf, process::ExitCode};

use chrono::TimeDelta;
use continuity_core::{Clock, Direction, SystemClock};
use continuity_detection::{
    configs::DEFAULTS,
    report::{markdown, run_all},
    runner::replay,
    scenario::{SEEDS, Scenario},
    svg::Picture,
};

fn main() -> ExitCode {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
    match run(&root) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("detection-report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    // Wall time of the whole run, printed for the reader, not in the report.
    let started = SystemClock.now();
    let cells = run_all()?;
    std::fs::write(root.join("DETECTION.md"), markdown(&cells))?;
    std::fs::create_dir_all(root.join("docs"))?;
    for s in Scenario::all() {
        let trace = s.trace(SEEDS[0]);
        let r = replay(&trace, &DEFAULTS, true)?;
        let direction = trace
            .incidents
            .first()
            .map_or(Direction::Inbound, |i| i.direction);
        // Incident scenarios: the incident's day; the healthy one: all of it.
        let from = if trace.incidents.is_empty() {
            trace.start
        } else {
            trace.end - TimeDelta::days(1)
        };
        let title = format!("{}: {} (defaults, seed {})", s.name, s.title, SEEDS[0]);
        let svg = Picture {
            title: &title,
            direction,
            samples: &r.samples,
            alerts: &r.alerts,
            incidents: &trace.incidents,
            from,
            to: trace.end,
        }
        .render();
        std::fs::write(root.join(format!("docs/detection-{}.svg", s.name)), svg)?;
    }
    eprintln!(
        "wrote DETECTION.md and {} pictures in {:.1} s",
        Scenario::all().len(),
        (SystemClock.now() - started).num_milliseconds() as f64 / 1000.0
    );
    Ok(())
}
