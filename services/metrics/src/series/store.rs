//! The grouped read of `measurement` behind every series: per metric, label and period,
//! the sums, read row by row where each group is one measurement.

use chrono::NaiveDate;
use qi_platform::Error;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::{Filter, Grouped, Sums, one_row_per_group};
use crate::definitions::Metric;
use crate::dimensions::Dimension;

/// One group of a grouped read.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    metric_uid: i64,
    label: String,
    period: NaiveDate,
    n: i64,
    sum_value: f64,
    sum_weighted: f64,
    sum_weight: f64,
    sum_num: f64,
    sum_den: f64,
    single: Option<f64>,
}

/// The filter of both reads: `$1` the metrics, `$2`… the filter. Measurements at no site
/// (a trust metric not recorded by site) are the trust's own and seen by every caller.
const WHERE: &str = " WHERE metric_uid = ANY($1)
           AND ($10::text[] IS NULL OR site = '' OR site = ANY($10))
           AND ($2 = '' OR site = $2) AND ($3 = '' OR ward = $3)
           AND ($4 = '' OR imd_quintile = $4) AND ($5 = '' OR ethnicity = $5)
           AND ($6 = '' OR age_band = $6) AND ($7 = '' OR sex = $7)
           AND ($8::date IS NULL OR period >= $8) AND ($9::date IS NULL OR period < $9)";

/// The columns after the label of a read row by row: positional, the sums built here (no
/// aggregation, no column lookups by name: a 10,000-period chart reads in a few milliseconds).
const SINGLE: &str = "::text, period, value, count, numerator, denominator";

/// The columns after the label of a grouped read: the sums per metric, label and period.
const GROUPED: &str = "::text AS label, period,
            count(*) AS n,
            coalesce(sum(value), 0) AS sum_value,
            coalesce(sum(value * coalesce(count, 1)), 0) AS sum_weighted,
            coalesce(sum(coalesce(count, 1)::float8) FILTER (WHERE value IS NOT NULL), 0)
                AS sum_weight,
            coalesce(sum(numerator), 0) AS sum_num,
            coalesce(sum(denominator), 0) AS sum_den,
            CASE WHEN count(*) = 1 THEN min(value) END AS single";

/// A read: `SELECT metric_uid, {label}{columns} FROM measurement {WHERE}{rest}`.
fn statement(
    label: &'static str,
    columns: &'static str,
    rest: &'static str,
) -> QueryBuilder<Postgres> {
    // Dynamic: the label is the column of the dimension grouped by (or `''`), chosen per call.
    let mut q = QueryBuilder::new("SELECT metric_uid, ");
    q.push(label)
        .push(columns)
        .push(" FROM measurement")
        .push(WHERE)
        .push(rest);
    q
}

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
        let mut q = statement(label, SINGLE, "");
        let rows: Vec<Single> = bind(q.build_query_as(), &uids, filter)
            .fetch_all(&mut *conn)
            .await?;
        for (uid, label, period, value, count, numerator, denominator) in rows {
            put(
                uid,
                label,
                period,
                Sums::of(value, count, numerator, denominator),
            );
        }
    }
    if !grouped.is_empty() {
        let uids: Vec<i64> = grouped.iter().map(|m| m.uid).collect();
        let mut q = statement(label, GROUPED, " GROUP BY 1, 2, 3");
        let rows: Vec<Row> = bind(q.build_query_as(), &uids, filter)
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            let sums = Sums {
                n: r.n,
                sum_value: r.sum_value,
                sum_weighted: r.sum_weighted,
                sum_weight: r.sum_weight,
                sum_num: r.sum_num,
                sum_den: r.sum_den,
                single: r.single,
            };
            put(r.metric_uid, r.label, r.period, sums);
        }
    }
    Ok(out)
}

/// Binds the metrics and the filter to a read, in the order [`WHERE`] numbers them (`$1`
/// to `$10`: it uses most of them twice).
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use qi_platform::SiteScope;
    use qi_platform::names::Owner;

    use super::*;
    use crate::definitions::{self, ImdEdition, Location, ValueType};
    use crate::dimensions::Labels;
    use crate::measurements::{self, Columns};
    use crate::testing::{day, new_metric, site, transaction};

    /// Measurements of (period, site, IMD quintile, value, count).
    fn batch(rows: &[(&str, &str, &str, f64, Option<i64>)]) -> Columns {
        let mut c = Columns::default();
        for (period, site, imd, value, count) in rows {
            c.period.push(day(period));
            c.site.push((*site).to_owned());
            c.ward.push(String::new());
            c.labels[0].push((*imd).to_owned());
            for label in &mut c.labels[1..] {
                label.push(String::new());
            }
            c.value.push(Some(*value));
            c.count.push(*count);
            c.numerator.push(None);
            c.denominator.push(None);
        }
        c
    }

    /// A metric of `owner` located by `location`, recorded by `dimensions`.
    async fn stored(
        conn: &mut PgConnection,
        owner: Owner,
        value_type: ValueType,
        location: Location,
        dimensions: Vec<Dimension>,
    ) -> anyhow::Result<Metric> {
        let mut new = new_metric(owner, "m", value_type);
        new.settings.location = location;
        if dimensions.contains(&Dimension::Imd) {
            new.settings.imd_edition = Some(ImdEdition::Imd2025);
        }
        new.settings.recording.dimensions = dimensions;
        Ok(definitions::store::insert(conn, &new).await?)
    }

    /// The sums of a group of measurements of (value, weight), with no rate.
    fn sums(values: &[(f64, f64)]) -> Sums {
        let n = values.len() as i64;
        Sums {
            n,
            sum_value: values.iter().map(|v| v.0).sum(),
            sum_weighted: values.iter().map(|v| v.0 * v.1).sum(),
            sum_weight: values.iter().map(|v| v.1).sum(),
            single: (n == 1).then(|| values[0].0),
            ..Sums::default()
        }
    }

    fn periods(by_period: &[(&str, Sums)]) -> BTreeMap<NaiveDate, Sums> {
        by_period.iter().map(|(p, s)| (day(p), *s)).collect()
    }

    #[tokio::test]
    async fn a_grouped_read_adds_up_per_period_within_the_callers_sites() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = stored(
            &mut conn,
            Owner::Trust,
            ValueType::Mean,
            Location::Site,
            vec![],
        )
        .await?;
        let rows = [
            ("2026-01-01", "BAS", "", 2.0, Some(3)),
            ("2026-01-01", "SOU", "", 4.0, None),
            ("2026-02-01", "BAS", "", 5.0, Some(1)),
        ];
        measurements::store::write(&mut conn, &m, batch(&rows)).await?;
        let everyone = Filter::scoped(&SiteScope::TrustWide);
        let got = read(&mut conn, &[&m], None, &everyone).await?;
        let want = periods(&[
            ("2026-01-01", sums(&[(2.0, 3.0), (4.0, 1.0)])),
            ("2026-02-01", sums(&[(5.0, 1.0)])),
        ]);
        assert_eq!(got[&m.uid][""], want);
        // A one-site caller adds up its own site only; a site filter keeps that site.
        let bas = SiteScope::from_claim(&["BAS".to_owned()]).map_err(anyhow::Error::msg)?;
        let got = read(&mut conn, &[&m], None, &Filter::scoped(&bas)).await?;
        let want = periods(&[
            ("2026-01-01", sums(&[(2.0, 3.0)])),
            ("2026-02-01", sums(&[(5.0, 1.0)])),
        ]);
        assert_eq!(got[&m.uid][""], want);
        let sou = Filter {
            site: "SOU".into(),
            ..everyone
        };
        let got = read(&mut conn, &[&m], None, &sou).await?;
        assert_eq!(
            got[&m.uid][""],
            periods(&[("2026-01-01", sums(&[(4.0, 1.0)]))])
        );
        Ok(())
    }

    #[tokio::test]
    async fn rates_add_their_numerators_and_denominators() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = stored(
            &mut conn,
            Owner::Trust,
            ValueType::Rate,
            Location::Site,
            vec![],
        )
        .await?;
        let mut c = batch(&[
            ("2026-01-01", "BAS", "", 0.0, None),
            ("2026-01-01", "SOU", "", 0.0, None),
        ]);
        c.value = vec![None, None];
        c.numerator = vec![Some(1.0), Some(2.0)];
        c.denominator = vec![Some(10.0), Some(20.0)];
        measurements::store::write(&mut conn, &m, c).await?;
        let got = read(
            &mut conn,
            &[&m],
            None,
            &Filter::scoped(&SiteScope::TrustWide),
        )
        .await?;
        let want = Sums {
            n: 2,
            sum_num: 3.0,
            sum_den: 30.0,
            ..Sums::default()
        };
        assert_eq!(got[&m.uid][""], periods(&[("2026-01-01", want)]));
        Ok(())
    }

    #[tokio::test]
    async fn a_breakdown_reads_per_label_and_a_filter_keeps_its_stratum_and_range()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let m = stored(
            &mut conn,
            site("BAS"),
            ValueType::Count,
            Location::None,
            vec![Dimension::Imd],
        )
        .await?;
        let rows = [
            ("2026-01-01", "", "1", 3.0, None),
            ("2026-01-01", "", "2", 4.0, None),
            ("2026-02-01", "", "1", 5.0, None),
            ("2026-03-01", "", "2", 1.0, None),
        ];
        measurements::store::write(&mut conn, &m, batch(&rows)).await?;
        let everyone = Filter::scoped(&SiteScope::TrustWide);
        // By quintile: one measurement per group, read row by row.
        let got = read(&mut conn, &[&m], Some(Dimension::Imd), &everyone).await?;
        let one = |v: f64| sums(&[(v, 1.0)]);
        assert_eq!(
            got[&m.uid],
            BTreeMap::from([
                (
                    "1".to_owned(),
                    periods(&[("2026-01-01", one(3.0)), ("2026-02-01", one(5.0))])
                ),
                (
                    "2".to_owned(),
                    periods(&[("2026-01-01", one(4.0)), ("2026-03-01", one(1.0))])
                ),
            ])
        );
        // Added together: grouped.
        let got = read(&mut conn, &[&m], None, &everyone).await?;
        assert_eq!(
            got[&m.uid][""][&day("2026-01-01")],
            sums(&[(3.0, 1.0), (4.0, 1.0)])
        );
        // One quintile in [February, March): row by row again.
        let mut labels = Labels::default();
        labels[0] = "1".into();
        let filter = Filter {
            labels,
            from: Some(day("2026-02-01")),
            before: Some(day("2026-03-01")),
            ..everyone
        };
        let got = read(&mut conn, &[&m], None, &filter).await?;
        assert_eq!(got[&m.uid][""], periods(&[("2026-02-01", one(5.0))]));
        Ok(())
    }

    #[tokio::test]
    async fn one_read_serves_several_metrics_each_under_its_own_key() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        // The trust's own measurements (at no site), read row by row; a breakdown, grouped.
        let own = stored(
            &mut conn,
            Owner::Trust,
            ValueType::Count,
            Location::None,
            vec![],
        )
        .await?;
        let by_imd = stored(
            &mut conn,
            site("SOU"),
            ValueType::Count,
            Location::None,
            vec![Dimension::Imd],
        )
        .await?;
        let rows = [("2026-01-01", "", "", 7.0, None)];
        measurements::store::write(&mut conn, &own, batch(&rows)).await?;
        let rows = [
            ("2026-01-01", "", "1", 1.0, None),
            ("2026-01-01", "", "2", 2.0, None),
        ];
        measurements::store::write(&mut conn, &by_imd, batch(&rows)).await?;
        let bas = SiteScope::from_claim(&["BAS".to_owned()]).map_err(anyhow::Error::msg)?;
        let got = read(&mut conn, &[&own, &by_imd], None, &Filter::scoped(&bas)).await?;
        assert_eq!(got.len(), 2);
        let jan = |v: Sums| periods(&[("2026-01-01", v)]);
        assert_eq!(got[&own.uid][""], jan(sums(&[(7.0, 1.0)])));
        assert_eq!(got[&by_imd.uid][""], jan(sums(&[(1.0, 1.0), (2.0, 1.0)])));
        Ok(())
    }
}
