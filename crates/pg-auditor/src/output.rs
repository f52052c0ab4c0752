//! Where the report files go: a folder, or S3 under the original's key names. Neither ever
//! replaces an existing report: files are created new, objects written with `If-None-Match`.

use crate::csv_summary::{ReportLocations, tables_csv};
use crate::report::AuditReport;
use std::path::Path;

/// The three files of one audit.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub json_name: String,
    pub csv_name: String,
    pub html_name: String,
    pub json: Vec<u8>,
    pub csv: Vec<u8>,
    pub html: Vec<u8>,
}

/// Why the report files could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("report JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("report CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("s3://{bucket}/{key}: {message}")]
    Upload {
        bucket: String,
        key: String,
        message: String,
    },
}

/// Renders the files; `stamp` is `YYYYMMDD_HHMMSS`.
pub fn render(report: &AuditReport, stamp: &str) -> Result<ReportFiles, OutputError> {
    let mut json = serde_json::to_vec_pretty(report)?;
    json.push(b'\n');
    Ok(ReportFiles {
        json_name: format!("audit_{stamp}.json"),
        csv_name: format!("tables_summary_{stamp}.csv"),
        html_name: format!("audit_{stamp}.html"),
        json,
        csv: tables_csv(report)?,
        html: crate::html::render(report).into_bytes(),
    })
}

/// Writes the files into `dir` (created if needed); an existing file is an error.
pub fn write_dir(dir: &Path, report: &ReportFiles) -> Result<ReportLocations, OutputError> {
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| OutputError::File { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(failed(&path))?;
        std::io::Write::write_all(&mut file, bytes).map_err(failed(&path))?;
        Ok::<_, OutputError>(path.display().to_string())
    };
    Ok(ReportLocations {
        detailed_json: write(&report.json_name, &report.json)?,
        tables_csv: write(&report.csv_name, &report.csv)?,
        html: write(&report.html_name, &report.html)?,
    })
}

/// Uploads the files to `s3://bucket/prefix...`; an existing key is an error.
pub async fn write_s3(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    report: &ReportFiles,
) -> Result<ReportLocations, OutputError> {
    let put = |name: &str, bytes: &[u8], content_type: &'static str| {
        let key = format!("{prefix}{name}");
        let request = s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(content_type)
            .if_none_match("*")
            .body(bytes.to_vec().into());
        async move {
            request.send().await.map_err(|e| OutputError::Upload {
                bucket: bucket.to_owned(),
                key: key.clone(),
                message: audit_core::aws::describe(&e),
            })?;
            Ok::<_, OutputError>(format!("s3://{bucket}/{key}"))
        }
    };
    Ok(ReportLocations {
        detailed_json: put(&report.json_name, &report.json, "application/json").await?,
        tables_csv: put(&report.csv_name, &report.csv, "text/csv; charset=utf-8").await?,
        html: put(&report.html_name, &report.html, "text/html; charset=utf-8").await?,
    })
}
