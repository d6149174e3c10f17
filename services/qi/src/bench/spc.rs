//! The `spc` scenario: SPC of 10,000 points, by the engine in this process and by the
//! metric service through the gateway, computed from values sent and from a stored series.

use std::time::Instant;

use anyhow::Context as _;
use qi_platform::convert::date;
use qi_proto::metrics as pb;
use qi_spc as engine;
use serde_json::{Map, json};
use tonic::metadata::{Ascii, MetadataValue};

use super::figures::put;
use super::headers::{bearer, with_header};
use super::metric::{self, MetricClient};
use super::rounds::p50_of;
use super::{Deployment, Effort, Outcome, Target};

/// The points of every chart.
const POINTS: usize = 10_000;

/// SPC of 10,000 points: the engine in this process (the baseline), `ComputeSpc` through
/// the gateway with 10,000 values against the same call with one value (what the 10,000
/// points add in the service, on the wire and in the gateway), and `GetSpcChart` of a
/// stored 10,000-period metric with a rebase point (SQL aggregation included), full and
/// summary views; and the parts of the stored full chart (issue 38): the same rows read by
/// raw SQL, plus `ComputeSpc` of their values (full view: computing and encoding).
pub(super) async fn spc(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    let values = spc_values(POINTS);
    let engine_ms = engine_ms(&values, effort)?;
    let token = bearer(&d.token("bench-metrics", &["improvement_team"])?)?;
    let client = metric::client(d);
    store(&mut client.clone(), &token, &values).await?;

    let compute = |values: Vec<f64>, view: pb::SpcChartView| {
        let (client, token) = (client.clone(), token.clone());
        let options = pb::SpcOptions {
            improvement_direction: pb::ImprovementDirection::Decrease as i32,
            target: Some(48.0),
            rebase_positions: if values.len() > POINTS / 2 {
                vec![(POINTS / 2) as i32]
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        move || {
            let (mut c, t) = (client.clone(), token.clone());
            let req = pb::ComputeSpcRequest {
                values: values.clone(),
                options: Some(options.clone()),
                view: view as i32,
            };
            async move {
                c.compute_spc(with_header(req, "authorization", &t))
                    .await
                    .map(|_| ())
            }
        }
    };
    let stored = |view: pb::SpcChartView| {
        let (client, token) = (client.clone(), token.clone());
        move || {
            let (mut c, t) = (client.clone(), token.clone());
            let req = pb::GetSpcChartRequest {
                metric: "sites/BAS/metrics/bench-spc".into(),
                view: view as i32,
                ..Default::default()
            };
            async move {
                c.get_spc_chart(with_header(req, "authorization", &t))
                    .await
                    .map(|_| ())
            }
        }
    };
    let raw = super::raw_pool(d, 1, Some("metrics")).await?;
    // The service's read of a one-row-per-period series, as a client would write it.
    let sql_read = {
        let pool = raw.clone();
        move || {
            let pool = pool.clone();
            async move {
                let rows = sqlx::query(
                    "SELECT period, value, count, numerator, denominator FROM measurement
                     WHERE metric_uid = (SELECT uid FROM metric WHERE site = 'BAS'
                                         AND id = 'bench-spc')
                     ORDER BY period",
                )
                .fetch_all(&pool)
                .await
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
                if rows.len() == POINTS {
                    Ok(())
                } else {
                    Err(tonic::Status::internal(format!("read {} rows", rows.len())))
                }
            }
        }
    };
    let mut f = Map::new();
    f.insert("points".into(), json!(POINTS));
    let engine = put(&mut f, "engine 10,000 points ms (in process)", &engine_ms);
    let full = pb::SpcChartView::Full;
    let many = p50_of(
        &mut f,
        "ComputeSpc 10,000 points",
        effort,
        compute(values.clone(), full),
    )
    .await;
    let summary = p50_of(
        &mut f,
        "ComputeSpc 10,000 points, summary view",
        effort,
        compute(values.clone(), pb::SpcChartView::Summary),
    )
    .await;
    let one = p50_of(
        &mut f,
        "ComputeSpc 1 point",
        effort,
        compute(vec![50.0], full),
    )
    .await;
    let stored_full = p50_of(
        &mut f,
        "GetSpcChart 10,000 stored, full",
        effort,
        stored(pb::SpcChartView::Full),
    )
    .await;
    let sql = p50_of(&mut f, "raw SQL read of the 10,000 rows", effort, sql_read).await;
    raw.close().await;
    let parts = stored_full / (sql + many);
    f.insert(
        "GetSpcChart full / (raw SQL read + ComputeSpc full)".into(),
        json!(parts),
    );
    p50_of(
        &mut f,
        "GetSpcChart 10,000 stored, summary",
        effort,
        stored(pb::SpcChartView::Summary),
    )
    .await;
    // What 10,000 points cost over a 1-point call: with the summary view, the service's
    // work (reading 80 kB of values, the chart, a small answer); with the full view, also
    // encoding, forwarding and decoding every point (about 1.5 MB).
    let in_service = summary - one;
    f.insert(
        "ComputeSpc: added by 10,000 points, summary view ms (the service's work)".into(),
        json!(in_service),
    );
    f.insert(
        "ComputeSpc: added by 10,000 points, full view ms (with every point on the wire)".into(),
        json!(many - one),
    );
    Ok(Outcome {
        name: "spc",
        figures: f,
        targets: vec![
            Target::at_most("SPC engine, 10,000 points (ms)", 5.0, engine),
            Target::at_most(
                "SPC of 10,000 points in the service: ComputeSpc summary over a 1-point call (ms)",
                5.0,
                in_service,
            ),
            Target::at_most(
                "GetSpcChart 10,000 stored, full: over its parts (raw SQL read + ComputeSpc full)",
                1.5,
                parts,
            ),
        ],
    })
}

/// The engine alone, many times over, in this process: each run's milliseconds.
fn engine_ms(values: &[f64], effort: Effort) -> anyhow::Result<Vec<f64>> {
    let options = engine::SpcOptions {
        improvement_direction: engine::ImprovementDirection::Decrease,
        target: Some(48.0),
        rebase_positions: vec![POINTS / 2],
        ..engine::SpcOptions::default()
    };
    let runs = (effort.rounds * 100).max(20);
    let mut engine_ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let chart = engine::compute(values, &options)?;
        engine_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(chart.points.len() == POINTS, "the engine lost points");
    }
    Ok(engine_ms)
}

/// Stores `values` as the daily series of the metric `bench-spc` from 1990, with a rebase
/// point half-way.
async fn store(
    c: &mut MetricClient,
    token: &MetadataValue<Ascii>,
    values: &[f64],
) -> anyhow::Result<()> {
    metric::create(
        c,
        token,
        "bench-spc",
        pb::Metric {
            display_name: "Bench SPC".into(),
            kind: pb::MetricKind::Qms as i32,
            improvement_direction: pb::ImprovementDirection::Decrease as i32,
            frequency: pb::MetricFrequency::Day as i32,
            value_type: pb::MetricValueType::Mean as i32,
            target: Some(48.0),
            ..Default::default()
        },
    )
    .await?;
    let start = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap_or_default();
    let measurements: Vec<pb::Measurement> = values
        .iter()
        .enumerate()
        .map(|(i, v)| pb::Measurement {
            period: Some(date(start + chrono::Days::new(i as u64))),
            value: Some(*v),
            ..Default::default()
        })
        .collect();
    c.batch_create_measurements(with_header(
        pb::BatchCreateMeasurementsRequest {
            parent: "sites/BAS/metrics/bench-spc".into(),
            measurements,
            request_id: String::new(),
        },
        "authorization",
        token,
    ))
    .await
    .context("storing the SPC series")?;
    c.create_rebase_point(with_header(
        pb::CreateRebasePointRequest {
            parent: "sites/BAS/metrics/bench-spc".into(),
            rebase_point_id: "half".into(),
            rebase_point: Some(pb::RebasePoint {
                period: Some(date(start + chrono::Days::new((POINTS / 2) as u64))),
                reason: "bench".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        },
        "authorization",
        token,
    ))
    .await
    .context("adding the rebase point")?;
    Ok(())
}

/// Deterministic values of a process that shifts once (so the rules have work to do).
fn spc_values(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x % 1_000) as f64 / 100.0;
            (if i < n / 2 { 50.0 } else { 46.0 }) + noise
        })
        .collect()
}
