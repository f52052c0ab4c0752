//! Adapter over `DescribeDBLogFiles`: every page, filtered as configured.

use crate::{DetectError, ListedLogFile};
use audit_core::aws::{describe, is_retryable};
use aws_sdk_rds::operation::describe_db_log_files::DescribeDBLogFilesError;

/// Why a listing produced no files.
#[derive(Debug)]
pub enum ListError {
    /// `DBInstanceNotFound`: deleted since the scan; retrying will not help.
    InstanceGone,
    Failed(DetectError),
}

/// Lists the instance's log files written since `since_ms`, following every `Marker`.
pub async fn list_log_files(
    client: &aws_sdk_rds::Client,
    instance: &str,
    filename_contains: Option<&str>,
    since_ms: i64,
) -> Result<Vec<ListedLogFile>, ListError> {
    let mut pages = client
        .describe_db_log_files()
        .db_instance_identifier(instance)
        .set_filename_contains(filename_contains.map(str::to_owned))
        .file_last_written(since_ms)
        .into_paginator()
        .send();
    let mut files = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            if matches!(
                e.as_service_error(),
                Some(DescribeDBLogFilesError::DbInstanceNotFoundFault(_))
            ) {
                ListError::InstanceGone
            } else {
                ListError::Failed(DetectError::Describe {
                    instance: instance.to_owned(),
                    message: describe(&e),
                    retryable: is_retryable(&e),
                })
            }
        })?;
        files.extend(page.describe_db_log_files().iter().filter_map(|d| {
            Some(ListedLogFile {
                name: d.log_file_name()?.to_owned(),
                size: d.size().unwrap_or(0),
                last_written: d.last_written().unwrap_or(0),
            })
        }));
    }
    Ok(files)
}
