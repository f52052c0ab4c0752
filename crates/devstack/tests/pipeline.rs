//! The Aurora audit-log backup end to end with the real binaries: scan-queue messages through
//! log-detector, the tracking table's stream through log-downloader, as Lambda's event source
//! mappings would deliver them. Needs the function binaries (`make test` builds them).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use devstack::LocalLambda;
use devstack::audit_logs::{AuroraAuditLogs, MysqlAuditLog, age_files};
use devstack::backup::{BackupObject, BackupStack};
use devstack::event_sources::{SqsSource, StreamSource};
use devstack::unique_name;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

struct Pipeline {
    stack: BackupStack,
    detectors: Vec<LocalLambda>,
    downloader: LocalLambda,
    queue: SqsSource,
    stream: StreamSource,
}

impl Pipeline {
    async fn start(detectors: usize) -> Self {
        let stack = BackupStack::start().await.unwrap();
        let mut started = Vec::new();
        for _ in 0..detectors {
            started.push(stack.start_detector(&[]).await.unwrap());
        }
        Pipeline {
            downloader: stack
                .start_downloader(&[("BACKUP_PREFIX", "audit")])
                .await
                .unwrap(),
            queue: stack.scan_queue_source(),
            stream: stack.tracking_stream_source().await.unwrap(),
            detectors: started,
            stack,
        }
    }

    /// One poll: a scan message per detector for `instance`, each detector takes one, then the
    /// stream is drained through the downloader.
    async fn poll(&mut self, instance: &str, engine: &str) {
        for _ in &self.detectors {
            let body = BackupStack::scan_message(instance, None, engine).to_string();
            self.stack
                .sqs
                .send_message()
                .queue_url(&self.stack.queue_url)
                .message_body(body)
                .send()
                .await
                .unwrap();
        }
        let deliveries = self.detectors.iter().map(|d| self.queue.poll_once(d));
        for delivery in futures_util::future::join_all(deliveries).await {
            let delivery = delivery.unwrap();
            assert!(
                delivery.as_ref().is_none_or(|d| d.failed == 0),
                "{delivery:?}"
            );
        }
        while let Some(delivery) = self.stream.poll_once(&self.downloader).await.unwrap() {
            assert_eq!(
                delivery.failed,
                0,
                "{delivery:?}\n{}",
                self.downloader.logs().join("\n")
            );
        }
        assert!(self.stream.dropped.is_empty());
    }
}

fn file_names(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.path().is_dir() {
                walk(base, &e.path(), out);
            } else {
                out.push(
                    e.path()
                        .strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn lines(objects: &[BackupObject]) -> BTreeSet<String> {
    objects
        .iter()
        .flat_map(|o| {
            String::from_utf8(o.content.clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn aurora_striping_is_copied_file_by_file_once_even_with_two_detectors() {
    let mut p = Pipeline::start(2).await;
    let instance = unique_name("aurora");
    let dir = p.stack.rds_logs.instance_dir(&instance);
    let mut logs = AuroraAuditLogs::new(&dir, &instance, 6_000).unwrap();

    logs.append(300).unwrap();
    age_files(&dir, Duration::from_secs(900)).unwrap();
    p.poll(&instance, "aurora-mysql").await;
    let first = p.stack.objects().await.unwrap();
    let files = file_names(&dir);
    assert_eq!(
        first.len(),
        files.len(),
        "one object per file, though two detectors raced"
    );

    // More writes: the current stripes fill and rotate into new names.
    logs.append(300).unwrap();
    age_files(&dir, Duration::from_secs(900)).unwrap();
    p.poll(&instance, "aurora-mysql").await;
    let second = p.stack.objects().await.unwrap();

    // Every file is in S3 byte for byte; nothing copied earlier was overwritten.
    for name in file_names(&dir) {
        let source = std::fs::read(dir.join(&name)).unwrap();
        let copies: Vec<_> = second
            .iter()
            .filter(|o| o.metadata["source-file"] == name)
            .collect();
        assert!(
            copies.iter().any(|o| o.content == source),
            "{name}: no exact copy"
        );
    }
    for earlier in &first {
        let now = second.iter().find(|o| o.key == earlier.key).unwrap();
        assert!(
            now.content == earlier.content,
            "{} was overwritten",
            earlier.key
        );
    }
    // A third poll with nothing new copies nothing.
    p.poll(&instance, "aurora-mysql").await;
    assert_eq!(p.stack.objects().await.unwrap().len(), second.len());
}

#[tokio::test]
async fn rename_rotation_never_overwrites_or_misses_a_line() {
    let mut p = Pipeline::start(1).await;
    let instance = unique_name("mysql");
    let dir = p.stack.rds_logs.instance_dir(&instance);
    let mut log = MysqlAuditLog::new(&dir, &instance).unwrap();
    let mut written = BTreeSet::new();

    for round in 0..3 {
        log.append(50 + round * 10).unwrap();
        age_files(&dir, Duration::from_secs(900)).unwrap();
        for name in file_names(&dir) {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            written.extend(text.lines().map(str::to_owned));
        }
        p.poll(&instance, "mysql").await;
        log.rotate().unwrap(); // current becomes .1, .1 becomes .2, a new current starts
    }
    let objects = p.stack.objects().await.unwrap();
    let copied = lines(&objects);
    let missing: Vec<_> = written.difference(&copied).collect();
    assert!(missing.is_empty(), "lines never copied: {missing:?}");
    // The same name held different bytes over time: each version has its own object.
    let versions_of_current = objects
        .iter()
        .filter(|o| o.metadata["source-file"] == "audit/server_audit.log")
        .count();
    assert_eq!(versions_of_current, 3);
    let keys: BTreeSet<_> = objects.iter().map(|o| &o.key).collect();
    assert_eq!(keys.len(), objects.len());
}
