//! One copy order, start to end: re-list the file, recognise a copy that already exists (a
//! replay, or the same file under an earlier name), download (REST, else the Portion API) into
//! a checksummed, never-overwriting upload, and record the copy on the tracking row (or note
//! why it failed).

use crate::download::{RestOutcome, download_portions};
use crate::handler::Copier;
use crate::sink::{
    ByteSink, HashSink, ObjectSink, Stored, backup_spec, checksum_metadata, measure_object,
};
use crate::{CopyError, CopyOrder, CopyOutcome, backup_key, meta};
use audit_core::aws::{describe, is_retryable};
use audit_core::backoff::Backoff;
use audit_core::tracking::attr;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Whether a conditional `UpdateItem` of the tracking row applied: `false` when its condition
/// failed (a newer order exists), an error for anything else.
fn applied<T>(
    result: Result<
        T,
        aws_sdk_dynamodb::error::SdkError<
            UpdateItemError,
            aws_sdk_dynamodb::config::http::HttpResponse,
        >,
    >,
) -> Result<bool, CopyError> {
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(CopyError::Table {
            message: describe(&e),
            retryable: is_retryable(&e),
        }),
    }
}

/// Time an attempt is assumed to need: a retry starts only with at least this much left.
pub const RETRY_MARGIN: Duration = Duration::from_secs(60);

fn time_left(deadline: Option<std::time::SystemTime>) -> Duration {
    deadline.map_or(Duration::MAX, |d| {
        d.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    })
}

impl Copier {
    /// Copies one ordered version and records it, with no time limit.
    pub async fn copy(&self, order: &CopyOrder) -> Result<CopyOutcome, CopyError> {
        self.copy_before(order, None).await
    }

    /// Copies one ordered version and records it; no new attempt starts when less than
    /// [`RETRY_MARGIN`] remains before `deadline`, so the invocation ends in time to report its
    /// partial batch response instead of timing out (which would retry every record).
    pub async fn copy_before(
        &self,
        order: &CopyOrder,
        deadline: Option<std::time::SystemTime>,
    ) -> Result<CopyOutcome, CopyError> {
        let key = backup_key(&self.config.prefix, order, self.config.compress);
        if let Some((bytes, sha256)) = self.recorded_replay(order, &key).await? {
            self.record(order, &key, bytes, &sha256, None).await?;
            return Ok(CopyOutcome::AlreadyCopied { key });
        }
        // What the name holds now decides the key: a rename rotation between the order and
        // this copy (`.1` became `.2`, a larger file became `.1`) must not store the new
        // file's bytes under the ordered version's key and time.
        let Some(current) = self.as_listed_now(order).await? else {
            self.release(order).await?;
            return Ok(CopyOutcome::SourceReplaced);
        };
        let (order, key) = if current.last_written == order.last_written {
            (order, key)
        } else {
            tracing::info!(file = %order.log_file, ordered = order.last_written,
                now = current.last_written, "the file changed since the order; copying what it holds now");
            let key = backup_key(&self.config.prefix, &current, self.config.compress);
            if let Some((bytes, sha256)) = self.recorded_replay(&current, &key).await? {
                self.record(&current, &key, bytes, &sha256, None).await?;
                return Ok(CopyOutcome::AlreadyCopied { key });
            }
            (&current, key)
        };
        let order = order.clone();
        let order = &order;
        if let Some(key) = self.already_copied_as_another_name(order).await? {
            return Ok(CopyOutcome::AlreadyCopied { key });
        }
        let backoff = Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(10),
            self.config.attempts,
        );
        let mut attempt = 1;
        loop {
            match self.copy_once(order, &key, None).await {
                Ok(outcome) => return Ok(outcome),
                Err(e)
                    if audit_core::Classify::retryable(&e)
                        && attempt < self.config.attempts
                        && time_left(deadline) > RETRY_MARGIN =>
                {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "copy attempt failed; retrying");
                    tokio::time::sleep(backoff.delay(attempt)).await;
                }
                Err(e) => {
                    self.note_failure(order, &e).await;
                    return Err(e);
                }
            }
        }
    }

    /// Writes why the due version was not copied on its row (`last_copy_error`), so a file
    /// that stays due says why: a line over 1 MB on the Portion API, a download that kept
    /// ending short. Best effort: the stream record is reported failed either way.
    async fn note_failure(&self, order: &CopyOrder, error: &CopyError) {
        let code = audit_core::Classify::code(error);
        if audit_core::Classify::retryable(error) {
            tracing::warn!(file = %order.log_file, instance = %order.instance_id, code, %error, "copy failed");
        } else {
            tracing::error!(file = %order.log_file, instance = %order.instance_id, code, %error,
                "copy failed and will fail again until the source changes");
        }
        let result = self
            .update_due_row(order)
            .update_expression("SET #error = :error, #error_at = :now")
            .expression_attribute_names("#error", attr::LAST_COPY_ERROR)
            .expression_attribute_names("#error_at", attr::LAST_COPY_ERROR_AT)
            .expression_attribute_values(":error", AttributeValue::S(code.to_owned()))
            .expression_attribute_values(
                ":now",
                AttributeValue::N(audit_core::now_ms().to_string()),
            )
            .send()
            .await;
        if let Err(e) = applied(result) {
            tracing::warn!(error = %e, "the copy failure was not noted on the tracking row");
        }
    }

    fn sink(&self, order: &CopyOrder, key: &str) -> ObjectSink {
        let metadata = HashMap::from([
            (meta::INSTANCE.to_owned(), order.instance_id.clone()),
            (meta::FILE.to_owned(), order.log_file.clone()),
            (
                meta::LAST_WRITTEN.to_owned(),
                order.last_written.to_string(),
            ),
            (meta::GENERATION.to_owned(), order.generation.to_string()),
        ]);
        ObjectSink::new(
            self.s3.clone(),
            backup_spec(&self.config.bucket, key, metadata, self.config.compress),
            self.config.part_size,
            // Fast: a copy must keep pace with the download; the logs compress well anyway.
            self.config
                .compress
                .then(audit_core::s3_upload::Compression::fast),
        )
    }

    /// One attempt at storing `order` at `key`. `squatted`: the key an object the downloader
    /// did not write holds, when `key` is the conflict key beside it.
    async fn copy_once(
        &self,
        order: &CopyOrder,
        key: &str,
        squatted: Option<&str>,
    ) -> Result<CopyOutcome, CopyError> {
        let mut sink = self.sink(order, key);
        match self.download(order, &mut sink).await {
            Ok(()) => {}
            Err(CopyError::Lossy { .. }) => {
                sink.abort().await;
                return self.copy_lossy(order, key).await;
            }
            Err(e) => {
                sink.abort().await;
                return Err(e);
            }
        }
        let expected = u64::try_from(order.size).unwrap_or(0);
        if sink.bytes() < expected {
            let got = sink.bytes();
            sink.abort().await;
            if self.source_replaced(order).await? {
                self.release(order).await?;
                return Ok(CopyOutcome::SourceReplaced);
            }
            return Err(CopyError::Short {
                file: order.log_file.clone(),
                got,
                expected,
            });
        }
        match sink
            .finish(|sha256, bytes| checksum_metadata(false, sha256, bytes))
            .await?
        {
            Stored::Created {
                bytes,
                sha256,
                sidecar_conflict: false,
            } => {
                self.record(order, key, bytes, &sha256, squatted).await?;
                Ok(match squatted {
                    None => CopyOutcome::Copied {
                        key: key.to_owned(),
                        bytes,
                        sha256,
                    },
                    Some(squatted) => CopyOutcome::Conflict {
                        squatted: squatted.to_owned(),
                        key: key.to_owned(),
                        bytes,
                        sha256,
                    },
                })
            }
            Stored::Created { bytes, sha256, .. } => {
                // The object is ours; its metadata sidecar was written first by somebody
                // else. The row holds the true checksum; the sidecar is named as the conflict.
                let sidecar = audit_core::s3_upload::sidecar_key(key);
                self.record(order, key, bytes, &sha256, Some(&sidecar))
                    .await?;
                Ok(CopyOutcome::Conflict {
                    squatted: sidecar,
                    key: key.to_owned(),
                    bytes,
                    sha256,
                })
            }
            Stored::AlreadyExists { bytes, sha256 } => {
                self.judge_existing(order, key, bytes, &sha256, squatted)
                    .await
            }
        }
    }

    /// S3 refused the upload because `key` exists. The object is accepted as this copy only
    /// when it provably holds the same source bytes (read back, decompressed and hashed:
    /// another attempt of this copy that was not recorded, or a concurrent one). Anything
    /// else was not written by the downloader: it is left as it is, named on the row, and the
    /// genuine copy is stored beside it under a key derived from the source's hash.
    async fn judge_existing(
        &self,
        order: &CopyOrder,
        key: &str,
        bytes: u64,
        sha256: &str,
        squatted: Option<&str>,
    ) -> Result<CopyOutcome, CopyError> {
        // S3 said the key exists but nothing is there now (deleted in between, or a listing
        // not yet consistent): nothing is known of its bytes; the attempt is retried.
        let found = measure_object(&self.s3, &self.config.bucket, key)
            .await?
            .ok_or_else(|| CopyError::Upload {
                operation: "GetObject",
                key: key.to_owned(),
                message: "S3 refused the upload because the key exists (412), but the object \
                          is not there now"
                    .to_owned(),
                retryable: true,
            })?;
        if found.bytes == bytes && found.sha256 == sha256 {
            if !found.has_checksum {
                // An earlier attempt stopped between its multipart upload and its sidecar.
                let metadata = checksum_metadata(false, sha256, bytes);
                audit_core::s3_upload::write_sidecar(&self.s3, &self.config.bucket, key, &metadata)
                    .await?;
            }
            self.record(order, key, bytes, sha256, squatted).await?;
            return Ok(CopyOutcome::AlreadyCopied {
                key: key.to_owned(),
            });
        }
        if let Some(squatted) = squatted {
            // The conflict key too holds bytes that are not this file's.
            return Err(CopyError::Conflict {
                key: key.to_owned(),
                squatted: squatted.to_owned(),
            });
        }
        let beside = crate::conflict_key(key, sha256);
        tracing::error!(file = %order.log_file, instance = %order.instance_id, key,
            found_bytes = found.bytes, found_sha256 = %found.sha256, source_bytes = bytes,
            source_sha256 = sha256, genuine_copy = %beside,
            "an object the downloader did not write holds this file's backup key; storing the genuine copy beside it");
        Box::pin(self.copy_once(order, &beside, Some(key))).await
    }

    /// The Portion API cannot return this file's bytes exactly: better a marked copy than none.
    /// It goes beside the exact copy's key (`.lossy`), says `copy-fidelity: lossy` and has no
    /// `source-sha256`; the row is not recorded as copied (it stays due, so the detector orders
    /// it again after `STALLED_COPY_AFTER`, when an exact REST copy may succeed) and names
    /// `LossyCopy` as its last error.
    async fn copy_lossy(&self, order: &CopyOrder, key: &str) -> Result<CopyOutcome, CopyError> {
        let lossy_key = crate::lossy_key(key);
        let mut sink = self.sink(order, &lossy_key);
        if let Err(e) = download_portions(&self.rds, order, &mut sink, true).await {
            sink.abort().await;
            return Err(e);
        }
        let bytes = sink.bytes();
        // Stored now, or by an earlier attempt (If-None-Match). A lossy copy is never recorded
        // as the backup, so an object found at its key is left for the next exact attempt.
        if let Stored::AlreadyExists { .. } = sink
            .finish(|sha256, bytes| checksum_metadata(true, sha256, bytes))
            .await?
        {
            tracing::warn!(key = %lossy_key, "a lossy copy's key is taken; this lossy copy is not stored");
        }
        self.note_failure(
            order,
            &CopyError::Lossy {
                file: order.log_file.clone(),
            },
        )
        .await;
        Ok(CopyOutcome::Lossy {
            key: lossy_key,
            bytes,
        })
    }

    async fn download(&self, order: &CopyOrder, sink: &mut impl ByteSink) -> Result<(), CopyError> {
        if !self.rest_refused.load(Ordering::Relaxed) {
            match self.rest.download(order, sink).await? {
                RestOutcome::Copied => return Ok(()),
                RestOutcome::Refused(why) => {
                    tracing::warn!(reason = %why, "downloadCompleteLogFile refused; using DownloadDBLogFilePortion");
                    self.rest_refused.store(true, Ordering::Relaxed);
                }
            }
        }
        download_portions(&self.rds, order, sink, false).await
    }

    /// A replay of a copy already recorded: the object is at `key` and the tracking row
    /// (written only by the pipeline) records that key as this file's copy, with its size and
    /// SHA-256. The object's own metadata is never the proof: anybody who can write to the
    /// bucket can set it.
    async fn recorded_replay(
        &self,
        order: &CopyOrder,
        key: &str,
    ) -> Result<Option<(u64, String)>, CopyError> {
        let head = self
            .s3
            .head_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await;
        match head {
            Ok(_) => {}
            Err(e) if matches!(e.as_service_error(), Some(HeadObjectError::NotFound(_))) => {
                return Ok(None);
            }
            Err(e) => {
                return Err(CopyError::Upload {
                    operation: "HeadObject",
                    key: key.to_owned(),
                    message: describe(&e),
                    retryable: is_retryable(&e),
                });
            }
        }
        let row = self
            .dynamodb
            .get_item()
            .table_name(&self.config.tracking_table)
            .key(
                attr::INSTANCE_ID,
                AttributeValue::S(order.instance_id.clone()),
            )
            .key(attr::LOG_FILE, AttributeValue::S(order.log_file.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| CopyError::Table {
                message: describe(&e),
                retryable: is_retryable(&e),
            })?;
        let item = row.item.unwrap_or_default();
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
        let size = item
            .get(attr::COPIED_SIZE)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok());
        Ok(
            match (text(attr::COPIED_KEY), text(attr::COPIED_SHA256), size) {
                (Some(recorded), Some(sha256), Some(size)) if recorded == key => {
                    Some((size, sha256.clone()))
                }
                _ => None,
            },
        )
    }

    /// Rename rotation (RDS MySQL/MariaDB: `server_audit.log` -> `.1` -> `.2`) shows the same
    /// file under a new name, with its size and `LastWritten` kept. When a copy of the same
    /// instance has exactly that size and time under another name, the file is hashed (not
    /// stored); the same SHA-256 records this name against the existing object instead of
    /// storing the bytes again. Returns that object's key.
    async fn already_copied_as_another_name(
        &self,
        order: &CopyOrder,
    ) -> Result<Option<String>, CopyError> {
        let table = |e: String, retryable: bool| CopyError::Table {
            message: e,
            retryable,
        };
        let n = |v: i64| AttributeValue::N(v.to_string());
        let mut pages = self
            .dynamodb
            .query()
            .table_name(&self.config.tracking_table)
            .key_condition_expression("#instance = :instance")
            .filter_expression(
                "#state = :copied AND #size = :size AND #lw = :lw AND #file <> :file",
            )
            .expression_attribute_names("#instance", attr::INSTANCE_ID)
            .expression_attribute_names("#state", attr::STATE)
            .expression_attribute_names("#size", attr::COPIED_SIZE)
            .expression_attribute_names("#lw", attr::COPIED_LAST_WRITTEN)
            .expression_attribute_names("#file", attr::LOG_FILE)
            .expression_attribute_values(":instance", AttributeValue::S(order.instance_id.clone()))
            .expression_attribute_values(":copied", AttributeValue::S("copied".into()))
            .expression_attribute_values(":size", n(order.size))
            .expression_attribute_values(":lw", n(order.last_written))
            .expression_attribute_values(":file", AttributeValue::S(order.log_file.clone()))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut candidate = None;
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| table(describe(&e), is_retryable(&e)))?;
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            if let (Some(key), Some(sha256)) = (text(attr::COPIED_KEY), text(attr::COPIED_SHA256)) {
                candidate = Some((key, sha256));
                break;
            }
        }
        let Some((key, sha256)) = candidate else {
            return Ok(None);
        };
        let mut hash = HashSink::default();
        match self.download(order, &mut hash).await {
            Ok(()) => {}
            // Not exactly readable: not provably the same file.
            Err(CopyError::Lossy { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        if hash.sha256() != sha256 {
            return Ok(None);
        }
        tracing::info!(file = %order.log_file, %key, "already backed up under another name (rename rotation); recorded against that object");
        self.record(order, &key, hash.bytes(), &sha256, None)
            .await?;
        Ok(Some(key))
    }

    /// The order as RDS lists the file now (its current size and last-written time), or
    /// `None` when the name is gone or holds fewer bytes than were ordered (another file).
    async fn as_listed_now(&self, order: &CopyOrder) -> Result<Option<CopyOrder>, CopyError> {
        Ok(self.listed(order).await?.and_then(|(size, last_written)| {
            (size >= order.size).then(|| CopyOrder {
                size,
                last_written,
                ..order.clone()
            })
        }))
    }

    /// The file's `(Size, LastWritten)` as RDS lists it now.
    async fn listed(&self, order: &CopyOrder) -> Result<Option<(i64, i64)>, CopyError> {
        let listed = self
            .rds
            .describe_db_log_files()
            .db_instance_identifier(&order.instance_id)
            .filename_contains(&order.log_file)
            .send()
            .await
            .map_err(|e| CopyError::Download {
                file: order.log_file.clone(),
                message: format!("DescribeDBLogFiles: {}", describe(&e)),
                retryable: is_retryable(&e),
            })?;
        Ok(listed
            .describe_db_log_files()
            .iter()
            .find(|f| f.log_file_name() == Some(order.log_file.as_str()))
            .map(|f| (f.size().unwrap_or(0), f.last_written().unwrap_or(0))))
    }

    /// Whether RDS still lists this version under this name (false: it was replaced).
    async fn source_replaced(&self, order: &CopyOrder) -> Result<bool, CopyError> {
        Ok(self
            .listed(order)
            .await?
            .is_none_or(|(size, _)| size < order.size))
    }

    /// An update of the order's row, on condition that it is still due for this order's
    /// generation (a newer order, or a recorded copy, is left alone): `#state`, `:due`, `:g`
    /// are bound; the caller adds its expression.
    fn update_due_row(
        &self,
        order: &CopyOrder,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.dynamodb
            .update_item()
            .table_name(&self.config.tracking_table)
            .key(
                attr::INSTANCE_ID,
                AttributeValue::S(order.instance_id.clone()),
            )
            .key(attr::LOG_FILE, AttributeValue::S(order.log_file.clone()))
            .condition_expression("#due_generation = :g AND #state = :due")
            .expression_attribute_names("#state", attr::STATE)
            .expression_attribute_names("#due_generation", attr::DUE_GENERATION)
            .expression_attribute_values(":due", AttributeValue::S("due".into()))
            .expression_attribute_values(":g", AttributeValue::N(order.generation.to_string()))
    }

    /// Hands an order that cannot be carried out back to the detector: the row returns to
    /// `observed` (if no newer order exists), so the next poll orders whatever the name holds now
    /// instead of waiting for `STALLED_COPY_AFTER`.
    async fn release(&self, order: &CopyOrder) -> Result<(), CopyError> {
        let result = self
            .update_due_row(order)
            .update_expression("SET #state = :observed")
            .expression_attribute_values(":observed", AttributeValue::S("observed".into()))
            .send()
            .await;
        applied(result).map(|_| ())
    }

    /// Records the copy, on condition that no newer copy was ordered meanwhile. `squatted`:
    /// the key where an object the downloader did not write was found instead (kept on the
    /// row as `copy_conflict`; a copy without one clears it).
    async fn record(
        &self,
        order: &CopyOrder,
        key: &str,
        bytes: u64,
        sha256: &str,
        squatted: Option<&str>,
    ) -> Result<(), CopyError> {
        let n = |v: i64| AttributeValue::N(v.to_string());
        let expression = match squatted {
            None => {
                "SET #state = :copied, #copied_generation = :g, #copied_size = :bytes, \
                 #copied_last_written = :lw, #copied_key = :key, #copied_sha256 = :sha, #copied_at = :now \
                 REMOVE #last_copy_error, #last_copy_error_at, #copy_conflict"
            }
            Some(_) => {
                "SET #state = :copied, #copied_generation = :g, #copied_size = :bytes, \
                 #copied_last_written = :lw, #copied_key = :key, #copied_sha256 = :sha, #copied_at = :now, \
                 #copy_conflict = :squatted REMOVE #last_copy_error, #last_copy_error_at"
            }
        };
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.config.tracking_table)
            .key(
                attr::INSTANCE_ID,
                AttributeValue::S(order.instance_id.clone()),
            )
            .key(attr::LOG_FILE, AttributeValue::S(order.log_file.clone()))
            .update_expression(expression)
            .set_expression_attribute_values(squatted.map(|s| {
                HashMap::from([(":squatted".to_owned(), AttributeValue::S(s.to_owned()))])
            }))
            .condition_expression("#due_generation = :g")
            .set_expression_attribute_names(Some(
                [
                    attr::STATE,
                    attr::DUE_GENERATION,
                    attr::COPIED_GENERATION,
                    attr::COPIED_SIZE,
                    attr::COPIED_LAST_WRITTEN,
                    attr::COPIED_KEY,
                    attr::COPIED_SHA256,
                    attr::COPIED_AT,
                    attr::LAST_COPY_ERROR,
                    attr::LAST_COPY_ERROR_AT,
                    attr::COPY_CONFLICT,
                ]
                .iter()
                .map(|a| (format!("#{a}"), (*a).to_owned()))
                .collect(),
            ))
            .expression_attribute_values(":copied", AttributeValue::S("copied".into()))
            .expression_attribute_values(":g", n(order.generation))
            .expression_attribute_values(":bytes", n(i64::try_from(bytes).unwrap_or(i64::MAX)))
            .expression_attribute_values(":lw", n(order.last_written))
            .expression_attribute_values(":key", AttributeValue::S(key.to_owned()))
            .expression_attribute_values(":sha", AttributeValue::S(sha256.to_owned()))
            .expression_attribute_values(":now", n(audit_core::now_ms()))
            .send()
            .await;
        if !applied(result)? {
            tracing::info!(
                key,
                "a newer copy was ordered meanwhile; this copy stays in S3, unrecorded"
            );
        }
        Ok(())
    }
}
