//! A metrics recorder that keeps what it is given, for tests of what the
//! engine (or an embedder's service) records through the
//! [`metrics` crate](::metrics) facade.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, LocalRecorderGuard, Metadata, Recorder,
    SharedString, Unit,
};

/// Keeps every counter, gauge and histogram registered with it, by name
/// and labels. Install it on the current thread with
/// [`install_local`](Self::install_local) **before** building the
/// [`Monitor`](crate::Monitor) (which registers its instruments when it is
/// built), and drive the monitor on that thread (a current-thread runtime).
///
/// ```
/// use continuity_core::testing::TestRecorder;
///
/// let recorder = TestRecorder::new();
/// let _guard = recorder.install_local();
/// metrics::counter!("jobs_total", "queue" => "mail").increment(2);
/// assert_eq!(recorder.counter("jobs_total", &[("queue", "mail")]), 2);
/// assert_eq!(recorder.counter("jobs_total", &[]), 0, "labels must match exactly");
/// ```
#[derive(Clone, Debug, Default)]
pub struct TestRecorder {
    inner: Arc<Mutex<Kept>>,
}

#[derive(Debug, Default)]
struct Kept {
    counters: HashMap<Key, Arc<AtomicU64>>,
    gauges: HashMap<Key, Arc<AtomicU64>>,
    histograms: HashMap<Key, Arc<Samples>>,
    descriptions: HashMap<String, String>,
}

#[derive(Debug, Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(value);
    }
}

/// Whether `key` has `name` and exactly `labels` (in any order).
fn matches(key: &Key, name: &str, labels: &[(&str, &str)]) -> bool {
    if key.name() != name || key.labels().count() != labels.len() {
        return false;
    }
    labels
        .iter()
        .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
}

impl TestRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes this the recorder of the current thread until the guard drops.
    pub fn install_local(&self) -> LocalRecorderGuard<'_> {
        metrics::set_default_local_recorder(self)
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counter `name` with exactly `labels` (0 if never registered).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.kept()
            .counters
            .iter()
            .find(|(k, _)| matches(k, name, labels))
            .map_or(0, |(_, v)| v.load(Ordering::Relaxed))
    }

    /// The sum of the counters `name`, whatever their labels.
    pub fn counter_sum(&self, name: &str) -> u64 {
        self.kept()
            .counters
            .iter()
            .filter(|(k, _)| k.name() == name)
            .map(|(_, v)| v.load(Ordering::Relaxed))
            .sum()
    }

    /// The gauge `name` with exactly `labels` (`None` if never registered).
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.kept()
            .gauges
            .iter()
            .find(|(k, _)| matches(k, name, labels))
            .map(|(_, v)| f64::from_bits(v.load(Ordering::Relaxed)))
    }

    /// The values recorded into the histogram `name` with exactly `labels`.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.kept()
            .histograms
            .iter()
            .find(|(k, _)| matches(k, name, labels))
            .map(|(_, v)| v.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Every label set the counter `name` was registered with, each sorted
    /// by label name.
    pub fn counter_labels(&self, name: &str) -> Vec<Vec<(String, String)>> {
        self.kept()
            .counters
            .keys()
            .filter(|k| k.name() == name)
            .map(|k| {
                let mut labels: Vec<_> = k
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                labels
            })
            .collect()
    }

    /// The description given for the metric `name`, if any.
    pub fn description(&self, name: &str) -> Option<String> {
        self.kept().descriptions.get(name).cloned()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.kept()
            .descriptions
            .insert(key.as_str().to_owned(), description.into_owned());
    }

    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.kept()
            .descriptions
            .insert(key.as_str().to_owned(), description.into_owned());
    }

    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, description: SharedString) {
        self.kept()
            .descriptions
            .insert(key.as_str().to_owned(), description.into_owned());
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let kept = self.kept().counters.entry(key.clone()).or_default().clone();
        Counter::from_arc(kept)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let kept = self.kept().gauges.entry(key.clone()).or_default().clone();
        Gauge::from_arc(kept)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let kept = self
            .kept()
            .histograms
            .entry(key.clone())
            .or_default()
            .clone();
        Histogram::from_arc(kept)
    }
}
