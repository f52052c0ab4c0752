//! The `audit-api` binary as a real server (`audit-api serve --bind`) on the throwaway
//! PostgreSQL: what the demo runs and what schemathesis is pointed at.

use crate::process::{GuardedProcess, free_port};
use crate::{function_binary, postgres, scratch_dir, unique_name};
use std::time::Duration;

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
        let mut process = process;
        // The port opens only after migrations; still, ready means the healthcheck says so.
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        process.wait_until("answering its healthcheck", Duration::from_secs(60), || {
            crate::process::http_status(addr, "/pyaudit/api/healthcheck") == Some(200)
        })?;
        Ok(AuditApiServer {
            base_url,
            database,
            log,
            _process: process,
        })
    }
}
