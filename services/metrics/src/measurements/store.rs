//! The `measurement` table: a validated batch written set-based (`COPY` for periods the
//! metric holds nothing for, one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT` for the
//! rest), one batch of a metric at a time, returning what it created or changed (for the
//! change feed); and the paged list.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use qi_filter::Range;
use qi_platform::convert::timestamp;
use qi_platform::extract::Order;
use qi_platform::names::ListScope;
use qi_platform::paging::Page;
use qi_platform::{Error, SiteScope};
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use super::{COLLECTION, Columns};
use crate::definitions::{self, Metric};
use crate::dimensions::{self, Labels};

/// What a batch changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) created: i64,
    pub(crate) updated: i64,
    pub(crate) unchanged: i64,
}

/// A measurement a batch created or changed: who it is, not what (the change feed renders
/// it at delivery, [`by_ids`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Changed {
    /// Created (else: its values changed).
    pub(crate) created: bool,
    /// The site code it is recorded at (a ward's site for a ward's measurement); empty for
    /// none.
    pub(crate) site: String,
    /// Its name.
    pub(crate) name: String,
}

/// What a batch wrote: its counts, and each measurement it created or changed (none it
/// left as it was).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Written {
    pub(crate) outcome: Outcome,
    pub(crate) changed: Vec<Changed>,
}

/// The namespace of the advisory locks that take a metric's batches in turn ("METR" in the
/// high half, the metric's uid in the low half; other services use other keys).
const INGEST_LOCK: i64 = 0x4D45_5452_0000_0000;

/// Writes a validated batch of `metric`, inside the transaction that read it `FOR SHARE`
/// (so the recording rules cannot change meanwhile), one batch of a metric at a time.
///
/// Rows of periods the metric holds nothing for yet (the usual case for new data) cannot
/// collide with a stored key, so they are `COPY`ed in (and read back in one statement, for
/// their ids); the rest go through one `INSERT … ON CONFLICT` statement, which inserts new
/// keys, replaces changed values and leaves identical ones alone (so a re-sent batch writes
/// nothing), returning the rows it inserted or changed.
pub(crate) async fn write(
    conn: &mut PgConnection,
    metric: &Metric,
    c: Columns,
) -> Result<Written, Error> {
    let metric_uid = metric.uid;
    let (Some(first), Some(last)) = (c.period.iter().min(), c.period.iter().max()) else {
        return Ok(Written {
            outcome: Outcome {
                created: 0,
                updated: 0,
                unchanged: 0,
            },
            changed: Vec::new(),
        });
    };
    // Batches of one metric write in turn (held to the end of the transaction), so what is
    // read below stays true until the rows are in; other metrics' batches do not wait.
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", INGEST_LOCK ^ metric_uid)
        .execute(&mut *conn)
        .await?;
    let mut stored = sqlx::query_scalar!(
        "SELECT DISTINCT period FROM measurement
         WHERE metric_uid = $1 AND period BETWEEN $2 AND $3",
        metric_uid,
        first,
        last,
    )
    .fetch_all(&mut *conn)
    .await?;
    stored.sort_unstable();
    let total = c.len();
    let (old, new) = c.partition(|p| stored.binary_search(p).is_ok());
    let mut rows = Vec::new();
    if old.len() > 0 {
        rows = upsert(conn, metric_uid, &old).await?;
    }
    if new.len() > 0 {
        copy_new(conn, metric_uid, &new).await?;
        let mut periods = new.period;
        periods.sort_unstable();
        periods.dedup();
        rows.extend(copied(conn, metric_uid, &periods).await?);
    }
    let name = metric.name();
    let changed: Vec<Changed> = rows
        .into_iter()
        .map(|(created, id, site)| Changed {
            created,
            name: format!("{name}/{COLLECTION}/{id}"),
            site,
        })
        .collect();
    let created = changed.iter().filter(|c| c.created).count();
    let updated = changed.len() - created;
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    Ok(Written {
        outcome: Outcome {
            created: count(created),
            updated: count(updated),
            unchanged: count(total - changed.len()),
        },
        changed,
    })
}

/// What a write created or changed: (created, id, site code).
type Touched = (bool, i64, String);

/// The rows just `COPY`ed into `periods` (which held none of the metric's before the batch,
/// and take no other batch of it meanwhile), each created, in period order.
async fn copied(
    conn: &mut PgConnection,
    metric_uid: i64,
    periods: &[NaiveDate],
) -> Result<Vec<Touched>, Error> {
    let rows = sqlx::query!(
        "SELECT id, site FROM measurement
         WHERE metric_uid = $1 AND period = ANY($2)
         ORDER BY period, id",
        metric_uid,
        periods,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| (true, r.id, r.site)).collect())
}

/// COPYs rows whose keys are all new. Every text value was validated
/// (dates, site codes, ward ids and stratum labels have no tab, newline or backslash), and
/// Rust prints an `f64` as the shortest decimal that reads back to the same bits.
async fn copy_new(conn: &mut PgConnection, metric_uid: i64, c: &Columns) -> Result<(), Error> {
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
    copy.finish().await?;
    Ok(())
}

/// Writes a batch in one statement: new keys are inserted, changed values replace the
/// stored ones, identical ones are left alone. Returns the rows inserted (`true`) or
/// changed.
async fn upsert(
    conn: &mut PgConnection,
    metric_uid: i64,
    c: &Columns,
) -> Result<Vec<Touched>, Error> {
    let rows = sqlx::query!(
        r#"INSERT INTO measurement AS m (metric_uid, period, site, ward, imd_quintile,
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
           RETURNING (xmax = 0) AS "inserted!", id, site"#,
        metric_uid,
        &c.period,
        &c.site,
        &c.ward,
        &c.labels[0],
        &c.labels[1],
        &c.labels[2],
        &c.labels[3],
        // The value arrays hold NULLs: their elements are `Option`s (inferred: non-null).
        c.value.as_slice() as &[Option<f64>],
        c.count.as_slice() as &[Option<i64>],
        c.numerator.as_slice() as &[Option<f64>],
        c.denominator.as_slice() as &[Option<f64>],
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.inserted, r.id, r.site))
        .collect())
}

struct MeasurementRow {
    metric_uid: i64,
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

/// Which measurements a page lists, beyond whose they are.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    /// Periods starting in this range.
    pub(crate) periods: Range<NaiveDate>,
    /// Last changed in this range (a nightly extract's).
    pub(crate) updated: Range<DateTime<Utc>>,
    /// Oldest period first (one metric), or oldest change first.
    pub(crate) order: Order,
}

/// One page of a metric's measurements `wanted`: oldest period first, or oldest change
/// first. A caller of `sites` gets only those at its sites and at none.
pub(crate) async fn list(
    conn: &mut PgConnection,
    metric: &Metric,
    sites: &SiteScope,
    wanted: &Wanted,
    page: &Page,
) -> Result<(Vec<pb::Measurement>, String), Error> {
    if wanted.order == Order::UpdateTime {
        return list_every(conn, Metrics::One(metric.uid), sites, wanted, page).await;
    }
    let (from, before) = (wanted.periods.from, wanted.periods.before);
    let (updated_from, updated_before) = (wanted.updated.from, wanted.updated.before);
    let after_period = page.parsed_key::<NaiveDate>(0)?;
    let after_id = page.parsed_key::<i64>(1)?;
    let sites = sites.sql_filter();
    let rows = sqlx::query_as!(
        MeasurementRow,
        "SELECT metric_uid, id, period, site, ward, imd_quintile, ethnicity, age_band, sex, value,
                count,
                numerator, denominator, create_time, update_time
         FROM measurement
         WHERE metric_uid = $1
           AND ($2::date IS NULL OR period >= $2) AND ($3::date IS NULL OR period < $3)
           AND ($4::date IS NULL OR (period, id) > ($4, $5))
           AND ($7::text[] IS NULL OR site = '' OR site = ANY($7))
           AND ($8::timestamptz IS NULL OR update_time >= $8)
           AND ($9::timestamptz IS NULL OR update_time < $9)
         ORDER BY period, id
         LIMIT $6",
        metric.uid,
        from,
        before,
        after_period,
        after_id.unwrap_or(0),
        page.limit(),
        sites.as_deref(),
        updated_from,
        updated_before,
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.period.to_string(), r.id.to_string()]);
    let name = metric.name();
    Ok((
        rows.iter().map(|r| r.to_proto(metric, &name)).collect(),
        next,
    ))
}

/// Whose measurements [`list_every`] reads.
#[derive(Debug)]
pub(crate) enum Metrics {
    /// One metric's (its internal key).
    One(i64),
    /// Every metric's in a scope: the trust-wide ones, or those of sites (`None`: every site).
    Every(ListScope),
}

/// One page of the measurements `wanted` of `metrics`, oldest change first (along
/// `measurement_update_time`). A caller of `sites` gets only those at its sites and at none,
/// as of one metric.
pub(crate) async fn list_every(
    conn: &mut PgConnection,
    metrics: Metrics,
    sites: &SiteScope,
    wanted: &Wanted,
    page: &Page,
) -> Result<(Vec<pb::Measurement>, String), Error> {
    let (one, scope) = match metrics {
        Metrics::One(uid) => (Some(uid), None),
        Metrics::Every(scope) => (None, Some(scope)),
    };
    let order = Order::UpdateTime;
    let sites = sites.sql_filter();
    let rows = sqlx::query_as!(
        MeasurementRow,
        "SELECT m.metric_uid, m.id, m.period, m.site, m.ward, m.imd_quintile, m.ethnicity,
                m.age_band, m.sex, m.value, m.count, m.numerator, m.denominator, m.create_time,
                m.update_time
         FROM measurement m
         WHERE ($1::bigint IS NULL OR m.metric_uid = $1)
           AND ($2::boolean IS NULL OR m.metric_uid IN (
                SELECT d.uid FROM metric d
                WHERE CASE WHEN $2 THEN d.site IS NULL
                           ELSE d.site IS NOT NULL AND ($3::text[] IS NULL OR d.site = ANY($3))
                      END))
           AND ($4::text[] IS NULL OR m.site = '' OR m.site = ANY($4))
           AND ($5::date IS NULL OR m.period >= $5) AND ($6::date IS NULL OR m.period < $6)
           AND ($7::timestamptz IS NULL OR m.update_time >= $7)
           AND ($8::timestamptz IS NULL OR m.update_time < $8)
           AND ($9::timestamptz IS NULL OR (m.update_time, m.id) > ($9, $10))
         ORDER BY m.update_time, m.id
         LIMIT $11",
        one,
        scope.as_ref().map(|s| s.trust),
        scope.as_ref().and_then(|s| s.sites.as_deref()),
        sites.as_deref(),
        wanted.periods.from,
        wanted.periods.before,
        wanted.updated.from,
        wanted.updated.before,
        order.after_time(page)?,
        page.parsed_key::<i64>(0)?.unwrap_or(0),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| order.key(r.id.to_string(), r.update_time));
    let measurements = of_metrics(conn, &rows)
        .await?
        .into_iter()
        .map(|(measurement, _)| measurement)
        .collect();
    Ok((measurements, next))
}

/// The measurements of `ids` as they are now (those gone are left out), each with the site
/// whose callers read it (`None`: every reader of its metric), for the change feed.
pub(crate) async fn by_ids(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<(pb::Measurement, Option<String>)>, Error> {
    let rows = sqlx::query_as!(
        MeasurementRow,
        "SELECT metric_uid, id, period, site, ward, imd_quintile, ethnicity, age_band, sex, value,
                count, numerator, denominator, create_time, update_time
         FROM measurement WHERE id = ANY($1)",
        ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    of_metrics(conn, &rows).await
}

/// `rows` as their metrics name them (the metrics read in one statement), each with the site
/// whose callers read it.
async fn of_metrics(
    conn: &mut PgConnection,
    rows: &[MeasurementRow],
) -> Result<Vec<(pb::Measurement, Option<String>)>, Error> {
    let mut uids: Vec<i64> = rows.iter().map(|r| r.metric_uid).collect();
    uids.sort_unstable();
    uids.dedup();
    let metrics: HashMap<i64, (String, Metric)> = definitions::store::by_uids(conn, &uids)
        .await?
        .into_iter()
        .map(|m| (m.uid, (m.name(), m)))
        .collect();
    rows.iter()
        .map(|r| {
            let (name, metric) = metrics.get(&r.metric_uid).ok_or_else(|| {
                Error::Internal(anyhow::anyhow!("metric {} vanished", r.metric_uid))
            })?;
            Ok((r.to_proto(metric, name), super::readers(metric, &r.site)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use qi_platform::names::Owner;

    use super::*;
    use crate::definitions::ValueType;
    use crate::testing::{day, metric, pool, site, transaction};

    /// Adds a value at `site` (empty: none) for the month starting `period`, in no stratum.
    fn push(c: &mut Columns, period: &str, site: &str, value: f64) {
        c.period.push(day(period));
        c.site.push(site.to_owned());
        c.ward.push(String::new());
        for label in &mut c.labels {
            label.push(String::new());
        }
        c.value.push(Some(value));
        c.count.push(None);
        c.numerator.push(None);
        c.denominator.push(None);
    }

    fn batch(rows: &[(&str, &str, f64)]) -> Columns {
        let mut c = Columns::default();
        for (period, site, value) in rows {
            push(&mut c, period, site, *value);
        }
        c
    }

    fn outcome(created: i64, updated: i64, unchanged: i64) -> Outcome {
        Outcome {
            created,
            updated,
            unchanged,
        }
    }

    async fn everything(
        conn: &mut PgConnection,
        m: &Metric,
        sites: &SiteScope,
    ) -> anyhow::Result<Vec<pb::Measurement>> {
        Ok(list(
            conn,
            m,
            sites,
            &Wanted::default(),
            &Page::parse(500, "", "p")?,
        )
        .await?
        .0)
    }

    /// Each measurement as listed: `{period} {site} {value}`.
    fn shown(ms: &[pb::Measurement]) -> Vec<String> {
        ms.iter()
            .map(|m| {
                let p = m.period.unwrap_or_default();
                let value = m.value.map_or("-".to_owned(), |v| v.to_string());
                format!("{}-{:02}-{:02} {} {value}", p.year, p.month, p.day, m.site)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_resent_batch_writes_nothing_and_changes_write_only_themselves() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        let m = metric(&mut conn, Owner::Trust, "los", ValueType::Mean).await?;
        let scope = SiteScope::TrustWide;
        assert_eq!(
            write(&mut conn, &m, batch(&[])).await?.outcome,
            outcome(0, 0, 0)
        );
        let first = [
            ("2026-01-01", "BAS", 1.0),
            ("2026-01-01", "SOU", 2.0),
            ("2026-02-01", "BAS", 3.0),
            ("2026-02-01", "SOU", 4.0),
        ];
        let made = write(&mut conn, &m, batch(&first)).await?;
        assert_eq!(made.outcome, outcome(4, 0, 0));
        let resent = write(&mut conn, &m, batch(&first)).await?;
        assert_eq!(resent.outcome, outcome(0, 0, 4));
        assert!(resent.changed.is_empty(), "a re-sent batch changes nothing");
        let before = everything(&mut conn, &m, &scope).await?;
        // Each created measurement as it is listed, with its site.
        let created: Vec<_> = made.changed.iter().map(|c| c.created).collect();
        assert_eq!(created, [true; 4]);
        let sites: Vec<_> = made.changed.iter().map(|c| c.site.as_str()).collect();
        assert_eq!(sites, ["BAS", "SOU", "BAS", "SOU"]);
        let made: Vec<_> = made.changed.into_iter().map(|c| c.name).collect();
        let listed: Vec<_> = before.iter().map(|m| m.name.clone()).collect();
        assert_eq!(made, listed);
        // A changed value, an unchanged one, a new key in a stored period, a new period.
        let next = [
            ("2026-01-01", "BAS", 1.5),
            ("2026-02-01", "SOU", 4.0),
            ("2026-02-01", "BRM", 5.0),
            ("2026-03-01", "BAS", 6.0),
        ];
        let written = write(&mut conn, &m, batch(&next)).await?;
        assert_eq!(written.outcome, outcome(2, 1, 1));
        let after = everything(&mut conn, &m, &scope).await?;
        assert_eq!(
            shown(&after),
            [
                "2026-01-01 sites/BAS 1.5",
                "2026-01-01 sites/SOU 2",
                "2026-02-01 sites/BAS 3",
                "2026-02-01 sites/SOU 4",
                "2026-02-01 sites/BRM 5",
                "2026-03-01 sites/BAS 6",
            ]
        );
        // Only what changed comes back, by name.
        let mut changed: Vec<_> = written
            .changed
            .iter()
            .map(|c| (c.created, c.name.clone()))
            .collect();
        changed.sort();
        let listed = |i: usize| after[i].name.clone();
        let mut expected = vec![(false, listed(0)), (true, listed(4)), (true, listed(5))];
        expected.sort();
        assert_eq!(changed, expected);
        // Read back by id (as the change feed renders them), each as it is listed, with the
        // site whose callers read it; an id that is gone is left out.
        let ids: Vec<i64> = after
            .iter()
            .filter_map(|m| m.name.rsplit('/').next()?.parse().ok())
            .chain([i64::MAX])
            .collect();
        let mut found = by_ids(&mut conn, &ids).await?;
        found.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let mut expected: Vec<_> = after
            .iter()
            .map(|m| (m.clone(), m.site.strip_prefix("sites/").map(str::to_owned)))
            .collect();
        expected.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        assert_eq!(found, expected);
        // Changed in place: every measurement keeps its name (its id).
        for old in &before {
            assert!(after.iter().any(|new| new.name == old.name));
        }
        Ok(())
    }

    #[tokio::test]
    async fn values_read_back_bit_for_bit_through_copy_and_upsert() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let mean = metric(&mut conn, site("BAS"), "los", ValueType::Mean).await?;
        let rate = metric(&mut conn, site("BAS"), "falls", ValueType::Rate).await?;
        let odd = 0.1 + 0.2;
        let mut c = batch(&[("2026-01-01", "", odd)]);
        c.count[0] = Some(7);
        c.labels = ["1", "A", "18-64", "F"].map(|l| vec![l.to_owned()]);
        write(&mut conn, &mean, c).await?;
        let mut r = batch(&[("2026-01-01", "", 0.0)]);
        (r.value[0], r.numerator[0], r.denominator[0]) = (None, Some(1.0 / 3.0), Some(odd));
        write(&mut conn, &rate, r).await?;
        let got = everything(&mut conn, &mean, &SiteScope::TrustWide).await?;
        assert_eq!((got[0].value, got[0].count), (Some(odd), 7));
        let stratum = got[0].stratum.clone().expect("a stratum");
        assert_eq!(
            [
                stratum.imd_quintile,
                stratum.ethnic_category,
                stratum.age_band,
                stratum.sex
            ],
            ["1", "A", "18-64", "F"]
        );
        let got = everything(&mut conn, &rate, &SiteScope::TrustWide).await?;
        assert_eq!(got[0].value, None);
        assert_eq!(
            (got[0].numerator, got[0].denominator),
            (Some(1.0 / 3.0), Some(odd))
        );
        // Through the upsert: the period is stored now.
        let mut r = batch(&[("2026-01-01", "", 0.0)]);
        (r.value[0], r.numerator[0], r.denominator[0]) = (None, Some(0.7 + 0.1), Some(2.0));
        assert_eq!(write(&mut conn, &rate, r).await?.outcome, outcome(0, 1, 0));
        let got = everything(&mut conn, &rate, &SiteScope::TrustWide).await?;
        assert_eq!(got[0].numerator, Some(0.7 + 0.1));
        Ok(())
    }

    #[tokio::test]
    async fn pages_follow_the_period_within_the_range_and_resume_after_the_last()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = metric(&mut conn, Owner::Trust, "los", ValueType::Mean).await?;
        let rows = [
            ("2026-03-01", "BAS", 5.0),
            ("2026-01-01", "BAS", 1.0),
            ("2026-02-01", "SOU", 4.0),
            ("2026-02-01", "BAS", 3.0),
            ("2025-12-01", "BAS", 0.0),
            ("2026-01-01", "SOU", 2.0),
        ];
        write(&mut conn, &m, batch(&rows)).await?;
        let wanted = Wanted {
            periods: Range {
                from: Some(day("2026-01-01")),
                before: Some(day("2026-03-01")),
            },
            ..Wanted::default()
        };
        let scope = SiteScope::TrustWide;
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = Page::parse(3, &token, "p")?;
            let (got, next) = list(&mut conn, &m, &scope, &wanted, &page).await?;
            assert!(got.len() <= 3);
            seen.extend(got);
            if next.is_empty() {
                break;
            }
            token = next;
        }
        // In period order, then as stored; each once.
        assert_eq!(
            shown(&seen),
            [
                "2026-01-01 sites/BAS 1",
                "2026-01-01 sites/SOU 2",
                "2026-02-01 sites/SOU 4",
                "2026-02-01 sites/BAS 3",
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_one_site_caller_sees_its_sites_and_the_trusts_own_rows() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = metric(&mut conn, Owner::Trust, "los", ValueType::Mean).await?;
        let rows = [
            ("2026-01-01", "", 1.0),
            ("2026-01-01", "BAS", 2.0),
            ("2026-01-01", "SOU", 3.0),
        ];
        write(&mut conn, &m, batch(&rows)).await?;
        let bas = SiteScope::from_claim(&["BAS".to_owned()]).map_err(anyhow::Error::msg)?;
        let seen = everything(&mut conn, &m, &bas).await?;
        assert_eq!(shown(&seen), ["2026-01-01  1", "2026-01-01 sites/BAS 2"]);
        let seen = everything(&mut conn, &m, &SiteScope::TrustWide).await?;
        assert_eq!(
            shown(&seen),
            [
                "2026-01-01  1",
                "2026-01-01 sites/BAS 2",
                "2026-01-01 sites/SOU 3"
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_metrics_batches_write_in_turn_and_other_metrics_do_not_wait() -> anyhow::Result<()> {
        let pool = pool().await?;
        let mut setup = qi_platform::db::begin(&pool).await?;
        let los = metric(&mut setup, Owner::Trust, "los", ValueType::Mean).await?;
        let tat = metric(&mut setup, Owner::Trust, "tat", ValueType::Mean).await?;
        setup.commit().await?;
        let rows = [("2026-01-01", "BAS", 1.0)];
        let mut first = qi_platform::db::begin(&pool).await?;
        write(&mut first, &los, batch(&rows)).await?;
        // While `first` is open: another metric's batch goes through, this metric's waits.
        let mut other = qi_platform::db::begin(&pool).await?;
        let done = tokio::time::timeout(
            Duration::from_secs(30),
            write(&mut other, &tat, batch(&rows)),
        )
        .await?;
        assert_eq!(done?.outcome, outcome(1, 0, 0));
        other.commit().await?;
        let mut second = qi_platform::db::begin(&pool).await?;
        let waited = tokio::time::timeout(
            Duration::from_millis(300),
            write(&mut second, &los, batch(&rows)),
        )
        .await;
        assert!(waited.is_err(), "a second batch of the metric waits");
        Ok(())
    }
}
