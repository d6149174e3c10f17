//! `qi seed --demo` (and `qi up --demo` on first start): a synthetic trust that tells the
//! programme's story, loaded through the gateway like any client — three sites and sixty
//! wards, about 15,000 staff through the HR sync, QSIR cohorts since 2021 with their
//! registers, ideas, programmes and projects with teams, PDSA cycles and outcomes, the ward
//! programme, and QMS metrics that improve after the projects aimed at them.
//!
//! Everything is generated from fixed keys ([`rng::Rng::of`]): the same data on every run,
//! and no real person's. Every record has a fixed id, so a second run finds each one
//! (`ALREADY_EXISTS`, or its state read back) and only takes the lifecycle steps still
//! missing: re-running changes nothing. The story is dated up to [`AS_OF`], not to the day
//! it is loaded, so its figures do not drift with the calendar.

mod metrics;
mod people;
mod projects;
mod rng;
mod training;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::NaiveDate;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use qi_proto::training::training_service_client::TrainingServiceClient;
use tonic::codegen::{Service, http};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// The day the demo's story runs to: cohorts, projects and measurements are dated up to it.
pub const AS_OF: NaiveDate = day(2026, 11, 1);

/// The demo trust's workforce at full size.
pub const FULL_STAFF: u32 = 15_000;

/// Calls in flight at once: enough to keep the services busy, few enough for their pools.
const IN_FLIGHT: usize = 16;

/// The headline figures the demo is built to show (a trust-wide caller's overview).
pub const IDEAS: i64 = 469;
/// Projects completed.
pub const PROJECTS_COMPLETED: i64 = 45;
/// Projects in progress.
pub const PROJECTS_IN_PROGRESS: i64 = 99;
/// Wards in the ward programme.
pub const WARDS_IN_PROGRAMME: i64 = 60;

/// How big a demo to load, and how fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Staff in the HR extract (the trained colleagues are drawn from them; at least 3,000).
    pub staff: u32,
    /// The gateway's per-caller rate (`QI_RATE_LIMIT_PER_SUBJECT`, 0 = none): the loader
    /// paces its calls under it instead of being refused and retrying.
    pub rate_per_second: u32,
    /// The gateway's burst above that rate (`QI_RATE_LIMIT_BURST`).
    pub rate_burst: u32,
}

impl Options {
    /// The full demo, paced for a gateway configured as `config` says.
    pub fn paced_for(config: &qi_platform::Config) -> Self {
        Options {
            staff: FULL_STAFF,
            rate_per_second: config.rate_limit_per_subject,
            rate_burst: config.rate_limit_burst,
        }
    }
}

impl Default for Options {
    /// The full demo, paced for a gateway with the default limits.
    fn default() -> Self {
        Self::paced_for(&qi_platform::Config::defaults())
    }
}

/// What a seed run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Records created.
    pub created: u64,
    /// Records that were there already.
    pub existing: u64,
    /// Lifecycle steps taken on records that were there already (a resumed run).
    pub advanced: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.created += o.created;
        self.existing += o.existing;
        self.advanced += o.advanced;
    }
}

/// The outcome of [`seed`].
#[derive(Debug, Clone)]
pub struct Report {
    /// Records created, found, advanced (staff not included).
    pub tally: Tally,
    /// The HR sync's answer for the staff extract.
    pub staff: qi_proto::training::SyncStaffResponse,
    /// How long it took.
    pub elapsed: Duration,
}

/// The figures a caller's overview should show once the demo is loaded, per site (the
/// trust's are their sums: every figure here is counted under one site).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// People with a completion, by their site.
    pub staff_trained: BTreeMap<&'static str, i64>,
    /// Ideas received, by site.
    pub ideas: BTreeMap<&'static str, i64>,
    /// Projects completed, by lead site.
    pub completed: BTreeMap<&'static str, i64>,
    /// Projects in progress, by lead site.
    pub in_progress: BTreeMap<&'static str, i64>,
    /// Wards in the ward programme, by site.
    pub wards: BTreeMap<&'static str, i64>,
}

/// The figures the demo of this size is built to show.
pub fn expected(options: &Options) -> Expected {
    let staff = people::workforce(options.staff);
    let plan = training::plan(&staff);
    let mut e = Expected {
        staff_trained: plan.trained_by_site(),
        ..Default::default()
    };
    let portfolio = projects::portfolio();
    for idea in &portfolio.ideas {
        *e.ideas.entry(idea.site).or_default() += 1;
    }
    for p in &portfolio.projects {
        match p.fate {
            projects::Fate::Completed => *e.completed.entry(p.site).or_default() += 1,
            projects::Fate::InProgress => *e.in_progress.entry(p.site).or_default() += 1,
            projects::Fate::Scoping | projects::Fate::Stopped => {}
        }
    }
    for w in projects::ward_programme() {
        *e.wards.entry(w.site).or_default() += 1;
    }
    e
}

/// Loads the demo trust through the gateway at `gateway` with `token`: a trust-wide
/// caller holding `admin` (which covers HR's `hr_sync`). Safe to run again.
pub async fn seed(gateway: &str, token: &str, options: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.staff >= 3_000,
        "the demo needs at least 3,000 staff to draw its learners and teams from"
    );
    // The story's dates must all be past: services refuse registers and outcomes dated ahead.
    let today = qi_platform::calendar::today();
    anyhow::ensure!(
        today > AS_OF,
        "the demo's story runs to {AS_OF}, and this machine's clock says {today}: set the clock right"
    );
    let started = Instant::now();
    let pace = Pace::new(options.rate_per_second, options.rate_burst);
    let api = Api::connect(gateway, token, pace).await?;
    let mut tally = Tally::default();
    // The organisation first: everything else names its sites and wards.
    let org = crate::seed::reference_trust(gateway, token).await?;
    tally.created += u64::from(org.created);
    tally.existing += u64::from(org.existing);
    let staff = people::workforce(options.staff);
    let synced = people::sync(&api, &staff).await?;
    tracing::info!(
        rows = synced.received_rows,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "demo: staff synced"
    );
    // Metrics, training and the portfolio do not depend on each other.
    let timed = |phase: &'static str, tally: Tally| {
        tracing::info!(
            phase,
            elapsed_ms = started.elapsed().as_millis() as u64,
            created = tally.created,
            "demo: loaded"
        );
        tally
    };
    let (m, t, p) = tokio::try_join!(
        async { metrics::load(&api).await.map(|t| timed("metrics", t)) },
        async {
            training::load(&api, &staff)
                .await
                .map(|t| timed("training", t))
        },
        async {
            projects::load(&api, &staff)
                .await
                .map(|t| timed("projects", t))
        },
    )?;
    tally += m;
    tally += t;
    tally += p;
    Ok(Report {
        tally,
        staff: synced,
        elapsed: started.elapsed(),
    })
}

/// A calendar date known to be valid (the demo's fixed dates).
pub(crate) const fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(d) => d,
        None => panic!("an invalid fixed date"),
    }
}

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
    fn new(per_second: u32, burst: u32) -> Option<Arc<Pace>> {
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

/// Clients of the three services, through the gateway.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) training: TrainingServiceClient<Svc>,
    pub(crate) projects: ProjectServiceClient<Svc>,
    pub(crate) metrics: MetricServiceClient<Svc>,
}

impl Api {
    async fn connect(gateway: &str, token: &str, pace: Option<Arc<Pace>>) -> anyhow::Result<Api> {
        let channel = tonic::transport::Endpoint::from_shared(gateway.to_owned())
            .with_context(|| format!("{gateway} is not a URL"))?
            .connect()
            .await
            .with_context(|| format!("connecting to the gateway at {gateway}"))?;
        let channel = Paced { channel, pace };
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
        $crate::demo::call(|| {
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

/// An error naming what the demo was doing.
pub(crate) fn failed(s: Status, what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {:?} {}", s.code(), s.message())
}

/// A deterministic request id for a record's create: the same record, the same id.
pub(crate) fn request_id(key: &str) -> String {
    let mut r = rng::Rng::of(key, 0);
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

/// The file in the data folder that says the demo has been loaded there.
const MARKER: &str = "demo-loaded";

/// `qi up --demo`: loads the demo into the suite just started at `gateway_addr`, unless the
/// data folder says it was loaded before. Mints its own token with the development secret.
pub async fn seed_on_first_start(
    config: &qi_platform::Config,
    gateway_addr: std::net::SocketAddr,
) -> anyhow::Result<Option<Report>> {
    let marker = config.data_dir.join(MARKER);
    if marker.exists() {
        return Ok(None);
    }
    let secret = config.jwt.hs256_secret.as_deref().context(
        "--demo needs the development token secret (QI_JWT_SECRET); with a JWKS, load it with `qi seed --demo --token …`",
    )?;
    let token = qi_gateway::auth::mint_dev_token(
        secret,
        &config.jwt,
        "qi-demo",
        &["admin".to_owned()],
        &["*".to_owned()],
        Duration::from_secs(3600),
    )?;
    let host = if gateway_addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], gateway_addr.port()))
    } else {
        gateway_addr
    };
    let report = seed(
        &format!("http://{host}"),
        &token,
        &Options::paced_for(config),
    )
    .await?;
    std::fs::write(
        &marker,
        format!(
            "The demo trust was loaded here ({} records). Delete this file to load it again on the next `qi up --demo`.\n",
            report.tally.created
        ),
    )
    .with_context(|| format!("writing {}", marker.display()))?;
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_shows_just_over_seven_hundred_trained() {
        for staff in [FULL_STAFF, 3_000] {
            let e = expected(&Options {
                staff,
                ..Options::default()
            });
            let trained: i64 = e.staff_trained.values().sum();
            eprintln!("{staff}: {:?}", e);
            assert!((701..=760).contains(&trained), "{trained} trained");
            assert_eq!(e.ideas.values().sum::<i64>(), IDEAS);
            assert_eq!(e.completed.values().sum::<i64>(), PROJECTS_COMPLETED);
            assert_eq!(e.in_progress.values().sum::<i64>(), PROJECTS_IN_PROGRESS);
            assert_eq!(e.wards.values().sum::<i64>(), WARDS_IN_PROGRAMME);
        }
    }
}
