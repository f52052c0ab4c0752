//! A local OCI registry (Debian's `docker-registry`, the CNCF distribution registry) on a free
//! loopback port, plain HTTP, storage in a scratch directory; stopped when the process ends.

use crate::process::{GuardedProcess, free_port};
use crate::scratch_dir;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    address: String,
    _process: GuardedProcess,
}

impl Registry {
    pub fn start() -> Result<Self, String> {
        let scratch = scratch_dir("registry")?;
        let port = free_port();
        let config = scratch.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                scratch.join("data").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut process = GuardedProcess::spawn(
            &PathBuf::from("docker-registry"),
            &["serve".into(), config.display().to_string()],
            &[],
            &std::env::temp_dir().join(format!("auditkit-registry-{port}.log")),
            "TERM",
            Some(&scratch),
        )
        .map_err(|e| {
            format!("cannot start docker-registry (Debian package docker-registry): {e}")
        })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        process.wait_for_port(addr, Duration::from_secs(20))?;
        // The registry API answers `GET /v2/` with 200 once it serves.
        process.wait_until("serving /v2/", Duration::from_secs(20), || {
            crate::process::http_status(addr, "/v2/") == Some(200)
        })?;
        Ok(Registry {
            address: format!("127.0.0.1:{port}"),
            _process: process,
        })
    }

    /// `127.0.0.1:<port>`, the registry part of an image reference.
    pub fn address(&self) -> &str {
        &self.address
    }
}
