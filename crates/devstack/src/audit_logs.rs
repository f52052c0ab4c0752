//! TEST FIXTURE: audit log files as RDS writes them, for the log-file double to serve.
//!
//! [`AuroraAuditLogs`] writes Aurora MySQL advanced-auditing files: four stripes at a time,
//! `audit/audit.log.<0-3>.<YYYY-MM-DD-HH-MM>.<n>`, a new file (new name) when one is full.
//! [`MysqlAuditLog`] writes the RDS MySQL/MariaDB plugin's `audit/server_audit.log` and rotates
//! by renaming (current becomes `.1`, `.1` becomes `.2`, ...), so one name points at different
//! bytes over time. Lines are realistic CSV records: epoch-microsecond timestamps, quoted queries
//! with commas, escaped quotes and non-ASCII text.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const QUERIES: &[&str] = &[
    "SELECT id, total FROM orders WHERE customer = \\'Zoë Ångström\\' AND city IN (\\'Zürich\\', \\'Genève\\')",
    "UPDATE customers SET note = \\'VIP, pays late; 日本語のメモ\\' WHERE id = 4711",
    "INSERT INTO audit_probe (k, v) VALUES (\\'naïve\\', \\'café, crème brûlée\\')",
    "DELETE FROM sessions WHERE expires_at < NOW() - INTERVAL 1 DAY",
    "SELECT COUNT(*) FROM payments WHERE status = \\'FAILED\\' -- «retry», ünïcödé",
];
const OPERATIONS: &[&str] = &["QUERY", "READ", "WRITE", "CONNECT", "QUERY"];

/// One Aurora-format audit record (CSV, newline-terminated).
pub fn aurora_line(instance: &str, n: u64) -> String {
    let micros = 1_700_000_000_000_000u64 + n * 1_337;
    let op = OPERATIONS[(n % OPERATIONS.len() as u64) as usize];
    let query = QUERIES[(n % QUERIES.len() as u64) as usize];
    format!(
        "{micros},{instance},app_user,10.0.{}.{},{},{},{op},orders,'{query}',0\n",
        n % 7,
        n % 251,
        1000 + n % 97,
        600_000 + n
    )
}

/// Writes a file of exactly `size` bytes of whole audit lines (the last one padded to fit).
pub fn write_exact(path: &Path, instance: &str, size: usize) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = std::io::BufWriter::new(File::create(path)?);
    let mut written = 0usize;
    let mut n = 0u64;
    while written < size {
        let mut line = aurora_line(instance, n);
        let left = size - written;
        if line.len() > left || left - line.len() < 40 {
            // last line: pad the query so the file ends exactly at `size` with a newline
            line = pad_line(instance, n, left);
        }
        out.write_all(line.as_bytes())?;
        written += line.len();
        n += 1;
    }
    out.flush()
}

fn pad_line(instance: &str, n: u64, len: usize) -> String {
    let base = format!(
        "{},{instance},app_user,10.0.0.1,1,{n},QUERY,orders,'",
        1_700_000_000_000_000u64 + n
    );
    let tail = "',0\n";
    if len <= base.len() + tail.len() {
        let mut s = "x".repeat(len.saturating_sub(1));
        if len > 0 {
            s.push('\n');
        }
        return s;
    }
    format!("{base}{}{tail}", "q".repeat(len - base.len() - tail.len()))
}

/// Sets a file's modification time (its `LastWritten` for the double).
pub fn set_last_written(path: &Path, time: SystemTime) -> std::io::Result<()> {
    File::options().write(true).open(path)?.set_modified(time)
}

/// Sets every file under `dir` to have been last written `age` ago.
pub fn age_files(dir: &Path, age: Duration) -> std::io::Result<()> {
    let when = SystemTime::now() - age;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            age_files(&path, age)?;
        } else {
            set_last_written(&path, when)?;
        }
    }
    Ok(())
}

/// Aurora MySQL audit logs of one instance: four stripes, new names on rotation.
#[derive(Debug)]
pub struct AuroraAuditLogs {
    instance: String,
    audit_dir: PathBuf,
    /// Minutes since 2026-11-22 00:00 of the current file set's timestamp.
    minute: u32,
    generation: u32,
    max_file_bytes: u64,
    next_line: u64,
}

impl AuroraAuditLogs {
    /// Logs for `instance` under `instance_dir` (the double's `<root>/<instance>`).
    pub fn new(instance_dir: &Path, instance: &str, max_file_bytes: u64) -> std::io::Result<Self> {
        let audit_dir = instance_dir.join("audit");
        std::fs::create_dir_all(&audit_dir)?;
        Ok(AuroraAuditLogs {
            instance: instance.to_owned(),
            audit_dir,
            minute: 8 * 60 + 30,
            generation: 0,
            max_file_bytes,
            next_line: 0,
        })
    }

    fn stripe_name(&self, stripe: u32) -> String {
        format!(
            "audit.log.{stripe}.2026-11-22-{:02}-{:02}.{}",
            self.minute / 60,
            self.minute % 60,
            self.generation
        )
    }

    /// The log file names (as RDS lists them) currently being written.
    pub fn current_files(&self) -> Vec<String> {
        (0..4)
            .map(|s| format!("audit/{}", self.stripe_name(s)))
            .collect()
    }

    /// Appends `lines` records round-robin over the four stripes, starting new files (with a
    /// new timestamp in the name) when the current ones are full.
    pub fn append(&mut self, lines: u64) -> std::io::Result<()> {
        for _ in 0..lines {
            let stripe = (self.next_line % 4) as u32;
            let path = self.audit_dir.join(self.stripe_name(stripe));
            let line = aurora_line(&self.instance, self.next_line);
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            f.write_all(line.as_bytes())?;
            self.next_line += 1;
            if f.metadata()?.len() >= self.max_file_bytes {
                self.rotate();
            }
        }
        Ok(())
    }

    /// Starts a new set of four files, as Aurora does when a file is full.
    pub fn rotate(&mut self) {
        self.minute += 1;
        self.generation = 0;
    }
}

/// The RDS MySQL / MariaDB audit plugin's log: rename rotation.
#[derive(Debug)]
pub struct MysqlAuditLog {
    instance: String,
    audit_dir: PathBuf,
    next_line: u64,
}

impl MysqlAuditLog {
    pub fn new(instance_dir: &Path, instance: &str) -> std::io::Result<Self> {
        let audit_dir = instance_dir.join("audit");
        std::fs::create_dir_all(&audit_dir)?;
        Ok(MysqlAuditLog {
            instance: instance.to_owned(),
            audit_dir,
            next_line: 0,
        })
    }

    /// Appends `lines` plugin-format records to `server_audit.log`.
    pub fn append(&mut self, lines: u64) -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.audit_dir.join("server_audit.log"))?;
        for _ in 0..lines {
            let n = self.next_line;
            writeln!(
                f,
                "20261122 08:{:02}:{:02},{},app_user,10.0.0.{},{},{},QUERY,orders,'{}',0",
                (n / 60) % 60,
                n % 60,
                self.instance,
                n % 250,
                100 + n % 13,
                n,
                QUERIES[(n % QUERIES.len() as u64) as usize]
            )?;
            self.next_line += 1;
        }
        Ok(())
    }

    /// Renames `server_audit.log.N` to `.N+1` (highest first), the current file to `.1`, and
    /// starts an empty current file.
    pub fn rotate(&mut self) -> std::io::Result<()> {
        let name = |n: u32| {
            self.audit_dir.join(if n == 0 {
                "server_audit.log".to_owned()
            } else {
                format!("server_audit.log.{n}")
            })
        };
        let mut highest = 0;
        while name(highest + 1).exists() {
            highest += 1;
        }
        for n in (0..=highest).rev() {
            std::fs::rename(name(n), name(n + 1))?;
        }
        File::create(name(0))?;
        Ok(())
    }
}
