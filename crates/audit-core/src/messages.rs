//! Payloads that travel between functions.
//!
//! `db-scanner` sends one [`InstanceToScan`] per DB instance to the scan queue; `log-detector`
//! reads it. The `version` field lets a consumer reject a payload from a newer producer
//! instead of misreading it; consumers ignore fields they do not know, so adding one is
//! backwards compatible.

use serde::{Deserialize, Serialize};

/// The current version of [`InstanceToScan`].
pub const INSTANCE_TO_SCAN_VERSION: u32 = 1;

/// One DB instance whose log files should be checked for new or changed data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceToScan {
    pub version: u32,
    /// `DBInstanceIdentifier`.
    pub instance_id: String,
    /// `DBClusterIdentifier`; absent for an instance outside a cluster (RDS MySQL, PostgreSQL).
    pub cluster_id: Option<String>,
    /// `Engine`, e.g. `aurora-mysql`: decides the log file layout and the backup key.
    pub engine: String,
    /// When the scan that found the instance ran (RFC 3339, UTC).
    pub scanned_at: String,
}
