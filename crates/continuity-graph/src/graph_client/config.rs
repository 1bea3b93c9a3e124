//! The client's settings: endpoint, timeout, how probes are deleted.

use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::app_registration::Authority;
use crate::error::GraphError;
use crate::limiter::MailboxLimits;

/// Default timeout of one Graph request.
pub const DEFAULT_GRAPH_TIMEOUT: Duration = Duration::from_secs(30);
/// Default timeout of connecting to Graph: 10 s.
pub const DEFAULT_GRAPH_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `$top` of a message listing: 50.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Default most pages followed per listing: 20.
pub const DEFAULT_MAX_PAGES: u32 = 20;
/// Default largest answer read: 4 MiB.
pub const DEFAULT_GRAPH_MAX_RESPONSE_BYTES: usize = 4 << 20;
/// The `User-Agent` sent when none is configured.
pub const DEFAULT_GRAPH_USER_AGENT: &str = concat!("continuity-graph/", env!("CARGO_PKG_VERSION"));

/// How found probes are removed. In configuration `"permanent"` or
/// `"move_to_deleted_items"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeleteMode {
    /// `POST …/permanentDelete`: gone from Deleted Items too, like EWS's
    /// `HardDelete` (the default; available in the global cloud only).
    #[default]
    Permanent,
    /// `DELETE …/messages/{id}`: moved to Deleted Items (every cloud).
    MoveToDeletedItems,
}

/// Settings of a [`GraphClient`](super::GraphClient).
#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// Graph's service root, e.g. `https://graph.microsoft.com/v1.0`.
    pub endpoint: String,
    /// Timeout of one request (default 30 s).
    pub request_timeout: Duration,
    /// Timeout of connecting (default 10 s).
    pub connect_timeout: Duration,
    /// The mailbox limits kept (default: Graph's own).
    pub limits: MailboxLimits,
    /// `$top` of a message listing, 1 to 1000 (default 50).
    pub page_size: u32,
    /// Pages followed per listing at most (default 20).
    pub max_pages: u32,
    /// How found probes are removed.
    pub delete_mode: DeleteMode,
    /// Largest answer read (default 4 MiB).
    pub max_response_bytes: usize,
    /// Allows `http://` endpoints (local tests only: the token would travel in clear).
    pub allow_plain_http: bool,
    /// The `User-Agent` sent.
    pub user_agent: String,
}

impl GraphConfig {
    /// Settings for the service root `endpoint`, with the defaults above.
    pub fn new(endpoint: impl Into<String>) -> Self {
        GraphConfig {
            endpoint: endpoint.into(),
            request_timeout: DEFAULT_GRAPH_TIMEOUT,
            connect_timeout: DEFAULT_GRAPH_CONNECT_TIMEOUT,
            limits: MailboxLimits::default(),
            page_size: DEFAULT_PAGE_SIZE,
            max_pages: DEFAULT_MAX_PAGES,
            delete_mode: DeleteMode::Permanent,
            max_response_bytes: DEFAULT_GRAPH_MAX_RESPONSE_BYTES,
            allow_plain_http: false,
            user_agent: DEFAULT_GRAPH_USER_AGENT.into(),
        }
    }

    /// Settings for the Graph of `authority`'s cloud. `permanentDelete` exists
    /// in the global cloud only, so the national clouds move found probes to
    /// Deleted Items.
    pub fn for_authority(authority: &Authority) -> Result<Self, GraphError> {
        let endpoint = authority
            .graph_endpoint()
            .ok_or_else(|| GraphError::InvalidConfig {
                field: "endpoint",
                reason: "a custom authority has no known Graph endpoint: use GraphConfig::new"
                    .into(),
            })?;
        let mut cfg = GraphConfig::new(endpoint);
        if *authority != Authority::Public {
            cfg.delete_mode = DeleteMode::MoveToDeletedItems;
        }
        Ok(cfg)
    }

    pub(super) fn validate(&self) -> Result<Url, GraphError> {
        let bad = |field, reason: String| GraphError::InvalidConfig { field, reason };
        let url = Url::parse(self.endpoint.trim_end_matches('/'))
            .map_err(|e| bad("endpoint", format!("{:?}: {e}", self.endpoint)))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_plain_http => {}
            s => {
                return Err(bad(
                    "endpoint",
                    format!(
                        "scheme {s:?}: https required (the bearer token travels with every request)"
                    ),
                ));
            }
        }
        if url.cannot_be_a_base() || url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "endpoint",
                format!(
                    "{:?}: a service root without query is expected",
                    self.endpoint
                ),
            ));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(bad("page_size", format!("{}: 1 to 1000", self.page_size)));
        }
        if self.max_pages == 0 {
            return Err(bad("max_pages", "must be at least 1".into()));
        }
        if self.max_response_bytes < 1024 {
            return Err(bad("max_response_bytes", "must be at least 1024".into()));
        }
        Ok(url)
    }
}
