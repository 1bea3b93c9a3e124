//! The Graph tests' rig: a token endpoint and a Graph server (from
//! `continuity-test-support`) on one manual clock, and clients of them.

#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use continuity_core::ManualClock;
pub use continuity_test_support::app_cert::{AppCert, pkcs12, rsa_cert, rsa_cert_valid};
pub use continuity_test_support::graph_server;
pub use continuity_test_support::token_endpoint::*;

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A token endpoint and a Graph server on one manual clock, an app trusted
/// by the endpoint, and a client of the local Graph with tokens from a cache.
pub struct GraphRig {
    pub clock: ManualClock,
    pub ep: Endpoint,
    pub graph: Arc<graph_server::GraphServer>,
    pub cache: Arc<continuity_graph::TokenCache>,
    pub app: Arc<continuity_graph::AppRegistration>,
    pub cert: AppCert,
}

pub const MAILBOX: &str = "probe-in@contoso.example";
pub const SENDER: &str = "probe-out@contoso.example";
pub const GATEWAY: &str = "probe@gateway.example";

/// A rig with `SENDER` and `MAILBOX` on the Graph server; `dir` changes the directory first.
pub async fn graph_rig_with(dir: impl FnOnce(&mut Directory)) -> GraphRig {
    let cert = rsa_cert("monitor");
    let clock = ManualClock::new(t("2026-03-02T08:00:00Z"));
    let mut d = directory(&cert);
    dir(&mut d);
    let ep = start(d, clock.clone()).await;
    let graph = Arc::new(graph_server::GraphServer::start(Arc::new(clock.clone())).await);
    graph.add_mailbox(SENDER);
    graph.add_mailbox(MAILBOX);
    let cred = continuity_graph::CertificateCredential::from_pem(
        cert.cert_pem.as_bytes(),
        cert.pkcs8_pem.as_bytes(),
        &clock,
    )
    .unwrap();
    let app = continuity_graph::AppRegistration::new(TENANT, CLIENT_ID, Arc::new(cred))
        .unwrap()
        .with_authority(continuity_graph::Authority::Custom(ep.base_url.clone()));
    let cache = continuity_graph::TokenCache::new(
        continuity_graph::TokenClient::new(Arc::new(clock.clone())).unwrap(),
    );
    GraphRig {
        clock,
        ep,
        graph,
        cache,
        app: Arc::new(app),
        cert,
    }
}

pub async fn graph_rig() -> GraphRig {
    graph_rig_with(|_| {}).await
}

impl GraphRig {
    /// Settings for the local Graph: plain http, short timeouts.
    pub fn config(&self) -> continuity_graph::GraphConfig {
        let mut c = continuity_graph::GraphConfig::new(&self.graph.url);
        c.allow_plain_http = true;
        c.request_timeout = Duration::from_secs(10);
        c
    }

    /// A client of `app` (default: the rig's) with `cfg`.
    pub fn client_for(
        &self,
        app: Arc<continuity_graph::AppRegistration>,
        cfg: continuity_graph::GraphConfig,
    ) -> continuity_graph::GraphClient {
        continuity_graph::GraphClient::new(
            cfg,
            Arc::new(self.cache.source(app, GRAPH_SCOPE)),
            Arc::new(self.clock.clone()),
        )
        .unwrap()
    }

    pub fn client(&self) -> continuity_graph::GraphClient {
        self.client_for(self.app.clone(), self.config())
    }
}
