//! Metrics as CloudWatch Embedded Metric Format (EMF) lines: one JSON object on stdout per
//! invocation, which CloudWatch Logs turns into metrics in namespace [`NAMESPACE`] with the
//! dimension `function`. No `PutMetricData` call, no IAM action, no latency on the handler:
//! the format Powertools for AWS Lambda writes.
//!
//! A handler fills a [`MetricSet`] while it works and hands it to [`MetricsOut::publish`] once
//! at the end. Counts and byte totals are summed; other units (lags, durations) keep every
//! value, so CloudWatch can compute percentiles. [`check_line`] is the specification as a
//! function: every crate's tests parse what their handler emitted with it.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// The CloudWatch namespace of every auditkit metric.
pub const NAMESPACE: &str = "auditkit";
/// The one dimension: which function emitted the value.
pub const DIMENSION: &str = "function";

/// The specification's limits: metric definitions per directive, values per metric, and the
/// size of a log event.
const MAX_METRICS: usize = 100;
const MAX_VALUES: usize = 100;
const MAX_DIMENSIONS: usize = 30;
const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The units auditkit uses (a subset of CloudWatch's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Seconds,
    Milliseconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
        }
    }

    /// Totals are summed into one value; anything else is a distribution of values.
    fn is_total(self) -> bool {
        matches!(self, Unit::Count | Unit::Bytes)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Metric {
    unit: Unit,
    values: Vec<f64>,
}

/// The metrics a function emits, name and unit: each function crate declares its own as
/// `METRICS`, and the stack's contract test holds the dashboard and alarms to them.
pub type Declared = &'static [(&'static str, Unit)];

/// The metric values of one invocation of one function, not yet written.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSet {
    function: &'static str,
    metrics: BTreeMap<&'static str, Metric>,
    /// What the function declares it writes: in a debug build (every test), writing anything
    /// else is a bug caught at once, so the dashboard's contract test can trust `METRICS`.
    declared: Option<Declared>,
}

impl MetricSet {
    pub fn new(function: &'static str) -> Self {
        MetricSet {
            function,
            metrics: BTreeMap::new(),
            declared: None,
        }
    }

    /// A set that already holds 0 for every declared count and byte total, so an alarm reads
    /// "none" rather than missing data for an invocation where nothing happened.
    pub fn zeroed(function: &'static str, declared: Declared) -> Self {
        let mut set = MetricSet::new(function);
        set.declared = Some(declared);
        for (name, unit) in declared.iter().filter(|(_, unit)| unit.is_total()) {
            set.add(name, *unit, 0.0);
        }
        set
    }

    /// Adds `value` to the metric `name`. A count of 0 is still written: an alarm then sees
    /// "nothing failed" rather than missing data. Values that are not finite are dropped
    /// (JSON has no NaN).
    pub fn add(&mut self, name: &'static str, unit: Unit, value: f64) {
        debug_assert!(
            self.declared
                .is_none_or(|d| d.iter().any(|(n, u)| *n == name && *u == unit)),
            "{}: metric {name} ({}) is not in its METRICS",
            self.function,
            unit.as_str()
        );
        let metric = self.metrics.entry(name).or_insert_with(|| Metric {
            unit,
            values: Vec::new(),
        });
        debug_assert_eq!(metric.unit, unit, "metric {name} used with two units");
        if !value.is_finite() {
            return;
        }
        match (unit.is_total(), metric.values.first_mut()) {
            (true, Some(total)) => *total += value,
            _ => metric.values.push(value),
        }
    }

    pub fn count(&mut self, name: &'static str, n: u64) {
        self.add(name, Unit::Count, n as f64);
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// The value of a total (count, bytes), or the values of a distribution.
    pub fn values(&self, name: &str) -> Option<&[f64]> {
        self.metrics.get(name).map(|m| m.values.as_slice())
    }

    /// The EMF lines that carry this set at `timestamp_ms`: one, unless more than 100 metrics
    /// or more than 100 values of one metric need further lines.
    pub fn lines(&self, timestamp_ms: u64) -> Vec<String> {
        let rounds = self
            .metrics
            .values()
            .map(|m| m.values.len().div_ceil(MAX_VALUES))
            .max()
            .unwrap_or(0);
        let mut lines = Vec::new();
        for round in 0..rounds {
            let present: Vec<(&str, &Metric, &[f64])> = self
                .metrics
                .iter()
                .filter_map(|(name, metric)| {
                    let start = round * MAX_VALUES;
                    (start < metric.values.len()).then(|| {
                        let end = (start + MAX_VALUES).min(metric.values.len());
                        (*name, metric, &metric.values[start..end])
                    })
                })
                .collect();
            for chunk in present.chunks(MAX_METRICS) {
                lines.push(self.line(timestamp_ms, chunk));
            }
        }
        lines
    }

    fn line(&self, timestamp_ms: u64, metrics: &[(&str, &Metric, &[f64])]) -> String {
        let mut root = Map::new();
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, metric, _)| json!({"Name": name, "Unit": metric.unit.as_str()}))
            .collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": definitions,
                }],
            }),
        );
        root.insert(DIMENSION.into(), Value::from(self.function));
        for (name, _, values) in metrics {
            let value = match values {
                [one] => json!(one),
                many => json!(many),
            };
            root.insert((*name).to_owned(), value);
        }
        Value::Object(root).to_string()
    }
}

/// Where metric lines go: stdout in a function, a buffer in tests.
#[derive(Debug, Clone, Default)]
pub struct MetricsOut {
    captured: Option<Arc<Mutex<Vec<String>>>>,
}

impl MetricsOut {
    /// Lines on stdout, where Lambda's log capture (and so CloudWatch Logs) reads them.
    pub fn stdout() -> Self {
        MetricsOut { captured: None }
    }

    /// Lines kept in memory, for a test to read back with [`MetricsOut::captured`].
    pub fn capture() -> Self {
        MetricsOut {
            captured: Some(Arc::default()),
        }
    }

    /// Every line published so far (always empty for [`MetricsOut::stdout`]).
    pub fn captured(&self) -> Vec<String> {
        self.captured
            .as_ref()
            .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Writes the set's lines, timestamped now. A metric line that cannot be written is not
    /// worth failing an invocation over, but is not hidden either: it is logged.
    pub fn publish(&self, set: &MetricSet) {
        let lines = set.lines(crate::now_ms().max(0) as u64);
        match &self.captured {
            Some(buffer) => buffer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(lines),
            None => {
                // One write per line under the lock, so a line never interleaves with a
                // tracing line written by another task.
                let mut out = std::io::stdout().lock();
                for line in lines {
                    if let Err(error) = out
                        .write_all(format!("{line}\n").as_bytes())
                        .and_then(|()| out.flush())
                    {
                        tracing::warn!(%error, "a metric line could not be written");
                    }
                }
            }
        }
    }
}

/// One metric line as CloudWatch reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct EmfRecord {
    pub timestamp_ms: u64,
    pub namespace: String,
    /// Dimension name to value, for every dimension any set names.
    pub dimensions: BTreeMap<String, String>,
    /// Metric name to (unit, values).
    pub metrics: BTreeMap<String, (Option<String>, Vec<f64>)>,
}

impl EmfRecord {
    /// The sum of a metric's values, 0 when the line does not carry it.
    pub fn total(&self, name: &str) -> f64 {
        self.metrics
            .get(name)
            .map_or(0.0, |(_, values)| values.iter().sum())
    }
}

const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// The rule of the EMF specification a line breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not valid EMF: {0}")]
pub struct EmfViolation(pub String);

/// Parses `line` as CloudWatch's embedded metric format specification reads a log event, and
/// says which rule it breaks if it is not a valid EMF document.
pub fn check_line(line: &str) -> Result<EmfRecord, EmfViolation> {
    check_rules(line).map_err(EmfViolation)
}

fn check_rules(line: &str) -> Result<EmfRecord, String> {
    if line.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "{} bytes, over a log event's {MAX_EVENT_BYTES}",
            line.len()
        ));
    }
    if line.contains('\n') {
        return Err("more than one line".into());
    }
    let root: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("not one JSON object: {e}"))?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no `_aws` object")?;
    let timestamp_ms = aws
        .get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("`_aws.Timestamp` is not a non-negative integer of milliseconds")?;
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("`_aws.CloudWatchMetrics` is not an array")?;
    let [directive] = directives.as_slice() else {
        return Err(format!(
            "{} metric directives; auditkit writes exactly one",
            directives.len()
        ));
    };
    let namespace = directive
        .get("Namespace")
        .and_then(Value::as_str)
        .filter(|n| (1..=255).contains(&n.len()) && n.chars().all(|c| c.is_ascii_graphic()))
        .ok_or("`Namespace` is not 1 to 255 printable ASCII characters")?;
    let mut dimensions = BTreeMap::new();
    for set in directive
        .get("Dimensions")
        .and_then(Value::as_array)
        .ok_or("`Dimensions` is not an array")?
    {
        let set = set
            .as_array()
            .ok_or("a dimension set is not an array of names")?;
        if set.len() > MAX_DIMENSIONS {
            return Err(format!(
                "a dimension set of {}, over {MAX_DIMENSIONS}",
                set.len()
            ));
        }
        for name in set {
            let name = name.as_str().ok_or("a dimension name is not a string")?;
            let value = root
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.trim().is_empty() && v.len() <= 1024 && v.is_ascii())
                .ok_or_else(|| {
                    format!("dimension `{name}` has no ASCII string value at the root")
                })?;
            dimensions.insert(name.to_owned(), value.to_owned());
        }
    }
    let definitions = directive
        .get("Metrics")
        .and_then(Value::as_array)
        .ok_or("`Metrics` is not an array")?;
    if definitions.len() > MAX_METRICS {
        return Err(format!(
            "{} metric definitions, over {MAX_METRICS}",
            definitions.len()
        ));
    }
    let mut metrics = BTreeMap::new();
    for definition in definitions {
        let definition = definition
            .as_object()
            .ok_or("a metric definition is not an object")?;
        if let Some(other) = definition
            .keys()
            .find(|k| !matches!(k.as_str(), "Name" | "Unit" | "StorageResolution"))
        {
            return Err(format!(
                "a metric definition has the unknown member `{other}`"
            ));
        }
        let name = definition
            .get("Name")
            .and_then(Value::as_str)
            .filter(|n| (1..=1024).contains(&n.len()))
            .ok_or("a metric `Name` is not a string of 1 to 1024 characters")?;
        let unit = match definition.get("Unit") {
            None => None,
            Some(Value::String(u)) if UNITS.contains(&u.as_str()) => Some(u.clone()),
            Some(other) => return Err(format!("metric `{name}` has the invalid unit {other}")),
        };
        match definition.get("StorageResolution") {
            None => {}
            Some(r) if r.as_u64() == Some(1) || r.as_u64() == Some(60) => {}
            Some(other) => {
                return Err(format!(
                    "metric `{name}` has the storage resolution {other}, not 1 or 60"
                ));
            }
        }
        if dimensions.contains_key(name) {
            return Err(format!("`{name}` is both a dimension and a metric"));
        }
        let values = match root.get(name) {
            Some(Value::Number(n)) => vec![n.as_f64().ok_or("a value is not a number")?],
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_VALUES => items
                .iter()
                .map(|v| v.as_f64())
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| format!("metric `{name}` has a value that is not a number"))?,
            Some(Value::Array(items)) => {
                return Err(format!(
                    "metric `{name}` has {} values, not 1 to {MAX_VALUES}",
                    items.len()
                ));
            }
            _ => return Err(format!("metric `{name}` has no number at the root")),
        };
        if metrics.insert(name.to_owned(), (unit, values)).is_some() {
            return Err(format!("metric `{name}` is defined twice"));
        }
    }
    Ok(EmfRecord {
        timestamp_ms,
        namespace: namespace.to_owned(),
        dimensions,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_one_valid_line_with_totals_summed_and_distributions_kept() {
        let mut set = MetricSet::new("log-downloader");
        set.count("FilesCopied", 1);
        set.count("FilesCopied", 2);
        set.add("BytesCopied", Unit::Bytes, 10.0);
        set.add("BytesCopied", Unit::Bytes, 5.0);
        set.add("CopyLagSeconds", Unit::Seconds, 3.5);
        set.add("CopyLagSeconds", Unit::Seconds, 7.0);
        set.count("LossyCopies", 0);
        let lines = set.lines(1_700_000_000_000);
        assert_eq!(lines.len(), 1);
        let record = check_line(&lines[0]).unwrap();
        assert_eq!(record.namespace, "auditkit");
        assert_eq!(record.timestamp_ms, 1_700_000_000_000);
        assert_eq!(record.dimensions["function"], "log-downloader");
        assert_eq!(
            record.metrics["FilesCopied"],
            (Some("Count".into()), vec![3.0])
        );
        assert_eq!(
            record.metrics["BytesCopied"],
            (Some("Bytes".into()), vec![15.0])
        );
        assert_eq!(
            record.metrics["CopyLagSeconds"],
            (Some("Seconds".into()), vec![3.5, 7.0])
        );
        assert_eq!(record.total("LossyCopies"), 0.0);
    }

    #[test]
    fn an_empty_set_writes_nothing_and_non_finite_values_are_dropped() {
        assert!(MetricSet::new("f").lines(1).is_empty());
        let mut set = MetricSet::new("f");
        set.add("Lag", Unit::Seconds, f64::NAN);
        set.add("Lag", Unit::Seconds, 1.0);
        assert_eq!(set.values("Lag"), Some(&[1.0][..]));
    }

    #[test]
    fn more_than_the_specification_allows_in_one_line_is_split_across_valid_lines() {
        let names: Vec<&'static str> = (0..150)
            .map(|i| &*Box::leak(format!("M{i}").into_boxed_str()))
            .collect();
        let mut set = MetricSet::new("f");
        for name in &names {
            set.count(name, 1);
        }
        for i in 0..250 {
            set.add("Lag", Unit::Milliseconds, i as f64);
        }
        let lines = set.lines(5);
        let records: Vec<EmfRecord> = lines.iter().map(|l| check_line(l).unwrap()).collect();
        assert_eq!(
            records.len(),
            4,
            "151 metrics in round one, Lag in two more"
        );
        let lag: Vec<f64> = records
            .iter()
            .filter_map(|r| r.metrics.get("Lag"))
            .flat_map(|(_, v)| v.clone())
            .collect();
        assert_eq!(lag, (0..250).map(f64::from).collect::<Vec<_>>());
        let counted: f64 = records
            .iter()
            .map(|r| names.iter().map(|n| r.total(n)).sum::<f64>())
            .sum();
        assert_eq!(counted, 150.0);
    }

    #[test]
    fn the_checker_names_the_rule_a_line_breaks() {
        let valid = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"auditkit","Dimensions":[["function"]],"Metrics":[{"Name":"X","Unit":"Count"}]}]},"function":"f","X":1}"#;
        assert!(check_line(valid).is_ok());
        let broken = |from: &str, to: &str| check_line(&valid.replace(from, to)).unwrap_err().0;
        assert!(broken(r#""_aws""#, r#""aws""#).contains("_aws"));
        assert!(broken(r#""Timestamp":1"#, r#""Timestamp":"1""#).contains("Timestamp"));
        assert!(broken(r#""Unit":"Count""#, r#""Unit":"Counts""#).contains("unit"));
        assert!(broken(r#""function":"f""#, r#""function":7"#).contains("dimension"));
        assert!(broken(r#""X":1}"#, r#""X":"1"}"#).contains("no number"));
        assert!(broken(r#""X":1}"#, r#""Y":1}"#).contains("no number"));
        assert!(broken(r#""Namespace":"auditkit""#, r#""Namespace":"""#).contains("Namespace"));
        assert!(
            broken(
                r#""Unit":"Count""#,
                r#""Unit":"Count","StorageResolution":5"#
            )
            .contains("storage resolution")
        );
        assert!(check_line("not json").is_err());
    }

    #[test]
    fn captured_lines_are_what_publish_would_print() {
        let out = MetricsOut::capture();
        let mut set = MetricSet::new("table-updater");
        set.count("UpdatesApplied", 1);
        out.publish(&set);
        out.publish(&MetricSet::new("table-updater"));
        let lines = out.captured();
        assert_eq!(lines.len(), 1);
        assert_eq!(check_line(&lines[0]).unwrap().total("UpdatesApplied"), 1.0);
        assert!(MetricsOut::stdout().captured().is_empty());
    }
}
