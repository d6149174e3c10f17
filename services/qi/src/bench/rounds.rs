//! How the scenarios time a call: one at a time, for its service time; or two ways of doing
//! one thing in alternating rounds, with the CPU each part of the deployment spent per call.

use std::future::Future;

use serde_json::{Map, Value};

use super::figures::{note_errors, put_stat};
use super::load::{self, LoadStats};
use super::{Deployment, Effort};

/// Runs one call closed-loop, one at a time, for the rounds; records its p50 and returns it.
pub(super) async fn p50_of<F, Fut>(
    f: &mut Map<String, Value>,
    name: &str,
    effort: Effort,
    call: F,
) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    service_time(f, name, effort, call).await.0
}

/// Runs one call closed-loop, one at a time (so the figure is the call's service time, not
/// queueing), after a warm-up, for the rounds; records and returns its (p50, p99) in ms.
pub(super) async fn service_time<F, Fut>(
    f: &mut Map<String, Value>,
    name: &str,
    effort: Effort,
    call: F,
) -> (f64, f64)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    load::run(1, effort.warmup, call.clone()).await;
    let mut rounds = Vec::new();
    for round in 0..effort.rounds {
        eprintln!("  {name}: round {}/{}", round + 1, effort.rounds);
        rounds.push(load::run(1, effort.round, call.clone()).await);
    }
    note_errors(f, name, &rounds);
    let p50 = put_stat(f, &format!("{name} p50 ms"), &rounds, |x| x.p50_ms);
    let p99 = put_stat(f, &format!("{name} p99 ms"), &rounds, |x| x.p99_ms);
    (p50, p99)
}

/// Rounds of two ways of doing one thing (through the gateway and directly; an RPC and its
/// raw SQL), alternating, with the CPU each part of the deployment spent per call.
pub(super) struct Alternated {
    /// The first way's rounds (through the gateway; the RPC).
    pub(super) g: Vec<LoadStats>,
    /// The second way's rounds (directly; the raw SQL).
    pub(super) s: Vec<LoadStats>,
    /// The CPU per call of each part, in each of the first way's rounds.
    pub(super) g_cpu: Vec<Vec<(&'static str, f64)>>,
    /// The same for the second way.
    pub(super) s_cpu: Vec<Vec<(&'static str, f64)>>,
}

/// Warms both ways up, then runs them in alternating rounds at `in_flight`.
pub(super) async fn alternate<G, GF, D, DF>(
    d: &Deployment,
    in_flight: usize,
    effort: Effort,
    via_gateway: G,
    direct: D,
) -> Alternated
where
    G: Fn() -> GF + Clone + Send + 'static,
    GF: Future<Output = Result<(), tonic::Status>> + Send,
    D: Fn() -> DF + Clone + Send + 'static,
    DF: Future<Output = Result<(), tonic::Status>> + Send,
{
    load::run(in_flight, effort.warmup, via_gateway.clone()).await;
    load::run(in_flight, effort.warmup, direct.clone()).await;
    let mut out = Alternated {
        g: Vec::new(),
        s: Vec::new(),
        g_cpu: Vec::new(),
        s_cpu: Vec::new(),
    };
    // Three times the rounds, each a third as long, alternating: other work on a shared
    // machine comes and goes within seconds, and short adjacent rounds see the same.
    let (rounds, round_time) = (effort.rounds * 3, effort.round / 3);
    for round in 0..rounds {
        eprintln!("  {in_flight} in flight: round {}/{rounds}", round + 1);
        let (stats, cpu) =
            cpu_per_call(d, load::run(in_flight, round_time, via_gateway.clone())).await;
        out.g.push(stats);
        out.g_cpu.push(cpu);
        let (stats, cpu) = cpu_per_call(d, load::run(in_flight, round_time, direct.clone())).await;
        out.s.push(stats);
        out.s_cpu.push(cpu);
    }
    out
}

/// Runs a load round and returns, with its stats, the CPU time each part of the deployment
/// spent per successful call, in microseconds.
async fn cpu_per_call(
    d: &Deployment,
    round: impl Future<Output = LoadStats>,
) -> (LoadStats, Vec<(&'static str, f64)>) {
    let before = d.cpu_seconds();
    let stats = round.await;
    let after = d.cpu_seconds();
    let calls = stats.ok.max(1) as f64;
    let cpu = before
        .iter()
        .zip(&after)
        .map(|((name, b), (_, a))| (*name, (a - b) * 1e6 / calls))
        .collect();
    (stats, cpu)
}
