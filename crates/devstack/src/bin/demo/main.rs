//! `make demo`: every auditkit pipeline run locally, end to end, with the real binaries, one
//! scenario after the other, each printing what it did:
//! 1. [`backup`]: the Aurora audit-log backup (db-scanner, log-detector, log-downloader).
//! 2. [`orders`]: the DynamoDB change audit (stream-to-firehose).
//! 3. [`updates`]: safe record updates (table-updater).
//! 4. [`pg_audit`]: the database structure audit (pg-auditor).
//! 5. [`audit_api`]: the audit-event service (audit-api).

mod audit_api;
mod backup;
mod orders;
mod pg_audit;
mod updates;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let demo = backup::run().await?;
    orders::orders_audit_trail(&demo.stack.aws).await?;
    updates::safe_record_updates(&demo.stack.aws).await?;
    pg_audit::database_structure_audit(&demo.stack.aws).await?;
    audit_api::audit_event_service().await?;
    println!("\nDone. Everything the demo started stops now.");
    Ok(())
}
