//! The `measurement` table: a validated batch written set-based (`COPY` for periods the
//! metric holds nothing for, one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT` for the
//! rest), one batch of a metric at a time, and the paged list.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use qi_platform::convert::timestamp;
use qi_platform::paging::Page;
use qi_platform::{Error, SiteScope};
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use super::{COLLECTION, Columns};
use crate::definitions::Metric;
use crate::dimensions::{self, Labels};

/// What a batch changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) created: i64,
    pub(crate) updated: i64,
    pub(crate) unchanged: i64,
}

/// The namespace of the advisory locks that take a metric's batches in turn ("METR" in the
/// high half, the metric's uid in the low half; other services use other keys).
const INGEST_LOCK: i64 = 0x4D45_5452_0000_0000;

/// Writes a validated batch, inside the transaction that read its metric `FOR SHARE` (so
/// the recording rules cannot change meanwhile), one batch of a metric at a time.
///
/// Rows of periods the metric holds nothing for yet (the usual case for new data) cannot
/// collide with a stored key, so they are `COPY`ed in; the rest go through one
/// `INSERT … ON CONFLICT` statement, which inserts new keys, replaces changed values and
/// leaves identical ones alone (so a re-sent batch writes nothing).
pub(crate) async fn write(
    conn: &mut PgConnection,
    metric_uid: i64,
    c: Columns,
) -> Result<Outcome, Error> {
    let (Some(first), Some(last)) = (c.period.iter().min(), c.period.iter().max()) else {
        return Ok(Outcome {
            created: 0,
            updated: 0,
            unchanged: 0,
        });
    };
    // Batches of one metric write in turn (held to the end of the transaction), so what is
    // read below stays true until the rows are in; other metrics' batches do not wait.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(INGEST_LOCK ^ metric_uid)
        .execute(&mut *conn)
        .await?;
    let mut stored: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT DISTINCT period FROM measurement
         WHERE metric_uid = $1 AND period BETWEEN $2 AND $3",
    )
    .bind(metric_uid)
    .bind(first)
    .bind(last)
    .fetch_all(&mut *conn)
    .await?;
    stored.sort_unstable();
    let (old, new) = c.partition(|p| stored.binary_search(p).is_ok());
    let mut outcome = Outcome {
        created: 0,
        updated: 0,
        unchanged: 0,
    };
    if old.len() > 0 {
        outcome = upsert(conn, metric_uid, &old).await?;
    }
    if new.len() > 0 {
        outcome.created += copy_new(conn, metric_uid, &new).await?;
    }
    Ok(outcome)
}

/// COPYs rows whose keys are all new; returns how many. Every text value was validated
/// (dates, site codes, ward ids and stratum labels have no tab, newline or backslash), and
/// Rust prints an `f64` as the shortest decimal that reads back to the same bits.
async fn copy_new(conn: &mut PgConnection, metric_uid: i64, c: &Columns) -> Result<i64, Error> {
    let mut text = String::with_capacity(c.len() * 72);
    let opt_f = |out: &mut String, x: Option<f64>| match x {
        Some(x) => {
            let _ = write!(out, "{x}");
        }
        None => out.push_str("\\N"),
    };
    for i in 0..c.len() {
        let _ = write!(
            text,
            "{metric_uid}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t",
            c.period[i],
            c.site[i],
            c.ward[i],
            c.labels[0][i],
            c.labels[1][i],
            c.labels[2][i],
            c.labels[3][i]
        );
        opt_f(&mut text, c.value[i]);
        text.push('\t');
        match c.count[i] {
            Some(n) => {
                let _ = write!(text, "{n}");
            }
            None => text.push_str("\\N"),
        }
        text.push('\t');
        opt_f(&mut text, c.numerator[i]);
        text.push('\t');
        opt_f(&mut text, c.denominator[i]);
        text.push('\n');
    }
    let mut copy = conn
        .copy_in_raw(
            "COPY measurement (metric_uid, period, site, ward, imd_quintile, ethnicity, age_band,
                 sex, value, count, numerator, denominator) FROM STDIN",
        )
        .await?;
    copy.send(text.into_bytes()).await?;
    let created = copy.finish().await?;
    Ok(i64::try_from(created).unwrap_or(i64::MAX))
}

/// Writes a batch in one statement: new keys are inserted, changed values replace the
/// stored ones, identical ones are left alone.
async fn upsert(conn: &mut PgConnection, metric_uid: i64, c: &Columns) -> Result<Outcome, Error> {
    let (created, updated): (i64, i64) = sqlx::query_as(
        "WITH up AS (
             INSERT INTO measurement AS m (metric_uid, period, site, ward, imd_quintile,
                 ethnicity, age_band, sex, value, count, numerator, denominator)
             SELECT $1, i.* FROM UNNEST($2::date[], $3::text[], $4::text[], $5::text[],
                 $6::text[], $7::text[], $8::text[], $9::float8[], $10::int8[], $11::float8[],
                 $12::float8[]) AS i
             ON CONFLICT (metric_uid, period, site, ward, imd_quintile, ethnicity, age_band, sex)
             DO UPDATE SET value = EXCLUDED.value, count = EXCLUDED.count,
                 numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator,
                 update_time = now()
             WHERE (m.value, m.count, m.numerator, m.denominator)
                 IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.count, EXCLUDED.numerator,
                                   EXCLUDED.denominator)
             RETURNING (xmax = 0) AS inserted
         )
         SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up",
    )
    .bind(metric_uid)
    .bind(&c.period)
    .bind(&c.site)
    .bind(&c.ward)
    .bind(&c.labels[0])
    .bind(&c.labels[1])
    .bind(&c.labels[2])
    .bind(&c.labels[3])
    .bind(&c.value)
    .bind(&c.count)
    .bind(&c.numerator)
    .bind(&c.denominator)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Outcome {
        created,
        updated,
        unchanged: c.len() as i64 - created - updated,
    })
}

#[derive(sqlx::FromRow)]
struct MeasurementRow {
    id: i64,
    period: NaiveDate,
    site: String,
    ward: String,
    imd_quintile: String,
    ethnicity: String,
    age_band: String,
    sex: String,
    value: Option<f64>,
    count: Option<i64>,
    numerator: Option<f64>,
    denominator: Option<f64>,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

impl MeasurementRow {
    fn to_proto(&self, metric: &Metric, metric_name: &str) -> pb::Measurement {
        let (site, ward) = if self.site.is_empty() {
            (
                metric
                    .owner
                    .site_column()
                    .map(|s| format!("sites/{s}"))
                    .unwrap_or_default(),
                metric.ward_name().unwrap_or_default(),
            )
        } else if self.ward.is_empty() {
            (format!("sites/{}", self.site), String::new())
        } else {
            (
                format!("sites/{}", self.site),
                format!("sites/{}/wards/{}", self.site, self.ward),
            )
        };
        let labels: Labels = [
            self.imd_quintile.clone(),
            self.ethnicity.clone(),
            self.age_band.clone(),
            self.sex.clone(),
        ];
        pb::Measurement {
            name: format!("{metric_name}/{COLLECTION}/{}", self.id),
            period: Some(qi_platform::convert::date(self.period)),
            site,
            ward,
            stratum: Some(dimensions::stratum_of(&labels)).filter(|s| *s != pb::Stratum::default()),
            value: self.value,
            numerator: self.numerator,
            denominator: self.denominator,
            count: self.count.unwrap_or(0),
            create_time: Some(timestamp(self.create_time)),
            update_time: Some(timestamp(self.update_time)),
        }
    }
}

/// One page of a metric's measurements in `[from, before)`, oldest period first.
pub(crate) async fn list(
    conn: &mut PgConnection,
    metric: &Metric,
    sites: &SiteScope,
    from: Option<NaiveDate>,
    before: Option<NaiveDate>,
    page: &Page,
) -> Result<(Vec<pb::Measurement>, String), Error> {
    let bad = || Error::invalid("page_token", "not a token this list returned");
    let after_period = page
        .after_key(0)
        .map(str::parse::<NaiveDate>)
        .transpose()
        .map_err(|_| bad())?;
    let after_id = page
        .after_key(1)
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| bad())?;
    let rows: Vec<MeasurementRow> = sqlx::query_as(
        "SELECT id, period, site, ward, imd_quintile, ethnicity, age_band, sex, value, count,
                numerator, denominator, create_time, update_time
         FROM measurement
         WHERE metric_uid = $1
           AND ($2::date IS NULL OR period >= $2) AND ($3::date IS NULL OR period < $3)
           AND ($4::date IS NULL OR (period, id) > ($4, $5))
           AND ($7::text[] IS NULL OR site = '' OR site = ANY($7))
         ORDER BY period, id
         LIMIT $6",
    )
    .bind(metric.uid)
    .bind(from)
    .bind(before)
    .bind(after_period)
    .bind(after_id.unwrap_or(0))
    .bind(page.limit())
    .bind(sites.sql_filter())
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.period.to_string(), r.id.to_string()]);
    let name = metric.name();
    Ok((
        rows.iter().map(|r| r.to_proto(metric, &name)).collect(),
        next,
    ))
}
