//! [`TenantProbes`]: one [`MailProbe`] for the Monitor that hands each
//! tenant's probes to the probe configured for it, EWS or Graph.
//!
//! The probe metrics name the adapter that served each probe (`adapter`
//! `ews` or `graph`), not this router: the Monitor asks
//! [`MailProbe::kind_for`] the tenant at each probe event, and reads the
//! adapters this router may name ([`MailProbe::kinds`]) once, when it is
//! built, to register their counters.

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
    /// The names of the adapters inserted, each once, in the order first
    /// seen.
    kinds: Vec<&'static str>,
}

impl TenantProbes {
    /// Probes `tenant` with `probe`.
    pub fn insert(&mut self, tenant: TenantId, probe: Arc<dyn MailProbe>) {
        for kind in probe.kinds() {
            if !self.kinds.contains(&kind) {
                self.kinds.push(kind);
            }
        }
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

    /// The adapters' name when every tenant is probed by the same one
    /// (`ews`, `graph`); `mixed` otherwise, `none` without a tenant. The
    /// metrics use [`kind_for`](MailProbe::kind_for) instead.
    fn kind(&self) -> &'static str {
        match self.kinds.as_slice() {
            [] => "none",
            [one] => one,
            _ => "mixed",
        }
    }

    /// The name of the adapter probing `tenant`.
    fn kind_for(&self, tenant: &TenantId) -> &'static str {
        match self.by_tenant.get(tenant) {
            Some(probe) => probe.kind_for(tenant),
            None => self.kind(),
        }
    }

    /// The names of every adapter inserted.
    fn kinds(&self) -> Vec<&'static str> {
        self.kinds.clone()
    }
}

#[cfg(test)]
mod tests {
    use continuity_core::arrival::ArrivalRegistry;
    use continuity_ews::EwsProbe;
    use continuity_graph::GraphProbe;

    use super::*;

    #[test]
    fn each_tenant_is_named_by_the_adapter_probing_it() {
        let arrivals = Arc::new(ArrivalRegistry::default());
        let ews: Arc<dyn MailProbe> =
            Arc::new(EwsProbe::new("gw@x.example", arrivals.clone(), None));
        let graph: Arc<dyn MailProbe> = Arc::new(GraphProbe::new("gw@x.example", arrivals, None));
        let (acme, contoso, fabrikam) = (
            TenantId::new("acme").unwrap(),
            TenantId::new("contoso").unwrap(),
            TenantId::new("fabrikam").unwrap(),
        );
        let mut probes = TenantProbes::default();
        assert_eq!(probes.kind(), "none");
        probes.insert(acme.clone(), ews.clone());
        assert_eq!((probes.kind(), probes.kinds()), ("ews", vec!["ews"]));
        probes.insert(contoso.clone(), graph);
        probes.insert(fabrikam.clone(), ews);
        assert_eq!(probes.kind_for(&acme), "ews");
        assert_eq!(probes.kind_for(&contoso), "graph");
        assert_eq!(probes.kind_for(&fabrikam), "ews");
        assert_eq!(probes.kinds(), ["ews", "graph"]);
        assert_eq!(probes.kind(), "mixed");
    }
}
