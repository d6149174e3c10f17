//! The loader's client of the gateway: the three services' clients with the caller's token,
//! a call retried while the gateway or a service asks for a pause, what a create's answer
//! means, and running many records' loads at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::pace::{Pace, Paced};
use crate::demo::Tally;
use crate::demo::rng::Rng;

/// Calls in flight at once: enough to keep the services busy, few enough for their pools.
const IN_FLIGHT: usize = 16;

/// Adds the bearer token to every call.
#[derive(Clone)]
pub(crate) struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Svc = InterceptedService<Paced, Bearer>;

/// Clients of the three services, through the gateway.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) training: TrainingServiceClient<Svc>,
    pub(crate) projects: ProjectServiceClient<Svc>,
    pub(crate) metrics: MetricServiceClient<Svc>,
}

impl Api {
    /// Connects to the gateway at `gateway`, calling with `token` at the `pace` given.
    pub(crate) async fn connect(
        gateway: &str,
        token: &str,
        pace: Option<Arc<Pace>>,
    ) -> anyhow::Result<Api> {
        let channel = tonic::transport::Endpoint::from_shared(gateway.to_owned())
            .with_context(|| format!("{gateway} is not a URL"))?
            .connect()
            .await
            .with_context(|| format!("connecting to the gateway at {gateway}"))?;
        let channel = Paced::new(channel, pace);
        let bearer = Bearer(
            format!("Bearer {token}")
                .parse()
                .context("the token is not valid header text")?,
        );
        let max = qi_platform::server::MAX_MESSAGE_BYTES;
        Ok(Api {
            training: TrainingServiceClient::with_interceptor(channel.clone(), bearer.clone())
                .max_decoding_message_size(max),
            projects: ProjectServiceClient::with_interceptor(channel.clone(), bearer.clone())
                .max_decoding_message_size(max),
            metrics: MetricServiceClient::with_interceptor(channel, bearer)
                .max_decoding_message_size(max),
        })
    }
}

/// Makes one call, again after a pause while the gateway says the caller is over its rate
/// (the [`Pace`] keeps it under, but other replicas' or callers' clocks are not ours) or a
/// service is briefly out of connections: both refuse before doing anything, so a retry is
/// safe. Any other error is returned.
pub(crate) async fn call<T, F, Fut>(mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let mut pause = Duration::from_millis(25);
    let mut attempts = 0;
    loop {
        match f().await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s)
                if matches!(s.code(), Code::ResourceExhausted | Code::Unavailable)
                    && attempts < 40 =>
            {
                attempts += 1;
                // A rate refusal says how long at least (RetryInfo): the time to the next
                // token, which the loader's concurrent calls compete for, so it is a floor
                // under the backoff, not a replacement for it.
                let wait = s
                    .get_details_retry_info()
                    .and_then(|r| r.retry_delay)
                    .map_or(pause, |hint| hint.max(pause));
                tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(s) => return Err(s),
        }
    }
}

/// `rpc!(client, method, request)`: one call through [`call`], retried as it says.
macro_rules! rpc {
    ($client:expr, $method:ident, $req:expr) => {{
        let req = $req;
        let client = &$client;
        $crate::demo::load::client::call(|| {
            let mut c = client.clone();
            let r = req.clone();
            async move { c.$method(r).await }
        })
        .await
    }};
}
pub(crate) use rpc;

/// A create's answer: `Some` when it created, `None` when the record was there already.
pub(crate) fn created<T>(r: Result<T, Status>, what: &str) -> anyhow::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.code() == Code::AlreadyExists => Ok(None),
        Err(s) => Err(failed(s, what)),
    }
}

/// The record a create made (counted as created), or else the one there already, read back
/// by `found` (counted as existing); and whether it was made.
pub(crate) async fn made_or_found<T>(
    made: Option<T>,
    found: impl Future<Output = anyhow::Result<T>>,
    tally: &mut Tally,
) -> anyhow::Result<(T, bool)> {
    match made {
        Some(record) => {
            tally.created += 1;
            Ok((record, true))
        }
        None => {
            tally.existing += 1;
            Ok((found.await?, false))
        }
    }
}

/// An error naming what the demo was doing.
pub(crate) fn failed(s: Status, what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {:?} {}", s.code(), s.message())
}

/// A deterministic request id for a record's create: the same record, the same id.
pub(crate) fn request_id(key: &str) -> String {
    let mut r = Rng::of(key, 0);
    let (a, b) = (r.next(), r.next());
    uuid::Uuid::from_u64_pair(a, b).to_string()
}

/// Runs `f` over `items` with at most [`IN_FLIGHT`] at once, adding up their tallies; the
/// first error stops the rest.
pub(crate) async fn each<T, F, Fut>(items: Vec<T>, f: F) -> anyhow::Result<Tally>
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = anyhow::Result<Tally>> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    let mut total = Tally::default();
    for item in items {
        if running.len() >= IN_FLIGHT
            && let Some(done) = running.join_next().await
        {
            total += done.context("a demo task panicked")??;
        }
        running.spawn(f(item));
    }
    while let Some(done) = running.join_next().await {
        total += done.context("a demo task panicked")??;
    }
    Ok(total)
}
