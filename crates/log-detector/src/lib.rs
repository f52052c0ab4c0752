//! `log-detector`: the second step of the Aurora audit-log backup (SQS → tracking table).
//!
//! Each SQS message (an [`InstanceToScan`] from `db-scanner`) names one DB instance. The detector
//! lists its log files (`DescribeDBLogFiles`, every page, only the configured `LOG_TYPES` and
//! files written within `LOOKBACK`), compares each with its row in `TRACKING_TABLE`, and decides
//! ([`decide`]) whether a copy is due:
//! - a new file that has gone quiet (no write for `QUIET_PERIOD`);
//! - a changed file that has gone quiet;
//! - an active file whose last copy (or first sighting) is older than `ACTIVE_COPY_INTERVAL`, so
//!   an active file is not copied on every poll, yet nothing ages out of the instance's ~24 h
//!   local retention uncopied;
//! - an ordered copy that was never recorded within `STALLED_COPY_AFTER` (the downloader gave up).
//!
//! A copy is ordered by raising the row's `due_generation` with a conditional write on the
//! generation the detector read: of two detectors with the same view only one wins, and a stale
//! view never overwrites a newer one. The DynamoDB stream of that write is what `log-downloader`
//! acts on.
//!
//! Contract: partial batch failures by message id. An instance that no longer exists is logged
//! and its message consumed; throttling and other errors are reported so SQS redelivers the
//! message (and, past its receive limit, parks it on the dead-letter queue).

pub mod handler;
pub mod rds;
pub mod table;

use audit_core::messages::{INSTANCE_TO_SCAN_VERSION, InstanceToScan};
use audit_core::tracking::{CopyState, TrackedLogFile};
use audit_core::{Classify, ConfigError, Env};
use std::time::Duration;

/// Every environment variable the function reads besides the `AWS_*` ones (the stack's
/// template must set these and no others; a test checks the loader against this list).
pub const ENVIRONMENT: &[&str] = &[
    "TRACKING_TABLE",
    "LOG_TYPES",
    "TTL_DAYS",
    "LOOKBACK",
    "QUIET_PERIOD",
    "ACTIVE_COPY_INTERVAL",
    "STALLED_COPY_AFTER",
    "CONCURRENCY",
    "LOG_LEVEL",
    "RUST_LOG",
];

/// Every IAM action the code calls.
/// The metrics each invocation writes (EMF, namespace `auditkit`, `function=log-detector`).
pub const METRICS: audit_core::metrics::Declared = {
    use audit_core::metrics::Unit::Count;
    &[
        ("InstancesScanned", Count),
        ("FilesListed", Count),
        ("CopiesOrdered", Count),
        ("StalledOrders", Count),
        ("LostRaces", Count),
        ("InstancesGone", Count),
        ("ScanFailures", Count),
    ]
};

/// One invocation's metrics from each message's outcome. `StalledOrders` counts copies
/// ordered again because the first order was never recorded within `STALLED_COPY_AFTER`: the
/// downloader is failing or not running.
pub fn invocation_metrics<'a, E: 'a>(
    outcomes: impl Iterator<Item = &'a Result<InstanceOutcome, E>>,
) -> audit_core::metrics::MetricSet {
    let mut set = audit_core::metrics::MetricSet::zeroed("log-detector", METRICS);
    for outcome in outcomes {
        match outcome {
            Ok(o) => {
                set.count("InstancesScanned", 1);
                set.count("FilesListed", o.listed as u64);
                set.count("CopiesOrdered", o.ordered as u64);
                set.count("StalledOrders", o.reordered_stalled as u64);
                set.count("LostRaces", o.lost_races as u64);
                set.count("InstancesGone", u64::from(o.instance_gone));
            }
            Err(_) => set.count("ScanFailures", 1),
        }
    }
    set
}

pub const IAM_ACTIONS: &[&str] = &[
    "rds:DescribeDBLogFiles",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
];

/// What the SQS event source mapping needs on the function's role to deliver the queue.
pub const EVENT_SOURCE_ACTIONS: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

/// Log types and the directory prefix of their files in `DescribeDBLogFiles`.
pub const LOG_TYPES: &[(&str, &str)] = &[
    ("audit", "audit/"),
    ("error", "error/"),
    ("slowquery", "slowquery/"),
    ("general", "general/"),
];

/// The function's settings, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub tracking_table: String,
    /// File name prefixes of the configured log types (`audit/`, ...).
    pub prefixes: Vec<String>,
    pub policy: Policy,
    /// Messages of one batch handled at once.
    pub concurrency: usize,
}

/// The timing rules of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub lookback: Duration,
    pub quiet_period: Duration,
    pub active_copy_interval: Duration,
    pub stalled_copy_after: Duration,
    pub ttl: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let names: Vec<&str> = LOG_TYPES.iter().map(|(name, _)| *name).collect();
        let types = env.list_of("LOG_TYPES", &names, &["audit"])?;
        let prefixes = LOG_TYPES
            .iter()
            .filter(|(name, _)| types.iter().any(|t| t == name))
            .map(|(_, prefix)| (*prefix).to_owned())
            .collect();
        let ttl_days: u64 = env.int_in_range("TTL_DAYS", 30, 1..=3650)?;
        let policy = Policy {
            lookback: env.duration_or("LOOKBACK", Duration::from_secs(24 * 3600))?,
            quiet_period: env.duration_or("QUIET_PERIOD", Duration::from_secs(300))?,
            active_copy_interval: env
                .duration_or("ACTIVE_COPY_INTERVAL", Duration::from_secs(3600))?,
            stalled_copy_after: env.duration_or("STALLED_COPY_AFTER", Duration::from_secs(3600))?,
            ttl: Duration::from_secs(ttl_days * 86_400),
        };
        if policy.active_copy_interval >= Duration::from_secs(20 * 3600) {
            return Err(ConfigError::invalid(
                "ACTIVE_COPY_INTERVAL",
                env.get("ACTIVE_COPY_INTERVAL").unwrap_or_default(),
                "less than 20h: RDS deletes local log files after about 24 hours",
            ));
        }
        Ok(Config {
            tracking_table: env
                .required("TRACKING_TABLE", "the name of the DynamoDB tracking table")?,
            prefixes,
            policy,
            concurrency: env.int_in_range("CONCURRENCY", 4, 1..=10)?,
        })
    }
}

/// One entry of `DescribeDBLogFiles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedLogFile {
    pub name: String,
    pub size: i64,
    /// Epoch milliseconds.
    pub last_written: i64,
}

/// Why a copy was ordered (stored in `due_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueReason {
    NewQuiet,
    ChangedQuiet,
    ActiveInterval,
    Stalled,
}

impl DueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DueReason::NewQuiet => "new-quiet",
            DueReason::ChangedQuiet => "changed-quiet",
            DueReason::ActiveInterval => "active-interval",
            DueReason::Stalled => "stalled-copy",
        }
    }
}

/// What to write for one listed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The row already says all there is to say.
    Unchanged,
    /// Record the new size and time (creating the row if needed); no copy yet.
    Observe,
    /// Order a copy of the current version.
    OrderCopy(DueReason),
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The decision for one listed file given its tracking row (`None`: never seen).
pub fn decide(
    file: &ListedLogFile,
    row: Option<&TrackedLogFile>,
    policy: &Policy,
    now_ms: i64,
) -> Action {
    let quiet = now_ms - file.last_written >= ms(policy.quiet_period);
    let Some(row) = row else {
        return if quiet {
            Action::OrderCopy(DueReason::NewQuiet)
        } else {
            Action::Observe
        };
    };
    let observed_differs = (row.size, row.last_written) != (file.size, file.last_written);
    let observe_if_needed = if observed_differs {
        Action::Observe
    } else {
        Action::Unchanged
    };

    if row.state == CopyState::Due {
        // A copy is in flight: never order a second one, unless the first was abandoned.
        let stalled = row
            .due_at
            .is_some_and(|at| now_ms - at >= ms(policy.stalled_copy_after));
        return if stalled {
            Action::OrderCopy(DueReason::Stalled)
        } else {
            observe_if_needed
        };
    }
    let ordered_version = (row.due_size, row.due_last_written);
    if row.due_generation > 0 && ordered_version == (Some(file.size), Some(file.last_written)) {
        return observe_if_needed; // this exact version was already copied
    }
    if quiet {
        let reason = if row.due_generation == 0 {
            DueReason::NewQuiet
        } else {
            DueReason::ChangedQuiet
        };
        return Action::OrderCopy(reason);
    }
    let last_copy = row.copied_at.unwrap_or(row.first_seen);
    if now_ms - last_copy >= ms(policy.active_copy_interval) {
        Action::OrderCopy(DueReason::ActiveInterval)
    } else {
        observe_if_needed
    }
}

/// Whether a listed file belongs to a configured log type.
pub fn wanted(config: &Config, name: &str) -> bool {
    config.prefixes.iter().any(|p| name.starts_with(p.as_str()))
}

/// The `FilenameContains` filter: the prefix when only one log type is configured (the
/// listing then carries only those files); otherwise none, and [`wanted`] filters.
pub fn filename_filter(config: &Config) -> Option<&str> {
    match config.prefixes.as_slice() {
        [only] => Some(only.as_str()),
        _ => None,
    }
}

/// Errors of one message.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("message body is not a scan request: {0}")]
    BadMessage(String),
    #[error("DescribeDBLogFiles failed for {instance}: {message}")]
    Describe {
        instance: String,
        message: String,
        retryable: bool,
    },
    #[error("tracking table {operation} failed: {message}")]
    Table {
        operation: &'static str,
        message: String,
        retryable: bool,
    },
}

impl Classify for DetectError {
    fn code(&self) -> &'static str {
        match self {
            DetectError::BadMessage(_) => "BadMessage",
            DetectError::Describe { .. } => "DescribeDBLogFilesFailed",
            DetectError::Table { .. } => "TrackingTableFailed",
        }
    }
    fn retryable(&self) -> bool {
        match self {
            DetectError::BadMessage(_) => false,
            DetectError::Describe { retryable, .. } | DetectError::Table { retryable, .. } => {
                *retryable
            }
        }
    }
}

/// Reads a scan-queue message body.
pub fn parse_message(body: Option<&str>) -> Result<InstanceToScan, DetectError> {
    let body = body.ok_or_else(|| DetectError::BadMessage("empty body".into()))?;
    let message: InstanceToScan =
        serde_json::from_str(body).map_err(|e| DetectError::BadMessage(e.to_string()))?;
    if message.version > INSTANCE_TO_SCAN_VERSION {
        return Err(DetectError::BadMessage(format!(
            "version {} is newer than this detector understands ({INSTANCE_TO_SCAN_VERSION})",
            message.version
        )));
    }
    Ok(message)
}

/// What one message did, for the response log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct InstanceOutcome {
    pub instance_id: String,
    pub listed: usize,
    pub ordered: usize,
    /// ... of which re-orders of a copy ordered long ago and never recorded.
    pub reordered_stalled: usize,
    pub observed: usize,
    pub unchanged: usize,
    /// Writes another detector made first (their view won; nothing to do).
    pub lost_races: usize,
    pub instance_gone: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invocations_metrics_sum_its_messages_and_count_failed_ones() {
        let ok = InstanceOutcome {
            listed: 4,
            ordered: 2,
            reordered_stalled: 1,
            ..InstanceOutcome::default()
        };
        let gone = InstanceOutcome {
            instance_gone: true,
            ..InstanceOutcome::default()
        };
        let results: Vec<Result<InstanceOutcome, ()>> =
            vec![Ok(ok.clone()), Ok(ok), Ok(gone), Err(())];
        let lines = invocation_metrics(results.iter()).lines(1);
        let r = audit_core::metrics::check_line(&lines[0]).unwrap();
        assert_eq!(r.dimensions["function"], "log-detector");
        let got: Vec<f64> = [
            "InstancesScanned",
            "FilesListed",
            "CopiesOrdered",
            "StalledOrders",
            "InstancesGone",
            "ScanFailures",
            "LostRaces",
        ]
        .iter()
        .map(|n| r.total(n))
        .collect();
        assert_eq!(got, [3.0, 8.0, 4.0, 2.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn the_declared_environment_is_exactly_what_the_loader_reads() {
        let env = Env::from_pairs([("TRACKING_TABLE", "t")]);
        let read = audit_core::environment_read(&env, Config::from_env).unwrap();
        let declared: std::collections::BTreeSet<String> =
            ENVIRONMENT.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(read, declared);
    }

    const MIN: i64 = 60_000;
    const NOW: i64 = 1_800_000_000_000;

    fn policy() -> Policy {
        Policy {
            lookback: Duration::from_secs(24 * 3600),
            quiet_period: Duration::from_secs(300),
            active_copy_interval: Duration::from_secs(3600),
            stalled_copy_after: Duration::from_secs(3600),
            ttl: Duration::from_secs(30 * 86_400),
        }
    }

    fn file(size: i64, written_ago_min: i64) -> ListedLogFile {
        ListedLogFile {
            name: "audit/audit.log.0.2026-11-22-08-30.0".into(),
            size,
            last_written: NOW - written_ago_min * MIN,
        }
    }

    fn row(size: i64, written_ago_min: i64) -> TrackedLogFile {
        TrackedLogFile {
            instance_id: "db-1".into(),
            log_file: "audit/audit.log.0.2026-11-22-08-30.0".into(),
            engine: "aurora-mysql".into(),
            cluster_id: Some("c".into()),
            size,
            last_written: NOW - written_ago_min * MIN,
            first_seen: NOW - 120 * MIN,
            state: CopyState::Observed,
            due_generation: 0,
            due_size: None,
            due_last_written: None,
            due_at: None,
            due_reason: None,
            copied_generation: None,
            copied_size: None,
            copied_last_written: None,
            copied_key: None,
            copied_sha256: None,
            copied_at: None,
            last_copy_error: None,
            last_copy_error_at: None,
            copy_conflict: None,
            expires_at: 0,
        }
    }

    fn copied(mut r: TrackedLogFile, copied_ago_min: i64) -> TrackedLogFile {
        r.state = CopyState::Copied;
        r.due_generation = 1;
        r.due_size = Some(r.size);
        r.due_last_written = Some(r.last_written);
        r.due_at = Some(NOW - copied_ago_min * MIN);
        r.copied_generation = Some(1);
        r.copied_at = Some(NOW - copied_ago_min * MIN);
        r
    }

    #[test]
    fn a_new_file_is_copied_once_it_is_quiet() {
        assert_eq!(
            decide(&file(100, 10), None, &policy(), NOW),
            Action::OrderCopy(DueReason::NewQuiet)
        );
        assert_eq!(decide(&file(100, 1), None, &policy(), NOW), Action::Observe);
    }

    #[test]
    fn an_unchanged_copied_file_is_left_alone() {
        let r = copied(row(100, 30), 20);
        assert_eq!(
            decide(&file(100, 30), Some(&r), &policy(), NOW),
            Action::Unchanged
        );
    }

    #[test]
    fn a_changed_file_is_recopied_once_quiet() {
        let r = copied(row(100, 30), 20);
        assert_eq!(
            decide(&file(250, 10), Some(&r), &policy(), NOW),
            Action::OrderCopy(DueReason::ChangedQuiet)
        );
    }

    #[test]
    fn an_active_file_is_copied_at_most_every_interval() {
        // Written a minute ago, last copied 20 minutes ago: just record the growth.
        let r = copied(row(100, 30), 20);
        assert_eq!(
            decide(&file(300, 1), Some(&r), &policy(), NOW),
            Action::Observe
        );
        // Last copied 61 minutes ago: copy now, though it is still being written.
        let r = copied(row(100, 70), 61);
        assert_eq!(
            decide(&file(300, 1), Some(&r), &policy(), NOW),
            Action::OrderCopy(DueReason::ActiveInterval)
        );
        // Never copied and first seen two hours ago: copy now too.
        assert_eq!(
            decide(&file(300, 1), Some(&row(200, 2)), &policy(), NOW),
            Action::OrderCopy(DueReason::ActiveInterval)
        );
    }

    #[test]
    fn an_in_flight_copy_is_not_ordered_twice_unless_stalled() {
        let mut r = row(100, 30);
        r.state = CopyState::Due;
        r.due_generation = 3;
        r.due_size = Some(100);
        r.due_last_written = Some(r.last_written);
        r.due_at = Some(NOW - 5 * MIN);
        assert_eq!(
            decide(&file(100, 30), Some(&r), &policy(), NOW),
            Action::Unchanged
        );
        assert_eq!(
            decide(&file(180, 10), Some(&r), &policy(), NOW),
            Action::Observe
        );
        r.due_at = Some(NOW - 61 * MIN);
        assert_eq!(
            decide(&file(100, 30), Some(&r), &policy(), NOW),
            Action::OrderCopy(DueReason::Stalled)
        );
    }

    #[test]
    fn a_renamed_file_with_other_bytes_under_the_same_name_is_recopied() {
        // RDS MySQL rename rotation: the name now holds a new, smaller file.
        let r = copied(row(5_000, 90), 80);
        assert_eq!(
            decide(&file(40, 10), Some(&r), &policy(), NOW),
            Action::OrderCopy(DueReason::ChangedQuiet)
        );
    }

    #[test]
    fn configuration_names_each_bad_variable() {
        let ok = Config::from_env(&Env::from_pairs([
            ("TRACKING_TABLE", "t"),
            ("LOG_TYPES", "audit,error"),
        ]))
        .unwrap();
        assert_eq!(ok.prefixes, ["audit/", "error/"]);
        assert_eq!(filename_filter(&ok), None);
        assert!(
            wanted(&ok, "error/mysql-error.log") && !wanted(&ok, "slowquery/mysql-slowquery.log")
        );
        let audit_only = Config::from_env(&Env::from_pairs([("TRACKING_TABLE", "t")])).unwrap();
        assert_eq!(filename_filter(&audit_only), Some("audit/"));

        assert_eq!(
            Config::from_env(&Env::default()).unwrap_err().variable(),
            "TRACKING_TABLE"
        );
        for (var, value) in [
            ("LOG_TYPES", "audit,binlog"),
            ("ACTIVE_COPY_INTERVAL", "23h"),
            ("QUIET_PERIOD", "soon"),
            ("TTL_DAYS", "0"),
            ("LOOKBACK", "1w"),
        ] {
            let err = Config::from_env(&Env::from_pairs([("TRACKING_TABLE", "t"), (var, value)]))
                .unwrap_err();
            assert_eq!(err.variable(), var);
        }
    }

    #[test]
    fn messages_from_a_newer_scanner_are_refused() {
        let ok = r#"{"version":1,"instance_id":"a","cluster_id":null,"engine":"mysql","scanned_at":"x","extra":1}"#;
        assert_eq!(parse_message(Some(ok)).unwrap().instance_id, "a");
        let newer = r#"{"version":2,"instance_id":"a","engine":"mysql","scanned_at":"x"}"#;
        assert!(matches!(
            parse_message(Some(newer)),
            Err(DetectError::BadMessage(_))
        ));
        assert!(matches!(
            parse_message(Some("{")),
            Err(DetectError::BadMessage(_))
        ));
    }
}
