//! Tokens already verified, remembered until they expire. One caller sends the same token
//! thousands of times (a dashboard's bearer token at the gateway; the gateway's signed
//! access context at a service), and its signature needs checking once: checking an HS256
//! JWT was a quarter of a service's CPU per call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// What tokens were verified as, each with its expiry (Unix seconds). Bounded: when full it
/// starts again empty, which costs only signature checks.
pub struct Verified<T> {
    entries: Mutex<HashMap<String, (T, u64)>>,
    max: usize,
    /// Seconds a token stays accepted past its `exp`, as the validation's leeway.
    leeway: u64,
}

impl<T> std::fmt::Debug for Verified<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        let len = self.entries.lock().map_or(0, |e| e.len());
        write!(f, "Verified({len} of at most {})", self.max)
    }
}

impl<T: Clone> Verified<T> {
    /// Remembers at most `max` tokens, each until its expiry plus `leeway` seconds.
    pub fn new(max: usize, leeway: u64) -> Self {
        Verified {
            entries: Mutex::default(),
            max,
            leeway,
        }
    }

    /// What `token` was verified as, if it was and has not expired.
    pub fn get(&self, token: &str) -> Option<T> {
        let mut entries = self.entries.lock().ok()?;
        let (value, exp) = entries.get(token)?;
        if unix_now() <= exp.saturating_add(self.leeway) {
            return Some(value.clone());
        }
        entries.remove(token);
        None
    }

    /// Remembers that `token`, valid until `exp`, was verified as `value`.
    pub fn insert(&self, token: &str, value: T, exp: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max {
                entries.clear();
            }
            entries.insert(token.to_owned(), (value, exp));
        }
    }
}

/// Now, in Unix seconds.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_remembered_until_it_expires() {
        let verified = Verified::new(10, 0);
        verified.insert("fresh", 1, unix_now() + 60);
        verified.insert("stale", 2, unix_now() - 1);
        assert_eq!(verified.get("fresh"), Some(1));
        assert_eq!(verified.get("stale"), None);
        assert_eq!(verified.get("never"), None);
        // The leeway keeps a just-expired token, as the validation would.
        let lenient = Verified::new(10, 5);
        lenient.insert("stale", 2, unix_now() - 1);
        assert_eq!(lenient.get("stale"), Some(2));
    }

    #[test]
    fn it_never_holds_more_than_its_bound() {
        let verified = Verified::new(2, 0);
        for t in ["a", "b", "c"] {
            verified.insert(t, (), unix_now() + 60);
        }
        assert_eq!(verified.entries.lock().unwrap().len(), 1);
        assert_eq!(verified.get("c"), Some(()));
    }
}
