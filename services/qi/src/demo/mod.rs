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
//!
//! Three parts, apart: `data` holds the trust's names and numbers; `plan` works out from
//! them every record to create, without calling anything; `load` takes the plan through
//! the gateway.

mod data;
mod load;
mod plan;
mod rng;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::NaiveDate;

use load::client::Api;
use load::pace::Pace;
use plan::portfolio::{Fate, portfolio};

/// The day the demo's story runs to: cohorts, projects and measurements are dated up to it.
pub const AS_OF: NaiveDate = day(2026, 11, 1);

/// The demo trust's workforce at full size.
pub const FULL_STAFF: u32 = 15_000;

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

impl Tally {
    /// Counts a lifecycle step taken on a record: as advanced when the record was found
    /// rather than made by this run (`fresh`).
    pub(crate) fn step(&mut self, fresh: bool) {
        if !fresh {
            self.advanced += 1;
        }
    }
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
    let staff = plan::people::workforce(options.staff);
    let mut e = Expected {
        staff_trained: plan::training::plan(&staff).trained_by_site(),
        ..Default::default()
    };
    let portfolio = portfolio();
    for idea in &portfolio.ideas {
        *e.ideas.entry(idea.site).or_default() += 1;
    }
    for p in &portfolio.projects {
        match p.fate {
            Fate::Completed => *e.completed.entry(p.site).or_default() += 1,
            Fate::InProgress => *e.in_progress.entry(p.site).or_default() += 1,
            Fate::Scoping | Fate::Stopped => {}
        }
    }
    for w in plan::wards::ward_programme() {
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
    // The ESR mapping before the extract, whose rows carry codes, not sites.
    tally += load::people::map(&api).await?;
    let staff = plan::people::workforce(options.staff);
    let synced = load::people::sync(&api, &staff).await?;
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
        async { load::metrics::load(&api).await.map(|t| timed("metrics", t)) },
        async {
            load::training::load(&api, &staff)
                .await
                .map(|t| timed("training", t))
        },
        async {
            load::projects::load(&api, &staff)
                .await
                .map(|t| timed("projects", t))
        },
    )?;
    tally += m;
    tally += t;
    tally += p;
    // Then one of the leads leaves the trust.
    let training = plan::training::plan(&staff);
    if let Some((_, person)) = plan::journey::leaver(&portfolio(), &staff, &training) {
        load::people::leaver(&api, person).await?;
    }
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
