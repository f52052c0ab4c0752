//! [`ApiError`]: every answer other than success, in the original FastAPI service's shapes
//! (`{"detail": "..."}`, 422 with a list of located field errors). A failure of ours carries
//! its cause on the response as a [`FailureCause`] for the logging layer; the client sees
//! only the status and a generic detail.

use crate::db::DbError;
use crate::event::FieldError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// An answer other than success, in FastAPI's shapes.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized(&'static str),
    Forbidden(String),
    NotFound(String),
    Validation(Vec<FieldError>),
    TooLarge(usize),
    /// The body did not arrive within `BODY_TIMEOUT_MS`.
    BodyTimeout(Duration),
    /// The client broke off while sending the body.
    BodyUnreadable,
    /// Too much of one kind of work is running: 429 with `Retry-After`.
    Busy(String),
    /// The database is unreachable (the cause goes to the log, not the client).
    Unavailable(String),
    /// A fault of ours (the cause goes to the log, not the client).
    Internal(String),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(why) => ApiError::Unavailable(why),
            DbError::NoPartition => ApiError::Validation(vec![FieldError::new(
                vec![json!("body"), json!("event_timestamp")],
                "value_error",
                "No stored month holds this timestamp: events are kept for RETENTION_MONTHS \
                 and accepted up to the months prepared ahead",
            )]),
            DbError::Query(e) => ApiError::Internal(format!(
                "database: {}",
                e.as_db_error().map_or_else(
                    || e.to_string(),
                    |d| format!("{} ({})", d.message(), d.code().code())
                )
            )),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut cause = None;
        let (status, body) = match self {
            ApiError::Unauthorized(detail) => {
                (StatusCode::UNAUTHORIZED, json!({ "detail": detail }))
            }
            ApiError::Forbidden(detail) => (StatusCode::FORBIDDEN, json!({ "detail": detail })),
            ApiError::NotFound(detail) => (StatusCode::NOT_FOUND, json!({ "detail": detail })),
            ApiError::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "detail": errors }),
            ),
            ApiError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "detail": format!("Request body too large: the limit is {limit} bytes") }),
            ),
            ApiError::BodyTimeout(limit) => (
                StatusCode::REQUEST_TIMEOUT,
                json!({ "detail": format!("Request body not received within {} ms", limit.as_millis()) }),
            ),
            ApiError::BodyUnreadable => (
                StatusCode::BAD_REQUEST,
                json!({ "detail": "The request body could not be read" }),
            ),
            ApiError::Busy(detail) => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({ "detail": detail })),
                )
                    .into_response();
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    "5".parse().expect("a number"),
                );
                return response;
            }
            ApiError::Unavailable(why) => {
                cause = Some(FailureCause::Unavailable(why));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "detail": "Database unavailable, try again later" }),
                )
            }
            ApiError::Internal(why) => {
                cause = Some(FailureCause::Internal(why));
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "detail": "Internal server error" }),
                )
            }
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(cause) = cause {
            response.extensions_mut().insert(cause);
        }
        response
    }
}

/// Why a request failed on our side, carried on the response for the logging layer
/// ([`crate::http`]'s `log_failures`): logged once, there, and never sent to the client.
#[derive(Debug, Clone)]
pub enum FailureCause {
    Unavailable(String),
    Internal(String),
}
