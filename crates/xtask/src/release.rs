//! `build-and-push-versioned`: every function's image, tagged with one version, pushed, and
//! recorded (tag and digest) in the stack config.
//!
//! Images are built with buildah (daemonless) or Docker, auto-detected (`CONTAINER_TOOL`
//! overrides), as single-architecture images with gzip layers, no attestation index and fixed
//! timestamps, so identical inputs give identical digests. buildah writes OCI manifests (which
//! Lambda accepts): a Docker-format config would carry the random ID of the build container. Release binaries are linked
//! statically (`+crt-static`), so they run on Lambda's AL2023 (glibc 2.34) and on `scratch`.

use crate::{Version, record_image};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How images are built and pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerTool {
    Buildah,
    Docker,
}

impl ContainerTool {
    /// `CONTAINER_TOOL` if set, else Docker when a daemon answers, else buildah.
    pub fn detect(requested: Option<&str>) -> Result<Self, String> {
        match requested {
            Some("buildah") => Ok(ContainerTool::Buildah),
            Some("docker") => Ok(ContainerTool::Docker),
            Some(other) => Err(format!(
                "CONTAINER_TOOL={other:?}: expected buildah or docker"
            )),
            None => {
                let daemon = Command::new("docker")
                    .arg("info")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                Ok(if daemon {
                    ContainerTool::Docker
                } else {
                    ContainerTool::Buildah
                })
            }
        }
    }
}

/// Everything one release needs.
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub version: Version,
    /// `host[:port]` of the registry (ECR or any other).
    pub registry: String,
    pub repository_prefix: String,
    pub functions: Vec<String>,
    pub config_path: PathBuf,
    pub repo_root: PathBuf,
    pub target_dir: PathBuf,
    /// Use these already built binaries instead of building (tests; `make test` builds them).
    pub prebuilt: Option<PathBuf>,
    pub base_image: String,
    /// `x86_64` or `arm64`.
    pub arch: String,
    pub tool: ContainerTool,
    /// Plain HTTP registry (a local test registry).
    pub insecure: bool,
}

/// One pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub function: String,
    pub image: String,
    pub digest: String,
}

fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let out = command
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl ReleaseOptions {
    fn image(&self, function: &str) -> String {
        format!(
            "{}/{}/{}:{}",
            self.registry, self.repository_prefix, function, self.version
        )
    }

    fn rust_target(&self) -> Result<&'static str, String> {
        match self.arch.as_str() {
            "x86_64" => Ok("x86_64-unknown-linux-gnu"),
            "arm64" => Ok("aarch64-unknown-linux-gnu"),
            other => Err(format!("ARCH={other:?}: expected x86_64 or arm64")),
        }
    }

    /// Whether the registry already has this version of `function` (tags are immutable).
    fn tag_exists(&self, function: &str) -> bool {
        let mut inspect = Command::new("skopeo");
        inspect.arg("inspect").arg("--raw");
        if self.insecure {
            inspect.arg("--tls-verify=false");
        }
        inspect
            .arg(format!("docker://{}", self.image(function)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Builds the static release binaries and returns the directory holding them.
    fn binaries(&self) -> Result<PathBuf, String> {
        if let Some(dir) = &self.prebuilt {
            return Ok(dir.clone());
        }
        let target = self.rust_target()?;
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .current_dir(&self.repo_root)
            .args(["build", "--release", "--locked", "--target", target])
            .env("CARGO_TARGET_DIR", &self.target_dir)
            // Static: runs on AL2023's glibc 2.34 whatever glibc built it, and on `scratch`.
            .env("RUSTFLAGS", "-C target-feature=+crt-static");
        for function in &self.functions {
            cargo.args(["-p", function]);
        }
        let status = cargo.status().map_err(|e| format!("cargo: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cargo build for {target} failed (is the target installed? `rustup target list --installed`)"
            ));
        }
        Ok(self.target_dir.join(target).join("release"))
    }

    fn stage(&self, binaries: &Path, function: &str) -> Result<PathBuf, String> {
        let context = self.target_dir.join("lambda");
        let dir = context.join(function);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let binary = binaries.join(function);
        std::fs::copy(&binary, dir.join("bootstrap"))
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        Ok(context)
    }

    fn build_and_push_one(&self, context: &Path, function: &str) -> Result<Pushed, String> {
        let image = self.image(function);
        let dockerfile = self.repo_root.join("docker/Dockerfile");
        let platform_arch = if self.arch == "arm64" {
            "arm64"
        } else {
            "amd64"
        };
        // What both tools are told: which function, on which base, tagged how.
        let build_args: Vec<std::ffi::OsString> = vec![
            "--build-arg".into(),
            format!("FUNCTION={function}").into(),
            "--build-arg".into(),
            format!("BASE_IMAGE={}", self.base_image).into(),
            "-f".into(),
            dockerfile.into_os_string(),
            "-t".into(),
            image.clone().into(),
            context.as_os_str().to_owned(),
        ];
        match self.tool {
            ContainerTool::Buildah => {
                run(
                    Command::new("buildah")
                        .args(["--storage-driver", "vfs", "bud", "--isolation", "chroot"])
                        .args(["--format", "oci", "--timestamp", "0", "--layers=false"])
                        .args(["--arch", platform_arch])
                        .args(&build_args),
                    &format!("buildah bud {function}"),
                )?;
                let digest_file = self
                    .target_dir
                    .join("lambda")
                    .join(format!("{function}.digest"));
                let mut push = Command::new("buildah");
                push.args(["--storage-driver", "vfs", "push"]);
                if self.insecure {
                    push.arg("--tls-verify=false");
                }
                push.arg("--digestfile").arg(&digest_file).arg(&image);
                run(&mut push, &format!("buildah push {image}"))?;
                let digest = std::fs::read_to_string(&digest_file).map_err(|e| e.to_string())?;
                Ok(Pushed {
                    function: function.to_owned(),
                    image,
                    digest: digest.trim().to_owned(),
                })
            }
            ContainerTool::Docker => {
                run(
                    Command::new("docker")
                        .args(["build", "--provenance=false", "--sbom=false"])
                        .args(["--platform", &format!("linux/{platform_arch}")])
                        .args(&build_args)
                        .env("SOURCE_DATE_EPOCH", "0"),
                    &format!("docker build {function}"),
                )?;
                run(
                    Command::new("docker").args(["push", &image]),
                    &format!("docker push {image}"),
                )?;
                let repo_digest = run(
                    Command::new("docker").args([
                        "inspect",
                        "--format",
                        "{{index .RepoDigests 0}}",
                        &image,
                    ]),
                    "docker inspect",
                )?;
                Ok(Pushed {
                    function: function.to_owned(),
                    image,
                    digest: repo_digest
                        .rsplit('@')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                })
            }
        }
    }
}

/// The whole release. Refuses before building anything if any tag already exists.
pub fn build_and_push(options: &ReleaseOptions) -> Result<Vec<Pushed>, String> {
    let taken: Vec<&String> = options
        .functions
        .iter()
        .filter(|f| options.tag_exists(f))
        .collect();
    if !taken.is_empty() {
        return Err(format!(
            "{} already exists in {} for {}: image tags are immutable; choose a new VERSION",
            options.version,
            options.registry,
            taken
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&options.config_path)
            .map_err(|e| format!("{}: {e}", options.config_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", options.config_path.display()))?;
    let binaries = options.binaries()?;
    let mut pushed = Vec::new();
    for function in &options.functions {
        let context = options.stage(&binaries, function)?;
        pushed.push(options.build_and_push_one(&context, function)?);
    }
    for image in &pushed {
        record_image(
            &mut config,
            &image.function,
            &options.version.to_string(),
            &image.digest,
        );
    }
    let text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&options.config_path, text).map_err(|e| e.to_string())?;
    Ok(pushed)
}
