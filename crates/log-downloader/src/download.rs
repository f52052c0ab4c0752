//! The RDS side of a copy: the REST `downloadCompleteLogFile` stream, and the
//! `DownloadDBLogFilePortion` fallback with its repairs.

use crate::sink::ByteSink;
use crate::{Config, CopyError, CopyOrder, download_url};
use audit_core::ConfigError;
use audit_core::aws::{describe, is_retryable};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use futures_util::StreamExt;
use std::time::SystemTime;

/// What RDS appends to a line it cut at a page boundary.
pub const TRUNCATION_NOTICE: &str = " [Your log message was truncated]";

/// How many times one Portion download continues after an early `AdditionalDataPending=false`.
const EARLY_END_RESUMES: u32 = 5;

/// Everything needed to call the REST endpoint.
#[derive(Debug, Clone)]
pub struct RestDownloader {
    pub http: reqwest::Client,
    pub credentials: SharedCredentialsProvider,
    pub region: String,
    pub base_url: String,
}

impl RestDownloader {
    /// The client for `sdk`'s credentials and region: the endpoint `RDS_REST_ENDPOINT` names,
    /// or the region's RDS endpoint. No overall timeout (a large file takes as long as it
    /// takes), but a stalled connection fails the attempt rather than hanging until the
    /// function times out.
    pub fn new(sdk: &audit_core::aws::SdkConfig, config: &Config) -> Result<Self, ConfigError> {
        let region = audit_core::aws::region(sdk)?;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| {
                ConfigError::invalid("HTTPS client", &e.to_string(), "a usable TLS setup")
            })?;
        let credentials = sdk.credentials_provider().ok_or_else(|| {
            ConfigError::invalid("AWS credentials", "none", "a credentials provider")
        })?;
        Ok(RestDownloader {
            http,
            credentials,
            base_url: config
                .rds_rest_endpoint
                .clone()
                .unwrap_or_else(|| format!("https://rds.{region}.amazonaws.com")),
            region,
        })
    }
}

/// How a REST download ended.
#[derive(Debug)]
pub enum RestOutcome {
    Copied,
    /// The endpoint refused the request (403/400): use the Portion API.
    Refused(String),
}

impl RestDownloader {
    /// Streams the file into `sink`, signing with the function's own credentials (the session
    /// token of a Lambda role is part of the signature).
    pub async fn download(
        &self,
        order: &CopyOrder,
        sink: &mut impl ByteSink,
    ) -> Result<RestOutcome, CopyError> {
        let url = download_url(&self.base_url, &order.instance_id, &order.log_file);
        let failed = |message: String, retryable: bool| CopyError::Download {
            file: order.log_file.clone(),
            message,
            retryable,
        };
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| failed(format!("no credentials to sign with: {e}"), true))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("rds")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(e.to_string(), false))?
            .into();
        let signable =
            SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
                .map_err(|e| failed(e.to_string(), false))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(e.to_string(), false))?
            .into_parts();
        let mut request = self.http.get(&url);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| failed(format!("request failed: {e}"), true))?;
        let status = response.status();
        if status == reqwest::StatusCode::FORBIDDEN || status == reqwest::StatusCode::BAD_REQUEST {
            let body = response.text().await.unwrap_or_default();
            let detail = format!(
                "HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            );
            // Throttling also comes back as 400; it is a reason to wait, not to fall back.
            if body.contains("Throttl") {
                return Err(failed(detail, true));
            }
            return Ok(RestOutcome::Refused(detail));
        }
        if !status.is_success() {
            let retryable =
                status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
            return Err(failed(format!("HTTP {status}"), retryable));
        }
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| failed(format!("body interrupted: {e}"), true))?;
            sink.write(&chunk).await?;
        }
        Ok(RestOutcome::Copied)
    }
}

/// The smallest page RDS cuts a line in: it fills a page to its 1 MB limit before cutting
/// (a few bytes under it when the cut falls inside a multi-byte character, or when bytes
/// that are not UTF-8 came back shorter).
pub const TRUNCATED_PAGE_MIN_BYTES: usize = 1_000_000;

/// Whether RDS cut a line at the end of this Portion page: it ends in the truncation notice
/// *and* it is a full page. The notice alone proves nothing: a database user can log a
/// statement that ends in that text, and taking every such line for a cut one would shrink
/// the page to that line and then give up on the file (never backed up). The marker's
/// progress is no proof either: pages of text whose bytes RDS could not return exactly
/// (U+FFFD, `?`) do not measure the bytes they consumed.
pub fn is_truncated(page: &str) -> bool {
    page.trim_end_matches('\n')
        .strip_suffix(TRUNCATION_NOTICE)
        .is_some_and(|kept| kept.len() >= TRUNCATED_PAGE_MIN_BYTES)
}

/// The `NumberOfLines` to ask for instead of a truncated page: one line fewer than it held,
/// so the page ends at a line boundary. `None` when the cut line was the only one (a line
/// over 1 MB, which this API can never return whole).
pub fn fewer_lines(truncated_page: &str) -> Option<i32> {
    let lines = truncated_page.trim_end_matches('\n').matches('\n').count() + 1;
    (lines > 1).then(|| i32::try_from(lines - 1).unwrap_or(i32::MAX))
}

/// Copies through `DownloadDBLogFilePortion` from marker `0`, repairing truncated pages and
/// resuming after an early end until at least `order.size` bytes arrived.
///
/// A page holding U+FFFD means RDS replaced bytes that are not UTF-8: unless `accept_lossy`,
/// that is [`CopyError::Lossy`] at once (an exact copy is impossible this way).
pub async fn download_portions(
    rds: &aws_sdk_rds::Client,
    order: &CopyOrder,
    sink: &mut impl ByteSink,
    accept_lossy: bool,
) -> Result<(), CopyError> {
    let expected = u64::try_from(order.size).unwrap_or(0);
    let mut marker = "0".to_owned();
    let mut lines: Option<i32> = None;
    let mut resumes = 0;
    loop {
        let page = rds
            .download_db_log_file_portion()
            .db_instance_identifier(&order.instance_id)
            .log_file_name(&order.log_file)
            .marker(&marker)
            .set_number_of_lines(lines)
            .send()
            .await
            .map_err(|e| CopyError::Download {
                file: order.log_file.clone(),
                message: format!("DownloadDBLogFilePortion: {}", describe(&e)),
                retryable: is_retryable(&e),
            })?;
        let data = page.log_file_data().unwrap_or_default();
        if is_truncated(data) {
            lines = Some(fewer_lines(data).ok_or_else(|| CopyError::LineTooLong {
                file: order.log_file.clone(),
            })?);
            tracing::debug!(file = %order.log_file, %marker, lines, "truncated page; asking for fewer lines");
            continue; // same marker, fewer lines
        }
        if !accept_lossy && data.contains(char::REPLACEMENT_CHARACTER) {
            return Err(CopyError::Lossy {
                file: order.log_file.clone(),
            });
        }
        sink.write(data.as_bytes()).await?;
        lines = None;
        if let Some(next) = page.marker() {
            marker = next.to_owned();
        }
        if page.additional_data_pending().unwrap_or(false) {
            continue;
        }
        if sink.bytes() >= expected {
            return Ok(());
        }
        // RDS said "no more" too early (a documented failure): continue from its marker.
        resumes += 1;
        if resumes > EARLY_END_RESUMES {
            return Err(CopyError::Short {
                file: order.log_file.clone(),
                got: sink.bytes(),
                expected,
            });
        }
        tracing::warn!(file = %order.log_file, got = sink.bytes(), expected, %marker,
            "AdditionalDataPending=false before the ordered size; resuming");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_pages_are_recognised_and_shortened_by_one_line() {
        let full = "x".repeat(TRUNCATED_PAGE_MIN_BYTES);
        let page = format!("a,1\nb,2\n{full}{TRUNCATION_NOTICE}\n");
        assert!(is_truncated(&page));
        assert_eq!(fewer_lines(&page), Some(2));
        let lone = format!("{full}{TRUNCATION_NOTICE}");
        assert!(is_truncated(&lone));
        assert_eq!(fewer_lines(&lone), None);
        assert!(!is_truncated("a,1\nb,2\n"));
    }

    #[test]
    fn a_logged_statement_that_ends_in_the_notice_is_not_a_cut_line() {
        // A short page whose last line a database user wrote to end in RDS's notice.
        let page = format!("a,1\nSELECT 'x{TRUNCATION_NOTICE}\n");
        assert!(!is_truncated(&page));
    }
}
