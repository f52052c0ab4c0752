//! `rollback` and `version-info` against moto's Lambda API: two published versions, `live` on
//! the newer; rollback moves it to the older and records the tag; an unknown tag or function
//! changes nothing.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed

use aws_sdk_lambda::types::{FunctionCode, PackageType};
use devstack::{AwsEnv, moto, scratch_dir, unique_name};
use serde_json::Value;
use std::process::{Command, Output};

const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/auditkit/log-downloader";

fn xtask(aws: &AwsEnv, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(devstack::repo_root())
        .args(args)
        .envs(aws.vars())
        .output()
        .unwrap()
}

#[tokio::test]
async fn rollback_moves_live_to_the_version_of_a_tag_and_refuses_unknowns() {
    let aws = moto().isolated();
    let lambda = aws_sdk_lambda::Client::new(&aws.sdk_config().await);
    let role = aws.lambda_role(&unique_name("role")).await.unwrap();
    let stack = unique_name("stack");
    let name = format!("{stack}-log-downloader");
    lambda
        .create_function()
        .function_name(&name)
        .package_type(PackageType::Image)
        .code(
            FunctionCode::builder()
                .image_uri(format!("{IMAGE}:v1.2.2"))
                .build(),
        )
        .role(&role)
        .send()
        .await
        .unwrap();
    let old = lambda
        .publish_version()
        .function_name(&name)
        .description("image v1.2.2")
        .send()
        .await
        .unwrap();
    lambda
        .update_function_code()
        .function_name(&name)
        .image_uri(format!("{IMAGE}:v1.2.3"))
        .send()
        .await
        .unwrap();
    let new = lambda
        .publish_version()
        .function_name(&name)
        .description("image v1.2.3")
        .send()
        .await
        .unwrap();
    lambda
        .create_alias()
        .function_name(&name)
        .name("live")
        .function_version(new.version().unwrap())
        .send()
        .await
        .unwrap();
    let live = || async {
        lambda
            .get_alias()
            .function_name(&name)
            .name("live")
            .send()
            .await
            .unwrap()
            .function_version()
            .unwrap()
            .to_owned()
    };

    let dir = scratch_dir("rollback").unwrap();
    let config = dir.join("dev.json");
    std::fs::copy(
        devstack::repo_root().join("infra-main/config/dev.json"),
        &config,
    )
    .unwrap();
    let config_text = || std::fs::read_to_string(&config).unwrap();
    let before = config_text();
    let config_arg = config.display().to_string();
    let rollback = |function: &str, version: &str| {
        xtask(
            &aws,
            &[
                "rollback",
                "--function",
                function,
                "--version",
                version,
                "--stack",
                &stack,
                "--config",
                &config_arg,
            ],
        )
    };

    // Unknown tag: an error, nothing changes.
    let out = rollback("log-downloader", "v9.9.9");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no published version runs v9.9.9"),
        "{out:?}"
    );
    assert_eq!(live().await, new.version().unwrap());
    assert_eq!(config_text(), before);

    // Unknown function: an error naming the known ones.
    let out = rollback("log-uploader", "v1.2.2");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("log-downloader"),
        "{out:?}"
    );

    // FUNCTION=all when the other functions have no such version: resolved first, so nothing moves.
    let out = rollback("all", "v1.2.2");
    assert!(!out.status.success());
    assert_eq!(live().await, new.version().unwrap());
    assert_eq!(config_text(), before);

    // The rollback itself.
    let out = rollback("log-downloader", "v1.2.2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(live().await, old.version().unwrap());
    let recorded: Value = serde_json::from_str(&config_text()).unwrap();
    assert_eq!(recorded["Parameters"]["LogDownloaderImageTag"], "v1.2.2");

    let out = xtask(
        &aws,
        &["version-info", "--stack", &stack, "--config", &config_arg],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(
        info.contains(&format!(
            "log-downloader: configured v1.2.2; live -> version {} (image v1.2.2)",
            old.version().unwrap()
        )),
        "{info}"
    );
}
