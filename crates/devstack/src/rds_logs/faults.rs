//! The fault switches: the next N calls throttled, failed with HTTP 500, ended early; the REST
//! endpoint refused.

use super::*;

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

pub(crate) fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A fault due for this call, if any.
pub(crate) fn injected_fault(faults: &Faults) -> Option<Response> {
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
