//! `rollback` and `version-info`: moving `live` aliases between already published versions.
//!
//! A rollback resolves every requested function's target version first and changes nothing if
//! any is missing; then it moves the aliases (seconds, no deploy) and writes the tag (and the
//! version's image digest when Lambda reports it) back into the stack config, so the next
//! deploy keeps the rolled-back image.

use crate::{configured_tag, functions_in_stack, record_image, version_for_tag};
use aws_sdk_lambda::Client;
use serde_json::Value;
use std::path::Path;

/// The deployed name of a function of stack `stack`.
pub fn deployed_name(stack: &str, function: &str) -> String {
    format!("{stack}-{function}")
}

/// Resolves `FUNCTION` (`all` or one name) to the functions it means, or says which exist.
pub fn select(function: &str) -> Result<Vec<String>, String> {
    let known: Vec<String> = functions_in_stack()
        .iter()
        .map(|f| f.name.to_owned())
        .collect();
    if function == "all" {
        return Ok(known);
    }
    if known.iter().any(|k| k == function) {
        Ok(vec![function.to_owned()])
    } else {
        Err(format!(
            "unknown FUNCTION={function:?}; expected all or one of {}",
            known.join(", ")
        ))
    }
}

async fn versions(lambda: &Client, name: &str) -> Result<Vec<(String, String)>, String> {
    let mut pages = lambda
        .list_versions_by_function()
        .function_name(name)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            format!(
                "{name}: ListVersionsByFunction: {}",
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        })?;
        out.extend(page.versions().iter().map(|v| {
            (
                v.version().unwrap_or_default().to_owned(),
                v.description().unwrap_or_default().to_owned(),
            )
        }));
    }
    Ok(out)
}

async fn live_version(lambda: &Client, name: &str) -> Result<String, String> {
    let alias = lambda
        .get_alias()
        .function_name(name)
        .name("live")
        .send()
        .await
        .map_err(|e| {
            format!(
                "{name}: GetAlias live: {}",
                aws_sdk_lambda::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(alias.function_version().unwrap_or_default().to_owned())
}

/// One alias move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub function: String,
    pub from: String,
    pub to: String,
}

/// Moves `live` of each function to the version that runs `tag`, then records the tag.
pub async fn rollback(
    lambda: &Client,
    stack: &str,
    functions: &[String],
    tag: &str,
    config_path: &Path,
) -> Result<Vec<Moved>, String> {
    let mut config: Value = serde_json::from_slice(
        &std::fs::read(config_path).map_err(|e| format!("{}: {e}", config_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", config_path.display()))?;
    // Resolve everything before changing anything.
    let mut plan = Vec::new();
    for function in functions {
        let name = deployed_name(stack, function);
        let to = version_for_tag(&versions(lambda, &name).await?, tag).ok_or_else(|| {
            format!("{function}: no published version runs {tag}; nothing was changed")
        })?;
        let from = live_version(lambda, &name).await?;
        plan.push(Moved {
            function: function.clone(),
            from,
            to,
        });
    }
    for moved in &plan {
        let name = deployed_name(stack, &moved.function);
        lambda
            .update_alias()
            .function_name(&name)
            .name("live")
            .function_version(&moved.to)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "{name}: UpdateAlias: {}",
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                )
            })?;
        let digest = lambda
            .get_function()
            .function_name(&name)
            .qualifier(&moved.to)
            .send()
            .await
            .ok()
            .and_then(|f| {
                f.code()
                    .and_then(|c| c.resolved_image_uri())
                    .map(str::to_owned)
            })
            .and_then(|uri| uri.rsplit_once('@').map(|(_, d)| d.to_owned()))
            .unwrap_or_default();
        record_image(&mut config, &moved.function, tag, &digest);
    }
    let text = serde_json::to_string_pretty(&config).map_err(|e| e.to_string())? + "\n";
    std::fs::write(config_path, text).map_err(|e| e.to_string())?;
    Ok(plan)
}

/// Per function: the configured tag, and `live` → version → the image it runs.
pub async fn version_info(lambda: &Client, stack: &str, config: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for function in functions_in_stack() {
        let name = deployed_name(stack, function.name);
        let configured = configured_tag(config, function.name).unwrap_or_else(|| "-".into());
        let live = match live_version(lambda, &name).await {
            Ok(version) => {
                let description = versions(lambda, &name)
                    .await
                    .ok()
                    .and_then(|all| all.into_iter().find(|(v, _)| *v == version))
                    .map(|(_, d)| d)
                    .unwrap_or_default();
                format!("live -> version {version} ({description})")
            }
            Err(e) => format!("live: {e}"),
        };
        lines.push(format!(
            "{}: configured {configured}; {live}",
            function.name
        ));
    }
    lines
}
