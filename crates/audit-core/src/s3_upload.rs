//! Writing one S3 object from a stream, never over an existing one: the bytes go through
//! SHA-256 and (optionally) gzip into a multipart upload in fixed-size parts, at most two in
//! flight, so memory is about three parts whatever the object's size. The object is created
//! with `If-None-Match: *` (on `PutObject` for a single part, on `CompleteMultipartUpload`
//! otherwise): S3 itself refuses to replace a key. log-downloader stores log files with it,
//! audit-api its monthly archives.
//!
//! Metadata known only at the end (a checksum) is given to [`ObjectSink::finish`]. A single
//! part carries it on its `PutObject`. A multipart object's metadata is fixed when the upload
//! starts, and a copy onto itself would create a second version of the key (which a validator
//! must treat as an overwrite), so that metadata goes into a write-once sidecar object beside
//! it ([`sidecar_key`], JSON, created with `If-None-Match: *`). Every key is written once.

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
    /// `sidecar_conflict`: the multipart object's metadata sidecar was already there holding
    /// something else (somebody wrote it first); the object itself is ours.
    Created {
        bytes: u64,
        sha256: String,
        sidecar_conflict: bool,
    },
    /// An object with this key already exists (S3 answered 412 to `If-None-Match: *`); what
    /// this upload would have stored: bytes (before compression) and their SHA-256.
    AlreadyExists { bytes: u64, sha256: String },
}

/// The sidecar that holds a multipart object's metadata known only at its end.
pub const SIDECAR_SUFFIX: &str = ".meta.json";

/// A sidecar is a few fields; anything larger is not one of ours and is not read.
pub const SIDECAR_MAX_BYTES: u64 = 1024;

/// The key of `key`'s metadata sidecar.
pub fn sidecar_key(key: &str) -> String {
    format!("{key}{SIDECAR_SUFFIX}")
}

/// A sidecar's body: the metadata as one JSON object of strings, keys sorted.
pub fn sidecar_body(metadata: &HashMap<String, String>) -> Vec<u8> {
    let sorted: std::collections::BTreeMap<&String, &String> = metadata.iter().collect();
    serde_json::to_vec(&sorted).unwrap_or_default()
}

/// Reads a sidecar's body back; anything but a small JSON object of strings is refused.
pub fn parse_sidecar(body: &[u8]) -> Result<HashMap<String, String>, String> {
    if body.len() as u64 > SIDECAR_MAX_BYTES {
        return Err(format!(
            "{} bytes, over the {SIDECAR_MAX_BYTES}-byte bound of a sidecar",
            body.len()
        ));
    }
    serde_json::from_slice(body).map_err(|e| format!("not a metadata sidecar: {e}"))
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
        let exists = Stored::AlreadyExists {
            bytes: self.bytes,
            sha256: sha256.clone(),
        };
        let mut created = Stored::Created {
            bytes: self.bytes,
            sha256,
            sidecar_conflict: false,
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
                Err(e) if precondition_failed(&e) => Ok(exists),
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
            Ok(_) => {
                if !added.is_empty()
                    && write_sidecar(&self.s3, &self.spec.bucket, &self.spec.key, &added).await?
                        == SidecarWrite::Conflict
                    && let Stored::Created {
                        sidecar_conflict, ..
                    } = &mut created
                {
                    *sidecar_conflict = true;
                }
                Ok(created)
            }
            Err(e) if precondition_failed(&e) => {
                self.abort_upload(&upload_id).await;
                Ok(exists)
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

/// How writing a sidecar ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarWrite {
    /// Created now, or found holding exactly this metadata (an earlier attempt wrote it).
    Written,
    /// Found holding something else: not ours, and left as it is (never replaced).
    Conflict,
}

/// Creates `key`'s metadata sidecar with `If-None-Match: *`. Used after a multipart upload,
/// and to complete an object whose first attempt stopped between its upload and its sidecar.
pub async fn write_sidecar(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    metadata: &HashMap<String, String>,
) -> Result<SidecarWrite, UploadError> {
    let sidecar = sidecar_key(key);
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(&sidecar)
        .if_none_match("*")
        .content_type("application/json")
        .body(ByteStream::from(sidecar_body(metadata)))
        .send()
        .await;
    match put {
        Ok(_) => Ok(SidecarWrite::Written),
        Err(e) if precondition_failed(&e) => match read_sidecar(s3, bucket, key).await? {
            Some(Ok(found)) if &found == metadata => Ok(SidecarWrite::Written),
            _ => Ok(SidecarWrite::Conflict),
        },
        Err(e) => Err(failed(
            "PutObject",
            &sidecar,
            describe(&e),
            is_retryable(&e),
        )),
    }
}

/// `key`'s metadata sidecar: `None` when there is none, `Some(Err)` when what is there is not
/// a sidecar (too large to be one, or not its JSON); never reads more than the bound.
pub async fn read_sidecar(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Result<HashMap<String, String>, String>>, UploadError> {
    let sidecar = sidecar_key(key);
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(&sidecar)
        .range(format!("bytes=0-{SIDECAR_MAX_BYTES}"))
        .send()
        .await;
    let object = match got {
        Ok(object) => object,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
            return Ok(None);
        }
        Err(e) => {
            return Err(failed(
                "GetObject",
                &sidecar,
                describe(&e),
                is_retryable(&e),
            ));
        }
    };
    let body = object
        .body
        .collect()
        .await
        .map_err(|e| failed("GetObject", &sidecar, e.to_string(), true))?
        .into_bytes();
    Ok(Some(parse_sidecar(&body)))
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
    fn a_sidecar_reads_back_what_was_written_and_refuses_anything_else() {
        let metadata = HashMap::from([
            ("source-sha256".to_owned(), "ab".repeat(32)),
            ("source-size".to_owned(), "12".to_owned()),
        ]);
        assert_eq!(parse_sidecar(&sidecar_body(&metadata)).unwrap(), metadata);
        assert_eq!(sidecar_key("a/b.gz"), "a/b.gz.meta.json");
        let large = vec![b' '; SIDECAR_MAX_BYTES as usize + 1];
        assert!(
            parse_sidecar(&large)
                .unwrap_err()
                .contains("over the 1024-byte bound")
        );
        assert!(
            parse_sidecar(b"[1,2]")
                .unwrap_err()
                .contains("not a metadata sidecar")
        );
        assert!(parse_sidecar(br#"{"a": 1}"#).is_err(), "values are strings");
    }

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
