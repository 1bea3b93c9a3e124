//! Policies chosen by name in a tenant's configuration: the
//! [`PolicySelection`] a tenant writes, the [`PolicyParams`] its factory
//! reads, and the [`PolicyFactory`] an embedder registers with
//! [`MonitorBuilder::policy`](crate::MonitorBuilder::policy).

use std::sync::Arc;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::ThresholdPolicy;
use crate::error::{Error, Result};

/// Builds a policy from a tenant's parameters, once per tenant and direction
/// that selects it. An error names the field under `params` that is wrong
/// (e.g. `Error::config("count", "must be at least 1")`); the Monitor
/// prefixes it with the selection's path and names the tenant.
pub type PolicyFactory =
    Arc<dyn Fn(&PolicyParams) -> Result<Box<dyn ThresholdPolicy>> + Send + Sync>;

/// The parameters of a selected policy, as written in the configuration
/// (JSON, TOML or any self-describing serde format).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PolicyParams(pub serde_json::Value);

impl PolicyParams {
    /// Reads the parameters as `T` (a struct with serde's derive, say);
    /// absent parameters read as an empty map, so a `T` whose fields all
    /// have defaults needs none.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        let value = match &self.0 {
            serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
            v => v.clone(),
        };
        serde_json::from_value(value).map_err(|e| Error::config("", e.to_string()))
    }

    /// The raw value.
    pub fn value(&self) -> &serde_json::Value {
        &self.0
    }
}

/// A policy chosen by name, in a direction's `policies` list:
/// `{"name": "my-policy", "params": {"count": 4}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySelection {
    /// The name it was registered under with
    /// [`MonitorBuilder::policy`](crate::MonitorBuilder::policy).
    pub name: String,
    /// Its parameters (default: none).
    #[serde(default)]
    pub params: PolicyParams,
}

impl PolicySelection {
    /// A selection of `name` with `params`.
    pub fn new(name: impl Into<String>, params: serde_json::Value) -> Self {
        PolicySelection {
            name: name.into(),
            params: PolicyParams(params),
        }
    }
}
