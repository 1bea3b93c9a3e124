//! Test support for backends and embedders (feature `testing`).
//!
//! [`conformance`] holds the one suite every [`EventStore`](crate::store::EventStore)
//! backend must pass, written as plain `async fn`s over `&dyn EventStore`
//! so any async runtime can drive them. [`FaultyStore`] wraps a store that
//! can be taken down, for testing the engine against an unreachable store.
//! [`ProbeHarness`] drives a mail adapter's probe through a [`Monitor`](crate::Monitor)
//! for the adapters' end-to-end tests.

pub mod conformance;
mod faulty;
mod probe_harness;

pub use faulty::FaultyStore;
pub use probe_harness::ProbeHarness;
