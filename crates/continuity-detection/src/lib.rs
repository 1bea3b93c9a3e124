//! The detection benchmark of `continuity` (issue 14): seeded mail-flow
//! traces labelled with their incidents ([`trace`], [`scenario`]), replayed
//! through a real `Monitor` on a manual clock ([`runner`]) under several
//! tenant configurations ([`configs`]), scored for precision, recall,
//! detection time and reset time ([`score`]), and written up as
//! `DETECTION.md` with one SVG picture per scenario ([`report`], [`svg`]).
//!
//! `cargo run -p continuity-detection --release --bin detection-report`
//! regenerates the report and the pictures.

pub mod configs;
pub mod report;
pub mod rng;
pub mod runner;
pub mod scenario;
pub mod score;
pub mod svg;
pub mod trace;
