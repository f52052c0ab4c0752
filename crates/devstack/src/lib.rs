//! `devstack`: test and demo infrastructure, not product. Nothing here is deployed.
//!
//! It gives tests, `make test` and `make demo` the whole local stack with nothing assumed
//! running: [`moto::moto`] (the AWS emulator, installed into the project venv on first use),
//! [`postgres::postgres`] (a throwaway PostgreSQL cluster) and [`runtime_api::LocalLambda`]
//! (a function's real binary under a local Lambda Runtime API); [`evidence`] adds the
//! signing key, head table and Object-Locked buckets of the evidence-integrity tests. Servers start on free loopback
//! ports, once per test process, and stop when that process ends, also after a failure or a
//! kill ([`process`]). Tests stay independent by taking their own region from
//! [`moto::Moto::isolated`] and unique resource names from [`unique_name`].

pub mod audit_api;
pub mod audit_logs;
pub mod backup;
pub mod change_audit;
pub mod event_sources;
pub mod evidence;
pub mod moto;
pub mod postgres;
pub mod process;
pub mod rds_logs;
pub mod registry;
pub mod runtime_api;

pub use moto::{AwsEnv, moto};
pub use postgres::postgres;
pub use runtime_api::{InvokeError, LocalLambda, StreamedResponse};

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The repository root: the nearest directory at or above the working directory that holds
/// `crates/devstack/setup.sh` (cargo runs tests in their package directory; make runs at the
/// root). Found at run time, not baked in at compile time, because a shared target directory
/// may hold this crate compiled from another checkout of the same repository.
pub fn repo_root() -> PathBuf {
    let is_root = |dir: &std::path::Path| dir.join("crates/devstack/setup.sh").is_file();
    if let Ok(cwd) = std::env::current_dir()
        && let Some(root) = cwd.ancestors().find(|d| is_root(d))
    {
        return root.to_path_buf();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The project venv with the pinned Python tools, created on first use by `setup.sh`
/// (which also checks the Debian packages the stack needs).
pub fn python_tools() -> Result<PathBuf, String> {
    let venv = std::env::var_os("AUDITKIT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"));
    let setup = repo_root().join("crates/devstack/setup.sh");
    let status = Command::new("bash")
        .arg(&setup)
        .env("AUDITKIT_VENV", &venv)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", setup.display()))?;
    if !status.success() {
        return Err(format!(
            "{} failed (see its message above)",
            setup.display()
        ));
    }
    Ok(venv)
}

/// A fresh scratch directory under the system temp dir, readable by other users (PostgreSQL
/// may run as its own user).
pub fn scratch_dir(purpose: &str) -> Result<PathBuf, String> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "auditkit-{purpose}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// A resource name no other test (in this or a parallel process) uses: `prefix-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A workspace binary (`db-scanner`, `log-detector`, ...) next to the running test or demo
/// executable. `make test` and `make demo` build every binary first.
pub fn function_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop(); // test executables live in target/<profile>/deps
    }
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build the functions first (cargo build --workspace --bins; make test does)",
            path.display()
        ))
    }
}

#[doc(hidden)]
pub use aws_smithy_mocks as __mocks;
#[doc(hidden)]
pub use aws_smithy_types as __smithy_types;

/// An SDK client whose calls are answered by aws-smithy-mocks `rules` (any rule may match),
/// with the SDK's own retries off so tests count exactly the calls the code makes. For fault
/// paths the emulator cannot produce (throttling, partial batch failures).
///
/// `mocked_client!(aws_sdk_sqs, [&rule])`
#[macro_export]
macro_rules! mocked_client {
    ($sdk:ident, $rules:expr) => {{
        let mut interceptor = $crate::__mocks::MockResponseInterceptor::new()
            .rule_mode($crate::__mocks::RuleMode::MatchAny);
        for rule in $rules {
            interceptor = interceptor.with_rule(rule);
        }
        $sdk::Client::from_conf(
            $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::new("us-east-1"))
                .credentials_provider($sdk::config::Credentials::new(
                    "test", "test", None, None, "mock",
                ))
                .http_client($crate::__mocks::create_mock_http_client())
                .retry_config($crate::__smithy_types::retry::RetryConfig::disabled())
                .interceptor(interceptor)
                .build(),
        )
    }};
}
