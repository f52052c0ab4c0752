//! audit-api's per-company hash chain, as a verifier sees it: the canonical form of an event
//! (version `v1`), the link hash, and the walk that finds the first broken link.
//!
//! audit-api writes the chain inside PostgreSQL (its `audit_api_append_events` function, in
//! the migration that documents the same form); `audit-api verify` walks the stored chains and
//! `auditkit validate --deep` walks archived months, both through [`ChainWalk`]. Two
//! implementations of one form is the point: the tests write events through the database and
//! verify them here, so the two cannot drift apart unnoticed.

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, VecDeque};

/// `prev_hash` of a chain's first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields an event's link covers, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFields<'a> {
    pub chain_seq: i64,
    pub id: i64,
    pub event_time: DateTime<Utc>,
    /// Names, not ids: renumbering the catalog does not break a chain.
    pub functionality: &'a str,
    pub event_type: &'a str,
    pub store_id: Option<i64>,
    pub company_id: Option<i64>,
    pub user: Option<&'a str>,
    pub message: Option<&'a str>,
    pub status: &'a str,
    /// The stored jsonb as PostgreSQL prints it (`additionaldata::text`).
    pub additional_data: Option<&'a str>,
}

/// Appends the canonical form `v1` of `event` to `out`: `v1`, then each field after a `|`,
/// text as `<byte length>:<bytes>` (no value can imitate a separator), `-` for NULL, the time
/// in UTC with microseconds.
pub fn canonical_v1(event: &EventFields<'_>, out: &mut Vec<u8>) {
    use std::io::Write as _;
    fn text(out: &mut Vec<u8>, value: Option<&str>) {
        out.push(b'|');
        match value {
            Some(v) => {
                let _ = write!(out, "{}:", v.len());
                out.extend_from_slice(v.as_bytes());
            }
            None => out.push(b'-'),
        }
    }
    fn number(out: &mut Vec<u8>, value: Option<i64>) {
        match value {
            Some(v) => {
                let _ = write!(out, "|{v}");
            }
            None => out.extend_from_slice(b"|-"),
        }
    }
    out.extend_from_slice(b"v1");
    number(out, Some(event.chain_seq));
    number(out, Some(event.id));
    let _ = write!(
        out,
        "|{}",
        event.event_time.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    );
    text(out, Some(event.functionality));
    text(out, Some(event.event_type));
    number(out, event.store_id);
    number(out, event.company_id);
    text(out, event.user);
    text(out, event.message);
    text(out, Some(event.status));
    text(out, event.additional_data);
}

/// `SHA-256(prev_hash || canonical)`.
pub fn link_hash(prev_hash: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical);
    hasher.finalize().into()
}

/// Why a chain does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokenLink {
    /// The event's content does not give its stored hash: it was edited.
    HashMismatch,
    /// A sequence number is missing: an event was deleted.
    Gap,
    /// Two events claim one place, an event has no place, or an event does not link to its
    /// predecessor: something was inserted.
    Fork,
    /// An event links to an earlier event than its predecessor: events were moved.
    Reordered,
    /// The chain (internally consistent) disagrees with a recorded head: rows were rewritten
    /// together with their hashes, or the newest rows were removed.
    HeadMismatch,
}

impl BrokenLink {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokenLink::HashMismatch => "hash-mismatch",
            BrokenLink::Gap => "gap",
            BrokenLink::Fork => "fork",
            BrokenLink::Reordered => "reordered",
            BrokenLink::HeadMismatch => "head-mismatch",
        }
    }
}

/// The first problem found: where (`chain_seq`, and the id of the event there when there is
/// one) and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FirstInvalid {
    pub chain_seq: Option<i64>,
    pub id: Option<i64>,
    pub reason: BrokenLink,
}

impl std::fmt::Display for FirstInvalid {
    /// `hash-mismatch at chain_seq 4 (event id 42)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at chain_seq ", self.reason.as_str())?;
        match self.chain_seq {
            Some(seq) => write!(f, "{seq}")?,
            None => f.write_str("(none)")?,
        }
        if let Some(id) = self.id {
            write!(f, " (event id {id})")?;
        }
        Ok(())
    }
}

/// One link as stored: where it claims to be, what it claims to follow, its hash, and (when
/// the event's content is at hand) the hash its content gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLink {
    /// `None`: a row without a place in the chain (inserted around the append function).
    pub chain_seq: Option<i64>,
    pub id: Option<i64>,
    pub prev_hash: [u8; 32],
    pub row_hash: [u8; 32],
    /// `link_hash(prev_hash, canonical)`; `None` for a link whose event is archived elsewhere.
    pub content_hash: Option<[u8; 32]>,
}

/// A recorded head (the database's, or one published outside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub chain_seq: i64,
    pub row_hash: [u8; 32],
}

/// Where a walk starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStart {
    /// At the chain's first event: sequence 1 following [`GENESIS`].
    Genesis,
    /// Inside the chain (a time range, or after events archived elsewhere): the first link's
    /// `prev_hash` is taken as given.
    Trusted,
}

/// How many recent hashes are kept to tell a reordering from a fork (constant memory).
const RECENT_HASHES: usize = 4096;

/// Walks one chain's links in `chain_seq` order (a row without a place first), one link of
/// lookahead so that two links at one place read as a fork whichever comes first, and stops
/// at the first problem. Memory is constant whatever the chain's length.
#[derive(Debug)]
pub struct ChainWalk {
    start: ChainStart,
    /// The published heads not yet passed, in `chain_seq` order.
    anchors: VecDeque<Head>,
    anchors_checked: u64,
    pending: Option<StoredLink>,
    last: Option<(i64, [u8; 32])>,
    recent: HashMap<[u8; 32], i64>,
    recent_order: VecDeque<[u8; 32]>,
    checked: u64,
    first_invalid: Option<FirstInvalid>,
}

/// What a walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkResult {
    pub links_checked: u64,
    /// Published heads the chain was found to hold.
    pub anchors_checked: u64,
    /// The newest link walked (sequence and hash).
    pub last: Option<Head>,
    pub first_invalid: Option<FirstInvalid>,
}

impl ChainWalk {
    /// A walk from `start`; `anchors` are heads published outside the database, every one of
    /// which the chain must contain (same hash at that place). Two published heads at one
    /// place with different hashes cannot both hold: the walk fails there. Heads before the
    /// walk's first link (a trusted start) are outside what it reads and are not compared.
    pub fn new(start: ChainStart, mut anchors: Vec<Head>) -> Self {
        anchors.sort_by_key(|h| (h.chain_seq, h.row_hash));
        anchors.dedup();
        ChainWalk {
            start,
            anchors: anchors.into(),
            anchors_checked: 0,
            pending: None,
            last: None,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            checked: 0,
            first_invalid: None,
        }
    }

    /// Whether the walk has found its problem (the caller can stop reading).
    pub fn is_broken(&self) -> bool {
        self.first_invalid.is_some()
    }

    /// The next link in order.
    pub fn push(&mut self, link: StoredLink) {
        if self.first_invalid.is_some() {
            return;
        }
        if let Some(pending) = self.pending.take() {
            if pending.chain_seq.is_some() && pending.chain_seq == link.chain_seq {
                return self.fail(pending.chain_seq, link.id.or(pending.id), BrokenLink::Fork);
            }
            self.check(pending);
        }
        self.pending = Some(link);
    }

    fn fail(&mut self, chain_seq: Option<i64>, id: Option<i64>, reason: BrokenLink) {
        if self.first_invalid.is_none() {
            self.first_invalid = Some(FirstInvalid {
                chain_seq,
                id,
                reason,
            });
        }
    }

    fn check(&mut self, link: StoredLink) {
        if self.first_invalid.is_some() {
            return;
        }
        let Some(seq) = link.chain_seq else {
            return self.fail(None, link.id, BrokenLink::Fork);
        };
        let expected = match self.last {
            Some((last_seq, _)) => Some(last_seq + 1),
            None if self.start == ChainStart::Genesis => Some(1),
            None => None,
        };
        if let Some(expected) = expected {
            if seq > expected {
                return self.fail(Some(expected), link.id, BrokenLink::Gap);
            }
            if seq < expected {
                return self.fail(Some(seq), link.id, BrokenLink::Fork);
            }
        }
        let expected_prev = match self.last {
            Some((_, hash)) => Some(hash),
            None if self.start == ChainStart::Genesis => Some(GENESIS),
            None => None,
        };
        if let Some(expected_prev) = expected_prev
            && link.prev_hash != expected_prev
        {
            let reason = if self.recent.contains_key(&link.prev_hash) {
                BrokenLink::Reordered
            } else {
                BrokenLink::Fork
            };
            return self.fail(Some(seq), link.id, reason);
        }
        if link.content_hash.is_some_and(|h| h != link.row_hash) {
            return self.fail(Some(seq), link.id, BrokenLink::HashMismatch);
        }
        // Heads before this link were not read (a trusted start); heads at it must match.
        while self.anchors.front().is_some_and(|a| a.chain_seq < seq) {
            self.anchors.pop_front();
        }
        while let Some(anchor) = self.anchors.front().copied()
            && anchor.chain_seq == seq
        {
            if anchor.row_hash != link.row_hash {
                return self.fail(Some(seq), link.id, BrokenLink::HeadMismatch);
            }
            self.anchors.pop_front();
            self.anchors_checked += 1;
        }
        if let Some((_, previous)) = self.last {
            self.remember(previous, seq - 1);
        }
        self.last = Some((seq, link.row_hash));
        self.checked += 1;
    }

    fn remember(&mut self, hash: [u8; 32], seq: i64) {
        if self.recent_order.len() == RECENT_HASHES
            && let Some(oldest) = self.recent_order.pop_front()
        {
            self.recent.remove(&oldest);
        }
        self.recent.insert(hash, seq);
        self.recent_order.push_back(hash);
    }

    /// Ends the walk. `head` is the database's own head of the chain (read in the same
    /// snapshot as the links), when the walk reached the chain's end.
    pub fn finish(mut self, head: Option<Head>) -> WalkResult {
        if let Some(pending) = self.pending.take() {
            self.check(pending);
        }
        let last = self.last.map(|(chain_seq, row_hash)| Head {
            chain_seq,
            row_hash,
        });
        if self.first_invalid.is_none() {
            let last_seq = last.map_or(0, |l| l.chain_seq);
            if let Some(head) = head {
                if head.chain_seq > last_seq {
                    // The newest events are gone but the head remembers them.
                    self.fail(Some(last_seq + 1), None, BrokenLink::Gap);
                } else if head.chain_seq < last_seq {
                    // Events after the head: appended around the function.
                    self.fail(Some(head.chain_seq + 1), None, BrokenLink::Fork);
                } else if last.is_some_and(|l| l.row_hash != head.row_hash) {
                    self.fail(Some(head.chain_seq), None, BrokenLink::HeadMismatch);
                }
            }
            if let Some(anchor) = self.anchors.iter().find(|a| a.chain_seq > last_seq) {
                // A published head past the chain's end: events (and the database's head
                // with them) were removed.
                let at = anchor.chain_seq;
                self.fail(Some(at), None, BrokenLink::HeadMismatch);
            }
        }
        WalkResult {
            links_checked: self.checked,
            anchors_checked: self.anchors_checked,
            last,
            first_invalid: self.first_invalid,
        }
    }
}

/// One line of an S3 archive file (`<prefix><partition>.jsonl.gz`): the event as audit-api
/// archived it, with its link. Ids of the catalog are kept for the original readers; the
/// chain uses the names.
#[derive(Debug, serde::Deserialize)]
pub struct ArchivedEvent<'a> {
    pub id: i64,
    pub company_id: Option<i64>,
    pub store_id: Option<i64>,
    #[serde(borrow)]
    pub user: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    pub message: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    pub status: std::borrow::Cow<'a, str>,
    /// The stored jsonb, exactly as PostgreSQL prints it.
    #[serde(borrow)]
    pub additional_data: Option<&'a serde_json::value::RawValue>,
    /// The link and what only it needs (absent in lines archived before the chain).
    #[serde(default)]
    pub chain_seq: Option<i64>,
    /// UTC with microseconds, as the canonical form prints it.
    #[serde(default, borrow)]
    pub event_time_utc: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub functionality: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub event_type: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub prev_hash: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub row_hash: Option<std::borrow::Cow<'a, str>>,
}

/// Why an archive line cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveLineError {
    #[error("not an archived event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("event {id}: {field} is not {what}")]
    Field {
        id: i64,
        field: &'static str,
        what: &'static str,
    },
}

impl ArchivedEvent<'_> {
    /// The line's link, with the hash its content gives; a line without a place (archived
    /// before the chain) gives a link without one and nothing to compare.
    pub fn link(&self) -> Result<(Option<i64>, StoredLink), ArchiveLineError> {
        let Some(chain_seq) = self.chain_seq else {
            return Ok((
                self.company_id,
                StoredLink {
                    chain_seq: None,
                    id: Some(self.id),
                    prev_hash: GENESIS,
                    row_hash: GENESIS,
                    content_hash: None,
                },
            ));
        };
        let bad = |field, what| ArchiveLineError::Field {
            id: self.id,
            field,
            what,
        };
        fn present<'v>(
            id: i64,
            field: &'static str,
            value: &'v Option<std::borrow::Cow<'_, str>>,
        ) -> Result<&'v str, ArchiveLineError> {
            value.as_deref().ok_or(ArchiveLineError::Field {
                id,
                field,
                what: "present",
            })
        }
        let text = |field, value| present(self.id, field, value);
        let hash = |field, value: &Option<std::borrow::Cow<'_, str>>| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(present(self.id, field, value)?.as_bytes(), &mut out)
                .map_err(|_| bad(field, "64 hex digits"))?;
            Ok::<_, ArchiveLineError>(out)
        };
        let prev_hash = hash("prev_hash", &self.prev_hash)?;
        let row_hash = hash("row_hash", &self.row_hash)?;
        let event_time =
            DateTime::parse_from_rfc3339(text("event_time_utc", &self.event_time_utc)?)
                .map_err(|_| bad("event_time_utc", "an RFC 3339 time"))?
                .with_timezone(&Utc);
        let functionality = text("functionality", &self.functionality)?;
        let event_type = text("event_type", &self.event_type)?;
        let mut canonical = Vec::with_capacity(256);
        canonical_v1(
            &EventFields {
                chain_seq,
                id: self.id,
                event_time,
                functionality,
                event_type,
                store_id: self.store_id,
                company_id: self.company_id,
                user: self.user.as_deref(),
                message: self.message.as_deref(),
                status: &self.status,
                additional_data: self.additional_data.map(|d| d.get()),
            },
            &mut canonical,
        );
        Ok((
            self.company_id,
            StoredLink {
                chain_seq: Some(chain_seq),
                id: Some(self.id),
                prev_hash,
                row_hash,
                content_hash: Some(link_hash(&prev_hash, &canonical)),
            },
        ))
    }
}

/// Checks an archive file's lines (audit-api writes them per company in chain order) on their
/// own: every line's content must give its hash, and consecutive places must link. A month
/// holds only some of a chain's events (later events can carry earlier times), so places may
/// skip: whether the skipped events exist is the database's check, not the file's. Lines
/// archived before the chain existed carry no place and are passed over. Memory is constant.
#[derive(Debug, Default)]
pub struct ArchiveChainCheck {
    last: Option<(Option<i64>, i64, [u8; 32])>,
    lines: u64,
    links: u64,
    first_invalid: Option<(Option<i64>, FirstInvalid)>,
}

impl ArchiveChainCheck {
    /// The next line. An unreadable line is a finding too (`Err` says why).
    pub fn push_line(&mut self, line: &str) -> Result<(), ArchiveLineError> {
        self.lines += 1;
        if self.first_invalid.is_some() {
            return Ok(());
        }
        let event: ArchivedEvent<'_> = serde_json::from_str(line)?;
        let (company, link) = event.link()?;
        let Some(seq) = link.chain_seq else {
            return Ok(());
        };
        let fail = |reason| {
            Some((
                company,
                FirstInvalid {
                    chain_seq: Some(seq),
                    id: link.id,
                    reason,
                },
            ))
        };
        if link.content_hash != Some(link.row_hash) {
            self.first_invalid = fail(BrokenLink::HashMismatch);
            return Ok(());
        }
        if let Some((last_company, last_seq, last_hash)) = self.last
            && last_company == company
        {
            if seq == last_seq {
                self.first_invalid = fail(BrokenLink::Fork);
                return Ok(());
            }
            if seq < last_seq {
                self.first_invalid = fail(BrokenLink::Reordered);
                return Ok(());
            }
            if seq == last_seq + 1 && link.prev_hash != last_hash {
                self.first_invalid = fail(BrokenLink::Fork);
                return Ok(());
            }
        }
        self.last = Some((company, seq, link.row_hash));
        self.links += 1;
        Ok(())
    }

    /// Whether the file is an event archive with links at all (an archive written before the
    /// chain has none to check).
    pub fn has_links(&self) -> bool {
        self.links > 0 || self.first_invalid.is_some()
    }

    /// Lines read, links checked, and the first broken one with its company.
    pub fn finish(self) -> (u64, u64, Option<(Option<i64>, FirstInvalid)>) {
        (self.lines, self.links, self.first_invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> EventFields<'static> {
        EventFields {
            chain_seq: seq,
            id: 40 + seq,
            event_time: DateTime::parse_from_rfc3339("2026-11-29T10:30:00.5Z")
                .unwrap()
                .with_timezone(&Utc),
            functionality: "Authenticate",
            event_type: "Login",
            store_id: Some(101),
            company_id: Some(5001),
            user: Some("jdoe"),
            message: Some("café|1:x"),
            status: "Success",
            additional_data: Some(r#"{"ip": "192.168.1.10"}"#),
        }
    }

    fn chain(n: i64) -> Vec<StoredLink> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let mut canonical = Vec::new();
                canonical_v1(&event(seq), &mut canonical);
                let hash = link_hash(&prev, &canonical);
                let link = StoredLink {
                    chain_seq: Some(seq),
                    id: Some(40 + seq),
                    prev_hash: prev,
                    row_hash: hash,
                    content_hash: Some(hash),
                };
                prev = hash;
                link
            })
            .collect()
    }

    fn walk(
        links: &[StoredLink],
        head: Option<Head>,
        anchors: impl IntoIterator<Item = Head>,
    ) -> WalkResult {
        let mut walk = ChainWalk::new(ChainStart::Genesis, anchors.into_iter().collect());
        for link in links {
            walk.push(*link);
        }
        walk.finish(head)
    }

    fn head_of(links: &[StoredLink]) -> Option<Head> {
        links.last().map(|l| Head {
            chain_seq: l.chain_seq.unwrap(),
            row_hash: l.row_hash,
        })
    }

    fn reason(result: &WalkResult) -> Option<(Option<i64>, BrokenLink)> {
        result
            .first_invalid
            .as_ref()
            .map(|f| (f.chain_seq, f.reason))
    }

    #[test]
    fn canonical_form_is_length_prefixed_utf8_with_utc_microseconds() {
        let mut out = Vec::new();
        canonical_v1(&event(3), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "v1|3|43|2026-11-29T10:30:00.500000Z|12:Authenticate|5:Login|101|5001|4:jdoe\
             |9:café|1:x|7:Success|22:{\"ip\": \"192.168.1.10\"}"
        );
        let mut none = Vec::new();
        canonical_v1(
            &EventFields {
                store_id: None,
                company_id: None,
                user: None,
                message: None,
                additional_data: None,
                ..event(1)
            },
            &mut none,
        );
        assert!(
            String::from_utf8(none)
                .unwrap()
                .ends_with("|-|-|-|-|7:Success|-")
        );
    }

    #[test]
    fn an_intact_chain_verifies_against_its_head_and_anchor() {
        let links = chain(5);
        let anchor = Some(Head {
            chain_seq: 3,
            row_hash: links[2].row_hash,
        });
        let result = walk(&links, head_of(&links), anchor);
        assert_eq!(result.first_invalid, None);
        assert_eq!(result.links_checked, 5);
        assert_eq!(result.last, head_of(&links));
    }

    #[test]
    fn an_edited_event_is_a_hash_mismatch_at_its_place() {
        let mut links = chain(5);
        links[2].content_hash = Some([9; 32]);
        assert_eq!(
            reason(&walk(&links, head_of(&links), None)),
            Some((Some(3), BrokenLink::HashMismatch))
        );
    }

    #[test]
    fn a_deleted_event_is_a_gap_and_a_deleted_tail_too() {
        let links = chain(5);
        let head = head_of(&links);
        let mut middle = links.clone();
        middle.remove(1);
        assert_eq!(
            reason(&walk(&middle, head, None)),
            Some((Some(2), BrokenLink::Gap))
        );
        let first = chain(5).remove(0);
        let mut no_first = chain(5);
        no_first.retain(|l| *l != first);
        assert_eq!(
            reason(&walk(&no_first, head, None)),
            Some((Some(1), BrokenLink::Gap))
        );
        assert_eq!(
            reason(&walk(&links[..4], head, None)),
            Some((Some(5), BrokenLink::Gap))
        );
    }

    #[test]
    fn an_inserted_event_is_a_fork_wherever_it_sorts() {
        let links = chain(5);
        let head = head_of(&links);
        let forged = StoredLink {
            chain_seq: Some(3),
            id: Some(999),
            prev_hash: links[1].row_hash,
            row_hash: [7; 32],
            content_hash: Some([7; 32]),
        };
        for position in [2, 3] {
            let mut inserted = links.clone();
            inserted.insert(position, forged);
            assert_eq!(
                reason(&walk(&inserted, head, None)),
                Some((Some(3), BrokenLink::Fork)),
                "forged link at index {position}"
            );
        }
        let mut unplaced = links.clone();
        unplaced.insert(
            0,
            StoredLink {
                chain_seq: None,
                ..forged
            },
        );
        assert_eq!(
            reason(&walk(&unplaced, head, None)),
            Some((None, BrokenLink::Fork))
        );
    }

    #[test]
    fn swapped_places_are_reordered() {
        let mut links = chain(5);
        // Events 3 and 4 exchange places (each keeps its own links).
        let (a, b) = (links[2], links[3]);
        links[2] = StoredLink {
            chain_seq: Some(3),
            ..b
        };
        links[3] = StoredLink {
            chain_seq: Some(4),
            ..a
        };
        let result = walk(&links, head_of(&chain(5)), None);
        assert_eq!(reason(&result), Some((Some(3), BrokenLink::Fork)));
        // An event that links back past its predecessor: moved from earlier in the chain.
        let mut moved = chain(5);
        moved[3].prev_hash = moved[1].row_hash;
        assert_eq!(
            reason(&walk(&moved, head_of(&chain(5)), None)),
            Some((Some(4), BrokenLink::Reordered))
        );
    }

    #[test]
    fn a_consistent_rewrite_is_caught_by_the_anchor_or_the_head() {
        let original = chain(5);
        // Event 2 rewritten and every later hash recomputed: internally consistent.
        let mut prev = original[0].row_hash;
        let rewritten: Vec<StoredLink> = original
            .iter()
            .map(|l| {
                if l.chain_seq == Some(1) {
                    return *l;
                }
                let hash = link_hash(&prev, &[l.chain_seq.unwrap() as u8]);
                let link = StoredLink {
                    prev_hash: prev,
                    row_hash: hash,
                    content_hash: Some(hash),
                    ..*l
                };
                prev = hash;
                link
            })
            .collect();
        assert_eq!(
            walk(&rewritten, head_of(&rewritten), None).first_invalid,
            None
        );
        assert_eq!(
            reason(&walk(&rewritten, head_of(&original), None)),
            Some((Some(5), BrokenLink::HeadMismatch))
        );
        let anchor = Some(Head {
            chain_seq: 3,
            row_hash: original[2].row_hash,
        });
        assert_eq!(
            reason(&walk(&rewritten, head_of(&rewritten), anchor)),
            Some((Some(3), BrokenLink::HeadMismatch))
        );
        // Events removed with the database's head: the published head is past the end.
        let anchor = Some(Head {
            chain_seq: 5,
            row_hash: original[4].row_hash,
        });
        assert_eq!(
            reason(&walk(&original[..3], head_of(&original[..3]), anchor)),
            Some((Some(5), BrokenLink::HeadMismatch))
        );
    }

    #[test]
    fn every_published_head_is_compared_not_only_the_newest() {
        let original = chain(6);
        let published = |seq: i64, links: &[StoredLink]| Head {
            chain_seq: seq,
            row_hash: links[seq as usize - 1].row_hash,
        };
        let heads = [published(2, &original), published(4, &original)];
        let result = walk(&original, head_of(&original), heads);
        assert_eq!((result.first_invalid, result.anchors_checked), (None, 2));
        // Event 3 rewritten with every later hash, and a head published over the rewrite:
        // the newest published head holds, the older one does not.
        let mut rewritten = original.clone();
        rewritten[2].row_hash = [3; 32];
        rewritten[2].content_hash = Some([3; 32]);
        for i in 3..6 {
            rewritten[i].prev_hash = rewritten[i - 1].row_hash;
            rewritten[i].row_hash = [i as u8 + 1; 32];
            rewritten[i].content_hash = Some([i as u8 + 1; 32]);
        }
        let over_the_rewrite = [published(3, &original), published(5, &rewritten)];
        assert_eq!(
            reason(&walk(&rewritten, head_of(&rewritten), over_the_rewrite)),
            Some((Some(3), BrokenLink::HeadMismatch))
        );
        // Two published heads at one place cannot both hold.
        let conflicting = [published(4, &original), published(4, &rewritten)];
        assert_eq!(
            reason(&walk(&original, head_of(&original), conflicting)),
            Some((Some(4), BrokenLink::HeadMismatch))
        );
        // A trusted start compares only what it reads.
        let mut walk = ChainWalk::new(
            ChainStart::Trusted,
            vec![published(1, &rewritten), published(5, &original)],
        );
        for link in &original[3..] {
            walk.push(*link);
        }
        let result = walk.finish(head_of(&original));
        assert_eq!((result.first_invalid, result.anchors_checked), (None, 1));
    }

    #[test]
    fn a_trusted_start_takes_the_first_link_as_given() {
        let links = chain(6);
        let mut walk = ChainWalk::new(ChainStart::Trusted, Vec::new());
        for link in &links[3..] {
            walk.push(*link);
        }
        let result = walk.finish(head_of(&links));
        assert_eq!(result.first_invalid, None);
        assert_eq!(result.links_checked, 3);
    }

    #[test]
    fn an_archive_line_gives_the_same_link_as_the_database_row() {
        let links = chain(2);
        let line = format!(
            r#"{{"id": 42, "event_time_utc": "2026-11-29T10:30:00.500000Z", "functionality": "Authenticate",
                "event_type": "Login", "store_id": 101, "company_id": 5001, "user": "jdoe",
                "message": "caf\u00e9|1:x", "status": "Success", "additional_data": {{"ip": "192.168.1.10"}},
                "chain_seq": 2, "prev_hash": "{}", "row_hash": "{}"}}"#,
            hex::encode(links[1].prev_hash),
            hex::encode(links[1].row_hash)
        );
        let archived: ArchivedEvent<'_> = serde_json::from_str(&line).unwrap();
        let (company, link) = archived.link().unwrap();
        assert_eq!(company, Some(5001));
        assert_eq!(link, links[1]);
    }

    fn archive_line(link: &StoredLink, seq: i64, message: &str) -> String {
        format!(
            r#"{{"id": {}, "event_time_utc": "2026-11-29T10:30:00.500000Z", "functionality": "Authenticate",
                "event_type": "Login", "store_id": 101, "company_id": 5001, "user": "jdoe",
                "message": "{message}", "status": "Success", "additional_data": {{"ip": "192.168.1.10"}},
                "chain_seq": {seq}, "prev_hash": "{}", "row_hash": "{}"}}"#,
            40 + seq,
            hex::encode(link.prev_hash),
            hex::encode(link.row_hash)
        )
    }

    #[test]
    fn an_archive_file_checks_each_line_and_the_links_it_holds() {
        let links = chain(6);
        let lines: Vec<String> = links
            .iter()
            .map(|l| archive_line(l, l.chain_seq.unwrap(), "caf\\u00e9|1:x"))
            .collect();
        let check = |picked: &[&String]| {
            let mut check = ArchiveChainCheck::default();
            for line in picked {
                check.push_line(line).unwrap();
            }
            check.finish().2.map(|(_, f)| (f.chain_seq, f.reason))
        };
        // Places 1, 2, 4, 6 of the chain (3 and 5 are in another month).
        assert_eq!(check(&[&lines[0], &lines[1], &lines[3], &lines[5]]), None);
        let edited = archive_line(&links[3], 4, "edited");
        assert_eq!(
            check(&[&lines[0], &edited]),
            Some((Some(4), BrokenLink::HashMismatch))
        );
        assert_eq!(
            check(&[&lines[0], &lines[3], &lines[1]]),
            Some((Some(2), BrokenLink::Reordered))
        );
        assert_eq!(
            check(&[&lines[1], &lines[1]]),
            Some((Some(2), BrokenLink::Fork))
        );
        let mut before_chain = ArchiveChainCheck::default();
        before_chain
            .push_line(r#"{"id": 1, "event_time_utc": "2025-01-01T00:00:00.000000Z", "functionality": "Authenticate", "event_type": "Login", "store_id": null, "company_id": null, "user": null, "message": null, "status": "Success", "additional_data": null, "chain_seq": null, "prev_hash": null, "row_hash": null}"#)
            .unwrap();
        assert!(!before_chain.has_links());
    }
}
