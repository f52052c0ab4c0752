//! `xtask <command>`: what the Makefile's release targets run.
//!
//!   build-and-push-versioned --version vX.Y.Z [--env dev] [--registry HOST[:PORT]] [--insecure]
//!       [--prebuilt DIR] [--base-image IMAGE] [--arch x86_64|arm64] [--config PATH]
//!   increment-version [same flags as build-and-push-versioned, without --version]
//!   rollback --function NAME|all --version vX.Y.Z [--env dev] [--stack auditkit] [--config PATH]
//!   version-info [--env dev] [--stack auditkit] [--config PATH]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use xtask::release::{ContainerTool, ReleaseOptions, build_and_push};
use xtask::rollback::{rollback, select, version_info};
use xtask::{Version, configured_tag, functions_in_stack};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-and-push-versioned") => flags(&args[1..]).and_then(|f| release(&f)),
        Some("increment-version") => flags(&args[1..]).and_then(increment),
        Some("rollback") => flags(&args[1..]).and_then(|f| block_on(roll_back(&f))),
        Some("version-info") => flags(&args[1..]).and_then(|f| block_on(info(&f))),
        _ => Err("usage: xtask build-and-push-versioned|increment-version|rollback|version-info [--flags]; see the Makefile".into()),
    };
    if let Err(e) = result {
        eprintln!("xtask: {e}");
        std::process::exit(1);
    }
}

/// `--flag value` pairs and bare `--flag`s.
fn flags(args: &[String]) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        let name = arg
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {arg:?}"))?;
        let value = match it.peek() {
            Some(v) if !v.starts_with("--") => it.next().cloned().unwrap_or_default(),
            _ => "true".to_owned(),
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
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

fn config_path(flags: &HashMap<String, String>) -> PathBuf {
    let env = flags.get("env").cloned().unwrap_or_else(|| "dev".into());
    flags
        .get("config")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(format!("infra-main/config/{env}.json")))
}

fn read_config(path: &std::path::Path) -> Result<serde_json::Value, String> {
    serde_json::from_slice(&std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Patch bump of the configured version, then the same as build-and-push-versioned.
fn increment(mut flags: HashMap<String, String>) -> Result<(), String> {
    let config = read_config(&config_path(&flags))?;
    let current = configured_tag(&config, "db-scanner").ok_or("the config records no image tag")?;
    let next = Version::parse(&current)?.next_patch();
    println!("{current} -> {next}");
    flags.insert("version".into(), next.to_string());
    release(&flags)
}

async fn lambda_client() -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&audit_core::aws::sdk_config().await)
}

async fn roll_back(flags: &HashMap<String, String>) -> Result<(), String> {
    let function = flags
        .get("function")
        .filter(|f| !f.is_empty())
        .ok_or("usage: make rollback FUNCTION=name|all VERSION=vX.Y.Z")?;
    let version = Version::parse(flags.get("version").map(String::as_str).unwrap_or(""))?;
    let functions = select(function)?;
    let stack = flags
        .get("stack")
        .cloned()
        .unwrap_or_else(|| "auditkit".into());
    let path = config_path(flags);
    let moved = rollback(
        &lambda_client().await,
        &stack,
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

async fn info(flags: &HashMap<String, String>) -> Result<(), String> {
    let stack = flags
        .get("stack")
        .cloned()
        .unwrap_or_else(|| "auditkit".into());
    let config = read_config(&config_path(flags))?;
    for line in version_info(&lambda_client().await, &stack, &config).await {
        println!("{line}");
    }
    Ok(())
}

fn release(flags: &HashMap<String, String>) -> Result<(), String> {
    let version = Version::parse(flags.get("version").map(String::as_str).unwrap_or(""))?;
    let env = flags.get("env").cloned().unwrap_or_else(|| "dev".into());
    let root = repo_root();
    let tool = ContainerTool::detect(
        std::env::var("CONTAINER_TOOL")
            .ok()
            .filter(|v| !v.is_empty())
            .as_deref(),
    )?;
    let registry = match flags.get("registry").filter(|r| !r.is_empty()) {
        Some(registry) => registry.clone(),
        None => ecr_registry(tool)?,
    };
    let options = ReleaseOptions {
        version,
        registry,
        repository_prefix: flags
            .get("repository-prefix")
            .cloned()
            .unwrap_or_else(|| "auditkit".into()),
        functions: functions_in_stack()
            .iter()
            .map(|f| f.name.to_owned())
            .collect(),
        config_path: flags
            .get("config")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(format!("infra-main/config/{env}.json"))),
        target_dir: std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target")),
        repo_root: root,
        prebuilt: flags.get("prebuilt").map(PathBuf::from),
        base_image: flags
            .get("base-image")
            .cloned()
            .unwrap_or_else(|| "public.ecr.aws/lambda/provided:al2023".into()),
        arch: flags
            .get("arch")
            .cloned()
            .unwrap_or_else(|| "x86_64".into()),
        tool,
        insecure: flags.contains_key("insecure"),
    };
    let pushed = build_and_push(&options)?;
    for image in &pushed {
        println!("pushed {} ({})", image.image, image.digest);
    }
    println!(
        "recorded {} in {}\nnext: make deploy ENV={env}",
        options.version,
        options.config_path.display()
    );
    Ok(())
}
