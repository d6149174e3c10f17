//! Keeping the loader under the gateway's per-caller rate: a schedule of turns, and the
//! channel that makes each call wait for its turn.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::codegen::{Service, http};
use tonic::transport::Channel;

/// Spaces the loader's calls so the gateway's per-caller rate limit never refuses them: the
/// loader is a caller like any other (no exemption a token could claim), and one that keeps
/// to its rate. A GCRA schedule at the gateway's rate with half its burst, the other half
/// slack for calls that arrive closer together than they were sent.
#[derive(Debug)]
pub(crate) struct Pace {
    interval: Duration,
    slack: Duration,
    /// When the next call would be due at the steady rate.
    due: std::sync::Mutex<tokio::time::Instant>,
}

impl Pace {
    /// `None` when the gateway has no rate limit.
    pub(crate) fn new(per_second: u32, burst: u32) -> Option<Arc<Pace>> {
        (per_second > 0).then(|| {
            let interval = Duration::from_secs(1) / per_second;
            let burst = burst.max(per_second) / 2;
            Arc::new(Pace {
                interval,
                slack: interval * burst.saturating_sub(1),
                due: std::sync::Mutex::new(tokio::time::Instant::now()),
            })
        })
    }

    /// Waits for this call's turn.
    async fn turn(&self) {
        let at = {
            let Ok(mut due) = self.due.lock() else { return };
            let now = tokio::time::Instant::now();
            let at = due.checked_sub(self.slack).map_or(now, |t| t.max(now));
            *due = (*due).max(now) + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// The gateway channel, each call taking its turn from the [`Pace`] first.
#[derive(Debug, Clone)]
pub(crate) struct Paced {
    channel: Channel,
    pace: Option<Arc<Pace>>,
}

impl Paced {
    /// `channel`, each call waiting for its turn of `pace` (none: no waiting).
    pub(crate) fn new(channel: Channel, pace: Option<Arc<Pace>>) -> Self {
        Paced { channel, pace }
    }
}

impl Service<http::Request<tonic::body::Body>> for Paced {
    type Response = <Channel as Service<http::Request<tonic::body::Body>>>::Response;
    type Error = <Channel as Service<http::Request<tonic::body::Body>>>::Error;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        Service::poll_ready(&mut self.channel, cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        // The channel made ready goes with the call; this one keeps a fresh clone.
        let fresh = self.channel.clone();
        let mut ready = std::mem::replace(&mut self.channel, fresh);
        let pace = self.pace.clone();
        Box::pin(async move {
            if let Some(pace) = pace {
                pace.turn().await;
            }
            Service::call(&mut ready, req).await
        })
    }
}
