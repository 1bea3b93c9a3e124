//! `Runner::run` stops on SIGTERM: the signal this test sends to its own
//! process (a test binary of its own, so no other test shares the signal).

#![cfg(all(feature = "service", unix))]

use std::{sync::Arc, time::Duration};

use continuity::{
    Monitor,
    config::ChannelKind,
    link::{LinkKey, LinkSigner},
    service::{Runner, RunnerSettings},
    testing::RecordingNotifier,
};

#[tokio::test(flavor = "current_thread")]
async fn sigterm_stops_the_runner_cleanly() {
    let monitor = Arc::new(
        Monitor::builder()
            .in_memory_store()
            .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
            .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32]).unwrap()))
            .portal_url("https://continuity.example.net/c/")
            .build()
            .unwrap(),
    );
    let runner = Runner::new(monitor, RunnerSettings::default()).unwrap();
    let running = tokio::spawn(runner.run());
    // Time for the runner to tick once and listen for the signals.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let summary = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the runner stops on SIGTERM")
        .unwrap()
        .unwrap();
    assert_eq!(summary.ticks, 1, "{summary:?}");
}
