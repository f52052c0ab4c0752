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
        if let Some((bytes, sha256)) = self.existing(&key).await? {
            self.record(order, &key, bytes, &sha256).await?;
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
            if let Some((bytes, sha256)) = self.existing(&key).await? {
                self.record(&current, &key, bytes, &sha256).await?;
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
            match self.copy_once(order, &key).await {
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

    async fn copy_once(&self, order: &CopyOrder, key: &str) -> Result<CopyOutcome, CopyError> {
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
            Stored::Created { bytes, sha256 } => {
                self.record(order, key, bytes, &sha256).await?;
                Ok(CopyOutcome::Copied {
                    key: key.to_owned(),
                    bytes,
                    sha256,
                })
            }
            Stored::AlreadyExists => {
                // Another copy of this version won the race; record what it stored. S3 said
                // the key exists but HEAD finds nothing (deleted in between, or a listing not
                // yet consistent): nothing is known of its bytes, so nothing is recorded; the
                // attempt fails and is retried.
                let (bytes, sha256) =
                    self.existing(key).await?.ok_or_else(|| CopyError::Upload {
                        operation: "HeadObject",
                        key: key.to_owned(),
                        message:
                            "S3 refused the upload because the key exists (412), but the object \
                              is not there now"
                                .to_owned(),
                        retryable: true,
                    })?;
                self.record(order, key, bytes, &sha256).await?;
                Ok(CopyOutcome::AlreadyCopied {
                    key: key.to_owned(),
                })
            }
        }
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
        // Stored now, or by an earlier attempt (If-None-Match): either way it is there.
        sink.finish(|sha256, bytes| checksum_metadata(true, sha256, bytes))
            .await?;
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

    /// Size and checksum of an existing object at `key`, from its metadata. An object without
    /// them (an earlier attempt stopped between completing a multipart upload and writing its
    /// metadata) is measured by reading it back, and its metadata completed.
    async fn existing(&self, key: &str) -> Result<Option<(u64, String)>, CopyError> {
        let head = self
            .s3
            .head_object()
            .bucket(&self.config.bucket)
            .key(key)
            .send()
            .await;
        let out = match head {
            Ok(out) => out,
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
        };
        let mut metadata = out.metadata().cloned().unwrap_or_default();
        let size = metadata.get(meta::SIZE).and_then(|v| v.parse::<u64>().ok());
        if let (Some(bytes), Some(sha256)) = (size, metadata.get(meta::SHA256)) {
            return Ok(Some((bytes, sha256.clone())));
        }
        tracing::warn!(
            key,
            "object lacks its checksum metadata; measuring and completing it"
        );
        let (bytes, sha256) = measure_object(&self.s3, &self.config.bucket, key).await?;
        metadata.insert(meta::SIZE.to_owned(), bytes.to_string());
        metadata.insert(meta::SHA256.to_owned(), sha256.clone());
        let spec = audit_core::s3_upload::ObjectSpec {
            bucket: self.config.bucket.clone(),
            key: key.to_owned(),
            metadata: HashMap::new(),
            content_type: if out.content_type() == Some("application/gzip") {
                "application/gzip"
            } else {
                "text/plain; charset=utf-8"
            },
            content_encoding: None,
        };
        audit_core::s3_upload::set_metadata(&self.s3, &spec, out.e_tag, metadata).await?;
        Ok(Some((bytes, sha256)))
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
        self.record(order, &key, hash.bytes(), &sha256).await?;
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

    /// Records the copy, on condition that no newer copy was ordered meanwhile.
    async fn record(
        &self,
        order: &CopyOrder,
        key: &str,
        bytes: u64,
        sha256: &str,
    ) -> Result<(), CopyError> {
        let n = |v: i64| AttributeValue::N(v.to_string());
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.config.tracking_table)
            .key(attr::INSTANCE_ID, AttributeValue::S(order.instance_id.clone()))
            .key(attr::LOG_FILE, AttributeValue::S(order.log_file.clone()))
            .update_expression(
                "SET #state = :copied, #copied_generation = :g, #copied_size = :bytes, \
                 #copied_last_written = :lw, #copied_key = :key, #copied_sha256 = :sha, #copied_at = :now \
                 REMOVE #last_copy_error, #last_copy_error_at",
            )
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
