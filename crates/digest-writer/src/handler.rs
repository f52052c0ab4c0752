//! The Lambda entry: one run closes the windows that ended, backfills late objects, and
//! reports what it wrote (and one metric line).

use crate::evidence::{EvidenceStore, Put};
use crate::head::{HeadItem, HeadTable};
use crate::signer::{Signer, SigningKey};
use crate::{
    Config, DigestError, DigestHeader, ListedVersion, ObjectId, RunRequest, Window, build_digest,
    closed_windows, object_id, parse_event, plan, source_files,
};
use audit_core::FunctionError;
use audit_core::digest::{
    self, ChainHead, DigestKind, EvidenceLocation, PreviousDigest, SourceCompleteness,
    parse_rfc3339, signing_string,
};
use audit_core::metrics::{MetricSet, MetricsOut, Unit};
use futures_util::{StreamExt, TryStreamExt};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use std::collections::HashSet;
use tokio::sync::OnceCell;

/// The clients and settings built once per cold start.
#[derive(Debug)]
pub struct DigestWriter {
    pub config: Config,
    pub store: EvidenceStore,
    pub head: HeadTable,
    pub signer: Signer,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The signing key's public half, fetched on the first run of this environment.
    key: OnceCell<SigningKey>,
    pub metrics: MetricsOut,
}

/// One digest this run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WrittenDigest {
    pub sequence: u64,
    pub key: String,
    pub kind: DigestKind,
    pub window_end: String,
    pub objects: usize,
}

/// What a run did: the function's response.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub digests: Vec<WrittenDigest>,
    pub objects_hashed: u64,
    pub bytes_hashed: u64,
    /// Tracked files whose backup is missing past the copy SLO (hourly digests list them).
    pub not_copied: usize,
    /// Objects S3 gives nobody the bytes of, recorded as unreadable in the digests written.
    pub unreadable_objects: usize,
    /// Set when another run holds the chain: this run wrote nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The claim of a run that died, completed or released by this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
    /// End of the newest window digested, RFC 3339.
    pub covered_until: Option<String>,
}

impl DigestWriter {
    pub fn new(config: Config, sdk: &audit_core::aws::SdkConfig) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        DigestWriter {
            store: EvidenceStore {
                s3: audit_core::aws::s3_client(sdk),
            },
            head: HeadTable {
                dynamodb: dynamodb.clone(),
                table: config.head_table.clone(),
                chain: config.chain(),
            },
            signer: Signer {
                kms: aws_sdk_kms::Client::new(sdk),
                key_id: config.signing_key_id.clone(),
            },
            dynamodb,
            key: OnceCell::new(),
            metrics: MetricsOut::stdout(),
            config,
        }
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<RunSummary, FunctionError> {
        let request = parse_event(&event.payload, self.config.window)?;
        let now = audit_core::now_ms();
        let outcome = self.run(request, now).await;
        self.metrics
            .publish(&run_metrics(outcome.as_ref().ok(), now));
        let summary = outcome?;
        tracing::info!(
            digests = summary.digests.len(),
            objects_hashed = summary.objects_hashed,
            not_copied = summary.not_copied,
            unreadable_objects = summary.unreadable_objects,
            skipped = summary.skipped.as_deref(),
            "digest run done"
        );
        Ok(summary)
    }

    /// One run at time `now_ms` (the handler passes the clock; tests may pass a later time to
    /// stand for a writer whose windows closed before a delayed object arrived).
    pub async fn run(&self, request: RunRequest, now_ms: i64) -> Result<RunSummary, DigestError> {
        let key = self.key.get_or_try_init(|| self.signer.describe()).await?;
        let lease_ms = self.config.run_lease.as_millis() as i64;
        let mut summary = RunSummary::default();
        let mut item = self.head.load().await?;
        if let Some(pending) = item.pending_key.clone() {
            if item.pending_since.unwrap_or(0) >= audit_core::now_ms() - lease_ms {
                summary.skipped = Some(format!("another run is writing {pending}"));
                return Ok(summary);
            }
            self.recover(&item, &pending, key).await?;
            summary.recovered = Some(pending);
            item = self.head.load().await?;
        }

        let window_ms = self.config.window.as_millis() as i64;
        let lookback_start = now_ms - self.config.late_lookback.as_millis() as i64;
        let (until, late_since) = match request {
            RunRequest::Scheduled => (now_ms, lookback_start),
            RunRequest::UpTo { window_end_ms } => (
                window_end_ms.min(now_ms),
                (window_end_ms - window_ms).min(lookback_start),
            ),
        };
        let windows = closed_windows(
            item.covered_until,
            until,
            window_ms,
            self.config.max_windows,
        );
        let mut listing = Vec::new();
        for location in &self.config.evidence {
            listing.extend(self.store.list_versions(location).await?);
        }
        let mut head = item.committed(&self.head.chain);
        let (digested, covered_before) = self.digested_since(head.as_ref(), late_since).await?;
        // Locations added to EVIDENCE since the head digest: their history is backfilled.
        let new_locations: Vec<EvidenceLocation> = match &covered_before {
            Some(before) => self
                .config
                .evidence
                .iter()
                .filter(|l| !before.contains(l))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let sources = match &self.config.tracking {
            Some((table, bucket)) if !windows.is_empty() => {
                let tracked = crate::sources::tracked_files(&self.dynamodb, table).await?;
                let present: HashSet<&str> = listing
                    .iter()
                    .filter(|v| &v.bucket == bucket)
                    .map(|v| v.key.as_str())
                    .collect();
                let files = source_files(&tracked, &present, now_ms, self.config.copy_slo);
                summary.not_copied = files
                    .iter()
                    .filter(|f| f.status == digest::SourceStatus::NotCopied)
                    .count();
                Some(SourceCompleteness {
                    copy_slo_seconds: self.config.copy_slo.as_secs(),
                    files,
                })
            }
            _ => None,
        };
        let work = plan(
            listing,
            &digested,
            item.covered_until,
            &windows,
            late_since,
            window_ms,
            &new_locations,
        );
        let jobs = work
            .windows
            .into_iter()
            .map(|(w, v)| (DigestKind::Hourly, w, v))
            .chain(
                work.backfills
                    .into_iter()
                    .map(|(w, v)| (DigestKind::Backfill, w, v)),
            );
        for (kind, window, versions) in jobs {
            let completeness = (kind == DigestKind::Hourly)
                .then(|| sources.clone())
                .flatten();
            let job = Job {
                kind,
                window,
                versions,
                sources: completeness,
            };
            match self
                .write(head.as_ref(), job, now_ms, key, &mut summary)
                .await?
            {
                Some(next) => head = Some(next),
                None => {
                    summary.skipped = Some("another run claimed the chain meanwhile".into());
                    break;
                }
            }
        }
        summary.covered_until = head.map(|h| digest::rfc3339(h.covered_until));
        Ok(summary)
    }

    /// Every object version named by the digests whose windows end after `since` (walking the
    /// chain back from the head), so late versions can be told from digested ones; and the
    /// evidence locations the head digest covered.
    async fn digested_since(
        &self,
        head: Option<&ChainHead>,
        since: i64,
    ) -> Result<(HashSet<ObjectId>, Option<Vec<EvidenceLocation>>), DigestError> {
        let mut named = HashSet::new();
        let mut head_locations = None;
        let mut next = head.map(|h| (h.digest_bucket.clone(), h.digest_key.clone()));
        while let Some((bucket, key)) = next.take() {
            let stored = self
                .store
                .read_digest(&bucket, &key)
                .await?
                .ok_or_else(|| {
                    DigestError::Chain(format!(
                        "digest s3://{bucket}/{key} named by the chain is missing; \
                     run `auditkit validate` before writing more digests"
                    ))
                })?;
            let (document, _) = digest::decode(&stored.gzip).map_err(|e| {
                DigestError::Chain(format!("digest s3://{bucket}/{key} is unreadable: {e}"))
            })?;
            named.extend(document.objects.iter().map(object_id));
            if head_locations.is_none() {
                head_locations = Some(document.evidence.clone());
            }
            let end = parse_rfc3339(&document.window_end).unwrap_or(0);
            if document.kind == DigestKind::Hourly && end <= since {
                break;
            }
            next = document.previous.map(|p| (p.bucket, p.key));
        }
        Ok((named, head_locations))
    }

    /// Writes one digest after `head`: claim, hash, sign, store, commit. `None` when another
    /// run claimed the next sequence first.
    async fn write(
        &self,
        head: Option<&ChainHead>,
        job: Job,
        now_ms: i64,
        key: &SigningKey,
        summary: &mut RunSummary,
    ) -> Result<Option<ChainHead>, DigestError> {
        let sequence = head.map_or(1, |h| h.sequence + 1);
        let digest_key = digest::digest_key(
            &self.config.digest_prefix,
            job.window.end_ms,
            (job.kind == DigestKind::Backfill).then_some(sequence),
        );
        // Leases run on the wall clock, whatever time the windows are decided for.
        let wall = audit_core::now_ms();
        let stale_before = wall - self.config.run_lease.as_millis() as i64;
        let claimed = self
            .head
            .claim(
                head.map(|h| h.sequence),
                sequence,
                &digest_key,
                wall,
                stale_before,
            )
            .await?;
        if !claimed {
            return Ok(None);
        }
        let outcome = self
            .write_claimed(head, &job, sequence, &digest_key, now_ms, key)
            .await;
        let (signature, objects, bytes, unreadable) = match outcome {
            Ok(Some(written)) => written,
            Ok(None) => {
                // Another run stored this digest (a claim is atomic in DynamoDB, so this is a run
                // that died holding it, or an emulator's race). Our claim names the same key:
                // whoever commits it, or the next run after the lease, completes it.
                tracing::warn!(
                    digest_key,
                    "the digest exists already; leaving it to the run that wrote it"
                );
                return Ok(None);
            }
            Err((error, stored)) => {
                // A claim whose digest was never stored is released, so a retry need not wait
                // for the lease; one whose digest is stored stays for the next run to complete.
                if !stored && let Err(release) = self.head.release(&digest_key).await {
                    tracing::warn!(%release, "could not release the claim on {digest_key}");
                }
                return Err(error);
            }
        };
        let covered_until = match job.kind {
            DigestKind::Hourly => job.window.end_ms,
            DigestKind::Backfill => head.map_or(0, |h| h.covered_until),
        };
        let next = ChainHead {
            chain: self.head.chain.clone(),
            sequence,
            digest_bucket: self.config.digest_bucket.clone(),
            digest_key: digest_key.clone(),
            signature,
            covered_until,
        };
        self.head.commit(&next).await?;
        summary.objects_hashed += objects as u64;
        summary.bytes_hashed += bytes;
        summary.unreadable_objects += unreadable;
        summary.digests.push(WrittenDigest {
            sequence,
            key: digest_key,
            kind: job.kind,
            window_end: digest::rfc3339(job.window.end_ms),
            objects,
        });
        Ok(Some(next))
    }

    /// Hashes, signs and stores a claimed digest and its sidecar: the signature, the number of
    /// objects and bytes hashed; `None` when the key exists already. An error says whether the
    /// digest object was stored.
    async fn write_claimed(
        &self,
        head: Option<&ChainHead>,
        job: &Job,
        sequence: u64,
        digest_key: &str,
        now_ms: i64,
        key: &SigningKey,
    ) -> Result<Option<(String, usize, u64, usize)>, (DigestError, bool)> {
        let hashed: Vec<_> = futures_util::stream::iter(job.versions.iter())
            .map(|v| self.store.hash(v))
            .buffered(self.config.hash_concurrency)
            .try_collect()
            .await
            .map_err(|e| (e, false))?;
        let objects: Vec<_> = hashed;
        let unhashed =
            |o: &&audit_core::digest::DigestedObject| o.vanished || o.unreadable.is_some();
        let bytes = objects
            .iter()
            .filter(|o| !unhashed(o))
            .map(|o| o.size)
            .sum();
        let unreadable = objects.iter().filter(|o| o.unreadable.is_some()).count();
        let count = objects.len();
        let header = DigestHeader {
            sequence,
            kind: job.kind,
            window: job.window,
            written_at_ms: now_ms,
            digest_bucket: self.config.digest_bucket.clone(),
            digest_key: digest_key.to_owned(),
            previous: head.map(|h| PreviousDigest {
                bucket: h.digest_bucket.clone(),
                key: h.digest_key.clone(),
                signature: h.signature.clone(),
            }),
            signing: key.info.clone(),
            evidence: self.config.evidence.clone(),
        };
        let document = build_digest(header, objects, job.sources.clone());
        let encoded = digest::encode(&document);
        let message = signing_string(
            &document.window_end,
            &self.config.digest_bucket,
            digest_key,
            &encoded.sha256,
            head.map(|h| h.signature.as_str()),
        );
        let signature = self
            .signer
            .sign(key, message.as_bytes())
            .await
            .map_err(|e| (e, false))?;
        let put = self
            .store
            .put_digest(
                &self.config.digest_bucket,
                digest_key,
                encoded.gzip,
                &signature,
                key.info.algorithm,
            )
            .await
            .map_err(|e| (e, false))?;
        if put == Put::Exists {
            return Ok(None);
        }
        self.store
            .put_sidecar(&self.config.digest_bucket, digest_key, &signature)
            .await
            .map_err(|e| (e, true))?;
        Ok(Some((signature, count, bytes, unreadable)))
    }

    /// Completes the stale claim of a run that died: commits its digest when it was stored
    /// (and chains onto the committed head), releases the claim when it was not.
    async fn recover(
        &self,
        item: &HeadItem,
        pending: &str,
        key: &SigningKey,
    ) -> Result<(), DigestError> {
        let bucket = &self.config.digest_bucket;
        if item.digest_key.as_deref() == Some(pending) {
            // Committed already; only the claim was left behind.
            return self.head.release(pending).await;
        }
        let Some(stored) = self.store.read_digest(bucket, pending).await? else {
            tracing::warn!(pending, "releasing the claim of a run that stored nothing");
            return self.head.release(pending).await;
        };
        let broken = |why: &str| {
            DigestError::Chain(format!(
                "cannot complete the claimed digest {pending}: {why}"
            ))
        };
        let (document, sha256) =
            digest::decode(&stored.gzip).map_err(|e| broken(&e.to_string()))?;
        let committed = item.committed(&self.head.chain);
        let chains_on = match (&document.previous, &committed) {
            (None, None) => true,
            (Some(p), Some(h)) => p.key == h.digest_key && p.signature == h.signature,
            _ => false,
        };
        if !chains_on || Some(document.sequence) != item.pending_sequence {
            return Err(broken("it does not follow the committed head"));
        }
        let signature = stored
            .signature
            .ok_or_else(|| broken("it has no signature metadata"))?;
        let message = signing_string(
            &document.window_end,
            bucket,
            pending,
            &sha256,
            document.previous.as_ref().map(|p| p.signature.as_str()),
        );
        let raw = hex::decode(&signature).map_err(|_| broken("its signature is not hex"))?;
        if !digest::verify_signature(
            &key.public_key_der,
            key.info.algorithm,
            message.as_bytes(),
            &raw,
        ) {
            return Err(broken("its signature does not verify"));
        }
        self.store.put_sidecar(bucket, pending, &signature).await?;
        let covered_until = match document.kind {
            DigestKind::Hourly => parse_rfc3339(&document.window_end).unwrap_or(0),
            DigestKind::Backfill => committed.as_ref().map_or(0, |h| h.covered_until),
        };
        tracing::warn!(
            pending,
            "completing the digest of a run that died before committing it"
        );
        self.head
            .commit(&ChainHead {
                chain: self.head.chain.clone(),
                sequence: document.sequence,
                digest_bucket: bucket.clone(),
                digest_key: pending.to_owned(),
                signature,
                covered_until,
            })
            .await
    }
}

/// One digest to write.
#[derive(Debug)]
struct Job {
    kind: DigestKind,
    window: Window,
    versions: Vec<ListedVersion>,
    sources: Option<SourceCompleteness>,
}

/// One run's metrics. `DigestsWritten` is written even when 0, and the head's age whenever the
/// run got that far, so the stack's alarm on a stale chain sees data every hour.
pub fn run_metrics(summary: Option<&RunSummary>, now_ms: i64) -> MetricSet {
    let mut set = MetricSet::zeroed("digest-writer", crate::METRICS);
    set.count("DigestRunFailures", u64::from(summary.is_none()));
    let Some(summary) = summary else {
        return set;
    };
    set.count("DigestsWritten", summary.digests.len() as u64);
    set.count(
        "BackfillDigests",
        summary
            .digests
            .iter()
            .filter(|d| d.kind == DigestKind::Backfill)
            .count() as u64,
    );
    set.count("ObjectsHashed", summary.objects_hashed);
    set.add("BytesHashed", Unit::Bytes, summary.bytes_hashed as f64);
    set.count("NotCopiedFiles", summary.not_copied as u64);
    set.count("UnreadableObjects", summary.unreadable_objects as u64);
    if let Some(covered) = summary.covered_until.as_deref().and_then(parse_rfc3339) {
        set.add(
            "ChainHeadAgeSeconds",
            Unit::Seconds,
            ((now_ms - covered) as f64 / 1000.0).max(0.0),
        );
    }
    set
}
