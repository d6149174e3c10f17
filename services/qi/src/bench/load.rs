//! A closed-loop load generator: `concurrency` workers each send one call at a time for a
//! fixed duration, recording every latency and every status code (a gRPC error is never
//! counted as a success, unlike h2load).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// What one load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    /// Calls that answered OK.
    pub ok: u64,
    /// Calls that failed, by gRPC code name.
    pub errors: BTreeMap<String, u64>,
    /// Successful calls per second.
    pub throughput: f64,
    /// Median latency of successful calls, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency of successful calls, milliseconds.
    pub p99_ms: f64,
}

/// Runs `call` from `concurrency` workers for `duration`.
pub(super) async fn run<F, Fut>(concurrency: usize, duration: Duration, call: F) -> LoadStats
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match call().await {
                        Ok(()) => latencies.push(t.elapsed()),
                        Err(s) => *errors.entry(format!("{:?}", s.code())).or_default() += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for w in workers {
        if let Ok((l, e)) = w.await {
            latencies.extend(l);
            for (k, v) in e {
                *errors.entry(k).or_default() += v;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    LoadStats {
        ok: latencies.len() as u64,
        errors,
        throughput: latencies.len() as f64 / elapsed.max(f64::EPSILON),
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
    }
}

/// The `q` quantile of sorted latencies, in milliseconds (0 when empty).
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// The median and the spread (min, max) of several rounds' values.
pub fn summarize(values: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians_are_taken_from_the_data() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&d, 0.5), 51.0);
        assert_eq!(percentile_ms(&d, 0.99), 99.0);
        assert_eq!(summarize(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(summarize(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
    }

    #[tokio::test]
    async fn the_load_counts_errors_apart_from_successes() {
        let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stats = run(2, Duration::from_millis(50), move || {
            let n = n.clone();
            async move {
                let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
                if i.is_multiple_of(2) {
                    Ok(())
                } else {
                    Err(tonic::Status::unavailable("x"))
                }
            }
        })
        .await;
        assert!(stats.ok > 0);
        assert!(stats.errors.get("Unavailable").copied().unwrap_or(0) > 0);
    }
}
