//! What reading every published head costs: `anchor::history` over N anchors of C chains each
//! on moto (cold: every object read; warm: the process's cache, one listing), and the check
//! `anchor::publish` makes of every distinct published head against PostgreSQL before it
//! writes the next anchor. `cargo bench -p audit-api --bench anchor_history`
//! (`ANCHORS`, `CHAINS` change the sizes; defaults 1,000 and 100: 100,000 distinct heads).

#[path = "../tests/common/mod.rs"]
mod common;

use audit_api::anchor::{self, ANCHOR_FORMAT, Anchor, AnchorTarget, PublishedHead};
use chrono::Utc;
use common::Service;
use std::time::Instant;

fn env_or(name: &str, measuring: bool, bench: usize, check: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|_| measuring)
        .unwrap_or(if measuring { bench } else { check })
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs this binary too (without `--bench`): a few anchors
    // through the same path check the bench still works and measure nothing.
    let measuring = std::env::args().any(|a| a == "--bench");
    let anchors = env_or("ANCHORS", measuring, 1_000, 5);
    let chains = env_or("CHAINS", measuring, 100, 3);
    let aws = devstack::moto().isolated();
    let clients = audit_api::Clients::new(aws.sdk_config().await);
    let bucket = devstack::unique_name("anchors");
    aws.create_bucket(&clients.s3, &bucket)
        .await
        .expect("bucket");
    let prefix = "audit-api/chain-heads/".to_owned();
    let start = Utc::now() - chrono::Duration::hours(anchors as i64 + 1);
    for n in 0..anchors {
        let at = start + chrono::Duration::hours(n as i64);
        let heads = (0..chains)
            .map(|c| PublishedHead {
                company_id: Some(c as i64),
                chain_seq: n as i64 + 1,
                row_hash: format!("{:064x}", n * chains + c),
                updated_at: at,
            })
            .collect();
        let body = serde_json::to_vec(&Anchor {
            format: ANCHOR_FORMAT.to_owned(),
            published_at: at,
            heads,
        })
        .expect("json");
        clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(anchor::anchor_key(&prefix, at))
            .body(body.into())
            .send()
            .await
            .expect("put");
    }
    let target = AnchorTarget::new(clients.s3.clone(), bucket.clone(), prefix.clone());
    let cold = Instant::now();
    let history = anchor::history(&target).await.expect("history");
    let cold = cold.elapsed();
    assert_eq!(history.objects_read(), anchors);
    let warm = Instant::now();
    anchor::history(&target).await.expect("history");
    let warm = warm.elapsed();

    // The check before publishing: every distinct head (none on this database's chains).
    let database = common::fresh_database();
    let svc = Service::start_with(
        &database,
        &[("CHAIN_ANCHOR_BUCKET", bucket.as_str())],
        Some(&clients),
    )
    .await;
    let publishing = svc.app.anchor.clone().expect("target");
    let check = Instant::now();
    let refused = anchor::publish(&svc.app.db, &publishing, Utc::now())
        .await
        .expect_err("no chain here holds these heads");
    let check = check.elapsed();
    assert!(matches!(refused, anchor::AnchorError::Diverged(ref c) if c.len() == chains));
    if measuring {
        println!(
            "{anchors} anchors x {chains} chains ({} heads): history cold {:.2} s, warm {:.3} s; \
             publish (list + read + check every head) {:.2} s",
            anchors * chains,
            cold.as_secs_f64(),
            warm.as_secs_f64(),
            check.as_secs_f64()
        );
    }
}
