//! The S3 side of a copy: the object is written by `audit_core::s3_upload::ObjectSink` (SHA-256
//! of the source bytes, optional gzip, a multipart upload in fixed-size parts, memory bounded
//! whatever the file size, `If-None-Match: *` so S3 never replaces a key); here are what the
//! copier writes into ([`ByteSink`]), the metadata a backup carries, and the read-back that
//! measures an object found at a backup key (is it this file's bytes?).

use crate::CopyError;
use audit_core::aws::{describe, is_retryable};
pub use audit_core::s3_upload::{ObjectSink, ObjectSpec, Stored, UploadError};
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

/// What an object found at a backup key holds, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Size and SHA-256 (hex) of its bytes, gunzipped when the key ends in `.gz`.
    pub bytes: u64,
    pub sha256: String,
    /// Whether it carries its checksum (metadata, or a metadata sidecar beside it).
    pub has_checksum: bool,
}

/// Reads an object back in a stream (gunzipped when the key ends in `.gz`) and measures it;
/// `None` when there is no object at `key`. Bytes that do not decompress are measured as
/// they are stored (they cannot be this file's copy either way).
pub async fn measure_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Measured>, CopyError> {
    let failed = |e: String| upload_error("GetObject", key, e, true);
    let got = s3.get_object().bucket(bucket).key(key).send().await;
    let mut object = match got {
        Ok(object) => object,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
        Err(e) => {
            return Err(upload_error(
                "GetObject",
                key,
                describe(&e),
                is_retryable(&e),
            ));
        }
    };
    let mut has_checksum = object
        .metadata()
        .is_some_and(|m| m.contains_key(crate::meta::SHA256));
    let mut gunzip = key
        .ends_with(".gz")
        .then(|| flate2::write::GzDecoder::new(Hashing::default()));
    let mut plain = Hashing::default();
    let mut decodes = true;
    while let Some(chunk) = object
        .body
        .try_next()
        .await
        .map_err(|e| failed(e.to_string()))?
    {
        if let Some(decoder) = gunzip.as_mut()
            && decodes
            && decoder.write_all(&chunk).is_err()
        {
            decodes = false;
        }
        plain.write_all(&chunk).map_err(|e| failed(e.to_string()))?;
    }
    let hashed = match gunzip {
        Some(decoder) if decodes => decoder.finish().unwrap_or(plain),
        _ => plain,
    };
    if !has_checksum {
        has_checksum = audit_core::s3_upload::read_sidecar(s3, bucket, key)
            .await?
            .is_some_and(|sidecar| sidecar.is_ok_and(|m| m.contains_key(crate::meta::SHA256)));
    }
    Ok(Some(Measured {
        bytes: hashed.bytes,
        sha256: hex::encode(hashed.sha256.finalize()),
        has_checksum,
    }))
}
