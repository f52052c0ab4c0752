//! `digest-writer`: signed, chained digests of everything auditkit writes (evidence
//! integrity, after the backups, change logs, archives and reports are written).
//!
//! An EventBridge schedule invokes it every hour (or an operator, with `{"window_end": T}`).
//! Each run closes the windows that ended since the chain's head ([`closed_windows`]), lists
//! every object version under the configured evidence locations (`EVIDENCE`, one or more
//! `bucket/prefix`), hashes the stored bytes of each new version (streaming SHA-256, bounded
//! memory), and writes one digest per window (`audit_core::digest`): signed with the KMS key
//! (`SIGNING_KEY_ID`), chained to the previous digest, under `DIGEST_PREFIX` in
//! `DIGEST_BUCKET`, with the signature in the object's metadata and in a `.sig` sidecar. An
//! empty window still gets a digest. Versions that appear in a window already digested (a
//! delayed delivery, a multipart upload whose `LastModified` is its start) go into a backfill
//! digest for that window ([`plan`]). Hourly digests also record, for every RDS log file in
//! the tracking table, whether a backup of its newest version exists, and list as
//! `not_copied` those missing for longer than `COPY_SLO` ([`source_files`]).
//!
//! Contract: the chain has no holes and no forks. A run claims the next sequence number in the
//! head item (DynamoDB, `HEAD_TABLE`) before writing, writes the digest and its sidecar with
//! `If-None-Match: *`, then commits the head; a second run meanwhile finds the claim and
//! writes nothing, and a run that died mid-way is completed (or its claim released) by the
//! next one after `RUN_LEASE`. A digest is written only when its signature verifies with the
//! key's public key. Any failure fails the invocation (EventBridge retries; the stack alarms).
//!
//! This file holds the pure decisions; [`evidence`], [`head`], [`signer`] and [`sources`] are
//! the adapters over S3, DynamoDB, KMS and the tracking table, and [`handler`] joins them.

pub mod evidence;
pub mod handler;
pub mod head;
pub mod signer;
pub mod sources;

use audit_core::digest::{
    DigestKind, DigestedObject, EvidenceDigest, EvidenceLocation, FORMAT, PreviousDigest,
    SigningKeyInfo, SourceCompleteness, SourceFile, SourceStatus, rfc3339,
};
use audit_core::tracking::TrackedLogFile;
use audit_core::{Classify, ConfigError, Env};
use aws_sdk_s3::config::http::HttpResponse as Response;
use aws_sdk_s3::error::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Every environment variable the function reads besides the `AWS_*` ones (the stack's
/// template must set these and no others; a test checks the loader against this list).
pub const ENVIRONMENT: &[&str] = &[
    "DIGEST_BUCKET",
    "DIGEST_PREFIX",
    "EVIDENCE",
    "SIGNING_KEY_ID",
    "HEAD_TABLE",
    "TRACKING_TABLE",
    "BACKUP_BUCKET",
    "COPY_SLO",
    "WINDOW_SECONDS",
    "LATE_LOOKBACK",
    "MAX_WINDOWS_PER_RUN",
    "HASH_CONCURRENCY",
    "RUN_LEASE",
    "LOG_LEVEL",
    "RUST_LOG",
];

/// The metrics each run writes (EMF, namespace `auditkit`, `function=digest-writer`).
pub const METRICS: audit_core::metrics::Declared = {
    use audit_core::metrics::Unit::{Bytes, Count, Seconds};
    &[
        ("DigestRunFailures", Count),
        ("DigestsWritten", Count),
        ("BackfillDigests", Count),
        ("ObjectsHashed", Count),
        ("BytesHashed", Bytes),
        ("NotCopiedFiles", Count),
        ("UnreadableObjects", Count),
        ("ChainHeadAgeSeconds", Seconds),
    ]
};

/// Every IAM action the code calls. `GetObject` with a version id is `s3:GetObjectVersion`;
/// `ListObjectVersions` is `s3:ListBucketVersions`; `ListObjectsV2` and `HeadObject` on a
/// missing key need `s3:ListBucket` to answer 404. `kms:GetPublicKey` gives the fingerprint
/// recorded in each digest and lets the writer verify a signature before storing it.
pub const IAM_ACTIONS: &[&str] = &[
    "s3:ListBucketVersions",
    "s3:ListBucket",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "kms:Sign",
    "kms:GetPublicKey",
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:Scan",
];

/// The function's settings, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub digest_bucket: String,
    /// Ends with `/` (or is empty).
    pub digest_prefix: String,
    pub evidence: Vec<EvidenceLocation>,
    pub signing_key_id: String,
    pub head_table: String,
    /// The log-file tracking table and the bucket its backups go to: completeness is recorded
    /// only when both are set.
    pub tracking: Option<(String, String)>,
    pub copy_slo: Duration,
    pub window: Duration,
    pub late_lookback: Duration,
    pub max_windows: usize,
    pub hash_concurrency: usize,
    pub run_lease: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let digest_bucket = env.required("DIGEST_BUCKET", "the bucket digests are written to")?;
        if EvidenceLocation::parse(&digest_bucket).is_none_or(|l| !l.prefix.is_empty()) {
            return Err(ConfigError::invalid(
                "DIGEST_BUCKET",
                &digest_bucket,
                "an S3 bucket name",
            ));
        }
        let digest_prefix = audit_core::aws::s3_key_prefix(
            env.get("DIGEST_PREFIX")
                .unwrap_or(audit_core::digest::DEFAULT_PREFIX),
        );
        let evidence_expected =
            "a comma-separated list of bucket/prefix locations (e.g. backups/rds-logs/)";
        let entries = env.list("EVIDENCE");
        if entries.is_empty() {
            return Err(ConfigError::Missing {
                variable: "EVIDENCE".into(),
                expected: evidence_expected.into(),
            });
        }
        let mut evidence = Vec::new();
        for entry in &entries {
            let location = EvidenceLocation::parse(entry)
                .ok_or_else(|| ConfigError::invalid("EVIDENCE", entry, evidence_expected))?;
            // The digests themselves are not evidence of the pipeline: a digest listing its
            // own predecessors would make every window's contents depend on the chain.
            if location.bucket == digest_bucket
                && (location.prefix.starts_with(&digest_prefix)
                    || digest_prefix.starts_with(&location.prefix))
            {
                return Err(ConfigError::invalid(
                    "EVIDENCE",
                    entry,
                    format!(
                        "locations that do not contain or lie under the digest prefix {digest_bucket}/{digest_prefix}"
                    ),
                ));
            }
            evidence.push(location);
        }
        evidence.sort();
        evidence.dedup();
        let signing_key_id = env.required(
            "SIGNING_KEY_ID",
            "the ARN (or alias) of the asymmetric SIGN_VERIFY KMS key",
        )?;
        let head_table = env.required("HEAD_TABLE", "the DynamoDB table holding the chain head")?;
        let tracking = match (env.get("TRACKING_TABLE"), env.get("BACKUP_BUCKET")) {
            (None, None) => None,
            (Some(table), Some(bucket)) => Some((table.to_owned(), bucket.to_owned())),
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    variable: "BACKUP_BUCKET".into(),
                    expected:
                        "the bucket the tracked log files are backed up to (TRACKING_TABLE is set)"
                            .into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    variable: "TRACKING_TABLE".into(),
                    expected: "the log-file tracking table (BACKUP_BUCKET is set)".into(),
                });
            }
        };
        let window_seconds: u64 = env.int_in_range("WINDOW_SECONDS", 3600, 1..=86_400)?;
        if 86_400 % window_seconds != 0 {
            return Err(ConfigError::invalid(
                "WINDOW_SECONDS",
                &window_seconds.to_string(),
                "a number of seconds that divides a day (3600 for hourly digests)",
            ));
        }
        Ok(Config {
            digest_bucket,
            digest_prefix,
            evidence,
            signing_key_id,
            head_table,
            tracking,
            copy_slo: env.duration_or("COPY_SLO", Duration::from_secs(2 * 3600))?,
            window: Duration::from_secs(window_seconds),
            late_lookback: env.duration_or("LATE_LOOKBACK", Duration::from_secs(24 * 3600))?,
            max_windows: env.int_in_range("MAX_WINDOWS_PER_RUN", 24, 1..=744)?,
            hash_concurrency: env.int_in_range("HASH_CONCURRENCY", 8, 1..=64)?,
            run_lease: env.duration_or("RUN_LEASE", Duration::from_secs(16 * 60))?,
        })
    }

    pub fn chain(&self) -> String {
        audit_core::digest::chain_name(&self.digest_bucket, &self.digest_prefix)
    }
}

/// Errors of one run.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("invalid event: {field}: {problem}")]
    InvalidEvent { field: String, problem: String },
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
        retryable: bool,
    },
    #[error("signing key {key}: {problem}")]
    SigningKey { key: String, problem: String },
    #[error("the chain is inconsistent: {0}")]
    Chain(String),
}

impl Classify for DigestError {
    fn code(&self) -> &'static str {
        match self {
            DigestError::InvalidEvent { .. } => "InvalidEvent",
            DigestError::Aws { .. } => "AwsCallFailed",
            DigestError::SigningKey { .. } => "SigningKeyUnusable",
            DigestError::Chain(_) => "ChainInconsistent",
        }
    }

    fn retryable(&self) -> bool {
        match self {
            DigestError::Aws { retryable, .. } => *retryable,
            DigestError::InvalidEvent { .. }
            | DigestError::SigningKey { .. }
            | DigestError::Chain(_) => false,
        }
    }
}

impl DigestError {
    /// A failed SDK call, classified the way every function classifies them.
    pub fn aws<E>(operation: &'static str, error: &SdkError<E, Response>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        DigestError::Aws {
            operation,
            message: audit_core::aws::describe(error),
            retryable: audit_core::aws::is_retryable(error),
        }
    }
}

/// What an invocation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunRequest {
    /// The schedule: close every window that ended, backfill late objects.
    Scheduled,
    /// An operator: close windows up to this end (not past now), and look for late objects
    /// in the window ending here even when it is older than `LATE_LOOKBACK`.
    UpTo { window_end_ms: i64 },
}

/// Reads the invocation: an EventBridge event, `{}`, or `{"window_end": "<RFC 3339>"}`.
pub fn parse_event(
    payload: &serde_json::Value,
    window: Duration,
) -> Result<RunRequest, DigestError> {
    let invalid = |field: &str, problem: &str| DigestError::InvalidEvent {
        field: field.to_owned(),
        problem: problem.to_owned(),
    };
    if audit_core::aws::is_eventbridge_event(payload) {
        return Ok(RunRequest::Scheduled);
    }
    let object = payload
        .as_object()
        .ok_or_else(|| invalid("event", "expected a JSON object"))?;
    if let Some(unknown) = object.keys().find(|k| k.as_str() != "window_end") {
        return Err(invalid(
            unknown,
            "unknown field; a manual run takes only \"window_end\"",
        ));
    }
    let Some(end) = object.get("window_end") else {
        return Ok(RunRequest::Scheduled);
    };
    let window_ms = window.as_millis() as i64;
    let window_end_ms = end
        .as_str()
        .and_then(audit_core::digest::parse_rfc3339)
        .ok_or_else(|| {
            invalid(
                "window_end",
                "expected an RFC 3339 time such as 2026-11-30T07:00:00Z",
            )
        })?;
    if window_end_ms <= 0 || window_end_ms % window_ms != 0 {
        return Err(invalid(
            "window_end",
            &format!(
                "must be the end of a window (a multiple of {} s since the epoch)",
                window.as_secs()
            ),
        ));
    }
    Ok(RunRequest::UpTo { window_end_ms })
}

/// A time window `[start, end)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Window {
    pub fn contains(&self, t: i64) -> bool {
        self.start_ms <= t && t < self.end_ms
    }

    /// The aligned window holding `t`.
    pub fn around(t: i64, window_ms: i64) -> Self {
        let start = t.div_euclid(window_ms) * window_ms;
        Window {
            start_ms: start,
            end_ms: start + window_ms,
        }
    }
}

/// The windows to digest now, oldest first, at most `max`: from the end of the newest window
/// digested (`covered_until`) to the newest window end not after `until`. The chain's first
/// window starts at the epoch, so evidence written before the chain began is covered too.
pub fn closed_windows(
    covered_until: Option<i64>,
    until_ms: i64,
    window_ms: i64,
    max: usize,
) -> Vec<Window> {
    let last_end = until_ms.div_euclid(window_ms) * window_ms;
    let mut windows = Vec::new();
    let mut start = match covered_until {
        None if last_end > 0 => {
            windows.push(Window {
                start_ms: 0,
                end_ms: last_end,
            });
            return windows;
        }
        None => return windows,
        Some(covered) => covered,
    };
    while start < last_end && windows.len() < max {
        // Aligned ends, also after a change of WINDOW_SECONDS.
        let end = (start.div_euclid(window_ms) + 1) * window_ms;
        windows.push(Window {
            start_ms: start,
            end_ms: end.min(last_end),
        });
        start = end;
    }
    windows
}

/// One object version as S3 lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedVersion {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// How digests identify a stored object version.
pub type ObjectId = (String, String, Option<String>);

impl ListedVersion {
    pub fn id(&self) -> ObjectId {
        (
            self.bucket.clone(),
            self.key.clone(),
            self.version_id.clone(),
        )
    }
}

pub fn object_id(object: &DigestedObject) -> ObjectId {
    (
        object.bucket.clone(),
        object.key.clone(),
        object.version_id.clone(),
    )
}

/// What one run writes: a digest per closed window with the versions it contains, and a
/// backfill digest per older window in which versions no digest names have appeared.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub windows: Vec<(Window, Vec<ListedVersion>)>,
    pub backfills: Vec<(Window, Vec<ListedVersion>)>,
}

/// Assigns every listed version to what it belongs in. A version modified before
/// `covered_until` that no digest read back (`digested`) names is late; it is backfilled when
/// it is newer than `late_since` (older ones are reported by the validator as `unlisted`, which
/// is the honest answer for an object that appears days after its timestamp). The history of a
/// location the chain did not cover before (`new_locations`, just added to `EVIDENCE`) is not
/// late but unproven: all of it goes into one backfill from the epoch to `covered_until`.
/// Versions newer than the last window wait for the next run.
pub fn plan(
    listing: Vec<ListedVersion>,
    digested: &HashSet<ObjectId>,
    covered_until: Option<i64>,
    windows: &[Window],
    late_since: i64,
    window_ms: i64,
    new_locations: &[EvidenceLocation],
) -> Plan {
    let mut new: BTreeMap<Window, Vec<ListedVersion>> =
        windows.iter().map(|w| (*w, Vec::new())).collect();
    let mut late: BTreeMap<Window, Vec<ListedVersion>> = BTreeMap::new();
    for version in listing {
        let t = version.last_modified_ms;
        if let Some(covered) = covered_until.filter(|c| t < *c) {
            if digested.contains(&version.id()) {
                continue;
            }
            let history = new_locations
                .iter()
                .any(|l| l.contains(&version.bucket, &version.key));
            if history {
                let since_epoch = Window {
                    start_ms: 0,
                    end_ms: covered,
                };
                late.entry(since_epoch).or_default().push(version);
            } else if t >= late_since {
                late.entry(Window::around(t, window_ms))
                    .or_default()
                    .push(version);
            }
        } else if let Some(window) = windows.iter().find(|w| w.contains(t)) {
            new.entry(*window).or_default().push(version);
        }
    }
    let sorted = |mut v: Vec<ListedVersion>| {
        v.sort_by_key(ListedVersion::id);
        v
    };
    Plan {
        windows: new.into_iter().map(|(w, v)| (w, sorted(v))).collect(),
        backfills: late.into_iter().map(|(w, v)| (w, sorted(v))).collect(),
    }
}

/// Where each tracked RDS log file stands against the backups present in the bucket. A file's
/// unbacked data has waited since its newest backed-up write (or since the pipeline first saw
/// it, when nothing of it is backed up); past `copy_slo` that is `not_copied`. A tracking row
/// claiming a copy whose object is not in the bucket counts as no backup.
pub fn source_files(
    tracked: &[TrackedLogFile],
    backups_present: &HashSet<&str>,
    now_ms: i64,
    copy_slo: Duration,
) -> Vec<SourceFile> {
    let slo_ms = copy_slo.as_millis() as i64;
    let mut files: Vec<SourceFile> = tracked
        .iter()
        .map(|file| {
            let backup = file
                .copied_key
                .as_deref()
                .filter(|key| backups_present.contains(key));
            let backed_up_until = backup.and(file.copied_last_written);
            let status = match backed_up_until {
                Some(copied) if copied >= file.last_written => SourceStatus::Copied,
                _ => {
                    let waiting_since = backed_up_until
                        .map_or(file.first_seen, |copied| copied.max(file.first_seen));
                    if now_ms - waiting_since > slo_ms {
                        SourceStatus::NotCopied
                    } else {
                        SourceStatus::Pending
                    }
                }
            };
            SourceFile {
                instance_id: file.instance_id.clone(),
                log_file: file.log_file.clone(),
                size: file.size,
                last_written: file.last_written,
                status,
                backup_key: backup.map(str::to_owned),
            }
        })
        .collect();
    files.sort_by(|a, b| (&a.instance_id, &a.log_file).cmp(&(&b.instance_id, &b.log_file)));
    files
}

/// Everything a digest says besides the objects' hashes, which the adapters compute.
#[derive(Debug, Clone)]
pub struct DigestHeader {
    pub sequence: u64,
    pub kind: DigestKind,
    pub window: Window,
    pub written_at_ms: i64,
    pub digest_bucket: String,
    pub digest_key: String,
    pub previous: Option<PreviousDigest>,
    pub signing: SigningKeyInfo,
    pub evidence: Vec<EvidenceLocation>,
}

pub fn build_digest(
    header: DigestHeader,
    mut objects: Vec<DigestedObject>,
    sources: Option<SourceCompleteness>,
) -> EvidenceDigest {
    objects.sort_by_key(object_id);
    EvidenceDigest {
        format: FORMAT.to_owned(),
        sequence: header.sequence,
        kind: header.kind,
        window_start: rfc3339(header.window.start_ms),
        window_end: rfc3339(header.window.end_ms),
        written_at: rfc3339(header.written_at_ms),
        digest_bucket: header.digest_bucket,
        digest_key: header.digest_key,
        previous: header.previous,
        signing: header.signing,
        evidence: header.evidence,
        objects,
        sources,
    }
}

#[cfg(test)]
mod tests;
