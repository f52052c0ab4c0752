//! `xtask <command>`: what the Makefile's release targets run.
//!
//!   build-and-push-versioned --version vX.Y.Z [--env dev] [--registry HOST[:PORT]] [--insecure]
//!       [--prebuilt DIR] [--base-image IMAGE] [--arch x86_64|arm64] [--config PATH]
//!   increment-version [same flags as build-and-push-versioned, without --version]
//!   rollback --function NAME|all --version vX.Y.Z [--env dev] [--stack auditkit] [--config PATH]
//!   version-info [--env dev] [--stack auditkit] [--config PATH]

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::Command;
use xtask::release::{ContainerTool, ReleaseOptions, build_and_push};
use xtask::rollback::{rollback, select, version_info};
use xtask::{Version, configured_tag, functions_in_stack};

/// What the Makefile's release targets run.
#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    about = "auditkit release tooling (see the Makefile's targets)"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build every function's image tagged VERSION, push it, record tag and digest in the
    /// stack config.
    BuildAndPushVersioned {
        /// vX.Y.Z
        #[arg(long)]
        version: String,
        #[command(flatten)]
        release: ReleaseArgs,
    },
    /// Patch bump of the configured version, then build-and-push-versioned.
    IncrementVersion {
        #[command(flatten)]
        release: ReleaseArgs,
    },
    /// Move FUNCTION's (or all) `live` alias to the published version running VERSION.
    Rollback {
        /// A function name, or `all`.
        #[arg(long)]
        function: String,
        /// vX.Y.Z
        #[arg(long)]
        version: String,
        #[command(flatten)]
        stack: StackArgs,
    },
    /// What each function's `live` alias runs, against the stack config.
    VersionInfo {
        #[command(flatten)]
        stack: StackArgs,
    },
}

/// Which stack config is read and written.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// The environment: `infra-main/config/<env>.json`.
    #[arg(long, default_value = "dev")]
    env: String,
    /// Another config file instead.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StackArgs {
    /// The CloudFormation stack (functions are named `<stack>-<function>`).
    #[arg(long, default_value = "auditkit")]
    stack: String,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Args)]
struct ReleaseArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// HOST[:PORT]; the account's ECR (logged in with the AWS CLI) when absent.
    #[arg(long)]
    registry: Option<String>,
    /// The registry speaks plain HTTP.
    #[arg(long)]
    insecure: bool,
    /// A directory holding already built function binaries.
    #[arg(long)]
    prebuilt: Option<PathBuf>,
    #[arg(long, default_value = "public.ecr.aws/lambda/provided:al2023")]
    base_image: String,
    /// x86_64 or arm64.
    #[arg(long, default_value = "x86_64")]
    arch: String,
    #[arg(long, default_value = "auditkit")]
    repository_prefix: String,
}

fn main() {
    let result = match Cli::parse().command {
        Task::BuildAndPushVersioned { version, release } => {
            Version::parse(&version).and_then(|version| build_and_push_versioned(version, &release))
        }
        Task::IncrementVersion { release } => increment(&release),
        Task::Rollback {
            function,
            version,
            stack,
        } => block_on(roll_back(&function, &version, &stack)),
        Task::VersionInfo { stack } => block_on(info(&stack)),
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        std::process::exit(1);
    }
}

fn repo_root() -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|d| {
            d.ancestors()
                .find(|a| a.join("docker/Dockerfile").is_file())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The account's ECR registry, logged in to with the AWS CLI.
fn ecr_registry(tool: ContainerTool) -> Result<String, String> {
    let aws = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("aws")
            .args(args)
            .output()
            .map_err(|e| format!("aws: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "aws {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let account = aws(&[
        "sts",
        "get-caller-identity",
        "--query",
        "Account",
        "--output",
        "text",
    ])?;
    let region = std::env::var("AWS_REGION")
        .map_err(|_| "AWS_REGION is not set (needed for ECR)".to_owned())?;
    let registry = format!("{account}.dkr.ecr.{region}.amazonaws.com");
    let password = aws(&["ecr", "get-login-password", "--region", &region])?;
    let program = match tool {
        ContainerTool::Buildah => "buildah",
        ContainerTool::Docker => "docker",
    };
    let mut login = Command::new(program)
        .args(["login", "--username", "AWS", "--password-stdin", &registry])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program} login: {e}"))?;
    if let Some(mut stdin) = login.stdin.take() {
        std::io::Write::write_all(&mut stdin, password.as_bytes()).map_err(|e| e.to_string())?;
    }
    if !login.wait().map_err(|e| e.to_string())?.success() {
        return Err(format!("{program} login to {registry} failed"));
    }
    Ok(registry)
}

fn block_on(work: impl std::future::Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(work)
}

fn config_path(args: &ConfigArgs) -> PathBuf {
    args.config
        .clone()
        .unwrap_or_else(|| repo_root().join(format!("infra-main/config/{}.json", args.env)))
}

fn read_config(path: &std::path::Path) -> Result<serde_json::Value, String> {
    serde_json::from_slice(&std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Patch bump of the configured version, then the same as build-and-push-versioned.
fn increment(release: &ReleaseArgs) -> Result<(), String> {
    let config = read_config(&config_path(&release.config))?;
    let current = configured_tag(&config, "db-scanner").ok_or("the config records no image tag")?;
    let next = Version::parse(&current)?.next_patch();
    println!("{current} -> {next}");
    build_and_push_versioned(next, release)
}

async fn lambda_client() -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&audit_core::aws::sdk_config().await)
}

async fn roll_back(function: &str, version: &str, stack: &StackArgs) -> Result<(), String> {
    if function.is_empty() {
        return Err("usage: make rollback FUNCTION=name|all VERSION=vX.Y.Z".into());
    }
    let version = Version::parse(version)?;
    let functions = select(function)?;
    let path = config_path(&stack.config);
    let moved = rollback(
        &lambda_client().await,
        &stack.stack,
        &functions,
        &version.to_string(),
        &path,
    )
    .await?;
    for m in moved {
        println!("{}: live {} -> {} ({version})", m.function, m.from, m.to);
    }
    println!("recorded {version} in {}", path.display());
    Ok(())
}

async fn info(stack: &StackArgs) -> Result<(), String> {
    let config = read_config(&config_path(&stack.config))?;
    for line in version_info(&lambda_client().await, &stack.stack, &config).await {
        println!("{line}");
    }
    Ok(())
}

fn build_and_push_versioned(version: Version, release: &ReleaseArgs) -> Result<(), String> {
    let root = repo_root();
    let tool = ContainerTool::detect(
        std::env::var("CONTAINER_TOOL")
            .ok()
            .filter(|v| !v.is_empty())
            .as_deref(),
    )?;
    let registry = match release.registry.as_ref().filter(|r| !r.is_empty()) {
        Some(registry) => registry.clone(),
        None => ecr_registry(tool)?,
    };
    let options = ReleaseOptions {
        version,
        registry,
        repository_prefix: release.repository_prefix.clone(),
        functions: functions_in_stack()
            .iter()
            .map(|f| f.name.to_owned())
            .collect(),
        config_path: config_path(&release.config),
        target_dir: std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target")),
        repo_root: root,
        prebuilt: release.prebuilt.clone(),
        base_image: release.base_image.clone(),
        arch: release.arch.clone(),
        tool,
        insecure: release.insecure,
    };
    let pushed = build_and_push(&options)?;
    for image in &pushed {
        println!("pushed {} ({})", image.image, image.digest);
    }
    println!(
        "recorded {} in {}\nnext: make deploy ENV={}",
        options.version,
        options.config_path.display(),
        release.config.env
    );
    Ok(())
}
