//! `auditkit restore`: which stored copy of a log file to bring back, and the writer that
//! brings it back verified. The listing and fetching are in `cli`.
//!
//! What is restored is the key's first version: evidence is written once, so a version on
//! top of it was added by somebody else, and is named, never restored. It is checked against
//! a checksum the pipeline recorded outside the object ([`reference`]: the tracking row, or a
//! verified digest), never against the object's own metadata alone, which anybody who can
//! write to the bucket can set. The bytes go through gzip decoding (stopped at the recorded
//! size: a gzip bomb writes nothing past it) and SHA-256 into a temporary file beside the
//! target; only when checksum and size match is it renamed onto the target, so a restore
//! leaves the verified file or nothing.

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
    /// Stored beside an object the downloader did not write at the plain key
    /// (`.conflict-<source hash>`): the genuine copy of that version.
    pub conflict: bool,
    /// Stored (compressed) size.
    pub stored_size: u64,
}

/// The copy a key names, when it is a copy of `file` under `instance_prefix`
/// (`{instance_prefix}{yyyy}/{mm}/{dd}/{file}.{last written}[.conflict-<16 hex>][.lossy][.gz]`);
/// `stored_size` is left 0 for the caller.
pub fn parse_copy(key: &str, instance_prefix: &str, file: &str) -> Option<StoredCopy> {
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
    let (version, conflict) = match version.rsplit_once(".conflict-") {
        Some((v, tag)) if tag.len() == 16 && tag.bytes().all(|c| c.is_ascii_hexdigit()) => {
            (v, true)
        }
        _ => (version, false),
    };
    if version.is_empty() || !version.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(StoredCopy {
        key: key.to_owned(),
        last_written: version.parse().ok()?,
        lossy,
        gzip,
        conflict,
        stored_size: 0,
    })
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
/// of the same version, and a lossy one only when allowed. A conflict copy exists only because
/// something else took the plain key, so it is preferred over that.
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
    let exact = of_version
        .iter()
        .find(|c| !c.lossy && c.conflict)
        .or_else(|| of_version.iter().find(|c| !c.lossy));
    match exact {
        Some(exact) => Ok(exact),
        None if allow_lossy => Ok(of_version[0]),
        None => Err(ChooseError::OnlyLossy {
            file: file.into(),
            at: version,
        }),
    }
}

/// What the restored bytes must be, and who said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The source's SHA-256 (for a lossy copy, its `copy-sha256`).
    pub sha256: String,
    pub size: Option<u64>,
    /// Where the checksum comes from, as printed: `the tracking row`, `digest 12`.
    pub from: String,
}

/// What the pipeline recorded about one backup key's copy outside the object: the tracking
/// row's last copy (when it is this key) and the first version of the key a verified digest
/// names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// `copied_key`, `copied_sha256`, `copied_size` of the file's row.
    pub row: Option<(String, String, Option<u64>)>,
    /// The key's first version a verified digest names.
    pub digest: Option<DigestedCopy>,
}

/// A backup version as a verified digest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestedCopy {
    /// The digest's sequence number.
    pub sequence: u64,
    pub version_id: Option<String>,
    pub source_sha256: Option<String>,
    pub source_size: Option<u64>,
}

/// Why no checksum outside the object can be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "nothing outside the object records {key}'s checksum: the tracking row records another copy of this file{hint}; nothing written"
    )]
    Unrecorded { key: String, hint: &'static str },
    #[error(
        "the tracking row ({row}) and digest {sequence} ({digest}) record different checksums for {key}: one of them was tampered with; nothing written"
    )]
    Disagree {
        key: String,
        row: String,
        sequence: u64,
        digest: String,
    },
}

/// The checksum a restore of `key` is held to: a verified digest's (signed) or the tracking
/// row's; both when both exist, and they must agree.
pub fn reference(
    key: &str,
    records: &Records,
    digests_read: bool,
) -> Result<Expected, ReferenceError> {
    let row = records
        .row
        .as_ref()
        .filter(|(k, _, _)| k == key)
        .map(|(_, sha, size)| (sha, size));
    let digest = records.digest.as_ref().and_then(|d| {
        d.source_sha256
            .as_ref()
            .map(|sha| (&d.sequence, sha, &d.source_size))
    });
    match (row, digest) {
        (Some((row_sha, _)), Some((seq, digest_sha, _)))
            if !row_sha.eq_ignore_ascii_case(digest_sha) =>
        {
            Err(ReferenceError::Disagree {
                key: key.to_owned(),
                row: row_sha.clone(),
                sequence: *seq,
                digest: digest_sha.clone(),
            })
        }
        (row, Some((seq, sha, size))) => Ok(Expected {
            sha256: sha.clone(),
            size: size.or_else(|| row.and_then(|(_, s)| *s)),
            from: format!("digest {seq}"),
        }),
        (Some((sha, size)), None) => Ok(Expected {
            sha256: sha.clone(),
            size: *size,
            from: "the tracking row".to_owned(),
        }),
        (None, None) => Err(ReferenceError::Unrecorded {
            key: key.to_owned(),
            hint: if digests_read {
                " and no verified digest names its source checksum"
            } else {
                "; pass --public-key or --key-id to check it against the signed digests"
            },
        }),
    }
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
    #[error(
        "the backup decompresses to more than the {expected} bytes recorded; stopped there, nothing written"
    )]
    TooLarge { expected: u64 },
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
    /// Bytes past this are refused (the recorded size), so a gzip bomb writes nothing more.
    limit: u64,
    over: bool,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size.saturating_add(buf.len() as u64) > self.limit {
            self.over = true;
            return Err(std::io::Error::other("past the recorded size"));
        }
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
    /// Starts a restore to `target`, refusing an existing file (a restore never overwrites);
    /// `limit`: the most bytes the restored file may have.
    pub fn create(target: &Path, gzip: bool, limit: Option<u64>) -> Result<Self, RestoreError> {
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
            limit: limit.unwrap_or(u64::MAX),
            over: false,
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
        let written = match &mut self.sink {
            Sink::Plain(h) => h.write_all(chunk),
            Sink::Gzip(d) => d.write_all(chunk),
        };
        let hashed = match &self.sink {
            Sink::Plain(h) => h,
            Sink::Gzip(d) => d.get_ref(),
        };
        match written {
            Ok(()) => Ok(()),
            Err(_) if hashed.over => Err(RestoreError::TooLarge {
                expected: hashed.limit,
            }),
            Err(e) => Err(RestoreError::Io(format!("writing the restore: {e}"))),
        }
    }

    /// Checks the bytes against `expected` and moves them onto the target; on any mismatch the
    /// temporary file is removed. Returns the SHA-256 and size restored.
    pub fn finish(self, expected: &Expected) -> Result<(String, u64), RestoreError> {
        let io = |e: std::io::Error| RestoreError::Io(format!("writing the restore: {e}"));
        let hashed = match self.sink {
            Sink::Plain(h) => h,
            Sink::Gzip(d) => {
                let limit = d.get_ref().limit;
                d.finish().map_err(|e| {
                    if e.to_string().contains("past the recorded size") {
                        RestoreError::TooLarge { expected: limit }
                    } else {
                        RestoreError::Io(format!("the backup is not valid gzip: {e}"))
                    }
                })?
            }
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
            conflict: false,
            stored_size: 1,
        }
    }

    #[test]
    fn keys_are_read_back_as_versions_of_exactly_that_file() {
        let f = "audit/audit.log.0.2024-01-04-08-30.0";
        let key = |rest: &str| format!("{P}2024/01/04/{rest}");
        let parsed = |rest: &str| {
            parse_copy(&key(rest), P, f).map(|c| (c.last_written, c.lossy, c.gzip, c.conflict))
        };
        assert_eq!(
            parsed(&format!("{f}.1704357690097.gz")),
            Some((1704357690097, false, true, false))
        );
        assert_eq!(
            parsed(&format!("{f}.17.lossy.gz")),
            Some((17, true, true, false))
        );
        assert_eq!(parsed(&format!("{f}.17")), Some((17, false, false, false)));
        assert_eq!(
            parsed(&format!("{f}.17.conflict-0123456789abcdef.gz")),
            Some((17, false, true, true))
        );
        // A metadata sidecar, a malformed conflict tag.
        assert_eq!(parsed(&format!("{f}.17.gz.meta.json")), None);
        assert_eq!(parsed(&format!("{f}.17.conflict-xyz.gz")), None);
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
        // The genuine copy beside an object somebody placed at the plain key wins.
        let mut genuine = copy(10, false);
        genuine.conflict = true;
        genuine.key = "genuine".into();
        let copies = [copy(10, false), genuine];
        assert_eq!(
            choose(&copies, "f", Some(10), false).unwrap().key,
            "genuine"
        );
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
        let mut w = RestoreWriter::create(&target, true, None).unwrap();
        for chunk in stored.chunks(7) {
            w.write(chunk).unwrap();
        }
        let expected = Expected {
            sha256: sha.clone(),
            size: Some(body.len() as u64),
            from: "the tracking row".into(),
        };
        assert_eq!(
            w.finish(&expected).unwrap(),
            (sha.clone(), body.len() as u64)
        );
        assert_eq!(std::fs::read(&target).unwrap(), body);
        // Never over an existing file.
        assert!(
            matches!(RestoreWriter::create(&target, true, None), Err(RestoreError::Io(m)) if m.contains("never overwrites"))
        );

        let other = dir.path().join("other.log");
        let mut w = RestoreWriter::create(&other, true, None).unwrap();
        w.write(&gzip(b"tampered")).unwrap();
        let wrong = Expected {
            sha256: sha,
            size: None,
            from: "the tracking row".into(),
        };
        assert!(matches!(
            w.finish(&wrong),
            Err(RestoreError::Checksum { .. })
        ));
        let mut w = RestoreWriter::create(&other, true, None).unwrap();
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

    #[test]
    fn a_gzip_bomb_stops_at_the_recorded_size_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // 64 MiB of zeros in ~64 KiB of gzip: a restore held to 1,000 bytes writes no more.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        let target = dir.path().join("bomb.log");
        let mut w = RestoreWriter::create(&target, true, Some(1_000)).unwrap();
        let stopped = bomb.chunks(4096).map(|c| w.write(c)).find_map(Result::err);
        assert!(
            matches!(stopped, Some(RestoreError::TooLarge { expected: 1_000 })),
            "{stopped:?}"
        );
        drop(w);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left"
        );
    }

    #[test]
    fn the_reference_checksum_comes_from_outside_the_object_and_must_agree() {
        let key = "rds-logs/x/f.1.gz";
        let row = |k: &str, sha: &str| Some((k.to_owned(), sha.to_owned(), Some(10)));
        let digest = |sha: &str| {
            Some(DigestedCopy {
                sequence: 7,
                version_id: Some("v1".to_owned()),
                source_sha256: Some(sha.to_owned()),
                source_size: None,
            })
        };
        // The row records this key: its checksum.
        let r = reference(
            key,
            &Records {
                row: row(key, "aa"),
                digest: None,
            },
            false,
        )
        .unwrap();
        assert_eq!(
            (r.sha256.as_str(), r.size, r.from.as_str()),
            ("aa", Some(10), "the tracking row")
        );
        // A signed digest is preferred, the row's size kept when the digest has none.
        let both = Records {
            row: row(key, "aa"),
            digest: digest("aa"),
        };
        let r = reference(key, &both, true).unwrap();
        assert_eq!((r.from.as_str(), r.size), ("digest 7", Some(10)));
        // They disagree: tampering, nothing restored.
        let split = Records {
            row: row(key, "aa"),
            digest: digest("bb"),
        };
        assert!(matches!(
            reference(key, &split, true),
            Err(ReferenceError::Disagree { sequence: 7, .. })
        ));
        // The row records another copy (a later one of a growing file), no digests read.
        let other = Records {
            row: row("rds-logs/x/f.2.gz", "aa"),
            digest: None,
        };
        let e = reference(key, &other, false).unwrap_err();
        assert!(e.to_string().contains("pass --public-key"), "{e}");
        assert!(
            reference(key, &other, true)
                .unwrap_err()
                .to_string()
                .contains("no verified digest")
        );
    }
}
