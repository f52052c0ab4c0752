//! Writing one S3 object from a stream, never over an existing one: the bytes go through
//! SHA-256 and (optionally) gzip into a multipart upload in fixed-size parts, at most two in
//! flight, so memory is about three parts whatever the object's size. The object is created
//! with `If-None-Match: *` (on `PutObject` for a single part, on `CompleteMultipartUpload`
//! otherwise): S3 itself refuses to replace a key. log-downloader stores log files with it,
//! audit-api its monthly archives.
//!
//! Metadata known only at the end (a checksum) is given to [`ObjectSink::finish`]; a multipart
//! object, whose metadata is fixed when the upload starts, then gets it by a copy onto itself
//! conditioned on its ETag ([`set_metadata`]), so its bytes never change.

use crate::aws::{describe, is_retryable};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
pub use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use tokio::task::JoinSet;

/// Parts uploading while the next one fills.
const PARTS_IN_FLIGHT: usize = 2;

/// An S3 call that failed while writing an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} {key}: {message}")]
pub struct UploadError {
    pub operation: &'static str,
    pub key: String,
    pub message: String,
    pub retryable: bool,
}

fn failed(operation: &'static str, key: &str, message: String, retryable: bool) -> UploadError {
    UploadError {
        operation,
        key: key.to_owned(),
        message,
        retryable,
    }
}

/// The object to write.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub bucket: String,
    pub key: String,
    /// Known before the first byte (more can be added at [`ObjectSink::finish`]).
    pub metadata: HashMap<String, String>,
    pub content_type: &'static str,
    /// `gzip` for an object whose readers should decompress it transparently.
    pub content_encoding: Option<&'static str>,
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The object was created: bytes written (before compression) and their SHA-256 (hex).
    Created { bytes: u64, sha256: String },
    /// An object with this key already exists (S3 answered 412 to `If-None-Match: *`).
    AlreadyExists,
}

enum Buffer {
    Gzip(Box<GzEncoder<Vec<u8>>>),
    Plain(Vec<u8>),
}

impl Buffer {
    fn pending(&mut self) -> &mut Vec<u8> {
        match self {
            Buffer::Gzip(encoder) => encoder.get_mut(),
            Buffer::Plain(buffer) => buffer,
        }
    }
}

/// An object being written. Call [`ObjectSink::finish`] or [`ObjectSink::abort`].
pub struct ObjectSink {
    s3: aws_sdk_s3::Client,
    spec: ObjectSpec,
    part_size: usize,
    buffer: Buffer,
    sha256: Sha256,
    bytes: u64,
    upload_id: Option<String>,
    next_part: i32,
    in_flight: JoinSet<Result<CompletedPart, UploadError>>,
    done: Vec<CompletedPart>,
}

impl std::fmt::Debug for ObjectSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSink")
            .field("key", &self.spec.key)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl ObjectSink {
    /// `gzip`: the level to compress at, or `None` to store the bytes as they are.
    pub fn new(
        s3: aws_sdk_s3::Client,
        spec: ObjectSpec,
        part_size: usize,
        gzip: Option<Compression>,
    ) -> Self {
        // Room for one part plus what the encoder may add before the part is taken, so the
        // buffer never reallocates to double its size.
        let capacity = part_size + 256 * 1024;
        let buffer = match gzip {
            Some(level) => Buffer::Gzip(Box::new(GzEncoder::new(
                Vec::with_capacity(capacity),
                level,
            ))),
            None => Buffer::Plain(Vec::with_capacity(capacity)),
        };
        ObjectSink {
            s3,
            spec,
            part_size,
            buffer,
            sha256: Sha256::new(),
            bytes: 0,
            upload_id: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            done: Vec::new(),
        }
    }

    /// Bytes written so far (before compression).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends bytes.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.sha256.update(chunk);
        self.bytes += chunk.len() as u64;
        match &mut self.buffer {
            Buffer::Gzip(encoder) => encoder
                .write_all(chunk)
                .map_err(|e| failed("gzip", &self.spec.key, e.to_string(), false))?,
            Buffer::Plain(buffer) => buffer.extend_from_slice(chunk),
        }
        while self.buffer.pending().len() >= self.part_size {
            let rest = self.buffer.pending().split_off(self.part_size);
            let part = std::mem::replace(self.buffer.pending(), rest);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn upload_part(&mut self, part: Vec<u8>) -> Result<(), UploadError> {
        if self.upload_id.is_none() {
            let created = self
                .s3
                .create_multipart_upload()
                .bucket(&self.spec.bucket)
                .key(&self.spec.key)
                .set_metadata(Some(self.spec.metadata.clone()))
                .content_type(self.spec.content_type)
                .set_content_encoding(self.spec.content_encoding.map(str::to_owned))
                .send()
                .await
                .map_err(|e| {
                    failed(
                        "CreateMultipartUpload",
                        &self.spec.key,
                        describe(&e),
                        is_retryable(&e),
                    )
                })?;
            self.upload_id = created.upload_id;
        }
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.join_one().await?;
        }
        let number = self.next_part;
        self.next_part += 1;
        let request = self
            .s3
            .upload_part()
            .bucket(&self.spec.bucket)
            .key(&self.spec.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .part_number(number)
            .body(ByteStream::from(part));
        let key = self.spec.key.clone();
        self.in_flight.spawn(async move {
            let out = request
                .send()
                .await
                .map_err(|e| failed("UploadPart", &key, describe(&e), is_retryable(&e)))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build())
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), UploadError> {
        if let Some(joined) = self.in_flight.join_next().await {
            let part =
                joined.map_err(|e| failed("UploadPart", &self.spec.key, e.to_string(), true))??;
            self.done.push(part);
        }
        Ok(())
    }

    /// Completes the object (a single `PutObject` when it fits in one part). `completed`
    /// gives the metadata known only now, from the SHA-256 (hex) and size of what was written.
    pub async fn finish(
        mut self,
        completed: impl FnOnce(&str, u64) -> HashMap<String, String>,
    ) -> Result<Stored, UploadError> {
        let tail = match std::mem::replace(&mut self.buffer, Buffer::Plain(Vec::new())) {
            Buffer::Gzip(encoder) => encoder
                .finish()
                .map_err(|e| failed("gzip", &self.spec.key, e.to_string(), false))?,
            Buffer::Plain(buffer) => buffer,
        };
        let sha256 = hex::encode(self.sha256.clone().finalize());
        let added = completed(&sha256, self.bytes);
        let mut metadata = self.spec.metadata.clone();
        metadata.extend(added.clone());
        let created = Stored::Created {
            bytes: self.bytes,
            sha256,
        };

        let Some(upload_id) = self.upload_id.clone() else {
            let put = self
                .s3
                .put_object()
                .bucket(&self.spec.bucket)
                .key(&self.spec.key)
                .if_none_match("*")
                .set_metadata(Some(metadata))
                .content_type(self.spec.content_type)
                .set_content_encoding(self.spec.content_encoding.map(str::to_owned))
                .body(ByteStream::from(tail))
                .send()
                .await;
            return match put {
                Ok(_) => Ok(created),
                Err(e) if precondition_failed(&e) => Ok(Stored::AlreadyExists),
                Err(e) => Err(failed(
                    "PutObject",
                    &self.spec.key,
                    describe(&e),
                    is_retryable(&e),
                )),
            };
        };
        if !tail.is_empty() || self.next_part == 1 {
            self.upload_part(tail).await?;
        }
        while !self.in_flight.is_empty() {
            if let Err(e) = self.join_one().await {
                self.abort_upload(&upload_id).await;
                return Err(e);
            }
        }
        self.done.sort_by_key(|p| p.part_number());
        let completed = self
            .s3
            .complete_multipart_upload()
            .bucket(&self.spec.bucket)
            .key(&self.spec.key)
            .upload_id(&upload_id)
            .if_none_match("*")
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.done)))
                    .build(),
            )
            .send()
            .await;
        match completed {
            Ok(out) => {
                if !added.is_empty() {
                    set_metadata(&self.s3, &self.spec, out.e_tag, metadata).await?;
                }
                Ok(created)
            }
            Err(e) if precondition_failed(&e) => {
                self.abort_upload(&upload_id).await;
                Ok(Stored::AlreadyExists)
            }
            Err(e) => {
                self.abort_upload(&upload_id).await;
                Err(failed(
                    "CompleteMultipartUpload",
                    &self.spec.key,
                    describe(&e),
                    is_retryable(&e),
                ))
            }
        }
    }

    /// Drops what was uploaded (nothing becomes visible).
    pub async fn abort(mut self) {
        self.in_flight.abort_all();
        if let Some(upload_id) = self.upload_id.clone() {
            self.abort_upload(&upload_id).await;
        }
    }

    async fn abort_upload(&self, upload_id: &str) {
        let aborted = self
            .s3
            .abort_multipart_upload()
            .bucket(&self.spec.bucket)
            .key(&self.spec.key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            // A lifecycle rule removes incomplete uploads; nothing is lost.
            tracing::warn!(key = %self.spec.key, error = %describe(&e), "AbortMultipartUpload failed");
        }
    }
}

/// Replaces an object's metadata by copying it onto itself, only if it is still exactly the
/// object with `etag`, so its bytes never change. Used after a multipart upload, whose metadata
/// is fixed before the checksum is known, and to repair an object whose first attempt failed
/// between completing the upload and this step.
pub async fn set_metadata(
    s3: &aws_sdk_s3::Client,
    spec: &ObjectSpec,
    etag: Option<String>,
    metadata: HashMap<String, String>,
) -> Result<(), UploadError> {
    s3.copy_object()
        .bucket(&spec.bucket)
        .key(&spec.key)
        .copy_source(copy_source(&spec.bucket, &spec.key))
        .set_copy_source_if_match(etag)
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .set_metadata(Some(metadata))
        .content_type(spec.content_type)
        .set_content_encoding(spec.content_encoding.map(str::to_owned))
        .send()
        .await
        .map_err(|e| failed("CopyObject", &spec.key, describe(&e), is_retryable(&e)))?;
    Ok(())
}

/// `CopySource` is `bucket/key` URL-encoded (the `/` between path segments kept): a key with
/// `%`, `+`, `?`, `#` or a space would otherwise name another object or none.
pub fn copy_source(bucket: &str, key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!(
        "{}/{}",
        percent_encoding::utf8_percent_encode(bucket, KEEP),
        percent_encoding::utf8_percent_encode(key, KEEP)
    )
}

/// S3's answer to `If-None-Match: *` when the key exists: 412 `PreconditionFailed`.
pub fn precondition_failed<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    error.code() == Some("PreconditionFailed")
        || error
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 412)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_are_url_encoded_keeping_the_path() {
        assert_eq!(
            copy_source("backups", "rds-logs/db-1/audit/server audit+log%1?#.gz"),
            "backups/rds-logs/db-1/audit/server%20audit%2Blog%251%3F%23.gz"
        );
        assert_eq!(
            copy_source("b", "a/b.c-d_e~f"),
            "b/a/b.c-d_e~f",
            "unreserved characters and slashes stay"
        );
    }
}
