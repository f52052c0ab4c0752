//! The front ends: one function behind a direct invocation, API Gateway REST (payload 1.0), an
//! HTTP API (2.0) and a function URL (2.0).
//!
//! The event is read raw, so a number in a directly invoked request keeps its digits. An event
//! with `httpMethod` and `requestContext` is 1.0; one whose `requestContext` has `http` is 2.0.
//! Anything else is a direct invocation, whose payload is the request itself.

use crate::UpdateError;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// How the request arrived, which decides the response's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontEnd {
    Direct,
    /// API Gateway REST, payload 1.0.
    RestApi,
    /// HTTP API or function URL, payload 2.0.
    HttpApi,
}

/// The request as the handler needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub front_end: FrontEnd,
    /// The update request's JSON text.
    pub body: String,
    pub idempotency_key: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpEnvelope {
    http_method: Option<String>,
    request_context: Option<Box<RawValue>>,
    #[serde(default)]
    headers: Option<HashMap<String, Option<String>>>,
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

#[derive(Debug, Deserialize)]
struct RequestContext {
    http: Option<Box<RawValue>>,
}

/// Reads the event. HTTP envelopes give their body and headers; a direct invocation is its own
/// body.
pub fn read(event: &RawValue) -> Result<Incoming, (FrontEnd, UpdateError)> {
    let envelope: Option<HttpEnvelope> = serde_json::from_str(event.get()).ok();
    let front_end = match &envelope {
        Some(e) if e.request_context.is_some() => {
            let context: Option<RequestContext> = e
                .request_context
                .as_ref()
                .and_then(|c| serde_json::from_str(c.get()).ok());
            if context.is_some_and(|c| c.http.is_some()) {
                FrontEnd::HttpApi
            } else if e.http_method.is_some() {
                FrontEnd::RestApi
            } else {
                FrontEnd::Direct
            }
        }
        _ => FrontEnd::Direct,
    };
    let Some(envelope) = envelope.filter(|_| front_end != FrontEnd::Direct) else {
        return Ok(Incoming {
            front_end,
            body: event.get().to_owned(),
            idempotency_key: None,
            user_agent: None,
        });
    };
    let header = |name: &str| {
        envelope.headers.as_ref().and_then(|headers| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.clone())
        })
    };
    let body = envelope.body.clone().unwrap_or_default();
    let body = if envelope.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                (
                    front_end,
                    UpdateError::invalid_input("the body is not base64-encoded UTF-8", "body"),
                )
            })?
    } else {
        body
    };
    Ok(Incoming {
        front_end,
        body,
        idempotency_key: header("idempotency-key"),
        user_agent: header("user-agent"),
    })
}

/// The response for the front end: the original updater's body itself for a direct invocation; for HTTP,
/// the status and the body as a JSON string.
pub fn respond(front_end: FrontEnd, status: u16, body: &Value) -> Value {
    match front_end {
        FrontEnd::Direct => body.clone(),
        FrontEnd::RestApi | FrontEnd::HttpApi => serde_json::json!({
            "statusCode": status,
            "headers": {"content-type": "application/json"},
            "body": body.to_string(),
            "isBase64Encoded": false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> Box<RawValue> {
        serde_json::from_str(&v.to_string()).unwrap()
    }

    #[test]
    fn each_front_end_is_recognised_and_read() {
        let direct = read(&raw(serde_json::json!({"id": "u", "attributes": {"a": 1}}))).unwrap();
        assert_eq!(direct.front_end, FrontEnd::Direct);
        assert!(direct.body.contains("\"attributes\""));

        let rest = read(&raw(serde_json::json!({
            "httpMethod": "POST", "path": "/update", "requestContext": {"stage": "prod"},
            "headers": {"Idempotency-Key": "k-1", "User-Agent": "curl/8"},
            "body": "{\"id\":\"u\"}", "isBase64Encoded": false
        })))
        .unwrap();
        assert_eq!(rest.front_end, FrontEnd::RestApi);
        assert_eq!(rest.body, "{\"id\":\"u\"}");
        assert_eq!(rest.idempotency_key.as_deref(), Some("k-1"));
        assert_eq!(rest.user_agent.as_deref(), Some("curl/8"));

        let url = read(&raw(serde_json::json!({
            "version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "POST"}},
            "headers": {"idempotency-key": "k-2"},
            "body": "eyJpZCI6InUifQ==", "isBase64Encoded": true
        })))
        .unwrap();
        assert_eq!(url.front_end, FrontEnd::HttpApi);
        assert_eq!(url.body, "{\"id\":\"u\"}");
        assert_eq!(url.idempotency_key.as_deref(), Some("k-2"));

        let (front_end, error) = read(&raw(serde_json::json!({
            "requestContext": {"http": {}}, "body": "%%%", "isBase64Encoded": true
        })))
        .unwrap_err();
        assert_eq!((front_end, error.status()), (FrontEnd::HttpApi, 400));
    }

    #[test]
    fn http_responses_carry_the_status_and_a_string_body() {
        let body = serde_json::json!({"success": false, "error": "RecordNotFoundError"});
        let response = respond(FrontEnd::RestApi, 404, &body);
        assert_eq!(response["statusCode"], 404);
        assert_eq!(response["isBase64Encoded"], false);
        assert_eq!(response["headers"]["content-type"], "application/json");
        let inner: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(inner, body);
        assert_eq!(respond(FrontEnd::Direct, 404, &body), body);
    }
}
