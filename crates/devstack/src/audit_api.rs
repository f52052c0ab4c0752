//! The `audit-api` binary as a real server (`audit-api serve --bind`) on the throwaway
//! PostgreSQL: what the demo runs and what schemathesis is pointed at.

use crate::process::{GuardedProcess, free_port};
use crate::{function_binary, postgres, scratch_dir, unique_name};
use std::time::{Duration, Instant};

/// A running `audit-api serve`, stopped when dropped.
#[derive(Debug)]
pub struct AuditApiServer {
    /// `http://127.0.0.1:PORT/pyaudit`.
    pub base_url: String,
    /// The database it owns on the shared cluster.
    pub database: String,
    pub log: std::path::PathBuf,
    _process: GuardedProcess,
}

impl AuditApiServer {
    /// Creates a database and starts the server on it with `API_KEYS=api_keys` and `extra`
    /// variables; returns once the healthcheck answers 200.
    pub fn start(api_keys: &str, extra: &[(&str, &str)]) -> Result<Self, String> {
        let pg = postgres();
        let database = unique_name("auditapi").replace('-', "_");
        pg.psql("postgres", &format!("CREATE DATABASE {database}"))?;
        let port = free_port();
        let scratch = scratch_dir("audit-api")?;
        let log = scratch.join("audit-api.log");
        let mut envs: Vec<(String, String)> = vec![
            (
                "DATABASE_URL".into(),
                format!("{}?sslmode=disable", pg.url(&database)),
            ),
            ("API_KEYS".into(), api_keys.into()),
            ("LOG_LEVEL".into(), "warn".into()),
        ];
        envs.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        let process = GuardedProcess::spawn(
            &function_binary("audit-api")?,
            &["serve".into(), "--bind".into(), format!("127.0.0.1:{port}")],
            &envs,
            &log,
            "TERM",
            None,
        )
        .map_err(|e| format!("cannot start audit-api: {e}"))?;
        let base_url = format!("http://127.0.0.1:{port}/pyaudit");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up {
                break;
            }
            if Instant::now() > deadline {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("audit-api did not start within 30 s:\n{output}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(AuditApiServer {
            base_url,
            database,
            log,
            _process: process,
        })
    }
}
