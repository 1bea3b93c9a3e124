//! The engine of `continuity` (docs to be written).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod domain;
pub mod duration;
pub mod error;
pub mod link;
pub mod policy;
pub mod window;
pub mod machine;

pub use clock::{Clock, ManualClock, SystemClock};
pub use domain::{Direction, FailureKind, Observation, Outcome, TenantId};
pub use error::{Error, Result};
