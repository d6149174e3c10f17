//! A per-subject token bucket: each caller may make `rate` calls a second on average, with
//! bursts up to `burst`. Beyond it, `RESOURCE_EXHAUSTED`. Idle buckets are pruned.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets idle this long are forgotten (they would be full again anyway).
const IDLE: Duration = Duration::from_secs(600);
/// The most callers tracked at once.
const MAX_KEYS: usize = 100_000;

/// Limits each subject's call rate.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_subject: HashMap<String, (f64, Instant)>,
    last_prune: Option<Instant>,
}

impl RateLimiter {
    /// `rate` calls a second per subject, bursts of `burst`; `None` when `rate` is 0 (off).
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        (rate > 0).then(|| RateLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(rate)),
            buckets: Mutex::new(Buckets::default()),
        })
    }

    /// Whether `key` has a token now, spending none (`Err`: how long until it has).
    pub fn peek(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Ok(b) = self.buckets.lock() else {
            return Ok(());
        };
        let Some((tokens, last)) = b.by_subject.get(key) else {
            return Ok(());
        };
        let tokens = (tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }

    /// Takes a token for `subject`; when it has none left, how long until it has one (what
    /// the refusal's `RetryInfo` tells the caller to wait).
    pub fn check(&self, subject: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut b) = self.buckets.lock() else {
            return Ok(());
        };
        // Pruned when due, or when callers (addresses, for the failure limit) pile up: an
        // attacker cycling through addresses must not grow the map without bound.
        if b.last_prune.is_none_or(|t| now.duration_since(t) > IDLE)
            || b.by_subject.len() >= MAX_KEYS
        {
            b.by_subject
                .retain(|_, (_, last)| now.duration_since(*last) < IDLE);
            if b.by_subject.len() >= MAX_KEYS {
                // All busy: forget everyone (a bucket starts full, so this errs generous).
                b.by_subject.clear();
            }
            b.last_prune = Some(now);
        }
        // Look up before inserting: a known caller costs no allocation.
        if !b.by_subject.contains_key(subject) {
            b.by_subject.insert(subject.to_owned(), (self.burst, now));
        }
        let Some((tokens, last)) = b.by_subject.get_mut(subject) else {
            return Ok(());
        };
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_gets_its_burst_then_its_rate() {
        let limiter = RateLimiter::new(10, 20).unwrap();
        let t0 = Instant::now();
        assert_eq!(
            (0..25).filter(|_| limiter.check("a", t0).is_ok()).count(),
            20
        );
        // Another subject has its own bucket.
        assert_eq!(limiter.check("b", t0), Ok(()));
        // Out of tokens: the next one is a tenth of a second away, less what has refilled.
        let later = t0 + Duration::from_millis(40);
        let wait = limiter.check("a", later).unwrap_err();
        assert!(
            wait.abs_diff(Duration::from_millis(60)) < Duration::from_millis(1),
            "{wait:?}"
        );
        // A tenth of a second refills one call.
        assert_eq!(limiter.check("a", t0 + Duration::from_millis(100)), Ok(()));
        assert!(limiter.check("a", t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn peeking_spends_nothing() {
        let limiter = RateLimiter::new(1, 2).unwrap();
        let t0 = Instant::now();
        assert_eq!(
            limiter.peek("a", t0),
            Ok(()),
            "an unknown key has its burst"
        );
        assert_eq!(limiter.check("a", t0), Ok(()));
        assert_eq!(limiter.check("a", t0), Ok(()));
        for _ in 0..3 {
            assert!(limiter.peek("a", t0).is_err());
        }
        assert_eq!(limiter.peek("a", t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn a_zero_rate_is_no_limit() {
        assert!(RateLimiter::new(0, 10).is_none());
    }
}
