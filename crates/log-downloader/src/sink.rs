//! The S3 side of a copy: the object is written by `audit_core::s3_upload::ObjectSink` (SHA-256
//! of the source bytes, optional gzip, a multipart upload in fixed-size parts, memory bounded
//! whatever the file size, `If-None-Match: *` so S3 never replaces a key); here are what the
//! copier writes into ([`ByteSink`]), the metadata a backup carries, and the read-back that
//! repairs a backup whose checksum metadata was never written.

use crate::CopyError;
use audit_core::aws::{describe, is_retryable};
pub use audit_core::s3_upload::{ObjectSink, ObjectSpec, Stored, UploadError, copy_source};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;

impl From<UploadError> for CopyError {
    fn from(e: UploadError) -> Self {
        CopyError::Upload {
            operation: e.operation,
            key: e.key,
            message: e.message,
            retryable: e.retryable,
        }
    }
}

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
        Ok(ObjectSink::write(self, chunk).await?)
    }

    fn bytes(&self) -> u64 {
        ObjectSink::bytes(self)
    }
}

/// The object a copy writes: its key, the source's identity (known before the first byte),
/// and how it is typed.
pub fn backup_spec(
    bucket: &str,
    key: &str,
    metadata: HashMap<String, String>,
    compress: bool,
) -> ObjectSpec {
    ObjectSpec {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        metadata,
        content_type: if compress {
            "application/gzip"
        } else {
            "text/plain; charset=utf-8"
        },
        content_encoding: None,
    }
}

/// The metadata a finished copy adds: `source-sha256` and `source-size` for an exact copy;
/// `copy-sha256` with `copy-fidelity: lossy` for one whose bytes are not the source's.
pub fn checksum_metadata(lossy: bool, sha256: &str, bytes: u64) -> HashMap<String, String> {
    let meta = |k: &str, v: String| (k.to_owned(), v);
    if lossy {
        HashMap::from([
            meta(crate::meta::FIDELITY, "lossy".to_owned()),
            meta(crate::meta::COPY_SHA256, sha256.to_owned()),
        ])
    } else {
        HashMap::from([
            meta(crate::meta::SHA256, sha256.to_owned()),
            meta(crate::meta::SIZE, bytes.to_string()),
        ])
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
