//! A TEST FIXTURE for the three RDS log-file operations that moto does not implement.
//!
//! It serves `DescribeDBLogFiles`, `DownloadDBLogFilePortion` and the REST
//! `GET /v13/downloadCompleteLogFile/{instance}/{file}` from a directory per instance
//! (`<root>/<instance>/<log file name>`; a file's mtime is its `LastWritten`), and forwards
//! every other RDS action to moto, so one `AWS_ENDPOINT_URL_RDS` serves all functions.
//!
//! It reproduces the documented behaviour, quirks included (`shared/reference/rds-audit-logs.md`):
//! `LastWritten` in epoch milliseconds; `FilenameContains`, `FileLastWritten` and `FileSize`
//! filters; `Marker`/`MaxRecords` paging; Portion pages of at most 1 MB with opaque `n:offset`
//! markers, where a page that would split a line is cut at the 1 MB boundary with
//! ` [Your log message was truncated]` appended and the rest of that line skipped; marker `0`
//! starts at the beginning, no marker returns the tail. The REST download rejects requests
//! whose SigV4 signature (service `rds`) does not verify.
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

/// Switches that make the next calls fail the way RDS does.
#[derive(Debug, Default)]
pub struct Faults {
    /// The next N log-file calls answer `Throttling` (HTTP 400).
    pub throttle: AtomicU32,
    /// The next N log-file calls answer HTTP 500 `InternalFailure`.
    pub fail_500: AtomicU32,
    /// The next N downloads end early (see the module docs).
    pub end_early: AtomicU32,
    /// The REST download answers 403 (forces the Portion fallback).
    pub refuse_rest: AtomicBool,
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

struct DoubleState {
    root: PathBuf,
    moto: String,
    http: reqwest::Client,
    faults: Arc<Faults>,
    calls: Mutex<Vec<String>>,
}

/// The running double. Dropping it stops the server.
#[derive(Debug)]
pub struct RdsLogDouble {
    endpoint: String,
    root: PathBuf,
    faults: Arc<Faults>,
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

fn mtime_ms(path: &FsPath) -> i64 {
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
fn xml_escape(text: &str) -> String {
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

fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
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

fn xml_ok(action: &str, result: &str) -> Response {
    let body = format!(
        "<{action}Response xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><{action}Result>{result}</{action}Result>\
         <ResponseMetadata><RequestId>devstack</RequestId></ResponseMetadata></{action}Response>"
    );
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}

/// A fault due for this call, if any.
fn injected_fault(faults: &Faults) -> Option<Response> {
    if take(&faults.throttle) {
        return Some(xml_error(
            StatusCode::BAD_REQUEST,
            "Throttling",
            "Rate exceeded",
        ));
    }
    if take(&faults.fail_500) {
        return Some(xml_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "injected failure",
        ));
    }
    None
}

/// Files of one instance, relative names in byte order, with (size, last written).
fn list_files(dir: &FsPath) -> Vec<(String, u64, i64)> {
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
fn instance_dir(
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

fn describe_log_files(state: &DoubleState, params: &HashMap<String, String>) -> Response {
    state
        .calls
        .lock()
        .expect("calls lock")
        .push("DescribeDBLogFiles".into());
    if let Some(fault) = injected_fault(&state.faults) {
        return fault;
    }
    let dir = match instance_dir(state, params) {
        Ok((_, dir)) => dir,
        Err(response) => return response,
    };
    if params.keys().any(|k| k.starts_with("Filters.")) {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            "Filters is not supported",
        );
    }
    let contains = params.get("FilenameContains");
    let since: i64 = params
        .get("FileLastWritten")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let larger: u64 = params
        .get("FileSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let max: usize = params
        .get("MaxRecords")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let start: usize = params
        .get("Marker")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let matching: Vec<_> = list_files(&dir)
        .into_iter()
        .filter(|(name, size, written)| {
            contains.is_none_or(|c| name.contains(c.as_str()))
                && *written >= since
                && *size >= larger
        })
        .collect();
    let page: String = matching
        .iter()
        .skip(start)
        .take(max)
        .map(|(name, size, written)| {
            format!(
                "<DescribeDBLogFilesDetails><LastWritten>{written}</LastWritten><LogFileName>{}</LogFileName><Size>{size}</Size></DescribeDBLogFilesDetails>",
                xml_escape(name)
            )
        })
        .collect();
    let marker = if start + max < matching.len() {
        format!("<Marker>{}</Marker>", start + max)
    } else {
        String::new()
    };
    xml_ok(
        "DescribeDBLogFiles",
        &format!("<DescribeDBLogFiles>{page}</DescribeDBLogFiles>{marker}"),
    )
}

fn download_portion(state: &DoubleState, params: &HashMap<String, String>) -> Response {
    state
        .calls
        .lock()
        .expect("calls lock")
        .push("DownloadDBLogFilePortion".into());
    if let Some(fault) = injected_fault(&state.faults) {
        return fault;
    }
    let dir = match instance_dir(state, params) {
        Ok((_, dir)) => dir,
        Err(response) => return response,
    };
    let name = params.get("LogFileName").cloned().unwrap_or_default();
    let Ok(data) = std::fs::read(dir.join(&name)) else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "DBLogFileNotFoundFault",
            &format!("DBLogFile {name} not found"),
        );
    };
    let lines_wanted: Option<usize> = params.get("NumberOfLines").and_then(|v| v.parse().ok());
    let (page_no, offset) = match params.get("Marker").map(String::as_str) {
        // Without a marker RDS returns the tail: the last 10,000 lines.
        None => (0, tail_offset(&data, 10_000)),
        Some("0") => (0, 0),
        Some(marker) => match marker
            .split_once(':')
            .and_then(|(n, o)| Some((n.parse::<u64>().ok()?, o.parse::<usize>().ok()?)))
        {
            Some((n, o)) if o <= data.len() => (n, o),
            _ => {
                return xml_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValue",
                    "invalid marker",
                );
            }
        },
    };
    let (page, next) = portion_page(&data[offset..], lines_wanted);
    let next_offset = offset + next;
    let mut pending = next_offset < data.len();
    if pending && take(&state.faults.end_early) {
        pending = false; // the documented early end: more data, but RDS says there is none
    }
    let text = String::from_utf8_lossy(&page);
    xml_ok(
        "DownloadDBLogFilePortion",
        &format!(
            "<LogFileData>{}</LogFileData><AdditionalDataPending>{pending}</AdditionalDataPending><Marker>{}:{next_offset}</Marker>",
            xml_escape(&text),
            page_no + 1
        ),
    )
}

fn tail_offset(data: &[u8], lines: usize) -> usize {
    let mut seen = 0;
    for (i, b) in data.iter().enumerate().rev().skip(1) {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                return i + 1;
            }
        }
    }
    0
}

/// One Portion page from `rest`: whole lines up to `lines_wanted` and 1 MB. When the next line
/// does not fit, RDS does not stop before it: it fills the page to 1 MB, cuts the line, appends
/// the truncation notice, and continues after the cut line. Returns the page and how many
/// bytes of `rest` it consumed.
fn portion_page(rest: &[u8], lines_wanted: Option<usize>) -> (Vec<u8>, usize) {
    let mut end = 0;
    let mut lines = 0;
    while end < rest.len() && lines_wanted.is_none_or(|n| lines < n) {
        let line_end = rest[end..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |p| end + p + 1);
        if line_end > PORTION_PAGE_BYTES {
            if lines_wanted.is_some() && lines > 0 {
                break; // an explicit line count that fits in whole lines: a clean page
            }
            // The quirk: cut the line at the page limit and skip the rest of it.
            let mut cut = PORTION_PAGE_BYTES.min(rest.len());
            while cut > end && (rest[cut - 1] & 0xC0) == 0x80 {
                cut -= 1; // do not split a UTF-8 sequence (RDS returns text)
            }
            let mut page = rest[..cut].to_vec();
            page.extend_from_slice(TRUNCATION_NOTICE.as_bytes());
            page.push(b'\n');
            return (page, line_end);
        }
        end = line_end;
        lines += 1;
    }
    (rest[..end].to_vec(), end)
}

async fn download_complete(
    State(state): State<Arc<DoubleState>>,
    Path((instance, file)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    state
        .calls
        .lock()
        .expect("calls lock")
        .push("downloadCompleteLogFile".into());
    if state.faults.refuse_rest.load(Ordering::SeqCst) {
        return (StatusCode::FORBIDDEN, "refused by the test double").into_response();
    }
    if let Err(problem) = verify_sigv4(&method, &uri, &headers) {
        return (StatusCode::FORBIDDEN, problem).into_response();
    }
    if let Some(fault) = injected_fault(&state.faults) {
        return fault;
    }
    let path = state.root.join(&instance).join(&file);
    let Ok(mut handle) = std::fs::File::open(&path) else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "DBLogFileNotFoundFault",
            &format!("{file} not found"),
        );
    };
    let len = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let limit = if take(&state.faults.end_early) {
        len / 2
    } else {
        len
    };
    // Stream the file in 256 KiB chunks without a Content-Length, as a chunked response: an
    // early end then looks like a complete, shorter file (the failure a copier must catch).
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut sent = 0u64;
        let mut buffer = vec![0u8; 256 * 1024];
        let _ = handle.seek(SeekFrom::Start(0));
        while sent < limit {
            let want = buffer.len().min((limit - sent) as usize);
            match handle.read(&mut buffer[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    sent += n as u64;
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buffer[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Checks a header-signed SigV4 request for service `rds` by signing it again with the
/// double's secret and comparing signatures.
fn verify_sigv4(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), String> {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing Authorization: the request is not signed")?;
    let field = |name: &str| {
        authorization
            .split([' ', ','])
            .find_map(|part| part.strip_prefix(name))
            .map(str::to_owned)
    };
    let credential = field("Credential=").ok_or("no Credential in Authorization")?;
    let signed_headers = field("SignedHeaders=").ok_or("no SignedHeaders in Authorization")?;
    let signature = field("Signature=").ok_or("no Signature in Authorization")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, _date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(format!("malformed credential scope {credential}"));
    };
    if *service != "rds" || *access_key != ACCESS_KEY {
        return Err(format!(
            "credential scope {credential} is not for rds with the test key"
        ));
    }
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing x-amz-date")?;
    let time = parse_amz_date(amz_date).ok_or("bad x-amz-date")?;
    let to_sign: Vec<(&str, &str)> = signed_headers
        .split(';')
        .filter(|h| *h != "host")
        .filter_map(|h| Some((h, headers.get(h)?.to_str().ok()?)))
        .collect();
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let url = format!(
        "http://{host}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let identity = Credentials::new(
        ACCESS_KEY,
        SECRET_KEY,
        headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        None,
        "double",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        method.as_str(),
        &url,
        to_sign.into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let expected = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.split("Signature=").nth(1).map(str::to_owned))
        .unwrap_or_default();
    if expected == signature {
        Ok(())
    } else {
        Err("SignatureDoesNotMatch".into())
    }
}

/// `20261122T101500Z` as a time.
fn parse_amz_date(value: &str) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| value.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hh, mm, ss) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    // Days since the epoch for a civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_that_would_split_a_line_cuts_it_and_skips_its_rest() {
        let mut data = vec![b'a'; PORTION_PAGE_BYTES - 10];
        data.push(b'\n');
        data.extend(vec![b'b'; 100]);
        data.push(b'\n');
        let (page, used) = portion_page(&data, None);
        assert!(page.ends_with(format!("{TRUNCATION_NOTICE}\n").as_bytes()));
        assert_eq!(used, data.len(), "the cut line is skipped");
        // Asking for fewer lines gives a clean page ending at a line boundary.
        let (page, used) = portion_page(&data, Some(1));
        assert_eq!(page.len(), PORTION_PAGE_BYTES - 9);
        assert_eq!(used, PORTION_PAGE_BYTES - 9);
    }

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20240104T083010Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_704_357_010
        );
    }
}
