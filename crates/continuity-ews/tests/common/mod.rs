//! The EWS tests' client settings for the local EWS server
//! (`continuity_test_support::ews_server`) and their clock.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use continuity_ews::{Auth, EwsClient, EwsConfig, EwsRetryPolicy};

pub const SVC_USER: &str = "CONTOSO\\svc-continuity";
pub const SVC_PASS: &str = "correct horse battery staple";

/// Client settings for the local server: plain http allowed, short timeouts,
/// fast retries, no send pacing (pacing has its own test).
pub fn config(url: &str) -> EwsConfig {
    let mut c = EwsConfig::new(url, Auth::basic(SVC_USER, SVC_PASS));
    c.allow_plain_http = true;
    c.request_timeout = Duration::from_secs(10);
    c.min_send_interval = Duration::ZERO;
    c.retry = EwsRetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_server_wait: Duration::from_secs(2),
    };
    c
}

pub fn client(url: &str) -> EwsClient {
    EwsClient::new(config(url)).unwrap()
}

pub fn manual_clock() -> continuity_core::ManualClock {
    continuity_core::ManualClock::new("2026-03-02T08:00:00Z".parse().unwrap())
}

pub fn arc_clock(c: &continuity_core::ManualClock) -> Arc<dyn continuity_core::Clock> {
    Arc::new(c.clone())
}
