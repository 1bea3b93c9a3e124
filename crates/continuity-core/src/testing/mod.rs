//! Test support for backends and embedders (feature `testing`).
//!
//! [`conformance`] holds the one suite every [`EventStore`](crate::store::EventStore)
//! backend must pass, written as plain `async fn`s over `&dyn EventStore`
//! so any async runtime can drive them.

pub mod conformance;
