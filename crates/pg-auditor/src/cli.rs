//! The command line: `pg-auditor --database-url URL --out ./reports`. Every flag is the
//! lower-case, dashed name of an environment variable the Lambda reads (`--count-mode` is
//! `COUNT_MODE`), so both run with the same configuration code.

use crate::{Clients, Config, audit, connect, output, report};

/// `println!` that ignores a closed stdout (`pg-auditor ... | head`): the reports are already
/// written, and the summary is only a courtesy.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
use audit_core::Env;

pub const USAGE: &str = "\
usage: pg-auditor [--database-url URL | --db-secret-arn ARN] [--out DIR] [--s3-bucket BUCKET]
                  [--count-mode auto|exact|estimate] [--exact-count-threshold ROWS]
                  [--include-schemas a,b] [--exclude-schemas a,b] [--default-schema public]
                  [--expected-versioned-tables t1,t2] [--expected-seed-tables t1,s.t2]
                  [--audit-trigger-function NAME] [--sample-rows N] [--sensitive-column-patterns p1,p2]
                  [--statement-timeout-ms MS] [--lock-timeout-ms MS] [--parallelism N]
                  [--db-sslmode MODE] [--db-iam-auth true] [--report-prefix P]
Every flag may instead be set as its environment variable (--count-mode: COUNT_MODE).
Writes audit_<stamp>.json, tables_summary_<stamp>.csv and audit_<stamp>.html to --out
(default ./reports) and, with --s3-bucket, to s3://BUCKET/<prefix>.";

/// A command line that cannot be run (or `--help`): printed with the usage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("{USAGE}")]
    Help,
    #[error("unexpected argument {0:?}\n{USAGE}")]
    Unexpected(String),
    #[error("unknown flag --{0}\n{USAGE}")]
    Unknown(String),
    #[error("--{0} needs a value")]
    MissingValue(String),
}

/// The environment with the flags laid over it. `--out` is `OUTPUT_DIR`.
pub fn env_with_flags(base: Vec<(String, String)>, args: &[String]) -> Result<Env, FlagError> {
    let known = crate::config_variables();
    let mut vars = base;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(FlagError::Help);
        }
        let (name, inline) = match flag.strip_prefix("--") {
            Some(rest) => match rest.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (rest, None),
            },
            None => return Err(FlagError::Unexpected(flag.clone())),
        };
        let variable = match name {
            "out" => "OUTPUT_DIR".to_owned(),
            "bucket" => "S3_BUCKET".to_owned(),
            other => other.to_ascii_uppercase().replace('-', "_"),
        };
        if !known.contains(&variable.as_str()) {
            return Err(FlagError::Unknown(name.to_owned()));
        }
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .cloned()
                .ok_or_else(|| FlagError::MissingValue(name.to_owned()))?,
        };
        vars.push((variable, value));
    }
    Ok(Env::from_pairs(vars))
}

/// Runs one audit from the command line; returns the process exit code.
pub async fn main(args: Vec<String>) -> i32 {
    let env = match env_with_flags(std::env::vars().collect(), &args) {
        Ok(env) => env,
        Err(message) => {
            eprintln!("{message}");
            return 2;
        }
    };
    let mut config = match Config::from_env(&env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pg-auditor: {e}");
            return 2;
        }
    };
    if config.output_dir.is_none() {
        config.output_dir = Some("reports".into());
    }
    match run(&config).await {
        Ok(0) => 0,
        Ok(_) => 0,
        Err(e) => {
            eprintln!("pg-auditor: {e}");
            1
        }
    }
}

async fn run(config: &Config) -> Result<usize, crate::RunError> {
    let clients = if config.needs_aws(None) {
        Some(Clients::new(audit_core::aws::sdk_config().await))
    } else {
        None
    };
    let target = crate::resolve_target(config, clients.as_ref()).await?;
    let tls = connect::tls_config(&target)?;
    let (timestamp, stamp) = crate::timestamps(chrono::Utc::now());
    let mut streamed = output::StreamedReport::new()?;
    let report = audit::run_into(&target, &tls, &config.settings, timestamp, &mut streamed).await?;
    let rendering = std::time::Instant::now();
    let files = streamed.finish(&report, &stamp)?;
    let rendered = rendering.elapsed();
    let mut written = Vec::new();
    if let Some(dir) = &config.output_dir {
        written.push(output::write_dir(dir, &files)?);
    }
    if let (Some(bucket), Some(clients)) = (&config.bucket, &clients) {
        written.push(output::write_s3(&clients.s3, bucket, &config.prefix, &files).await?);
    }
    print_summary(&report);
    for locations in &written {
        say!("  report  {}", locations.detailed_json);
        say!("  csv     {}", locations.tables_csv);
        say!("  html    {}", locations.html);
    }
    say!(
        "  rendered in {} ms (JSON {} bytes, CSV {} bytes, HTML {} bytes)",
        rendered.as_millis(),
        files.json.len(),
        files.csv.len(),
        files.html.len()
    );
    Ok(report.summary.tables_with_errors)
}

fn print_summary(report: &report::AuditReport) {
    let s = &report.summary;
    let settings = &report.audit_settings;
    say!(
        "pg-auditor: {} on {} ({} mode, {} connection(s), {} table statements, {} ms)",
        report.database_info.database_name,
        report.audit_timestamp,
        settings.count_mode,
        settings.connections,
        settings.table_statements,
        settings.duration_ms
    );
    say!(
        "  {} tables, {} records ({} exact, {} estimated, {} unavailable counts), {} empty",
        s.total_tables,
        s.total_records,
        s.exact_counts,
        s.estimated_counts,
        s.unavailable_counts,
        s.empty_tables
    );
    say!(
        "  audit fields on {} tables, audit trigger on {}; versioning tables found: {}/4",
        s.tables_with_audit_fields,
        s.tables_with_audit_trigger,
        s.versioning_tables_found
    );
    let v = &report.validation;
    say!(
        "  validation: {} missing the audit trigger, {} attributed to the system user only",
        v.tables_missing_audit_trigger.len(),
        v.tables_attributed_to_system_only.len()
    );
    say!(
        "  {}",
        versioning_line(&report.versioning_system.validation)
    );
    for seed in &report.seed_tables {
        say!(
            "  seed table {}.{}: {:?} ({})",
            seed.schema,
            seed.table,
            seed.status,
            seed.record_count.map_or("?".to_owned(), |n| n.to_string())
        );
    }
    if s.tables_with_errors > 0 {
        eprintln!(
            "pg-auditor: warning: {} table(s) could not be read in full; see their `errors`",
            s.tables_with_errors
        );
    }
}

/// The versioning line of the summary: a check that did not run reads "not run", never 0.
pub fn versioning_line(v: &crate::versioning::VersioningValidation) -> String {
    let active = if v.active_version_checks_ran {
        format!(
            "{} families without an active version, {} with several",
            v.families_without_active_version.len(),
            v.families_with_multiple_active_versions.len()
        )
    } else {
        "active versions: not run".to_owned()
    };
    let map = if v.domain_map_checks_ran {
        format!(
            "domain map: {} missing, {} unexpected",
            v.domain_map_missing_tables.len(),
            v.domain_map_unexpected_tables.len()
        )
    } else {
        "domain map: not run".to_owned()
    };
    format!("versioning: {active}; {map}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::CountMode;

    #[test]
    fn cli_flags_are_the_variables_in_lower_case() {
        let args: Vec<String> = [
            "--database-url",
            "postgresql://h/db",
            "--out",
            "/tmp/r",
            "--count-mode=exact",
        ]
        .map(str::to_owned)
        .to_vec();
        let env = env_with_flags(Vec::new(), &args).expect("valid");
        let config = crate::Config::from_env(&env).expect("valid");
        assert_eq!(config.settings.count_mode, CountMode::Exact);
        assert_eq!(
            config.output_dir.as_deref(),
            Some(std::path::Path::new("/tmp/r"))
        );
        let unknown = env_with_flags(Vec::new(), &["--colour".to_owned(), "red".to_owned()]);
        assert!(
            unknown
                .expect_err("unknown")
                .to_string()
                .starts_with("unknown flag --colour")
        );
        let missing = env_with_flags(Vec::new(), &["--out".to_owned()]);
        assert_eq!(
            missing.expect_err("missing").to_string(),
            "--out needs a value"
        );
    }
}
