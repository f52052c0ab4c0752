//! `build-and-push-versioned` against a local registry with buildah: tags pushed and recorded,
//! a second push of the same version refused, identical inputs giving identical digests, and
//! the pushed image's bootstrap answering a scheduled event under the local Runtime API.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use devstack::registry::Registry;
use devstack::{LocalLambda, function_binary, moto, unique_name};
use serde_json::{Value, json};
use std::process::Command;

fn xtask(registry: &Registry, config: &std::path::Path, version: &str) -> std::process::Output {
    // "next" runs increment-version; anything else is the VERSION to build.
    let command: &[&str] = if version == "next" {
        &["increment-version", "--insecure"]
    } else {
        &[
            "build-and-push-versioned",
            "--version",
            version,
            "--insecure",
        ]
    };
    let prebuilt = function_binary("db-scanner")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let target = tempfile::Builder::new()
        .prefix("auditkit-xtask-target-")
        .tempdir()
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(devstack::repo_root())
        .args(command)
        .args(["--registry", registry.address(), "--base-image", "scratch"])
        .arg("--config")
        .arg(config)
        .arg("--prebuilt")
        .arg(prebuilt)
        .env("CONTAINER_TOOL", "buildah")
        // The release stages every binary here (~400 MB): removed when the run ends.
        .env("CARGO_TARGET_DIR", target.path())
        .output()
        .unwrap()
}

/// `DbScanner`, `LogDetector`, ...: the config parameter prefix of every function in the stack.
fn stack_parameter_prefixes() -> Vec<String> {
    xtask::functions_in_stack()
        .iter()
        .map(|f| xtask::parameter_prefix(f.name))
        .collect()
}

fn digests(config: &std::path::Path) -> Vec<String> {
    let config: Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    stack_parameter_prefixes()
        .iter()
        .map(|f| {
            config["Parameters"][format!("{f}ImageDigest")]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn images_are_pushed_recorded_immutable_reproducible_and_runnable() {
    let registry = Registry::start().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("auditkit-release-config-")
        .tempdir()
        .unwrap();
    let config = dir.path().join("dev.json");
    std::fs::copy(
        devstack::repo_root().join("infra-main/config/dev.json"),
        &config,
    )
    .unwrap();

    let first = xtask(&registry, &config, "v0.0.1");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("next: make deploy ENV=dev"));
    let recorded: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    for function in stack_parameter_prefixes() {
        assert_eq!(
            recorded["Parameters"][format!("{function}ImageTag")],
            "v0.0.1"
        );
    }
    let first_digests = digests(&config);
    assert!(
        first_digests
            .iter()
            .all(|d| d.starts_with("sha256:") && d.len() == 71),
        "{first_digests:?}"
    );
    for function in [
        "db-scanner",
        "log-detector",
        "log-downloader",
        "stream-to-firehose",
    ] {
        let raw = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!(
                "docker://{}/auditkit/{function}:v0.0.1",
                registry.address()
            ))
            .output()
            .unwrap();
        assert!(
            raw.status.success(),
            "{function}: tag missing from the registry"
        );
        let manifest: Value = serde_json::from_slice(&raw.stdout).unwrap();
        assert!(
            manifest.get("manifests").is_none(),
            "a single image, not an index"
        );
        assert!(
            manifest["layers"][0]["mediaType"]
                .as_str()
                .unwrap()
                .ends_with("gzip")
        );
    }

    // Tags are immutable: the same version again is refused and the config is unchanged.
    let again = xtask(&registry, &config, "v0.0.1");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("immutable"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(digests(&config), first_digests);

    // The same inputs under another tag give the same digests.
    let second = xtask(&registry, &config, "v0.0.2");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(digests(&config), first_digests, "builds are reproducible");

    // increment-version: the configured v0.0.2 becomes v0.0.3.
    let next = xtask(&registry, &config, "next");
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    let bumped: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(bumped["Parameters"]["LogDetectorImageTag"], "v0.0.3");
    // Not semantic: refused before anything is built.
    let bad = xtask(&registry, &config, "1.0");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("vMAJOR.MINOR.PATCH"));

    // The image, pulled back and unpacked, runs: its bootstrap answers a scheduled event.
    let oci = dir.path().join("oci");
    let pulled = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!(
            "docker://{}/auditkit/db-scanner:v0.0.1",
            registry.address()
        ))
        .arg(format!("oci:{}:v0.0.1", oci.display()))
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let bundle = dir.path().join("bundle");
    let unpacked = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:v0.0.1", oci.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        unpacked.status.success(),
        "{}",
        String::from_utf8_lossy(&unpacked.stderr)
    );

    let aws = moto().isolated();
    let sqs = aws_sdk_sqs::Client::new(&aws.sdk_config().await);
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("img"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let scanner = LocalLambda::builder(bundle.join("rootfs/var/runtime/bootstrap"))
        .envs(aws.vars())
        .env("QUEUE_URL", &queue_url)
        .start()
        .await
        .unwrap();
    let event = json!({"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-22T10:00:00Z", "region": aws.region, "resources": [], "detail": {}});
    let summary = scanner.invoke(&event).await.unwrap();
    assert_eq!(summary["found"], 0, "{summary}");
    assert_eq!(summary["queued"], 0);
}
