//! `make demo`: every auditkit pipeline run locally, end to end, with the real binaries, one
//! scenario after the other, each printing what it did:
//! 1. [`backup`]: the Aurora audit-log backup (db-scanner, log-detector, log-downloader).
//! 2. [`orders`]: the DynamoDB change audit (stream-to-firehose).
//! 3. [`updates`]: safe record updates (table-updater).
//! 4. [`pg_audit`]: the database structure audit (pg-auditor).
//! 5. [`audit_api`]: the audit-event service (audit-api), its hash chains published into the
//!    evidence bucket and verified, then verified on a tampered copy.
//! 6. [`evidence`]: signed, chained digests of all of it (digest-writer after the backup and at
//!    the end), validated on S3 and on a local copy, then on a tampered copy (auditkit).
//! 7. [`insider`]: a backup overwritten by somebody with write access to the bucket, named by
//!    `auditkit validate` and restored from its first version all the same.

mod audit_api;
mod backup;
mod evidence;
mod insider;
mod orders;
mod pg_audit;
mod updates;

/// Prints the command (as `name args`), runs `binary` with `envs`, prints its output
/// indented, and checks its exit status.
fn run_printed(
    name: &str,
    binary: &std::path::Path,
    args: &[&str],
    envs: &[(String, String)],
    expected: i32,
) -> Result<(), String> {
    println!("\n  $ {name} {}", args.join(" "));
    let out = std::process::Command::new(binary)
        .args(args)
        .envs(envs.iter().cloned())
        .output()
        .map_err(|e| format!("{name}: {e}"))?;
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        println!("    {line}");
    }
    let code = out.status.code().unwrap_or(-1);
    println!("    (exit status {code})");
    if code == expected {
        Ok(())
    } else {
        Err(format!(
            "{name} {} exited {code}, expected {expected}",
            args.join(" ")
        ))
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let demo = backup::run().await?;
    let backups = demo.stack.bucket.clone();
    let mut evidence =
        evidence::Evidence::start(&demo.stack.aws, &backups, &demo.stack.table).await?;
    let mut locations = vec![format!("{backups}/{}/", backup::BACKUP_PREFIX)];
    evidence.digest(&locations).await?;
    let changes = orders::orders_audit_trail(&demo.stack.aws).await?;
    updates::safe_record_updates(&demo.stack.aws).await?;
    let reports = pg_audit::database_structure_audit(&demo.stack.aws).await?;
    audit_api::audit_event_service(&demo.stack.aws, &backups).await?;
    println!("\n== Evidence integrity, continued: the chain after every section\n");
    locations.push(format!("{changes}/dynamodb-changes/"));
    locations.push(format!("{reports}/database_audits/"));
    locations.push(format!("{backups}/{}", audit_api::CHAIN_HEADS_PREFIX));
    evidence.digest(&locations).await?;
    evidence.validate(&[&backups, &changes, &reports]).await?;
    insider::overwrite_caught(&mut evidence, &demo.stack, &locations).await?;
    println!("\nDone. Everything the demo started stops now.");
    Ok(())
}
