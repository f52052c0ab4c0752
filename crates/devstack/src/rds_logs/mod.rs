//! A TEST FIXTURE for the three RDS log-file operations that moto does not implement.
//!
//! It serves `DescribeDBLogFiles`, `DownloadDBLogFilePortion` and the REST
//! `GET /v13/downloadCompleteLogFile/{instance}/{file}` from a directory per instance
//! (`<root>/<instance>/<log file name>`; a file's mtime is its `LastWritten`), and forwards
//! every other RDS action to moto, so one `AWS_ENDPOINT_URL_RDS` serves all functions.
//!
//! It reproduces the behaviour the RDS API reference documents for these operations, quirks
//! included:
//! `LastWritten` in epoch milliseconds; `FilenameContains`, `FileLastWritten` and `FileSize`
//! filters; `Marker`/`MaxRecords` paging; Portion pages of at most 1 MB with opaque `n:offset`
//! markers, where a page that would split a line is cut at the 1 MB boundary with
//! ` [Your log message was truncated]` appended and the rest of that line skipped; marker `0`
//! starts at the beginning, no marker returns the tail. The REST download rejects requests
//! whose SigV4 signature (service `rds`) does not verify.
//!
//! Layout: [`describe`] (`DescribeDBLogFiles`), [`portion`] (`DownloadDBLogFilePortion`'s
//! paging), [`rest`] (the signed REST download), [`faults`] (the switches); this module holds
//! the server, its routing and the forwarding to moto.
//!
//! Fault switches ([`RdsLogDouble::faults`]): throttle the next N log calls, answer the next N
//! with HTTP 500, end the next N downloads early (REST: the body stops half way; Portion:
//! `AdditionalDataPending=false` after the first page), refuse the REST endpoint.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest `LogFileData` of one Portion page.
pub const PORTION_PAGE_BYTES: usize = 1_048_576;
/// What RDS appends to a line it cut.
pub const TRUNCATION_NOTICE: &str = " [Your log message was truncated]";
/// Credentials the double accepts (those `AwsEnv::vars` hands out).
const ACCESS_KEY: &str = "testing";
const SECRET_KEY: &str = "testing";

mod describe;
mod faults;
mod portion;
mod rest;

use describe::describe_log_files;
pub use faults::Faults;
use faults::{injected_fault, take};
use portion::download_portion;
use rest::download_complete;

pub(crate) struct DoubleState {
    pub(crate) root: PathBuf,
    pub(crate) moto: String,
    pub(crate) http: reqwest::Client,
    pub(crate) faults: Arc<Faults>,
    pub(crate) calls: Mutex<Vec<String>>,
}

/// The running double. Dropping it stops the server.
#[derive(Debug)]
pub struct RdsLogDouble {
    endpoint: String,
    pub(crate) root: PathBuf,
    pub(crate) faults: Arc<Faults>,
    state: Arc<DoubleState>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for DoubleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoubleState")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Drop for RdsLogDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RdsLogDouble {
    /// Serves log files under `root` and forwards other actions to `moto_endpoint`.
    pub async fn start(root: impl Into<PathBuf>, moto_endpoint: &str) -> Result<Self, String> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        let faults = Arc::new(Faults::default());
        let state = Arc::new(DoubleState {
            root: root.clone(),
            moto: moto_endpoint.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            faults: faults.clone(),
            calls: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route(
                "/v13/downloadCompleteLogFile/{instance}/{*file}",
                get(download_complete),
            )
            .fallback(any(query_api))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let endpoint = format!(
            "http://{}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RdsLogDouble {
            endpoint,
            root,
            faults,
            state,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL_RDS`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The directory holding `<instance>/<log file>`.
    pub fn instance_dir(&self, instance: &str) -> PathBuf {
        self.root.join(instance)
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The log-file operations served so far, in order (`DescribeDBLogFiles`,
    /// `DownloadDBLogFilePortion`, `downloadCompleteLogFile`).
    pub fn calls(&self) -> Vec<String> {
        self.state.calls.lock().expect("calls lock").clone()
    }
}

pub(crate) fn mtime_ms(path: &FsPath) -> i64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// Text as XML character data. Control characters other than tab and newline (a terminal's
/// ESC in a logged statement, a CR) are numeric character references: raw, they make a
/// document no XML parser accepts (the SDK refused it). The AWS documentation does not say how
/// the real service encodes them; references are the only form an XML client can read at all.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push_str(&format!("&#{};", u32::from(c))),
            _ => out.push(c),
        }
    }
    out
}

pub(crate) fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error><Type>{}</Type>\
         <Code>{code}</Code><Message>{}</Message></Error><RequestId>devstack</RequestId></ErrorResponse>",
        if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        },
        xml_escape(message)
    );
    (status, [("content-type", "text/xml")], body).into_response()
}

pub(crate) fn xml_ok(action: &str, result: &str) -> Response {
    let body = format!(
        "<{action}Response xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><{action}Result>{result}</{action}Result>\
         <ResponseMetadata><RequestId>devstack</RequestId></ResponseMetadata></{action}Response>"
    );
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}

/// Files of one instance, relative names in byte order, with (size, last written).
pub(crate) fn list_files(dir: &FsPath) -> Vec<(String, u64, i64)> {
    fn walk(base: &FsPath, dir: &FsPath, out: &mut Vec<(String, u64, i64)>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if let Ok(meta) = entry.metadata() {
                let name = path
                    .strip_prefix(base)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((name, meta.len(), mtime_ms(&path)));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

async fn query_api(
    State(state): State<Arc<DoubleState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    match params.get("Action").map(String::as_str) {
        Some("DescribeDBLogFiles") => describe_log_files(&state, &params),
        Some("DownloadDBLogFilePortion") => download_portion(&state, &params),
        _ => forward(&state, method, uri, headers, body).await,
    }
}

#[allow(clippy::result_large_err)] // the error is the HTTP response to send, built once
pub(crate) fn instance_dir(
    state: &DoubleState,
    params: &HashMap<String, String>,
) -> Result<(String, PathBuf), Response> {
    let instance = params
        .get("DBInstanceIdentifier")
        .cloned()
        .unwrap_or_default();
    let dir = state.root.join(&instance);
    if instance.is_empty() || !dir.is_dir() {
        return Err(xml_error(
            StatusCode::NOT_FOUND,
            "DBInstanceNotFound",
            &format!("DBInstance {instance} not found."),
        ));
    }
    Ok((instance, dir))
}

async fn forward(
    state: &DoubleState,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!(
        "{}{}",
        state.moto,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut request = state.http.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .cloned()
                .unwrap_or_else(|| axum::http::HeaderValue::from_static("text/xml"));
            let bytes = response.bytes().await.unwrap_or_default();
            (status, [("content-type", content_type)], bytes).into_response()
        }
        Err(e) => xml_error(
            StatusCode::BAD_GATEWAY,
            "InternalFailure",
            &format!("moto unreachable: {e}"),
        ),
    }
}
