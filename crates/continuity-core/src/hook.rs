//! The embedder's callback for continuity-event start and end.

use std::fmt;

use async_trait::async_trait;

use crate::{domain::TenantId, error::Result, machine::ContinuityEvent};

/// Called when a continuity event starts and ends, so the gateway can switch
/// its routing (hold and queue inbound mail, open continuity access).
///
/// Calls go through the store's outbox: a hook that fails (or an instance
/// that dies before calling it) is called again on a later tick, in order,
/// so implementations must be idempotent (the event id identifies the event).
#[async_trait]
pub trait ContinuityHook: Send + Sync + fmt::Debug {
    /// The event started.
    async fn event_started(&self, tenant: &TenantId, event: &ContinuityEvent) -> Result<()>;
    /// The event ended (stopped, or reached its end time).
    async fn event_ended(&self, tenant: &TenantId, event: &ContinuityEvent) -> Result<()>;
}

#[async_trait]
impl<T: ContinuityHook + ?Sized> ContinuityHook for std::sync::Arc<T> {
    async fn event_started(&self, tenant: &TenantId, event: &ContinuityEvent) -> Result<()> {
        (**self).event_started(tenant, event).await
    }
    async fn event_ended(&self, tenant: &TenantId, event: &ContinuityEvent) -> Result<()> {
        (**self).event_ended(tenant, event).await
    }
}
