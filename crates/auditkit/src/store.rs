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

/// The longest line an archive check holds: an audit-api event is at most a few hundred KiB
/// of JSON (its `additional_data` is bounded by the request body limit), so a longer line is
/// not one, and memory stays bounded whatever the archive holds.
const MAX_ARCHIVE_LINE: usize = 16 << 20;

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
                if self.partial.len() > MAX_ARCHIVE_LINE {
                    self.too_long();
                }
                return;
            };
            if self.partial.len() + end > MAX_ARCHIVE_LINE {
                self.too_long();
                return;
            }
            self.partial.extend_from_slice(&buf[..end]);
            buf = &buf[end + 1..];
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }

    fn too_long(&mut self) {
        self.partial = Vec::new();
        let why = format!(
            "line {} is longer than {MAX_ARCHIVE_LINE} bytes: not an archive line, not read further",
            self.line_number + 1
        );
        if self.line_number == 0 {
            self.other = true;
        } else {
            self.unreadable = Some(why);
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
                        size: v.size,
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

    /// Every digest under `prefix`, read with its signatures, `parallel` at a time, and every
    /// version stored there (for the overwrite check). A key with several versions is read
    /// at its first: whatever was added on top is reported, never believed. A digest or
    /// `.sig` over its size bound is not read.
    pub async fn digests(
        &self,
        bucket: &str,
        prefix: &str,
        parallel: usize,
    ) -> Result<(Vec<FoundDigest>, Vec<StoredObject>), StoreError> {
        let stored = self.list(bucket, prefix).await?;
        let first = crate::validate::first_versions(&stored);
        let digests: Vec<&StoredObject> = first
            .values()
            .copied()
            .filter(|o| o.key.ends_with(DIGEST_SUFFIX))
            .collect();
        let found = futures_util::stream::iter(digests)
            .map(|o| {
                let sidecar = first
                    .get(format!("{}{SIGNATURE_SUFFIX}", o.key).as_str())
                    .copied();
                self.read_digest(o, sidecar)
            })
            .buffered(parallel.max(1))
            .try_collect()
            .await?;
        Ok((found, stored))
    }

    async fn read_digest(
        &self,
        listed: &StoredObject,
        sidecar: Option<&StoredObject>,
    ) -> Result<FoundDigest, StoreError> {
        let (bucket, key) = (listed.bucket.as_str(), listed.key.as_str());
        let found =
            |document, metadata_signature, sidecar_signature, sidecar_problem| FoundDigest {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                document,
                metadata_signature,
                sidecar_signature,
                sidecar_problem,
            };
        if listed.size > digest::MAX_STORED_DIGEST_BYTES {
            return Ok(found(
                Err(format!(
                    "{} bytes, over the {} bytes a digest may have: not read",
                    listed.size,
                    digest::MAX_STORED_DIGEST_BYTES
                )),
                None,
                None,
                None,
            ));
        }
        let (gzip, metadata_signature) = match self.read(listed, true).await? {
            SmallRead::Bytes(bytes, signature) => (bytes, signature),
            SmallRead::Absent => {
                return Err(StoreError(format!(
                    "{} vanished while validating",
                    self.name(bucket, key)
                )));
            }
            SmallRead::Refused(why) => return Ok(found(Err(why), None, None, None)),
        };
        let (sidecar_signature, sidecar_problem) = match sidecar {
            None => (None, None),
            Some(s) if s.size > digest::MAX_SIGNATURE_SIDECAR_BYTES => (
                None,
                Some(format!(
                    "{} bytes, over the {} bytes a signature may have",
                    s.size,
                    digest::MAX_SIGNATURE_SIDECAR_BYTES
                )),
            ),
            Some(s) => match self.read(s, false).await? {
                SmallRead::Bytes(bytes, _)
                    if bytes.len() as u64 <= digest::MAX_SIGNATURE_SIDECAR_BYTES =>
                {
                    (
                        Some(String::from_utf8_lossy(&bytes).trim().to_owned()),
                        None,
                    )
                }
                SmallRead::Bytes(bytes, _) => (
                    None,
                    Some(format!(
                        "{} bytes, over the bound of a signature",
                        bytes.len()
                    )),
                ),
                SmallRead::Absent => (None, None),
                SmallRead::Refused(why) => (None, Some(why)),
            },
        };
        Ok(found(
            digest::decode(&gzip).map_err(|e| e.to_string()),
            metadata_signature,
            sidecar_signature,
            sidecar_problem,
        ))
    }

    /// A small object's bytes (the listed version) and (S3) its signature metadata, read up
    /// to one byte past its listed size.
    async fn read(
        &self,
        listed: &StoredObject,
        with_metadata: bool,
    ) -> Result<SmallRead, StoreError> {
        let (bucket, key) = (listed.bucket.as_str(), listed.key.as_str());
        match self {
            Store::S3(s3) => {
                let got = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .set_version_id(listed.version_id.clone())
                    .send()
                    .await;
                let object = match got {
                    Ok(o) => o,
                    Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchVersion")) => {
                        return Ok(SmallRead::Absent);
                    }
                    Err(e) => return Err(s3_error("GetObject", bucket, key, &e)),
                };
                let signature = with_metadata
                    .then(|| {
                        object
                            .metadata()
                            .and_then(|m| m.get(SIGNATURE_METADATA).cloned())
                    })
                    .flatten();
                let limit = listed.size.saturating_add(1);
                let mut body = object.body;
                let mut bytes = Vec::new();
                while let Some(chunk) = body
                    .try_next()
                    .await
                    .map_err(|e| StoreError(format!("reading s3://{bucket}/{key}: {e}")))?
                {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() as u64 > limit {
                        return Ok(SmallRead::Refused(format!(
                            "longer than the {} bytes listed",
                            listed.size
                        )));
                    }
                }
                Ok(SmallRead::Bytes(bytes, signature))
            }
            Store::Dir(root) => {
                let path = match safe_path(root, bucket, key) {
                    Ok(path) => path,
                    Err(why) => return Ok(SmallRead::Refused(why)),
                };
                let file = match open_regular(root, &path) {
                    Ok(Some(file)) => file,
                    Ok(None) => return Ok(SmallRead::Absent),
                    Err(Opened::Refused(why)) => return Ok(SmallRead::Refused(why)),
                    Err(Opened::Failed(e)) => {
                        return Err(StoreError(format!("{}: {e}", path.display())));
                    }
                };
                let mut bytes = Vec::new();
                file.take(listed.size.saturating_add(1))
                    .read_to_end(&mut bytes)
                    .map_err(|e| StoreError(format!("{}: {e}", path.display())))?;
                if bytes.len() as u64 > listed.size {
                    return Ok(SmallRead::Refused(format!(
                        "grew past the {} bytes listed while validating",
                        listed.size
                    )));
                }
                Ok(SmallRead::Bytes(bytes, None))
            }
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
                    Err(e) if e.code() == Some("InvalidObjectState") => {
                        return archived(s3, expected).await;
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
                let path = match safe_path(root, &expected.bucket, &expected.key) {
                    Ok(path) => path,
                    Err(why) => return Ok(ObjectState::Unsafe(why)),
                };
                let (key, root) = (expected.key.clone(), root.clone());
                tokio::task::spawn_blocking(move || hash_file(&root, &path, &key, deep))
                    .await
                    .map_err(|e| StoreError(e.to_string()))?
            }
        }
    }
}

/// An object version in an archive storage class: its size and class, from `HeadObject`
/// (which S3 answers for archived objects without a restore).
async fn archived(
    s3: &aws_sdk_s3::Client,
    expected: &ExpectedObject,
) -> Result<ObjectState, StoreError> {
    let head = s3
        .head_object()
        .bucket(&expected.bucket)
        .key(&expected.key)
        .set_version_id(expected.version_id.clone())
        .send()
        .await
        .map_err(|e| s3_error("HeadObject", &expected.bucket, &expected.key, &e))?;
    Ok(ObjectState::Archived {
        storage_class: head
            .storage_class()
            .map_or("an archive storage class", |c| c.as_str())
            .to_owned(),
        size: head.content_length().unwrap_or_default().max(0) as u64,
    })
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

/// What reading a small object gave.
enum SmallRead {
    Bytes(Vec<u8>, Option<String>),
    Absent,
    /// Not read, and why (a finding about that object, not an error of the run).
    Refused(String),
}

/// Why a local file was not opened.
#[derive(Debug)]
enum Opened {
    Refused(String),
    Failed(std::io::Error),
}

/// The path of `key` in a local copy, only when it stays below `root/bucket`: a key from a
/// digest is the attacker's text until its digest verifies, and even then names an S3 key,
/// not a path. Absolute keys, `..` and `.` segments, empty segments and NUL are refused.
pub fn safe_path(root: &Path, bucket: &str, key: &str) -> Result<PathBuf, String> {
    let refuse = |why: &str| Err(format!("{why}: {key:?} is not opened"));
    for name in [bucket, key] {
        if name.is_empty() || name.starts_with('/') || name.contains('\0') {
            return refuse("an empty, absolute or NUL-holding name");
        }
        if name
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return refuse("a key with an empty, `.` or `..` segment would leave the copy");
        }
    }
    Ok(root.join(bucket).join(key))
}

/// Opens `path` only when every part of it below `root` is a real folder and it is a
/// regular file: a symlink (to `/dev/zero`, to a file outside the copy) is refused, never
/// followed. Folders above the root are the user's (a symlinked home is fine). `Ok(None)`:
/// nothing there.
fn open_regular(root: &Path, path: &Path) -> Result<Option<std::fs::File>, Opened> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut ancestors: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .take_while(|folder| *folder != root && folder.starts_with(root))
        .collect();
    ancestors.reverse();
    for folder in &ancestors {
        match std::fs::symlink_metadata(folder) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Opened::Refused(format!(
                    "{} is a symlink: not followed",
                    folder.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Opened::Failed(e)),
        }
    }
    // O_NOFOLLOW: the last component is not followed either, even if it became a link
    // after the check above; O_NONBLOCK: a FIFO does not hang the open.
    const O_NOFOLLOW: i32 = 0o400000;
    const O_NONBLOCK: i32 = 0o4000;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NOFOLLOW | O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // ELOOP: the file is a symlink.
        Err(e) if e.raw_os_error() == Some(40) => {
            return Err(Opened::Refused(format!(
                "{} is a symlink: not followed",
                path.display()
            )));
        }
        Err(e) => return Err(Opened::Failed(e)),
    };
    let meta = file.metadata().map_err(Opened::Failed)?;
    if !meta.is_file() {
        return Err(Opened::Refused(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(Some(file))
}

fn hash_file(root: &Path, path: &Path, key: &str, deep: bool) -> Result<ObjectState, StoreError> {
    let mut file = match open_regular(root, path) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(ObjectState::Absent),
        Err(Opened::Refused(why)) => return Ok(ObjectState::Unsafe(why)),
        Err(Opened::Failed(e)) => return Err(StoreError(format!("{}: {e}", path.display()))),
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
                size: meta.len(),
            });
        }
    }
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_would_leave_a_local_copy_are_refused() {
        let root = Path::new("/copy");
        assert_eq!(
            safe_path(root, "b", "rds-logs/db-1/f.gz").unwrap(),
            Path::new("/copy/b/rds-logs/db-1/f.gz")
        );
        for key in [
            "/etc/passwd",
            "../../etc/passwd",
            "a/../../x",
            "a//b",
            "./a",
            "a/\0b",
            "",
        ] {
            assert!(safe_path(root, "b", key).is_err(), "{key:?}");
        }
        assert!(safe_path(root, "..", "k").is_err(), "the bucket name too");
    }

    #[test]
    fn only_regular_files_are_opened_never_a_symlink_or_a_device() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let root = dir.path();
        assert!(open_regular(root, &file).unwrap().is_some());
        assert!(open_regular(root, &root.join("absent")).unwrap().is_none());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(
            matches!(open_regular(root, &link), Err(Opened::Refused(why)) if why.contains("symlink"))
        );
        let linked_dir = dir.path().join("linked");
        std::os::unix::fs::symlink(dir.path(), &linked_dir).unwrap();
        // Above the root a symlink is the user's business.
        assert!(
            open_regular(&linked_dir, &linked_dir.join("file"))
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            open_regular(root, &linked_dir.join("file")),
            Err(Opened::Refused(why)) if why.contains("symlink")
        ));
        assert!(matches!(
            open_regular(Path::new("/"), Path::new("/dev/null")),
            Err(Opened::Refused(why)) if why.contains("not a regular file")
        ));
    }
}
