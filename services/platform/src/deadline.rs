//! Call deadlines: a call ends at the caller's `grpc-timeout` or the server's default
//! (`QI_REQUEST_TIMEOUT_MS`), whichever is sooner, and is then answered DEADLINE_EXCEEDED.
//!
//! tonic's own `Server::timeout` ends such a call as CANCELLED ("Timeout expired"), which
//! gRPC reserves for a call its caller abandoned: a client that retries on a passed deadline
//! but not on a cancellation would misread it. Like tonic's, the deadline covers the call
//! up to its response head; a stream's messages after that are not cut off.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Applies the deadline of each call (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    default: Duration,
}

impl DeadlineLayer {
    /// Calls with no `grpc-timeout`, or a longer one, end after `default`.
    pub fn new(default: Duration) -> Self {
        DeadlineLayer { default }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            default: self.default,
        }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    default: Duration,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResBody> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // A malformed header is ignored, as tonic does: the default still bounds the call.
        let budget = req
            .headers()
            .get("grpc-timeout")
            .and_then(grpc_timeout)
            .map_or(self.default, |asked| asked.min(self.default));
        let call = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(budget, call).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "the call's deadline ({} ms) passed before it was answered",
                    budget.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// A `grpc-timeout` value: at most eight digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    let digits = text.get(..text.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match text.get(digits.len()..)? {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<Duration> {
        grpc_timeout(&http::HeaderValue::from_str(s).unwrap())
    }

    #[test]
    fn grpc_timeout_values_follow_the_grpc_http2_spec() {
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("99999999S"), Some(Duration::from_secs(99_999_999)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("1n"), Some(Duration::from_nanos(1)));
        for bad in [
            "",
            "S",
            "m5",
            "100",
            "123456789m",
            "-1S",
            "1.5S",
            "10s",
            "10 S",
            "1é",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
