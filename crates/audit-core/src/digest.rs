//! Signed, chained digests of the evidence auditkit writes: the format `digest-writer` writes
//! and the `auditkit` CLI validates.
//!
//! A digest lists every object version that appeared under the evidence prefixes in one time
//! window (bucket, key, version, size, SHA-256 of the stored bytes), what the pipeline knew
//! about the source side at that time ([`SourceCompleteness`]), and the previous digest's key
//! and signature, so the digests form one chain. Each digest is signed with an asymmetric KMS
//! key over the [`signing_string`], the scheme CloudTrail uses for its digest files:
//! `window end \n bucket/key \n hex SHA-256 of the uncompressed digest \n previous signature`.
//! The signature travels in the object's metadata and in a `<key>.sig` sidecar object, so a
//! plain copy of the bucket keeps all a validator needs. The newest digest (the chain's head)
//! is also recorded outside the bucket ([`ChainHead`], a DynamoDB item), so deleting the newest
//! digests is detected rather than read as "nothing happened since".
//!
//! Contract: a document is JSON, gzip-compressed; its `format` is [`FORMAT`]. Fields are only
//! ever added (readers ignore unknown fields), so a new evidence prefix or a new source of
//! completeness facts needs no format change.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};

/// The document format this module writes and reads.
pub const FORMAT: &str = "auditkit-digest/1";
/// Where digests live in their bucket unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "auditkit-digests/";
/// User metadata (`x-amz-meta-signature`) holding the hex signature, as CloudTrail does.
pub const SIGNATURE_METADATA: &str = "signature";
/// User metadata naming the signing algorithm.
pub const ALGORITHM_METADATA: &str = "signature-algorithm";
/// The sidecar object holding the hex signature: `<digest key>.sig`.
pub const SIGNATURE_SUFFIX: &str = ".sig";
/// Every digest's key ends with this.
pub const DIGEST_SUFFIX: &str = ".json.gz";
/// The previous signature of the chain's first digest, as the signing string spells it.
pub const NO_PREVIOUS_SIGNATURE: &str = "null";
/// The metadata (`x-amz-meta-source-sha256`) in which a backup carries the SHA-256 of the
/// source bytes before compression: `log-downloader` writes it, digests record it, and
/// `auditkit validate --deep` checks it.
pub const SOURCE_SHA256_METADATA: &str = "source-sha256";
/// KMS `Sign` takes a RAW message of at most this many bytes.
pub const MAX_RAW_MESSAGE: usize = 4096;

/// One digest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceDigest {
    pub format: String,
    /// Position in the chain: the first digest is 1, each next one adds 1.
    pub sequence: u64,
    pub kind: DigestKind,
    /// The window's start (inclusive) and end (exclusive), RFC 3339 UTC. The chain's first
    /// digest starts at the Unix epoch: it covers all evidence written before the chain began.
    pub window_start: String,
    pub window_end: String,
    /// When the digest was written.
    pub written_at: String,
    /// Where the digest was written: a copy elsewhere fails its signature.
    pub digest_bucket: String,
    pub digest_key: String,
    pub previous: Option<PreviousDigest>,
    pub signing: SigningKeyInfo,
    /// The evidence locations this digest's writer covered (the validator looks for
    /// unlisted objects in the same places).
    pub evidence: Vec<EvidenceLocation>,
    /// Sorted by bucket, key, version.
    pub objects: Vec<DigestedObject>,
    /// The source side as the pipeline knew it (hourly digests only, when a tracking table
    /// is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<SourceCompleteness>,
}

/// An hourly digest covers a window when it closes; a backfill covers objects that appeared
/// in a window after that window's digest was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestKind {
    Hourly,
    Backfill,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousDigest {
    pub bucket: String,
    pub key: String,
    /// Hex signature of the previous digest.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyInfo {
    /// The KMS key's ARN.
    pub key_id: String,
    /// Hex SHA-256 of the public key's DER `SubjectPublicKeyInfo` ([`fingerprint`]).
    pub public_key_fingerprint: String,
    pub algorithm: SigningAlgorithm,
}

/// One place evidence is written: a bucket and a key prefix in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EvidenceLocation {
    pub bucket: String,
    pub prefix: String,
}

impl EvidenceLocation {
    /// Parses `bucket/prefix` (the prefix may be empty: the whole bucket).
    pub fn parse(text: &str) -> Option<Self> {
        let (bucket, prefix) = text.split_once('/').unwrap_or((text, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        (bucket_ok && prefix.len() <= 1024 && !prefix.contains(['\r', '\n'])).then(|| {
            EvidenceLocation {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            }
        })
    }

    pub fn contains(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket && key.starts_with(&self.prefix)
    }
}

/// One stored object version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestedObject {
    pub bucket: String,
    pub key: String,
    /// `None` in a bucket without versioning.
    pub version_id: Option<String>,
    pub size: u64,
    /// Hex SHA-256 of the stored bytes (compressed, if the object is).
    pub sha256: String,
    pub last_modified: String,
    /// The object's `source-sha256` (its metadata, or for a multipart backup its write-once
    /// metadata sidecar): the SHA-256 of the bytes before compression, which `auditkit
    /// validate --deep` checks and `auditkit restore` verifies against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
    /// The object's `source-size`, read where `source_sha256` is: where a restore stops
    /// decompressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_size: Option<u64>,
    /// Listed, then gone before it could be hashed (`sha256` is empty): deleted within its
    /// window, which a validator reports as missing rather than the digest forgetting it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vanished: bool,
    /// Listed, but its bytes could not be read, and why (archive storage, or encryption with
    /// a key only its writer holds; `sha256` is empty). Recorded so the chain goes on and a
    /// validator reports the object, rather than every later run failing on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// What the pipeline knew about the source side (RDS log files) when the digest was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCompleteness {
    /// A file whose backup is missing for longer than this is `not_copied`.
    pub copy_slo_seconds: u64,
    pub files: Vec<SourceFile>,
}

/// One tracked RDS log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub instance_id: String,
    pub log_file: String,
    /// The newest size and last-written time seen at the source (epoch ms).
    pub size: i64,
    pub last_written: i64,
    pub status: SourceStatus,
    /// The backup holding the newest copied version, when it exists in the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    /// A backup of the newest version seen exists.
    Copied,
    /// Not (yet) backed up, within the copy SLO.
    Pending,
    /// Known at the source, no backup of it, for longer than the copy SLO.
    NotCopied,
}

/// The KMS signing algorithms a digest can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    #[serde(rename = "ECDSA_SHA_256")]
    EcdsaSha256,
    #[serde(rename = "RSASSA_PKCS1_V1_5_SHA_256")]
    RsaPkcs1Sha256,
    #[serde(rename = "RSASSA_PSS_SHA_256")]
    RsaPssSha256,
}

impl SigningAlgorithm {
    /// The name KMS uses (and the metadata records).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::EcdsaSha256 => "ECDSA_SHA_256",
            SigningAlgorithm::RsaPkcs1Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
            SigningAlgorithm::RsaPssSha256 => "RSASSA_PSS_SHA_256",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            SigningAlgorithm::EcdsaSha256,
            SigningAlgorithm::RsaPkcs1Sha256,
            SigningAlgorithm::RsaPssSha256,
        ]
        .into_iter()
        .find(|a| a.as_str() == name)
    }

    /// The algorithm to sign with, among those a key offers: ECDSA for an EC key, PKCS#1 v1.5
    /// for RSA (what CloudTrail's `SHA256withRSA` is); `None` for keys we cannot verify.
    pub fn preferred(offered: &[&str]) -> Option<Self> {
        [
            SigningAlgorithm::EcdsaSha256,
            SigningAlgorithm::RsaPkcs1Sha256,
            SigningAlgorithm::RsaPssSha256,
        ]
        .into_iter()
        .find(|a| offered.contains(&a.as_str()))
    }
}

/// The chain's head as recorded outside the bucket (one DynamoDB item per chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The chain's name (partition key): the digest bucket and prefix, `bucket/prefix`.
    pub chain: String,
    pub sequence: u64,
    pub digest_bucket: String,
    pub digest_key: String,
    pub signature: String,
    /// The end of the newest hourly window digested (epoch ms): evidence before it is covered.
    pub covered_until: i64,
}

/// The head item's attribute names, for expressions.
pub mod head_attr {
    pub const CHAIN: &str = "chain";
    pub const SEQUENCE: &str = "sequence";
    pub const DIGEST_BUCKET: &str = "digest_bucket";
    pub const DIGEST_KEY: &str = "digest_key";
    pub const SIGNATURE: &str = "signature";
    pub const COVERED_UNTIL: &str = "covered_until";
}

/// The chain name of digests written to `bucket` under `prefix`.
pub fn chain_name(bucket: &str, prefix: &str) -> String {
    format!("{bucket}/{prefix}")
}

/// What KMS signs for a digest (CloudTrail's scheme): the window end, where the digest is
/// stored, the hex SHA-256 of the uncompressed document, and the previous digest's signature
/// (`null` for the first).
pub fn signing_string(
    window_end: &str,
    bucket: &str,
    key: &str,
    document_sha256: &str,
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{window_end}\n{bucket}/{key}\n{document_sha256}\n{}",
        previous_signature.unwrap_or(NO_PREVIOUS_SIGNATURE)
    )
}

/// The key of the digest for the window ending at `window_end_ms`: one folder per day, named
/// by the window end; a backfill adds `_backfill_<sequence>` (a window may get several).
pub fn digest_key(prefix: &str, window_end_ms: i64, backfill_sequence: Option<u64>) -> String {
    let end = compact_time(window_end_ms);
    let day = format!("{}/{}/{}", &end[0..4], &end[4..6], &end[6..8]);
    match backfill_sequence {
        None => format!("{prefix}{day}/auditkit-digest_{end}{DIGEST_SUFFIX}"),
        Some(seq) => format!("{prefix}{day}/auditkit-digest_{end}_backfill_{seq}{DIGEST_SUFFIX}"),
    }
}

/// `20261130T070000Z`.
fn compact_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Epoch milliseconds as RFC 3339 UTC (`2026-11-30T07:00:00Z`, milliseconds shown when not 0).
pub fn rfc3339(ms: i64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let format = if ms % 1000 == 0 {
        chrono::SecondsFormat::Secs
    } else {
        chrono::SecondsFormat::Millis
    };
    time.to_rfc3339_opts(format, true)
}

/// RFC 3339 to epoch milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Hex SHA-256 of the DER public key: the digest's `public_key_fingerprint`.
pub fn fingerprint(public_key_der: &[u8]) -> String {
    hex::encode(Sha256::digest(public_key_der))
}

/// The serialized document: uncompressed JSON, its hex SHA-256 (part of the signing string),
/// and the gzip bytes stored in S3.
#[derive(Debug)]
pub struct EncodedDigest {
    pub json: Vec<u8>,
    pub sha256: String,
    pub gzip: Vec<u8>,
}

pub fn encode(digest: &EvidenceDigest) -> EncodedDigest {
    // Serialising plain structs of strings and integers cannot fail.
    let json = serde_json::to_vec(digest).unwrap_or_default();
    let sha256 = hex::encode(Sha256::digest(&json));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let gzip = gz
        .write_all(&json)
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    EncodedDigest { json, sha256, gzip }
}

/// Why a stored digest cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not gzip: {0}")]
    Gzip(std::io::Error),
    #[error("larger than {MAX_DIGEST_BYTES} bytes uncompressed")]
    TooLarge,
    #[error("not a digest document: {0}")]
    Json(serde_json::Error),
    #[error("unknown format {0:?} (this build reads {FORMAT})")]
    Format(String),
}

/// A digest names at most a few hundred thousand objects; a document larger than this is
/// hostile (a gzip bomb), not evidence.
pub const MAX_DIGEST_BYTES: u64 = 1 << 30;

/// The largest stored (compressed) digest a validator reads: a digest names each object in
/// about 120 compressed bytes, so this is room for about two million objects in one window.
/// A larger object under the digest prefix is a finding, never a read.
pub const MAX_STORED_DIGEST_BYTES: u64 = 256 << 20;

/// The largest `.sig` sidecar a validator reads (a hex signature is at most 1,024 characters
/// for RSA-4096).
pub const MAX_SIGNATURE_SIDECAR_BYTES: u64 = 1024;

/// Reads a stored (gzip) digest: the document and the hex SHA-256 of its uncompressed bytes.
pub fn decode(gzip: &[u8]) -> Result<(EvidenceDigest, String), DecodeError> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gzip)
        .take(MAX_DIGEST_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(DecodeError::Gzip)?;
    if json.len() as u64 > MAX_DIGEST_BYTES {
        return Err(DecodeError::TooLarge);
    }
    let sha256 = hex::encode(Sha256::digest(&json));
    let digest: EvidenceDigest = serde_json::from_slice(&json).map_err(DecodeError::Json)?;
    if digest.format != FORMAT {
        return Err(DecodeError::Format(digest.format));
    }
    Ok((digest, sha256))
}

/// Checks `signature` (raw bytes) over `message` with a DER `SubjectPublicKeyInfo` public key.
pub fn verify_signature(
    public_key_der: &[u8],
    algorithm: SigningAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> bool {
    use aws_lc_rs::signature as sig;
    let verifier: &'static dyn sig::VerificationAlgorithm = match algorithm {
        SigningAlgorithm::EcdsaSha256 => &sig::ECDSA_P256_SHA256_ASN1,
        SigningAlgorithm::RsaPkcs1Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        SigningAlgorithm::RsaPssSha256 => &sig::RSA_PSS_2048_8192_SHA256,
    };
    sig::UnparsedPublicKey::new(verifier, public_key_der)
        .verify(message, signature)
        .is_ok()
}

/// A DER public key as PEM (`-----BEGIN PUBLIC KEY-----`), what `openssl` and most tools read.
pub fn public_key_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("PUBLIC KEY", der.to_vec()))
}

/// The DER bytes of a PEM public key.
pub fn public_key_from_pem(text: &str) -> Result<Vec<u8>, String> {
    let block = pem::parse(text).map_err(|e| format!("not a PEM file: {e}"))?;
    if block.tag() != "PUBLIC KEY" {
        return Err(format!(
            "expected a PUBLIC KEY block, found {:?}",
            block.tag()
        ));
    }
    Ok(block.into_contents())
}

#[cfg(test)]
mod tests;
