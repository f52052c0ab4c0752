//! The operator's commands over the running pipelines: `status` and `history` (`restore` is
//! in [`crate::restore_command`]). Reading and writing only; what they decide is in
//! [`crate::status`] and [`crate::history`].

use crate::cli::{CommandError, parse_time};
use crate::history::{self, ItemKey, Scanner};
use crate::status::{self, InstanceStatus};
use audit_core::digest;
use audit_core::tracking::{TrackedLogFile, attr};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::config::http::HttpResponse;
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use std::io::Write;
use std::time::Instant;

/// `2h`, `90m`, `45s`, `1d` (or a number of seconds) as milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 2h, 90m, 45s, 1d)"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// `2G`, `500M`, `64K` (or a number of bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 2G, 500M)"))?;
    let unit = match unit.trim_end_matches(['B', 'i']) {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{text:?}: the unit must be K, M, G or T")),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// An AWS call that failed, named with what it was called on.
pub(crate) fn aws<E>(
    call: &str,
    on: &str,
    e: &aws_sdk_s3::error::SdkError<E, HttpResponse>,
) -> CommandError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    CommandError::Usage(format!("{call} {on}: {}", audit_core::aws::describe(e)))
}

/// One object a listing found.
pub(crate) struct Listed {
    pub key: String,
    pub size: u64,
    pub modified_ms: i64,
}

/// Every object under `prefix`, every page.
pub(crate) async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<Listed>, CommandError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut listed = Vec::new();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| aws("s3:ListObjectsV2", &format!("s3://{bucket}/{prefix}"), &e))?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                listed.push(Listed {
                    key: key.to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    modified_ms: object
                        .last_modified()
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or(0),
                });
            }
        }
    }
    Ok(listed)
}

// ---------------------------------------------------------------------------- status

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The log-file tracking table (the stack's TrackingTableName output).
    #[arg(long, env = "AUDITKIT_TRACKING_TABLE")]
    pub tracking_table: String,
    /// The backup bucket, for the age of the newest evidence digest (omit to skip it).
    #[arg(long, env = "AUDITKIT_BACKUP_BUCKET")]
    pub bucket: Option<String>,
    /// The digests' key prefix.
    #[arg(long, default_value = digest::DEFAULT_PREFIX)]
    pub digest_prefix: String,
    /// Only this instance.
    #[arg(long)]
    pub instance: Option<String>,
    /// Exit 1 when an instance's lag exceeds this (e.g. 2h, 90m).
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub max_lag: i64,
    /// An ordered copy not recorded after this long counts as stalled.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub stall_after: i64,
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

async fn tracked_rows(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    instance: Option<&str>,
) -> Result<(Vec<TrackedLogFile>, Vec<String>), CommandError> {
    let items: Vec<_> = match instance {
        Some(id) => dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("#i = :i")
            .expression_attribute_names("#i", attr::INSTANCE_ID)
            .expression_attribute_values(":i", AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aws("dynamodb:Query", table, &e))?,
        None => dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| aws("dynamodb:Scan", table, &e))?,
    };
    let mut rows = Vec::with_capacity(items.len());
    let mut unreadable = Vec::new();
    for item in items {
        let name = |a: &str| match item.get(a) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => "?".into(),
        };
        let id = format!("{}/{}", name(attr::INSTANCE_ID), name(attr::LOG_FILE));
        match serde_dynamo::from_item::<_, TrackedLogFile>(item) {
            Ok(row) => rows.push(row),
            Err(e) => unreadable.push(format!("tracking row {id} is unreadable: {e}")),
        }
    }
    Ok((rows, unreadable))
}

/// The newest digest's age (now − its LastModified), looking at today's and yesterday's
/// digest folders; `None` when neither holds one.
async fn newest_digest_age(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    now: i64,
) -> Result<Option<(String, i64)>, CommandError> {
    let mut newest: Option<(String, i64)> = None;
    for back in [0, 1] {
        let day = chrono::DateTime::from_timestamp_millis(now - back * 86_400_000)
            .unwrap_or_default()
            .format("%Y/%m/%d/");
        let folder = format!("{prefix}{day}");
        for object in list(s3, bucket, &folder).await? {
            if object.key.ends_with(digest::DIGEST_SUFFIX)
                && newest.as_ref().is_none_or(|(_, n)| object.modified_ms > *n)
            {
                newest = Some((object.key, object.modified_ms));
            }
        }
        if newest.is_some() {
            break;
        }
    }
    Ok(newest.map(|(key, at)| (key, now - at)))
}

pub async fn status(args: StatusArgs, out: &mut impl Write) -> Result<bool, CommandError> {
    let sdk = audit_core::aws::operator_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let now = audit_core::now_ms();
    let (rows, unreadable) =
        tracked_rows(&dynamodb, &args.tracking_table, args.instance.as_deref()).await?;
    if let Some(instance) = &args.instance
        && rows.is_empty()
        && unreadable.is_empty()
    {
        return Err(CommandError::Usage(format!(
            "no such instance: {instance} has no files in {}",
            args.tracking_table
        )));
    }
    let statuses: Vec<InstanceStatus> = status::summarize(&rows, now, args.stall_after);
    let digest = match &args.bucket {
        Some(bucket) => {
            let s3 = audit_core::aws::s3_client(&sdk);
            let prefix = audit_core::aws::s3_key_prefix(&args.digest_prefix);
            Some(newest_digest_age(&s3, bucket, &prefix, now).await?)
        }
        None => None,
    };
    let over: Vec<&InstanceStatus> = statuses
        .iter()
        .filter(|s| s.lag_ms > args.max_lag)
        .collect();
    let healthy = over.is_empty() && unreadable.is_empty();
    if args.json {
        let document = serde_json::json!({
            "checked_at": digest::rfc3339(now),
            "max_lag_ms": args.max_lag,
            "healthy": healthy,
            "instances": statuses,
            "newest_digest": digest.as_ref().map(|d| match d {
                Some((key, age)) => serde_json::json!({"key": key, "age_ms": age}),
                None => serde_json::Value::Null,
            }),
            "unreadable_rows": unreadable,
        });
        let _ = writeln!(out, "{document:#}");
    } else {
        if statuses.is_empty() {
            let _ = writeln!(out, "no files tracked in {}", args.tracking_table);
        } else {
            let _ = write!(out, "{}", status::table(&statuses, args.max_lag));
        }
        match &digest {
            Some(Some((key, age))) => {
                let _ = writeln!(
                    out,
                    "newest digest: {key}, {} old",
                    status::human_duration(*age)
                );
            }
            Some(None) => {
                let _ = writeln!(out, "newest digest: none written today or yesterday");
            }
            None => {}
        }
        for line in &unreadable {
            let _ = writeln!(out, "{line}");
        }
        if !over.is_empty() {
            let _ = writeln!(
                out,
                "{} instance(s) lag more than {}",
                over.len(),
                status::human_duration(args.max_lag)
            );
        }
    }
    Ok(healthy)
}

// ---------------------------------------------------------------------------- history

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The bucket Firehose writes the change log to (the stack's BackupBucketName output).
    #[arg(long, env = "AUDITKIT_BACKUP_BUCKET")]
    pub bucket: String,
    /// The change log's key prefix (Firehose's prefix before the hour folders).
    #[arg(long, default_value = "dynamodb-changes/")]
    pub changes_prefix: String,
    /// The DynamoDB table the item is in.
    #[arg(long)]
    pub table: String,
    /// The item's key: attr=value[,attr=value]; repeat --key for a value holding a comma.
    #[arg(long, required = true)]
    pub key: Vec<String>,
    /// Changes made at or after this time (RFC 3339 or YYYY-MM-DD; default: 24 h before --until).
    #[arg(long)]
    pub since: Option<String>,
    /// ... and at or before this time (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// One JSON object per change instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the equivalent Athena query instead of reading the change log.
    #[arg(long)]
    pub athena: bool,
    /// Read at most this much compressed change log; beyond it, print the Athena query.
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    pub max_scan: u64,
    /// Objects read at once.
    #[arg(long, default_value_t = 2 * std::thread::available_parallelism().map_or(2, |n| n.get()))]
    pub parallel: usize,
}

pub async fn history(args: HistoryArgs, out: &mut impl Write) -> Result<bool, CommandError> {
    let item = ItemKey::parse(&args.table, &args.key).map_err(CommandError::Usage)?;
    let until = match &args.until {
        Some(t) => parse_time("--until", t)?,
        None => audit_core::now_ms(),
    };
    let since = match &args.since {
        Some(t) => parse_time("--since", t)?,
        None => until - 86_400_000,
    };
    if since > until {
        return Err(CommandError::Usage(
            "--since must not be after --until".into(),
        ));
    }
    if args.athena {
        let _ = writeln!(out, "{};", history::athena_query(&item, since, until));
        return Ok(true);
    }
    let sdk = audit_core::aws::operator_sdk_config().await;
    let s3 = audit_core::aws::s3_client(&sdk);
    let prefix = audit_core::aws::s3_key_prefix(&args.changes_prefix);
    let started = Instant::now();
    let hours = history::hour_prefixes(&prefix, since, until);
    let listings: Vec<Vec<Listed>> = futures_util::stream::iter(hours.iter())
        .map(|hour| list(&s3, &args.bucket, hour))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let objects: Vec<Listed> = listings.into_iter().flatten().collect();
    let total: u64 = objects.iter().map(|o| o.size).sum();
    if total > args.max_scan {
        let _ = writeln!(out, "{};", history::athena_query(&item, since, until));
        return Err(CommandError::Usage(format!(
            "the range holds {total} bytes of change log in {} objects, over --max-scan {}: run the query printed above in Athena (the stack's audit workgroup), or narrow --since/--until",
            objects.len(),
            args.max_scan
        )));
    }
    let scanner = std::sync::Arc::new(Scanner::new(item.clone(), since, until));
    let found: Vec<Vec<history::ChangeStep>> = futures_util::stream::iter(objects.iter())
        .map(|Listed { key, .. }| {
            let s3 = &s3;
            let bucket = &args.bucket;
            let scanner = scanner.clone();
            async move {
                let name = format!("s3://{bucket}/{key}");
                let object = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| aws("s3:GetObject", &name, &e))?;
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| CommandError::Usage(format!("reading {name}: {e}")))?
                    .into_bytes();
                let scanned = tokio::task::spawn_blocking(move || {
                    let mut found = Vec::new();
                    scanner.scan_object(&bytes, &mut found).map(|_| found)
                })
                .await
                .map_err(|e| CommandError::Usage(format!("{name}: {e}")))?;
                scanned.map_err(|e| CommandError::Usage(format!("{name}: {e}")))
            }
        })
        .buffer_unordered(args.parallel.max(1))
        .try_collect()
        .await?;
    let steps = history::history(found.into_iter().flatten().collect());
    let keys: Vec<String> = item
        .attributes
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if args.json {
        for step in &steps {
            let mut value = serde_json::to_value(step).unwrap_or_default();
            value["changes"] = serde_json::json!(history::describe(step));
            let _ = writeln!(out, "{value}");
        }
    } else {
        let _ = writeln!(
            out,
            "{} change(s) of {} {{{}}} from {} to {} ({} objects, {} bytes read in {:.1} s)",
            steps.len(),
            item.table,
            keys.join(", "),
            digest::rfc3339(since),
            digest::rfc3339(until),
            objects.len(),
            total,
            started.elapsed().as_secs_f64()
        );
        for step in &steps {
            let item_keys: Vec<String> =
                step.keys.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let _ = writeln!(
                out,
                "{} {:<6} {}  seq {}",
                step.approximate_creation_time
                    .as_deref()
                    .unwrap_or("(no time)"),
                step.event_name,
                item_keys.join(","),
                step.sequence_number
            );
            for line in history::describe(step) {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    Ok(!steps.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse_and_name_what_is_wrong() {
        assert_eq!(parse_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_duration("90m"), Ok(5_400_000));
        assert_eq!(parse_duration("30"), Ok(30_000));
        assert!(parse_duration("2 hours").unwrap_err().contains("unit"));
        assert!(parse_duration("h").unwrap_err().contains("not a duration"));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("2X").unwrap_err().contains("unit"));
    }
}
