//! The tracking-table adapter: every tracked RDS log file, for the completeness section of an
//! hourly digest.

use crate::DigestError;
use audit_core::tracking::TrackedLogFile;

/// Every row of the tracking table (a full scan: one row per log file, expiring after the
/// table's TTL, so the table stays small). A row that does not read as a tracked file fails
/// the run: completeness computed over part of the table would be a false statement.
pub async fn tracked_files(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Vec<TrackedLogFile>, DigestError> {
    let mut files = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| DigestError::aws("Scan", &e))?;
        for item in page.items() {
            let file: TrackedLogFile = serde_dynamo::from_item(item.clone()).map_err(|e| {
                DigestError::Chain(format!(
                    "a row of the tracking table {table} is unreadable: {e}"
                ))
            })?;
            files.push(file);
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(files),
        }
    }
}
