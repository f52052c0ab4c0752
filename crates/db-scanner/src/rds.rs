//! Adapter over `DescribeDBInstances`: every page, optionally restricted to named instances.

use crate::{DESCRIBE_FILTER_LIMIT, DbInstance, ScanError, ScanRequest};
use audit_core::aws::{describe, is_retryable};
use aws_sdk_rds::types::Filter;

/// Describes the requested instances, following every `Marker` (the SDK paginator re-sends
/// the request with the returned marker until there is none).
pub async fn describe_instances(
    client: &aws_sdk_rds::Client,
    request: &ScanRequest,
    page_size: i32,
) -> Result<Vec<DbInstance>, ScanError> {
    match request {
        ScanRequest::All => describe_pages(client, None, page_size).await,
        ScanRequest::Only(ids) => {
            let mut found = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(DESCRIBE_FILTER_LIMIT) {
                let filter = Filter::builder()
                    .name("db-instance-id")
                    .set_values(Some(chunk.to_vec()))
                    .build();
                found.extend(describe_pages(client, Some(filter), page_size).await?);
            }
            Ok(found)
        }
    }
}

async fn describe_pages(
    client: &aws_sdk_rds::Client,
    filter: Option<Filter>,
    page_size: i32,
) -> Result<Vec<DbInstance>, ScanError> {
    let mut pages = client
        .describe_db_instances()
        .set_filters(filter.map(|f| vec![f]))
        .max_records(page_size)
        .into_paginator()
        .send();
    let mut instances = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ScanError::Describe {
            message: describe(&e),
            retryable: is_retryable(&e),
        })?;
        instances.extend(page.db_instances().iter().filter_map(to_db_instance));
    }
    Ok(instances)
}

fn to_db_instance(described: &aws_sdk_rds::types::DbInstance) -> Option<DbInstance> {
    Some(DbInstance {
        instance_id: described.db_instance_identifier()?.to_owned(),
        cluster_id: described.db_cluster_identifier().map(str::to_owned),
        engine: described.engine().unwrap_or_default().to_owned(),
        status: described
            .db_instance_status()
            .unwrap_or_default()
            .to_owned(),
    })
}
