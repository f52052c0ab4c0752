//! `auditkit restore`: which stored copy of a log file to bring back, and the writer that
//! brings it back verified. The listing and fetching are in `cli`.
//!
//! The bytes go through gzip decoding and SHA-256 into a temporary file beside the target;
//! only when the checksum equals the copy's `source-sha256` (and the size its `source-size`)
//! is it renamed onto the target, so a restore leaves the verified file or nothing.

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One stored copy of a log file, told from its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredCopy {
    pub key: String,
    /// The source's `LastWritten` when it was copied (epoch ms): the version.
    pub last_written: i64,
    /// A copy whose bytes are not exactly the source's (see `copy-fidelity`).
    pub lossy: bool,
    pub gzip: bool,
    /// Stored (compressed) size.
    pub stored_size: u64,
}

/// The copy a key names, when it is a copy of `file` under `instance_prefix`
/// (`{instance_prefix}{yyyy}/{mm}/{dd}/{file}.{last written}[.lossy][.gz]`).
pub fn parse_copy(key: &str, instance_prefix: &str, file: &str) -> Option<(i64, bool, bool)> {
    let rest = key.strip_prefix(instance_prefix)?;
    let (day, name) = (rest.get(..11)?, rest.get(11..)?);
    let b = day.as_bytes();
    let day_ok = b.iter().enumerate().all(|(i, c)| match i {
        4 | 7 | 10 => *c == b'/',
        _ => c.is_ascii_digit(),
    });
    if !day_ok {
        return None;
    }
    let version = name.strip_prefix(file)?.strip_prefix('.')?;
    let (version, gzip) = match version.strip_suffix(".gz") {
        Some(v) => (v, true),
        None => (version, false),
    };
    let (version, lossy) = match version.strip_suffix(".lossy") {
        Some(v) => (v, true),
        None => (version, false),
    };
    if version.is_empty() || !version.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((version.parse().ok()?, lossy, gzip))
}

/// Why no copy could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChooseError {
    #[error("no backup of {file} is stored")]
    None { file: String },
    #[error("no backup of {file} was copied at LastWritten {at}; stored versions: {stored}")]
    NotAt {
        file: String,
        at: i64,
        stored: String,
    },
    #[error(
        "the only backup of {file} at {at} is lossy (its bytes are not the source's); pass --lossy to restore it anyway"
    )]
    OnlyLossy { file: String, at: i64 },
}

/// The copy to restore: the one of version `at`, or the newest; an exact copy over a lossy one
/// of the same version, and a lossy one only when allowed.
pub fn choose<'a>(
    copies: &'a [StoredCopy],
    file: &str,
    at: Option<i64>,
    allow_lossy: bool,
) -> Result<&'a StoredCopy, ChooseError> {
    let version = match at {
        Some(at) => at,
        None => copies
            .iter()
            .map(|c| c.last_written)
            .max()
            .ok_or_else(|| ChooseError::None { file: file.into() })?,
    };
    let of_version: Vec<&StoredCopy> = copies
        .iter()
        .filter(|c| c.last_written == version)
        .collect();
    if of_version.is_empty() {
        let mut stored: Vec<String> = copies.iter().map(|c| c.last_written.to_string()).collect();
        stored.sort();
        stored.dedup();
        return Err(ChooseError::NotAt {
            file: file.into(),
            at: version,
            stored: if stored.is_empty() {
                "none".into()
            } else {
                stored.join(", ")
            },
        });
    }
    match of_version.iter().find(|c| !c.lossy) {
        Some(exact) => Ok(exact),
        None if allow_lossy => Ok(of_version[0]),
        None => Err(ChooseError::OnlyLossy {
            file: file.into(),
            at: version,
        }),
    }
}

/// What the copy's metadata promises about the restored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// `source-sha256` (or `copy-sha256` for a lossy copy).
    pub sha256: String,
    pub size: Option<u64>,
}

/// A restore that did not produce a verified file; nothing was left at the target.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    Io(String),
    #[error(
        "the restored bytes do not match the backup's checksum: sha256 {got}, expected {expected}; nothing written"
    )]
    Checksum { got: String, expected: String },
    #[error("the restored file has {got} bytes, the backup says {expected}; nothing written")]
    Size { got: u64, expected: u64 },
}

/// Writes a restore: bytes in (compressed or not), a verified file out.
#[allow(missing_debug_implementations)] // holds a decoder and a file
pub struct RestoreWriter {
    sink: Sink,
    target: PathBuf,
}

enum Sink {
    Plain(Hashed),
    Gzip(Box<flate2::write::MultiGzDecoder<Hashed>>),
}

struct Hashed {
    file: std::io::BufWriter<tempfile::NamedTempFile>,
    sha: Sha256,
    size: u64,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.sha.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl RestoreWriter {
    /// Starts a restore to `target`, refusing an existing file (a restore never overwrites).
    pub fn create(target: &Path, gzip: bool) -> Result<Self, RestoreError> {
        if target.exists() {
            return Err(RestoreError::Io(format!(
                "--out {}: the file exists; a restore never overwrites (remove it or choose another path)",
                target.display()
            )));
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".auditkit-restore-")
            .tempfile_in(dir)
            .map_err(|e| RestoreError::Io(format!("--out {}: {e}", target.display())))?;
        let hashed = Hashed {
            file: std::io::BufWriter::with_capacity(1 << 20, temp),
            sha: Sha256::new(),
            size: 0,
        };
        Ok(RestoreWriter {
            sink: if gzip {
                Sink::Gzip(Box::new(flate2::write::MultiGzDecoder::new(hashed)))
            } else {
                Sink::Plain(hashed)
            },
            target: target.to_owned(),
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<(), RestoreError> {
        match &mut self.sink {
            Sink::Plain(h) => h.write_all(chunk),
            Sink::Gzip(d) => d.write_all(chunk),
        }
        .map_err(|e| RestoreError::Io(format!("writing the restore: {e}")))
    }

    /// Checks the bytes against `expected` and moves them onto the target; on any mismatch the
    /// temporary file is removed. Returns the SHA-256 and size restored.
    pub fn finish(self, expected: &Expected) -> Result<(String, u64), RestoreError> {
        let io = |e: std::io::Error| RestoreError::Io(format!("writing the restore: {e}"));
        let hashed = match self.sink {
            Sink::Plain(h) => h,
            Sink::Gzip(d) => d
                .finish()
                .map_err(|e| RestoreError::Io(format!("the backup is not valid gzip: {e}")))?,
        };
        let sha = hex::encode(hashed.sha.finalize());
        if let Some(size) = expected.size.filter(|s| *s != hashed.size) {
            return Err(RestoreError::Size {
                got: hashed.size,
                expected: size,
            });
        }
        if !sha.eq_ignore_ascii_case(&expected.sha256) {
            return Err(RestoreError::Checksum {
                got: sha,
                expected: expected.sha256.clone(),
            });
        }
        let temp = hashed.file.into_inner().map_err(|e| io(e.into_error()))?;
        temp.as_file().sync_all().map_err(io)?;
        // persist_noclobber: a file that appeared at the target meanwhile is not replaced.
        temp.persist_noclobber(&self.target).map_err(|e| {
            RestoreError::Io(format!("--out {}: {}", self.target.display(), e.error))
        })?;
        Ok((sha, hashed.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "rds-logs/aurora-mysql/c1/db-1/";

    fn copy(last_written: i64, lossy: bool) -> StoredCopy {
        StoredCopy {
            key: format!("k{last_written}{lossy}"),
            last_written,
            lossy,
            gzip: true,
            stored_size: 1,
        }
    }

    #[test]
    fn keys_are_read_back_as_versions_of_exactly_that_file() {
        let f = "audit/audit.log.0.2024-01-04-08-30.0";
        let key = |rest: &str| format!("{P}2024/01/04/{rest}");
        assert_eq!(
            parse_copy(&key(&format!("{f}.1704357690097.gz")), P, f),
            Some((1704357690097, false, true))
        );
        assert_eq!(
            parse_copy(&key(&format!("{f}.17.lossy.gz")), P, f),
            Some((17, true, true))
        );
        assert_eq!(
            parse_copy(&key(&format!("{f}.17")), P, f),
            Some((17, false, false))
        );
        // Another file whose name starts with this one's, another instance, a broken day.
        assert_eq!(parse_copy(&key(&format!("{f}1.17.gz")), P, f), None);
        assert_eq!(parse_copy(&key(&format!("{f}.x17.gz")), P, f), None);
        assert_eq!(
            parse_copy(
                &format!("rds-logs/aurora-mysql/c1/db-10/2024/01/04/{f}.17.gz"),
                P,
                f
            ),
            None
        );
        assert_eq!(parse_copy(&format!("{P}2024-01-04/{f}.17.gz"), P, f), None);
    }

    #[test]
    fn the_newest_exact_copy_is_chosen_and_a_lossy_one_only_when_allowed() {
        let copies = [
            copy(10, false),
            copy(20, true),
            copy(20, false),
            copy(30, true),
        ];
        assert!(!choose(&copies, "f", Some(20), false).unwrap().lossy);
        assert_eq!(
            choose(&copies, "f", Some(10), false).unwrap().last_written,
            10
        );
        assert!(matches!(
            choose(&copies, "f", None, false),
            Err(ChooseError::OnlyLossy { at: 30, .. })
        ));
        assert!(choose(&copies, "f", None, true).unwrap().lossy);
        let err = choose(&copies, "f", Some(15), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("at LastWritten 15") && err.contains("10, 20, 30"),
            "{err}"
        );
        assert!(matches!(
            choose(&[], "f", None, false),
            Err(ChooseError::None { .. })
        ));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_verified_restore_lands_whole_and_a_mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"1653053459680124,c731-instance-1,admin,52.94.133.136,35,698024,WRITE,testdb,test2,0\n";
        let sha = hex::encode(Sha256::digest(body));
        let target = dir.path().join("restored.log");
        let stored = gzip(body);
        let mut w = RestoreWriter::create(&target, true).unwrap();
        for chunk in stored.chunks(7) {
            w.write(chunk).unwrap();
        }
        let expected = Expected {
            sha256: sha.clone(),
            size: Some(body.len() as u64),
        };
        assert_eq!(
            w.finish(&expected).unwrap(),
            (sha.clone(), body.len() as u64)
        );
        assert_eq!(std::fs::read(&target).unwrap(), body);
        // Never over an existing file.
        assert!(
            matches!(RestoreWriter::create(&target, true), Err(RestoreError::Io(m)) if m.contains("never overwrites"))
        );

        let other = dir.path().join("other.log");
        let mut w = RestoreWriter::create(&other, true).unwrap();
        w.write(&gzip(b"tampered")).unwrap();
        let wrong = Expected {
            sha256: sha,
            size: None,
        };
        assert!(matches!(
            w.finish(&wrong),
            Err(RestoreError::Checksum { .. })
        ));
        let mut w = RestoreWriter::create(&other, true).unwrap();
        w.write(&stored[..stored.len() / 2]).unwrap();
        assert!(
            w.finish(&expected).is_err(),
            "a cut-off backup is not restored"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            [std::ffi::OsString::from("restored.log")],
            "no partial or temporary file remains"
        );
    }
}
