//! The DynamoDB change audit: the Orders example of the original change-audit lab through
//! stream-to-firehose, read back as order 101's history.

/// The original change-audit lab's Orders example through stream-to-firehose.
/// Returns the audit bucket (the evidence section digests its change log).
pub async fn orders_audit_trail(aws: &devstack::AwsEnv) -> Result<String, String> {
    use aws_sdk_dynamodb::types::StreamViewType;
    use devstack::change_audit::ChangeAuditStack;

    println!("\n== DynamoDB change audit trail: the Orders table\n");
    let stack = ChangeAuditStack::create(aws, "demo").await?;
    let stream_arn = stack
        .create_audited_table("Orders", "orderId", StreamViewType::NewAndOldImages)
        .await?;
    println!(
        "  table Orders (stream NEW_AND_OLD_IMAGES) -> stream-to-firehose -> Firehose {} -> s3://{}/dynamodb-changes/",
        stack.delivery_stream, stack.bucket
    );
    // The original change-audit lab's item and the state changes it walks through.
    for done in stack.write_orders_example("Orders").await? {
        println!("  {done}");
    }
    println!();

    let forwarder = stack.start_forwarder(&[]).await?;
    let mut source = stack.stream_source(&stream_arn).await?;
    let mut records = 0;
    while let Some(d) = source.poll_once(&forwarder).await? {
        println!(
            "  stream-to-firehose: {} stream record(s), {} reported for retry",
            d.records, d.failed
        );
        records += d.records;
    }

    let objects = stack.delivered().await?;
    let mut lines: Vec<serde_json::Value> = objects.iter().flat_map(|o| o.lines.clone()).collect();
    // Stream order: sequence numbers compare by length, then as text.
    lines.sort_by_key(|l| {
        let n = l["sequence_number"].as_str().unwrap_or_default().to_owned();
        (n.len(), n)
    });
    let mut ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["event_id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    println!(
        "\nIn S3: {} object(s), {} audit line(s) for {records} stream record(s), {} distinct event id(s)",
        objects.len(),
        lines.len(),
        ids.len()
    );
    if let Some(first) = objects.first() {
        println!("  {}", first.key);
    }

    println!(
        "\nOrder 101's history, read from the change log in S3 by the operator CLI (no Athena):"
    );
    crate::run_printed(
        "auditkit",
        &devstack::function_binary("auditkit")?,
        &[
            "history",
            "--bucket",
            &stack.bucket,
            "--table",
            "Orders",
            "--key",
            "orderId=101",
        ],
        &aws.vars(),
        0,
    )?;
    if let Some(removal) = lines.iter().find(|l| l["event_name"] == "REMOVE") {
        println!(
            "\nOrder 102's deletion: REMOVE, ttl_expired {}, last state {}",
            removal["ttl_expired"], removal["old_image"]["state"]
        );
    }
    if let Some(example) = objects
        .first()
        .and_then(|o| o.raw.split(|b| *b == b'\n').next())
    {
        println!(
            "\nOne audit line as stored:\n  {}",
            String::from_utf8_lossy(example)
        );
    }
    if lines.len() != records || ids.len() != records {
        return Err(format!(
            "{records} stream records but {} lines with {} distinct event ids",
            lines.len(),
            ids.len()
        ));
    }
    Ok(stack.bucket.clone())
}
