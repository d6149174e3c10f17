//! The grouped read of `measurement` behind every series: per metric, label and period,
//! the sums, read row by row where each group is one measurement.

use chrono::NaiveDate;
use qi_platform::Error;
use sqlx::PgConnection;

use super::{Filter, Grouped, Sums, one_row_per_group};
use crate::definitions::Metric;
use crate::dimensions::Dimension;

/// One group of a grouped read.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    metric_uid: i64,
    label: String,
    period: NaiveDate,
    #[sqlx(flatten)]
    sums: Sums,
}

/// The filter of both reads: `$1` the metrics, `$2`… the filter. Measurements at no site
/// (a trust metric not recorded by site) are the trust's own and seen by every caller.
const WHERE: &str = "WHERE metric_uid = ANY($1)
           AND ($10::text[] IS NULL OR site = '' OR site = ANY($10))
           AND ($2 = '' OR site = $2) AND ($3 = '' OR ward = $3)
           AND ($4 = '' OR imd_quintile = $4) AND ($5 = '' OR ethnicity = $5)
           AND ($6 = '' OR age_band = $6) AND ($7 = '' OR sex = $7)
           AND ($8::date IS NULL OR period >= $8) AND ($9::date IS NULL OR period < $9)";

/// Reads the sums of the metrics' measurements kept by `filter`, per period, and per label
/// of `by` when given.
pub(crate) async fn read(
    conn: &mut PgConnection,
    metrics: &[&Metric],
    by: Option<Dimension>,
    filter: &Filter,
) -> Result<Grouped, Error> {
    let label = by.map_or("''", Dimension::column);
    let (single, grouped): (Vec<&Metric>, Vec<&Metric>) = metrics
        .iter()
        .partition(|m| one_row_per_group(m, by, filter));
    // Row by row: positional columns, the sums built here (no aggregation, no column
    // lookups by name: a 10,000-period chart reads in a few milliseconds).
    let single_sql = format!(
        "SELECT metric_uid, {label}::text, period, value, count, numerator, denominator
         FROM measurement {WHERE}"
    );
    let grouped_sql = format!(
        "SELECT metric_uid, {label}::text AS label, period,
                count(*) AS n,
                coalesce(sum(value), 0) AS sum_value,
                coalesce(sum(value * coalesce(count, 1)), 0) AS sum_weighted,
                coalesce(sum(coalesce(count, 1)::float8) FILTER (WHERE value IS NOT NULL), 0)
                    AS sum_weight,
                coalesce(sum(numerator), 0) AS sum_num,
                coalesce(sum(denominator), 0) AS sum_den,
                CASE WHEN count(*) = 1 THEN min(value) END AS single
         FROM measurement {WHERE}
         GROUP BY 1, 2, 3"
    );
    let mut out = Grouped::new();
    let mut put = |uid: i64, label: String, period: NaiveDate, sums: Sums| {
        out.entry(uid)
            .or_default()
            .entry(label)
            .or_default()
            .insert(period, sums);
    };
    type Single = (
        i64,
        String,
        NaiveDate,
        Option<f64>,
        Option<i64>,
        Option<f64>,
        Option<f64>,
    );
    if !single.is_empty() {
        let uids: Vec<i64> = single.iter().map(|m| m.uid).collect();
        let rows: Vec<Single> = bind(
            sqlx::query_as(sqlx::AssertSqlSafe(single_sql)),
            &uids,
            filter,
        )
        .fetch_all(&mut *conn)
        .await?;
        for (uid, label, period, value, count, numerator, denominator) in rows {
            let weight = count.map_or(1.0, |c| c as f64);
            put(
                uid,
                label,
                period,
                Sums {
                    n: 1,
                    sum_value: value.unwrap_or(0.0),
                    sum_weighted: value.map_or(0.0, |v| v * weight),
                    sum_weight: if value.is_some() { weight } else { 0.0 },
                    sum_num: numerator.unwrap_or(0.0),
                    sum_den: denominator.unwrap_or(0.0),
                    single: value,
                },
            );
        }
    }
    if !grouped.is_empty() {
        let uids: Vec<i64> = grouped.iter().map(|m| m.uid).collect();
        let rows: Vec<Row> = bind(
            sqlx::query_as(sqlx::AssertSqlSafe(grouped_sql)),
            &uids,
            filter,
        )
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            put(r.metric_uid, r.label, r.period, r.sums);
        }
    }
    Ok(out)
}

/// Binds the metrics and the filter to a read (`$1` to `$10`).
fn bind<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    uids: &'q [i64],
    filter: &'q Filter,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(uids)
        .bind(&filter.site)
        .bind(&filter.ward)
        .bind(&filter.labels[0])
        .bind(&filter.labels[1])
        .bind(&filter.labels[2])
        .bind(&filter.labels[3])
        .bind(filter.from)
        .bind(filter.before)
        .bind(&filter.sites)
}
