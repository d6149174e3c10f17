//! Call deadlines: a call ends at the caller's `grpc-timeout` or the server's default
//! (`QI_REQUEST_TIMEOUT_MS`; `QI_BULK_TIMEOUT_MS` for the streaming bulk methods, see
//! [`qi_proto::is_streaming`]), whichever is sooner, and is then answered DEADLINE_EXCEEDED,
//! naming the budget.
//!
//! tonic ends a call past its `grpc-timeout` as CANCELLED ("Timeout expired"), which gRPC
//! reserves for a call its caller abandoned, and it does so by itself, `Server::timeout` or
//! not: its transport wraps every server (and every `Channel`) in a timer read from that
//! header, outside our layers. We cannot remove that timer, so we make sure it can never be
//! the one that answers, by construction rather than by a margin:
//!
//! 1. [`DeadlineLayer`], the outermost of our layers, fixes the call's deadline (an
//!    [`Instant`]) in its synchronous `call`. tonic's transport creates its own timer only
//!    after our `call` has returned, from the same header, so tonic's timer never ends
//!    before ours: our deadline is at or before tonic's.
//! 2. [`EnforceDeadline`], inside the span and the call timer (so both record the
//!    DEADLINE_EXCEEDED), checks the clock *before* it polls the call, on every poll. tonic's
//!    timer future polls our future before its own timer, so at the moment tonic's timer
//!    could answer, our future sees the clock past our deadline and answers first.
//! 3. The gateway forwards the call's *remaining* budget, rounded up to the millisecond
//!    ([`CallDeadline::remaining`], [`grpc_timeout`]). Every timer downstream of it (the `Channel`'s, the
//!    service's tonic timer, the service's own deadline) therefore ends at or after the
//!    gateway's deadline, and so whatever they answer reaches a gateway whose clock is
//!    already past its own deadline: the gateway answers DEADLINE_EXCEEDED itself.
//!
//! Like tonic's, the deadline covers a call up to its response head; a stream's messages
//! after that are not cut off. A caller's own shorter deadline is also reported by its own
//! client (tonic's says CANCELLED), which gives up at the same moment.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataValue};

use crate::Error;

tokio::task_local! {
    /// The deadline of the call whose handler is running on this task (see [`within`]).
    static CURRENT: CallDeadline;
}

/// Runs `work` as the work of a call with `deadline`, so what it does in the database is
/// bounded by it ([`crate::db::begin`]). [`crate::call`] does this for every handler; a task
/// a handler spawns is outside it and must be wrapped again.
pub async fn within<F: Future>(deadline: Option<CallDeadline>, work: F) -> F::Output {
    match deadline {
        Some(d) => CURRENT.scope(d, work).await,
        None => work.await,
    }
}

/// When a call must be answered by, fixed as it arrived; in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallDeadline {
    /// The instant the call ends.
    pub at: Instant,
    /// The budget it was given, for the error message.
    pub budget: Duration,
}

impl CallDeadline {
    /// The deadline of a call arriving now.
    fn of<B>(req: &http::Request<B>, budgets: Budgets) -> Self {
        let default = if qi_proto::is_streaming(req.uri().path()) {
            budgets.bulk
        } else {
            budgets.default
        };
        // A malformed header is ignored, as tonic does: the default still bounds the call.
        let budget = req
            .headers()
            .get("grpc-timeout")
            .and_then(parse_grpc_timeout)
            .map_or(default, |asked| asked.min(default));
        CallDeadline {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// The deadline of the call running on this task, if it runs [`within`] one.
    pub fn current() -> Option<CallDeadline> {
        CURRENT.try_with(|d| *d).ok()
    }

    /// What is left of the budget now (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The status of a call that reached its deadline.
    pub fn exceeded(&self) -> tonic::Status {
        Error::DeadlineExceeded {
            budget_ms: self.budget.as_millis(),
        }
        .into()
    }
}

/// The budgets of calls: every call's, and the bulk (streaming) methods'.
#[derive(Debug, Clone, Copy)]
struct Budgets {
    default: Duration,
    bulk: Duration,
}

/// Fixes each call's deadline as it arrives (see the module docs); outermost of our layers.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    budgets: Budgets,
}

impl DeadlineLayer {
    /// Calls with no `grpc-timeout`, or a longer one, end after `default`; calls of the
    /// streaming (bulk) methods after `bulk`.
    pub fn new(default: Duration, bulk: Duration) -> Self {
        DeadlineLayer {
            budgets: Budgets { default, bulk },
        }
    }

    /// The layer that answers a call once its deadline has passed.
    pub fn enforce(&self) -> EnforceDeadlineLayer {
        EnforceDeadlineLayer {
            budgets: self.budgets,
        }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = SetDeadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SetDeadline {
            inner,
            budgets: self.budgets,
        }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct SetDeadline<S> {
    inner: S,
    budgets: Budgets,
}

impl<S, B> tower::Service<http::Request<B>> for SetDeadline<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // Here, not in a future: this runs before tonic's transport starts its own timer.
        let deadline = CallDeadline::of(&req, self.budgets);
        req.extensions_mut().insert(deadline);
        self.inner.call(req)
    }
}

/// Answers DEADLINE_EXCEEDED once the call's [`CallDeadline`] has passed.
#[derive(Debug, Clone, Copy)]
pub struct EnforceDeadlineLayer {
    budgets: Budgets,
}

impl<S> tower::Layer<S> for EnforceDeadlineLayer {
    type Service = EnforceDeadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        EnforceDeadline {
            inner,
            budgets: self.budgets,
        }
    }
}

/// The service of [`EnforceDeadlineLayer`].
#[derive(Debug, Clone)]
pub struct EnforceDeadline<S> {
    inner: S,
    budgets: Budgets,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResBody> tower::Service<http::Request<B>> for EnforceDeadline<S>
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
        // Without [`DeadlineLayer`] in front (a stack built otherwise), still bounded.
        let deadline = req
            .extensions()
            .get::<CallDeadline>()
            .copied()
            .unwrap_or_else(|| CallDeadline::of(&req, self.budgets));
        let call = self.inner.call(req);
        Box::pin(async move {
            let mut call = std::pin::pin!(call);
            // Only wakes the task; whether the deadline has passed is read from the clock.
            let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline.at));
            std::future::poll_fn(|cx| {
                if Instant::now() >= deadline.at {
                    return Poll::Ready(Ok(deadline.exceeded().into_http()));
                }
                if let Poll::Ready(answer) = call.as_mut().poll(cx) {
                    return Poll::Ready(answer);
                }
                // A timer may fire a little early on a coarse clock: the clock decides.
                while timer.as_mut().poll(cx).is_ready() {
                    if Instant::now() >= deadline.at {
                        return Poll::Ready(Ok(deadline.exceeded().into_http()));
                    }
                    timer.as_mut().reset(deadline.at);
                }
                Poll::Pending
            })
            .await
        })
    }
}

/// `d` as a `grpc-timeout` value, rounded *up* to the millisecond (whole seconds when that
/// needs more than the protocol's 8 digits), so a deadline passed on never ends earlier
/// than the one it was taken from.
pub fn grpc_timeout(d: Duration) -> MetadataValue<Ascii> {
    let ms = d.as_nanos().div_ceil(1_000_000);
    let text = if ms < 100_000_000 {
        format!("{ms}m")
    } else {
        format!("{}S", d.as_nanos().div_ceil(1_000_000_000).min(99_999_999))
    };
    MetadataValue::try_from(text).unwrap_or_else(|_| MetadataValue::from_static("99999999S"))
}

/// A `grpc-timeout` value: at most eight digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
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
        parse_grpc_timeout(&http::HeaderValue::from_str(s).unwrap())
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

    #[test]
    fn bulk_methods_get_the_bulk_budget() {
        let budgets = Budgets {
            default: Duration::from_secs(10),
            bulk: Duration::from_secs(1800),
        };
        let call = |path: &str, timeout: Option<&str>| {
            let mut req = http::Request::builder().uri(path);
            if let Some(t) = timeout {
                req = req.header("grpc-timeout", t);
            }
            CallDeadline::of(&req.body(()).unwrap(), budgets).budget
        };
        let sync = "/qi.training.v1.TrainingService/SyncStaff";
        let get = "/qi.training.v1.TrainingService/GetCohort";
        assert_eq!(call(sync, None), Duration::from_secs(1800));
        assert_eq!(call(sync, Some("2H")), Duration::from_secs(1800));
        assert_eq!(call(sync, Some("600S")), Duration::from_secs(600));
        assert_eq!(call(get, None), Duration::from_secs(10));
        assert_eq!(call(get, Some("600S")), Duration::from_secs(10));
    }

    #[test]
    fn a_passed_on_deadline_is_rounded_up_never_down() {
        assert_eq!(grpc_timeout(Duration::from_secs(30)), "30000m");
        assert_eq!(grpc_timeout(Duration::from_micros(999_001)), "1000m");
        assert_eq!(grpc_timeout(Duration::from_nanos(1)), "1m");
        assert_eq!(grpc_timeout(Duration::ZERO), "0m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(grpc_timeout(Duration::from_millis(200_000_001)), "200001S");
        assert_eq!(grpc_timeout(Duration::MAX), "99999999S");
        for d in [
            Duration::from_micros(1),
            Duration::from_millis(1234) + Duration::from_nanos(7),
        ] {
            let back = parse_grpc_timeout(
                &http::HeaderValue::from_str(grpc_timeout(d).to_str().unwrap()).unwrap(),
            );
            assert!(back.unwrap() >= d, "{d:?}");
        }
    }

    /// What tonic's transport does with `grpc-timeout`, in the same order: the inner service
    /// is called first, then a timer of the header's length starts, and the inner future is
    /// polled before that timer.
    async fn through_a_tonic_like_timer<S>(
        mut svc: S,
        req: http::Request<()>,
    ) -> Result<http::Response<()>, &'static str>
    where
        S: tower::Service<
                http::Request<()>,
                Response = http::Response<()>,
                Error = std::convert::Infallible,
            >,
    {
        let header = req
            .headers()
            .get("grpc-timeout")
            .and_then(parse_grpc_timeout);
        let call = svc.call(req);
        let sleep = header.map(tokio::time::sleep);
        let mut call = std::pin::pin!(call);
        let mut sleep = std::pin::pin!(sleep);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = call.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(|_| "inner failed"));
            }
            match sleep.as_mut().as_pin_mut() {
                Some(s) => s.poll(cx).map(|()| Err("Timeout expired")),
                None => Poll::Pending,
            }
        })
        .await
    }

    fn grpc_status(res: &http::Response<()>) -> Option<&str> {
        res.headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn a_deadline_equal_to_the_callers_is_answered_by_us_not_by_tonics_timer() {
        let layer = DeadlineLayer::new(Duration::from_millis(20), Duration::from_secs(60));
        let never = tower::service_fn(|_: http::Request<()>| async {
            std::future::pending::<Result<http::Response<()>, std::convert::Infallible>>().await
        });
        // The header equal to the default (a gateway forwarding its whole budget), shorter,
        // and a little longer than the default: each ends as DEADLINE_EXCEEDED.
        // Real time, many rounds: the order is by construction, so no round may differ.
        let cases = [("20m", 20), ("5m", 5), ("21m", 20), ("20001u", 20)];
        for (header, budget) in cases.into_iter().cycle().take(100) {
            let svc = tower::ServiceBuilder::new()
                .layer(layer)
                // As the telemetry layer does, the inner call is made at the first poll,
                // after tonic's timer has started; on a loaded machine that poll is late.
                .layer_fn(|inner: EnforceDeadline<_>| {
                    tower::service_fn(move |req| {
                        let mut inner = inner.clone();
                        async move {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            tower::Service::call(&mut inner, req).await
                        }
                    })
                })
                .layer(layer.enforce())
                .service(never);
            let req = http::Request::builder()
                .header("grpc-timeout", header)
                .body(())
                .unwrap();
            let started = Instant::now();
            let res = through_a_tonic_like_timer(svc, req).await.expect(header);
            assert_eq!(grpc_status(&res), Some("4"), "{header}");
            let status = tonic::Status::from_header_map(res.headers()).unwrap();
            let message = status.message();
            assert!(
                message.contains(&format!("({budget} ms)")),
                "{header}: {message}"
            );
            assert!(
                started.elapsed() >= Duration::from_millis(budget),
                "{header}"
            );
        }
    }

    #[tokio::test]
    async fn an_answer_ready_before_the_deadline_passes_through() {
        let layer = DeadlineLayer::new(Duration::from_millis(50), Duration::from_secs(60));
        let quick = tower::service_fn(|_: http::Request<()>| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        let svc = tower::ServiceBuilder::new()
            .layer(layer)
            .layer(layer.enforce())
            .service(quick);
        let res = through_a_tonic_like_timer(svc, http::Request::new(()))
            .await
            .unwrap();
        assert_eq!(grpc_status(&res), None);
    }
}
