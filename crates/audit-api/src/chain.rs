//! Verifying the stored event chains against the database's heads and every head published
//! outside it ([`crate::anchor`]). Verification reads the chain in one read-only snapshot,
//! streamed (memory does not grow with the chain), and walks it with
//! [`audit_core::event_chain::ChainWalk`], which compares each published head as it passes
//! its place.

use crate::anchor::{AnchorHistory, AnchorProblem, AnchoredHead};
use crate::db::{Database, DbError};
use audit_core::event_chain::{
    ChainStart, ChainWalk, EventFields, FirstInvalid, Head, StoredLink, canonical_v1, link_hash,
};
use futures_util::StreamExt as _;
use serde::Serialize;
use std::collections::HashMap;

fn hash_bytes(value: &[u8]) -> Result<[u8; 32], String> {
    value
        .try_into()
        .map_err(|_| format!("a hash of {} bytes", value.len()))
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
    /// The furthest published head of this chain within the walk, when there is one.
    pub anchor: Option<AnchoredHead>,
    /// How many distinct published heads of this chain the walk found on it.
    pub anchors_checked: u64,
    pub first_invalid: Option<FirstInvalid>,
    /// What is wrong with the published heads that concern this chain: any one leaves the
    /// chain unverified.
    pub anchor_problems: Vec<AnchorProblem>,
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
    /// The newest anchor read (`None`: no anchor bucket, or nothing published yet).
    pub anchor_object: Option<String>,
    /// Anchor objects (versions) compared.
    pub anchors_read: usize,
    /// Everything wrong with the published heads.
    pub anchor_problems: Vec<AnchorProblem>,
    /// Objects under the anchor prefix at keys maintenance never writes: not read.
    pub ignored_anchor_objects: Vec<String>,
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
/// head and with every head `anchors` holds for it, if any. `time_limit` bounds each
/// statement (`None`: a long chain may take as long as it takes).
pub async fn verify(
    db: &Database,
    request: VerifyRequest,
    anchors: Option<&AnchorHistory>,
    time_limit: Option<std::time::Duration>,
) -> Result<Verification, DbError> {
    let mut client = db.client().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    // A long chain takes longer than a request's statement timeout allows.
    let limit_ms = time_limit.map_or(0, |t| t.as_millis().max(1));
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {limit_ms}"))
        .await?;
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
    let empty = AnchorHistory::default();
    let anchors = anchors.unwrap_or(&empty);
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
        let anchor_problems = anchors.problems(Some(company));
        verdicts.push(ChainVerdict {
            company_id: company,
            verified: anchor_problems.is_empty(),
            events_checked: 0,
            first_seq: None,
            last_seq: None,
            head: None,
            anchor: None,
            anchors_checked: 0,
            first_invalid: None,
            anchor_problems,
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
        // A range that stops before the chain's end compares the heads published within it.
        let up_to = if reaches_end {
            i64::MAX
        } else {
            high.unwrap_or(i64::MIN)
        };
        let finish = |company: Option<i64>, walk: ChainWalk, first: Option<i64>| {
            let head = heads.get(&company).copied().filter(|_| reaches_end);
            let result = walk.finish(head);
            let anchor_problems = anchors.problems(Some(company));
            ChainVerdict {
                company_id: company,
                verified: result.first_invalid.is_none() && anchor_problems.is_empty(),
                events_checked: result.links_checked,
                first_seq: first,
                last_seq: result.last.map(|l| l.chain_seq),
                head: head.map(|h| HeadView {
                    chain_seq: h.chain_seq,
                    row_hash: hex::encode(h.row_hash),
                }),
                anchor: anchors.furthest(company, up_to).cloned(),
                anchors_checked: result.anchors_checked,
                first_invalid: result.first_invalid,
                anchor_problems,
            }
        };
        let new_walk = |company: &Option<i64>| {
            let mut published = anchors.heads(*company);
            published.retain(|h| h.chain_seq <= up_to);
            ChainWalk::new(start, published)
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
        anchor_object: anchors.newest.as_ref().map(|(_, object)| object.clone()),
        anchors_read: anchors.objects_read(),
        anchor_problems: anchors.problems(None),
        ignored_anchor_objects: anchors.ignored.iter().cloned().collect(),
    })
}

/// The verification as lines for a terminal: each broken chain, then the totals.
pub fn describe(verification: &Verification) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let name = |c: Option<i64>| c.map_or_else(|| "(no company)".to_owned(), |c| c.to_string());
    for problem in &verification.anchor_problems {
        let _ = writeln!(out, "INVALID {problem}");
    }
    for chain in &verification.chains {
        match (&chain.first_invalid, chain.verified) {
            (Some(invalid), _) => {
                let _ = writeln!(out, "INVALID company {}: {invalid}", name(chain.company_id));
            }
            (None, false) => {
                let _ = writeln!(
                    out,
                    "INVALID company {}: its published heads disagree (above)",
                    name(chain.company_id)
                );
            }
            (None, true) => {
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
                    match chain.anchors_checked {
                        0 => String::new(),
                        n => format!(", {n} published head(s) match"),
                    }
                );
            }
        }
    }
    if !verification.ignored_anchor_objects.is_empty() {
        let _ = writeln!(
            out,
            "ignored {} object(s) under the anchor prefix that are not anchors, e.g. {}",
            verification.ignored_anchor_objects.len(),
            verification.ignored_anchor_objects[0]
        );
    }
    let invalid = verification.chains.iter().filter(|c| !c.verified).count();
    let _ = writeln!(
        out,
        "{}/{} chains valid, {} events checked; {} anchor(s) read, newest: {}",
        verification.chains.len() - invalid,
        verification.chains.len(),
        verification.events_checked,
        verification.anchors_read,
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
