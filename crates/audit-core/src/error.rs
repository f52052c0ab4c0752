//! Error conventions shared by every function.
//!
//! Each crate keeps its own `thiserror` enum with the variants its domain needs, and implements
//! [`Classify`] for it: a stable code and whether trying again could succeed. A handler returns
//! [`FunctionError`]; the `?` operator converts any classified error into it, and the Lambda
//! runtime turns it into the error response, whose `errorType` reads `Retryable.<Code>` or
//! `Permanent.<Code>`. Operators (and alarms, and destinations) can then tell a throttled
//! dependency from a bad event without reading the message.

use lambda_runtime::Diagnostic;
use std::fmt;

/// What an error means for the caller: its code and whether a retry may succeed.
pub trait Classify: fmt::Display {
    /// A short PascalCase code, stable across releases (it appears in `errorType`).
    fn code(&self) -> &'static str;
    /// True when the same request may succeed later (throttling, timeouts, 5xx).
    fn retryable(&self) -> bool;
}

/// The error a handler returns to the Lambda runtime. The runtime logs it with `Debug`,
/// which prints the same line as `Display` (`Retryable.Code: message`), so handlers do not
/// log it again.
#[derive(Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub code: &'static str,
    pub retryable: bool,
    pub message: String,
}

impl FunctionError {
    /// The `errorType` Lambda reports: `Retryable.<Code>` or `Permanent.<Code>`.
    pub fn error_type(&self) -> String {
        let class = if self.retryable {
            "Retryable"
        } else {
            "Permanent"
        };
        format!("{class}.{}", self.code)
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type(), self.message)
    }
}

impl fmt::Debug for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for FunctionError {}

impl<E: Classify> From<E> for FunctionError {
    fn from(error: E) -> Self {
        FunctionError {
            code: error.code(),
            retryable: error.retryable(),
            message: error.to_string(),
        }
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(error: FunctionError) -> Self {
        Diagnostic {
            error_type: error.error_type(),
            error_message: error.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum SampleError {
        #[error("queue throttled")]
        Throttled,
        #[error("instances[0]: not a DB instance identifier")]
        BadInput,
    }

    impl Classify for SampleError {
        fn code(&self) -> &'static str {
            match self {
                SampleError::Throttled => "QueueThrottled",
                SampleError::BadInput => "InvalidEvent",
            }
        }
        fn retryable(&self) -> bool {
            matches!(self, SampleError::Throttled)
        }
    }

    fn fail(e: SampleError) -> Result<(), FunctionError> {
        Err(e)?
    }

    #[test]
    fn error_type_says_whether_a_retry_can_help() {
        let d: Diagnostic = fail(SampleError::Throttled).unwrap_err().into();
        assert_eq!(d.error_type, "Retryable.QueueThrottled");
        assert_eq!(d.error_message, "queue throttled");

        let d: Diagnostic = fail(SampleError::BadInput).unwrap_err().into();
        assert_eq!(d.error_type, "Permanent.InvalidEvent");
        assert_eq!(
            d.error_message,
            "instances[0]: not a DB instance identifier"
        );
    }
}
