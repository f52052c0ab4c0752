//! `log-downloader`: the last step of the Aurora audit-log backup (tracking-table stream → S3).
//!
//! It acts only on stream records where a file became due (`due_generation` rose and the state is
//! `due`, see `audit_core::tracking`). For each such [`CopyOrder`], several at a time, it
//! streams the file from RDS into S3 and records the copy in the tracking row:
//! - Download through the REST `downloadCompleteLogFile` endpoint, SigV4-signed with the
//!   function's own credentials; if that endpoint is refused, `DownloadDBLogFilePortion` from
//!   marker `0`, re-requesting a page that ends in RDS's truncation notice with fewer lines and
//!   continuing past an early `AdditionalDataPending=false` until the ordered size arrived.
//! - The body goes through SHA-256 (of the source bytes) and gzip (`COMPRESS`) into an S3
//!   multipart upload in `PART_SIZE_MIB` parts, so memory stays bounded whatever the file size.
//! - Object keys never collide ([`backup_key`]: the file's last-written time is part of the key)
//!   and are written once, with `If-None-Match: *`: nothing is ever overwritten, and no key
//!   gets a second version (a multipart copy's checksum goes into a write-once sidecar, not a
//!   copy onto itself). A replay whose copy the tracking row already records is skipped.
//! - An object found at a backup key is accepted as the copy only when it provably holds the
//!   file's bytes (read back and hashed against the download's own hash). Anything else was
//!   not written by the downloader: it is left alone, the genuine copy is stored beside it
//!   ([`conflict_key`]), and the row names the conflict (`copy_conflict`), with an ERROR log
//!   and the `CopyConflicts` metric, which the stack alarms on.
//! - A download shorter than the ordered size is never recorded as a copy: it is retried, or,
//!   when RDS shows the file was replaced (rename rotation), the order is dropped because the
//!   detector orders the new version and the renamed file separately.
//!
//! Contract: failures are reported by sequence number, lowest first; a record is never reported
//! as done unless its object is in S3 and the copy was recorded (or superseded).

pub mod copier;
pub mod download;
pub mod handler;
pub mod sink;

use audit_core::tracking::{CopyState, TrackedLogFile};
use audit_core::{Classify, ConfigError, Env};

/// Every environment variable the function reads besides the `AWS_*` ones (the stack's
/// template must set these and no others; a test checks the loader against this list).
pub const ENVIRONMENT: &[&str] = &[
    "BACKUP_BUCKET",
    "BACKUP_PREFIX",
    "TRACKING_TABLE",
    "COMPRESS",
    "DOWNLOAD_CONCURRENCY",
    "PART_SIZE_MIB",
    "DOWNLOAD_ATTEMPTS",
    "LOG_LEVEL",
    "RUST_LOG",
];

/// Every IAM action the code calls. Multipart uploads are authorised as `s3:PutObject`;
/// `s3:ListBucket` makes `HeadObject` on a missing key answer 404 rather than 403, which is how
/// a first copy is told from a replay.
pub const IAM_ACTIONS: &[&str] = &[
    "rds:DownloadCompleteDBLogFile",
    "rds:DownloadDBLogFilePortion",
    "rds:DescribeDBLogFiles",
    "s3:GetObject",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListBucket",
    // The rename-rotation check: the instance's copies of the same size and time.
    "dynamodb:Query",
    // A replay: does the row already record the object found at the key?
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
];

/// The metrics each invocation writes (EMF, namespace `auditkit`, `function=log-downloader`);
/// the counts and bytes are written even when 0.
pub const METRICS: audit_core::metrics::Declared = {
    use audit_core::metrics::Unit::{Bytes, Count, Seconds};
    &[
        ("FilesCopied", Count),
        ("BytesCopied", Bytes),
        ("CopyLagSeconds", Seconds),
        ("CopyFailures", Count),
        ("LossyCopies", Count),
        ("LinesTooLong", Count),
        ("ReplaysSkipped", Count),
        ("SourcesReplaced", Count),
        ("CopyConflicts", Count),
    ]
};

/// What the DynamoDB stream event source mapping needs on the function's role: reading the
/// stream, and sending records it gave up on to its on-failure queue.
pub const EVENT_SOURCE_ACTIONS: &[&str] = audit_core::batch::DYNAMODB_STREAM_SOURCE_ACTIONS;

/// The function's settings, read once at cold start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bucket: String,
    pub prefix: String,
    pub tracking_table: String,
    pub compress: bool,
    pub concurrency: usize,
    pub part_size: usize,
    pub attempts: u32,
    /// Base URL of the RDS REST endpoint (region filled in at cold start when not overridden).
    pub rds_rest_endpoint: Option<String>,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let part_mib: usize = env.int_in_range("PART_SIZE_MIB", 8, 5..=64)?;
        Ok(Config {
            bucket: env.required("BACKUP_BUCKET", "the name of the S3 backup bucket")?,
            prefix: env
                .get("BACKUP_PREFIX")
                .unwrap_or("rds-logs")
                .trim_matches('/')
                .to_owned(),
            tracking_table: env
                .required("TRACKING_TABLE", "the name of the DynamoDB tracking table")?,
            compress: env.bool_or("COMPRESS", true)?,
            concurrency: env.int_in_range("DOWNLOAD_CONCURRENCY", 4, 1..=16)?,
            part_size: part_mib * 1024 * 1024,
            attempts: env.int_in_range("DOWNLOAD_ATTEMPTS", 3, 1..=10)?,
            rds_rest_endpoint: rds_endpoint_override(env),
        })
    }
}

/// The endpoint override the SDK would use for RDS (`AWS_ENDPOINT_URL_RDS`, then
/// `AWS_ENDPOINT_URL`), which the REST download must follow too.
pub fn rds_endpoint_override(env: &Env) -> Option<String> {
    if env
        .get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return None;
    }
    env.get("AWS_ENDPOINT_URL_RDS")
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
        .map(|url| url.trim_end_matches('/').to_owned())
}

/// The REST download URL. The `/` inside a log file name stays a path separator; other bytes
/// outside the unreserved set are percent-encoded.
pub fn download_url(base: &str, instance: &str, file: &str) -> String {
    let encode = |segment: &str| {
        segment
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "{base}/v13/downloadCompleteLogFile/{}/{}",
        encode(instance),
        encode(file)
    )
}

/// One ordered copy: a version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOrder {
    pub instance_id: String,
    pub log_file: String,
    pub engine: String,
    pub cluster_id: Option<String>,
    pub generation: i64,
    /// The size and last-written time the detector saw when it ordered the copy.
    pub size: i64,
    pub last_written: i64,
}

/// What happened to one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutcome {
    Copied {
        key: String,
        bytes: u64,
        sha256: String,
    },
    /// The object was already there (a replayed record): recorded, nothing copied.
    AlreadyCopied { key: String },
    /// RDS no longer has this version under this name (rename rotation or deletion); the
    /// detector orders whatever holds those bytes now.
    SourceReplaced,
    /// Only an inexact copy could be made (the Portion API altered bytes that are not UTF-8):
    /// stored at `key`, marked lossy, not recorded as a copy; the file stays due.
    Lossy { key: String, bytes: u64 },
    /// An object the downloader did not write was at the file's backup key (`squatted`; or
    /// its metadata sidecar was): the genuine copy is stored and recorded at `key`.
    Conflict {
        squatted: String,
        key: String,
        bytes: u64,
        sha256: String,
    },
}

/// The copy a stream record orders, if any: the new image is `due` with a higher generation
/// than the old image (inserts count from 0). Observations, recorded copies and replays of
/// older generations order nothing.
pub fn copy_order(new: Option<&TrackedLogFile>, old: Option<&TrackedLogFile>) -> Option<CopyOrder> {
    let new = new?;
    if new.state != CopyState::Due || new.due_generation <= old.map_or(0, |o| o.due_generation) {
        return None;
    }
    Some(CopyOrder {
        instance_id: new.instance_id.clone(),
        log_file: new.log_file.clone(),
        engine: new.engine.clone(),
        cluster_id: new.cluster_id.clone(),
        generation: new.due_generation,
        size: new.due_size?,
        last_written: new.due_last_written?,
    })
}

/// `{prefix}/{engine}/{cluster}/{instance}/{yyyy}/{mm}/{dd}/{file name}.{last written}[.gz]`
/// (the layout is `audit_core::tracking::backup_instance_prefix`'s, which `auditkit restore`
/// reads back); the date is the file's last-written day (UTC). A re-copy of a grown file has a
/// new last-written time, so a new key.
pub fn backup_key(prefix: &str, order: &CopyOrder, compress: bool) -> String {
    let day = chrono::DateTime::from_timestamp_millis(order.last_written)
        .unwrap_or_default()
        .format("%Y/%m/%d");
    let mut key = audit_core::tracking::backup_instance_prefix(
        prefix,
        &order.engine,
        order.cluster_id.as_deref(),
        &order.instance_id,
    );
    key.push_str(&format!("{day}/{}.{}", order.log_file, order.last_written));
    if compress {
        key.push_str(".gz");
    }
    key
}

/// The key of a lossy copy of the version `key` names: beside the exact copy's key, never on
/// it (the exact copy may still come, and is created with `If-None-Match`).
pub fn lossy_key(key: &str) -> String {
    match key.strip_suffix(".gz") {
        Some(stem) => format!("{stem}.lossy.gz"),
        None => format!("{key}.lossy"),
    }
}

/// Where the genuine copy goes when an object the downloader did not write holds `key`:
/// beside it, named by the source's SHA-256, so a retry finds its own copy again and nobody
/// without the source's bytes can take this key too.
pub fn conflict_key(key: &str, source_sha256: &str) -> String {
    let tag = source_sha256.get(..16).unwrap_or(source_sha256);
    match key.strip_suffix(".gz") {
        Some(stem) => format!("{stem}.conflict-{tag}.gz"),
        None => format!("{key}.conflict-{tag}"),
    }
}

/// Object metadata names (S3 adds `x-amz-meta-`).
pub use audit_core::tracking::backup_meta as meta;

/// Why one copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("download of {file} failed: {message}")]
    Download {
        file: String,
        message: String,
        retryable: bool,
    },
    #[error("download of {file} ended after {got} of at least {expected} bytes")]
    Short {
        file: String,
        got: u64,
        expected: u64,
    },
    #[error(
        "{file} has a line longer than 1 MB, which DownloadDBLogFilePortion cannot return whole"
    )]
    LineTooLong { file: String },
    /// The Portion API returned text in place of bytes that are not UTF-8: an exact copy is
    /// impossible through it.
    #[error("{file} holds bytes DownloadDBLogFilePortion cannot return exactly (not UTF-8)")]
    Lossy { file: String },
    #[error("S3 {operation} failed for {key}: {message}")]
    Upload {
        operation: &'static str,
        key: String,
        message: String,
        retryable: bool,
    },
    /// Both the backup key and the conflict key beside it hold objects that are not this
    /// file's bytes.
    #[error("{squatted} and {key} both hold objects the downloader did not write")]
    Conflict { key: String, squatted: String },
    #[error("tracking table update failed: {message}")]
    Table { message: String, retryable: bool },
    #[error("stream record {sequence_number} is unreadable: {message}")]
    BadRecord {
        sequence_number: String,
        message: String,
    },
}

impl Classify for CopyError {
    fn code(&self) -> &'static str {
        match self {
            CopyError::Download { .. } => "DownloadFailed",
            CopyError::Short { .. } => "DownloadShort",
            CopyError::LineTooLong { .. } => "LineTooLong",
            CopyError::Lossy { .. } => "LossyCopy",
            CopyError::Upload { .. } => "UploadFailed",
            CopyError::Table { .. } => "TrackingTableFailed",
            CopyError::Conflict { .. } => "CopyConflict",
            CopyError::BadRecord { .. } => "BadRecord",
        }
    }
    fn retryable(&self) -> bool {
        match self {
            CopyError::Download { retryable, .. }
            | CopyError::Upload { retryable, .. }
            | CopyError::Table { retryable, .. } => *retryable,
            CopyError::Short { .. } => true,
            CopyError::LineTooLong { .. }
            | CopyError::Lossy { .. }
            | CopyError::Conflict { .. }
            | CopyError::BadRecord { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declared_environment_is_exactly_what_the_loader_reads() {
        let env = Env::from_pairs([("BACKUP_BUCKET", "b"), ("TRACKING_TABLE", "t")]);
        let read = audit_core::environment_read(&env, Config::from_env).unwrap();
        let declared: std::collections::BTreeSet<String> =
            ENVIRONMENT.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(read, declared);
    }

    fn row(state: CopyState, generation: i64) -> TrackedLogFile {
        serde_json::from_value(serde_json::json!({
            "instance_id": "orders-writer", "log_file": "audit/audit.log.0.2026-11-22-08-30.0",
            "engine": "aurora-mysql", "cluster_id": "orders", "size": 120, "last_written": 1_763_800_000_000_i64,
            "first_seen": 1, "state": state, "due_generation": generation, "due_size": 100,
            "due_last_written": 1_763_799_000_000_i64, "expires_at": 0
        }))
        .unwrap()
    }

    #[test]
    fn only_a_rise_to_due_orders_a_copy() {
        let order = copy_order(Some(&row(CopyState::Due, 1)), None).unwrap();
        assert_eq!(
            (order.generation, order.size, order.last_written),
            (1, 100, 1_763_799_000_000)
        );
        assert!(
            copy_order(
                Some(&row(CopyState::Due, 3)),
                Some(&row(CopyState::Copied, 2))
            )
            .is_some()
        );
        // The downloader's own "copied" write, an observation, a removal: nothing.
        assert!(
            copy_order(
                Some(&row(CopyState::Copied, 3)),
                Some(&row(CopyState::Due, 3))
            )
            .is_none()
        );
        assert!(copy_order(Some(&row(CopyState::Due, 3)), Some(&row(CopyState::Due, 3))).is_none());
        assert!(copy_order(Some(&row(CopyState::Observed, 0)), None).is_none());
        assert!(copy_order(None, Some(&row(CopyState::Due, 3))).is_none());
    }

    #[test]
    fn keys_carry_the_version_and_never_collide_across_recopies() {
        let mut order = copy_order(Some(&row(CopyState::Due, 1)), None).unwrap();
        assert_eq!(
            backup_key("backups", &order, true),
            "backups/aurora-mysql/orders/orders-writer/2025/11/22/audit/audit.log.0.2026-11-22-08-30.0.1763799000000.gz"
        );
        let first = backup_key("backups", &order, true);
        order.last_written += 1;
        assert_ne!(backup_key("backups", &order, true), first);
        order.cluster_id = None;
        assert!(
            backup_key("", &order, false).starts_with("aurora-mysql/standalone/orders-writer/")
        );
        assert!(!backup_key("", &order, false).ends_with(".gz"));
    }

    #[test]
    fn the_rest_url_keeps_slashes_and_follows_the_endpoint_override() {
        assert_eq!(
            download_url(
                "https://rds.eu-west-1.amazonaws.com",
                "db-1",
                "audit/server_audit.log.1"
            ),
            "https://rds.eu-west-1.amazonaws.com/v13/downloadCompleteLogFile/db-1/audit/server_audit.log.1"
        );
        assert!(download_url("http://h", "db", "a b").ends_with("/db/a%20b"));
        let env = |pairs: &[(&str, &str)]| Env::from_pairs(pairs.iter().copied());
        assert_eq!(rds_endpoint_override(&env(&[])), None);
        assert_eq!(
            rds_endpoint_override(&env(&[
                ("AWS_ENDPOINT_URL", "http://a/"),
                ("AWS_ENDPOINT_URL_RDS", "http://b")
            ]))
            .as_deref(),
            Some("http://b")
        );
    }

    #[test]
    fn configuration_names_each_bad_variable() {
        let base = [("BACKUP_BUCKET", "b"), ("TRACKING_TABLE", "t")];
        let c = Config::from_env(&Env::from_pairs(base)).unwrap();
        assert!(c.compress);
        assert_eq!(
            (c.prefix.as_str(), c.part_size, c.concurrency),
            ("rds-logs", 8 << 20, 4)
        );
        assert_eq!(
            Config::from_env(&Env::from_pairs([("TRACKING_TABLE", "t")]))
                .unwrap_err()
                .variable(),
            "BACKUP_BUCKET"
        );
        assert_eq!(
            Config::from_env(&Env::from_pairs([("BACKUP_BUCKET", "b")]))
                .unwrap_err()
                .variable(),
            "TRACKING_TABLE"
        );
        for (var, value) in [
            ("COMPRESS", "gzip"),
            ("PART_SIZE_MIB", "4"),
            ("DOWNLOAD_CONCURRENCY", "0"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((var, value));
            assert_eq!(
                Config::from_env(&Env::from_pairs(pairs))
                    .unwrap_err()
                    .variable(),
                var
            );
        }
    }
}
