//! The S3 side of a copy: SHA-256 of the source bytes, optional gzip, and a multipart upload
//! in fixed-size parts with at most two parts in flight, so memory is bounded by about three
//! parts whatever the file size. Objects are created with `If-None-Match: *`: S3 itself refuses
//! to overwrite an existing key.

use crate::CopyError;
use audit_core::aws::{describe, is_retryable};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use tokio::task::JoinSet;

/// Parts uploading while the next one fills.
const PARTS_IN_FLIGHT: usize = 2;

/// Where downloaded bytes go: an object being uploaded ([`ObjectSink`]), or only their
/// checksum ([`HashSink`], to recognise a file already backed up under another name).
pub trait ByteSink: Send {
    /// Appends source bytes.
    fn write(
        &mut self,
        chunk: &[u8],
    ) -> impl std::future::Future<Output = Result<(), CopyError>> + Send;
    /// Source bytes written so far.
    fn bytes(&self) -> u64;
}

/// Counts and hashes the bytes, stores nothing.
#[derive(Debug, Default)]
pub struct HashSink {
    sha256: sha2::Sha256,
    bytes: u64,
}

impl HashSink {
    /// The SHA-256 (hex) of what was written.
    pub fn sha256(&self) -> String {
        hex::encode(self.sha256.clone().finalize())
    }
}

impl ByteSink for HashSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        self.sha256.update(chunk);
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl ByteSink for ObjectSink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        ObjectSink::write(self, chunk).await
    }

    fn bytes(&self) -> u64 {
        ObjectSink::bytes(self)
    }
}

/// Where the object goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub bucket: String,
    pub key: String,
    pub metadata: HashMap<String, String>,
    /// Whether the bytes are known not to be the source's: the checksum is then recorded as
    /// `copy-sha256` with `copy-fidelity: lossy`, never as `source-sha256`.
    pub lossy: bool,
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The object was created: source bytes and their SHA-256 (hex).
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
    target: Target,
    part_size: usize,
    buffer: Buffer,
    sha256: Sha256,
    bytes: u64,
    upload_id: Option<String>,
    next_part: i32,
    in_flight: JoinSet<Result<CompletedPart, CopyError>>,
    done: Vec<CompletedPart>,
}

impl std::fmt::Debug for ObjectSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSink")
            .field("key", &self.target.key)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

fn upload_error(operation: &'static str, key: &str, message: String, retryable: bool) -> CopyError {
    CopyError::Upload {
        operation,
        key: key.to_owned(),
        message,
        retryable,
    }
}

impl ObjectSink {
    pub fn new(s3: aws_sdk_s3::Client, target: Target, part_size: usize, compress: bool) -> Self {
        // Room for one part plus what the encoder may add before the part is taken, so the
        // buffer never reallocates to double its size.
        let capacity = part_size + 256 * 1024;
        let buffer = if compress {
            Buffer::Gzip(Box::new(GzEncoder::new(
                Vec::with_capacity(capacity),
                Compression::fast(),
            )))
        } else {
            Buffer::Plain(Vec::with_capacity(capacity))
        };
        ObjectSink {
            s3,
            target,
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

    /// Source bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends source bytes.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        self.sha256.update(chunk);
        self.bytes += chunk.len() as u64;
        match &mut self.buffer {
            Buffer::Gzip(encoder) => encoder
                .write_all(chunk)
                .map_err(|e| upload_error("gzip", &self.target.key, e.to_string(), false))?,
            Buffer::Plain(buffer) => buffer.extend_from_slice(chunk),
        }
        while self.buffer.pending().len() >= self.part_size {
            let rest = self.buffer.pending().split_off(self.part_size);
            let part = std::mem::replace(self.buffer.pending(), rest);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn upload_part(&mut self, part: Vec<u8>) -> Result<(), CopyError> {
        if self.upload_id.is_none() {
            let created = self
                .s3
                .create_multipart_upload()
                .bucket(&self.target.bucket)
                .key(&self.target.key)
                .set_metadata(Some(self.target.metadata.clone()))
                .content_type(self.content_type())
                .send()
                .await
                .map_err(|e| {
                    upload_error(
                        "CreateMultipartUpload",
                        &self.target.key,
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
            .bucket(&self.target.bucket)
            .key(&self.target.key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .part_number(number)
            .body(ByteStream::from(part));
        let key = self.target.key.clone();
        self.in_flight.spawn(async move {
            let out = request
                .send()
                .await
                .map_err(|e| upload_error("UploadPart", &key, describe(&e), is_retryable(&e)))?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build())
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), CopyError> {
        if let Some(joined) = self.in_flight.join_next().await {
            let part = joined
                .map_err(|e| upload_error("UploadPart", &self.target.key, e.to_string(), true))??;
            self.done.push(part);
        }
        Ok(())
    }

    fn content_type(&self) -> &'static str {
        match self.buffer {
            Buffer::Gzip(_) => "application/gzip",
            Buffer::Plain(_) => "text/plain; charset=utf-8",
        }
    }

    /// Completes the object (single `PutObject` when it fits in one part).
    pub async fn finish(mut self) -> Result<Stored, CopyError> {
        let content_type = self.content_type();
        let tail = match std::mem::replace(&mut self.buffer, Buffer::Plain(Vec::new())) {
            Buffer::Gzip(encoder) => encoder
                .finish()
                .map_err(|e| upload_error("gzip", &self.target.key, e.to_string(), false))?,
            Buffer::Plain(buffer) => buffer,
        };
        let sha256 = hex::encode(self.sha256.clone().finalize());
        let mut metadata = self.target.metadata.clone();
        if self.target.lossy {
            metadata.insert(crate::meta::FIDELITY.to_owned(), "lossy".to_owned());
            metadata.insert(crate::meta::COPY_SHA256.to_owned(), sha256.clone());
        } else {
            metadata.insert(crate::meta::SHA256.to_owned(), sha256.clone());
            metadata.insert(crate::meta::SIZE.to_owned(), self.bytes.to_string());
        }

        let Some(upload_id) = self.upload_id.clone() else {
            let put = self
                .s3
                .put_object()
                .bucket(&self.target.bucket)
                .key(&self.target.key)
                .if_none_match("*")
                .set_metadata(Some(metadata))
                .content_type(content_type)
                .body(ByteStream::from(tail))
                .send()
                .await;
            return match put {
                Ok(_) => Ok(Stored::Created {
                    bytes: self.bytes,
                    sha256,
                }),
                Err(e) if precondition_failed(&e) => Ok(Stored::AlreadyExists),
                Err(e) => Err(upload_error(
                    "PutObject",
                    &self.target.key,
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
            .bucket(&self.target.bucket)
            .key(&self.target.key)
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
                // A multipart object's metadata is fixed when the upload starts, before the
                // checksum is known: set it now (the bytes never change, see `set_metadata`).
                set_metadata(
                    &self.s3,
                    &self.target.bucket,
                    &self.target.key,
                    out.e_tag,
                    metadata,
                    content_type,
                )
                .await?;
                Ok(Stored::Created {
                    bytes: self.bytes,
                    sha256,
                })
            }
            Err(e) if precondition_failed(&e) => {
                self.abort_upload(&upload_id).await;
                Ok(Stored::AlreadyExists)
            }
            Err(e) => {
                self.abort_upload(&upload_id).await;
                Err(upload_error(
                    "CompleteMultipartUpload",
                    &self.target.key,
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
            .bucket(&self.target.bucket)
            .key(&self.target.key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            // The bucket's lifecycle rule removes incomplete uploads; nothing is lost.
            tracing::warn!(key = %self.target.key, error = %describe(&e), "AbortMultipartUpload failed");
        }
    }
}

/// Replaces an object's metadata by copying it onto itself, only if it is still exactly the
/// object with `etag`, so its bytes never change. Used after a multipart upload, whose metadata
/// is fixed before the checksum is known, and to repair an object whose first attempt failed
/// between completing the upload and this step.
pub async fn set_metadata(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    etag: Option<String>,
    metadata: HashMap<String, String>,
    content_type: &str,
) -> Result<(), CopyError> {
    s3.copy_object()
        .bucket(bucket)
        .key(key)
        .copy_source(copy_source(bucket, key))
        .set_copy_source_if_match(etag)
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .set_metadata(Some(metadata))
        .content_type(content_type)
        .send()
        .await
        .map_err(|e| upload_error("CopyObject", key, describe(&e), is_retryable(&e)))?;
    Ok(())
}

/// Counts and hashes what is written to it.
#[derive(Default)]
struct Hashing {
    sha256: Sha256,
    bytes: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.sha256.update(buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Source size and SHA-256 (hex) of a stored object, read back in a stream and gunzipped when
/// the key ends in `.gz`: for repairing an object whose checksum metadata was never written.
pub async fn measure_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<(u64, String), CopyError> {
    let failed = |e: String| upload_error("GetObject", key, e, true);
    let mut object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| upload_error("GetObject", key, describe(&e), is_retryable(&e)))?;
    let mut gunzip = key
        .ends_with(".gz")
        .then(|| flate2::write::GzDecoder::new(Hashing::default()));
    let mut plain = Hashing::default();
    while let Some(chunk) = object
        .body
        .try_next()
        .await
        .map_err(|e| failed(e.to_string()))?
    {
        match gunzip.as_mut() {
            Some(decoder) => decoder
                .write_all(&chunk)
                .map_err(|e| failed(e.to_string()))?,
            None => plain.write_all(&chunk).map_err(|e| failed(e.to_string()))?,
        }
    }
    let hashed = match gunzip {
        Some(decoder) => decoder.finish().map_err(|e| failed(e.to_string()))?,
        None => plain,
    };
    Ok((hashed.bytes, hex::encode(hashed.sha256.finalize())))
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
fn precondition_failed<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    error.code() == Some("PreconditionFailed")
        || error
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 412)
}
