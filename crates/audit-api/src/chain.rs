//! The event chains outside the append: publishing every chain's head as evidence (the
//! anchor), and verifying stored chains against their heads and the newest anchor.
//!
//! An anchor is a small JSON object, `<prefix>YYYY/MM/DD/chain-heads-<time>.json`, written
//! once (`If-None-Match: *`) into the evidence bucket, where `digest-writer`'s signed hourly
//! digests cover it. Rewriting events and the database's heads together then still disagrees
//! with a head published before, which no database role can change. Verification reads the
//! chain in one read-only snapshot, streamed (memory does not grow with the chain), and walks
//! it with [`audit_core::event_chain::ChainWalk`].

use crate::db::{Database, DbError};
use audit_core::event_chain::{
    ChainStart, ChainWalk, EventFields, FirstInvalid, Head, StoredLink, canonical_v1, link_hash,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Format of an anchor object.
pub const ANCHOR_FORMAT: &str = "audit-api-chain-heads/1";

/// Where anchors go.
#[derive(Debug, Clone)]
pub struct AnchorTarget {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// Ends with `/` (or is empty).
    pub prefix: String,
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

/// The key of an anchor published at `at`.
pub fn anchor_key(prefix: &str, at: DateTime<Utc>) -> String {
    format!(
        "{prefix}{}/chain-heads-{}.json",
        at.format("%Y/%m/%d"),
        at.format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// The day folder of anchors published on `day`.
fn day_prefix(prefix: &str, day: DateTime<Utc>) -> String {
    format!("{prefix}{}/", day.format("%Y/%m/%d"))
}

/// How many days back [`newest_anchor`] looks before it concludes there is none.
const ANCHOR_LOOKBACK_DAYS: i64 = 400;

/// Why publishing or reading an anchor failed.
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
    #[error("s3://{bucket}/{key} is not an anchor: {message}")]
    NotAnAnchor {
        bucket: String,
        key: String,
        message: String,
    },
}

fn hash_bytes(value: &[u8]) -> Result<[u8; 32], String> {
    value
        .try_into()
        .map_err(|_| format!("a hash of {} bytes", value.len()))
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

/// Publishes every chain's head; returns the object's `s3://` URI.
pub async fn publish(
    db: &Database,
    target: &AnchorTarget,
    now: DateTime<Utc>,
) -> Result<String, AnchorError> {
    let anchor = Anchor {
        format: ANCHOR_FORMAT.to_owned(),
        published_at: now,
        heads: current_heads(db).await?,
    };
    let key = anchor_key(&target.prefix, now);
    let body = serde_json::to_vec(&anchor).map_err(|e| AnchorError::S3 {
        bucket: target.bucket.clone(),
        key: key.clone(),
        message: e.to_string(),
    })?;
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
        .map_err(|e| AnchorError::S3 {
            bucket: target.bucket.clone(),
            key: key.clone(),
            message: audit_core::aws::describe(&e),
        })?;
    Ok(format!("s3://{}/{key}", target.bucket))
}

/// The newest anchor published up to `now`, with its key; `None` when there is none.
pub async fn newest_anchor(
    target: &AnchorTarget,
    now: DateTime<Utc>,
) -> Result<Option<(String, Anchor)>, AnchorError> {
    for days_back in 0..=ANCHOR_LOOKBACK_DAYS {
        let day = now - chrono::Duration::days(days_back);
        let prefix = day_prefix(&target.prefix, day);
        let mut newest: Option<String> = None;
        let mut pages = target
            .client
            .list_objects_v2()
            .bucket(&target.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AnchorError::S3 {
                bucket: target.bucket.clone(),
                key: prefix.clone(),
                message: audit_core::aws::describe(&e),
            })?;
            for object in page.contents() {
                if let Some(key) = object.key()
                    && key.ends_with(".json")
                    && newest.as_deref().is_none_or(|n| key > n)
                {
                    newest = Some(key.to_owned());
                }
            }
        }
        let Some(key) = newest else { continue };
        let s3_error = |message: String| AnchorError::S3 {
            bucket: target.bucket.clone(),
            key: key.clone(),
            message,
        };
        let object = target
            .client
            .get_object()
            .bucket(&target.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error(audit_core::aws::describe(&e)))?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| s3_error(e.to_string()))?
            .into_bytes();
        let anchor: Anchor =
            serde_json::from_slice(&bytes).map_err(|e| AnchorError::NotAnAnchor {
                bucket: target.bucket.clone(),
                key: key.clone(),
                message: e.to_string(),
            })?;
        if anchor.format != ANCHOR_FORMAT {
            return Err(AnchorError::NotAnAnchor {
                bucket: target.bucket.clone(),
                key,
                message: format!("format {:?}", anchor.format),
            });
        }
        return Ok(Some((format!("s3://{}/{key}", target.bucket), anchor)));
    }
    Ok(None)
}

/// Which chains a verification covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chains {
    All,
    /// One company's chain (`None`: events without a company).
    Company(Option<i64>),
}

/// What to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRequest {
    pub chains: Chains,
    /// With one company only: the events from the first event at or after `from` to the last
    /// before `to`, in chain order (events in between from other times included: the chain
    /// has no holes); the first one's link into the past is taken as given.
    pub from: Option<crate::event::TimestampText>,
    pub to: Option<crate::event::TimestampText>,
}

/// Reads `company_id` (required), `from_date` and `to_date` of the verify endpoint, each
/// error naming its parameter.
pub fn parse_verify(
    query: &HashMap<String, String>,
) -> Result<VerifyRequest, Vec<crate::event::FieldError>> {
    let mut errors = Vec::new();
    let filters = crate::search::parse_filters(query, &mut errors);
    if filters.company_id.is_none() && !query.contains_key("company_id") {
        errors.push(crate::event::FieldError::new(
            vec![serde_json::json!("query"), serde_json::json!("company_id")],
            "missing",
            "Field required",
        ));
    }
    if errors.is_empty() {
        Ok(VerifyRequest {
            chains: Chains::Company(filters.company_id),
            from: filters.from_date,
            to: filters.to_date,
        })
    } else {
        Err(errors)
    }
}

/// One chain's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainVerdict {
    pub company_id: Option<i64>,
    pub verified: bool,
    pub events_checked: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The database's head, when the range reaches the chain's end.
    pub head: Option<HeadView>,
    /// The newest published head of this chain, when one was compared.
    pub anchor: Option<AnchoredHead>,
    pub first_invalid: Option<FirstInvalid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeadView {
    pub chain_seq: i64,
    pub row_hash: String,
}

/// A verification: every chain's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub verified: bool,
    pub chains: Vec<ChainVerdict>,
    pub events_checked: u64,
    /// The anchor compared (`None`: no anchor bucket, or nothing published yet).
    pub anchor_object: Option<String>,
}

/// The rows of the chosen chains (`$1`: the company, see [`chain_filter`]), from the
/// events, the archive table and the links of events archived to S3, in chain order, within
/// places `$2..=$3` (and rows without a place: inserted around the append function).
/// Archive-table rows archived before the chain existed have no place in it and are left out.
fn chain_rows_sql(filter: &str) -> String {
    let range = "(chain_seq IS NULL OR chain_seq BETWEEN $2 AND $3)";
    format!(
        "SELECT companyid, chain_seq, id, eventtimestamp, functionalityid, eventtypeid, \
             storelocationid, username::text, message, status::text, additionaldata::text, \
             prev_hash, row_hash, false AS archived
         FROM auditevents WHERE {filter} AND {range}
         UNION ALL
         SELECT companyid, chain_seq, id, eventtimestamp, functionalityid, eventtypeid, \
             storelocationid, username::text, message, status::text, additionaldata::text, \
             prev_hash, row_hash, false
         FROM auditevents_archival WHERE {filter} AND {range}
             AND (chain_seq IS NOT NULL
                  OR archivedat >= (SELECT min(chained_at) FROM auditevent_chain_genesis))
         UNION ALL
         SELECT companyid, chain_seq, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
             prev_hash, row_hash, true
         FROM auditevent_chain_archived WHERE {filter} AND {range}
         ORDER BY 1 NULLS LAST, 2 NULLS LAST, 3"
    )
}

/// The chain places of one company's events in the time range `$2..$3`.
fn seq_range_sql(filter: &str) -> String {
    // The bounds are timestamp text: one without an offset is read in the session's zone,
    // as the search reads it.
    let range = "eventtimestamp >= coalesce($2::text::timestamptz, '-infinity') \
                 AND eventtimestamp < coalesce($3::text::timestamptz, 'infinity')";
    format!(
        "SELECT min(chain_seq), max(chain_seq) FROM (
             SELECT chain_seq FROM auditevents WHERE {filter} AND {range}
             UNION ALL
             SELECT chain_seq FROM auditevents_archival WHERE {filter} AND {range}) r"
    )
}

/// The condition selecting `chains`, over the parameter `$1` (the company, or NULL): each an
/// index condition, so one company's chain is read through its index.
fn chain_filter(chains: Chains) -> (&'static str, Option<i64>) {
    match chains {
        Chains::All => ("$1::bigint IS NULL", None),
        Chains::Company(Some(company)) => ("companyid = $1", Some(company)),
        Chains::Company(None) => ("companyid IS NULL AND $1::bigint IS NULL", None),
    }
}

/// Verifies the chosen chains in one read-only snapshot, comparing each with the database's
/// head and with `anchor` (the newest published heads), if any.
pub async fn verify(
    db: &Database,
    request: VerifyRequest,
    anchor: Option<(String, Anchor)>,
) -> Result<Verification, DbError> {
    let mut client = db.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // A long chain takes longer than a request's statement timeout allows.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    let names = catalog_names(&tx).await?;
    let heads: HashMap<Option<i64>, Head> = tx
        .query(
            "SELECT companyid, chain_seq, row_hash FROM auditevent_chain_heads",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            let hash: Vec<u8> = r.try_get(2)?;
            Ok((
                r.try_get(0)?,
                Head {
                    chain_seq: r.try_get(1)?,
                    row_hash: hash_bytes(&hash).unwrap_or([0xff; 32]),
                },
            ))
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let (anchor_object, anchored) = match &anchor {
        Some((object, anchor)) => (
            Some(object.clone()),
            anchor
                .heads
                .iter()
                .map(|h| {
                    let mut hash = [0u8; 32];
                    let valid = hex::decode_to_slice(&h.row_hash, &mut hash).is_ok();
                    (
                        h.company_id,
                        (
                            AnchoredHead {
                                object: object.clone(),
                                published_at: anchor.published_at,
                                chain_seq: h.chain_seq,
                                row_hash: h.row_hash.clone(),
                            },
                            Head {
                                chain_seq: h.chain_seq,
                                // An unreadable published hash matches nothing.
                                row_hash: if valid { hash } else { [0xff; 32] },
                            },
                        ),
                    )
                })
                .collect::<HashMap<_, _>>(),
        ),
        None => (None, HashMap::new()),
    };

    let (all, company) = match request.chains {
        Chains::All => (true, None),
        Chains::Company(c) => (false, c),
    };
    let (filter, filter_param) = chain_filter(request.chains);
    let ranged = !all && (request.from.is_some() || request.to.is_some());
    let (low, high): (Option<i64>, Option<i64>) = if ranged {
        let row = tx
            .query_one(
                &seq_range_sql(filter),
                &[
                    &filter_param,
                    &request.from.as_ref().map(|t| t.0.as_str()),
                    &request.to.as_ref().map(|t| t.0.as_str()),
                ],
            )
            .await?;
        (row.try_get(0)?, row.try_get(1)?)
    } else {
        (None, None)
    };
    let mut verdicts = Vec::new();
    if ranged && low.is_none() {
        // No event in the range: nothing to walk.
        verdicts.push(ChainVerdict {
            company_id: company,
            verified: true,
            events_checked: 0,
            first_seq: None,
            last_seq: None,
            head: None,
            anchor: None,
            first_invalid: None,
        });
    } else {
        let statement = tx.prepare(&chain_rows_sql(filter)).await?;
        let (low_bound, high_bound) = (low.unwrap_or(i64::MIN), high.unwrap_or(i64::MAX));
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&filter_param, &low_bound, &high_bound];
        let rows = tx.query_raw(&statement, params).await?;
        let mut rows = std::pin::pin!(rows);
        let reaches_end = request.to.is_none();
        let start = if low.is_some_and(|l| l > 1) {
            ChainStart::Trusted
        } else {
            ChainStart::Genesis
        };
        let mut current: Option<(Option<i64>, ChainWalk, Option<i64>)> = None;
        let mut canonical = Vec::with_capacity(512);
        let finish = |company: Option<i64>, walk: ChainWalk, first: Option<i64>| {
            let head = heads.get(&company).copied().filter(|_| reaches_end);
            let anchored = anchored
                .get(&company)
                .filter(|(_, h)| reaches_end || high.is_some_and(|hi| h.chain_seq <= hi));
            let result = walk.finish(head);
            ChainVerdict {
                company_id: company,
                verified: result.first_invalid.is_none(),
                events_checked: result.links_checked,
                first_seq: first,
                last_seq: result.last.map(|l| l.chain_seq),
                head: head.map(|h| HeadView {
                    chain_seq: h.chain_seq,
                    row_hash: hex::encode(h.row_hash),
                }),
                anchor: anchored.map(|(view, _)| view.clone()),
                first_invalid: result.first_invalid,
            }
        };
        let new_walk = |company: &Option<i64>| {
            let anchor = anchored
                .get(company)
                .filter(|(_, h)| reaches_end || high.is_some_and(|hi| h.chain_seq <= hi))
                .map(|(_, h)| *h);
            ChainWalk::new(start, anchor)
        };
        while let Some(row) = rows.next().await {
            let row = row?;
            let row_company: Option<i64> = row.try_get(0)?;
            if current.as_ref().is_none_or(|(c, _, _)| *c != row_company) {
                if let Some((c, walk, first)) = current.take() {
                    verdicts.push(finish(c, walk, first));
                }
                current = Some((row_company, new_walk(&row_company), None));
            }
            let Some((_, walk, first)) = current.as_mut() else {
                continue;
            };
            if walk.is_broken() {
                continue;
            }
            let link = stored_link(&row, &names, &mut canonical)?;
            if first.is_none() {
                *first = link.chain_seq;
            }
            walk.push(link);
        }
        if let Some((c, walk, first)) = current.take() {
            verdicts.push(finish(c, walk, first));
        }
        // Chains with a head but no events at all: every event was deleted.
        if !ranged {
            let walked: std::collections::HashSet<Option<i64>> =
                verdicts.iter().map(|v| v.company_id).collect();
            for company_id in heads.keys() {
                if (all || *company_id == company) && !walked.contains(company_id) {
                    verdicts.push(finish(*company_id, new_walk(company_id), None));
                }
            }
        }
        // A company asked for and unknown (no events, no head) verifies trivially.
        if !all && verdicts.is_empty() {
            verdicts.push(finish(company, new_walk(&company), None));
        }
    }
    tx.commit().await?;
    verdicts.sort_by_key(|v| (v.company_id.is_none(), v.company_id));
    Ok(Verification {
        verified: verdicts.iter().all(|v| v.verified),
        events_checked: verdicts.iter().map(|v| v.events_checked).sum(),
        chains: verdicts,
        anchor_object,
    })
}

/// The verification as lines for a terminal: each broken chain, then the totals.
pub fn describe(verification: &Verification) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let name = |c: Option<i64>| c.map_or_else(|| "(no company)".to_owned(), |c| c.to_string());
    for chain in &verification.chains {
        match &chain.first_invalid {
            Some(invalid) => {
                let _ = writeln!(out, "INVALID company {}: {invalid}", name(chain.company_id));
            }
            None => {
                let _ = writeln!(
                    out,
                    "valid   company {}: {} events{}{}",
                    name(chain.company_id),
                    chain.events_checked,
                    chain
                        .head
                        .as_ref()
                        .map(|h| format!(", head {}", h.chain_seq))
                        .unwrap_or_default(),
                    chain
                        .anchor
                        .as_ref()
                        .map(|a| format!(", published head {} matches", a.chain_seq))
                        .unwrap_or_default()
                );
            }
        }
    }
    let invalid = verification.chains.iter().filter(|c| !c.verified).count();
    let _ = writeln!(
        out,
        "{}/{} chains valid, {} events checked; anchor: {}",
        verification.chains.len() - invalid,
        verification.chains.len(),
        verification.events_checked,
        verification
            .anchor_object
            .as_deref()
            .unwrap_or("none published (CHAIN_ANCHOR_BUCKET unset or empty)")
    );
    out
}

type Names = (HashMap<i32, String>, HashMap<i32, String>);

/// Functionality and event-type names by id, from the same snapshot.
async fn catalog_names(tx: &deadpool_postgres::Transaction<'_>) -> Result<Names, DbError> {
    let functionalities = tx
        .query("SELECT id, name::text FROM auditfunctionalities", &[])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let event_types = tx
        .query("SELECT id, name::text FROM auditeventtypes", &[])
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok((functionalities, event_types))
}

/// One row of [`CHAIN_ROWS`] as a link; its content hash recomputed unless it is the link of
/// an event archived to S3.
fn stored_link(
    row: &tokio_postgres::Row,
    names: &Names,
    canonical: &mut Vec<u8>,
) -> Result<StoredLink, DbError> {
    let chain_seq: Option<i64> = row.try_get(1)?;
    let id: Option<i64> = row.try_get(2)?;
    let archived: bool = row.try_get(13)?;
    // A missing or malformed hash cannot match anything: all ones never is a SHA-256 here.
    let hash = |index| -> Result<[u8; 32], DbError> {
        let value: Option<Vec<u8>> = row.try_get(index)?;
        Ok(value
            .as_deref()
            .and_then(|v| hash_bytes(v).ok())
            .unwrap_or([0xff; 32]))
    };
    let prev_hash = hash(11)?;
    let row_hash = hash(12)?;
    let content_hash = match (archived, chain_seq, id) {
        (false, Some(chain_seq), Some(id)) => {
            let functionality_id: i32 = row.try_get(4)?;
            let event_type_id: i32 = row.try_get(5)?;
            let (Some(functionality), Some(event_type)) =
                (names.0.get(&functionality_id), names.1.get(&event_type_id))
            else {
                // An event naming nothing in the catalog was not written by the function.
                return Ok(StoredLink {
                    chain_seq: Some(chain_seq),
                    id: Some(id),
                    prev_hash,
                    row_hash,
                    content_hash: Some([0xff; 32]),
                });
            };
            let user: Option<String> = row.try_get(7)?;
            let message: Option<String> = row.try_get(8)?;
            let status: String = row.try_get(9)?;
            let data: Option<String> = row.try_get(10)?;
            canonical.clear();
            canonical_v1(
                &EventFields {
                    chain_seq,
                    id,
                    event_time: row.try_get(3)?,
                    functionality,
                    event_type,
                    store_id: row.try_get(6)?,
                    company_id: row.try_get(0)?,
                    user: user.as_deref(),
                    message: message.as_deref(),
                    status: &status,
                    additional_data: data.as_deref(),
                },
                canonical,
            );
            Some(link_hash(&prev_hash, canonical))
        }
        _ => None,
    };
    Ok(StoredLink {
        chain_seq,
        id,
        prev_hash,
        row_hash,
        content_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_keys_sort_by_time_within_a_day_folder() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let early = anchor_key("chains/", at("2026-11-30T09:05:00Z"));
        let late = anchor_key("chains/", at("2026-11-30T10:05:00.250Z"));
        assert_eq!(
            early,
            "chains/2026/11/30/chain-heads-20261130T090500.000Z.json"
        );
        assert!(early < late);
        assert!(early.starts_with(&day_prefix("chains/", at("2026-11-30T23:59:59Z"))));
    }
}
