//! `qi bench`: speed and memory of the suite, every figure next to a baseline measured in the
//! same run (these machines are shared and noisy, so only ratios and same-run comparisons
//! mean anything). The bench deploys the suite as Kubernetes would — one `qi serve` process
//! per component, against a private PostgreSQL — and drives it from this process.
//!
//! It is not a test: nothing asserts a time. Run it from a release build:
//! `cargo run --release --bin qi -- bench [SCENARIO...] [--json FILE]`.
//!
//! Profiling the gateway: `QI_BENCH_WRAP_GATEWAY="valgrind --tool=callgrind
//! --callgrind-out-file=/tmp/gw.%p.cg"` starts it under the given command (callgrind counts
//! instructions, the steadiest before/after figure on a shared machine); or attach
//! `perf record -g -p PID` to the running `qi serve gateway`. `QI_BENCH_WRAP_TRAINING` (and
//! so on for each component) wraps another. The gateway scenario also reports the CPU time
//! each process spends per call.

mod changes;
mod database;
mod deploy;
mod figures;
mod gateway;
mod headers;
mod hostile;
mod hr_completions;
mod hr_sync;
mod ingest;
mod insights;
mod load;
mod memory;
mod metric;
mod nginx;
mod peers;
mod portfolio;
mod rounds;
mod spc;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

pub use deploy::Deployment;
pub use load::{LoadStats, percentile_ms, summarize};

/// A pool of the bench's own (baselines, set-up) of `connections` on the suite's database,
/// with `schema` first on the search path (unqualified names, as the services' statements
/// have). Without the NOTICEs its `TRUNCATE … CASCADE` and `DROP SCHEMA … CASCADE` raise,
/// which sqlx logs at INFO, one a line, through the report; the services' pools do the same
/// (`qi_platform::db::connect`).
async fn raw_pool(
    d: &Deployment,
    connections: u32,
    schema: Option<&str>,
) -> anyhow::Result<sqlx::PgPool> {
    use std::str::FromStr as _;
    let mut options = sqlx::postgres::PgConnectOptions::from_str(&d.database_url)?
        .options([("client_min_messages", "warning")]);
    if let Some(schema) = schema {
        options = options.options([("search_path", schema)]);
    }
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(options)
        .await?)
}

/// A scenario, named on the command line as clap spells it (`hr-sync`); all of them run in
/// this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The gateway's hop against a direct call.
    Gateway,
    /// The HR sync against a raw COPY, and `qi hr import` as a process.
    HrSync,
    /// Measurement ingest.
    Ingest,
    /// SPC charts.
    Spc,
    /// The portfolio summary.
    Portfolio,
    /// Single-row writes and reads against raw SQL.
    Database,
    /// Resident memory under load.
    Memory,
    /// Memory under hostile requests.
    Hostile,
    /// The change feed: the outbox's cost on a write, commit to delivery, backlog replay.
    Changes,
    /// The read model: how soon a write shows in its answers.
    Insights,
}

impl Scenario {
    /// Its name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Gateway => "gateway",
            Scenario::HrSync => "hr-sync",
            Scenario::Ingest => "ingest",
            Scenario::Spc => "spc",
            Scenario::Portfolio => "portfolio",
            Scenario::Database => "database",
            Scenario::Memory => "memory",
            Scenario::Hostile => "hostile",
            Scenario::Changes => "changes",
            Scenario::Insights => "insights",
        }
    }
}

/// How much work each scenario does.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    /// Measured rounds per figure (the median is reported, with the spread).
    pub rounds: usize,
    /// How long each load round lasts.
    pub round: Duration,
    /// The warm-up before measuring.
    pub warmup: Duration,
    /// The row counts of the HR sync scenario.
    pub sync_rows: &'static [usize],
    /// The rows of the extract `qi hr import` sends in the HR sync scenario.
    pub cli_rows: usize,
    /// The completions `ImportCompletions` takes in the HR sync scenario (at most the
    /// largest of `sync_rows`: one per person the last sync loaded).
    pub completion_rows: usize,
    /// The ideas and projects of the portfolio scenario.
    pub portfolio: (usize, usize),
}

impl Effort {
    /// The real measurement.
    pub const FULL: Effort = Effort {
        rounds: 3,
        round: Duration::from_secs(3),
        warmup: Duration::from_secs(1),
        sync_rows: &[15_000, 100_000, 1_500_000],
        cli_rows: 1_000_000,
        completion_rows: 100_000,
        portfolio: (10_000, 2_000),
    };
    /// A seconds-long smoke round that keeps the bench working (CI, tests).
    pub const QUICK: Effort = Effort {
        rounds: 1,
        round: Duration::from_millis(300),
        warmup: Duration::from_millis(100),
        sync_rows: &[500],
        cli_rows: 2_000,
        completion_rows: 500,
        portfolio: (300, 60),
    };
}

/// One target of a scenario.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is measured, e.g. `sync 15,000 rows (s)`.
    pub name: String,
    /// The bound, as text (`< 2`, `>= 0.75`).
    pub target: String,
    /// The measured value.
    pub measured: f64,
    /// Whether it met the bound.
    pub met: bool,
}

impl Target {
    fn at_most(name: &str, bound: f64, measured: f64) -> Self {
        Target {
            name: name.into(),
            target: format!("<= {bound}"),
            measured,
            met: measured <= bound,
        }
    }

    fn at_least(name: &str, bound: f64, measured: f64) -> Self {
        Target {
            name: name.into(),
            target: format!(">= {bound}"),
            measured,
            met: measured >= bound,
        }
    }
}

/// What one scenario reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario's name.
    pub name: &'static str,
    /// Its figures, by name (medians, spreads, ratios).
    pub figures: serde_json::Map<String, Value>,
    /// Its targets.
    pub targets: Vec<Target>,
}

/// Runs the named scenarios (all when empty) and returns the JSON report, printing a table
/// and a summary of targets to standard error as it goes.
pub async fn run(
    chosen: &[Scenario],
    effort: Effort,
    json_path: Option<PathBuf>,
) -> anyhow::Result<Value> {
    let chosen: Vec<Scenario> = if chosen.is_empty() {
        <Scenario as clap::ValueEnum>::value_variants().to_vec()
    } else {
        chosen.to_vec()
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build; measure with `cargo run --release --bin qi -- bench`"
        );
    }
    eprintln!("qi bench: starting the suite (5 processes and a private PostgreSQL)…");
    let deployment = Deployment::start().await?;
    let measured = tokio::select! {
        r = measure(&deployment, &chosen, effort) => r,
        () = qi_platform::server::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    // Failed, interrupted or done, the suite stops with the bench.
    deployment.stop().await;
    let outcomes = measured?;
    eprintln!("\n== targets");
    for o in &outcomes {
        for t in &o.targets {
            eprintln!(
                "  [{}] {}: {} (target {})",
                if t.met { "met" } else { "MISSED" },
                t.name,
                round3(t.measured),
                t.target
            );
        }
    }
    let report = json!({
        "machine": machine(),
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "scenarios": outcomes.iter().map(|o| json!({
            "name": o.name,
            "figures": o.figures,
            "targets": o.targets.iter().map(|t| json!({
                "name": t.name, "target": t.target, "measured": t.measured, "met": t.met,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    if let Some(path) = json_path {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
        eprintln!("\nwrote {}", path.display());
    }
    Ok(report)
}

/// Runs each chosen scenario on `deployment`, printing its figures as it ends.
async fn measure(
    deployment: &Deployment,
    chosen: &[Scenario],
    effort: Effort,
) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for &scenario in chosen {
        eprintln!("\n== {}", scenario.name());
        let outcome = match scenario {
            Scenario::Gateway => gateway::gateway(deployment, effort).await?,
            Scenario::HrSync => hr_sync::hr_sync(deployment, effort).await?,
            Scenario::Ingest => ingest::ingest(deployment, effort).await?,
            Scenario::Spc => spc::spc(deployment, effort).await?,
            Scenario::Portfolio => portfolio::portfolio(deployment, effort).await?,
            Scenario::Database => database::database(deployment, effort).await?,
            Scenario::Memory => memory::memory(deployment, effort).await?,
            Scenario::Hostile => hostile::hostile(deployment, effort).await?,
            Scenario::Changes => changes::changes(deployment, effort).await?,
            Scenario::Insights => insights::insights(deployment, effort).await?,
        };
        print_outcome(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

fn print_outcome(o: &Outcome) {
    for (k, v) in &o.figures {
        match v.as_f64() {
            Some(x) => eprintln!("  {k:<40} {}", round3(x)),
            None => eprintln!("  {k:<40} {v}"),
        }
    }
}

fn round3(x: f64) -> String {
    format!("{x:.3}")
}

/// What the report says of the machine it ran on.
fn machine() -> Value {
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "memory_mib": mem / 1024,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}
