//! The policies an embedder registered with
//! [`MonitorBuilder::policy`](super::MonitorBuilder::policy), by name, and
//! how a tenant's selection of one is turned into a policy.

use std::{collections::BTreeMap, fmt};

use crate::{
    domain::TenantId,
    error::{Error, Result},
    policy::{PolicyFactory, PolicySelection, ThresholdPolicy},
};

/// Names the built-in policies are configured under (`latency`,
/// `failures`, `leaky` fields of a direction); no registered policy may
/// take one, so that a condition's name always says which policy it is.
pub(super) const BUILTIN_NAMES: [&str; 3] = ["latency", "failures", "leaky"];

/// Registered policy factories by name (ordered, so an error lists them
/// the same way every time).
#[derive(Clone, Default)]
pub(super) struct PolicyRegistry {
    factories: BTreeMap<String, PolicyFactory>,
}

impl fmt::Debug for PolicyRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

impl PolicyRegistry {
    pub(super) fn insert(&mut self, name: String, factory: PolicyFactory) {
        self.factories.insert(name, factory);
    }

    /// Refuses names a tenant could not select unambiguously.
    pub(super) fn validate(&self) -> Result<()> {
        for name in self.factories.keys() {
            if name.trim().is_empty() || name.len() > 100 {
                return Err(Error::config(
                    "policy",
                    format!("a policy name must be 1 to 100 characters, got {name:?}"),
                ));
            }
            if BUILTIN_NAMES.contains(&name.as_str()) {
                return Err(Error::config(
                    "policy",
                    format!(
                        "{name:?} is a built-in policy, configured by a direction's `{name}` field; register yours under another name"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Builds the policy `selection` names, for `tenant`; `field` is the
    /// selection's path (`inbound.policies[0]`).
    pub(super) fn build(
        &self,
        selection: &PolicySelection,
        tenant: &TenantId,
        field: &str,
    ) -> Result<Box<dyn ThresholdPolicy>> {
        let Some(factory) = self.factories.get(&selection.name) else {
            let known = if self.factories.is_empty() {
                "none is registered".to_owned()
            } else {
                let names: Vec<&str> = self.factories.keys().map(String::as_str).collect();
                format!("registered: {}", names.join(", "))
            };
            return Err(Error::config(
                format!("{field}.name"),
                format!(
                    "tenant {tenant}: no policy named {:?} is registered with this monitor ({known}); register it with MonitorBuilder::policy or fix the name",
                    selection.name
                ),
            ));
        };
        factory(&selection.params).map_err(|e| match e {
            Error::InvalidConfig {
                field: inner,
                reason,
            } => {
                let path = if inner.is_empty() {
                    format!("{field}.params")
                } else {
                    format!("{field}.params.{inner}")
                };
                Error::config(
                    path,
                    format!("tenant {tenant}: policy {:?}: {reason}", selection.name),
                )
            }
            other => Error::config(
                format!("{field}.params"),
                format!("tenant {tenant}: policy {:?}: {other}", selection.name),
            ),
        })
    }
}
