//! Background servers that cannot outlive the process that started them.
//!
//! Each server runs under a tiny `sh` guard holding a pipe from us: when our end closes (we
//! drop the handle, panic, or are killed outright), the guard's `cat` sees end-of-file, stops
//! the server with the given signal and removes its scratch directory. That makes cleanup
//! hold for test binaries that never run destructors for their statics.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

const GUARD: &str = r#"
"$@" >"$DEVSTACK_LOG" 2>&1 &
pid=$!
cat >/dev/null
kill -s "$DEVSTACK_SIGNAL" "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ -n "$DEVSTACK_SCRATCH" ]; then rm -rf "$DEVSTACK_SCRATCH"; fi
"#;

/// A server process under a guard; dropping it stops the server.
#[derive(Debug)]
pub struct GuardedProcess {
    guard: Child,
    lifeline: Option<ChildStdin>,
    log: PathBuf,
}

impl GuardedProcess {
    /// Starts `command` with `args`. Its output goes to `log`; `signal` (e.g. `TERM`, `INT`)
    /// stops it; `scratch` is removed after it stopped.
    pub fn spawn(
        command: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: &Path,
        signal: &str,
        scratch: Option<&Path>,
    ) -> std::io::Result<Self> {
        let mut guard = Command::new("sh");
        guard
            .arg("-c")
            .arg(GUARD)
            .arg("devstack-guard")
            .arg(command)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .env("DEVSTACK_LOG", log)
            .env("DEVSTACK_SIGNAL", signal)
            .env(
                "DEVSTACK_SCRATCH",
                scratch.map(|p| p.as_os_str()).unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut guard = guard.spawn()?;
        let lifeline = guard.stdin.take();
        Ok(GuardedProcess {
            guard,
            lifeline,
            log: log.to_owned(),
        })
    }

    /// The server's output so far (for error messages when it fails to start).
    pub fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// True while the guard (and so the server) is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.guard.try_wait(), Ok(None))
    }

    /// Waits until `addr` accepts TCP connections, failing early if the server exits.
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
        self.wait_until(&format!("listening on {addr}"), timeout, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }

    /// Waits until `ready` says the server serves (not merely listens: PostgreSQL accepts
    /// connections while it starts up and refuses them with 57P03), failing early if the server
    /// exits. `what` names the condition in the error.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if ready() {
                return Ok(());
            }
            if !self.is_running() {
                return Err(format!("exited before {what}:\n{}", self.log_text()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "not {what} after {timeout:?}:\n{}",
            self.log_text()
        ))
    }
}

impl Drop for GuardedProcess {
    fn drop(&mut self) {
        if let Some(mut lifeline) = self.lifeline.take() {
            let _ = lifeline.flush();
        } // closing the pipe tells the guard to stop the server
        let _ = self.guard.wait();
    }
}

/// A loopback port that was free a moment ago (for servers that must be told their port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// The status of a plain `GET path` on `addr` (HTTP/1.0, no body read), or `None` when nothing
/// answers: how devstack tells an HTTP server that serves from one that only listens.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Runs `command` to completion (stdin closed, output captured), or kills it once `limit` has
/// passed: a command under test that hangs then fails its test with what it printed, instead
/// of holding the whole run until CI's own time limit.
pub fn output_within(command: &mut Command, limit: Duration) -> Result<Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{command:?}: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break Some(status),
            None if start.elapsed() >= limit => break None,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let status = match status {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let out = stdout.join().unwrap_or_default();
            let err = stderr.join().unwrap_or_default();
            return Err(format!(
                "{command:?} still running after {limit:?}, killed; it printed:\n{}{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            ));
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
