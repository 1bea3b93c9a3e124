//! [`TenantProbes`]: one [`MailProbe`] for the Monitor that hands each
//! tenant's probes to the probe configured for it, EWS or Graph.

use std::{collections::HashMap, sync::Arc};

use continuity_core::{
    TenantId, async_trait,
    probe::{MailProbe, ProbeRequest, ProbeStatus, ProbeTicket, config_error},
};

/// Each tenant's probe. A tenant without one is refused as a
/// configuration error (the service switches such tenants' probing off,
/// so this is not reached).
#[derive(Debug, Default)]
pub struct TenantProbes {
    by_tenant: HashMap<TenantId, Arc<dyn MailProbe>>,
}

impl TenantProbes {
    /// Probes `tenant` with `probe`.
    pub fn insert(&mut self, tenant: TenantId, probe: Arc<dyn MailProbe>) {
        self.by_tenant.insert(tenant, probe);
    }

    /// No tenant is probed.
    pub fn is_empty(&self) -> bool {
        self.by_tenant.is_empty()
    }

    fn probe(&self, tenant: &TenantId) -> continuity_core::Result<&Arc<dyn MailProbe>> {
        self.by_tenant
            .get(tenant)
            .ok_or_else(|| config_error(format!("no mail probe is configured for tenant {tenant}")))
    }
}

#[async_trait]
impl MailProbe for TenantProbes {
    async fn dispatch(&self, request: &ProbeRequest) -> continuity_core::Result<ProbeTicket> {
        self.probe(&request.tenant)?.dispatch(request).await
    }

    async fn check(
        &self,
        request: &ProbeRequest,
        ticket: &ProbeTicket,
    ) -> continuity_core::Result<ProbeStatus> {
        self.probe(&request.tenant)?.check(request, ticket).await
    }
}
