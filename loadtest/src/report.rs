//! What a run measured and how it is shown: per-request samples and outcome counts ([`Tally`]),
//! latency percentiles from an HDR histogram ([`Latency`]), and the [`Report`] every scenario
//! prints and writes as JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::Reply;

/// How many distinct transport or HTTP error details a tally keeps (the counts are complete).
const KEPT_DETAILS: usize = 5;

/// One request: when it was (due to be) sent, counted from the start of the run, and how long
/// its answer took from then.
#[derive(Copy, Clone, Debug)]
pub struct Sample {
    pub sent: Duration,
    pub latency: Duration,
}

/// Every request of a run: samples, counts per outcome and a few error details.
#[derive(Default, Debug)]
pub struct Tally {
    pub samples: Vec<Sample>,
    pub outcomes: BTreeMap<String, u64>,
    pub details: Vec<String>,
}

impl Tally {
    pub fn record(&mut self, sent: Duration, latency: Duration, reply: &Reply) {
        self.samples.push(Sample { sent, latency });
        *self.outcomes.entry(reply.outcome.clone()).or_default() += 1;
        if let Some(detail) = &reply.detail {
            self.keep_detail(format!("{}: {detail}", reply.outcome));
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.samples.extend(other.samples);
        for (outcome, count) in other.outcomes {
            *self.outcomes.entry(outcome).or_default() += count;
        }
        for detail in other.details {
            self.keep_detail(detail);
        }
    }

    /// Keeps the first few distinct error details.
    fn keep_detail(&mut self, detail: String) {
        if self.details.len() < KEPT_DETAILS && !self.details.contains(&detail) {
            self.details.push(detail);
        }
    }

    pub fn count(&self, outcome: &str) -> u64 {
        self.outcomes.get(outcome).copied().unwrap_or(0)
    }

    /// Outcomes other than the `allowed` ones, with their counts.
    pub fn unexpected(&self, allowed: &[&str]) -> Vec<(String, u64)> {
        self.outcomes
            .iter()
            .filter(|(outcome, _)| !allowed.contains(&outcome.as_str()))
            .map(|(outcome, count)| (outcome.clone(), *count))
            .collect()
    }

    /// The summary over `elapsed` wall-clock time.
    pub fn summary(&self, elapsed: Duration) -> LoadSummary {
        let requests = self.samples.len() as u64;
        LoadSummary {
            requests,
            elapsed_secs: elapsed.as_secs_f64(),
            throughput_rps: requests as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_ms: Latency::of(self.samples.iter().map(|s| s.latency)),
            outcomes: self.outcomes.clone(),
            error_details: self.details.clone(),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Serialize, Debug, Clone, Copy, Default)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    /// Percentiles of some durations, recorded at microsecond resolution (3 significant digits).
    pub fn of(durations: impl IntoIterator<Item = Duration>) -> Self {
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
        for duration in durations {
            histogram.saturating_record(duration.as_micros().max(1) as u64);
        }
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p95: ms(histogram.value_at_quantile(0.95)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {:.2} ms",
            self.p50, self.p95, self.p99, self.max, self.mean
        )
    }
}

/// The latency of the requests sent (or due) in each whole second of a run, by second.
pub fn per_second(samples: &[Sample]) -> BTreeMap<u64, Latency> {
    let mut buckets: BTreeMap<u64, Vec<Duration>> = BTreeMap::new();
    for sample in samples {
        buckets
            .entry(sample.sent.as_secs())
            .or_default()
            .push(sample.latency);
    }
    buckets
        .into_iter()
        .map(|(second, latencies)| (second, Latency::of(latencies)))
        .collect()
}

/// Requests, throughput, latency and outcomes of a measured phase.
#[derive(Serialize, Debug)]
pub struct LoadSummary {
    pub requests: u64,
    pub elapsed_secs: f64,
    pub throughput_rps: f64,
    pub latency_ms: Latency,
    pub outcomes: BTreeMap<String, u64>,
    pub error_details: Vec<String>,
}

/// One invariant or expectation and whether it held.
#[derive(Serialize, Debug)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed,
            detail: detail.into(),
        }
    }
}

/// What a scenario reports: printed, and written as JSON with `--out`.
#[derive(Serialize, Debug)]
pub struct Report {
    pub scenario: &'static str,
    /// The scenario's flags.
    pub settings: Value,
    pub setup_secs: f64,
    /// The measured phase, when the scenario has one of HTTP requests.
    pub load: Option<LoadSummary>,
    /// Scenario-specific results (winners, orders/s while stock lasted, receive latencies...).
    pub results: Map<String, Value>,
    /// Expectations of the scenario and, with `--database-url`, the invariants checked by SQL.
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(scenario: &'static str, settings: &impl Serialize) -> Self {
        Self {
            scenario,
            settings: serde_json::to_value(settings).unwrap_or(Value::Null),
            setup_secs: 0.0,
            load: None,
            results: Map::new(),
            checks: Vec::new(),
        }
    }

    pub fn result(&mut self, key: &str, value: impl Serialize) {
        self.results.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
    }

    pub fn check(&mut self, check: Check) {
        self.checks.push(check);
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }

    pub fn print(&self) {
        println!();
        println!("== {} ==", self.scenario);
        println!("setup: {:.1} s", self.setup_secs);
        if let Some(load) = &self.load {
            println!(
                "requests: {} in {:.2} s = {:.1} req/s",
                load.requests, load.elapsed_secs, load.throughput_rps
            );
            println!("latency: {}", load.latency_ms.line());
            let outcomes: Vec<String> = load
                .outcomes
                .iter()
                .map(|(outcome, count)| format!("{outcome} {count}"))
                .collect();
            println!("outcomes: {}", outcomes.join(", "));
            for detail in &load.error_details {
                println!("  error: {detail}");
            }
        }
        for (key, value) in &self.results {
            println!("{key}: {}", shown(value));
        }
        for check in &self.checks {
            let mark = if check.passed { "ok  " } else { "FAIL" };
            println!("[{mark}] {}: {}", check.name, check.detail);
        }
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// A result value for people: floats rounded, long lists left to the JSON file.
fn shown(value: &Value) -> String {
    match value {
        Value::Number(number) if number.is_f64() => {
            format!("{:.3}", number.as_f64().unwrap_or(f64::NAN))
        }
        Value::String(text) => text.clone(),
        Value::Array(items) if items.len() > 10 => {
            format!("[{} entries, in the JSON result]", items.len())
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(shown).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(key, value)| format!("{key} {}", shown(value)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::OK;

    #[test]
    fn percentiles_of_durations() {
        let latency = Latency::of((1..=100).map(Duration::from_millis));
        assert_eq!(latency.count, 100);
        assert!((latency.p50 - 50.0).abs() < 0.1, "{latency:?}");
        assert!((latency.p99 - 99.0).abs() < 0.1, "{latency:?}");
        assert!((latency.max - 100.0).abs() < 0.1, "{latency:?}");
        assert!((latency.mean - 50.5).abs() < 0.1, "{latency:?}");
    }

    #[test]
    fn tallies_outcomes() {
        let mut tally = Tally::default();
        let reply = |outcome: &str| Reply {
            outcome: outcome.into(),
            body: Value::Null,
            detail: None,
        };
        tally.record(Duration::ZERO, Duration::from_millis(1), &reply(OK));
        tally.record(
            Duration::ZERO,
            Duration::from_millis(2),
            &reply("OUT_OF_STOCK"),
        );
        tally.record(Duration::ZERO, Duration::from_millis(3), &reply("HTTP_500"));
        assert_eq!(tally.count(OK), 1);
        assert_eq!(
            tally.unexpected(&[OK, "OUT_OF_STOCK"]),
            vec![("HTTP_500".to_owned(), 1)]
        );
        assert_eq!(tally.summary(Duration::from_secs(1)).requests, 3);
    }
}
