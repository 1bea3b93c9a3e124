//! Replays one scenario and seed under one configuration and prints every
//! alert with the readings of the minutes around it, and the incident: the
//! tool for finding out why a figure in `DETECTION.md` is what it is.
//!
//! `cargo run -p continuity-detection --release --bin detection-trace -- SCENARIO SEED [CONFIGURATION] [MINUTES]`
//!
//! SCENARIO is a name from `DETECTION.md` (`healthy` is 30 days);
//! CONFIGURATION one of its configurations (default `defaults`); MINUTES
//! how many minutes of readings to print before each alert (default 5).

use std::process::ExitCode;

use chrono::TimeDelta;
use continuity_detection::{configs::ALL, runner::replay, scenario::Scenario};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: detection-trace SCENARIO SEED [CONFIGURATION] [MINUTES]";
    let (Some(name), Some(seed)) = (args.first(), args.get(1).and_then(|s| s.parse().ok())) else {
        eprintln!("{usage}");
        return ExitCode::FAILURE;
    };
    let config_name = args.get(2).map_or("defaults", String::as_str);
    let before: i64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let Some(scenario) = Scenario::all().into_iter().find(|s| s.name == name) else {
        eprintln!("no scenario {name:?}; {usage}");
        return ExitCode::FAILURE;
    };
    let Some(config) = ALL.iter().find(|c| c.name == config_name) else {
        eprintln!("no configuration {config_name:?}; {usage}");
        return ExitCode::FAILURE;
    };
    let trace = scenario.trace(seed);
    for i in &trace.incidents {
        println!(
            "incident: {:?} {} to {} ({:?})",
            i.direction, i.start, i.end, i.trouble
        );
    }
    let replay = match replay(&trace, config, true) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("detection-trace: {e}");
            return ExitCode::FAILURE;
        }
    };
    for alert in &replay.alerts {
        println!("\n{} {:?} {:?}", alert.at, alert.kind, alert.directions);
        let from = alert.at - TimeDelta::minutes(before);
        for s in replay
            .samples
            .iter()
            .filter(|s| s.at >= from && s.at <= alert.at)
        {
            println!(
                "  {} {:?} {} {}{}",
                s.at.format("%d %H:%M"),
                s.direction,
                s.condition,
                if s.breached { "BREACHED " } else { "" },
                s.text
            );
        }
    }
    ExitCode::SUCCESS
}
