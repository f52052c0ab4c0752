//! `auditkit status`: where each instance's audit-log backup stands, decided from the rows of
//! the tracking table (pure; the reading is in `cli`).
//!
//! Lag is measured the way a lost instance would hurt: for each file whose listed version is
//! not yet copied, the time since the newest copy's last write (or since the file was first
//! seen, if it was never copied), because every write after that exists only on the
//! instance. An instance whose every listed version is copied has no lag, however old its
//! files are.

use audit_core::tracking::{CopyState, TrackedLogFile};
use serde::Serialize;
use std::collections::BTreeMap;

/// One instance's backup, as the tracking table says it stands at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStatus {
    pub instance_id: String,
    pub engine: String,
    pub cluster_id: Option<String>,
    pub files_tracked: usize,
    /// The newest `LastWritten` RDS listed for any of its files (epoch ms).
    pub newest_source_written: Option<i64>,
    /// The newest `LastWritten` of any copy in S3 (epoch ms).
    pub newest_backup_written: Option<i64>,
    /// See the module documentation; 0 when every listed version is copied.
    pub lag_ms: i64,
    /// The file whose lag is `lag_ms`.
    pub lagging_file: Option<String>,
    /// Files whose listed version is newer than their copy (or never copied).
    pub files_behind: usize,
    /// Copies ordered and not recorded.
    pub copies_ordered: usize,
    /// ... of which ordered longer than the stall threshold ago.
    pub copies_stalled: usize,
    /// Ordered copies whose last attempt failed for good (`last_copy_error`).
    pub copies_failed: usize,
    /// The failures, `file: error`, for the operator to act on.
    pub failures: Vec<String>,
}

/// Lag of one file at `now` (0 when its listed version is copied).
pub fn file_lag_ms(file: &TrackedLogFile, now: i64) -> i64 {
    let copied = file.copied_last_written.unwrap_or(i64::MIN);
    if copied >= file.last_written {
        return 0;
    }
    let covered_until = file.copied_last_written.unwrap_or(file.first_seen);
    (now - covered_until).max(0)
}

/// Groups the rows by instance (sorted by instance id) and decides each one's status.
pub fn summarize(rows: &[TrackedLogFile], now: i64, stall_after_ms: i64) -> Vec<InstanceStatus> {
    let mut by_instance: BTreeMap<&str, Vec<&TrackedLogFile>> = BTreeMap::new();
    for row in rows {
        by_instance.entry(&row.instance_id).or_default().push(row);
    }
    by_instance
        .into_iter()
        .map(|(instance, files)| {
            let mut status = InstanceStatus {
                instance_id: instance.to_owned(),
                engine: files[0].engine.clone(),
                cluster_id: files[0].cluster_id.clone(),
                files_tracked: files.len(),
                newest_source_written: files.iter().map(|f| f.last_written).max(),
                newest_backup_written: files.iter().filter_map(|f| f.copied_last_written).max(),
                lag_ms: 0,
                lagging_file: None,
                files_behind: 0,
                copies_ordered: 0,
                copies_stalled: 0,
                copies_failed: 0,
                failures: Vec::new(),
            };
            for file in &files {
                let lag = file_lag_ms(file, now);
                if lag > 0 || file.copied_last_written.is_none() {
                    status.files_behind += 1;
                }
                if lag > status.lag_ms {
                    status.lag_ms = lag;
                    status.lagging_file = Some(file.log_file.clone());
                }
                if file.state == CopyState::Due {
                    status.copies_ordered += 1;
                    if file.due_at.is_some_and(|at| now - at > stall_after_ms) {
                        status.copies_stalled += 1;
                    }
                    if let Some(error) = &file.last_copy_error {
                        status.copies_failed += 1;
                        status.failures.push(format!("{}: {error}", file.log_file));
                    }
                }
            }
            status.failures.sort();
            status
        })
        .collect()
}

/// `1h 05m`, `12m 30s`, `45s`: a duration an operator reads at a glance.
pub fn human_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `2026-11-30 07:00:01Z`, or `-` for nothing.
fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "-".into(),
            |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        )
}

/// Rows of cells as an aligned text table (first row the header).
pub fn aligned(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The table `auditkit status` prints on a terminal; lags over `max_lag_ms` are marked `!`.
pub fn table(statuses: &[InstanceStatus], max_lag_ms: i64) -> String {
    let mut rows = vec![
        [
            "INSTANCE",
            "FILES",
            "NEWEST SOURCE",
            "NEWEST BACKUP",
            "LAG",
            "BEHIND",
            "ORDERED",
            "STALLED",
            "FAILED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in statuses {
        let mark = if s.lag_ms > max_lag_ms { " !" } else { "" };
        rows.push(vec![
            s.instance_id.clone(),
            s.files_tracked.to_string(),
            when(s.newest_source_written),
            when(s.newest_backup_written),
            format!("{}{mark}", human_duration(s.lag_ms)),
            s.files_behind.to_string(),
            s.copies_ordered.to_string(),
            s.copies_stalled.to_string(),
            s.copies_failed.to_string(),
        ]);
    }
    let mut out = aligned(&rows);
    for s in statuses {
        if let Some(file) = s.lagging_file.as_ref().filter(|_| s.lag_ms > max_lag_ms) {
            out.push_str(&format!(
                "{}: lag {} over the limit, most behind: {file}\n",
                s.instance_id,
                human_duration(s.lag_ms)
            ));
        }
        for failure in &s.failures {
            out.push_str(&format!("{}: copy failed: {failure}\n", s.instance_id));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn file(name: &str, last_written: i64, copied: Option<i64>) -> TrackedLogFile {
        TrackedLogFile {
            instance_id: "db-1".into(),
            log_file: name.into(),
            engine: "aurora-mysql".into(),
            cluster_id: Some("c1".into()),
            size: 10,
            last_written,
            first_seen: last_written - 5 * MIN,
            state: if copied == Some(last_written) {
                CopyState::Copied
            } else {
                CopyState::Observed
            },
            due_generation: 0,
            due_size: None,
            due_last_written: None,
            due_at: None,
            due_reason: None,
            copied_generation: None,
            copied_size: None,
            copied_last_written: copied,
            copied_key: None,
            copied_sha256: None,
            copied_at: None,
            last_copy_error: None,
            last_copy_error_at: None,
            copy_conflict: None,
            expires_at: 0,
        }
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_write_that_exists_only_on_the_instance() {
        let now = 1_000 * MIN;
        // Copied up to date: no lag, however old.
        assert_eq!(file_lag_ms(&file("a", 10 * MIN, Some(10 * MIN)), now), 0);
        // Grew since its copy at 900 min: writes after 900 min are not backed up.
        assert_eq!(
            file_lag_ms(&file("b", 990 * MIN, Some(900 * MIN)), now),
            100 * MIN
        );
        // Never copied: since it was first seen (5 min before its last write).
        assert_eq!(file_lag_ms(&file("c", 950 * MIN, None), now), 55 * MIN);
    }

    #[test]
    fn an_instance_reports_its_most_behind_file_and_its_stalled_and_failed_copies() {
        let now = 1_000 * MIN;
        let mut stalled = file("audit.log.1", 990 * MIN, Some(900 * MIN));
        stalled.state = CopyState::Due;
        stalled.due_at = Some(950 * MIN);
        let mut failed = file("audit.log.2", 995 * MIN, Some(995 * MIN - 1));
        failed.state = CopyState::Due;
        failed.due_at = Some(999 * MIN);
        failed.last_copy_error = Some("LineTooLong".into());
        let mut other = file("x", 999 * MIN, Some(999 * MIN));
        other.instance_id = "db-0".into();
        let rows = vec![
            file("audit.log.0", 980 * MIN, Some(980 * MIN)),
            stalled,
            failed,
            other,
        ];
        let got = summarize(&rows, now, 30 * MIN);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].instance_id, "db-0");
        assert_eq!(got[0].lag_ms, 0);
        let db1 = &got[1];
        assert_eq!(db1.files_tracked, 3);
        assert_eq!(db1.newest_source_written, Some(995 * MIN));
        assert_eq!(db1.newest_backup_written, Some(995 * MIN - 1));
        assert_eq!(db1.lag_ms, 100 * MIN);
        assert_eq!(db1.lagging_file.as_deref(), Some("audit.log.1"));
        assert_eq!(db1.files_behind, 2);
        assert_eq!((db1.copies_ordered, db1.copies_stalled), (2, 1));
        assert_eq!(db1.copies_failed, 1);
        assert_eq!(db1.failures, ["audit.log.2: LineTooLong"]);

        let text = table(&got, 60 * MIN);
        assert!(text.contains("1h 40m !"), "{text}");
        assert!(text.contains("db-1: lag 1h 40m over the limit, most behind: audit.log.1"));
        assert!(text.contains("db-1: copy failed: audit.log.2: LineTooLong"));
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(45_000), "45s");
        assert_eq!(human_duration(750_000), "12m 30s");
        assert_eq!(human_duration(3_900_000), "1h 05m");
        assert_eq!(human_duration(90_000_000), "1d 01h");
    }
}
