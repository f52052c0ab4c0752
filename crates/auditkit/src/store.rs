//! Where `auditkit validate` reads evidence: S3 (every object version, endpoints and
//! credentials from the standard AWS variables) or a local copy of the buckets
//! (`DIR/<bucket>/<key>`, as `aws s3 sync` makes it, a file's modification time standing for
//! the object's `LastModified`). Hashing streams: memory stays at one buffer per object in
//! flight, whatever the size.

use crate::validate::{ExpectedObject, FoundDigest, ObjectState, StoredObject};
use audit_core::digest::{self, DIGEST_SUFFIX, SIGNATURE_METADATA, SIGNATURE_SUFFIX};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A store that could not be read (exit status 2: nothing can be said about the evidence).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

#[derive(Debug, Clone)]
pub enum Store {
    S3(aws_sdk_s3::Client),
    Dir(PathBuf),
}

/// SHA-256 of the stored bytes and, for `--deep`, of the bytes gzip-decoded on the way (and
/// of an audit-api archive, its event chain).
struct Hashing {
    stored: Sha256,
    size: u64,
    deep: Deep,
}

/// What `--deep` hashes: nothing, the stored bytes themselves (not compressed), or the
/// gzip-decoded bytes; `Broken` once the bytes turned out not to be gzip.
enum Deep {
    Off,
    Plain,
    Gzip(Box<flate2::write::MultiGzDecoder<HashWriter>>),
    Broken,
}

/// A `Write` that hashes, and checks the event chain of an audit-api archive's lines.
struct HashWriter(Sha256, Option<ArchiveLines>);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        if let Some(lines) = &mut self.1 {
            lines.feed(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Hashing {
    fn new(key: &str, deep: bool) -> Self {
        let deep = match (deep, key.ends_with(".gz")) {
            (false, _) => Deep::Off,
            (true, false) => Deep::Plain,
            (true, true) => Deep::Gzip(Box::new(flate2::write::MultiGzDecoder::new(HashWriter(
                Sha256::new(),
                is_event_archive(key).then(ArchiveLines::default),
            )))),
        };
        Hashing {
            stored: Sha256::new(),
            size: 0,
            deep,
        }
    }

    fn update(&mut self, chunk: &[u8]) {
        self.stored.update(chunk);
        self.size += chunk.len() as u64;
        if let Deep::Gzip(decoder) = &mut self.deep
            && decoder.write_all(chunk).is_err()
        {
            // Not gzip after all: the deep hash cannot match, which is the finding.
            self.deep = Deep::Broken;
        }
    }

    fn finish(self) -> ObjectState {
        let stored = hex::encode(self.stored.finalize());
        let mut event_chain = None;
        let decompressed_sha256 = match self.deep {
            Deep::Off => None,
            Deep::Plain => Some(stored.clone()),
            Deep::Gzip(decoder) => Some(match decoder.finish() {
                Ok(HashWriter(hash, lines)) => {
                    event_chain = lines.and_then(ArchiveLines::finish);
                    hex::encode(hash.finalize())
                }
                Err(_) => NOT_GZIP.to_owned(),
            }),
            Deep::Broken => Some(NOT_GZIP.to_owned()),
        };
        ObjectState::Present {
            size: self.size,
            sha256: stored,
            decompressed_sha256,
            event_chain,
        }
    }
}

/// The deep hash of a `.gz` object that does not decompress.
const NOT_GZIP: &str = "not-valid-gzip";

/// Whether `key` may be an audit-api archive (gzip JSON lines); its first line decides.
fn is_event_archive(key: &str) -> bool {
    key.ends_with(".jsonl.gz")
}

/// The lines of a decompressing archive, checked as they pass (constant memory: one partial
/// line is kept between chunks).
#[derive(Default)]
struct ArchiveLines {
    partial: Vec<u8>,
    check: audit_core::event_chain::ArchiveChainCheck,
    line_number: u64,
    /// Not an event archive after all (its first line is something else): nothing to check.
    other: bool,
    unreadable: Option<String>,
}

impl ArchiveLines {
    fn feed(&mut self, mut buf: &[u8]) {
        while !self.other && self.unreadable.is_none() {
            let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                self.partial.extend_from_slice(buf);
                return;
            };
            self.partial.extend_from_slice(&buf[..end]);
            buf = &buf[end + 1..];
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }

    fn line(&mut self, line: &[u8]) {
        self.line_number += 1;
        let pushed = std::str::from_utf8(line)
            .map_err(|e| e.to_string())
            .and_then(|text| self.check.push_line(text).map_err(|e| e.to_string()));
        if let Err(why) = pushed {
            if self.line_number == 1 {
                self.other = true;
            } else {
                self.unreadable = Some(format!("line {}: {why}", self.line_number));
            }
        }
    }

    /// The first problem, if any.
    fn finish(mut self) -> Option<String> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
        if self.other {
            return None;
        }
        if let Some(why) = self.unreadable {
            return Some(why);
        }
        let (_, _, first_invalid) = self.check.finish();
        first_invalid.map(|(company, invalid)| {
            format!(
                "company {}: {invalid}",
                company.map_or_else(|| "(none)".to_owned(), |c| c.to_string())
            )
        })
    }
}

impl Store {
    /// A local copy keeps one version per key, so objects are compared by key there.
    pub fn by_version(&self) -> bool {
        matches!(self, Store::S3(_))
    }

    /// How a problem names an object: its S3 URL, or its path in the local copy.
    pub fn name(&self, bucket: &str, key: &str) -> String {
        match self {
            Store::S3(_) => crate::validate::s3_url(bucket, key),
            Store::Dir(root) => root.join(bucket).join(key).display().to_string(),
        }
    }

    /// Every object (version) whose key starts with `prefix`.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<StoredObject>, StoreError> {
        match self {
            Store::S3(s3) => {
                let versions = audit_core::aws::list_object_versions(s3, bucket, prefix)
                    .await
                    .map_err(|e| s3_error("ListObjectVersions", bucket, prefix, &e))?;
                Ok(versions
                    .into_iter()
                    .map(|v| StoredObject {
                        bucket: bucket.to_owned(),
                        key: v.key,
                        version_id: v.version_id,
                        last_modified_ms: v.last_modified_ms,
                    })
                    .collect())
            }
            Store::Dir(root) => {
                let (root, bucket, prefix) = (root.clone(), bucket.to_owned(), prefix.to_owned());
                tokio::task::spawn_blocking(move || list_dir(&root, &bucket, &prefix))
                    .await
                    .map_err(|e| StoreError(e.to_string()))?
            }
        }
    }

    /// Every digest under `prefix`, read with its signatures, `parallel` at a time.
    pub async fn digests(
        &self,
        bucket: &str,
        prefix: &str,
        parallel: usize,
    ) -> Result<Vec<FoundDigest>, StoreError> {
        let mut keys: Vec<String> = self
            .list(bucket, prefix)
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| k.ends_with(DIGEST_SUFFIX))
            .collect();
        keys.sort();
        keys.dedup(); // several versions of one key: the current one is the digest
        futures_util::stream::iter(keys.iter())
            .map(|key| self.read_digest(bucket, key))
            .buffered(parallel.max(1))
            .try_collect()
            .await
    }

    async fn read_digest(&self, bucket: &str, key: &str) -> Result<FoundDigest, StoreError> {
        let (gzip, metadata_signature) = self.read(bucket, key, true).await?.ok_or_else(|| {
            StoreError(format!(
                "{} vanished while validating",
                self.name(bucket, key)
            ))
        })?;
        let sidecar_signature = self
            .read(bucket, &format!("{key}{SIGNATURE_SUFFIX}"), false)
            .await?
            .map(|(bytes, _)| String::from_utf8_lossy(&bytes).trim().to_owned());
        Ok(FoundDigest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            document: digest::decode(&gzip).map_err(|e| e.to_string()),
            metadata_signature,
            sidecar_signature,
        })
    }

    /// A small object's bytes and (S3) its signature metadata; `None` when absent.
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        with_metadata: bool,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, StoreError> {
        match self {
            Store::S3(s3) => {
                let object = match s3.get_object().bucket(bucket).key(key).send().await {
                    Ok(o) => o,
                    Err(e) if e.code() == Some("NoSuchKey") => return Ok(None),
                    Err(e) => return Err(s3_error("GetObject", bucket, key, &e)),
                };
                let signature = with_metadata
                    .then(|| {
                        object
                            .metadata()
                            .and_then(|m| m.get(SIGNATURE_METADATA).cloned())
                    })
                    .flatten();
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| StoreError(format!("reading s3://{bucket}/{key}: {e}")))?
                    .to_vec();
                Ok(Some((bytes, signature)))
            }
            Store::Dir(root) => match std::fs::read(root.join(bucket).join(key)) {
                Ok(bytes) => Ok(Some((bytes, None))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError(format!("{}: {e}", self.name(bucket, key)))),
            },
        }
    }

    /// Hashes the stored object the digest names (the exact version on S3).
    pub async fn check(
        &self,
        expected: &ExpectedObject,
        deep: bool,
    ) -> Result<ObjectState, StoreError> {
        // Decompressing pays for itself when there is something to compare: a backup's
        // `source-sha256`, or an archive's event chain.
        let deep = deep && (expected.source_sha256.is_some() || is_event_archive(&expected.key));
        match self {
            Store::S3(s3) => {
                let got = s3
                    .get_object()
                    .bucket(&expected.bucket)
                    .key(&expected.key)
                    .set_version_id(expected.version_id.clone())
                    .send()
                    .await;
                let mut object = match got {
                    Ok(o) => o,
                    Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchVersion")) => {
                        return Ok(ObjectState::Absent);
                    }
                    Err(e) => {
                        return Err(s3_error("GetObject", &expected.bucket, &expected.key, &e));
                    }
                };
                let mut hashing = Hashing::new(&expected.key, deep);
                while let Some(chunk) = object.body.try_next().await.map_err(|e| {
                    StoreError(format!(
                        "reading s3://{}/{}: {e}",
                        expected.bucket, expected.key
                    ))
                })? {
                    hashing.update(&chunk);
                }
                Ok(hashing.finish())
            }
            Store::Dir(root) => {
                let path = root.join(&expected.bucket).join(&expected.key);
                let key = expected.key.clone();
                tokio::task::spawn_blocking(move || hash_file(&path, &key, deep))
                    .await
                    .map_err(|e| StoreError(e.to_string()))?
            }
        }
    }
}

fn s3_error<E>(
    operation: &str,
    bucket: &str,
    key: &str,
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    StoreError(format!(
        "{operation} s3://{bucket}/{key}: {}",
        audit_core::aws::describe(e)
    ))
}

fn hash_file(path: &Path, key: &str, deep: bool) -> Result<ObjectState, StoreError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ObjectState::Absent),
        Err(e) => return Err(StoreError(format!("{}: {e}", path.display()))),
    };
    let mut hashing = Hashing::new(key, deep);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
        if n == 0 {
            return Ok(hashing.finish());
        }
        hashing.update(&buffer[..n]);
    }
}

/// The files under `root/bucket` whose key (path below the bucket folder, `/`-separated)
/// starts with `prefix`.
fn list_dir(root: &Path, bucket: &str, prefix: &str) -> Result<Vec<StoredObject>, StoreError> {
    let base = root.join(bucket);
    // Start at the deepest folder the prefix names completely.
    let folder = prefix.rfind('/').map_or("", |i| &prefix[..i]);
    let mut pending = vec![base.join(folder)];
    let mut listed = Vec::new();
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError(format!("{}: {e}", dir.display()))),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
            let meta = entry
                .metadata()
                .map_err(|e| StoreError(format!("{}: {e}", entry.path().display())))?;
            if meta.is_dir() {
                pending.push(entry.path());
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(&base).map(Path::to_path_buf) else {
                continue;
            };
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if !key.starts_with(prefix) {
                continue;
            }
            let last_modified_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            listed.push(StoredObject {
                bucket: bucket.to_owned(),
                key,
                version_id: None,
                last_modified_ms,
            });
        }
    }
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(listed)
}
