//! The pure part of `auditkit validate`: walking the digest chain from its head, judging each
//! digest's signature and link, and finding the objects no digest names. The caller does the
//! reading and hashing ([`crate::store`]) and hands the results in.

use audit_core::digest::{
    ChainHead, DigestKind, EvidenceDigest, SourceStatus, fingerprint, parse_rfc3339,
    signing_string, verify_signature,
};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Why something is invalid: the word printed after `INVALID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A digest names an object that is not there.
    Missing,
    /// An object's stored bytes do not hash to what its digest says.
    HashMismatch,
    /// A digest's signature does not verify, or is not the one the chain names.
    BadSignature,
    /// A digest the chain names is gone.
    ChainGap,
    /// The head item names a digest newer than any found.
    ChainTailMissing,
    /// An object under an evidence prefix in the validated period that no digest names.
    Unlisted,
    /// A source file whose backup is missing past the copy SLO.
    NotCopied,
    /// A backup whose decompressed bytes do not match its `source-sha256`.
    DeepMismatch,
    /// An archived month of audit-api events whose lines break their hash chain (`--deep`).
    EventChain,
    /// A key holding more than one version: something was added on top of evidence that is
    /// written once (or, in a local copy, a file holding a version created after its key's
    /// first digested one).
    Overwritten,
    /// An object the digest writer could not read when it digested it (uploaded in an
    /// archive storage class, or encrypted with a key only its writer holds): its bytes were
    /// never recorded, so nothing proves them.
    Unreadable,
    /// A key a digest names that would leave the local copy (absolute, `..`), or a path there
    /// that is not a regular file (a symlink, a device): never opened.
    UnsafeKey,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Missing => "missing",
            Reason::HashMismatch => "hash-mismatch",
            Reason::BadSignature => "bad-signature",
            Reason::ChainGap => "chain-gap",
            Reason::ChainTailMissing => "chain-tail-missing",
            Reason::Unlisted => "unlisted",
            Reason::NotCopied => "not-copied",
            Reason::DeepMismatch => "deep-mismatch",
            Reason::EventChain => "event-chain",
            Reason::Overwritten => "overwritten",
            Reason::Unreadable => "unreadable",
            Reason::UnsafeKey => "unsafe-key",
        })
    }
}

/// One problem: `INVALID <reason> <what> (<detail>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub what: String,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INVALID {} {}", self.reason, self.what)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

pub fn s3_url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

/// A digest as found in the store.
#[derive(Debug, Clone)]
pub struct FoundDigest {
    pub bucket: String,
    pub key: String,
    /// The document and the hex SHA-256 of its uncompressed bytes, or why it cannot be read.
    pub document: Result<(EvidenceDigest, String), String>,
    /// The signature in the object's metadata (S3 only) and in the `.sig` sidecar.
    pub metadata_signature: Option<String>,
    pub sidecar_signature: Option<String>,
    /// Why the `.sig` sidecar was not read (over its size bound, not a regular file).
    pub sidecar_problem: Option<String>,
}

impl FoundDigest {
    fn sequence(&self) -> Option<u64> {
        self.document.as_ref().ok().map(|(d, _)| d.sequence)
    }
}

/// The public key digests must be signed with.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub der: Vec<u8>,
    pub fingerprint: String,
}

impl TrustedKey {
    pub fn new(der: Vec<u8>) -> Self {
        TrustedKey {
            fingerprint: fingerprint(&der),
            der,
        }
    }
}

/// The outcome of the walk.
#[derive(Debug, Default)]
pub struct ChainWalk {
    /// Indices into the found digests, newest first, with whether each is valid.
    pub visited: Vec<(usize, bool)>,
    /// Found digests the chain does not reach in the validated period.
    pub orphans: Vec<usize>,
    pub problems: Vec<Problem>,
}

impl ChainWalk {
    pub fn digests_examined(&self) -> usize {
        self.visited.len() + self.orphans.len()
    }

    pub fn digests_valid(&self) -> usize {
        self.visited.iter().filter(|(_, ok)| *ok).count()
    }

    /// The digests that verified (signature, fingerprint, link), newest first: the only ones
    /// whose contents count. A digest that failed is reported once and changes nothing else.
    pub fn verified<'a>(
        &'a self,
        found: &'a [FoundDigest],
    ) -> impl Iterator<Item = &'a EvidenceDigest> + 'a {
        self.visited
            .iter()
            .filter(|(_, ok)| *ok)
            .filter_map(|(i, _)| found[*i].document.as_ref().ok().map(|(d, _)| d))
    }
}

/// Why a digest's signature is not acceptable, if it is not.
fn signature_problem(
    found: &FoundDigest,
    key: &TrustedKey,
    expected: Option<&str>,
) -> Option<String> {
    let (document, sha256) = match &found.document {
        Ok(d) => d,
        Err(e) => return Some(format!("unreadable: {e}")),
    };
    if let Some(problem) = &found.sidecar_problem {
        return Some(format!("its .sig sidecar is not read: {problem}"));
    }
    let signature = match (&found.metadata_signature, &found.sidecar_signature) {
        (Some(m), Some(s)) if m != s => {
            return Some("the metadata and the .sig sidecar hold different signatures".into());
        }
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) => return Some("no signature (neither metadata nor .sig sidecar)".into()),
    };
    if document.signing.public_key_fingerprint != key.fingerprint {
        return Some(format!(
            "signed by key {} (fingerprint {}), not the trusted key",
            document.signing.key_id, document.signing.public_key_fingerprint
        ));
    }
    let message = signing_string(
        &document.window_end,
        &found.bucket,
        &found.key,
        sha256,
        document.previous.as_ref().map(|p| p.signature.as_str()),
    );
    let verifies = hex::decode(signature).is_ok_and(|raw| {
        verify_signature(
            &key.der,
            document.signing.algorithm,
            message.as_bytes(),
            &raw,
        )
    });
    if !verifies {
        return Some("the signature does not verify for this content at this location".into());
    }
    if let Some(expected) = expected
        && expected != signature
    {
        return Some("not the digest the chain names here (its signature differs)".into());
    }
    None
}

/// Walks the chain from the head back to the first hourly digest whose window ends at or
/// before `start_ms`. Without a head item the newest digest found stands for the head (and a
/// deleted tail cannot be seen: say so to the user).
pub fn walk_chain(
    found: &[FoundDigest],
    head: Option<&ChainHead>,
    key: &TrustedKey,
    start_ms: i64,
) -> ChainWalk {
    let mut walk = ChainWalk::default();
    let index: HashMap<(&str, &str), usize> = found
        .iter()
        .enumerate()
        .map(|(i, d)| ((d.bucket.as_str(), d.key.as_str()), i))
        .collect();
    let newest_below = |limit: Option<u64>, visited: &HashSet<usize>| {
        found
            .iter()
            .enumerate()
            .filter(|(i, d)| {
                !visited.contains(i)
                    && d.sequence()
                        .is_some_and(|s| limit.is_none_or(|limit| s < limit))
            })
            .max_by_key(|(_, d)| d.sequence())
            .map(|(i, _)| i)
    };
    let mut visited: HashSet<usize> = HashSet::new();
    let (mut current, mut expected): (Option<usize>, Option<String>) = match head {
        Some(h) => match index.get(&(h.digest_bucket.as_str(), h.digest_key.as_str())) {
            Some(&i) => (Some(i), Some(h.signature.clone())),
            None => {
                walk.problems.push(Problem {
                    reason: Reason::ChainTailMissing,
                    what: s3_url(&h.digest_bucket, &h.digest_key),
                    detail: format!(
                        "the chain head (sequence {}) names this digest; it is gone",
                        h.sequence
                    ),
                });
                (newest_below(Some(h.sequence), &visited), None)
            }
        },
        None => (newest_below(None, &visited), None),
    };
    // The sequence number the digest being visited should have.
    let mut position: Option<u64> = head.map(|h| h.sequence);
    while let Some(i) = current.take() {
        if !visited.insert(i) {
            break; // a cycle: only a forged chain has one, and its signatures already failed
        }
        let digest = &found[i];
        let problem = signature_problem(digest, key, expected.as_deref());
        if let Some(detail) = &problem {
            walk.problems.push(Problem {
                reason: Reason::BadSignature,
                what: s3_url(&digest.bucket, &digest.key),
                detail: detail.clone(),
            });
        }
        walk.visited.push((i, problem.is_none()));
        let document = match &digest.document {
            Ok((document, _)) => Some(document),
            Err(_) => None,
        };
        if let Some(d) = document
            && d.kind == DigestKind::Hourly
            && parse_rfc3339(&d.window_end).unwrap_or(0) <= start_ms
        {
            break;
        }
        let Some(document) = document.filter(|_| problem.is_none()) else {
            // A forged or unreadable digest's own pointers prove nothing: go on with the
            // newest digest found below its place in the chain.
            let place = position.or_else(|| digest.sequence());
            current = place.and_then(|p| newest_below(Some(p), &visited));
            position = current.and_then(|c| found[c].sequence());
            expected = None;
            continue;
        };
        let Some(previous) = &document.previous else {
            break;
        };
        match index.get(&(previous.bucket.as_str(), previous.key.as_str())) {
            Some(&p) => {
                current = Some(p);
                expected = Some(previous.signature.clone());
                position = document.sequence.checked_sub(1);
            }
            None => {
                walk.problems.push(Problem {
                    reason: Reason::ChainGap,
                    what: s3_url(&previous.bucket, &previous.key),
                    detail: format!(
                        "digest {} names it as its predecessor; it is gone",
                        document.sequence
                    ),
                });
                current = newest_below(Some(document.sequence), &visited);
                position = current.and_then(|c| found[c].sequence());
                expected = None;
            }
        }
    }
    for (i, digest) in found.iter().enumerate() {
        if visited.contains(&i) {
            continue;
        }
        let in_period = match &digest.document {
            Ok((d, _)) => {
                d.kind == DigestKind::Backfill
                    || parse_rfc3339(&d.window_end).unwrap_or(0) > start_ms
            }
            Err(_) => true,
        };
        if in_period {
            walk.orphans.push(i);
            let (reason, detail) = match &digest.document {
                Ok(_) => (
                    Reason::Unlisted,
                    "a digest the chain does not reach".to_owned(),
                ),
                Err(e) => (Reason::BadSignature, format!("unreadable: {e}")),
            };
            walk.problems.push(Problem {
                reason,
                what: s3_url(&digest.bucket, &digest.key),
                detail,
            });
        }
    }
    walk
}

/// An object a digest names, to be checked against the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedObject {
    /// Listed by the writer and gone before it hashed it: missing, whatever the store holds now.
    pub vanished: bool,
    /// Listed by the writer, whose bytes S3 gave nobody (an archive class at upload, a
    /// customer-provided key): unprovable evidence, whatever the store gives now.
    pub unreadable: Option<String>,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub size: u64,
    pub sha256: String,
    pub source_sha256: Option<String>,
    /// Versions of the same key that verified digests name as created after this one
    /// (version, size, SHA-256). On S3 this object is then one of them, never valid; in a
    /// local copy (one file per key) this is the key's first version, and a file holding one
    /// of these is reported as overwritten.
    pub later_versions: Vec<(Option<String>, u64, String)>,
    /// This is a version created after its key's first digested version (S3).
    pub is_later: bool,
}

/// The objects the verified digests name with a last-modified time in `[start, end)`. With
/// `by_version` false (a local copy holds one version per key) only the first digested
/// version of each key is expected, with the later ones it might hold instead.
pub fn expected_objects(
    found: &[FoundDigest],
    walk: &ChainWalk,
    start_ms: i64,
    end_ms: i64,
    by_version: bool,
) -> Vec<ExpectedObject> {
    // Every digested version of each key, whatever its time: which one came first decides.
    let mut versions: HashMap<(&str, &str), Vec<(i64, &audit_core::digest::DigestedObject)>> =
        HashMap::new();
    for document in walk.verified(found) {
        for o in &document.objects {
            let t = parse_rfc3339(&o.last_modified).unwrap_or(0);
            let of_key = versions
                .entry((o.bucket.as_str(), o.key.as_str()))
                .or_default();
            if !of_key
                .iter()
                .any(|(_, seen)| seen.version_id == o.version_id)
            {
                of_key.push((t, o));
            }
        }
    }
    let mut objects = Vec::new();
    for (_, mut of_key) in versions {
        of_key.sort_by(|a, b| (a.0, &a.1.version_id).cmp(&(b.0, &b.1.version_id)));
        let later = |from: usize| -> Vec<(Option<String>, u64, String)> {
            of_key[from..]
                .iter()
                .map(|(_, o)| (o.version_id.clone(), o.size, o.sha256.clone()))
                .collect()
        };
        let chosen: Vec<usize> = if by_version {
            (0..of_key.len()).collect()
        } else {
            vec![0]
        };
        for i in chosen {
            let (t, o) = of_key[i];
            if t < start_ms || t >= end_ms {
                continue;
            }
            objects.push(ExpectedObject {
                vanished: o.vanished,
                unreadable: o.unreadable.clone(),
                bucket: o.bucket.clone(),
                key: o.key.clone(),
                version_id: o.version_id.clone(),
                size: o.size,
                sha256: o.sha256.clone(),
                source_sha256: o.source_sha256.clone(),
                later_versions: if i == 0 { later(1) } else { Vec::new() },
                is_later: i > 0,
            });
        }
    }
    objects.sort_by(|a, b| {
        (&a.bucket, &a.key, &a.version_id).cmp(&(&b.bucket, &b.key, &b.version_id))
    });
    objects
}

/// The first version of each key in one bucket's listing: the oldest, and of two with the
/// same time the one listed later (S3 lists a key's newer versions first).
pub fn first_versions(stored: &[StoredObject]) -> HashMap<&str, &StoredObject> {
    let mut first: HashMap<&str, (usize, &StoredObject)> = HashMap::new();
    for (position, o) in stored.iter().enumerate() {
        match first.get(o.key.as_str()) {
            Some((_, seen)) if seen.last_modified_ms < o.last_modified_ms => {}
            _ => {
                first.insert(o.key.as_str(), (position, o));
            }
        }
    }
    first.into_iter().map(|(k, (_, o))| (k, o)).collect()
}

/// The keys holding more than one version, each named once with its versions, first first:
/// evidence is written once, so anything on top of the first version was added by somebody
/// else. `stored` is every version the store lists (any order, S3's is newest first within a
/// key); the verified digests add the versions they name, in case the store no longer shows
/// one.
pub fn overwritten(
    stored: &[StoredObject],
    found: &[FoundDigest],
    walk: &ChainWalk,
) -> Vec<Problem> {
    // Per key: (time, order among equal times, version id).
    type Seen<'a> = Vec<(i64, usize, Option<&'a str>)>;
    let mut versions: HashMap<(&str, &str), Seen<'_>> = HashMap::new();
    for (position, o) in stored.iter().enumerate() {
        let of_key = versions
            .entry((o.bucket.as_str(), o.key.as_str()))
            .or_default();
        if !of_key
            .iter()
            .any(|(_, _, id)| *id == o.version_id.as_deref())
        {
            // A listing gives newer versions first: a later position is an older version
            // when two share a timestamp.
            of_key.push((
                o.last_modified_ms,
                usize::MAX - position,
                o.version_id.as_deref(),
            ));
        }
    }
    for document in walk.verified(found) {
        for o in &document.objects {
            let of_key = versions
                .entry((o.bucket.as_str(), o.key.as_str()))
                .or_default();
            if !of_key
                .iter()
                .any(|(_, _, id)| *id == o.version_id.as_deref())
            {
                let t = parse_rfc3339(&o.last_modified).unwrap_or(0);
                of_key.push((t, usize::MAX, o.version_id.as_deref()));
            }
        }
    }
    let mut problems: Vec<Problem> = versions
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|((bucket, key), mut v)| {
            v.sort_by_key(|(t, order, _)| (*t, std::cmp::Reverse(*order)));
            let named: Vec<String> = v
                .iter()
                .enumerate()
                .map(|(n, (t, _, id))| {
                    format!(
                        "{} {} {}",
                        id.unwrap_or("null"),
                        if n == 0 { "first, at" } else { "added at" },
                        audit_core::digest::rfc3339(*t)
                    )
                })
                .collect();
            Problem {
                reason: Reason::Overwritten,
                what: s3_url(bucket, key),
                detail: format!("{} versions: {}", v.len(), named.join("; ")),
            }
        })
        .collect();
    problems.sort_by(|a, b| a.what.cmp(&b.what));
    problems
}

/// What the store holds for an expected object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    Absent,
    /// Not opened: the key would leave the local copy, or the path is not a regular file.
    Unsafe(String),
    /// In an archive storage class (the stack's lifecycle rule moves backups there): S3 gives
    /// its bytes only after a restore, so only its size (from `HeadObject`) is compared.
    Archived {
        storage_class: String,
        size: u64,
    },
    Present {
        size: u64,
        sha256: String,
        /// The SHA-256 of the decompressed bytes (`--deep`, objects with `source-sha256`).
        decompressed_sha256: Option<String>,
        /// `--deep` on an audit-api archive (`.jsonl.gz`): its first broken link.
        event_chain: Option<String>,
    },
}

/// Judges one object: `None` when valid.
pub fn judge_object(expected: &ExpectedObject, state: &ObjectState, what: &str) -> Option<Problem> {
    let problem = |reason, detail: String| {
        Some(Problem {
            reason,
            what: what.to_owned(),
            detail,
        })
    };
    if expected.vanished {
        return problem(
            Reason::Missing,
            "listed by the digest writer, deleted before it could be hashed".into(),
        );
    }
    if let Some(why) = &expected.unreadable {
        return problem(
            Reason::Unreadable,
            format!("the digest writer could not read its bytes ({why}): nothing proves them"),
        );
    }
    match state {
        ObjectState::Absent => problem(Reason::Missing, "named by a digest, not found".into()),
        ObjectState::Archived { size, .. } if *size != expected.size => problem(
            Reason::HashMismatch,
            format!(
                "digest: {} bytes; found in archive storage: {size} bytes",
                expected.size
            ),
        ),
        ObjectState::Archived { .. } => None,
        ObjectState::Unsafe(why) => problem(Reason::UnsafeKey, why.clone()),
        ObjectState::Present { size, sha256, .. }
            if (*sha256 != expected.sha256 || *size != expected.size)
                && let Some((version, ..)) = expected
                    .later_versions
                    .iter()
                    .find(|(_, s, h)| s == size && h == sha256) =>
        {
            problem(
                Reason::Overwritten,
                format!(
                    "holds version {}, added on top of the first digested version {}",
                    version.as_deref().unwrap_or("null"),
                    expected.version_id.as_deref().unwrap_or("null")
                ),
            )
        }
        ObjectState::Present { size, sha256, .. }
            if *sha256 != expected.sha256 || *size != expected.size =>
        {
            problem(
                Reason::HashMismatch,
                format!(
                    "digest: {} bytes, sha256 {}; found: {size} bytes, sha256 {sha256}",
                    expected.size, expected.sha256
                ),
            )
        }
        ObjectState::Present {
            decompressed_sha256: Some(deep),
            ..
        } if expected.source_sha256.as_ref().is_some_and(|s| s != deep) => problem(
            Reason::DeepMismatch,
            format!(
                "source-sha256 {}; decompressed bytes hash to {deep}",
                expected.source_sha256.as_deref().unwrap_or_default()
            ),
        ),
        ObjectState::Present {
            event_chain: Some(broken),
            ..
        } => problem(Reason::EventChain, broken.clone()),
        ObjectState::Present { .. } => None,
    }
}

/// One object the store lists under an evidence location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub last_modified_ms: i64,
    pub size: u64,
}

/// The stored objects in `[start, until)` that no visited digest names (`by_version` false:
/// compared by key only, as for a local copy).
pub fn unlisted(
    stored: &[StoredObject],
    found: &[FoundDigest],
    walk: &ChainWalk,
    start_ms: i64,
    until_ms: i64,
    by_version: bool,
) -> Vec<Problem> {
    let mut named: HashSet<(&str, &str, Option<&str>)> = HashSet::new();
    for document in walk.verified(found) {
        for o in &document.objects {
            let version = if by_version {
                o.version_id.as_deref()
            } else {
                None
            };
            named.insert((o.bucket.as_str(), o.key.as_str(), version));
        }
    }
    stored
        .iter()
        .filter(|o| o.last_modified_ms >= start_ms && o.last_modified_ms < until_ms)
        .filter(|o| {
            let version = if by_version {
                o.version_id.as_deref()
            } else {
                None
            };
            !named.contains(&(o.bucket.as_str(), o.key.as_str(), version))
        })
        .map(|o| Problem {
            reason: Reason::Unlisted,
            what: s3_url(&o.bucket, &o.key),
            detail: format!(
                "under an evidence prefix, modified {}, named by no digest",
                audit_core::digest::rfc3339(o.last_modified_ms)
            ),
        })
        .collect()
}

/// The end of the newest hourly window the visited digests cover: objects before it must be
/// named by one.
pub fn covered_until(found: &[FoundDigest], walk: &ChainWalk) -> i64 {
    walk.verified(found)
        .filter(|d| d.kind == DigestKind::Hourly)
        .filter_map(|d| parse_rfc3339(&d.window_end))
        .max()
        .unwrap_or(0)
}

/// The newest hourly digest's source files whose backup is missing past the copy SLO.
pub fn not_copied(found: &[FoundDigest], walk: &ChainWalk) -> Vec<Problem> {
    let newest = walk
        .verified(found)
        .filter(|d| d.kind == DigestKind::Hourly)
        .max_by_key(|d| d.sequence);
    let Some(document) = newest else {
        return Vec::new();
    };
    let Some(sources) = &document.sources else {
        return Vec::new();
    };
    sources
        .files
        .iter()
        .filter(|f| f.status == SourceStatus::NotCopied)
        .map(|f| Problem {
            reason: Reason::NotCopied,
            what: format!("{}/{}", f.instance_id, f.log_file),
            detail: format!(
                "known at the source ({} bytes, last written {}), no backup for more than {} s as of digest {}",
                f.size,
                audit_core::digest::rfc3339(f.last_written),
                sources.copy_slo_seconds,
                document.sequence
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests;
