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

/// Renders the files; `stamp` is `YYYYMMDD_HHMMSS`.
pub fn render(report: &AuditReport, stamp: &str) -> Result<ReportFiles, String> {
    let mut json = serde_json::to_vec_pretty(report).map_err(|e| format!("report JSON: {e}"))?;
    json.push(b'\n');
    Ok(ReportFiles {
        json_name: format!("audit_{stamp}.json"),
        csv_name: format!("tables_summary_{stamp}.csv"),
        html_name: format!("audit_{stamp}.html"),
        json,
        csv: tables_csv(report).map_err(|e| format!("report CSV: {e}"))?,
        html: crate::html::render(report).into_bytes(),
    })
}

fn files(files: &ReportFiles) -> [(&str, &[u8], &'static str); 3] {
    [
        (&files.json_name, &files.json, "application/json"),
        (&files.csv_name, &files.csv, "text/csv; charset=utf-8"),
        (&files.html_name, &files.html, "text/html; charset=utf-8"),
    ]
}

/// Writes the files into `dir` (created if needed); an existing file is an error.
pub fn write_dir(dir: &Path, report: &ReportFiles) -> Result<ReportLocations, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for (name, bytes, _) in files(report) {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        std::io::Write::write_all(&mut file, bytes)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        paths.push(path.display().to_string());
    }
    let [detailed_json, tables_csv, html] = <[String; 3]>::try_from(paths).map_err(|_| "paths")?;
    Ok(ReportLocations {
        detailed_json,
        tables_csv,
        html,
    })
}

/// Uploads the files to `s3://bucket/prefix...`; an existing key is an error.
pub async fn write_s3(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    report: &ReportFiles,
) -> Result<ReportLocations, String> {
    let mut urls = Vec::new();
    for (name, bytes, content_type) in files(report) {
        let key = format!("{prefix}{name}");
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(content_type)
            .if_none_match("*")
            .body(bytes.to_vec().into())
            .send()
            .await
            .map_err(|e| format!("s3://{bucket}/{key}: {}", audit_core::aws::describe(&e)))?;
        urls.push(format!("s3://{bucket}/{key}"));
    }
    let [detailed_json, tables_csv, html] = <[String; 3]>::try_from(urls).map_err(|_| "urls")?;
    Ok(ReportLocations {
        detailed_json,
        tables_csv,
        html,
    })
}
