//! Where the report files go: a folder, or S3 under the original's key names. Neither ever
//! replaces an existing report: files are created new, objects written with `If-None-Match`.
//!
//! The JSON report grows with the catalog (2.7 KB a table: 272 MB at 100,000 tables), so it
//! is written as it is serialised into an unnamed temporary file and copied or uploaded from
//! there, never held in memory.

use crate::csv_summary::{ReportLocations, tables_csv};
use crate::report::AuditReport;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

/// The three files of one audit.
#[derive(Debug)]
pub struct ReportFiles {
    pub json_name: String,
    pub csv_name: String,
    pub html_name: String,
    pub json: JsonFile,
    pub csv: Vec<u8>,
    pub html: Vec<u8>,
}

/// The JSON report, in an unnamed temporary file (gone when dropped).
#[derive(Debug)]
pub struct JsonFile {
    file: std::fs::File,
    len: u64,
}

impl JsonFile {
    /// Writes `report` as the original's indented JSON, and a final newline.
    fn write(report: &AuditReport) -> Result<Self, OutputError> {
        let temporary = |source| OutputError::File {
            path: "(temporary JSON report)".to_owned(),
            source,
        };
        let file = tempfile::tempfile().map_err(temporary)?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer_pretty(&mut writer, report)?;
        writer.write_all(b"\n").map_err(temporary)?;
        let file = writer.into_inner().map_err(|e| temporary(e.into_error()))?;
        let len = file.metadata().map_err(temporary)?.len();
        Ok(JsonFile { file, len })
    }

    /// A report given as bytes (tests, and reports made elsewhere).
    pub fn from_bytes(bytes: &[u8]) -> std::io::Result<Self> {
        let mut file = tempfile::tempfile()?;
        file.write_all(bytes)?;
        Ok(JsonFile {
            file,
            len: bytes.len() as u64,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A reader from the start (each call rewinds: the file is read once per destination).
    pub fn reader(&self) -> std::io::Result<std::fs::File> {
        let mut file = self.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }

    /// The whole report in memory: for tests and small reports.
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.reader()?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
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
    Ok(ReportFiles {
        json_name: format!("audit_{stamp}.json"),
        csv_name: format!("tables_summary_{stamp}.csv"),
        html_name: format!("audit_{stamp}.html"),
        json: JsonFile::write(report)?,
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
    let write = |name: &str, mut bytes: &mut dyn std::io::Read| {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(failed(&path))?;
        std::io::copy(&mut bytes, &mut file).map_err(failed(&path))?;
        Ok::<_, OutputError>(path.display().to_string())
    };
    let mut json = report.json.reader().map_err(failed(dir))?;
    Ok(ReportLocations {
        detailed_json: write(&report.json_name, &mut json)?,
        tables_csv: write(&report.csv_name, &mut report.csv.as_slice())?,
        html: write(&report.html_name, &mut report.html.as_slice())?,
    })
}

/// Uploads the files to `s3://bucket/prefix...`; an existing key is an error.
pub async fn write_s3(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    report: &ReportFiles,
) -> Result<ReportLocations, OutputError> {
    use aws_sdk_s3::primitives::ByteStream;
    let put = |name: &str, body: ByteStream, content_type: &'static str| {
        let key = format!("{prefix}{name}");
        let request = s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(content_type)
            .if_none_match("*")
            .body(body);
        async move {
            request.send().await.map_err(|e| OutputError::Upload {
                bucket: bucket.to_owned(),
                key: key.clone(),
                message: audit_core::aws::describe(&e),
            })?;
            Ok::<_, OutputError>(format!("s3://{bucket}/{key}"))
        }
    };
    // Read from the temporary file as it is sent (one PUT: a report is far below 5 GB).
    let json = report.json.reader().map_err(|source| OutputError::File {
        path: "(temporary JSON report)".to_owned(),
        source,
    })?;
    let json = ByteStream::read_from()
        .file(tokio::fs::File::from_std(json))
        .length(aws_sdk_s3::primitives::Length::Exact(report.json.len()))
        .build()
        .await
        .map_err(|e| OutputError::Upload {
            bucket: bucket.to_owned(),
            key: format!("{prefix}{}", report.json_name),
            message: e.to_string(),
        })?;
    Ok(ReportLocations {
        detailed_json: put(&report.json_name, json, "application/json").await?,
        tables_csv: put(
            &report.csv_name,
            report.csv.clone().into(),
            "text/csv; charset=utf-8",
        )
        .await?,
        html: put(
            &report.html_name,
            report.html.clone().into(),
            "text/html; charset=utf-8",
        )
        .await?,
    })
}
