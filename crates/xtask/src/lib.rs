//! `xtask`: tooling around the release path, never deployed. It is the one crate that may
//! depend on every function crate, because its job is to hold the templates to what the code
//! declares: each function's `ENVIRONMENT` (the variables its loader reads), `IAM_ACTIONS` (what
//! its code calls) and `EVENT_SOURCE_ACTIONS` (what its trigger needs).
//!
//! Templates are read as JSON after CloudFormation's YAML short forms (`!Ref`, `!Sub`, ...) are
//! expanded; [`functions_in_stack`] names the logical ids each function uses in `infra-main`.

use audit_core::{ConfigError, Env};
use serde_json::Value;
use std::collections::BTreeSet;

/// What a function crate declares, and where the stack defines it.
#[derive(Debug, Clone)]
pub struct FunctionContract {
    pub name: &'static str,
    pub function_logical_id: &'static str,
    pub role_logical_id: &'static str,
    pub environment: &'static [&'static str],
    pub iam_actions: &'static [&'static str],
    pub event_source_actions: &'static [&'static str],
    /// The function's configuration loader, run on the template's environment.
    pub load: fn(&Env) -> Result<(), ConfigError>,
}

/// Every function deployed by `infra-main`.
pub fn functions_in_stack() -> Vec<FunctionContract> {
    vec![
        FunctionContract {
            name: "db-scanner",
            function_logical_id: "DbScannerFunction",
            role_logical_id: "DbScannerRole",
            environment: db_scanner::ENVIRONMENT,
            iam_actions: db_scanner::IAM_ACTIONS,
            event_source_actions: &[],
            load: |env| db_scanner::Config::from_env(env).map(|_| ()),
        },
        FunctionContract {
            name: "log-detector",
            function_logical_id: "LogDetectorFunction",
            role_logical_id: "LogDetectorRole",
            environment: log_detector::ENVIRONMENT,
            iam_actions: log_detector::IAM_ACTIONS,
            event_source_actions: log_detector::EVENT_SOURCE_ACTIONS,
            load: |env| log_detector::Config::from_env(env).map(|_| ()),
        },
        FunctionContract {
            name: "log-downloader",
            function_logical_id: "LogDownloaderFunction",
            role_logical_id: "LogDownloaderRole",
            environment: log_downloader::ENVIRONMENT,
            iam_actions: log_downloader::IAM_ACTIONS,
            event_source_actions: log_downloader::EVENT_SOURCE_ACTIONS,
            load: |env| log_downloader::Config::from_env(env).map(|_| ()),
        },
    ]
}

/// A plausible deployed value for a template expression: a parameter's default, or a value
/// shaped like what the referenced resource returns for `Ref`.
fn resolve(template: &Value, expression: &Value) -> String {
    match expression {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) if o.contains_key("Ref") => {
            let name = o["Ref"].as_str().unwrap_or_default();
            if let Some(parameter) = template["Parameters"].get(name) {
                return match &parameter["Default"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => String::new(),
                };
            }
            match template["Resources"][name]["Type"].as_str() {
                Some("AWS::SQS::Queue") => {
                    format!("https://sqs.us-east-1.amazonaws.com/000000000000/{name}")
                }
                _ => name.to_owned(),
            }
        }
        _ => "unresolved".to_owned(),
    }
}

/// The environment a function gets from the template, with expressions resolved.
pub fn template_environment(template: &Value, function_logical_id: &str) -> Vec<(String, String)> {
    template["Resources"][function_logical_id]["Properties"]["Environment"]["Variables"]
        .as_object()
        .map(|vars| {
            vars.iter()
                .map(|(k, v)| (k.clone(), resolve(template, v)))
                .collect()
        })
        .unwrap_or_default()
}

/// Every action a role's inline policies allow, except writing its own logs (which every
/// function needs and no crate declares).
pub fn role_actions(template: &Value, role_logical_id: &str) -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    for policy in template["Resources"][role_logical_id]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for statement in policy["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let listed = match &statement["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(list) => list
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            actions.extend(listed.into_iter().filter(|a| !a.starts_with("logs:")));
        }
    }
    actions
}
