//! Evidence against an insider: somebody with `s3:PutObject` on the backup bucket (no KMS
//! key, no Object Lock bypass) puts a new version of one backup on top of it, with forged
//! bytes and `source-sha256` metadata computed over them. Object Lock keeps the old version
//! but cannot stop the new one; the next digest-writer run signs it as new evidence. auditkit
//! names it (`INVALID overwritten`, exit 1) and still restores the original bytes.

use crate::evidence::{Evidence, path};
use devstack::backup::BackupStack;
use devstack::function_binary;
use sha2::Digest;
use std::io::Write;

pub async fn overwrite_caught(
    evidence: &mut Evidence,
    backups: &BackupStack,
    locations: &[String],
) -> Result<(), String> {
    println!(
        "\n== Evidence against an insider: a backup overwritten with forged bytes and metadata\n"
    );
    // A backup the tracking row records (its file's newest copy).
    let rows = backups.rows().await?;
    let row = rows
        .iter()
        .find(|r| r["state"] == "copied" && r["copied_key"].is_string())
        .ok_or("no copied backup to attack")?;
    let (instance, file, key) = (
        row["instance_id"].as_str().unwrap_or_default(),
        row["log_file"].as_str().unwrap_or_default(),
        row["copied_key"].as_str().unwrap_or_default(),
    );
    let original = std::fs::read(backups.rds_logs.instance_dir(instance).join(file))
        .map_err(|e| format!("{file}: {e}"))?;
    let forged = b"2026-11-22 10:00:00 nothing happened on this instance\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(forged).map_err(|e| e.to_string())?;
    let forged_sha = hex::encode(sha2::Sha256::digest(forged));
    let put = backups
        .s3
        .put_object()
        .bucket(&backups.bucket)
        .key(key)
        .metadata("source-sha256", &forged_sha)
        .metadata("source-size", forged.len().to_string())
        .metadata("source-instance", instance)
        .metadata("source-file", file)
        .body(gz.finish().map_err(|e| e.to_string())?.into())
        .send()
        .await
        .map_err(|e| format!("PutObject {key}: {e:?}"))?;
    println!(
        "  an insider puts version {} of s3://{}/{key}\n  ({} forged bytes, source-sha256 {}... computed over them)",
        put.version_id().unwrap_or("?"),
        backups.bucket,
        forged.len(),
        &forged_sha[..16]
    );
    println!("  the next digest-writer run signs the new version as ordinary new evidence:");
    evidence.digest(locations).await?;

    let auditkit = function_binary("auditkit")?;
    let (bucket, key_arn, head) = (
        backups.bucket.clone(),
        evidence.stack.key_arn.clone(),
        evidence.stack.head_table.clone(),
    );
    evidence.run(
        &auditkit,
        &[
            "validate",
            "--bucket",
            &bucket,
            "--key-id",
            &key_arn,
            "--head-table",
            &head,
        ],
        1,
    )?;

    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let restored = scratch.path().join("restored.log");
    evidence.run(
        &auditkit,
        &[
            "restore",
            "--tracking-table",
            &backups.table,
            "--bucket",
            &bucket,
            "--backup-prefix",
            crate::backup::BACKUP_PREFIX,
            "--instance",
            instance,
            "--file",
            file,
            "--out",
            path(&restored),
        ],
        0,
    )?;
    let bytes = std::fs::read(&restored).map_err(|e| e.to_string())?;
    // The copy is the file as it was when copied; a file that grew since starts with it.
    if bytes.is_empty() || !original.starts_with(&bytes) {
        return Err("the restore did not bring back the original log".into());
    }
    println!(
        "\n  the restored {} bytes are the original log's, not the insider's {}",
        bytes.len(),
        forged.len()
    );
    Ok(())
}
