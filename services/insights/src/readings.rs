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
use qi_spc::gaps::{self, Dimension, GapTrend};
use qi_spc::series::{Sums, ValueType, rebase_positions};
use qi_spc::{DataSufficiency, ImprovementDirection, PointType, SpcChart, SpcOptions};
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
    /// The inequality dimensions it is recorded by.
    pub(crate) dimensions: Vec<Dimension>,
}

/// The inequality dimension a contract's code names.
fn dimension(code: i32) -> Option<Dimension> {
    match mpb::InequalityDimension::try_from(code).ok()? {
        mpb::InequalityDimension::ImdQuintile => Some(Dimension::Imd),
        mpb::InequalityDimension::EthnicCategory => Some(Dimension::Ethnicity),
        mpb::InequalityDimension::AgeBand => Some(Dimension::Age),
        mpb::InequalityDimension::Sex => Some(Dimension::Sex),
        mpb::InequalityDimension::Unspecified => None,
    }
}

/// The contract's code of a dimension.
pub(crate) fn dimension_code(d: Dimension) -> mpb::InequalityDimension {
    match d {
        Dimension::Imd => mpb::InequalityDimension::ImdQuintile,
        Dimension::Ethnicity => mpb::InequalityDimension::EthnicCategory,
        Dimension::Age => mpb::InequalityDimension::AgeBand,
        Dimension::Sex => mpb::InequalityDimension::Sex,
    }
}

/// What a metric's gap along one dimension is doing, over one part of its measurements.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GapReading {
    pub(crate) trend: GapTrend,
    /// The latest period with a gap, and that gap.
    pub(crate) latest: Option<(NaiveDate, f64)>,
    /// The mean gap; 0 with none.
    pub(crate) mean: f64,
    /// How many periods have a gap.
    pub(crate) periods: usize,
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

/// Whether a metric is one the sites' callers read: the trust's, or one of the sites'.
pub(crate) fn in_scope(metric: &str, sites: &[String]) -> bool {
    match crate::projection::site_of(metric) {
        "" => true,
        code => sites.iter().any(|s| s == code),
    }
}

/// The metrics named, as mirrored (a name not mirrored is left out).
pub(crate) async fn metrics(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<HashMap<String, Metric>, Error> {
    let rows = sqlx::query!(
        "SELECT name, display_name, direction, target, value_type, rate_per, dimensions
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
                dimensions: r.dimensions.iter().filter_map(|d| dimension(*d)).collect(),
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
    /// Per metric, part and dimension: each period's sums per stratum label.
    strata: HashMap<(String, String, Dimension), BTreeMap<NaiveDate, Strata>>,
    rebase: HashMap<String, Vec<NaiveDate>>,
}

/// One period's sums per stratum label of one dimension.
type Strata = BTreeMap<String, Sums>;

/// The key of a part in [`Series`]' maps.
fn part_key(part: Part<'_>) -> String {
    match part {
        Part::Seen => String::new(),
        Part::Site(s) => format!("site:{s}"),
        Part::Ward(w) => format!("ward:{w}"),
    }
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
            "SELECT metric, period, site, ward, value, numerator, denominator, count,
                    imd, ethnicity, age_band, sex
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
            let labels = [
                (Dimension::Imd, &r.imd),
                (Dimension::Ethnicity, &r.ethnicity),
                (Dimension::Age, &r.age_band),
                (Dimension::Sex, &r.sex),
            ];
            let mut put = |key: String| {
                for (d, label) in labels.iter().filter(|(_, l)| !l.is_empty()) {
                    out.strata
                        .entry((r.metric.clone(), key.clone(), *d))
                        .or_default()
                        .entry(r.period)
                        .or_default()
                        .entry((*label).clone())
                        .or_default()
                        .add(&sums);
                }
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

    /// What `metric`'s gap along `dimension` is doing over `part`, read as the metrics
    /// service reads it ([`qi_spc::gaps`]): each period's gap between its extreme known
    /// strata, and the XmR chart of those gaps.
    pub(crate) fn gap(&self, metric: &Metric, part: Part<'_>, dimension: Dimension) -> GapReading {
        let mut per_period: BTreeMap<NaiveDate, Vec<(String, f64)>> = BTreeMap::new();
        if let Some(periods) = self
            .strata
            .get(&(metric.name.clone(), part_key(part), dimension))
        {
            for (period, labels) in periods {
                let known: Vec<(String, f64)> = labels
                    .iter()
                    .filter(|(label, _)| !dimension.is_unknown(label))
                    .filter_map(|(label, sums)| {
                        Some((
                            label.clone(),
                            sums.value(metric.value_type, metric.rate_per)?,
                        ))
                    })
                    .collect();
                per_period.insert(*period, known);
            }
        }
        let sizes = gaps::sizes(dimension.extremes(), &per_period);
        let values: Vec<f64> = sizes.iter().map(|(_, g)| *g).collect();
        GapReading {
            trend: gaps::trend(&values).0,
            latest: sizes.last().copied(),
            mean: if values.is_empty() {
                0.0
            } else {
                values.iter().sum::<f64>() / values.len() as f64
            },
            periods: sizes.len(),
        }
    }

    /// The chart of `metric`'s `part`, beside each point's period; `None` when there is
    /// not enough data for a reading.
    pub(crate) fn chart(
        &self,
        metric: &Metric,
        part: Part<'_>,
    ) -> Option<(Vec<NaiveDate>, SpcChart)> {
        let points: Vec<(NaiveDate, f64)> = self
            .periods
            .get(&(metric.name.clone(), part_key(part)))
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
        let chart = qi_spc::compute(&values, &options).ok()?;
        (chart.sufficiency != DataSufficiency::NotEnoughData).then_some((periods, chart))
    }

    /// What the chart of `metric`'s `part` says.
    pub(crate) fn reading(&self, metric: &Metric, part: Part<'_>) -> Reading {
        let Some((periods, chart)) = self.chart(metric, part) else {
            return Reading {
                reading: pb::SpcReading::NotEnoughData,
                improving_shift: Vec::new(),
            };
        };
        let reading = chart
            .points
            .last()
            .map_or(pb::SpcReading::CommonCause, |p| reading_of(p.point_type));
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

/// How a point reads against the improvement direction.
pub(crate) fn reading_of(point: PointType) -> pb::SpcReading {
    match point {
        PointType::CommonCause => pb::SpcReading::CommonCause,
        PointType::ImprovementHigh | PointType::ImprovementLow => pb::SpcReading::Improvement,
        PointType::ConcernHigh | PointType::ConcernLow => pb::SpcReading::Concern,
        PointType::NeutralHigh | PointType::NeutralLow => pb::SpcReading::Neutral,
    }
}
