//! A throwaway PostgreSQL cluster: `initdb` in a scratch directory, `postgres` on a free
//! loopback port, trust authentication for the `postgres` user, durability off (it is thrown
//! away). Stopped (fast shutdown) and deleted when the process ends.
//!
//! PostgreSQL refuses to run as root; when the tests run as root, the server runs as the
//! `postgres` system user (the Debian package creates it) through `setpriv`.

use crate::process::{GuardedProcess, free_port};
use crate::scratch_dir;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    bindir: PathBuf,
    _process: GuardedProcess,
}

/// The process-wide cluster, started on first use.
pub fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start().unwrap_or_else(|e| panic!("devstack: postgres: {e}")))
}

impl Postgres {
    pub fn start() -> Result<Self, String> {
        let bindir = pg_bindir()?;
        let scratch = scratch_dir("postgres")?;
        let data = scratch.join("data");
        let run_as = if is_root() {
            Some(system_user_ids("postgres")?)
        } else {
            None
        };
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = run_as {
            for dir in [&scratch, &data] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
        }
        let initdb = as_user(run_as, &bindir.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr)
            ));
        }
        let port = free_port();
        let mut program: Vec<String> = Vec::new();
        if let Some((uid, gid)) = run_as {
            program.extend([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
                "--".into(),
            ]);
        }
        program.push(bindir.join("postgres").display().to_string());
        program.extend(
            [
                "-D",
                &data.display().to_string(),
                "-p",
                &port.to_string(),
                "-k",
                &scratch.display().to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ]
            .map(str::to_owned),
        );
        let (command, args) = match run_as {
            Some(_) => (PathBuf::from("setpriv"), program),
            None => (PathBuf::from(program.remove(0)), program),
        };
        let mut process = GuardedProcess::spawn(
            &command,
            &args,
            &[],
            &std::env::temp_dir().join(format!("auditkit-postgres-{port}.log")),
            "INT", // fast shutdown: do not wait for clients
            Some(&scratch),
        )
        .map_err(|e| format!("cannot start postgres: {e}"))?;
        process.wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(60),
        )?;
        // Listening is not serving: until recovery ends, connections are refused with 57P03
        // ("the database system is starting up"). Ready means a query succeeded.
        let url = url(port, "postgres");
        process.wait_until("answering queries", Duration::from_secs(60), || {
            run_psql(&bindir, &url, "SELECT 1").is_ok()
        })?;
        Ok(Postgres {
            port,
            bindir,
            _process: process,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        url(self.port, database)
    }

    /// Runs SQL through `psql` (for fixtures and smoke checks); returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        run_psql(&self.bindir, &self.url(database), sql)
    }
}

fn url(port: u16, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{database}")
}

fn run_psql(bindir: &Path, url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(bindir.join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The PostgreSQL server binaries: `$PG_BIN`, else `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout).
pub fn pg_bindir() -> Result<PathBuf, String> {
    let has_server = |dir: &Path| dir.join("postgres").is_file() && dir.join("initdb").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(format!("PG_BIN={} has no postgres/initdb", dir.display()))
        };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, dir)| has_server(dir))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir).ok_or_else(|| {
        "PostgreSQL server binaries not found; run: sudo apt-get install -y postgresql".to_owned()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn system_user_ids(user: &str) -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .map_err(|e| e.to_string())?;
        String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| {
            format!("running as root and there is no '{user}' user to run PostgreSQL as; install the Debian package postgresql")
        })
    };
    Ok((id("-u")?, id("-g")?))
}

fn as_user(run_as: Option<(u32, u32)>, program: &Path) -> Command {
    match run_as {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            c
        }
        None => Command::new(program),
    }
}
