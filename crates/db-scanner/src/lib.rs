//! `db-scanner`: the first step of the Aurora audit-log backup.
//!
//! An EventBridge schedule invokes it (or an operator, with `{"instances": ["id", ...]}` to scan
//! only those). It lists the account's DB instances with `DescribeDBInstances`, following every
//! page, keeps those whose engine is configured (`ENGINES`), that are not excluded
//! (`EXCLUDE_INSTANCES`) and that are `available`, and queues one [`InstanceToScan`] message per
//! kept instance on `QUEUE_URL` for `log-detector`.
//!
//! Contract: the invocation succeeds only when every kept instance was accepted by SQS. Failed
//! batch entries are resent with backoff; any entry still failing fails the invocation, so
//! EventBridge retries it and the failure shows in metrics (a retry may queue an instance
//! twice, which the detector's conditional writes make harmless). A malformed manual event, or
//! one naming an instance that does not exist, is rejected before anything is queued.
//!
//! This file holds the pure decisions (event parsing, filtering, message building, batching);
//! [`rds`] and [`queue`] are the adapters over the SDK clients and [`handler`] joins them.

pub mod handler;
pub mod queue;
pub mod rds;

use audit_core::messages::{INSTANCE_TO_SCAN_VERSION, InstanceToScan};
use audit_core::{Classify, ConfigError, Env};
use serde::Serialize;
use std::collections::BTreeSet;

/// Engines whose audit logs the pipeline knows how to back up.
pub const SUPPORTED_ENGINES: &[&str] = &[
    "aurora-mysql",
    "aurora-postgresql",
    "mysql",
    "mariadb",
    "postgres",
];

/// `SendMessageBatch` takes at most ten entries.
pub const SQS_BATCH_LIMIT: usize = 10;

/// `DescribeDBInstances` accepts at most this many values in one filter.
pub const DESCRIBE_FILTER_LIMIT: usize = 100;

/// Every environment variable the function reads besides the `AWS_*` ones (the stack's
/// template must set these and no others; a test checks the loader against this list).
pub const ENVIRONMENT: &[&str] = &[
    "QUEUE_URL",
    "ENGINES",
    "EXCLUDE_INSTANCES",
    "DESCRIBE_PAGE_SIZE",
    "SEND_MAX_ATTEMPTS",
    "LOG_LEVEL",
    "RUST_LOG",
];

/// Every IAM action the code calls (`SendMessageBatch` is authorised as `sqs:SendMessage`).
pub const IAM_ACTIONS: &[&str] = &["rds:DescribeDBInstances", "sqs:SendMessage"];

/// The function's settings, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub queue_url: String,
    pub engines: Vec<String>,
    pub excluded_instances: BTreeSet<String>,
    /// `MaxRecords` per `DescribeDBInstances` page (the API allows 20 to 100).
    pub page_size: i32,
    /// Attempts per message before the invocation fails.
    pub send_attempts: u32,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let queue_url = env.required("QUEUE_URL", "the URL of the SQS scan queue")?;
        if !(queue_url.starts_with("https://") || queue_url.starts_with("http://")) {
            return Err(ConfigError::invalid(
                "QUEUE_URL",
                &queue_url,
                "the URL of the SQS scan queue (https://sqs.<region>.amazonaws.com/<account>/<name>)",
            ));
        }
        let excluded_instances = env
            .list("EXCLUDE_INSTANCES")
            .into_iter()
            .map(|id| {
                normalise_identifier(&id).ok_or_else(|| {
                    ConfigError::invalid(
                        "EXCLUDE_INSTANCES",
                        env.get("EXCLUDE_INSTANCES").unwrap_or_default(),
                        "a comma-separated list of DB instance identifiers",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Config {
            queue_url,
            engines: env.list_of("ENGINES", SUPPORTED_ENGINES, &["aurora-mysql"])?,
            excluded_instances,
            page_size: env.int_in_range("DESCRIBE_PAGE_SIZE", 100, 20..=100)?,
            send_attempts: env.int_in_range("SEND_MAX_ATTEMPTS", 5, 1..=10)?,
        })
    }
}

/// What triggered this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanRequest {
    /// The schedule (or an empty manual invocation): every instance in the account.
    All,
    /// A manual invocation: only these instances (normalised, de-duplicated, in order).
    Only(Vec<String>),
}

/// Errors of one invocation.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("invalid event: {field}: {problem}")]
    InvalidEvent { field: String, problem: String },
    #[error("DescribeDBInstances failed: {message}")]
    Describe { message: String, retryable: bool },
    #[error("{failed} of {total} instances could not be queued: {details}")]
    Queue {
        failed: usize,
        total: usize,
        details: String,
        retryable: bool,
    },
}

impl ScanError {
    fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ScanError::InvalidEvent {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl Classify for ScanError {
    fn code(&self) -> &'static str {
        match self {
            ScanError::InvalidEvent { .. } => "InvalidEvent",
            ScanError::Describe { .. } => "DescribeDBInstancesFailed",
            ScanError::Queue { .. } => "QueueSendFailed",
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ScanError::InvalidEvent { .. } => false,
            ScanError::Describe { retryable, .. } | ScanError::Queue { retryable, .. } => {
                *retryable
            }
        }
    }
}

/// Reads the invocation payload: an EventBridge event (any rule or schedule), an empty
/// object, or `{"instances": [...]}`. Anything else is rejected with the offending field,
/// so a typo in a manual run cannot silently turn into a full scan.
pub fn parse_event(payload: &serde_json::Value) -> Result<ScanRequest, ScanError> {
    let object = payload
        .as_object()
        .ok_or_else(|| ScanError::invalid("event", "expected a JSON object"))?;
    if object.contains_key("detail-type") {
        return Ok(ScanRequest::All); // EventBridge: the schedule carries no selection
    }
    if let Some(unknown) = object.keys().find(|k| k.as_str() != "instances") {
        return Err(ScanError::invalid(
            unknown.as_str(),
            "unknown field; a manual run takes only \"instances\"",
        ));
    }
    let Some(instances) = object.get("instances") else {
        return Ok(ScanRequest::All);
    };
    let list = instances.as_array().ok_or_else(|| {
        ScanError::invalid("instances", "expected an array of DB instance identifiers")
    })?;
    if list.is_empty() {
        return Err(ScanError::invalid(
            "instances",
            "empty; omit the field to scan every instance",
        ));
    }
    let mut selected: Vec<String> = Vec::with_capacity(list.len());
    for (index, item) in list.iter().enumerate() {
        let field = format!("instances[{index}]");
        let raw = item
            .as_str()
            .ok_or_else(|| ScanError::invalid(&field, "expected a string"))?;
        let id = normalise_identifier(raw).ok_or_else(|| {
            ScanError::invalid(
                &field,
                format!("{raw:?} is not a DB instance identifier (1-63 letters, digits or hyphens, starting with a letter)"),
            )
        })?;
        if !selected.contains(&id) {
            selected.push(id);
        }
    }
    Ok(ScanRequest::Only(selected))
}

/// The lower-cased identifier when `raw` follows RDS's naming rules: 1 to 63 letters,
/// digits or hyphens, starting with a letter, no trailing or double hyphen. RDS stores
/// identifiers in lower case.
pub fn normalise_identifier(raw: &str) -> Option<String> {
    let id = raw.trim().to_ascii_lowercase();
    let valid = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    valid.then_some(id)
}

/// The fields of a described instance the scan decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInstance {
    pub instance_id: String,
    pub cluster_id: Option<String>,
    pub engine: String,
    pub status: String,
}

/// What the scan does with one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Queue,
    SkipEngine,
    SkipExcluded,
    SkipNotAvailable,
}

/// The filter, checked in this order: engine, exclusion list, status. An instance counts once,
/// under the first rule that skips it.
pub fn verdict(config: &Config, instance: &DbInstance) -> Verdict {
    if !config.engines.contains(&instance.engine) {
        Verdict::SkipEngine
    } else if config
        .excluded_instances
        .contains(&instance.instance_id.to_ascii_lowercase())
    {
        Verdict::SkipExcluded
    } else if instance.status != "available" {
        Verdict::SkipNotAvailable
    } else {
        Verdict::Queue
    }
}

/// The invocation's response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanSummary {
    pub found: usize,
    pub queued: usize,
    pub skipped_by_engine: usize,
    pub skipped_excluded: usize,
    pub skipped_not_available: usize,
    /// The instances queued, in the order described.
    pub queued_instances: Vec<String>,
}

/// The scan's decisions: the messages to send and the counts to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPlan {
    pub messages: Vec<InstanceToScan>,
    pub summary: ScanSummary,
}

/// Applies the filter to every described instance and builds one message per kept instance.
/// `summary.queued` stays 0 until the queue has accepted the messages.
pub fn plan(config: &Config, instances: &[DbInstance], scanned_at: &str) -> ScanPlan {
    let mut summary = ScanSummary {
        found: instances.len(),
        ..ScanSummary::default()
    };
    let mut messages = Vec::new();
    for instance in instances {
        match verdict(config, instance) {
            Verdict::SkipEngine => summary.skipped_by_engine += 1,
            Verdict::SkipExcluded => summary.skipped_excluded += 1,
            Verdict::SkipNotAvailable => summary.skipped_not_available += 1,
            Verdict::Queue => messages.push(InstanceToScan {
                version: INSTANCE_TO_SCAN_VERSION,
                instance_id: instance.instance_id.clone(),
                cluster_id: instance.cluster_id.clone(),
                engine: instance.engine.clone(),
                scanned_at: scanned_at.to_owned(),
            }),
        }
    }
    ScanPlan { messages, summary }
}

/// Requested instances that `DescribeDBInstances` did not return.
pub fn missing_instances(requested: &[String], described: &[DbInstance]) -> Vec<String> {
    requested
        .iter()
        .filter(|id| {
            !described
                .iter()
                .any(|d| d.instance_id.eq_ignore_ascii_case(id))
        })
        .cloned()
        .collect()
}

/// An SQS batch entry: the instance identifier doubles as the entry id (it is unique within a
/// scan and uses only the characters SQS allows), so a failed entry names its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: String,
    pub body: String,
}

pub fn queue_entries(messages: &[InstanceToScan]) -> Vec<QueueEntry> {
    messages
        .iter()
        .map(|m| QueueEntry {
            id: m.instance_id.clone(),
            body: serde_json::to_string(m).expect("InstanceToScan serialises"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_declared_environment_is_exactly_what_the_loader_reads() {
        let env = Env::from_pairs([("QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/q")]);
        let read = audit_core::environment_read(&env, Config::from_env).unwrap();
        let declared: std::collections::BTreeSet<String> =
            ENVIRONMENT.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(read, declared);
    }

    fn config() -> Config {
        Config::from_env(&Env::from_pairs([
            (
                "QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/123456789012/scan",
            ),
            ("ENGINES", "aurora-mysql,postgres"),
            ("EXCLUDE_INSTANCES", "Legacy-1"),
        ]))
        .unwrap()
    }

    fn instance(id: &str, engine: &str, status: &str) -> DbInstance {
        DbInstance {
            instance_id: id.into(),
            cluster_id: engine.starts_with("aurora").then(|| "cluster-a".to_owned()),
            engine: engine.into(),
            status: status.into(),
        }
    }

    #[test]
    fn config_defaults_and_each_required_or_invalid_variable_is_named() {
        let c = Config::from_env(&Env::from_pairs([(
            "QUEUE_URL",
            "http://127.0.0.1:5000/1/q",
        )]))
        .unwrap();
        assert_eq!(c.engines, ["aurora-mysql"]);
        assert!(c.excluded_instances.is_empty());
        assert_eq!((c.page_size, c.send_attempts), (100, 5));

        let missing = Config::from_env(&Env::default()).unwrap_err();
        assert_eq!(missing.variable(), "QUEUE_URL");
        for (var, value) in [
            ("QUEUE_URL", "scan-queue"),
            ("ENGINES", "aurora-mysql,oracle-ee"),
            ("EXCLUDE_INSTANCES", "ok-1,not_valid!"),
            ("DESCRIBE_PAGE_SIZE", "5"),
            ("SEND_MAX_ATTEMPTS", "many"),
        ] {
            let mut pairs = vec![("QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/q")];
            pairs.retain(|(k, _)| *k != var);
            pairs.push((var, value));
            let err = Config::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert_eq!(err.variable(), var, "{err}");
        }
    }

    #[test]
    fn filter_checks_engine_then_exclusion_then_status() {
        let c = config();
        assert_eq!(
            verdict(&c, &instance("a-1", "aurora-mysql", "available")),
            Verdict::Queue
        );
        assert_eq!(
            verdict(&c, &instance("p-1", "postgres", "available")),
            Verdict::Queue
        );
        assert_eq!(
            verdict(&c, &instance("m-1", "mysql", "available")),
            Verdict::SkipEngine
        );
        // Excluded by a case-insensitive match; an excluded instance of another engine counts as engine.
        assert_eq!(
            verdict(&c, &instance("legacy-1", "aurora-mysql", "stopped")),
            Verdict::SkipExcluded
        );
        assert_eq!(
            verdict(&c, &instance("legacy-1", "mariadb", "available")),
            Verdict::SkipEngine
        );
        assert_eq!(
            verdict(&c, &instance("a-2", "aurora-mysql", "modifying")),
            Verdict::SkipNotAvailable
        );
        assert_eq!(
            verdict(&c, &instance("a-3", "aurora-mysql", "Available")),
            Verdict::SkipNotAvailable
        );
    }

    #[test]
    fn plan_counts_every_instance_once_and_carries_cluster_and_engine() {
        let instances = [
            instance("a-1", "aurora-mysql", "available"),
            instance("a-2", "aurora-mysql", "available"),
            instance("legacy-1", "aurora-mysql", "available"),
            instance("m-1", "mysql", "available"),
            instance("a-3", "aurora-mysql", "stopped"),
            instance("p-1", "postgres", "available"),
        ];
        let plan = plan(&config(), &instances, "2026-11-22T10:00:00Z");
        assert_eq!(
            plan.summary,
            ScanSummary {
                found: 6,
                queued: 0,
                skipped_by_engine: 1,
                skipped_excluded: 1,
                skipped_not_available: 1,
                queued_instances: vec![],
            }
        );
        let ids: Vec<_> = plan
            .messages
            .iter()
            .map(|m| m.instance_id.as_str())
            .collect();
        assert_eq!(ids, ["a-1", "a-2", "p-1"]);
        assert_eq!(plan.messages[0].cluster_id.as_deref(), Some("cluster-a"));
        assert_eq!(plan.messages[2].cluster_id, None);
        assert_eq!(plan.messages[2].engine, "postgres");
    }

    #[test]
    fn queue_entries_are_the_versioned_json_message_keyed_by_instance() {
        let plan = plan(
            &config(),
            &[instance("a-1", "aurora-mysql", "available")],
            "2026-11-22T10:00:00Z",
        );
        let entries = queue_entries(&plan.messages);
        assert_eq!(entries[0].id, "a-1");
        let body: serde_json::Value = serde_json::from_str(&entries[0].body).unwrap();
        assert_eq!(
            body,
            json!({"version": 1, "instance_id": "a-1", "cluster_id": "cluster-a",
                   "engine": "aurora-mysql", "scanned_at": "2026-11-22T10:00:00Z"})
        );
    }

    #[test]
    fn scheduled_and_empty_events_scan_everything() {
        let scheduled = json!({
            "version": "0", "id": "53dc4d37", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-22T10:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/scan"], "detail": {}
        });
        assert_eq!(parse_event(&scheduled).unwrap(), ScanRequest::All);
        assert_eq!(parse_event(&json!({})).unwrap(), ScanRequest::All);
    }

    #[test]
    fn manual_events_are_normalised_and_deduplicated() {
        let event = json!({"instances": ["Prod-1", "prod-2", "prod-1"]});
        assert_eq!(
            parse_event(&event).unwrap(),
            ScanRequest::Only(vec!["prod-1".into(), "prod-2".into()])
        );
    }

    #[test]
    fn bad_manual_events_name_the_field() {
        let cases = [
            (json!([]), "event"),
            (json!({"instance": ["a"]}), "instance"),
            (json!({"instances": "prod-1"}), "instances"),
            (json!({"instances": []}), "instances"),
            (json!({"instances": ["ok", 7]}), "instances[1]"),
            (json!({"instances": ["ok", "bad_name"]}), "instances[1]"),
            (json!({"instances": ["1abc"]}), "instances[0]"),
        ];
        for (event, field) in cases {
            match parse_event(&event) {
                Err(ScanError::InvalidEvent { field: f, .. }) => assert_eq!(f, field, "{event}"),
                other => panic!("{event} gave {other:?}"),
            }
        }
    }

    #[test]
    fn identifiers_follow_the_rds_rules() {
        assert_eq!(
            normalise_identifier(" Aurora-1 ").as_deref(),
            Some("aurora-1")
        );
        for bad in ["", "-a", "a-", "a--b", "a_b", "9a", &"a".repeat(64)] {
            assert_eq!(normalise_identifier(bad), None, "{bad}");
        }
        assert!(normalise_identifier(&"a".repeat(63)).is_some());
    }

    #[test]
    fn missing_instances_are_reported_by_name() {
        let described = [instance("a-1", "aurora-mysql", "available")];
        let requested = vec!["a-1".to_owned(), "gone-1".to_owned()];
        assert_eq!(missing_instances(&requested, &described), ["gone-1"]);
    }
}
