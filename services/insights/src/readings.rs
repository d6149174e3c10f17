//! SPC readings of mirrored metrics, by the shared engine (`qi-spc`) and the shared series
//! arithmetic ([`qi_spc::series`]), exactly as the metrics service charts a stored metric
//! with its defaults: each period's measurements added up the metric's way, the metric's
//! improvement direction and target, a new group at each rebase point.
//!
//! The read model computes readings rather than the metrics service publishing them
//! because a reading depends on whose measurements it reads: a one-site caller's chart of a
//! trust metric adds up its sites' rows only (the README's subtraction rule), so no single
//! published reading would do for every caller.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use qi_platform::Error;
use qi_proto::insights as pb;
use qi_proto::metrics as mpb;
use qi_spc::series::{Sums, ValueType, rebase_positions};
use qi_spc::{DataSufficiency, ImprovementDirection, PointType, SpcOptions};
use sqlx::PgConnection;

/// A mirrored metric, as a chart needs it.
#[derive(Debug, Clone)]
pub(crate) struct Metric {
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) direction: ImprovementDirection,
    pub(crate) target: Option<f64>,
    pub(crate) value_type: ValueType,
    pub(crate) rate_per: f64,
}

/// What a chart of a series says: its latest point's reading, and each point's period and
/// whether it belongs to a shift in the improvement direction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub(crate) reading: pb::SpcReading,
    pub(crate) improving_shift: Vec<(NaiveDate, bool)>,
}

impl Reading {
    /// Whether an improving shift has a point on or after `day`.
    pub(crate) fn shifted_since(&self, day: NaiveDate) -> bool {
        self.improving_shift.iter().any(|(p, s)| *s && *p >= day)
    }
}

/// The metrics named, as mirrored (a name not mirrored is left out).
pub(crate) async fn metrics(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<HashMap<String, Metric>, Error> {
    let rows = sqlx::query!(
        "SELECT name, display_name, direction, target, value_type, rate_per
         FROM metric WHERE name = ANY($1)",
        names,
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let value_type = match mpb::MetricValueType::try_from(r.value_type).ok()? {
                mpb::MetricValueType::Count => ValueType::Count,
                mpb::MetricValueType::Mean => ValueType::Mean,
                mpb::MetricValueType::Rate => ValueType::Rate,
                mpb::MetricValueType::Unspecified => return None,
            };
            let direction = match mpb::ImprovementDirection::try_from(r.direction).ok()? {
                mpb::ImprovementDirection::Decrease => ImprovementDirection::Decrease,
                mpb::ImprovementDirection::Neither => ImprovementDirection::Neither,
                mpb::ImprovementDirection::Unspecified | mpb::ImprovementDirection::Increase => {
                    ImprovementDirection::Increase
                }
            };
            let metric = Metric {
                name: r.name.clone(),
                display_name: r.display_name,
                direction,
                target: r.target,
                value_type,
                rate_per: r.rate_per,
            };
            Some((r.name, metric))
        })
        .collect())
}

/// Which of a metric's measurements a series adds up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part<'a> {
    /// Every row [`Series::read`] kept: the trust's own and the caller's sites'.
    Seen,
    /// The rows at one site.
    Site(&'a str),
    /// The rows on one ward.
    Ward(&'a str),
}

/// Each metric's measurements per part and period, added up: read once for many charts.
#[derive(Debug, Default)]
pub(crate) struct Series {
    periods: HashMap<(String, String), BTreeMap<NaiveDate, Sums>>,
    rebase: HashMap<String, Vec<NaiveDate>>,
}

impl Series {
    /// Reads `metrics`' measurements that `sites` may see (`None`: every site; the trust's
    /// own rows always), keeping the sums of the whole view and, with `by_location`, of
    /// each site and ward.
    pub(crate) async fn read(
        conn: &mut PgConnection,
        metrics: &[String],
        sites: Option<&[String]>,
        by_location: bool,
    ) -> Result<Series, Error> {
        let rows = sqlx::query!(
            "SELECT metric, period, site, ward, value, numerator, denominator, count
             FROM measurement
             WHERE metric = ANY($1) AND ($2::text[] IS NULL OR site = '' OR site = ANY($2))",
            metrics,
            sites as Option<&[String]>,
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Series::default();
        for r in rows {
            let sums = Sums::of(r.value, r.count, r.numerator, r.denominator);
            let mut put = |key: String| {
                out.periods
                    .entry((r.metric.clone(), key))
                    .or_default()
                    .entry(r.period)
                    .or_default()
                    .add(&sums);
            };
            put(String::new());
            if by_location {
                if !r.site.is_empty() {
                    put(format!("site:{}", r.site));
                }
                if !r.ward.is_empty() {
                    put(format!("ward:{}", r.ward));
                }
            }
        }
        for r in sqlx::query!(
            "SELECT metric, period FROM rebase_point WHERE metric = ANY($1) ORDER BY period",
            metrics,
        )
        .fetch_all(&mut *conn)
        .await?
        {
            out.rebase.entry(r.metric).or_default().push(r.period);
        }
        Ok(out)
    }

    /// The chart of `metric`'s `part`.
    pub(crate) fn reading(&self, metric: &Metric, part: Part<'_>) -> Reading {
        let key = match part {
            Part::Seen => String::new(),
            Part::Site(s) => format!("site:{s}"),
            Part::Ward(w) => format!("ward:{w}"),
        };
        let points: Vec<(NaiveDate, f64)> = self
            .periods
            .get(&(metric.name.clone(), key))
            .into_iter()
            .flatten()
            .filter_map(|(p, s)| Some((*p, s.value(metric.value_type, metric.rate_per)?)))
            .collect();
        let periods: Vec<NaiveDate> = points.iter().map(|(p, _)| *p).collect();
        let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
        let rebase = self.rebase.get(&metric.name).map_or(&[][..], Vec::as_slice);
        let options = SpcOptions {
            improvement_direction: metric.direction,
            target: metric.target,
            rebase_positions: rebase_positions(&periods, rebase)
                .into_iter()
                .map(|(position, _)| position)
                .collect(),
            ..SpcOptions::default()
        };
        let not_enough = Reading {
            reading: pb::SpcReading::NotEnoughData,
            improving_shift: Vec::new(),
        };
        let Ok(chart) = qi_spc::compute(&values, &options) else {
            return not_enough;
        };
        if chart.sufficiency == DataSufficiency::NotEnoughData {
            return not_enough;
        }
        let last = chart.points.last().map(|p| p.point_type);
        let reading = match last {
            Some(PointType::CommonCause) | None => pb::SpcReading::CommonCause,
            Some(PointType::ImprovementHigh | PointType::ImprovementLow) => {
                pb::SpcReading::Improvement
            }
            Some(PointType::ConcernHigh | PointType::ConcernLow) => pb::SpcReading::Concern,
            Some(PointType::NeutralHigh | PointType::NeutralLow) => pb::SpcReading::Neutral,
        };
        let improving_shift = periods
            .iter()
            .zip(&chart.points)
            .map(|(p, point)| {
                let improving = matches!(
                    point.point_type,
                    PointType::ImprovementHigh | PointType::ImprovementLow
                );
                (*p, point.rules.shift && improving)
            })
            .collect();
        Reading {
            reading,
            improving_shift,
        }
    }
}
