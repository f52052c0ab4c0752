//! Exponential backoff with full jitter, for the retries the SDK cannot do for us: resending
//! only the failed entries of a batch call (`SendMessageBatch`, `PutRecordBatch`), whose
//! partial failures come back inside a successful response.

use std::time::Duration;

/// Delays for attempt 1, 2, ...: a random duration up to `base * 2^(attempt-1)`, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Total attempts including the first; the first attempt has no delay.
    pub max_attempts: u32,
}

impl Backoff {
    pub const fn new(base: Duration, cap: Duration, max_attempts: u32) -> Self {
        Backoff {
            base,
            cap,
            max_attempts,
        }
    }

    /// The largest delay before `attempt` (1-based; attempt 1 is immediate).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(attempt - 2).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before `attempt`: uniformly random in `[0, ceiling]` ("full jitter"), so
    /// many functions throttled at once do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if ceiling.is_zero() {
            return ceiling;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_from_the_second_attempt_and_is_capped() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 6);
        let ceilings: Vec<_> = (1..=6).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [0, 100, 200, 400, 800, 1000]);
        assert_eq!(b.ceiling(60), Duration::from_secs(1));
    }

    #[test]
    fn delays_stay_within_their_ceiling() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_secs(2), 8);
        for attempt in 1..=8 {
            for _ in 0..200 {
                assert!(b.delay(attempt) <= b.ceiling(attempt));
            }
        }
        assert_eq!(b.delay(1), Duration::ZERO);
    }
}
