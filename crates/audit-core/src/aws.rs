//! AWS SDK setup and error classification shared by every function.
//!
//! The SDK configuration is loaded once per cold start with the latest behavior version.
//! Endpoint overrides come only from the SDK's own `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` variables (the SDK reads them itself); the one thing the SDK
//! cannot infer is that an S3 emulator needs path-style addressing, which
//! [`s3_needs_path_style`] decides.

use crate::config::Env;
use aws_config::BehaviorVersion;
/// The SDK configuration every client is built from (re-exported so a function crate needs no
/// `aws-config` dependency of its own).
pub use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The shared SDK configuration: region, credentials and endpoint overrides from the
/// standard environment variables and the Lambda execution role.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// How long one attempt of an operator's call may wait for its response before the SDK gives
/// up on it and retries (a stalled connection is a transient error to the standard retry
/// strategy). A streamed body is read after the attempt, so large downloads are not cut.
pub const OPERATOR_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// [`sdk_config`] for a command an operator runs: the same sources, and attempts bounded by
/// [`OPERATOR_ATTEMPT_TIMEOUT`] so that a stalled endpoint is retried, then reported, instead
/// of holding the terminal (or a cron job) forever. Functions keep Lambda's own time limit.
pub async fn operator_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(OPERATOR_ATTEMPT_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// The region the SDK resolved, or the configuration error naming `AWS_REGION`.
pub fn region(sdk: &SdkConfig) -> Result<String, crate::ConfigError> {
    sdk.region()
        .map(|r| r.to_string())
        .ok_or_else(|| crate::ConfigError::Missing {
            variable: "AWS_REGION".into(),
            expected: "the AWS region (Lambda sets it)".into(),
        })
}

/// An S3 client, path-style when an endpoint override applies to S3.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(s3_needs_path_style(&Env::from_process()))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Whether the S3 client must use path-style addressing: true when an endpoint override
/// applies to S3 (virtual-hosted buckets do not resolve on an emulator's `127.0.0.1:port`).
pub fn s3_needs_path_style(env: &Env) -> bool {
    let ignored = env
        .get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    !ignored && (env.get("AWS_ENDPOINT_URL_S3").is_some() || env.get("AWS_ENDPOINT_URL").is_some())
}

/// Whether a failed SDK call may succeed if tried again: throttling, transient error codes,
/// 5xx responses, timeouts and connection failures. The SDK has already retried these a few
/// times by the time we see them; a retryable error here means "let the event source redeliver".
pub fn is_retryable<E: ProvideErrorMetadata>(error: &SdkError<E, Response>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => {
            is_throttling(error)
                || error.code().is_some_and(|code| {
                    aws_runtime::retries::classifiers::TRANSIENT_ERRORS.contains(&code)
                })
                || error
                    .raw_response()
                    .is_some_and(|raw| raw.status().is_server_error())
        }
        _ => false,
    }
}

/// Whether a failed SDK call was throttled (by error code or HTTP 429).
pub fn is_throttling<E: ProvideErrorMetadata>(error: &SdkError<E, Response>) -> bool {
    error
        .code()
        .is_some_and(|code| aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&code))
        || error
            .raw_response()
            .is_some_and(|raw| raw.status().as_u16() == 429)
}

/// A one-line description of a failed SDK call: the service's code and message when it
/// answered, otherwise the transport failure with its causes. `SdkError`'s own `Display`
/// says only "service error", which tells an operator nothing.
pub fn describe<E>(error: &SdkError<E, Response>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(error).to_string(),
    }
}

/// An S3 key prefix as configured (`/reports`, `reports//`, ` reports `) in one form:
/// `reports/`, or empty for the bucket's root.
pub fn s3_key_prefix(prefix: &str) -> String {
    let prefix = prefix.trim().trim_matches('/');
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

/// Whether a Lambda event came from EventBridge (a schedule) rather than a direct invocation
/// or an HTTP request.
pub fn is_eventbridge_event(event: &serde_json::Value) -> bool {
    event.get("source").and_then(serde_json::Value::as_str) == Some("aws.events")
        || event.get("detail-type").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_follows_the_sdk_endpoint_variables() {
        let env = |pairs: &[(&str, &str)]| Env::from_pairs(pairs.iter().copied());
        assert!(!s3_needs_path_style(&env(&[])));
        assert!(s3_needs_path_style(&env(&[(
            "AWS_ENDPOINT_URL",
            "http://127.0.0.1:5000"
        )])));
        assert!(s3_needs_path_style(&env(&[(
            "AWS_ENDPOINT_URL_S3",
            "http://127.0.0.1:5000"
        )])));
        assert!(!s3_needs_path_style(&env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ])));
    }

    #[test]
    fn key_prefixes_have_one_form() {
        for (given, expected) in [
            ("/database_audits", "database_audits/"),
            ("database_audits//", "database_audits/"),
            (" a/b ", "a/b/"),
            ("", ""),
            ("/", ""),
        ] {
            assert_eq!(s3_key_prefix(given), expected, "{given:?}");
        }
    }

    #[test]
    fn url_encoded_listed_keys_decode_to_the_key() {
        assert_eq!(
            decode_listed_key("a/b+c%2Bd%0A%25.gz").as_deref(),
            Some("a/b c+d\n%.gz")
        );
        assert_eq!(decode_listed_key("%FF"), None, "not UTF-8");
    }

    #[test]
    fn eventbridge_events_are_told_from_invocations() {
        assert!(is_eventbridge_event(&serde_json::json!({
            "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}
        })));
        assert!(!is_eventbridge_event(&serde_json::json!({"bucket": "b"})));
        assert!(!is_eventbridge_event(
            &serde_json::json!({"requestContext": {}})
        ));
    }
}

/// One object version as `ListObjectVersions` lists it (`version_id` `None` in a bucket that
/// never had versioning: S3 calls that version `null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    pub version_id: Option<String>,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// A key as a listing with `encoding-type=url` spells it (`+` for a space, `%XX` for other
/// bytes), decoded; `None` when the decoded bytes are not UTF-8 (no S3 key is).
pub fn decode_listed_key(encoded: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&encoded.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// Every object version under `prefix`, following every page. Delete markers are not listed:
/// the versions they hide are still stored (and still evidence). digest-writer digests these;
/// `auditkit validate` looks for the ones no digest names. Keys are listed with
/// `encoding-type=url` (XML 1.0 cannot carry most control characters, so a key holding one
/// would break the whole listing) and decoded when the answer says it is encoded.
pub async fn list_object_versions(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<
    Vec<ObjectVersion>,
    SdkError<aws_sdk_s3::operation::list_object_versions::ListObjectVersionsError, Response>,
> {
    let mut listed = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .send()
            .await?;
        let encoded = page.encoding_type() == Some(&aws_sdk_s3::types::EncodingType::Url);
        let decode = |text: &str| {
            if encoded {
                decode_listed_key(text)
            } else {
                Some(text.to_owned())
            }
        };
        for v in page.versions() {
            let Some(key) = v.key().and_then(decode) else {
                continue;
            };
            listed.push(ObjectVersion {
                key,
                version_id: v.version_id().filter(|id| *id != "null").map(str::to_owned),
                size: v.size().unwrap_or(0).max(0) as u64,
                last_modified_ms: v
                    .last_modified()
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or(0),
            });
        }
        // A truncated page always names where the next one starts; stop rather than loop.
        if page.is_truncated() != Some(true) || page.next_key_marker().is_none() {
            return Ok(listed);
        }
        key_marker = page.next_key_marker().and_then(decode);
        version_marker = page.next_version_id_marker().map(str::to_owned);
    }
}
