//! The service's metrics (EMF, namespace `auditkit`, `function=audit-api`): events ingested,
//! create requests refused, and search latency. Handlers record into one [`ApiMetrics`] per
//! process; the Lambda writes what an invocation recorded when it ends, the server every
//! [`SERVER_FLUSH_INTERVAL`].
//!
//! A server under load runs thousands of searches a minute: it keeps at most
//! [`LATENCY_SAMPLES`] latencies per flush, a uniform sample of them (reservoir sampling), so
//! percentiles stay right and a flush stays one log line; `Searches` counts them all.

use audit_core::metrics::{Declared, MetricSet, MetricsOut, Unit};
use std::sync::Mutex;
use std::time::Duration;

/// The metrics the service writes: the requests' four (every flush), then what a maintenance
/// run writes once per run: `ChainsDiverged` counts the chains whose database no longer holds
/// a head published before (the stack alarms on any).
pub const METRICS: Declared = &[
    ("EventsIngested", Unit::Count),
    ("EventsRejected", Unit::Count),
    ("Searches", Unit::Count),
    ("SearchLatency", Unit::Milliseconds),
    ("ChainsDiverged", Unit::Count),
];

/// How many of [`METRICS`] (the first) a flush of the requests' window writes.
const REQUEST_METRICS: usize = 4;

/// How often the plain server writes its metrics.
pub const SERVER_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Latencies kept per flush (one EMF line holds 100 values of a metric).
pub const LATENCY_SAMPLES: usize = 100;

#[derive(Debug, Default)]
struct Window {
    ingested: u64,
    rejected: u64,
    searches: u64,
    latencies_ms: Vec<f64>,
}

/// What the handlers recorded since the last flush.
#[derive(Debug)]
pub struct ApiMetrics {
    window: Mutex<Window>,
    out: MetricsOut,
}

impl ApiMetrics {
    pub fn new(out: MetricsOut) -> Self {
        ApiMetrics {
            window: Mutex::default(),
            out,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Window) -> T) -> T {
        f(&mut self.window.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Events stored by a create or a batch.
    pub fn ingested(&self, events: usize) {
        self.with(|w| w.ingested += events as u64);
    }

    /// A create request refused as invalid (a refused batch counts once).
    pub fn rejected(&self) {
        self.with(|w| w.rejected += 1);
    }

    /// One search and how long it took.
    pub fn searched(&self, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        self.with(|w| {
            w.searches += 1;
            if w.latencies_ms.len() < LATENCY_SAMPLES {
                w.latencies_ms.push(ms);
            } else {
                // Reservoir sampling: the n-th search replaces a kept one with chance k/n.
                let slot = fastrand::u64(0..w.searches) as usize;
                if slot < LATENCY_SAMPLES {
                    w.latencies_ms[slot] = ms;
                }
            }
        });
    }

    /// The set recorded since the last call, which starts a new window.
    pub fn take(&self) -> MetricSet {
        let window = self.with(std::mem::take);
        let mut set = MetricSet::zeroed("audit-api", &METRICS[..REQUEST_METRICS]);
        set.count("EventsIngested", window.ingested);
        set.count("EventsRejected", window.rejected);
        set.count("Searches", window.searches);
        for ms in window.latencies_ms {
            set.add("SearchLatency", Unit::Milliseconds, ms);
        }
        set
    }

    /// Writes a maintenance run's metrics now (a run is rare: it is not batched).
    pub fn maintained(&self, chains_diverged: usize) {
        let mut set = MetricSet::new("audit-api");
        set.count("ChainsDiverged", chains_diverged as u64);
        self.out.publish(&set);
    }

    /// Writes what was recorded since the last flush.
    pub fn flush(&self) {
        self.out.publish(&self.take());
    }

    /// The lines written so far (only with [`MetricsOut::capture`]).
    pub fn captured(&self) -> Vec<String> {
        self.out.captured()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audit_core::metrics::check_line;

    #[test]
    fn a_window_is_written_once_as_valid_emf_and_then_starts_again() {
        let metrics = ApiMetrics::new(MetricsOut::capture());
        metrics.ingested(1);
        metrics.ingested(250);
        metrics.rejected();
        for ms in 0..1000 {
            metrics.searched(Duration::from_millis(ms));
        }
        metrics.flush();
        metrics.flush();
        let lines = metrics.captured();
        assert_eq!(
            lines.len(),
            2,
            "each flush is one line, however many searches"
        );
        let first = check_line(&lines[0]).unwrap();
        assert_eq!(first.dimensions["function"], "audit-api");
        assert_eq!(first.total("EventsIngested"), 251.0);
        assert_eq!(first.total("EventsRejected"), 1.0);
        assert_eq!(first.total("Searches"), 1000.0);
        let (unit, sample) = &first.metrics["SearchLatency"];
        assert_eq!(unit.as_deref(), Some("Milliseconds"));
        assert_eq!(sample.len(), LATENCY_SAMPLES);
        // A uniform sample of 0..1000 ms: its mean is near 500 (the chance of straying
        // past 350..650 is far below one in a million).
        let mean = sample.iter().sum::<f64>() / sample.len() as f64;
        assert!((350.0..650.0).contains(&mean), "{mean}");
        let second = check_line(&lines[1]).unwrap();
        assert_eq!(second.total("EventsIngested"), 0.0);
        assert!(!second.metrics.contains_key("SearchLatency"));
    }
}
