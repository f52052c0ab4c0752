//! The command line: `auditkit validate`, `digest-public-key`, `status`, `restore` and
//! `history`.

use crate::store::{Store, StoreError};
use crate::validate::{
    ObjectState, Problem, StoredObject, TrustedKey, covered_until, expected_objects, judge_object,
    not_copied, overwritten, unlisted, walk_chain,
};
use audit_core::digest::{self, ChainHead, DEFAULT_PREFIX, head_attr};
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use std::io::Write;
use std::path::PathBuf;

/// auditkit: the operator's view of the evidence auditkit writes.
#[derive(Debug, Parser)]
#[command(name = "auditkit", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the signed digest chain and every object it names, on S3 or on a local copy.
    ///
    /// Exit status: 0 all valid, 1 something is invalid, 2 usage or access error.
    ///
    /// Examples:
    ///   auditkit validate --bucket my-backups --key-id arn:aws:kms:eu-west-1:111122223333:key/abcd
    ///   auditkit validate --bucket my-backups --public-key digest-public-key.pem --start-time 2026-11-01
    ///   aws s3 sync s3://my-backups evidence/my-backups && \
    ///     auditkit validate --dir evidence --public-key digest-public-key.pem
    #[command(verbatim_doc_comment)]
    Validate(ValidateArgs),
    /// Write the digest signing key's public key (PEM) for offline validation.
    ///
    /// Example:
    ///   auditkit digest-public-key --key-id alias/auditkit-digests --out digest-public-key.pem
    #[command(verbatim_doc_comment)]
    DigestPublicKey {
        /// The KMS key (ARN, id or alias).
        #[arg(long)]
        key_id: String,
        /// Where to write the PEM file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Where each instance's audit-log backup stands: files tracked, newest source and backup
    /// LastWritten, lag, ordered/stalled/failed copies, and the newest digest's age.
    ///
    /// Lag: for files whose listed version is not copied yet, the time since the newest copy's
    /// last write (writes after it exist only on the instance). Exit status: 0 every lag within
    /// --max-lag, 1 some lag over it (or an unreadable tracking row), 2 usage or access error.
    ///
    /// Examples:
    ///   auditkit status --tracking-table auditkit-tracking --bucket my-backups
    ///   auditkit status --tracking-table auditkit-tracking --instance db-1 --max-lag 90m --json
    ///   AUDITKIT_TRACKING_TABLE=auditkit-tracking auditkit status || page-the-dba
    #[command(verbatim_doc_comment)]
    Status(crate::operate::StatusArgs),
    /// Restore one backed-up log file, verified against the SHA-256 of the source bytes.
    ///
    /// The newest copy by default, or the version copied at --at (the file's LastWritten in
    /// epoch ms, as --list shows). The key's first object version is restored (anything added
    /// on top is named, never restored), checked against the checksum the pipeline recorded:
    /// the tracking row, or with --public-key/--key-id the signed digests. The file appears at
    /// --out only once verified; a mismatch leaves nothing. Exit status: 0 restored (or listed), 1 verification failed, 2 usage
    /// or access error (no such instance, no backup at that time, --out exists).
    ///
    /// Examples:
    ///   auditkit restore --bucket my-backups --tracking-table auditkit-tracking \
    ///     --instance db-1 --file audit/audit.log.0.2024-01-04-08-30.0 --list
    ///   auditkit restore --bucket my-backups --tracking-table auditkit-tracking \
    ///     --instance db-1 --file audit/audit.log.0.2024-01-04-08-30.0 --at 1704357690097 --out audit.log
    #[command(verbatim_doc_comment)]
    Restore(crate::restore_command::RestoreArgs),
    /// One DynamoDB item's change history from the change log in S3, oldest first, with what
    /// changed at each step; no Athena needed.
    ///
    /// Reads only the hourly folders of the range, several objects at once. Over --max-scan it
    /// prints the equivalent Athena query instead. Exit status: 0 changes found, 1 none in the
    /// range, 2 usage or access error (or a range too large to read here).
    ///
    /// Examples:
    ///   auditkit history --bucket my-backups --table Orders --key orderId=101
    ///   auditkit history --bucket my-backups --table Events --key pk=u#7,sk=2026-11-30 \
    ///     --since 2026-11-29 --until 2026-11-30T12:00:00Z --json
    ///   auditkit history --bucket my-backups --table Orders --key orderId=101 --since 2026-01-01 --athena
    #[command(verbatim_doc_comment)]
    History(crate::operate::HistoryArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["bucket", "dir"]).multiple(true)))]
#[command(group(clap::ArgGroup::new("key").required(true).args(["key_id", "public_key"])))]
pub struct ValidateArgs {
    /// The bucket holding the digests (with --dir: its folder name under DIR; found when DIR
    /// holds one bucket with digests).
    #[arg(long)]
    pub bucket: Option<String>,
    /// A local copy: DIR/<bucket>/<key> for each evidence bucket.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The digests' key prefix.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    pub digest_prefix: String,
    /// Validate evidence modified at or after this time (RFC 3339 or YYYY-MM-DD; default: all).
    #[arg(long)]
    pub start_time: Option<String>,
    /// ... and before this time (default: now).
    #[arg(long)]
    pub end_time: Option<String>,
    /// The signing KMS key; its public key is fetched with kms:GetPublicKey.
    #[arg(long)]
    pub key_id: Option<String>,
    /// The signing key's public key (PEM), as `auditkit digest-public-key` writes it.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// The DynamoDB table holding the chain head: detects deleted newest digests.
    #[arg(long)]
    pub head_table: Option<String>,
    /// Also decompress each backup and check it against its source-sha256.
    #[arg(long)]
    pub deep: bool,
    /// Print every digest and object, valid or not.
    #[arg(long)]
    pub verbose: bool,
    /// Objects hashed at once.
    #[arg(long, default_value_t = default_parallelism())]
    pub parallel: usize,
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().max(2))
}

/// What ends a command: a usage or access error (exit 2); findings exit 1 through `Ok(false)`.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `--flag` as epoch ms: RFC 3339 or a date (midnight UTC).
pub(crate) fn parse_time(flag: &str, text: &str) -> Result<i64, CommandError> {
    digest::parse_rfc3339(text)
        .or_else(|| digest::parse_rfc3339(&format!("{text}T00:00:00Z")))
        .ok_or_else(|| {
            CommandError::Usage(format!(
                "{flag}: {text:?} is not a time (use RFC 3339, e.g. 2026-11-30T07:00:00Z, or a date)"
            ))
        })
}

/// Runs a command, printing to `out`. `Ok(true)` when everything checked is valid.
pub async fn run(cli: Cli, out: &mut impl Write) -> Result<bool, CommandError> {
    match cli.command {
        Command::Validate(args) => validate(args, out).await,
        Command::Status(args) => crate::operate::status(args, out).await,
        Command::Restore(args) => crate::restore_command::restore(args, out).await,
        Command::History(args) => crate::operate::history(args, out).await,
        Command::DigestPublicKey { key_id, out: path } => {
            let der = public_key(&key_id).await?;
            std::fs::write(&path, digest::public_key_pem(&der))
                .map_err(|e| CommandError::Usage(format!("{}: {e}", path.display())))?;
            let _ = writeln!(
                out,
                "wrote {} (fingerprint {})",
                path.display(),
                digest::fingerprint(&der)
            );
            Ok(true)
        }
    }
}

async fn public_key(key_id: &str) -> Result<Vec<u8>, CommandError> {
    let sdk = audit_core::aws::operator_sdk_config().await;
    let got = aws_sdk_kms::Client::new(&sdk)
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .map_err(|e| {
            CommandError::Usage(format!(
                "kms:GetPublicKey {key_id}: {}",
                audit_core::aws::describe(&e)
            ))
        })?;
    got.public_key()
        .map(|b| b.as_ref().to_vec())
        .ok_or_else(|| CommandError::Usage(format!("{key_id}: no public key returned")))
}

/// The key digests must be signed with: a PEM file (`--public-key`), or the KMS key's public
/// key (`--key-id`); `None` when neither is given.
pub(crate) async fn trusted_key(
    pem: Option<&std::path::Path>,
    key_id: Option<&str>,
) -> Result<Option<TrustedKey>, CommandError> {
    let der = match (pem, key_id) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CommandError::Usage(format!("--public-key {}: {e}", path.display()))
            })?;
            digest::public_key_from_pem(&text)
                .map_err(|e| CommandError::Usage(format!("--public-key {}: {e}", path.display())))?
        }
        (None, Some(id)) => public_key(id).await?,
        (None, None) => return Ok(None),
    };
    Ok(Some(TrustedKey::new(der)))
}

/// Finds the single bucket folder under `dir` that holds digests.
fn digest_bucket_in(dir: &std::path::Path, prefix: &str) -> Result<String, CommandError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CommandError::Usage(format!("--dir {}: {e}", dir.display())))?;
    let found: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(prefix).is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CommandError::Usage(format!(
            "no folder under {} holds {prefix}: pass --bucket",
            dir.display()
        ))),
        many => Err(CommandError::Usage(format!(
            "several folders under {} hold {prefix} ({}): pass --bucket",
            dir.display(),
            many.join(", ")
        ))),
    }
}

async fn chain_head(
    table: &str,
    bucket: &str,
    prefix: &str,
) -> Result<Option<ChainHead>, CommandError> {
    let sdk = audit_core::aws::operator_sdk_config().await;
    let got = aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(table)
        .key(
            head_attr::CHAIN,
            aws_sdk_dynamodb::types::AttributeValue::S(digest::chain_name(bucket, prefix)),
        )
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| {
            CommandError::Usage(format!(
                "dynamodb:GetItem {table}: {}",
                audit_core::aws::describe(&e)
            ))
        })?;
    match got.item {
        // A chain claimed but never committed has no head yet.
        Some(item) if item.contains_key(head_attr::SEQUENCE) => {
            serde_dynamo::from_item(item).map(Some).map_err(|e| {
                CommandError::Usage(format!("the head item in {table} is unreadable: {e}"))
            })
        }
        _ => Ok(None),
    }
}

async fn validate(args: ValidateArgs, out: &mut impl Write) -> Result<bool, CommandError> {
    let prefix = audit_core::aws::s3_key_prefix(&args.digest_prefix);
    let start = args
        .start_time
        .as_deref()
        .map(|t| parse_time("--start-time", t))
        .transpose()?
        .unwrap_or(0);
    let end = args
        .end_time
        .as_deref()
        .map(|t| parse_time("--end-time", t))
        .transpose()?
        .unwrap_or_else(audit_core::now_ms);
    if end <= start {
        return Err(CommandError::Usage(
            "--end-time must be after --start-time".into(),
        ));
    }
    let (store, bucket) = match &args.dir {
        Some(dir) => {
            let bucket = match &args.bucket {
                Some(b) => b.clone(),
                None => digest_bucket_in(dir, &prefix)?,
            };
            (Store::Dir(dir.clone()), bucket)
        }
        None => {
            let sdk = audit_core::aws::operator_sdk_config().await;
            let bucket = args.bucket.clone().unwrap_or_default();
            (Store::S3(audit_core::aws::s3_client(&sdk)), bucket)
        }
    };
    let key = trusted_key(args.public_key.as_deref(), args.key_id.as_deref())
        .await?
        .ok_or_else(|| CommandError::Usage("pass --key-id or --public-key".into()))?;
    let head = match &args.head_table {
        Some(table) => chain_head(table, &bucket, &prefix).await?,
        None => None,
    };
    let _ = writeln!(
        out,
        "Validating evidence digested under {} from {} to {}",
        store.name(&bucket, &prefix),
        digest::rfc3339(start),
        digest::rfc3339(end)
    );
    if args.head_table.is_none() {
        let _ = writeln!(
            out,
            "note: without --head-table, deleting the newest digests cannot be told from \"nothing happened since\""
        );
    }

    let (found, digest_versions) = store
        .digests(&bucket, &prefix, args.parallel.max(8))
        .await?;
    let walk = walk_chain(&found, head.as_ref(), &key, start);
    let mut problems: Vec<Problem> = walk.problems.clone();
    // A local copy holds one file per key: only the digests can show a second version there.
    let versions_of = |listed: &[StoredObject]| -> Vec<StoredObject> {
        if store.by_version() {
            listed.to_vec()
        } else {
            Vec::new()
        }
    };
    problems.extend(overwritten(&versions_of(&digest_versions), &found, &walk));
    if args.verbose {
        for (i, ok) in &walk.visited {
            if *ok {
                let _ = writeln!(
                    out,
                    "valid digest {}",
                    store.name(&found[*i].bucket, &found[*i].key)
                );
            }
        }
    }

    let expected = expected_objects(&found, &walk, start, end, store.by_version());
    // A version added on top of its key's first is never valid; the key's `overwritten`
    // line names it, so it is neither fetched nor reported again.
    let checks = futures_util::stream::iter(expected.iter().filter(|o| !o.is_later))
        .map(|o| {
            let store = &store;
            async move {
                if o.vanished || o.unreadable.is_some() {
                    // Nothing to fetch: judged from the digest alone.
                    return Ok((o, ObjectState::Absent));
                }
                store.check(o, args.deep).await.map(|state| (o, state))
            }
        })
        .buffered(args.parallel.max(1));
    futures_util::pin_mut!(checks);
    let mut objects_valid = 0usize;
    let mut archived = std::collections::BTreeMap::<String, usize>::new();
    while let Some(checked) = checks.next().await {
        let (object, state): (_, ObjectState) = checked?;
        let name = store.name(&object.bucket, &object.key);
        match judge_object(object, &state, &name) {
            Some(problem) => problems.push(problem),
            None if let ObjectState::Archived { storage_class, .. } = &state => {
                *archived.entry(storage_class.clone()).or_default() += 1;
                if args.verbose {
                    let _ = writeln!(
                        out,
                        "archived object {name} ({storage_class}): size matches, bytes not read"
                    );
                }
            }
            None => {
                objects_valid += 1;
                if args.verbose {
                    let _ = writeln!(out, "valid object {name}");
                }
            }
        }
    }

    // Evidence locations as the newest verified digest names them.
    let newest = walk.verified(&found).max_by_key(|d| d.sequence);
    if let Some(document) = newest {
        let until = covered_until(&found, &walk).min(end);
        let mut stored = Vec::new();
        for location in &document.evidence {
            stored.extend(store.list(&location.bucket, &location.prefix).await?);
        }
        problems.extend(unlisted(
            &stored,
            &found,
            &walk,
            start,
            until,
            store.by_version(),
        ));
        problems.extend(overwritten(&versions_of(&stored), &found, &walk));
    }

    problems.extend(not_copied(&found, &walk));
    if let Store::Dir(_) = store {
        // A local copy names objects by path.
        for p in &mut problems {
            if let Some((bucket, key)) =
                p.what.strip_prefix("s3://").and_then(|r| r.split_once('/'))
            {
                p.what = store.name(bucket, key);
            }
        }
    }
    problems.sort_by(|a, b| (a.reason, &a.what).cmp(&(b.reason, &b.what)));
    // A key's versions are seen from the listing of its location and from the digests.
    problems.dedup();
    for problem in &problems {
        let _ = writeln!(out, "{problem}");
    }
    let _ = writeln!(out, "Results:");
    let _ = writeln!(
        out,
        "{}/{} digest files valid",
        walk.digests_valid(),
        walk.digests_examined()
    );
    let _ = writeln!(out, "{objects_valid}/{} objects valid", expected.len());
    for (storage_class, count) in &archived {
        // Not a finding: the stack's own lifecycle rule moves backups there. Not proven either.
        let _ = writeln!(
            out,
            "{count} objects in {storage_class}: the size their digest records; bytes not read (restore them from {storage_class} to check those)"
        );
    }
    if walk.digests_examined() == 0 {
        let _ = writeln!(out, "no digests found: nothing is proven");
        return Ok(false);
    }
    Ok(problems.is_empty())
}
