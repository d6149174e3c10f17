//! The `changes` scenario: what the change feed costs and how fast it delivers, each judged
//! against a peer measured in the same run.
//! - **Outbox overhead**: `CreateIdea` through the gateway at 32 in flight, in alternating
//!   rounds with the outbox and without it (a rule sends the insert into `changes` to an
//!   unlogged table with no index instead: the same code path, the outbox's cost removed).
//! - **Commit to delivery**: 32 writers and 4 feeds opened at "now"; for each write, the time
//!   from its acknowledgement (after its commit) to its arrival at each feed.
//! - **Backlog replay**: 100,000 changes read through the gateway from the oldest, against
//!   a `COPY … TO STDOUT` of the same rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qi_proto::common::{ChangeKind, WatchStart};
use qi_proto::projects as pb;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use serde_json::{Map, json};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use super::figures::{note_errors, put, put_pairs};
use super::headers::{bearer, with_header};
use super::load::{self, percentile_ms};
use super::{Deployment, Effort, Outcome, Target};

/// Writers at once, as the issue sets them.
const IN_FLIGHT: usize = 32;
/// Feeds open while they write.
const WATCHERS: usize = 4;

/// For the rounds without the outbox, its insert goes instead into an unlogged table with no
/// index (nearly free: no WAL, no index to keep). Not `DO INSTEAD NOTHING`: a statement
/// rewritten to nothing keeps no tie to the table, so the services' prepared statements would
/// never notice the rule gone.
const SINK: &str = "CREATE UNLOGGED TABLE IF NOT EXISTS bench.changes_sink
                        (LIKE projects.changes INCLUDING DEFAULTS)";
const OUTBOX_OFF: &str = "CREATE OR REPLACE RULE bench_outbox_off AS ON INSERT TO projects.changes
                          DO INSTEAD INSERT INTO bench.changes_sink VALUES (NEW.*)";
const OUTBOX_ON: &str = "DROP RULE IF EXISTS bench_outbox_off ON projects.changes";

fn client(d: &Deployment) -> ProjectServiceClient<Channel> {
    ProjectServiceClient::new(d.gateway.clone())
        .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
}

/// Creates one idea at BAS; returns its name.
async fn create_idea(
    mut c: ProjectServiceClient<Channel>,
    token: MetadataValue<Ascii>,
    n: u64,
) -> Result<String, tonic::Status> {
    let req = pb::CreateIdeaRequest {
        parent: "sites/BAS".into(),
        idea: Some(pb::Idea {
            title: format!("Bench idea {n}"),
            submitter: "A. Nurse".into(),
            theme: "Patient flow".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let made = c
        .create_idea(with_header(req, "authorization", &token))
        .await?;
    Ok(made.into_inner().idea.map(|i| i.name).unwrap_or_default())
}

pub(super) async fn changes(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    let admin = super::raw_pool(d, 2, None).await?;
    let writer = bearer(&d.token("bench-changes", &["improvement_team"])?)?;
    let reader = bearer(&d.token("bench-warehouse", &["viewer"])?)?;
    let mut f = Map::new();
    let mut targets = Vec::new();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let write = {
        let (c, token, counter) = (client(d), writer.clone(), counter.clone());
        move || {
            let (c, token) = (c.clone(), token.clone());
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { create_idea(c, token, n).await.map(|_| ()) }
        }
    };

    // Outbox overhead: alternating rounds with and without it.
    sqlx::query("CREATE SCHEMA IF NOT EXISTS bench")
        .execute(&admin)
        .await?;
    sqlx::query(SINK).execute(&admin).await?;
    load::run(IN_FLIGHT, effort.warmup, write.clone()).await;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (rounds, round_time) = (effort.rounds * 3, effort.round / 3);
    for round in 0..rounds {
        eprintln!("  outbox on/off: round {}/{rounds}", round + 1);
        sqlx::query(OUTBOX_ON).execute(&admin).await?;
        with.push(load::run(IN_FLIGHT, round_time, write.clone()).await);
        sqlx::query(OUTBOX_OFF).execute(&admin).await?;
        without.push(load::run(IN_FLIGHT, round_time, write.clone()).await);
    }
    sqlx::query(OUTBOX_ON).execute(&admin).await?;
    note_errors(&mut f, "CreateIdea with the outbox", &with);
    note_errors(&mut f, "CreateIdea without the outbox", &without);
    put(
        &mut f,
        "CreateIdea with the outbox, calls/s",
        &with.iter().map(|s| s.throughput).collect::<Vec<_>>(),
    );
    put(
        &mut f,
        "CreateIdea without the outbox, calls/s",
        &without.iter().map(|s| s.throughput).collect::<Vec<_>>(),
    );
    let ratio = put_pairs(
        &mut f,
        "outbox: writes/s with / without",
        (&with, &without),
        |a, b| a.throughput / b.throughput.max(f64::EPSILON),
    );
    targets.push(Target::at_least(
        "changes: writes/s with the outbox / without (32 in flight)",
        0.85,
        ratio,
    ));

    // Commit to delivery: 4 feeds from now, 32 writers; each acknowledged write's time.
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let arrived: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let mut feeds = Vec::new();
    for _ in 0..WATCHERS {
        let req = pb::WatchChangesRequest {
            start: WatchStart::Now as i32,
            collections: vec!["ideas".into()],
            ..Default::default()
        };
        let mut stream = client(d)
            .watch_changes(with_header(req, "authorization", &reader))
            .await?
            .into_inner();
        let arrived = arrived.clone();
        feeds.push(tokio::spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(m)) if m.kind() == ChangeKind::Created => {
                        let at = Instant::now();
                        if let Ok(mut a) = arrived.lock() {
                            a.push((m.resource_name, at));
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return,
                    Err(status) => {
                        eprintln!("  a feed ended: {:?} {}", status.code(), status.message());
                        return;
                    }
                }
            }
        }));
    }
    let timed_write = {
        let (c, token, counter, acked) =
            (client(d), writer.clone(), counter.clone(), acked.clone());
        move || {
            let (c, token, acked) = (c.clone(), token.clone(), acked.clone());
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                let name = create_idea(c, token, n).await?;
                let at = Instant::now();
                if let Ok(mut a) = acked.lock() {
                    a.insert(name, at);
                }
                Ok(())
            }
        }
    };
    eprintln!("  commit to delivery: {IN_FLIGHT} writers, {WATCHERS} feeds");
    let stats = load::run(IN_FLIGHT, effort.round, timed_write).await;
    let expected = stats.ok as usize * WATCHERS;
    let waited = Instant::now();
    while arrived.lock().map(|a| a.len()).unwrap_or(0) < expected
        && waited.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for feed in &feeds {
        feed.abort();
    }
    let mut latencies: Vec<Duration> = {
        let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
        let arrived = arrived.lock().map(|a| a.clone()).unwrap_or_default();
        arrived
            .iter()
            .filter_map(|(name, at)| acked.get(name).map(|w| at.saturating_duration_since(*w)))
            .collect()
    };
    latencies.sort();
    let delivered = latencies.len();
    let p99 = percentile_ms(&latencies, 0.99);
    f.insert("delivery: writes acknowledged".into(), json!(stats.ok));
    f.insert(
        "delivery: arrivals (writes × feeds)".into(),
        json!(format!("{delivered} of {expected}")),
    );
    f.insert(
        "delivery: commit to arrival p50 ms".into(),
        json!(percentile_ms(&latencies, 0.5)),
    );
    f.insert("delivery: commit to arrival p99 ms".into(), json!(p99));
    targets.push(Target::at_most(
        "changes: commit to delivery p99 ms (32 writers, 4 feeds)",
        1000.0,
        if delivered == expected {
            p99
        } else {
            f64::INFINITY
        },
    ));

    // Backlog replay: 100,000 more changes, all read from the oldest, against a COPY TO.
    let extra = if effort.rounds > 1 { 100_000 } else { 2_000 };
    sqlx::query(
        "INSERT INTO projects.changes (pos, collection, name, kind, sites, payload)
         SELECT pg_current_xact_id(), 'ideas', 'sites/BAS/ideas/bench-' || g, 'created',
                '{BAS}', (SELECT payload FROM projects.changes
                          WHERE collection = 'ideas' AND payload IS NOT NULL LIMIT 1)
         FROM generate_series(1, $1) g",
    )
    .bind(extra)
    .execute(&admin)
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM projects.changes")
        .fetch_one(&admin)
        .await?;
    f.insert("replay: changes".into(), json!(total));
    let (mut replay_s, mut copy_s) = (Vec::new(), Vec::new());
    for round in 0..effort.rounds {
        eprintln!(
            "  replay {total} changes: round {}/{}",
            round + 1,
            effort.rounds
        );
        let t = Instant::now();
        let req = pb::WatchChangesRequest {
            page_size: 1000,
            ..Default::default()
        };
        let mut stream = client(d)
            .watch_changes(with_header(req, "authorization", &reader))
            .await?
            .into_inner();
        let mut read = 0_i64;
        while let Some(m) = stream.message().await? {
            if m.kind() == ChangeKind::Checkpoint {
                break;
            }
            read += 1;
        }
        replay_s.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(read == total, "the replay read {read} of {total} changes");
        let t = Instant::now();
        #[expect(
            clippy::disallowed_methods,
            reason = "the baseline's COPY TO, outside any call"
        )]
        let mut conn = admin.acquire().await?;
        let mut out = conn
            .copy_out_raw("COPY (SELECT * FROM projects.changes ORDER BY pos, id) TO STDOUT")
            .await?;
        let mut bytes = 0_usize;
        while let Some(chunk) = tokio_stream::StreamExt::next(&mut out).await {
            bytes += chunk?.len();
        }
        copy_s.push(t.elapsed().as_secs_f64());
        f.insert("replay: COPY bytes".into(), json!(bytes));
    }
    put(&mut f, "replay: WatchChanges s", &replay_s);
    put(&mut f, "replay: COPY TO s", &copy_s);
    let ratios: Vec<f64> = replay_s
        .iter()
        .zip(&copy_s)
        .map(|(r, c)| r / c.max(f64::EPSILON))
        .collect();
    let replay = put(&mut f, "replay: WatchChanges / COPY TO", &ratios);
    targets.push(Target::at_most(
        "changes: backlog replay / COPY TO of the same rows",
        3.0,
        replay,
    ));
    Ok(Outcome {
        name: "changes",
        figures: f,
        targets,
    })
}
