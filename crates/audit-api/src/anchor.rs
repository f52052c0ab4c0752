//! The published chain heads (anchors): writing one per maintenance run, and reading every one
//! ever written so that verification compares the chains with all of them.
//!
//! An anchor is a small JSON object, `<prefix>YYYY/MM/DD/chain-heads-<time>.json`, written
//! once (`If-None-Match: *`, and the bucket policy refuses a write without it) into the
//! evidence bucket, where `digest-writer`'s signed hourly digests cover it. Rewriting events
//! and the database's heads together then still disagrees with a head published before, which
//! no database role can change.
//!
//! Whoever may write under the prefix can add objects, never remove them (Object Lock). So
//! the history is built from every version of every object under the prefix: an object at a
//! key maintenance would not write is ignored (and named), a second version of an anchor key
//! is a problem, and two anchors giving one place of a chain different hashes are a conflict.
//! Each `(key, version)` is read once per process; versions never change.

use crate::db::{Database, DbError};
use audit_core::aws::ObjectVersion;
use audit_core::event_chain::Head;
use chrono::{DateTime, NaiveDateTime, SubsecRound as _, Utc};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Format of an anchor object.
pub const ANCHOR_FORMAT: &str = "audit-api-chain-heads/1";

/// An anchor larger than this is not read (about 300,000 chains' heads): a problem, not a read.
pub const MAX_ANCHOR_BYTES: u64 = 64 << 20;

/// Anchor objects read at once.
const READ_CONCURRENCY: usize = 16;

/// Where anchors go, and what this process has read of them.
#[derive(Debug, Clone)]
pub struct AnchorTarget {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// Ends with `/` (or is empty).
    pub prefix: String,
    /// The history read so far; held while it is brought up to date, so concurrent
    /// verifications wait for one listing instead of each making their own.
    history: Arc<tokio::sync::Mutex<Arc<AnchorHistory>>>,
}

impl AnchorTarget {
    pub fn new(client: aws_sdk_s3::Client, bucket: String, prefix: String) -> Self {
        AnchorTarget {
            client,
            bucket,
            prefix,
            history: Arc::default(),
        }
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

/// One chain's head as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedHead {
    pub company_id: Option<i64>,
    pub chain_seq: i64,
    /// Hex SHA-256.
    pub row_hash: String,
    pub updated_at: DateTime<Utc>,
}

/// An anchor object's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub format: String,
    pub published_at: DateTime<Utc>,
    pub heads: Vec<PublishedHead>,
}

/// Where an anchor is, and the head it holds for one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchoredHead {
    pub object: String,
    pub published_at: DateTime<Utc>,
    pub chain_seq: i64,
    pub row_hash: String,
}

impl AnchoredHead {
    /// The head to compare; an unreadable published hash matches nothing.
    pub fn head(&self) -> Head {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(&self.row_hash, &mut hash).is_err() {
            hash = [0xff; 32];
        }
        Head {
            chain_seq: self.chain_seq,
            row_hash: hash,
        }
    }
}

/// What is wrong with the published heads themselves. Every one means that someone other
/// than maintenance wrote under the prefix, or that the database's chain was rewritten and
/// published: either way the chains involved are not verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum AnchorProblem {
    /// An anchor key holds more than one version (maintenance writes each key once).
    Overwritten { object: String, versions: usize },
    /// An object at an anchor key that is not an anchor (or is too large to read).
    Unreadable { object: String, message: String },
    /// An anchor whose `published_at` is not the time its key names.
    Misdated {
        object: String,
        published_at: DateTime<Utc>,
    },
    /// Two anchors give one place of a chain different hashes.
    Conflict {
        company_id: Option<i64>,
        chain_seq: i64,
        objects: [String; 2],
        row_hashes: [String; 2],
    },
}

impl AnchorProblem {
    /// Whether the problem concerns `company`'s chain (a conflict names its chain; the rest
    /// concern every chain, since any of them may have been anchored there).
    pub fn concerns(&self, company: Option<i64>) -> bool {
        match self {
            AnchorProblem::Conflict { company_id, .. } => *company_id == company,
            _ => true,
        }
    }
}

impl std::fmt::Display for AnchorProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnchorProblem::Overwritten { object, versions } => {
                write!(f, "overwritten anchor {object} ({versions} versions)")
            }
            AnchorProblem::Unreadable { object, message } => {
                write!(f, "unreadable anchor {object}: {message}")
            }
            AnchorProblem::Misdated {
                object,
                published_at,
            } => write!(f, "anchor {object} says it was published at {published_at}"),
            AnchorProblem::Conflict {
                company_id,
                chain_seq,
                objects,
                ..
            } => write!(
                f,
                "anchors {} and {} disagree on chain_seq {chain_seq} of company {}",
                objects[0],
                objects[1],
                company_id.map_or_else(|| "(none)".to_owned(), |c| c.to_string())
            ),
        }
    }
}

/// Every anchor read so far, merged: each chain's distinct published heads, and the problems.
#[derive(Debug, Clone, Default)]
pub struct AnchorHistory {
    read: HashSet<(String, Option<String>)>,
    heads: HashMap<Option<i64>, BTreeMap<i64, AnchoredHead>>,
    problems: Vec<AnchorProblem>,
    overwritten: BTreeMap<String, usize>,
    /// Objects under the prefix at keys maintenance never writes (not read).
    pub ignored: BTreeSet<String>,
    /// The newest anchor read (by the time its key names).
    pub newest: Option<(DateTime<Utc>, String)>,
}

impl AnchorHistory {
    /// Merges one anchor object, read at a key naming `key_time` (`Err`: it could not be read
    /// as an anchor).
    pub fn add(&mut self, object: &str, key_time: DateTime<Utc>, anchor: Result<Anchor, String>) {
        let anchor = match anchor {
            Ok(a) if a.format == ANCHOR_FORMAT => a,
            Ok(a) => {
                return self.problems.push(AnchorProblem::Unreadable {
                    object: object.to_owned(),
                    message: format!("format {:?}", a.format),
                });
            }
            Err(message) => {
                return self.problems.push(AnchorProblem::Unreadable {
                    object: object.to_owned(),
                    message,
                });
            }
        };
        // The key names the time to the millisecond; the content carries it in full.
        if anchor.published_at.trunc_subsecs(3) != key_time {
            self.problems.push(AnchorProblem::Misdated {
                object: object.to_owned(),
                published_at: anchor.published_at,
            });
        }
        if self.newest.as_ref().is_none_or(|(t, _)| key_time > *t) {
            self.newest = Some((key_time, object.to_owned()));
        }
        for head in anchor.heads {
            let points = self.heads.entry(head.company_id).or_default();
            let point = AnchoredHead {
                object: object.to_owned(),
                published_at: anchor.published_at,
                chain_seq: head.chain_seq,
                row_hash: head.row_hash,
            };
            match points.get(&head.chain_seq) {
                None => {
                    points.insert(head.chain_seq, point);
                }
                Some(earlier) if earlier.row_hash == point.row_hash => {}
                Some(earlier) => {
                    let conflict = AnchorProblem::Conflict {
                        company_id: head.company_id,
                        chain_seq: head.chain_seq,
                        objects: [earlier.object.clone(), point.object.clone()],
                        row_hashes: [earlier.row_hash.clone(), point.row_hash.clone()],
                    };
                    self.problems.push(conflict);
                }
            }
        }
    }

    /// Every distinct head published for `company`'s chain.
    pub fn heads(&self, company: Option<i64>) -> Vec<Head> {
        self.heads
            .get(&company)
            .map(|points| points.values().map(AnchoredHead::head).collect())
            .unwrap_or_default()
    }

    /// Every published head of every chain, with its chain.
    pub fn points(&self) -> impl Iterator<Item = (Option<i64>, &AnchoredHead)> {
        self.heads
            .iter()
            .flat_map(|(company, points)| points.values().map(move |p| (*company, p)))
    }

    /// The furthest head published for `company` up to `chain_seq` (all: `i64::MAX`).
    pub fn furthest(&self, company: Option<i64>, up_to: i64) -> Option<&AnchoredHead> {
        self.heads
            .get(&company)?
            .range(..=up_to)
            .next_back()
            .map(|(_, p)| p)
    }

    /// The problems that concern `company`'s chain (`None`: every problem).
    pub fn problems(&self, company: Option<Option<i64>>) -> Vec<AnchorProblem> {
        let overwritten =
            self.overwritten
                .iter()
                .map(|(object, versions)| AnchorProblem::Overwritten {
                    object: object.clone(),
                    versions: *versions,
                });
        overwritten
            .chain(self.problems.iter().cloned())
            .filter(|p| company.is_none_or(|c| p.concerns(c)))
            .collect()
    }

    /// How many anchor objects (versions) were read.
    pub fn objects_read(&self) -> usize {
        self.read.len()
    }
}

/// The key of an anchor published at `at`.
pub fn anchor_key(prefix: &str, at: DateTime<Utc>) -> String {
    format!(
        "{prefix}{}/chain-heads-{}.json",
        at.format("%Y/%m/%d"),
        at.format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// The publication time an anchor key names, when `key` is exactly what [`anchor_key`] writes
/// (day folder and file name agreeing); `None` for any other key.
pub fn anchor_key_time(prefix: &str, key: &str) -> Option<DateTime<Utc>> {
    let rest = key.strip_prefix(prefix)?;
    let stamp = rest.get(11..)?.strip_prefix("chain-heads-")?;
    let stamp = stamp.strip_suffix(".json")?;
    let at = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .ok()?
        .and_utc();
    (anchor_key(prefix, at) == key).then_some(at)
}

/// What a listing of the prefix asks for: the versions not read yet (key, version, the time
/// the key names), the keys with more than one version, and the keys that are not anchors'.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReadPlan {
    pub reads: Vec<(String, Option<String>, DateTime<Utc>, u64)>,
    pub overwritten: BTreeMap<String, usize>,
    pub ignored: BTreeSet<String>,
}

/// Decides what to read of `listed` given what `history` has read.
pub fn plan_reads(prefix: &str, listed: &[ObjectVersion], history: &AnchorHistory) -> ReadPlan {
    let mut plan = ReadPlan::default();
    let mut versions: BTreeMap<&str, usize> = BTreeMap::new();
    for v in listed {
        let Some(at) = anchor_key_time(prefix, &v.key) else {
            plan.ignored.insert(v.key.clone());
            continue;
        };
        *versions.entry(&v.key).or_default() += 1;
        if !history
            .read
            .contains(&(v.key.clone(), v.version_id.clone()))
        {
            plan.reads
                .push((v.key.clone(), v.version_id.clone(), at, v.size));
        }
    }
    plan.overwritten = versions
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    plan
}

/// Why publishing or reading anchors failed.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("s3://{bucket}/{key}: {message}")]
    S3 {
        bucket: String,
        key: String,
        message: String,
    },
    /// The database no longer holds heads published before: nothing was published for these
    /// chains (the others' heads were).
    #[error(
        "the database's chains disagree with heads published before, so their heads were not \
         published: {}",
        .0.join("; ")
    )]
    Diverged(Vec<String>),
}

/// Brings `target`'s history up to date: lists every version under the prefix and reads the
/// ones this process has not read. Returns the history as of now.
pub async fn history(target: &AnchorTarget) -> Result<Arc<AnchorHistory>, AnchorError> {
    let mut cached = target.history.lock().await;
    let listed =
        audit_core::aws::list_object_versions(&target.client, &target.bucket, &target.prefix)
            .await
            .map_err(|e| AnchorError::S3 {
                bucket: target.bucket.clone(),
                key: target.prefix.clone(),
                message: audit_core::aws::describe(&e),
            })?;
    let plan = plan_reads(&target.prefix, &listed, &cached);
    if plan.reads.is_empty()
        && plan.overwritten == cached.overwritten
        && plan.ignored == cached.ignored
    {
        return Ok(Arc::clone(&cached));
    }
    let mut next = AnchorHistory::clone(&cached);
    next.overwritten = plan.overwritten;
    next.ignored = plan.ignored;
    let reads = futures_util::stream::iter(plan.reads)
        .map(|(key, version, at, size)| async move {
            let read = read_anchor(target, &key, version.as_deref(), size).await;
            (key, version, at, read)
        })
        .buffer_unordered(READ_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (key, version, at, read) in reads {
        let anchor = match read {
            Ok(anchor) => Ok(anchor),
            // Transient: not recorded as read, so the next call tries again.
            Err(ReadFailure::S3(message)) => {
                return Err(AnchorError::S3 {
                    bucket: target.bucket.clone(),
                    key,
                    message,
                });
            }
            Err(ReadFailure::NotAnAnchor(message)) => Err(message),
        };
        let object = match &version {
            Some(v) if next.overwritten.contains_key(&key) => {
                format!("{}?versionId={v}", target.uri(&key))
            }
            _ => target.uri(&key),
        };
        next.add(&object, at, anchor);
        next.read.insert((key, version));
    }
    *cached = Arc::new(next);
    Ok(Arc::clone(&cached))
}

enum ReadFailure {
    S3(String),
    NotAnAnchor(String),
}

async fn read_anchor(
    target: &AnchorTarget,
    key: &str,
    version: Option<&str>,
    size: u64,
) -> Result<Anchor, ReadFailure> {
    if size > MAX_ANCHOR_BYTES {
        return Err(ReadFailure::NotAnAnchor(format!(
            "{size} bytes, over the {MAX_ANCHOR_BYTES} an anchor may hold"
        )));
    }
    let object = target
        .client
        .get_object()
        .bucket(&target.bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .map_err(|e| ReadFailure::S3(audit_core::aws::describe(&e)))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| ReadFailure::S3(e.to_string()))?
        .into_bytes();
    if bytes.len() as u64 > MAX_ANCHOR_BYTES {
        return Err(ReadFailure::NotAnAnchor("larger than listed".to_owned()));
    }
    serde_json::from_slice(&bytes).map_err(|e| ReadFailure::NotAnAnchor(e.to_string()))
}

/// Every chain's head, read now.
pub async fn current_heads(db: &Database) -> Result<Vec<PublishedHead>, DbError> {
    let client = db.client().await?;
    let rows = client
        .query(
            "SELECT companyid, chain_seq, row_hash, updated_at FROM auditevent_chain_heads \
             ORDER BY companyid NULLS FIRST",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PublishedHead {
                company_id: r.try_get(0)?,
                chain_seq: r.try_get(1)?,
                row_hash: hex::encode(r.try_get::<_, Vec<u8>>(2)?),
                updated_at: r.try_get(3)?,
            })
        })
        .collect()
}

/// The published heads that the database's chains no longer hold (no event or archived link
/// of that chain at that place with that hash), in one statement.
async fn heads_not_held(
    db: &Database,
    points: &[(Option<i64>, &AnchoredHead)],
) -> Result<Vec<usize>, DbError> {
    let companies: Vec<Option<i64>> = points.iter().map(|(c, _)| *c).collect();
    let seqs: Vec<i64> = points.iter().map(|(_, p)| p.chain_seq).collect();
    let hashes: Vec<Vec<u8>> = points
        .iter()
        .map(|(_, p)| p.head().row_hash.to_vec())
        .collect();
    let client = db.client().await?;
    // Each branch is an index lookup on (companyid, chain_seq); the company NULL chain has
    // branches of its own, since `=` never matches NULL and IS NOT DISTINCT FROM uses no index.
    let rows = client
        .query(
            "SELECT (a.i - 1)::bigint FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])
                 WITH ORDINALITY AS a(company, seq, hash, i)
             WHERE NOT EXISTS (SELECT 1 FROM auditevents e WHERE e.companyid = a.company
                     AND e.chain_seq = a.seq AND e.row_hash = a.hash)
               AND NOT EXISTS (SELECT 1 FROM auditevents e WHERE a.company IS NULL
                     AND e.companyid IS NULL AND e.chain_seq = a.seq AND e.row_hash = a.hash)
               AND NOT EXISTS (SELECT 1 FROM auditevents_archival e WHERE e.companyid = a.company
                     AND e.chain_seq = a.seq AND e.row_hash = a.hash)
               AND NOT EXISTS (SELECT 1 FROM auditevents_archival e WHERE a.company IS NULL
                     AND e.companyid IS NULL AND e.chain_seq = a.seq AND e.row_hash = a.hash)
               AND NOT EXISTS (SELECT 1 FROM auditevent_chain_archived e
                     WHERE e.companyid = a.company AND e.chain_seq = a.seq AND e.row_hash = a.hash)
               AND NOT EXISTS (SELECT 1 FROM auditevent_chain_archived e WHERE a.company IS NULL
                     AND e.companyid IS NULL AND e.chain_seq = a.seq AND e.row_hash = a.hash)",
            &[&companies, &seqs, &hashes],
        )
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<_, i64>(0)? as usize))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(DbError::from)
}

/// Published heads checked per statement.
const CHECK_BATCH: usize = 10_000;

/// Publishes the head of every chain that still holds every head published for it before;
/// returns the object's `s3://` URI, or [`AnchorError::Diverged`] (after publishing the
/// others) naming each chain that does not.
pub async fn publish(
    db: &Database,
    target: &AnchorTarget,
    now: DateTime<Utc>,
) -> Result<String, AnchorError> {
    let history = history(target).await?;
    let points: Vec<(Option<i64>, &AnchoredHead)> = history.points().collect();
    let mut diverged: BTreeMap<Option<i64>, &AnchoredHead> = BTreeMap::new();
    for batch in points.chunks(CHECK_BATCH) {
        for index in heads_not_held(db, batch).await? {
            if let Some((company, point)) = batch.get(index) {
                diverged.entry(*company).or_insert(point);
            }
        }
    }
    let anchor = Anchor {
        format: ANCHOR_FORMAT.to_owned(),
        published_at: now,
        heads: current_heads(db)
            .await?
            .into_iter()
            .filter(|h| !diverged.contains_key(&h.company_id))
            .collect(),
    };
    let key = anchor_key(&target.prefix, now);
    let s3_error = |message: String| AnchorError::S3 {
        bucket: target.bucket.clone(),
        key: key.clone(),
        message,
    };
    let body = serde_json::to_vec(&anchor).map_err(|e| s3_error(e.to_string()))?;
    target
        .client
        .put_object()
        .bucket(&target.bucket)
        .key(&key)
        .content_type("application/json")
        .if_none_match("*")
        .body(body.into())
        .send()
        .await
        .map_err(|e| s3_error(audit_core::aws::describe(&e)))?;
    if diverged.is_empty() {
        return Ok(target.uri(&key));
    }
    Err(AnchorError::Diverged(
        diverged
            .into_iter()
            .map(|(company, point)| {
                format!(
                    "company {}: chain_seq {} published in {} is not on the chain",
                    company.map_or_else(|| "(none)".to_owned(), |c| c.to_string()),
                    point.chain_seq,
                    point.object
                )
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn version(key: &str, id: &str) -> ObjectVersion {
        ObjectVersion {
            key: key.to_owned(),
            version_id: Some(id.to_owned()),
            size: 100,
            last_modified_ms: 0,
        }
    }

    fn anchor(published: &str, heads: &[(Option<i64>, i64, &str)]) -> Anchor {
        Anchor {
            format: ANCHOR_FORMAT.to_owned(),
            published_at: at(published),
            heads: heads
                .iter()
                .map(|(c, seq, hash)| PublishedHead {
                    company_id: *c,
                    chain_seq: *seq,
                    row_hash: hash.repeat(64),
                    updated_at: at(published),
                })
                .collect(),
        }
    }

    #[test]
    fn only_the_exact_key_maintenance_writes_is_an_anchor() {
        let early = anchor_key("chains/", at("2026-11-30T09:05:00Z"));
        let late = anchor_key("chains/", at("2026-11-30T10:05:00.250Z"));
        assert_eq!(
            early,
            "chains/2026/11/30/chain-heads-20261130T090500.000Z.json"
        );
        assert!(early < late);
        assert_eq!(
            anchor_key_time("chains/", &late),
            Some(at("2026-11-30T10:05:00.250Z"))
        );
        for other in [
            // A day folder that is not the file's day.
            "chains/2026/12/31/chain-heads-20261130T090500.000Z.json",
            "chains/9999/12/31/newest.json",
            "chains/2026/11/30/chain-heads-20261130T090500Z.json",
            "chains/2026/11/30/chain-heads-20261130T090500.000Z.json.bak",
            "chains/2026/11/30/x/chain-heads-20261130T090500.000Z.json",
            "other/2026/11/30/chain-heads-20261130T090500.000Z.json",
            "chains/2026/11/30/chain-heads-20261130T250500.000Z.json",
        ] {
            assert_eq!(anchor_key_time("chains/", other), None, "{other}");
        }
    }

    #[test]
    fn the_plan_reads_each_new_version_names_overwritten_keys_and_ignores_the_rest() {
        let first = anchor_key("p/", at("2026-11-30T09:00:00Z"));
        let second = anchor_key("p/", at("2026-11-30T10:00:00Z"));
        let listed = [
            version(&first, "a"),
            version(&first, "b"),
            version(&second, "c"),
            version("p/9999/12/31/newest.json", "d"),
        ];
        let mut history = AnchorHistory::default();
        history.read.insert((second.clone(), Some("c".to_owned())));
        let plan = plan_reads("p/", &listed, &history);
        let reads: Vec<(&str, Option<&str>)> = plan
            .reads
            .iter()
            .map(|(k, v, _, _)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(
            reads,
            [(first.as_str(), Some("a")), (first.as_str(), Some("b"))]
        );
        assert_eq!(plan.overwritten, BTreeMap::from([(first.clone(), 2)]));
        assert_eq!(
            plan.ignored,
            BTreeSet::from(["p/9999/12/31/newest.json".to_owned()])
        );
    }

    #[test]
    fn anchors_that_disagree_on_a_place_are_a_conflict_of_that_chain_only() {
        let mut history = AnchorHistory::default();
        let t1 = "2026-11-30T09:00:00Z";
        let t2 = "2026-11-30T10:00:00Z";
        history.add(
            "s3://b/1",
            at(t1),
            Ok(anchor(t1, &[(Some(1), 5, "a"), (None, 2, "b")])),
        );
        history.add(
            "s3://b/2",
            at(t2),
            Ok(anchor(
                t2,
                &[(Some(1), 5, "c"), (Some(1), 9, "d"), (None, 2, "b")],
            )),
        );
        assert_eq!(history.heads(Some(1)).len(), 2, "the first hash at 5 and 9");
        assert_eq!(history.heads(None).len(), 1, "the same head twice is one");
        let conflicts = history.problems(Some(Some(1)));
        assert!(
            matches!(&conflicts[..], [AnchorProblem::Conflict { chain_seq: 5, objects, .. }]
                if objects == &["s3://b/1".to_owned(), "s3://b/2".to_owned()]),
            "{conflicts:?}"
        );
        assert!(history.problems(Some(None)).is_empty());
        assert_eq!(history.furthest(Some(1), i64::MAX).unwrap().chain_seq, 9);
        assert_eq!(history.furthest(Some(1), 8).unwrap().chain_seq, 5);
        assert_eq!(history.newest.as_ref().unwrap().1, "s3://b/2");
    }

    #[test]
    fn an_anchor_that_is_not_one_or_names_another_time_is_a_problem_for_every_chain() {
        let mut history = AnchorHistory::default();
        let t = "2026-11-30T09:00:00Z";
        history.add(
            "s3://b/1",
            at(t),
            Err("expected value at line 1".to_owned()),
        );
        history.add(
            "s3://b/2",
            at("2026-11-30T11:00:00Z"),
            Ok(anchor(t, &[(Some(1), 5, "a")])),
        );
        let mut other_format = anchor(t, &[]);
        other_format.format = "v0".to_owned();
        history.add("s3://b/3", at(t), Ok(other_format));
        let problems = history.problems(Some(Some(77)));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(matches!(problems[1], AnchorProblem::Misdated { .. }));
        // The misdated anchor's heads still count: a conflict with them is still seen.
        assert_eq!(history.heads(Some(1)).len(), 1);
    }
}
