#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use super::*;
use audit_core::tracking::CopyState;

const H: i64 = 3_600_000;

fn env(pairs: &[(&str, &str)]) -> Env {
    let mut all = vec![
        ("DIGEST_BUCKET", "evidence"),
        (
            "EVIDENCE",
            "evidence/rds-logs/,evidence/dynamodb-changes/,reports/database_audits/",
        ),
        ("SIGNING_KEY_ID", "arn:aws:kms:eu-west-1:123456789012:key/k"),
        ("HEAD_TABLE", "digest-head"),
    ];
    all.extend_from_slice(pairs);
    Env::from_pairs(all)
}

#[test]
fn the_configuration_reads_locations_and_defaults() {
    let config = Config::from_env(&env(&[])).unwrap();
    assert_eq!(config.digest_prefix, "auditkit-digests/");
    assert_eq!(config.evidence.len(), 3);
    assert_eq!(
        config.evidence[0],
        EvidenceLocation::parse("evidence/dynamodb-changes/").unwrap()
    );
    assert_eq!(config.window, Duration::from_secs(3600));
    assert_eq!(config.copy_slo, Duration::from_secs(7200));
    assert_eq!(config.tracking, None);
    assert_eq!(config.chain(), "evidence/auditkit-digests/");
}

#[test]
fn a_bad_configuration_names_its_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("EVIDENCE", "")], "EVIDENCE"),
        (&[("EVIDENCE", "Not_A_Bucket/x")], "EVIDENCE"),
        // Digests must not digest themselves.
        (&[("EVIDENCE", "evidence/")], "EVIDENCE"),
        (
            &[("EVIDENCE", "evidence/auditkit-digests/2026/")],
            "EVIDENCE",
        ),
        (&[("DIGEST_BUCKET", "evidence/x")], "DIGEST_BUCKET"),
        (&[("WINDOW_SECONDS", "7")], "WINDOW_SECONDS"),
        (&[("TRACKING_TABLE", "tracking")], "BACKUP_BUCKET"),
        (&[("BACKUP_BUCKET", "evidence")], "TRACKING_TABLE"),
        (&[("COPY_SLO", "soon")], "COPY_SLO"),
    ];
    for (pairs, variable) in cases {
        let error = Config::from_env(&env(pairs)).unwrap_err();
        assert_eq!(error.variable(), *variable, "{pairs:?}: {error}");
    }
}

#[test]
fn the_first_window_starts_at_the_epoch_and_later_ones_are_aligned_and_bounded() {
    assert_eq!(
        closed_windows(None, 10 * H + 5, H, 24),
        vec![Window {
            start_ms: 0,
            end_ms: 10 * H
        }]
    );
    assert_eq!(closed_windows(None, 5, H, 24), vec![]);
    assert_eq!(
        closed_windows(Some(8 * H), 10 * H + 5, H, 24),
        vec![
            Window {
                start_ms: 8 * H,
                end_ms: 9 * H
            },
            Window {
                start_ms: 9 * H,
                end_ms: 10 * H
            }
        ]
    );
    // Nothing closed since the last run: nothing to write (a re-run changes nothing).
    assert_eq!(closed_windows(Some(10 * H), 10 * H + 5, H, 24), vec![]);
    // A long outage is caught up a bounded number of windows per run.
    assert_eq!(closed_windows(Some(0), 100 * H, H, 24).len(), 24);
    // After WINDOW_SECONDS changed, the next window ends on the new grid.
    assert_eq!(
        closed_windows(Some(H / 2), 2 * H, H, 24),
        vec![
            Window {
                start_ms: H / 2,
                end_ms: H
            },
            Window {
                start_ms: H,
                end_ms: 2 * H
            }
        ]
    );
}

fn listed(key: &str, t: i64) -> ListedVersion {
    ListedVersion {
        bucket: "evidence".into(),
        key: key.into(),
        version_id: Some(format!("v-{key}")),
        size: 1,
        last_modified_ms: t,
    }
}

#[test]
fn versions_go_to_their_window_late_ones_to_a_backfill_and_new_ones_wait() {
    let digested: HashSet<ObjectId> = [listed("old-digested", 7 * H + 1).id()].into();
    let windows = closed_windows(Some(8 * H), 10 * H + 5, H, 24);
    let listing = vec![
        listed("old-digested", 7 * H + 1),
        listed("late", 7 * H + 2),
        listed("too-old-to-backfill", 2 * H),
        listed("w1-b", 8 * H),
        listed("w1-a", 9 * H - 1),
        listed("w2", 9 * H),
        listed("not-yet", 10 * H),
    ];
    let plan = plan(listing, &digested, Some(8 * H), &windows, 6 * H, H, &[]);
    let keys = |v: &Vec<ListedVersion>| v.iter().map(|v| v.key.clone()).collect::<Vec<_>>();
    assert_eq!(plan.windows.len(), 2);
    assert_eq!(keys(&plan.windows[0].1), ["w1-a", "w1-b"]);
    assert_eq!(keys(&plan.windows[1].1), ["w2"]);
    assert_eq!(plan.backfills.len(), 1);
    assert_eq!(
        plan.backfills[0].0,
        Window {
            start_ms: 7 * H,
            end_ms: 8 * H
        }
    );
    assert_eq!(keys(&plan.backfills[0].1), ["late"]);
}

#[test]
fn an_empty_window_is_still_planned() {
    let windows = closed_windows(Some(8 * H), 9 * H, H, 24);
    let plan = plan(vec![], &HashSet::new(), Some(8 * H), &windows, 0, H, &[]);
    assert_eq!(plan.windows, vec![(windows[0], vec![])]);
    assert!(plan.backfills.is_empty());
}

#[test]
fn a_location_added_to_the_evidence_gets_its_whole_history_in_one_backfill() {
    let windows = closed_windows(Some(8 * H), 9 * H, H, 24);
    let mut reports = listed("database_audits/2025.json", H / 2);
    reports.bucket = "reports".into();
    let mut recent_report = listed("database_audits/today.json", 7 * H + 5);
    recent_report.bucket = "reports".into();
    let listing = vec![reports, recent_report, listed("old-log", H / 2)];
    let added = [EvidenceLocation::parse("reports/database_audits/").unwrap()];
    let plan = plan(
        listing,
        &HashSet::new(),
        Some(8 * H),
        &windows,
        6 * H,
        H,
        &added,
    );
    // The old log of a location already covered is beyond the lookback: not backfilled.
    assert_eq!(plan.backfills.len(), 1);
    let (window, versions) = &plan.backfills[0];
    assert_eq!(
        *window,
        Window {
            start_ms: 0,
            end_ms: 8 * H
        }
    );
    assert_eq!(versions.len(), 2);
    assert!(versions.iter().all(|v| v.bucket == "reports"));
}

fn tracked(file: &str, last_written: i64, copied: Option<(i64, &str)>) -> TrackedLogFile {
    TrackedLogFile {
        instance_id: "db-1".into(),
        log_file: file.into(),
        engine: "aurora-mysql".into(),
        cluster_id: None,
        size: 100,
        last_written,
        first_seen: 1_000,
        state: if copied.is_some() {
            CopyState::Copied
        } else {
            CopyState::Due
        },
        due_generation: 1,
        due_size: None,
        due_last_written: None,
        due_at: None,
        due_reason: None,
        copied_generation: copied.map(|_| 1),
        copied_size: copied.map(|_| 100),
        copied_last_written: copied.map(|c| c.0),
        copied_key: copied.map(|c| c.1.to_owned()),
        copied_sha256: None,
        copied_at: None,
        last_copy_error: None,
        last_copy_error_at: None,
        copy_conflict: None,
        expires_at: 0,
    }
}

#[test]
fn a_file_is_not_copied_only_once_its_backup_is_missing_past_the_slo() {
    let slo = Duration::from_secs(2 * 3600);
    let now = 1_000 + 3 * H;
    let present: HashSet<&str> = ["rds-logs/a.1", "rds-logs/stale.1"].into();
    let files = source_files(
        &[
            tracked("a", 5_000, Some((5_000, "rds-logs/a.1"))),
            tracked("never", 5_000, None),
            // Backed up until 1 h ago, written since: waiting 1 h, within the SLO.
            tracked("stale", now - 10, Some((now - H, "rds-logs/stale.1"))),
            // The tracking row names a copy that is not in the bucket: no backup.
            tracked("deleted", 5_000, Some((5_000, "rds-logs/deleted.1"))),
        ],
        &present,
        now,
        slo,
    );
    let status: Vec<(&str, SourceStatus, Option<&str>)> = files
        .iter()
        .map(|f| (f.log_file.as_str(), f.status, f.backup_key.as_deref()))
        .collect();
    assert_eq!(
        status,
        [
            ("a", SourceStatus::Copied, Some("rds-logs/a.1")),
            ("deleted", SourceStatus::NotCopied, None),
            ("never", SourceStatus::NotCopied, None),
            ("stale", SourceStatus::Pending, Some("rds-logs/stale.1")),
        ]
    );
    // Within the SLO a file never copied is pending.
    let early = source_files(&[tracked("never", 5_000, None)], &present, 1_000 + H, slo);
    assert_eq!(early[0].status, SourceStatus::Pending);
}

#[test]
fn the_event_is_the_schedule_or_a_window_end_and_anything_else_names_its_field() {
    let w = Duration::from_secs(3600);
    let schedule =
        serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    assert_eq!(parse_event(&schedule, w).unwrap(), RunRequest::Scheduled);
    assert_eq!(
        parse_event(&serde_json::json!({}), w).unwrap(),
        RunRequest::Scheduled
    );
    assert_eq!(
        parse_event(
            &serde_json::json!({"window_end": "2026-11-30T07:00:00Z"}),
            w
        )
        .unwrap(),
        RunRequest::UpTo {
            window_end_ms: 1_796_022_000_000
        }
    );
    for (event, field) in [
        (
            serde_json::json!({"window_end": "2026-11-30T07:30:00Z"}),
            "window_end",
        ),
        (serde_json::json!({"window_end": "today"}), "window_end"),
        (serde_json::json!({"window_end": 7}), "window_end"),
        (
            serde_json::json!({"window": "2026-11-30T07:00:00Z"}),
            "window",
        ),
        (serde_json::json!([]), "event"),
    ] {
        match parse_event(&event, w) {
            Err(DigestError::InvalidEvent { field: f, .. }) => assert_eq!(f, field, "{event}"),
            other => panic!("{event}: {other:?}"),
        }
    }
}
