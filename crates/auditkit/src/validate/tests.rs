#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use super::*;
use audit_core::digest::{
    DigestedObject, EvidenceLocation, FORMAT, PreviousDigest, SigningAlgorithm, SigningKeyInfo,
    SourceCompleteness, SourceFile, digest_key, encode, rfc3339,
};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, KeyPair};

const H: i64 = 3_600_000;

struct Signer {
    pair: EcdsaKeyPair,
    key: TrustedKey,
}

fn signer() -> Signer {
    let pair = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let key = TrustedKey::new(pair.public_key().as_der().unwrap().as_ref().to_vec());
    Signer { pair, key }
}

fn object(key: &str, t: i64) -> DigestedObject {
    DigestedObject {
        bucket: "evb".into(),
        key: key.into(),
        version_id: Some("v1".into()),
        size: 3,
        sha256: "aa".repeat(32),
        last_modified: rfc3339(t),
        source_sha256: None,
        source_size: None,
        vanished: false,
        unreadable: None,
    }
}

/// A chain of hourly digests, one per window `[i h, (i+1) h)`, each naming one object.
fn chain(signer: &Signer, windows: i64) -> Vec<FoundDigest> {
    let mut found: Vec<FoundDigest> = Vec::new();
    for i in 0..windows {
        let key = digest_key("d/", (i + 1) * H, None);
        let previous = found.last().map(|p| PreviousDigest {
            bucket: p.bucket.clone(),
            key: p.key.clone(),
            signature: p.metadata_signature.clone().unwrap(),
        });
        let document = EvidenceDigest {
            format: FORMAT.into(),
            sequence: i as u64 + 1,
            kind: DigestKind::Hourly,
            window_start: rfc3339(i * H),
            window_end: rfc3339((i + 1) * H),
            written_at: rfc3339((i + 1) * H + 60_000),
            digest_bucket: "evb".into(),
            digest_key: key.clone(),
            previous,
            signing: SigningKeyInfo {
                key_id: "k".into(),
                public_key_fingerprint: signer.key.fingerprint.clone(),
                algorithm: SigningAlgorithm::EcdsaSha256,
            },
            evidence: vec![EvidenceLocation::parse("evb/logs/").unwrap()],
            objects: vec![object(&format!("logs/{i}"), i * H + 1)],
            sources: None,
        };
        found.push(signed(signer, document, "evb", &key));
    }
    found
}

fn signed(signer: &Signer, document: EvidenceDigest, bucket: &str, key: &str) -> FoundDigest {
    let encoded = encode(&document);
    let message = signing_string(
        &document.window_end,
        bucket,
        key,
        &encoded.sha256,
        document.previous.as_ref().map(|p| p.signature.as_str()),
    );
    let signature = hex::encode(
        signer
            .pair
            .sign(&SystemRandom::new(), message.as_bytes())
            .unwrap(),
    );
    FoundDigest {
        bucket: bucket.into(),
        key: key.into(),
        document: Ok((document, encoded.sha256)),
        metadata_signature: Some(signature.clone()),
        sidecar_signature: Some(signature),
        sidecar_problem: None,
    }
}

fn head_of(found: &FoundDigest) -> ChainHead {
    let (document, _) = found.document.as_ref().unwrap();
    ChainHead {
        chain: "evb/d/".into(),
        sequence: document.sequence,
        digest_bucket: found.bucket.clone(),
        digest_key: found.key.clone(),
        signature: found.metadata_signature.clone().unwrap(),
        covered_until: parse_rfc3339(&document.window_end).unwrap(),
    }
}

fn reasons(walk: &ChainWalk) -> Vec<(Reason, String)> {
    walk.problems
        .iter()
        .map(|p| (p.reason, p.what.clone()))
        .collect()
}

#[test]
fn an_intact_chain_is_walked_from_its_head_to_its_start() {
    let s = signer();
    let found = chain(&s, 4);
    let walk = walk_chain(&found, Some(&head_of(&found[3])), &s.key, 0);
    assert_eq!(reasons(&walk), vec![]);
    assert_eq!(
        walk.visited
            .iter()
            .map(|(i, ok)| (*i, *ok))
            .collect::<Vec<_>>(),
        [(3, true), (2, true), (1, true), (0, true)]
    );
    assert_eq!(expected_objects(&found, &walk, 0, 10 * H, true).len(), 4);
    assert_eq!(covered_until(&found, &walk), 4 * H);
}

#[test]
fn the_walk_stops_at_the_first_window_ending_by_the_start_time() {
    let s = signer();
    let found = chain(&s, 4);
    let walk = walk_chain(&found, Some(&head_of(&found[3])), &s.key, 2 * H);
    // Windows ending at 4h and 3h are inside the period; the one ending at 2h is where it stops.
    assert_eq!(walk.visited.len(), 3);
    assert!(walk.problems.is_empty());
    // Objects before the start are not checked.
    let objects = expected_objects(&found, &walk, 2 * H, 10 * H, true);
    assert_eq!(
        objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["logs/2", "logs/3"]
    );
}

#[test]
fn a_deleted_middle_digest_is_a_gap_and_the_walk_goes_on_below_it() {
    let s = signer();
    let mut found = chain(&s, 4);
    let gone = found.remove(1);
    let walk = walk_chain(&found, Some(&head_of(&found[2])), &s.key, 0);
    assert_eq!(
        reasons(&walk),
        vec![(Reason::ChainGap, s3_url("evb", &gone.key))]
    );
    assert_eq!(walk.visited.len(), 3, "the older digest is still checked");
    assert_eq!(walk.digests_valid(), 3);
}

#[test]
fn a_deleted_newest_digest_is_seen_only_against_the_head() {
    let s = signer();
    let mut found = chain(&s, 3);
    let head = head_of(&found[2]);
    found.pop();
    let walk = walk_chain(&found, Some(&head), &s.key, 0);
    assert_eq!(
        reasons(&walk),
        vec![(Reason::ChainTailMissing, s3_url("evb", &head.digest_key))]
    );
    assert_eq!(walk.visited.len(), 2);
    // Without the head, the truncated chain looks whole: hence --head-table.
    assert!(walk_chain(&found, None, &s.key, 0).problems.is_empty());
}

#[test]
fn a_digest_replaced_by_a_validly_signed_older_one_breaks_its_link() {
    let s = signer();
    let mut found = chain(&s, 3);
    // The same content re-signed for the new location by someone holding the key would still
    // not carry the signature the next digest names.
    let (document, _) = found[0].document.clone().unwrap();
    let key = found[1].key.clone();
    found[1] = signed(
        &s,
        EvidenceDigest {
            digest_key: key.clone(),
            ..document
        },
        "evb",
        &key,
    );
    let walk = walk_chain(&found, Some(&head_of(&found[2])), &s.key, 0);
    assert_eq!(
        reasons(&walk),
        vec![(Reason::BadSignature, s3_url("evb", &key))]
    );
    assert!(
        walk.problems[0]
            .detail
            .contains("not the digest the chain names")
    );
}

#[test]
fn signatures_that_disagree_or_come_from_another_key_are_bad() {
    let s = signer();
    let mut found = chain(&s, 2);
    found[0].sidecar_signature = Some("00".into());
    let walk = walk_chain(&found, Some(&head_of(&found[1])), &s.key, 0);
    assert_eq!(
        reasons(&walk),
        vec![(Reason::BadSignature, s3_url("evb", &found[0].key))]
    );
    assert!(walk.problems[0].detail.contains("different signatures"));

    let other = signer();
    let found = chain(&other, 1);
    let walk = walk_chain(&found, None, &s.key, 0);
    assert_eq!(walk.problems[0].reason, Reason::BadSignature);
    assert!(walk.problems[0].detail.contains("not the trusted key"));

    let mut found = chain(&s, 1);
    found[0].document = Err("not gzip".into());
    let walk = walk_chain(&found, None, &s.key, 0);
    assert_eq!(walk.problems[0].reason, Reason::BadSignature);
}

#[test]
fn a_digest_the_chain_does_not_reach_is_reported() {
    let s = signer();
    let mut found = chain(&s, 2);
    let mut stray = chain(&s, 1).remove(0);
    stray.key = "d/stray.json.gz".into();
    found.push(stray);
    let walk = walk_chain(&found, Some(&head_of(&found[1])), &s.key, 0);
    assert_eq!(
        reasons(&walk),
        vec![(Reason::Unlisted, s3_url("evb", "d/stray.json.gz"))]
    );
    assert_eq!(walk.digests_examined(), 3);
}

#[test]
fn objects_are_judged_by_presence_hash_size_and_deep_hash() {
    let mut expected = ExpectedObject {
        vanished: false,
        unreadable: None,
        bucket: "evb".into(),
        key: "k.gz".into(),
        version_id: None,
        size: 3,
        sha256: "aa".into(),
        source_sha256: Some("bb".into()),
        later_versions: Vec::new(),
        is_later: false,
    };
    let present = |size, sha: &str, deep: Option<&str>| ObjectState::Present {
        size,
        sha256: sha.into(),
        decompressed_sha256: deep.map(str::to_owned),
        event_chain: None,
    };
    let reason = |state| judge_object(&expected, &state, "k").map(|p| p.reason);
    assert_eq!(
        reason(ObjectState::Present {
            size: 3,
            sha256: "aa".into(),
            decompressed_sha256: Some("bb".into()),
            event_chain: Some("company 1: hash-mismatch at chain_seq 2".into()),
        }),
        Some(Reason::EventChain)
    );
    assert_eq!(reason(ObjectState::Absent), Some(Reason::Missing));
    assert_eq!(reason(present(3, "ab", None)), Some(Reason::HashMismatch));
    assert_eq!(reason(present(4, "aa", None)), Some(Reason::HashMismatch));
    assert_eq!(
        reason(present(3, "aa", Some("cc"))),
        Some(Reason::DeepMismatch)
    );
    assert_eq!(reason(present(3, "aa", Some("bb"))), None);
    assert_eq!(reason(present(3, "aa", None)), None);
    // Deleted inside its window: missing even if something is there now.
    expected.vanished = true;
    assert_eq!(
        judge_object(&expected, &present(3, "aa", None), "k").map(|p| p.reason),
        Some(Reason::Missing)
    );
    // Recorded unreadable by the digest writer: unproven, whatever is read now.
    expected.vanished = false;
    expected.unreadable = Some("in an archive storage class: InvalidObjectState".into());
    assert_eq!(
        judge_object(&expected, &present(3, "aa", None), "k").map(|p| p.reason),
        Some(Reason::Unreadable)
    );
}

#[test]
fn unlisted_objects_are_those_in_the_covered_period_no_digest_names() {
    let s = signer();
    let found = chain(&s, 2);
    let walk = walk_chain(&found, None, &s.key, 0);
    let stored = |key: &str, version: &str, t| StoredObject {
        bucket: "evb".into(),
        key: key.into(),
        version_id: Some(version.into()),
        last_modified_ms: t,
        size: 3,
    };
    let listing = [
        stored("logs/0", "v1", 1),
        stored("logs/1", "v1", H + 1),
        stored("logs/1", "v2", H + 5), // a second version of a named key
        stored("logs/extra", "v1", H + 7), // added
        stored("logs/later", "v1", 2 * H + 1), // after the covered period: not yet digested
    ];
    let by_version = unlisted(&listing, &found, &walk, 0, 2 * H, true);
    assert_eq!(
        by_version
            .iter()
            .map(|p| p.what.as_str())
            .collect::<Vec<_>>(),
        ["s3://evb/logs/1", "s3://evb/logs/extra"]
    );
    // A local copy holds one version per key.
    let by_key = unlisted(&listing, &found, &walk, 0, 2 * H, false);
    assert_eq!(by_key.len(), 1);
}

#[test]
fn not_copied_files_come_from_the_newest_hourly_digest() {
    let s = signer();
    let mut found = chain(&s, 2);
    let file = |name: &str, status| SourceFile {
        instance_id: "db-1".into(),
        log_file: name.into(),
        size: 1,
        last_written: 0,
        status,
        backup_key: None,
    };
    for (i, status) in [(0, SourceStatus::NotCopied), (1, SourceStatus::Copied)] {
        let (mut document, _) = found[i].document.clone().unwrap();
        document.sources = Some(SourceCompleteness {
            copy_slo_seconds: 7200,
            files: vec![file("a.log", status), file("b.log", SourceStatus::Pending)],
        });
        if i == 1 {
            document.previous = found[0]
                .document
                .as_ref()
                .ok()
                .and_then(|(d, _)| d.previous.clone());
        }
        let key = found[i].key.clone();
        found[i] = signed(&s, document, "evb", &key);
    }
    let walk = walk_chain(&found, None, &s.key, 0);
    // The file missing at hour 1 was copied by hour 2: nothing is reported.
    assert!(not_copied(&found, &walk).is_empty());
    let walk = walk_chain(&found[..1], None, &s.key, 0);
    let problems = not_copied(&found[..1], &walk);
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string().split(" (").next().unwrap(),
        "INVALID not-copied db-1/a.log"
    );
}

/// Two digests each naming a version of `logs/0`: v1 (hour 0) and v2 added later (hour 1).
fn chain_with_a_second_version(s: &Signer) -> Vec<FoundDigest> {
    let mut found = chain(s, 2);
    let (mut document, _) = found[1].document.clone().unwrap();
    let mut later = object("logs/0", H + 7);
    later.version_id = Some("v2".into());
    later.sha256 = "bb".repeat(32);
    document.objects.push(later);
    let key = found[1].key.clone();
    found[1] = signed(s, document, "evb", &key);
    found
}

#[test]
fn a_key_with_a_second_version_is_overwritten_and_the_later_version_never_valid() {
    let s = signer();
    let found = chain_with_a_second_version(&s);
    let walk = walk_chain(&found, None, &s.key, 0);
    let stored = |key: &str, version: &str, t| StoredObject {
        bucket: "evb".into(),
        key: key.into(),
        version_id: Some(version.into()),
        last_modified_ms: t,
        size: 3,
    };
    // S3 lists a key's newer version first.
    let listing = [
        stored("logs/0", "v2", H + 7),
        stored("logs/0", "v1", 1),
        stored("logs/1", "v1", H + 1),
    ];
    let problems = overwritten(&listing, &found, &walk);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].reason, Reason::Overwritten);
    assert_eq!(problems[0].what, "s3://evb/logs/0");
    assert!(
        problems[0].detail.starts_with("2 versions: v1 first"),
        "{}",
        problems[0].detail
    );
    // The digests alone show it too (the store may not list the version any more).
    assert_eq!(overwritten(&[], &found, &walk).len(), 1);
    // A version no digest names, on top of a digested key, is seen from the listing.
    let plain = chain(&s, 2);
    let walk_plain = walk_chain(&plain, None, &s.key, 0);
    assert_eq!(overwritten(&listing, &plain, &walk_plain).len(), 1);
    assert!(overwritten(&listing[1..], &plain, &walk_plain).is_empty());

    // On S3 the later version is expected but marked; in a local copy only the first is.
    let by_version = expected_objects(&found, &walk, 0, i64::MAX, true);
    let v2 = by_version
        .iter()
        .find(|o| o.version_id.as_deref() == Some("v2"))
        .unwrap();
    assert!(v2.is_later);
    let local = expected_objects(&found, &walk, 0, i64::MAX, false);
    let first = local.iter().find(|o| o.key == "logs/0").unwrap();
    assert_eq!(first.version_id.as_deref(), Some("v1"));
    assert_eq!(first.later_versions.len(), 1);
    // A local file holding v2's bytes is named as the version on top.
    let holds_v2 = ObjectState::Present {
        size: 3,
        sha256: "bb".repeat(32),
        decompressed_sha256: None,
        event_chain: None,
    };
    let problem = judge_object(first, &holds_v2, "dir/evb/logs/0").unwrap();
    assert_eq!(problem.reason, Reason::Overwritten);
    assert!(
        problem.detail.contains("holds version v2"),
        "{}",
        problem.detail
    );
}

#[test]
fn a_digest_that_does_not_verify_names_no_object_and_no_location() {
    let s = signer();
    let mut found = chain(&s, 2);
    // The newest digest's signature broken: what it lists is nobody's word.
    found[1].metadata_signature = Some("00".into());
    found[1].sidecar_signature = Some("00".into());
    let walk = walk_chain(&found, None, &s.key, 0);
    assert_eq!(walk.verified(&found).count(), 1);
    let expected = expected_objects(&found, &walk, 0, i64::MAX, true);
    assert_eq!(
        expected.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["logs/0"],
        "logs/1 is named only by the digest that failed"
    );
    assert_eq!(
        covered_until(&found, &walk),
        H,
        "the failed digest covers nothing"
    );
}

#[test]
fn the_first_version_of_a_key_is_the_oldest_and_of_equal_times_the_one_listed_later() {
    let stored = |version: &str, t| StoredObject {
        bucket: "evb".into(),
        key: "k".into(),
        version_id: Some(version.into()),
        last_modified_ms: t,
        size: 1,
    };
    let listing = [
        stored("new", 5),
        stored("same-time-newer", 1),
        stored("old", 1),
    ];
    assert_eq!(
        first_versions(&listing)["k"].version_id.as_deref(),
        Some("old")
    );
}
