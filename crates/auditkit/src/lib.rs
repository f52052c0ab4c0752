//! `auditkit`: the operator CLI. It reads what the functions wrote; it is not deployed.
//!
//! `auditkit validate` proves the evidence: it walks the chain of signed digests that
//! `digest-writer` writes (format in `audit_core::digest`) back from its head, checks each
//! digest's signature with a trusted public key (`--public-key FILE` or `--key-id`, never the
//! key a digest names), re-hashes every object the verified digests name (a digest that does
//! not verify is reported once and then changes nothing), lists the evidence locations for
//! objects no digest names and for keys holding more than one version (evidence is written
//! once: a version on top is `overwritten`), and reports what the newest digest says was never
//! copied. It works on S3 (every object version) and on a local copy (`--dir`, one folder per
//! bucket; keys that would leave it and paths that are not regular files are never opened).
//! `auditkit digest-public-key` writes the signing key's public key for offline use.
//!
//! The operator's view of the running pipelines ([`operate`]): `auditkit status` (each
//! instance's backup lag, stalled and failed copies, the newest digest's age; exit 1 over
//! `--max-lag`, so cron or CI can run it), `auditkit restore` ([`restore_command`]: one log
//! file back from its key's first version, verified against the checksum the tracking row or a
//! verified digest records before it appears at the target) and `auditkit history` (one
//! item's changes from the change log Firehose wrote, without Athena).
//!
//! Contract: one line per problem, `INVALID <reason> <object>`, then CloudTrail-style counts;
//! exit 0 when everything checked is valid, 1 when anything is invalid (or nothing was found
//! to prove), 2 for a usage or access error. [`validate`] holds the pure decisions, [`store`]
//! the reading and hashing, [`cli`] the commands.

pub mod cli;
pub mod history;
pub mod operate;
pub mod restore;
pub mod restore_command;
pub mod status;
pub mod store;
pub mod validate;
