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
    /// The metrics it writes (EMF, namespace `auditkit`, dimension `function` = `name`).
    pub metrics: audit_core::metrics::Declared,
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
            metrics: &[],
            load: |env| db_scanner::Config::from_env(env).map(|_| ()),
        },
        FunctionContract {
            name: "log-detector",
            function_logical_id: "LogDetectorFunction",
            role_logical_id: "LogDetectorRole",
            environment: log_detector::ENVIRONMENT,
            iam_actions: log_detector::IAM_ACTIONS,
            event_source_actions: log_detector::EVENT_SOURCE_ACTIONS,
            metrics: log_detector::METRICS,
            load: |env| log_detector::Config::from_env(env).map(|_| ()),
        },
        FunctionContract {
            name: "log-downloader",
            function_logical_id: "LogDownloaderFunction",
            role_logical_id: "LogDownloaderRole",
            environment: log_downloader::ENVIRONMENT,
            iam_actions: log_downloader::IAM_ACTIONS,
            event_source_actions: log_downloader::EVENT_SOURCE_ACTIONS,
            metrics: log_downloader::METRICS,
            load: |env| log_downloader::Config::from_env(env).map(|_| ()),
        },
        FunctionContract {
            name: "stream-to-firehose",
            function_logical_id: "StreamToFirehoseFunction",
            role_logical_id: "StreamToFirehoseRole",
            environment: stream_to_firehose::ENVIRONMENT,
            iam_actions: stream_to_firehose::IAM_ACTIONS,
            event_source_actions: stream_to_firehose::EVENT_SOURCE_ACTIONS,
            metrics: stream_to_firehose::METRICS,
            load: |env| stream_to_firehose::Config::from_env(env).map(|_| ()),
        },
        FunctionContract {
            name: "table-updater",
            function_logical_id: "TableUpdaterFunction",
            role_logical_id: "TableUpdaterRole",
            environment: table_updater::ENVIRONMENT,
            iam_actions: table_updater::IAM_ACTIONS,
            event_source_actions: &[],
            metrics: table_updater::METRICS,
            load: |env| table_updater::Config::from_env(env).map(|_| ()),
        },
        FunctionContract {
            name: "digest-writer",
            function_logical_id: "DigestWriterFunction",
            role_logical_id: "DigestWriterRole",
            environment: digest_writer::ENVIRONMENT,
            iam_actions: digest_writer::IAM_ACTIONS,
            event_source_actions: &[],
            metrics: digest_writer::METRICS,
            load: |env| digest_writer::Config::from_env(env).map(|_| ()),
        },
        FunctionContract {
            name: "pg-auditor",
            function_logical_id: "PgAuditorFunction",
            role_logical_id: "PgAuditorRole",
            environment: pg_auditor::ENVIRONMENT.as_slice(),
            iam_actions: pg_auditor::IAM_ACTIONS,
            event_source_actions: &[],
            // Deployed only when DbSecretArn is set (condition AuditsDatabase), and that
            // parameter's default is empty: load as a deployment with a secret would.
            metrics: pg_auditor::METRICS,
            load: |env| {
                let mut pairs: Vec<(String, String)> = pg_auditor::ENVIRONMENT
                    .iter()
                    .filter_map(|name| env.get(name).map(|v| ((*name).to_owned(), v.to_owned())))
                    .collect();
                if env.get("DB_SECRET_ARN").is_none() {
                    pairs.push((
                        "DB_SECRET_ARN".to_owned(),
                        "arn:aws:secretsmanager:us-east-1:000000000000:secret:db".to_owned(),
                    ));
                }
                pg_auditor::Config::from_env(&Env::from_pairs(pairs)).map(|_| ())
            },
        },
        FunctionContract {
            name: "audit-api",
            function_logical_id: "AuditApiFunction",
            role_logical_id: "AuditApiRole",
            environment: audit_api::ENVIRONMENT,
            iam_actions: audit_api::IAM_ACTIONS,
            event_source_actions: &[],
            // Deployed only with AuditApiDbSecretArn (condition DeploysAuditApi), whose
            // default is empty, and then with the keys secret: load as such a deployment.
            metrics: audit_api::metrics::METRICS,
            load: |env| {
                let mut pairs: Vec<(String, String)> = audit_api::ENVIRONMENT
                    .iter()
                    .filter_map(|name| env.get(name).map(|v| ((*name).to_owned(), v.to_owned())))
                    .collect();
                for name in ["DB_SECRET_ARN", "API_KEYS_SECRET_ARN"] {
                    if env.get(name).is_none() {
                        pairs.push((
                            name.to_owned(),
                            "arn:aws:secretsmanager:us-east-1:000000000000:secret:s".to_owned(),
                        ));
                    }
                }
                audit_api::Config::from_env(&Env::from_pairs(pairs)).map(|_| ())
            },
        },
    ]
}

/// A plausible deployed value for a template expression: a parameter's default, or a value
/// shaped like what the referenced resource returns for `Ref`.
fn resolve(template: &Value, expression: &Value) -> String {
    match expression {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(o) if o.contains_key("Ref") => {
            reference(template, o["Ref"].as_str().unwrap_or_default())
        }
        Value::Object(o) if o.contains_key("Fn::GetAtt") => {
            let (resource, attribute) = match &o["Fn::GetAtt"] {
                Value::Array(parts) => (
                    parts.first().and_then(Value::as_str).unwrap_or_default(),
                    parts.get(1).and_then(Value::as_str).unwrap_or_default(),
                ),
                Value::String(dotted) => dotted.split_once('.').unwrap_or((dotted, "")),
                _ => ("", ""),
            };
            attribute_of(template, resource, attribute)
        }
        Value::Object(o) if o.contains_key("Fn::Sub") => {
            let (text, variables) = match &o["Fn::Sub"] {
                Value::Array(parts) => (
                    parts.first().and_then(Value::as_str).unwrap_or_default(),
                    parts.get(1).cloned().unwrap_or(Value::Null),
                ),
                other => (other.as_str().unwrap_or_default(), Value::Null),
            };
            substitute(template, text, &variables)
        }
        Value::Object(o) if o.contains_key("Fn::Join") => {
            let parts = o["Fn::Join"].as_array().cloned().unwrap_or_default();
            let separator = parts.first().and_then(Value::as_str).unwrap_or_default();
            parts
                .get(1)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|item| resolve(template, item))
                        .collect::<Vec<_>>()
                        .join(separator)
                })
                .unwrap_or_default()
        }
        Value::Object(o) if o.contains_key("Fn::If") => {
            let branches = o["Fn::If"].as_array().cloned().unwrap_or_default();
            let holds = branches
                .first()
                .and_then(Value::as_str)
                .is_some_and(|name| condition(template, &template["Conditions"][name]));
            resolve(
                template,
                &branches[if holds { 1 } else { 2 }.min(branches.len().saturating_sub(1))],
            )
        }
        _ => "unresolved".to_owned(),
    }
}

/// What `Ref` gives with the parameters' defaults, and plausible physical names for resources
/// (CloudFormation names buckets and tables `<stack>-<logicalid>-<suffix>`, in lower case for
/// buckets).
fn reference(template: &Value, name: &str) -> String {
    if name == "AWS::NoValue" {
        return String::new();
    }
    if let Some(pseudo) = name.strip_prefix("AWS::") {
        return match pseudo {
            "Region" => "us-east-1".into(),
            "AccountId" => "000000000000".into(),
            "Partition" => "aws".into(),
            _ => "auditkit".into(),
        };
    }
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
        Some("AWS::S3::Bucket") => format!("auditkit-{}-1a2b3c4d5e6f", name.to_lowercase()),
        Some("AWS::DynamoDB::Table") => format!("auditkit-{name}-1A2B3C4D5E6F"),
        _ => name.to_owned(),
    }
}

fn attribute_of(template: &Value, resource: &str, attribute: &str) -> String {
    let id = reference(template, resource);
    match (template["Resources"][resource]["Type"].as_str(), attribute) {
        (Some("AWS::S3::Bucket"), "Arn") => format!("arn:aws:s3:::{id}"),
        (Some("AWS::KMS::Key"), "Arn") => {
            "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab".into()
        }
        (Some("AWS::DynamoDB::Table"), "Arn") => {
            format!("arn:aws:dynamodb:us-east-1:000000000000:table/{id}")
        }
        _ => format!("{id}.{attribute}"),
    }
}

/// `Fn::Sub`: `${Name}` and `${Resource.Attribute}` replaced, `${!Literal}` kept literally.
fn substitute(template: &Value, text: &str, variables: &Value) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + end];
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str(&format!("${{{literal}}}"));
        } else if let Some(value) = variables.get(name) {
            out.push_str(&resolve(template, value));
        } else if let Some((resource, attribute)) = name.split_once('.') {
            out.push_str(&attribute_of(template, resource, attribute));
        } else {
            out.push_str(&reference(template, name));
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// A template condition evaluated with the parameters' defaults.
fn condition(template: &Value, expression: &Value) -> bool {
    let args = |key: &str| expression[key].as_array().cloned().unwrap_or_default();
    if let Some(name) = expression["Condition"].as_str() {
        return condition(template, &template["Conditions"][name]);
    }
    if expression.get("Fn::Not").is_some() {
        return !args("Fn::Not")
            .first()
            .is_some_and(|c| condition(template, c));
    }
    if expression.get("Fn::And").is_some() {
        return args("Fn::And").iter().all(|c| condition(template, c));
    }
    if expression.get("Fn::Or").is_some() {
        return args("Fn::Or").iter().any(|c| condition(template, c));
    }
    if expression.get("Fn::Equals").is_some() {
        let values = args("Fn::Equals");
        return values.len() == 2 && resolve(template, &values[0]) == resolve(template, &values[1]);
    }
    false
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
        // A statement may be conditional (`Fn::If`): count what either branch grants.
        let statements = policy["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|statement| match statement["Fn::If"].as_array() {
                Some(branches) => branches.iter().skip(1).collect(),
                None => vec![statement],
            });
        for statement in statements {
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

pub mod release;

/// A release version, `vMAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    /// Parses `vMAJOR.MINOR.PATCH` (no leading zeros, no suffix): image tags are immutable, so
    /// a sloppy version would be a permanent mistake.
    pub fn parse(text: &str) -> Result<Version, String> {
        let invalid = || {
            format!("VERSION={text:?} is not a semantic version vMAJOR.MINOR.PATCH (e.g. v1.2.3)")
        };
        let numbers = text.strip_prefix('v').ok_or_else(invalid)?;
        let parts: Vec<&str> = numbers.split('.').collect();
        let [major, minor, patch] = parts.as_slice() else {
            return Err(invalid());
        };
        let number = |p: &str| {
            let ok = !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'));
            if ok {
                p.parse::<u64>().map_err(|_| invalid())
            } else {
                Err(invalid())
            }
        };
        Ok(Version {
            major: number(major)?,
            minor: number(minor)?,
            patch: number(patch)?,
        })
    }

    pub fn next_patch(self) -> Version {
        Version {
            patch: self.patch + 1,
            ..self
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The template parameter prefix of a function: `log-downloader` → `LogDownloader`.
pub fn parameter_prefix(function: &str) -> String {
    function
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Records a pushed image in a stack config (`{"Parameters": {...}}`): its tag and digest.
pub fn record_image(config: &mut Value, function: &str, tag: &str, digest: &str) {
    let prefix = parameter_prefix(function);
    let parameters = &mut config["Parameters"];
    parameters[format!("{prefix}ImageTag")] = Value::String(tag.to_owned());
    parameters[format!("{prefix}ImageDigest")] = Value::String(digest.to_owned());
}

/// The tag a stack config runs for `function`.
pub fn configured_tag(config: &Value, function: &str) -> Option<String> {
    config["Parameters"][format!("{}ImageTag", parameter_prefix(function))]
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_must_be_exactly_semantic() {
        assert_eq!(
            Version::parse("v1.2.3").unwrap(),
            Version {
                major: 1,
                minor: 2,
                patch: 3
            }
        );
        assert_eq!(
            Version::parse("v0.0.1").unwrap().next_patch().to_string(),
            "v0.0.2"
        );
        for bad in [
            "1.2.3",
            "v1.2",
            "v1.2.3.4",
            "v1.02.3",
            "v1.2.3-rc1",
            "v1..3",
            "latest",
            "v-1.2.3",
        ] {
            let err = Version::parse(bad).unwrap_err();
            assert!(err.contains("vMAJOR.MINOR.PATCH"), "{bad}: {err}");
        }
    }

    #[test]
    fn images_are_recorded_under_the_functions_parameters() {
        let mut config =
            serde_json::json!({"Parameters": {"LogDownloaderImageTag": "v0.1.0", "Other": "x"}});
        record_image(&mut config, "log-downloader", "v0.2.0", "sha256:ab");
        assert_eq!(config["Parameters"]["LogDownloaderImageTag"], "v0.2.0");
        assert_eq!(
            config["Parameters"]["LogDownloaderImageDigest"],
            "sha256:ab"
        );
        assert_eq!(config["Parameters"]["Other"], "x");
        assert_eq!(
            configured_tag(&config, "log-downloader").as_deref(),
            Some("v0.2.0")
        );
        assert_eq!(parameter_prefix("db-scanner"), "DbScanner");
    }
}

pub mod rollback;

/// The Lambda version description `infra-main` gives the version it publishes for an image tag.
pub fn version_description(tag: &str) -> String {
    format!("image {tag}")
}

/// The published version that runs `tag`: the highest numbered one whose description names it.
pub fn version_for_tag(versions: &[(String, String)], tag: &str) -> Option<String> {
    let wanted = version_description(tag);
    versions
        .iter()
        .filter(|(_, description)| *description == wanted)
        .filter_map(|(version, _)| version.parse::<u64>().ok())
        .max()
        .map(|v| v.to_string())
}

#[cfg(test)]
mod rollback_tests {
    use super::*;

    #[test]
    fn the_newest_version_publishing_a_tag_is_chosen() {
        let versions: Vec<(String, String)> = [
            ("$LATEST", ""),
            ("3", "image v1.2.2"),
            ("7", "image v1.2.3"),
            ("12", "image v1.2.2"),
        ]
        .iter()
        .map(|(v, d)| ((*v).to_owned(), (*d).to_owned()))
        .collect();
        assert_eq!(version_for_tag(&versions, "v1.2.2").as_deref(), Some("12"));
        assert_eq!(version_for_tag(&versions, "v1.2.3").as_deref(), Some("7"));
        assert_eq!(version_for_tag(&versions, "v9.9.9"), None);
    }
}
