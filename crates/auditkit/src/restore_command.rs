//! `auditkit restore`'s reading and writing: the file's stored copies, the chosen key's
//! versions (the first is restored, later ones named), the checksum recorded outside the
//! object (tracking row; with a trusted key, the verified digests), and the streamed,
//! size-bounded restore. What it decides is in [`crate::restore`].

use crate::cli::{CommandError, trusted_key};
use crate::operate::{aws, list};
use crate::restore::{self, DigestedCopy, Expected, Records, RestoreWriter, StoredCopy};
use crate::status;
use crate::store::Store;
use crate::validate::{StoredObject, first_versions, walk_chain};
use audit_core::digest;
use audit_core::tracking::{attr, backup_instance_prefix, backup_meta};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["out", "list"])))]
pub struct RestoreArgs {
    /// The log-file tracking table (the stack's TrackingTableName output).
    #[arg(long, env = "AUDITKIT_TRACKING_TABLE")]
    pub tracking_table: String,
    /// The backup bucket (the stack's BackupBucketName output).
    #[arg(long, env = "AUDITKIT_BACKUP_BUCKET")]
    pub bucket: String,
    /// The backups' key prefix (log-downloader's BACKUP_PREFIX).
    #[arg(long, default_value = "rds-logs")]
    pub backup_prefix: String,
    /// The DB instance identifier.
    #[arg(long)]
    pub instance: String,
    /// The log file's name as RDS lists it, e.g. audit/audit.log.0.2024-01-04-08-30.0.
    #[arg(long)]
    pub file: String,
    /// The version: the file's LastWritten (epoch ms) when it was copied (default: the newest).
    #[arg(long)]
    pub at: Option<i64>,
    /// Where to write the file (never over an existing one).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// List every stored version instead of restoring.
    #[arg(long)]
    pub list: bool,
    /// Accept a lossy copy (bytes RDS's Portion API replaced) when no exact copy exists.
    #[arg(long)]
    pub lossy: bool,
    /// The digest signing key's public key (PEM): also check the copy against the signed
    /// digests (needed for a copy the tracking row no longer records, e.g. an earlier copy
    /// of a file that kept growing).
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// The digest signing KMS key, instead of --public-key.
    #[arg(long)]
    pub key_id: Option<String>,
    /// The digests' key prefix.
    #[arg(long, default_value = digest::DEFAULT_PREFIX)]
    pub digest_prefix: String,
}

async fn stored_copies(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    instance_prefix: &str,
    file: &str,
    at: Option<i64>,
) -> Result<Vec<StoredCopy>, CommandError> {
    // A version's copies share its day folder: with --at, list that day only.
    let folder = match at.and_then(chrono::DateTime::from_timestamp_millis) {
        Some(t) => format!("{instance_prefix}{}", t.format("%Y/%m/%d/")),
        None => instance_prefix.to_owned(),
    };
    let mut copies = Vec::new();
    for object in list(s3, bucket, &folder).await? {
        if let Some(copy) = restore::parse_copy(&object.key, instance_prefix, file) {
            copies.push(StoredCopy {
                stored_size: object.size,
                ..copy
            });
        }
    }
    copies.sort_by_key(|c| (c.last_written, c.lossy, c.conflict));
    Ok(copies)
}

/// The file's tracking row: the engine and cluster that place its copies, and its last
/// recorded copy (`copied_key`, `copied_sha256`, `copied_size`). With `file` `None`, any row of
/// the instance (every row has the same placement). `None` when the table knows no such row.
async fn tracking_row(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    instance: &str,
    file: &str,
) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, CommandError> {
    let got = dynamodb
        .get_item()
        .table_name(table)
        .key(attr::INSTANCE_ID, AttributeValue::S(instance.to_owned()))
        .key(attr::LOG_FILE, AttributeValue::S(file.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| aws("dynamodb:GetItem", table, &e))?;
    if let Some(item) = got.item {
        return Ok(Some(item));
    }
    // The file may be gone from the table (its rows expire); the instance places it still.
    let found = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("#i = :i")
        .expression_attribute_names("#i", attr::INSTANCE_ID)
        .expression_attribute_values(":i", AttributeValue::S(instance.to_owned()))
        .limit(1)
        .send()
        .await
        .map_err(|e| aws("dynamodb:Query", table, &e))?;
    Ok(found.items().first().map(|item| {
        item.iter()
            .filter(|(k, _)| *k == attr::ENGINE || *k == attr::CLUSTER_ID)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }))
}

fn text(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The first version of `key` a verified digest names, with the source checksum it records.
async fn digested_first_version(
    s3: &aws_sdk_s3::Client,
    args: &RestoreArgs,
    key: &str,
) -> Result<Option<Records>, CommandError> {
    let Some(trusted) = trusted_key(args.public_key.as_deref(), args.key_id.as_deref()).await?
    else {
        return Ok(None);
    };
    let store = Store::S3(s3.clone());
    let prefix = audit_core::aws::s3_key_prefix(&args.digest_prefix);
    let (found, _) = store.digests(&args.bucket, &prefix, 8).await?;
    let walk = walk_chain(&found, None, &trusted, 0);
    let mut first: Option<(i64, u64, &digest::DigestedObject)> = None;
    for document in walk.verified(&found) {
        for o in document
            .objects
            .iter()
            .filter(|o| o.bucket == args.bucket && o.key == key)
        {
            let t = digest::parse_rfc3339(&o.last_modified).unwrap_or(0);
            if first.is_none_or(|(seen, _, _)| t < seen) {
                first = Some((t, document.sequence, o));
            }
        }
    }
    Ok(Some(Records {
        row: None,
        digest: first.map(|(_, sequence, o)| DigestedCopy {
            sequence,
            version_id: o.version_id.clone(),
            source_sha256: o.source_sha256.clone(),
            source_size: o.source_size,
        }),
    }))
}

pub async fn restore(args: RestoreArgs, out: &mut impl Write) -> Result<bool, CommandError> {
    let sdk = audit_core::aws::operator_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = audit_core::aws::s3_client(&sdk);
    let row = tracking_row(&dynamodb, &args.tracking_table, &args.instance, &args.file).await?;
    let Some((row, engine)) = row.and_then(|r| text(&r, attr::ENGINE).map(|e| (r, e))) else {
        return Err(CommandError::Usage(format!(
            "no such instance: {} has no files in {}",
            args.instance, args.tracking_table
        )));
    };
    let instance_prefix = backup_instance_prefix(
        &args.backup_prefix,
        &engine,
        text(&row, attr::CLUSTER_ID).as_deref(),
        &args.instance,
    );
    let copies = stored_copies(&s3, &args.bucket, &instance_prefix, &args.file, args.at).await?;
    if args.list {
        return list_copies(&args, &instance_prefix, &copies, out);
    }
    let chosen = match restore::choose(&copies, &args.file, args.at, args.lossy) {
        Ok(chosen) => chosen.clone(),
        Err(restore::ChooseError::NotAt { .. }) if args.at.is_some() => {
            // Only that day was listed: list them all to name the versions that exist.
            let all = stored_copies(&s3, &args.bucket, &instance_prefix, &args.file, None).await?;
            let error = restore::choose(&all, &args.file, args.at, args.lossy).err();
            return Err(CommandError::Usage(error.map_or_else(
                || {
                    format!(
                        "no backup of {} at {:?} under the day folder its time names",
                        args.file, args.at
                    )
                },
                |e| e.to_string(),
            )));
        }
        Err(e) => return Err(CommandError::Usage(e.to_string())),
    };
    let url = format!("s3://{}/{}", args.bucket, chosen.key);

    // Every version of the key: the first is the backup; anything later was added on top.
    let versions: Vec<StoredObject> =
        audit_core::aws::list_object_versions(&s3, &args.bucket, &chosen.key)
            .await
            .map_err(|e| aws("s3:ListObjectVersions", &url, &e))?
            .into_iter()
            .filter(|v| v.key == chosen.key)
            .map(|v| StoredObject {
                bucket: args.bucket.clone(),
                key: v.key,
                version_id: v.version_id,
                last_modified_ms: v.last_modified_ms,
                size: v.size,
            })
            .collect();
    let first = first_versions(&versions)
        .get(chosen.key.as_str())
        .map(|o| (*o).clone());

    let mut records = digested_first_version(&s3, &args, &chosen.key)
        .await?
        .unwrap_or_default();
    let digests_read = args.public_key.is_some() || args.key_id.is_some();
    if let (Some(key), Some(sha)) = (
        text(&row, attr::COPIED_KEY),
        text(&row, attr::COPIED_SHA256),
    ) {
        let size = match row.get(attr::COPIED_SIZE) {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        };
        records.row = Some((key, sha, size));
    }
    // The version to fetch: the one the digest names, else the key's first.
    let version_id = records
        .digest
        .as_ref()
        .and_then(|d| d.version_id.clone())
        .or_else(|| first.as_ref().and_then(|f| f.version_id.clone()));

    let object = s3
        .get_object()
        .bucket(&args.bucket)
        .key(&chosen.key)
        .set_version_id(version_id.clone())
        .send()
        .await
        .map_err(|e| aws("s3:GetObject", &url, &e))?;
    let expected = if chosen.lossy {
        // A lossy copy is never recorded as the backup: its own checksum is all there is.
        let metadata = object.metadata().cloned().unwrap_or_default();
        let Some(sha256) = metadata.get(backup_meta::COPY_SHA256).cloned() else {
            let _ = writeln!(
                out,
                "INVALID {url} has no {} metadata: it cannot be verified; nothing written",
                backup_meta::COPY_SHA256
            );
            return Ok(false);
        };
        Expected {
            sha256,
            size: None,
            from: "its own copy-sha256 (a lossy copy has no record outside it)".into(),
        }
    } else {
        match restore::reference(&chosen.key, &records, digests_read) {
            Ok(expected) => expected,
            Err(e) => {
                let _ = writeln!(out, "INVALID {url}: {e}");
                return Ok(false);
            }
        }
    };
    for later in versions
        .iter()
        .filter(|v| v.version_id != version_id && Some(*v) != first.as_ref())
    {
        let _ = writeln!(
            out,
            "WARNING {url} has version {} (added {}) on top of the backup: not restored; evidence is written once, so somebody else wrote it (auditkit validate reports it as overwritten)",
            later.version_id.as_deref().unwrap_or("null"),
            digest::rfc3339(later.last_modified_ms)
        );
    }

    let target = args.out.clone().unwrap_or_default();
    let mut writer = RestoreWriter::create(&target, chosen.gzip, expected.size)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let progress = (std::io::stderr().is_terminal() && chosen.stored_size > 8 << 20).then(|| {
        let bar = indicatif::ProgressBar::new(chosen.stored_size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let started = Instant::now();
    let mut body = object.body;
    let written = loop {
        let chunk = body
            .try_next()
            .await
            .map_err(|e| CommandError::Usage(format!("reading {url}: {e}; nothing written")))?;
        let Some(chunk) = chunk else { break Ok(()) };
        if let Err(e) = writer.write(&chunk) {
            break Err(e);
        }
        if let Some(bar) = &progress {
            bar.inc(chunk.len() as u64);
        }
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    match written.and_then(|()| writer.finish(&expected)) {
        Ok((sha, size)) => {
            let _ = writeln!(
                out,
                "restored {} (LastWritten {} = {}) from {url} (version {}) to {}: {size} bytes in {:.1} s, sha256 {sha} matches {}{}",
                args.file,
                chosen.last_written,
                digest::rfc3339(chosen.last_written),
                version_id.as_deref().unwrap_or("null"),
                target.display(),
                started.elapsed().as_secs_f64(),
                expected.from,
                if chosen.lossy {
                    " (a lossy copy: not the source's exact bytes)"
                } else {
                    ""
                }
            );
            Ok(true)
        }
        Err(restore::RestoreError::Io(message)) => Err(CommandError::Usage(message)),
        Err(mismatch) => {
            let _ = writeln!(
                out,
                "INVALID {url}: {mismatch} (checked against {})",
                expected.from
            );
            Ok(false)
        }
    }
}

fn list_copies(
    args: &RestoreArgs,
    instance_prefix: &str,
    copies: &[StoredCopy],
    out: &mut impl Write,
) -> Result<bool, CommandError> {
    if copies.is_empty() {
        return Err(CommandError::Usage(format!(
            "no backup of {} is stored under s3://{}/{instance_prefix}",
            args.file, args.bucket
        )));
    }
    let mut rows = vec![
        ["LAST WRITTEN (ms)", "LAST WRITTEN", "COPY", "STORED", "KEY"]
            .map(String::from)
            .to_vec(),
    ];
    for c in copies {
        rows.push(vec![
            c.last_written.to_string(),
            digest::rfc3339(c.last_written),
            match (c.lossy, c.conflict) {
                (true, _) => "lossy",
                (false, true) => "exact (beside a conflict)",
                (false, false) => "exact",
            }
            .into(),
            c.stored_size.to_string(),
            c.key.clone(),
        ]);
    }
    let _ = write!(out, "{}", status::aligned(&rows));
    Ok(true)
}
