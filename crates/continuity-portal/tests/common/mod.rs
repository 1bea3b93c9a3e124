//! What the portal's test suites share.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::{Direction, Monitor, Observation, TenantId};

/// Feeds `tenant` 18 outbound deliveries, each 42 minutes late, over the 50
/// minutes before `now`: over the default 30-minute latency threshold.
pub fn late_outbound_mail(monitor: &Monitor, tenant: &TenantId, now: DateTime<Utc>) {
    for i in 0..18 {
        monitor
            .observe(Observation::delivered(
                tenant.clone(),
                Direction::Outbound,
                now - TimeDelta::minutes(50 - i),
                Duration::from_secs(42 * 60),
            ))
            .unwrap();
    }
}
