//! The S3 adapter: listing evidence versions, hashing stored bytes, and storing digests with
//! their signatures. Nothing here decides what goes into a digest.

use crate::{DigestError, ListedVersion};
use audit_core::digest::{
    ALGORITHM_METADATA, DigestedObject, EvidenceLocation, SIGNATURE_METADATA, SIGNATURE_SUFFIX,
    SOURCE_SHA256_METADATA, SigningAlgorithm, rfc3339,
};
use audit_core::tracking::backup_meta::SIZE as SOURCE_SIZE_METADATA;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sha2::{Digest as _, Sha256};

/// How a conditional write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Written,
    /// The key exists (S3 answered 412 to `If-None-Match: *`).
    Exists,
}

/// A stored digest as read back: the gzip bytes and the signature in its metadata.
#[derive(Debug)]
pub struct StoredDigest {
    pub gzip: Vec<u8>,
    pub signature: Option<String>,
}

#[derive(Debug, Clone)]
pub struct EvidenceStore {
    pub s3: aws_sdk_s3::Client,
}

impl EvidenceStore {
    /// Every object version under `location`.
    pub async fn list_versions(
        &self,
        location: &EvidenceLocation,
    ) -> Result<Vec<ListedVersion>, DigestError> {
        let versions =
            audit_core::aws::list_object_versions(&self.s3, &location.bucket, &location.prefix)
                .await
                .map_err(|e| DigestError::aws("ListObjectVersions", &e))?;
        Ok(versions
            .into_iter()
            .map(|v| ListedVersion {
                bucket: location.bucket.clone(),
                key: v.key,
                version_id: v.version_id,
                size: v.size,
                last_modified_ms: v.last_modified_ms,
            })
            .collect())
    }

    /// The SHA-256 and size of the stored bytes of one version, streamed (memory stays at one
    /// chunk whatever the size). A version gone since it was listed is recorded as `vanished`
    /// with its listed size: a deletion inside the window must not disappear from the record.
    /// One S3 will give nobody the bytes of is recorded as `unreadable` ([`unreadable_because`])
    /// with its listed size, so one such upload cannot stop every later digest.
    pub async fn hash(&self, v: &ListedVersion) -> Result<DigestedObject, DigestError> {
        let got = self
            .s3
            .get_object()
            .bucket(&v.bucket)
            .key(&v.key)
            .set_version_id(v.version_id.clone())
            .send()
            .await;
        let unhashed = |vanished: bool, unreadable: Option<String>| DigestedObject {
            bucket: v.bucket.clone(),
            key: v.key.clone(),
            version_id: v.version_id.clone(),
            size: v.size,
            sha256: String::new(),
            last_modified: rfc3339(v.last_modified_ms),
            source_sha256: None,
            source_size: None,
            vanished,
            unreadable,
        };
        let mut object = match got {
            Ok(object) => object,
            Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchVersion")) => {
                tracing::warn!(
                    bucket = v.bucket,
                    key = v.key,
                    "listed, then gone before hashing"
                );
                return Ok(unhashed(true, None));
            }
            Err(e) => match unreadable_because(e.code(), e.message()) {
                Some(why) => {
                    tracing::warn!(
                        bucket = v.bucket,
                        key = v.key,
                        why,
                        "listed, but its bytes cannot be read: recorded as unreadable"
                    );
                    return Ok(unhashed(false, Some(why)));
                }
                None => return Err(DigestError::aws("GetObject", &e)),
            },
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = object.body.try_next().await.map_err(|e| DigestError::Aws {
            operation: "GetObject",
            message: format!("reading s3://{}/{}: {e}", v.bucket, v.key),
            retryable: true,
        })? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
        }
        let (source_sha256, source_size) = self.source_checksum(v, object.metadata()).await?;
        Ok(DigestedObject {
            bucket: v.bucket.clone(),
            key: v.key.clone(),
            version_id: v.version_id.clone(),
            size,
            sha256: hex::encode(hasher.finalize()),
            last_modified: rfc3339(v.last_modified_ms),
            source_sha256,
            source_size,
            vanished: false,
            unreadable: None,
        })
    }

    /// A backup's `source-sha256` and `source-size`: in its metadata, or (a multipart backup,
    /// whose metadata is fixed before its checksum is known) in its write-once sidecar. A
    /// sidecar that is not one (too large, not its JSON) gives nothing: the digest then names
    /// no source checksum for the object, and the sidecar itself is digested as an object.
    async fn source_checksum(
        &self,
        v: &ListedVersion,
        metadata: Option<&std::collections::HashMap<String, String>>,
    ) -> Result<(Option<String>, Option<u64>), DigestError> {
        let pick = |m: &std::collections::HashMap<String, String>| {
            (
                m.get(SOURCE_SHA256_METADATA).cloned(),
                m.get(SOURCE_SIZE_METADATA).and_then(|s| s.parse().ok()),
            )
        };
        if let Some(found) = metadata.map(pick).filter(|(sha, _)| sha.is_some()) {
            return Ok(found);
        }
        // Only a backup (it names its source from the start) can have a sidecar: other
        // evidence costs no extra request.
        let is_backup =
            metadata.is_some_and(|m| m.contains_key(audit_core::tracking::backup_meta::INSTANCE));
        if !is_backup || v.key.ends_with(audit_core::s3_upload::SIDECAR_SUFFIX) {
            return Ok((None, None));
        }
        let sidecar = audit_core::s3_upload::read_sidecar(&self.s3, &v.bucket, &v.key)
            .await
            .map_err(|e| DigestError::Aws {
                operation: e.operation,
                message: e.to_string(),
                retryable: e.retryable,
            })?;
        Ok(match sidecar {
            Some(Ok(m)) => pick(&m),
            _ => (None, None),
        })
    }

    /// A digest and the signature in its metadata; `None` when the key does not exist.
    pub async fn read_digest(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<StoredDigest>, DigestError> {
        let got = self.s3.get_object().bucket(bucket).key(key).send().await;
        let object = match got {
            Ok(object) => object,
            Err(e) if e.code() == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(DigestError::aws("GetObject", &e)),
        };
        let signature = object
            .metadata()
            .and_then(|m| m.get(SIGNATURE_METADATA))
            .cloned();
        let gzip = object
            .body
            .collect()
            .await
            .map_err(|e| DigestError::Aws {
                operation: "GetObject",
                message: format!("reading s3://{bucket}/{key}: {e}"),
                retryable: true,
            })?
            .to_vec();
        Ok(Some(StoredDigest { gzip, signature }))
    }

    /// Stores a digest, never over an existing object. The bucket's default Object Lock
    /// retention, when it has one, applies to it as to any new object.
    pub async fn put_digest(
        &self,
        bucket: &str,
        key: &str,
        gzip: Vec<u8>,
        signature: &str,
        algorithm: SigningAlgorithm,
    ) -> Result<Put, DigestError> {
        let sent = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .if_none_match("*")
            .content_type("application/gzip")
            .metadata(SIGNATURE_METADATA, signature)
            .metadata(ALGORITHM_METADATA, algorithm.as_str())
            .body(ByteStream::from(gzip))
            .send()
            .await;
        put_outcome("PutObject (digest)", sent)
    }

    /// Stores the `.sig` sidecar. One that exists already must hold the same signature (a
    /// run completing a predecessor's digest); anything else is a chain inconsistency.
    pub async fn put_sidecar(
        &self,
        bucket: &str,
        digest_key: &str,
        signature: &str,
    ) -> Result<(), DigestError> {
        let key = format!("{digest_key}{SIGNATURE_SUFFIX}");
        let sent = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("text/plain")
            .body(ByteStream::from(signature.as_bytes().to_vec()))
            .send()
            .await;
        if put_outcome("PutObject (signature)", sent)? == Put::Written {
            return Ok(());
        }
        let existing = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| DigestError::aws("GetObject", &e))?
            .body
            .collect()
            .await
            .map_err(|e| DigestError::Aws {
                operation: "GetObject",
                message: e.to_string(),
                retryable: true,
            })?
            .to_vec();
        if existing.trim_ascii() == signature.as_bytes() {
            Ok(())
        } else {
            Err(DigestError::Chain(format!(
                "s3://{bucket}/{key} exists with another signature"
            )))
        }
    }
}

/// Why S3 refuses to give anyone the bytes of a version, when that is what an error says
/// (rather than a fault of this run): an archive storage class (uploaded as one: only
/// `s3:PutObject` is needed), a customer-provided key (SSE-C), or a KMS key this role may not
/// use. Any other error fails the run, as a retry may read the object.
pub fn unreadable_because(code: Option<&str>, message: Option<&str>) -> Option<String> {
    let message = message.unwrap_or_default();
    let why = match code? {
        "InvalidObjectState" => "in an archive storage class",
        "InvalidRequest" if message.contains("Server Side Encryption") => {
            "encrypted with a customer-provided key (SSE-C)"
        }
        "AccessDenied" | "KMS.AccessDeniedException" if message.contains("kms:Decrypt") => {
            "encrypted with a KMS key this role may not use"
        }
        _ => return None,
    };
    Some(format!("{why}: {}", code.unwrap_or_default()))
}

fn put_outcome<E>(
    operation: &'static str,
    sent: Result<
        E,
        SdkError<
            aws_sdk_s3::operation::put_object::PutObjectError,
            aws_sdk_s3::config::http::HttpResponse,
        >,
    >,
) -> Result<Put, DigestError> {
    match sent {
        Ok(_) => Ok(Put::Written),
        Err(e)
            if e.code() == Some("PreconditionFailed")
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 412) =>
        {
            Ok(Put::Exists)
        }
        Err(e) => Err(DigestError::aws(operation, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::unreadable_because;

    #[test]
    fn only_errors_that_say_nobody_gets_the_bytes_make_an_object_unreadable() {
        let glacier = unreadable_because(
            Some("InvalidObjectState"),
            Some("The operation is not valid for the object's storage class"),
        );
        assert!(glacier.unwrap().contains("archive storage class"));
        let sse_c = unreadable_because(
            Some("InvalidRequest"),
            Some(
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
            ),
        );
        assert!(sse_c.unwrap().contains("SSE-C"));
        let kms = unreadable_because(
            Some("AccessDenied"),
            Some("User: arn:aws:sts::1:assumed-role/w is not authorized to perform: kms:Decrypt"),
        );
        assert!(kms.unwrap().contains("KMS key"));
        // The run's own faults stay errors: a retry may read the object.
        assert_eq!(
            unreadable_because(Some("AccessDenied"), Some("Access Denied")),
            None
        );
        assert_eq!(
            unreadable_because(Some("InvalidRequest"), Some("bad range")),
            None
        );
        assert_eq!(unreadable_because(Some("SlowDown"), None), None);
        assert_eq!(unreadable_because(None, None), None);
    }
}
