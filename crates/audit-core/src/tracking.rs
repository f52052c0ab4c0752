//! The log-file tracking table, shared by `log-detector` (which writes what it sees and marks
//! files due) and `log-downloader` (which reads the table's stream and records each copy).
//!
//! One item per (instance, log file). A copy is ordered by raising `due_generation` with a
//! conditional write; the stream record of that write is the order. The downloader records the
//! copy under a condition on the generation it copied, so a stale order never overwrites the
//! record of a newer one.

use serde::{Deserialize, Serialize};

/// Attribute names, for expressions (the struct's serde names are the same).
pub mod attr {
    pub const INSTANCE_ID: &str = "instance_id";
    pub const LOG_FILE: &str = "log_file";
    pub const ENGINE: &str = "engine";
    pub const CLUSTER_ID: &str = "cluster_id";
    pub const SIZE: &str = "size";
    pub const LAST_WRITTEN: &str = "last_written";
    pub const FIRST_SEEN: &str = "first_seen";
    pub const STATE: &str = "state";
    pub const DUE_GENERATION: &str = "due_generation";
    pub const DUE_SIZE: &str = "due_size";
    pub const DUE_LAST_WRITTEN: &str = "due_last_written";
    pub const DUE_AT: &str = "due_at";
    pub const DUE_REASON: &str = "due_reason";
    pub const COPIED_GENERATION: &str = "copied_generation";
    pub const COPIED_SIZE: &str = "copied_size";
    pub const COPIED_LAST_WRITTEN: &str = "copied_last_written";
    pub const COPIED_KEY: &str = "copied_key";
    pub const COPIED_SHA256: &str = "copied_sha256";
    pub const COPIED_AT: &str = "copied_at";
    pub const LAST_COPY_ERROR: &str = "last_copy_error";
    pub const LAST_COPY_ERROR_AT: &str = "last_copy_error_at";
    /// The backup key where an object the downloader did not write was found in the place of
    /// this file's copy (the genuine copy is then at `copied_key`, under a conflict key).
    pub const COPY_CONFLICT: &str = "copy_conflict";
    pub const EXPIRES_AT: &str = "expires_at";
}

/// Where an instance's copies live: `{prefix}/{engine}/{cluster}/{instance}/` (an instance
/// outside a cluster uses `standalone`), followed by `{yyyy}/{mm}/{dd}/{file name}.{last
/// written}[.lossy][.gz]`. log-downloader writes this layout; `auditkit restore` reads it.
pub fn backup_instance_prefix(
    prefix: &str,
    engine: &str,
    cluster_id: Option<&str>,
    instance_id: &str,
) -> String {
    format!(
        "{}{engine}/{}/{instance_id}/",
        crate::aws::s3_key_prefix(prefix),
        cluster_id.unwrap_or("standalone")
    )
}

/// The metadata log-downloader puts on every backup object (S3 adds `x-amz-meta-`), and
/// `auditkit restore` checks a restored file against.
pub mod backup_meta {
    pub const INSTANCE: &str = "source-instance";
    pub const FILE: &str = "source-file";
    pub const SIZE: &str = "source-size";
    pub const LAST_WRITTEN: &str = "source-last-written";
    pub const SHA256: &str = crate::digest::SOURCE_SHA256_METADATA;
    pub const GENERATION: &str = "copy-generation";
    /// `lossy` on a copy whose bytes are not the source's (the Portion API replaced bytes that
    /// are not UTF-8 with U+FFFD); such an object has no `source-sha256`, only `copy-sha256`,
    /// the checksum of what it holds.
    pub const FIDELITY: &str = "copy-fidelity";
    pub const COPY_SHA256: &str = "copy-sha256";
}

/// Where a file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyState {
    /// Seen; its current version is not (yet) ordered for copying.
    Observed,
    /// A copy of `due_*` is ordered and not yet recorded.
    Due,
    /// The version ordered last has been copied.
    Copied,
}

/// One tracked log file. Times are epoch milliseconds except `expires_at` (epoch seconds,
/// as DynamoDB TTL requires).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedLogFile {
    pub instance_id: String,
    pub log_file: String,
    pub engine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Size and last-written time as last listed by `DescribeDBLogFiles`.
    pub size: i64,
    pub last_written: i64,
    pub first_seen: i64,
    pub state: CopyState,
    /// Raised by one each time a copy is ordered; 0 = never ordered.
    #[serde(default)]
    pub due_generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_last_written: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_last_written: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_at: Option<i64>,
    /// Why the last copy of the due version failed for good (`LineTooLong`, `DownloadShort`,
    /// ...), and when; cleared when a copy is recorded. What an operator looks for when a
    /// file stays due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_copy_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_copy_error_at: Option<i64>,
    /// An object the downloader did not write found at this file's backup key (see
    /// `attr::COPY_CONFLICT`); the genuine copy is at `copied_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_conflict: Option<String>,
    pub expires_at: i64,
}
