//! Test support for backends and embedders (feature `testing`).
//!
//! [`conformance`] holds the one suite every [`EventStore`](crate::store::EventStore)
//! backend must pass, and [`policy_conformance`] the one every
//! [`ThresholdPolicy`](crate::policy::ThresholdPolicy) must pass, written as plain `async fn`s over `&dyn EventStore`
//! so any async runtime can drive them. [`FaultyStore`] wraps a store that
//! can be taken down, for testing the engine against an unreachable store.
//! [`ProbeHarness`] drives a mail adapter's probe through a [`Monitor`](crate::Monitor)
//! for the adapters' end-to-end tests. [`RecordingNotifier`] and
//! [`RecordingHook`] stand in for the notifiers and the hook, keeping what
//! the engine sends. [`EngineRig`] is the engine's own test rig: a monitor
//! with those doubles on a manual clock, ticked minute by minute.
//! [`TestRecorder`] keeps what is recorded through the `metrics` facade.

pub mod conformance;
mod faulty;
mod metrics_recorder;
pub mod policy_conformance;
mod probe_harness;
mod recording;
mod rig;
mod rng;

pub use faulty::FaultyStore;
pub use metrics_recorder::TestRecorder;
pub use probe_harness::ProbeHarness;
pub use recording::{HookCall, RecordingHook, RecordingNotifier};
pub use rig::{
    EngineRig, RIG_PORTAL_URL, RigOptions, absolute_thresholds, late_outbound_mail, refused,
    rig_signer, rig_start,
};
pub use rng::SplitMix64;
