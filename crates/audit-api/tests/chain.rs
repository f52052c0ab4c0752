//! The per-company hash chain against a real PostgreSQL (and moto's S3 for the published
//! heads and the archive): events written through the service, tampered with as the
//! superuser with plain SQL, and verified through the endpoint and `chain::verify`.

mod common;

use audit_api::anchor;
use audit_api::chain::{self, Chains, VerifyRequest};
use audit_api::maintain::{self, ArchiveTarget, MaintenanceSettings};
use audit_core::event_chain::{ArchivedEvent, BrokenLink, ChainStart, ChainWalk};
use chrono::Utc;
use common::{KEY, SCOPED_KEY, Service, at, events, yesterday_at};
use serde_json::{Value, json};

/// Company 5001's chain: five single creates with awkward content, then a batch spanning
/// 5001, 5002 and no company. Returns 5001's event ids in chain order.
async fn fill(svc: &Service) -> Vec<i64> {
    let awkward = [
        // Replaced below by exact numbers the client spells its own way.
        json!({"k": 1}),
        json!({"text": "café | 3:x \n ✓ \\ \"quoted\"", "nested": {"b": [true, null]}}),
        Value::Null,
        json!({}),
        json!({"z": 1, "a": 2}),
    ];
    for (i, data) in awkward.iter().enumerate() {
        let mut event = common::example_event();
        event["additional_data"] = data.clone();
        event["message"] = json!(format!("single {i} | ünïcode"));
        if i == 2 {
            event["user"] = Value::Null;
            event["store_id"] = Value::Null;
        }
        let response = if i == 0 {
            let body = event.to_string().replace(
                r#"{"k":1}"#,
                r#"{"k": 1.50, "big": 12345678901234567890123, "e": 1e2, "k2": -0.0}"#,
            );
            svc.post_raw("/api/audit-events/create", body.into_bytes())
                .await
        } else {
            svc.post("/api/audit-events/create", Some(KEY), &event)
                .await
        };
        let (status, body) = Service::json(response).await;
        assert_eq!(status, 200, "{body}");
    }
    let newest = Utc::now() - chrono::Duration::hours(2);
    let mut batch = events(6, 5001, newest);
    batch.extend(events(3, 5002, newest));
    let mut orphan = events(1, 0, newest).remove(0);
    orphan["company_id"] = Value::Null;
    batch.push(orphan);
    let (status, body) = Service::json(
        svc.post("/api/audit-events/create-batch", Some(KEY), &json!(batch))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    svc.sql("SELECT id FROM auditevents WHERE companyid = 5001 ORDER BY chain_seq")
        .lines()
        .map(|l| l.parse().expect("id"))
        .collect()
}

async fn verify(svc: &Service, query: &str) -> Value {
    let (status, body) = Service::json(
        svc.get(&format!("/api/audit-events/verify?{query}"), Some(KEY))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Every chain verified directly (no time limit), against `anchors` when given.
async fn verify_all(
    db: &audit_api::db::Database,
    anchors: Option<&anchor::AnchorHistory>,
) -> chain::Verification {
    let request = VerifyRequest {
        chains: Chains::All,
        from: None,
        to: None,
    };
    chain::verify(db, request, anchors, None)
        .await
        .expect("verify")
}

fn first_invalid(verdict: &Value) -> (Value, Value, Value) {
    let invalid = &verdict["first_invalid"];
    (
        invalid["chain_seq"].clone(),
        invalid["id"].clone(),
        invalid["reason"].clone(),
    )
}

/// Recomputes company 5001's hashes from place `from` on, with `message` at `from`, the way
/// someone who knows the canonical form would; with `move_head`, the database's head too.
fn rewrite_consistently(svc: &Service, from: i64, message: &str, move_head: bool) {
    svc.sql(&format!(
        "DO $$ DECLARE r record; prev bytea; h bytea; BEGIN
           SELECT row_hash INTO prev FROM auditevents WHERE companyid = 5001 AND chain_seq = {from} - 1;
           FOR r IN SELECT e.*, f.name::text AS fname, t.name::text AS tname FROM auditevents e
                    JOIN auditfunctionalities f ON f.id = e.functionalityid
                    JOIN auditeventtypes t ON t.id = e.eventtypeid
                    WHERE companyid = 5001 AND chain_seq >= {from} ORDER BY chain_seq LOOP
             IF r.chain_seq = {from} THEN r.message := '{message}'; END IF;
             h := sha256(prev || convert_to(audit_api_event_canonical_v1(r.chain_seq, r.id,
                    r.eventtimestamp, r.fname, r.tname, r.storelocationid, r.companyid,
                    r.username, r.message, r.status, r.additionaldata::text), 'UTF8'));
             UPDATE auditevents SET message = r.message, prev_hash = prev, row_hash = h
             WHERE id = r.id AND eventtimestamp = r.eventtimestamp;
             prev := h;
           END LOOP;
           IF {move_head} THEN
             UPDATE auditevent_chain_heads SET row_hash = prev WHERE companyid = 5001;
           END IF;
         END $$"
    ));
}

#[tokio::test]
async fn an_untouched_chain_verifies_and_every_tampering_is_reported_at_its_place() {
    let svc = Service::start(&[]).await;
    let ids = fill(&svc).await;
    assert_eq!(ids.len(), 11);
    let intact = verify(&svc, "company_id=5001").await;
    assert_eq!(intact["verified"], true, "{intact}");
    assert_eq!(intact["events_checked"], 11);
    assert_eq!(intact["head"]["chain_seq"], 11);
    assert_eq!(intact["first_invalid"], Value::Null);
    assert_eq!(verify(&svc, "company_id=5002").await["events_checked"], 3);
    // The stored order is gapless and each link names its predecessor.
    assert_eq!(
        svc.sql(
            "SELECT count(*) FROM auditevents a JOIN auditevents b ON b.companyid = a.companyid \
             AND b.chain_seq = a.chain_seq + 1 WHERE a.companyid = 5001 AND b.prev_hash = a.row_hash"
        ),
        "10"
    );

    // Each tampering on its own copy of the same database (CREATE DATABASE ... TEMPLATE).
    let cases: &[(&str, &str, (Value, Value, &str))] = &[
        (
            "UPDATE auditevents SET message = 'nothing happened' WHERE companyid = 5001 AND chain_seq = 4",
            "edited message",
            (json!(4), json!(ids[3]), "hash-mismatch"),
        ),
        (
            "UPDATE auditevents SET additionaldata = '{\"k\": 1.5}' WHERE companyid = 5001 AND chain_seq = 1",
            "additional_data rewritten",
            (json!(1), json!(ids[0]), "hash-mismatch"),
        ),
        (
            "DELETE FROM auditevents WHERE companyid = 5001 AND chain_seq = 6",
            "deleted event",
            (json!(6), json!(ids[6]), "gap"),
        ),
        (
            "DELETE FROM auditevents WHERE companyid = 5001 AND chain_seq = 11",
            "deleted newest event",
            (json!(11), Value::Null, "gap"),
        ),
        (
            "DELETE FROM auditevents WHERE companyid = 5001",
            "every event of the company deleted",
            (json!(1), Value::Null, "gap"),
        ),
        (
            "INSERT INTO auditevents (eventtimestamp, functionalityid, eventtypeid, companyid, \
             username, message, status, chain_seq, prev_hash, row_hash) \
             SELECT eventtimestamp - interval '1 hour', functionalityid, eventtypeid, companyid, \
             'mallory', 'backdated', status, chain_seq, prev_hash, sha256('forged') \
             FROM auditevents WHERE companyid = 5001 AND chain_seq = 3",
            "backdated event with a forged hash",
            (json!(3), Value::Null, "fork"),
        ),
        (
            "INSERT INTO auditevents (eventtimestamp, functionalityid, eventtypeid, companyid, status) \
             VALUES (now() - interval '1 day', 1, 1, 5001, 'Success')",
            "event inserted around the append function",
            (Value::Null, Value::Null, "fork"),
        ),
        (
            "UPDATE auditevents SET prev_hash = (SELECT row_hash FROM auditevents WHERE companyid = 5001 \
             AND chain_seq = 2) WHERE companyid = 5001 AND chain_seq = 5",
            "event relinked to an earlier one",
            (json!(5), json!(ids[4]), "reordered"),
        ),
    ];
    // A template must have no sessions.
    svc.app.db.pool.close();
    devstack::postgres()
        .psql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}'",
                svc.database
            ),
        )
        .expect("disconnect");
    for (sql, what, (seq, id, reason)) in cases {
        let copy = devstack::unique_name("tampered").replace('-', "_");
        devstack::postgres()
            .psql(
                "postgres",
                &format!("CREATE DATABASE {copy} TEMPLATE {}", svc.database),
            )
            .expect("copy");
        let tampered = Service::start_on(&copy, &[]).await;
        tampered.sql(sql);
        let verdict = verify(&tampered, "company_id=5001").await;
        assert_eq!(verdict["verified"], false, "{what}: {verdict}");
        let (found_seq, found_id, found_reason) = first_invalid(&verdict);
        assert_eq!(found_reason, json!(reason), "{what}: {verdict}");
        assert_eq!(found_seq, *seq, "{what}: {verdict}");
        if !id.is_null() {
            assert_eq!(found_id, *id, "{what}: {verdict}");
        }
        // The other company's chain is untouched.
        assert_eq!(verify(&tampered, "company_id=5002").await["verified"], true);
    }
}

#[tokio::test]
async fn rows_rewritten_with_their_hashes_disagree_with_the_published_head() {
    let aws = devstack::moto().isolated();
    let clients = audit_api::Clients::new(aws.sdk_config().await);
    let bucket = devstack::unique_name("evidence");
    aws.create_bucket(&clients.s3, &bucket)
        .await
        .expect("bucket");
    let database = common::fresh_database();
    let svc = Service::start_with(
        &database,
        &[("CHAIN_ANCHOR_BUCKET", bucket.as_str())],
        Some(&clients),
    )
    .await;
    fill(&svc).await;
    let target = svc.app.anchor.clone().expect("anchor target");
    // The maintenance run publishes every chain's head.
    let settings = MaintenanceSettings {
        premake_months: 5,
        retention_months: 12,
        archive: ArchiveTarget::Table,
        anchor: Some(target.clone()),
    };
    let report = maintain::run(&svc.app.db, &settings, Utc::now())
        .await
        .expect("maintain");
    let published = report.chain_heads_published.expect("published");
    assert!(published.starts_with(&format!("s3://{bucket}/audit-api/chain-heads/")));
    let history = anchor::history(&target).await.expect("read");
    assert_eq!(history.objects_read(), 1);
    for company in [None, Some(5001), Some(5002)] {
        assert_eq!(history.heads(company).len(), 1, "{company:?}");
    }

    let valid = verify(&svc, "company_id=5001").await;
    assert_eq!(valid["verified"], true, "{valid}");
    assert_eq!(valid["anchor"]["chain_seq"], 11);
    assert_eq!(valid["anchor"]["object"], json!(published));

    // More events after the anchor, then event 5 rewritten with every later hash and the
    // database's head: consistent inside the database, not with the published head.
    let (status, _) = Service::json(
        svc.post(
            "/api/audit-events/create",
            Some(KEY),
            &common::example_event(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    rewrite_consistently(&svc, 5, "rewritten", true);
    let verdict = verify(&svc, "company_id=5001").await;
    let (seq, _, reason) = first_invalid(&verdict);
    assert_eq!(
        (seq, reason),
        (json!(11), json!("head-mismatch")),
        "{verdict}"
    );
    // The newest events removed together with the database's head: the published head is
    // past the end.
    svc.sql("DELETE FROM auditevents WHERE companyid = 5002 AND chain_seq > 1; \
             UPDATE auditevent_chain_heads h SET chain_seq = 1, row_hash = e.row_hash \
             FROM auditevents e WHERE e.companyid = 5002 AND e.chain_seq = 1 AND h.companyid = 5002");
    let cut = verify_all(
        &svc.app.db,
        Some(&*anchor::history(&target).await.expect("read")),
    )
    .await;
    assert!(!cut.verified);
    let by_company = |c: Option<i64>| {
        cut.chains
            .iter()
            .find(|v| v.company_id == c)
            .expect("chain")
            .clone()
    };
    let cut_5002 = by_company(Some(5002)).first_invalid.expect("invalid");
    assert_eq!(
        (cut_5002.chain_seq, cut_5002.reason),
        (Some(3), BrokenLink::HeadMismatch)
    );
    assert!(by_company(None).verified);
}

/// A maintenance run at `now`; the anchor target of `svc`.
async fn maintain_at(
    svc: &Service,
    now: chrono::DateTime<Utc>,
) -> Result<maintain::MaintenanceReport, maintain::MaintenanceError> {
    let settings = MaintenanceSettings {
        premake_months: 5,
        retention_months: 12,
        archive: ArchiveTarget::Table,
        anchor: svc.app.anchor.clone(),
    };
    maintain::run(&svc.app.db, &settings, now).await
}

/// SECURITY.md, database owner and anchor-prefix writer: the owner rewrites company 5001's
/// chain with every later hash and the database's head; the next hourly run must not publish
/// the rewrite as the new truth, and verify must keep failing whatever is added under the
/// prefix afterwards.
#[tokio::test]
async fn an_owners_rewrite_is_never_anchored_and_added_anchors_cannot_outvote_the_first() {
    let aws = devstack::moto().isolated();
    let clients = audit_api::Clients::new(aws.sdk_config().await);
    let bucket = devstack::unique_name("evidence");
    aws.create_bucket(&clients.s3, &bucket)
        .await
        .expect("bucket");
    clients
        .s3
        .put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let database = common::fresh_database();
    let svc = Service::start_with(
        &database,
        &[("CHAIN_ANCHOR_BUCKET", bucket.as_str())],
        Some(&clients),
    )
    .await;
    fill(&svc).await;
    let first_run = Utc::now() - chrono::Duration::hours(2);
    maintain_at(&svc, first_run).await.expect("first run");

    rewrite_consistently(&svc, 5, "rewritten", true);
    let second_run = first_run + chrono::Duration::hours(1);
    let refused = maintain_at(&svc, second_run).await.expect_err("diverged");
    assert_eq!(refused.chains_diverged(), 1, "{refused}");
    assert!(
        refused.to_string().contains("company 5001: chain_seq 11"),
        "{refused}"
    );
    // The other chains' heads were published; 5001's was not.
    let target = svc.app.anchor.clone().expect("target");
    let published = anchor::anchor_key(&target.prefix, second_run);
    let body = clients
        .s3
        .get_object()
        .bucket(&bucket)
        .key(&published)
        .send()
        .await
        .expect("second anchor")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    let second: anchor::Anchor = serde_json::from_slice(&body).expect("anchor");
    let companies: Vec<Option<i64>> = second.heads.iter().map(|h| h.company_id).collect();
    assert_eq!(companies, [None, Some(5002)]);
    let verdict = verify(&svc, "company_id=5001").await;
    assert_eq!(
        first_invalid(&verdict),
        (
            json!(11),
            verdict["first_invalid"]["id"].clone(),
            json!("head-mismatch")
        ),
        "{verdict}"
    );

    // Whoever may write under the prefix adds a newer anchor holding the rewritten head (and
    // objects at keys maintenance never writes, and a second version of the first anchor):
    // verify names every one and still fails; the first anchor is not outvoted.
    let heads = anchor::current_heads(&svc.app.db).await.expect("heads");
    let forged_at = second_run + chrono::Duration::hours(1);
    let forged = anchor::Anchor {
        format: anchor::ANCHOR_FORMAT.to_owned(),
        published_at: forged_at,
        heads,
    };
    let put = |key: String, body: Vec<u8>| {
        let s3 = clients.s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .expect("put")
        }
    };
    put(
        anchor::anchor_key(&target.prefix, forged_at),
        serde_json::to_vec(&forged).unwrap(),
    )
    .await;
    put(
        format!("{}9999/12/31/newest.json", target.prefix),
        serde_json::to_vec(&forged).unwrap(),
    )
    .await;
    put(
        anchor::anchor_key(&target.prefix, first_run),
        b"{}".to_vec(),
    )
    .await;
    let verdict = verify(&svc, "company_id=5001").await;
    assert_eq!(verdict["verified"], false, "{verdict}");
    let problems: Vec<&str> = verdict["anchor_problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p["problem"].as_str().unwrap())
        .collect();
    assert!(problems.contains(&"conflict"), "{verdict}");
    assert!(problems.contains(&"overwritten"), "{verdict}");
    assert!(problems.contains(&"unreadable"), "{verdict}");
    assert_eq!(
        first_invalid(&verdict).2,
        json!("head-mismatch"),
        "{verdict}"
    );
    // Company 5002 is not part of the conflict, but the overwritten anchor concerns every
    // chain it may have held.
    let other = verify(&svc, "company_id=5002").await;
    assert_eq!(other["verified"], false, "{other}");
    assert!(other["first_invalid"].is_null(), "{other}");
    assert!(
        !other.to_string().contains("5001"),
        "another company's conflict is not shown: {other}"
    );
    let all = verify_all(
        &svc.app.db,
        Some(&*anchor::history(&target).await.expect("read")),
    )
    .await;
    assert_eq!(all.anchors_read, 4, "three anchors, one of them twice");
    assert_eq!(
        all.ignored_anchor_objects,
        [format!("{}9999/12/31/newest.json", target.prefix)]
    );
    assert!(
        chain::describe(&all).contains("INVALID anchors s3://"),
        "{}",
        chain::describe(&all)
    );
}

/// SECURITY.md, tenant: verifications run a few at a time, so one tenant's verifies cannot
/// take the pool from another tenant's creates; one over the limit is told when to retry.
#[tokio::test]
async fn verifications_over_the_limit_are_refused_with_retry_after_and_creates_go_on() {
    let svc = Service::start(&[]).await;
    fill(&svc).await;
    // Every permit taken, as by long verifications of another tenant.
    let held = svc
        .app
        .verifications
        .acquire_many(audit_api::state::VERIFY_CONCURRENCY as u32)
        .await
        .expect("permits");
    let refused = svc
        .get("/api/audit-events/verify?company_id=5001", Some(KEY))
        .await;
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "5");
    let (status, body) = Service::json(
        svc.post(
            "/api/audit-events/create",
            Some(KEY),
            &common::example_event(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "creates do not wait for verifications: {body}");
    drop(held);
    assert_eq!(verify(&svc, "company_id=5001").await["verified"], true);
}

#[tokio::test]
async fn a_rewrite_that_leaves_the_head_is_a_head_mismatch_without_any_anchor() {
    let svc = Service::start(&[]).await;
    fill(&svc).await;
    rewrite_consistently(&svc, 7, "rewritten", false);
    let verdict = verify(&svc, "company_id=5001").await;
    assert_eq!(
        verdict["first_invalid"]["reason"], "head-mismatch",
        "{verdict}"
    );
    assert_eq!(verdict["first_invalid"]["chain_seq"], 11);
}

#[tokio::test]
async fn concurrent_single_and_batch_writers_leave_gapless_valid_chains() {
    let svc = std::sync::Arc::new(Service::start(&[]).await);
    let companies = [7001_i64, 7002, 7003];
    let mut tasks = Vec::new();
    for writer in 0..12 {
        let svc = std::sync::Arc::clone(&svc);
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let mut event = common::example_event();
                event["company_id"] = json!(companies[(writer + i) % 3]);
                event["message"] = json!(format!("writer {writer} event {i}"));
                let response = svc
                    .post("/api/audit-events/create", Some(KEY), &event)
                    .await;
                assert_eq!(response.status(), 200);
            }
        }));
    }
    for writer in 0..4 {
        let svc = std::sync::Arc::clone(&svc);
        tasks.push(tokio::spawn(async move {
            for round in 0..3 {
                // Each batch spans all three companies, in a different order each time.
                let mut batch = Vec::new();
                for k in 0..3 {
                    let company = companies[(k + writer + round) % 3];
                    batch.extend(events(40, company, Utc::now() - chrono::Duration::hours(1)));
                }
                let response = svc
                    .post("/api/audit-events/create-batch", Some(KEY), &json!(batch))
                    .await;
                assert_eq!(response.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let verification = verify_all(&svc.app.db, None).await;
    let total = 12 * 25 + 4 * 3 * 120;
    assert!(verification.verified, "{verification:?}");
    assert_eq!(verification.events_checked, total as u64);
    for verdict in &verification.chains {
        let count: i64 = svc
            .sql(&format!(
                "SELECT count(*) FROM auditevents WHERE companyid = {}",
                verdict.company_id.expect("company")
            ))
            .parse()
            .expect("count");
        // One place per event, no place twice, none skipped.
        assert_eq!(verdict.last_seq, Some(count), "{verdict:?}");
        assert_eq!(verdict.events_checked, count as u64);
    }
}

#[tokio::test]
async fn events_stored_before_the_chain_are_chained_once_in_time_order() {
    let database = common::fresh_database();
    let config = common::config(&database, &[]);
    let app = audit_api::build_app(&config, None).await.expect("app");
    audit_api::db::migrate_to(&app.db, 1)
        .await
        .expect("schema 1");
    maintain::ensure_partitions(&app.db, &app.maintenance, Utc::now())
        .await
        .expect("partitions");
    let yesterday = yesterday_at("10:00:00Z");
    devstack::postgres()
        .psql(
            &database,
            &format!(
                "INSERT INTO auditevents (eventtimestamp, functionalityid, eventtypeid, companyid, message, status, additionaldata) VALUES
                 ('{yesterday}'::timestamptz + interval '2 minutes', 1, 1, 9001, 'second', 'Success', '{{\"n\": 2.0}}'),
                 ('{yesterday}', 1, 2, 9001, 'first', 'Failed', NULL),
                 ('{yesterday}', 2, 5, NULL, 'orphan', 'Success', '[]')"
            ),
        )
        .expect("old rows");
    assert_eq!(
        audit_api::db::migrate_to(&app.db, 2)
            .await
            .expect("migrate"),
        1,
        "the chain migration"
    );
    let sql = |q: &str| devstack::postgres().psql(&database, q).expect("psql");
    assert_eq!(
        sql("SELECT events, chains FROM auditevent_chain_genesis"),
        "3|2"
    );
    assert_eq!(
        sql("SELECT message FROM auditevents WHERE companyid = 9001 ORDER BY chain_seq"),
        "first\nsecond"
    );
    // New events continue the chains.
    let svc = Service::start_on(&database, &[]).await;
    let mut event = common::example_event();
    event["company_id"] = json!(9001);
    let (status, _) = Service::json(
        svc.post("/api/audit-events/create", Some(KEY), &event)
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let verdict = verify(&svc, "company_id=9001").await;
    assert_eq!(verdict["verified"], true, "{verdict}");
    assert_eq!(verdict["events_checked"], 3);
    // Migrating again changes nothing.
    assert_eq!(
        audit_api::db::migrate_to(&app.db, 2).await.expect("again"),
        0
    );
    assert_eq!(sql("SELECT count(*) FROM auditevent_chain_genesis"), "1");
}

#[tokio::test]
async fn archived_months_keep_their_links_and_verify_offline() {
    let aws = devstack::moto().isolated();
    let s3 = aws.s3_client().await;
    let bucket = devstack::unique_name("archive");
    aws.create_bucket(&s3, &bucket).await.expect("bucket");
    let svc = Service::start(&[]).await;
    let db = &svc.app.db;
    let settings = |archive| MaintenanceSettings {
        premake_months: 2,
        retention_months: 12,
        archive,
        anchor: None,
    };
    // Months back to March 2026 exist "as of" March 2027.
    maintain::run(db, &settings(ArchiveTarget::Table), at(2027, 3, 1))
        .await
        .expect("maintain");
    // Company 6001's chain interleaves March, April and this month (late events too).
    let month = |m: u32, day: u32| format!("2026-{m:02}-{day:02}T08:00:00Z");
    let mut batch = Vec::new();
    for (i, when) in [
        month(3, 10),
        month(4, 2),
        month(3, 11),
        month(4, 3),
        yesterday_at("09:00:00Z"),
        month(3, 12),
    ]
    .iter()
    .enumerate()
    {
        let mut event = common::example_event();
        event["company_id"] = json!(6001);
        event["event_timestamp"] = json!(when);
        event["message"] = json!(format!("event {i}"));
        event["additional_data"] = json!({"amount": 10.10, "i": i});
        batch.push(event);
    }
    let (status, body) = Service::json(
        svc.post("/api/audit-events/create-batch", Some(KEY), &json!(batch))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // March to S3, April to the archive table.
    let s3_target = ArchiveTarget::S3 {
        client: s3.clone(),
        bucket: bucket.clone(),
        prefix: "archive/".into(),
    };
    let to_s3 = maintain::run(db, &settings(s3_target), at(2027, 4, 1))
        .await
        .expect("maintain");
    assert_eq!(to_s3.partitions_archived[0].partition, "auditevents_202603");
    let to_table = maintain::run(db, &settings(ArchiveTarget::Table), at(2027, 5, 1))
        .await
        .expect("maintain");
    assert_eq!(
        to_table.partitions_archived[0].partition,
        "auditevents_202604"
    );
    assert_eq!(svc.sql("SELECT count(*) FROM auditevents_archival"), "2");
    assert_eq!(
        svc.sql("SELECT count(*) FROM auditevent_chain_archived"),
        "3"
    );

    // The chain continues across both archives.
    let verdict = verify(&svc, "company_id=6001").await;
    assert_eq!(verdict["verified"], true, "{verdict}");
    assert_eq!(verdict["events_checked"], 6);

    // The S3 file verifies on its own: each line's content gives its hash, and consecutive
    // places link.
    let text = common::archive_text(&s3, &bucket, "archive/auditevents_202603.jsonl.gz").await;
    let mut places = Vec::new();
    for line in text.lines() {
        let event: ArchivedEvent<'_> = serde_json::from_str(line).expect("archive line");
        let (company, link) = event.link().expect("link");
        assert_eq!(company, Some(6001));
        assert_eq!(link.content_hash, Some(link.row_hash), "{line}");
        places.push(link.chain_seq.expect("place"));
    }
    assert_eq!(places, [1, 3, 6]);
    // An edited archive line no longer gives its hash.
    let edited = text
        .lines()
        .next()
        .expect("line")
        .replace("event 0", "event 9");
    let event: ArchivedEvent<'_> = serde_json::from_str(&edited).expect("line");
    let (_, link) = event.link().expect("link");
    let mut walk = ChainWalk::new(ChainStart::Trusted, Vec::new());
    walk.push(link);
    let result = walk.finish(None);
    assert_eq!(
        result.first_invalid.map(|f| f.reason),
        Some(BrokenLink::HashMismatch)
    );

    // Deleting an archived event's link shows as a gap in the database's chain.
    svc.sql("DELETE FROM auditevent_chain_archived WHERE chain_seq = 3");
    let verdict = verify(&svc, "company_id=6001").await;
    assert_eq!(first_invalid(&verdict).2, json!("gap"), "{verdict}");
    assert_eq!(first_invalid(&verdict).0, json!(3));
}

#[tokio::test]
async fn the_endpoint_checks_its_parameters_and_the_key_scope() {
    let svc = Service::start(&[]).await;
    fill(&svc).await;
    let (status, body) = Service::json(svc.get("/api/audit-events/verify", Some(KEY)).await).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["query", "company_id"]));
    let (status, body) = Service::json(
        svc.get(
            "/api/audit-events/verify?company_id=5001&from_date=yesterday",
            Some(KEY),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "from_date"]));
    let (status, _) = Service::json(
        svc.get("/api/audit-events/verify?company_id=5001", Some(SCOPED_KEY))
            .await,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = Service::json(
        svc.get("/api/audit-events/verify?company_id=7001", Some(SCOPED_KEY))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    // A time range: the batch's 5001 events (two hours ago) only, the link into the past
    // taken as given; an edit outside the range is not this range's problem.
    let from = (Utc::now() - chrono::Duration::hours(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    svc.sql("UPDATE auditevents SET message = 'edited' WHERE companyid = 5001 AND chain_seq = 1");
    let ranged = verify(&svc, &format!("company_id=5001&from_date={from}")).await;
    assert_eq!(ranged["verified"], true, "{ranged}");
    assert_eq!(ranged["events_checked"], 6);
    assert_eq!(ranged["first_seq"], 6);
    let whole = verify(&svc, "company_id=5001").await;
    assert_eq!(whole["first_invalid"]["reason"], "hash-mismatch");
}

/// SECURITY.md, database owner's writer role: a role that may create in the schema adds an
/// overload of the canonical form taking int4 first (an exact match for an unqualified `0`);
/// the append function, running as the owner, must still call the owner's own function.
#[tokio::test]
async fn an_overload_created_in_the_schema_never_runs_as_the_owner() {
    let svc = Service::start(&[]).await;
    fill(&svc).await;
    let schema = svc.sql("SELECT current_schema()");
    let schema = schema.trim();
    assert_eq!(
        svc.sql(&format!(
            "SELECT has_schema_privilege('public', '{schema}', 'CREATE')"
        ))
        .trim(),
        "f",
        "PUBLIC may not create in the schema"
    );
    svc.sql(&format!(
        "GRANT CREATE ON SCHEMA {schema} TO audit_api_writer; SET ROLE audit_api_writer;
         CREATE FUNCTION audit_api_event_canonical_v1(int, bigint, timestamptz, text, text,
             bigint, bigint, text, text, text, text) RETURNS text LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'the overload ran as %', current_user; END $$;"
    ));
    let (status, body) = Service::json(
        svc.post(
            "/api/audit-events/create",
            Some(KEY),
            &common::example_event(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(verify(&svc, "company_id=5001").await["verified"], true);
}

#[tokio::test]
async fn the_application_role_appends_but_cannot_edit_or_delete_events() {
    let owner = Service::start(&[]).await;
    fill(&owner).await;
    let role = devstack::unique_name("app").replace('-', "_");
    devstack::postgres()
        .psql(
            "postgres",
            &format!("CREATE ROLE {role} LOGIN IN ROLE audit_api_writer"),
        )
        .expect("role");
    let url = format!(
        "postgres://{role}@127.0.0.1:{}/{}?sslmode=disable",
        devstack::postgres().port(),
        owner.database
    );
    let owner_url = format!(
        "{}?sslmode=disable",
        devstack::postgres().url(&owner.database)
    );
    let app_svc = Service::start_on(
        &owner.database,
        &[
            ("DATABASE_URL", url.as_str()),
            ("MAINTENANCE_DATABASE_URL", owner_url.as_str()),
        ],
    )
    .await;
    // Months ahead are the owner's work: the application's role may not create them.
    let later = Utc::now() + chrono::Duration::days(240);
    let denied = maintain::ensure_partitions(&app_svc.app.db, &app_svc.app.maintenance, later)
        .await
        .expect_err("the writer made a partition");
    assert!(denied.is_insufficient_privilege(), "{denied}");
    let made = maintain::run(&app_svc.app.owner_db, &app_svc.app.maintenance, later)
        .await
        .expect("the owner's maintenance");
    assert!(!made.partitions_created.is_empty());
    let (status, body) = Service::json(
        app_svc
            .post(
                "/api/audit-events/create",
                Some(KEY),
                &common::example_event(),
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(verify(&app_svc, "company_id=5001").await["verified"], true);
    // Message patterns use a sample of trigrams (pg_trgm's show_trgm, the catalog's sizes):
    // the application's role may take it.
    audit_api::db::trigram_frequencies(&app_svc.app.db, 100)
        .await
        .expect("the application's role samples message trigrams");
    let as_app = |sql: &str| {
        std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, &url])
            .output()
            .expect("psql")
    };
    for sql in [
        "UPDATE auditevents SET message = 'x' WHERE companyid = 5001",
        "DELETE FROM auditevents WHERE companyid = 5001",
        "INSERT INTO auditevents (eventtimestamp, functionalityid, eventtypeid, status) VALUES (now(), 1, 1, 'Success')",
        "UPDATE auditevent_chain_heads SET chain_seq = 0",
        "TRUNCATE auditevents",
    ] {
        let out = as_app(sql);
        assert!(!out.status.success(), "{sql} was allowed");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("permission denied"),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(owner.count_events(), 16, "nothing changed");
}
