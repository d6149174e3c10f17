//! The `ingest` scenario: 100,000 measurements through the gateway in batches, against a
//! raw `COPY` of the same rows into tables of the same shape in the same database.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use qi_platform::convert::date;
use qi_proto::metrics as pb;
use serde_json::{Map, json};
use tonic::metadata::{Ascii, MetadataValue};

use super::figures::put;
use super::headers::{bearer, with_header};
use super::metric::{self, MetricClient};
use super::{Deployment, Effort, Outcome, Target};

/// `BatchCreateMeasurements` of 100,000 measurements through the gateway (batches of
/// 10,000, one after another, each with a request id), against a raw `COPY` of the same
/// rows into a table of the same shape and key in the same database; then the same
/// measurements sent again (idempotent: nothing changes).
pub(super) async fn ingest(d: &Deployment, effort: Effort) -> anyhow::Result<Outcome> {
    const BATCH: usize = 10_000;
    let n = bulk_rows(effort);
    let admin = super::raw_pool(d, 2, None).await?;
    let token = bearer(&d.token("bench-metrics", &["improvement_team"])?)?;
    let client = metric::client(d);
    metric::create(
        &mut client.clone(),
        &token,
        "bench-ingest",
        pb::Metric {
            display_name: "Bench ingest".into(),
            kind: pb::MetricKind::Qms as i32,
            improvement_direction: pb::ImprovementDirection::Decrease as i32,
            frequency: pb::MetricFrequency::Day as i32,
            value_type: pb::MetricValueType::Rate as i32,
            rate_per: 100.0,
            dimensions: vec![
                pb::InequalityDimension::ImdQuintile as i32,
                pb::InequalityDimension::Sex as i32,
            ],
            imd_edition: pb::ImdEdition::Imd2019 as i32,
            ..Default::default()
        },
    )
    .await?;
    let uid: i64 = sqlx::query_scalar(
        "SELECT uid FROM metrics.metric WHERE site = 'BAS' AND id = 'bench-ingest'",
    )
    .fetch_one(&admin)
    .await?;
    sqlx::query("CREATE SCHEMA IF NOT EXISTS bench")
        .execute(&admin)
        .await?;
    // The same shape with the same key (the baseline pays for the index the service keeps,
    // as the HR sync's does), and a bare one, no index at all, for reference.
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench.measurement_copy (LIKE metrics.measurement INCLUDING ALL)",
    )
    .execute(&admin)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench.measurement_bare
             (LIKE metrics.measurement INCLUDING DEFAULTS INCLUDING IDENTITY)",
    )
    .execute(&admin)
    .await?;
    let rows = synthetic_measurements(n);
    let text = measurement_copy_text(uid, &rows);
    let batches: Vec<Vec<pb::Measurement>> = rows.chunks(BATCH).map(<[_]>::to_vec).collect();
    let (mut ingest_s, mut resend_s, mut copy_s, mut bare_s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..effort.rounds {
        eprintln!("  {n} measurements: round {}/{}", round + 1, effort.rounds);
        sqlx::query("TRUNCATE metrics.measurement")
            .execute(&admin)
            .await?;
        let requests = batch_requests(&batches, &format!("bench-{round}-a"));
        let t = Instant::now();
        let (created, _) = send_batches(&client, &token, requests).await?;
        ingest_s.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(created == n as i64, "the ingest created {created} of {n}");
        let requests = batch_requests(&batches, &format!("bench-{round}-b"));
        let t = Instant::now();
        let (_, unchanged) = send_batches(&client, &token, requests).await?;
        resend_s.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            unchanged == n as i64,
            "the re-send left {unchanged} of {n} unchanged"
        );
        copy_s.push(copy_measurements(&admin, "bench.measurement_copy", &text).await?);
        bare_s.push(copy_measurements(&admin, "bench.measurement_bare", &text).await?);
    }
    let mut f = Map::new();
    f.insert("batch size".into(), json!(BATCH));
    let ingest = put(&mut f, &format!("ingest {n} s"), &ingest_s);
    let resend = put(&mut f, &format!("re-send {n} (unchanged) s"), &resend_s);
    let copy = put(&mut f, &format!("COPY {n} (same key) s"), &copy_s);
    let bare = put(&mut f, &format!("COPY {n} (no index) s"), &bare_s);
    let ratio = ingest / copy;
    f.insert(format!("ingest/COPY {n}"), json!(ratio));
    f.insert(format!("ingest/COPY (no index) {n}"), json!(ingest / bare));
    f.insert(format!("re-send/COPY {n}"), json!(resend / copy));
    f.insert(
        format!("ingest {n} measurements/s"),
        json!(n as f64 / ingest),
    );
    sqlx::query("TRUNCATE metrics.measurement")
        .execute(&admin)
        .await?;
    sqlx::query("DROP SCHEMA bench CASCADE")
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(Outcome {
        name: "ingest",
        figures: f,
        targets: vec![Target::at_most(
            &format!("ingest {n} measurements / COPY"),
            2.0,
            ratio,
        )],
    })
}

/// The measurements ingested: 100,000 in the full run (a few hundred in the quick one), the
/// HR sync's smaller extracts' size. Not its largest since that became 1,500,000 (issue
/// 27): 24 strata a day from 2000 would then run past today, which ingest refuses.
fn bulk_rows(effort: Effort) -> usize {
    const FULL: usize = 100_000;
    effort
        .sync_rows
        .iter()
        .copied()
        .max()
        .unwrap_or(1_000)
        .min(FULL)
}

/// Synthetic daily measurements of a rate by IMD quintile (six labels) and sex (four):
/// 24 strata a day from 1 January 2000, deterministic.
fn synthetic_measurements(n: usize) -> Vec<pb::Measurement> {
    const IMD: [&str; 6] = ["1", "2", "3", "4", "5", "U"];
    const SEX: [&str; 4] = ["1", "2", "9", "X"];
    let start = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default();
    (0..n)
        .map(|i| {
            let day = start + chrono::Days::new((i / 24) as u64);
            pb::Measurement {
                period: Some(date(day)),
                stratum: Some(pb::Stratum {
                    imd_quintile: IMD[i % 6].into(),
                    sex: SEX[(i / 6) % 4].into(),
                    ..Default::default()
                }),
                numerator: Some((i % 17) as f64),
                denominator: Some(100.0 + (i % 23) as f64),
                ..Default::default()
            }
        })
        .collect()
}

/// The same measurements as COPY text for a table shaped like `metrics.measurement`.
fn measurement_copy_text(uid: i64, rows: &[pb::Measurement]) -> String {
    let mut out = String::with_capacity(rows.len() * 64);
    for m in rows {
        let p = m.period.unwrap_or_default();
        let s = m.stratum.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "{uid}\t{:04}-{:02}-{:02}\t\t\t{}\t\t\t{}\t\\N\t\\N\t{}\t{}",
            p.year,
            p.month,
            p.day,
            s.imd_quintile,
            s.sex,
            m.numerator.unwrap_or_default(),
            m.denominator.unwrap_or_default()
        );
    }
    out
}

/// The batches of one round as requests, each with its own request id (built before the
/// clock starts: cloning 100,000 measurements is the bench's cost, not the service's).
fn batch_requests(
    batches: &[Vec<pb::Measurement>],
    round: &str,
) -> Vec<pb::BatchCreateMeasurementsRequest> {
    batches
        .iter()
        .enumerate()
        .map(|(i, b)| pb::BatchCreateMeasurementsRequest {
            parent: "sites/BAS/metrics/bench-ingest".into(),
            measurements: b.clone(),
            request_id: format!("{round}-{i}"),
        })
        .collect()
}

/// Sends the batches one after another; returns (created, unchanged).
async fn send_batches(
    client: &MetricClient,
    token: &MetadataValue<Ascii>,
    requests: Vec<pb::BatchCreateMeasurementsRequest>,
) -> anyhow::Result<(i64, i64)> {
    let mut c = client.clone();
    let (mut created, mut unchanged) = (0i64, 0i64);
    for req in requests {
        let resp = c
            .batch_create_measurements(with_header(req, "authorization", token))
            .await
            .context("BatchCreateMeasurements")?
            .into_inner();
        created += i64::from(resp.created_count);
        unchanged += i64::from(resp.unchanged_count);
    }
    Ok((created, unchanged))
}

/// COPYs `text` into `table` (emptied first); returns the seconds the COPY took.
async fn copy_measurements(admin: &sqlx::PgPool, table: &str, text: &str) -> anyhow::Result<f64> {
    // Dynamic: the baseline's table is one of the bench's own names.
    sqlx::QueryBuilder::<sqlx::Postgres>::new("TRUNCATE ")
        .push(table)
        .build()
        .execute(admin)
        .await?;
    #[expect(
        clippy::disallowed_methods,
        reason = "the raw-SQL baseline, outside any call"
    )]
    let mut conn = admin.acquire().await?;
    let statement = format!(
        "COPY {table} (metric_uid, period, site, ward, imd_quintile, ethnicity, age_band, sex,
             value, count, numerator, denominator) FROM STDIN"
    );
    let t = Instant::now();
    let mut copy = conn.copy_in_raw(&statement).await?;
    copy.send(text.as_bytes()).await?;
    copy.finish().await?;
    Ok(t.elapsed().as_secs_f64())
}
