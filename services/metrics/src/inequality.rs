//! Health-inequality measures: a metric broken down by one dimension (per-stratum value
//! and count, the unknown share, the gap and rate ratio between the extreme strata, the
//! slope and relative indexes of inequality, each stratum's SPC concern), and the gap
//! series the QMS dashboard charts to tell whether a gap is widening; and the
//! GetInequalityBreakdown RPC.
//!
//! Definitions (also in the contract):
//! - The gap compares IMD quintile 1 (most deprived) with quintile 5 (least deprived), and
//!   for the other dimensions the known stratum with the highest value with the one with the
//!   lowest. Unknown strata never take part.
//! - SII: known strata in order (IMD 1 → 5, age youngest → oldest), each ranked at the
//!   mid-point of its population share, `x(i) = (N(<i) + n(i)/2) / N`; the stratum values
//!   are regressed on the ranks by least squares weighted by `n(i)`; the SII is the slope.
//!   RII = SII / the weighted mean of the values.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::metrics as pb;

use crate::MetricsApi;
use crate::definitions::store::Lock;
use crate::definitions::{self, Metric};
use crate::dimensions::{self, Dimension};
use crate::series::{self, Filter, Sums};
use crate::spc::{self, SpcOptions};
use crate::{charts, rebase_points};
use qi_spc::gaps::{Gap, GapTrend};

/// GetInequalityBreakdown: a metric broken down by one dimension it is recorded by, over
/// the filtered range, each stratum's history read from the first measurement.
pub(crate) async fn get(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::GetInequalityBreakdownRequest,
) -> Result<pb::GetInequalityBreakdownResponse, Error> {
    let pb::GetInequalityBreakdownRequest {
        metric,
        dimension,
        filter,
        combine_ethnic_groups,
    } = req;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let metric =
        definitions::resolve(&mut conn, &ctx, "metric", &metric, false, Lock::None).await?;
    let recording = &metric.settings.recording;
    let mut v = Violations::new();
    let dim = match Dimension::from_proto(dimension) {
        None => {
            v.add(
                "dimension",
                "choose IMD_QUINTILE, ETHNIC_CATEGORY, AGE_BAND or SEX",
            );
            None
        }
        Some(d) if !recording.records(d) => {
            let recorded: Vec<&str> = recording.dimensions.iter().map(|d| d.title()).collect();
            v.add(
                "dimension",
                if recorded.is_empty() {
                    format!(
                        "the metric is not recorded by {}, nor by any dimension",
                        d.title()
                    )
                } else {
                    format!(
                        "the metric is not recorded by {}: it is recorded by {}",
                        d.title(),
                        recorded.join(", ")
                    )
                },
            );
            None
        }
        Some(d) => Some(d),
    };
    let filter = v
        .check(Filter::parse(&ctx, "filter", &metric, filter).map(Some))
        .unwrap_or_default();
    if let Some(d) = dim
        && !filter.labels[d.index()].is_empty()
    {
        v.add(
            format!("filter.stratum.{}", d.stratum_field()),
            "is the dimension broken down: filter on the other dimensions only",
        );
    }
    if combine_ethnic_groups && dim != Some(Dimension::Ethnicity) {
        v.add(
            "combine_ethnic_groups",
            "applies to the ETHNIC_CATEGORY dimension only",
        );
    }
    v.finish()?;
    let dim = dim.ok_or_else(|| Error::invalid("dimension", "is required"))?;
    // Each stratum's history (for its SPC) runs from the first measurement; the range
    // proper starts at `filter.from`.
    let history = Filter {
        from: None,
        ..filter.clone()
    };
    let mut grouped = series::store::read(&mut conn, &[&metric], Some(dim), &history).await?;
    let by_label = grouped.remove(&metric.uid).unwrap_or_default();
    let combined = combine_ethnic_groups;
    let labels = if combined {
        dimensions::broad_group_labels()
    } else {
        recording.labels(dim)
    };
    let strata: Vec<StratumData> = labels
        .into_iter()
        .map(|label| {
            let parts = by_label
                .iter()
                .filter(|(l, _)| {
                    if combined {
                        dimensions::broad_group(l) == label
                    } else {
                        **l == label
                    }
                })
                .map(|(_, p)| p);
            StratumData {
                periods: series::merge(parts),
                label,
            }
        })
        .collect();
    let stored = rebase_points::store::of_metrics(&mut conn, &[&metric]).await?;
    let breakdown = breakdown(&Input {
        metric: &metric,
        dimension: dim,
        strata,
        from: filter.from,
        rebase_points: stored.get(&metric.uid).map_or(&[][..], Vec::as_slice),
        ethnic_groups_combined: combined,
    });
    Ok(pb::GetInequalityBreakdownResponse {
        breakdown: Some(breakdown),
    })
}

/// The gap between the extreme strata of `known` (label, value) pairs, in the dimension's
/// order; `Err` says why there is none (the shared rule, [`qi_spc::gaps::gap`]).
pub(crate) fn gap(dimension: Dimension, known: &[(String, f64)]) -> Result<Gap, String> {
    qi_spc::gaps::gap(dimension.shared().extremes(), known)
}

/// The slope index of inequality of ordered strata given as (weight, value), and each
/// stratum's rank. `Err` says why there is none.
pub(crate) fn slope_index(strata: &[(f64, f64)]) -> Result<(f64, Vec<f64>), String> {
    let total: f64 = strata.iter().map(|(n, _)| n).sum();
    let usable = strata.iter().filter(|(n, _)| *n > 0.0).count();
    if usable < 2 || total <= 0.0 {
        return Err("the slope index needs at least two known strata with data".into());
    }
    let mut before = 0.0;
    let ranks: Vec<f64> = strata
        .iter()
        .map(|(n, _)| {
            let x = (before + n / 2.0) / total;
            before += n;
            x
        })
        .collect();
    let mean_x: f64 = strata
        .iter()
        .zip(&ranks)
        .map(|((n, _), x)| n * x)
        .sum::<f64>()
        / total;
    let mean_y: f64 = strata.iter().map(|(n, y)| n * y).sum::<f64>() / total;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for ((n, y), x) in strata.iter().zip(&ranks) {
        sxy += n * (x - mean_x) * (y - mean_y);
        sxx += n * (x - mean_x) * (x - mean_x);
    }
    if sxx <= 0.0 {
        return Err("the strata's ranks do not vary".into());
    }
    Ok((sxy / sxx, ranks))
}

/// The weighted mean of (weight, value) pairs.
fn weighted_mean(strata: &[(f64, f64)]) -> Option<f64> {
    let total: f64 = strata.iter().map(|(n, _)| n).sum();
    (total > 0.0).then(|| strata.iter().map(|(n, y)| n * y).sum::<f64>() / total)
}

/// One stratum's data for a breakdown.
#[derive(Debug, Clone)]
pub(crate) struct StratumData {
    pub(crate) label: String,
    /// Per period, from the first measurement to the end of the range.
    pub(crate) periods: BTreeMap<NaiveDate, Sums>,
}

/// Everything a breakdown is computed from.
#[derive(Debug)]
pub(crate) struct Input<'a> {
    pub(crate) metric: &'a Metric,
    pub(crate) dimension: Dimension,
    /// The strata in the dimension's order, unknown ones last.
    pub(crate) strata: Vec<StratumData>,
    /// The range: periods on or after `from` count.
    pub(crate) from: Option<NaiveDate>,
    /// The metric's rebase points.
    pub(crate) rebase_points: &'a [pb::RebasePoint],
    pub(crate) ethnic_groups_combined: bool,
}

/// A stratum's own SPC chart: (variation icon, concern within the range, sufficiency).
fn stratum_spc(
    metric: &Metric,
    series: &[(NaiveDate, f64)],
    from: Option<NaiveDate>,
    rebase_points: &[pb::RebasePoint],
) -> (pb::SpcVariationIcon, bool, pb::SpcDataSufficiency) {
    if series.is_empty() {
        return (
            pb::SpcVariationIcon::Unspecified,
            false,
            pb::SpcDataSufficiency::NotEnoughData,
        );
    }
    let periods: Vec<NaiveDate> = series.iter().map(|(p, _)| *p).collect();
    let values: Vec<f64> = series.iter().map(|(_, v)| *v).collect();
    let (positions, _) = rebase_points::positions(&periods, rebase_points);
    let options = SpcOptions {
        improvement_direction: metric.settings.direction,
        target: metric.settings.target,
        rebase_positions: positions,
        ..SpcOptions::default()
    };
    match spc::compute(&values, &options) {
        Ok(chart) => {
            let concern = chart
                .points
                .iter()
                .zip(&periods)
                .any(|(p, d)| from.is_none_or(|f| *d >= f) && charts::is_concern(p.point_type));
            (
                charts::variation(chart.variation),
                concern,
                charts::sufficiency(chart.sufficiency),
            )
        }
        // Values come from sums of finite numbers; an error here is unexpected, and the
        // stratum simply has no reading.
        Err(_) => (
            pb::SpcVariationIcon::Unspecified,
            false,
            pb::SpcDataSufficiency::NotEnoughData,
        ),
    }
}

/// Computes a breakdown.
pub(crate) fn breakdown(input: &Input<'_>) -> pb::InequalityBreakdown {
    let metric = input.metric;
    let vt = metric.value_type;
    let per = metric.settings.rate_per;
    let in_range = |d: &NaiveDate| input.from.is_none_or(|f| *d >= f);

    let mut all = Sums::default();
    let mut periods_in_range = std::collections::BTreeSet::new();
    let mut rows = Vec::with_capacity(input.strata.len());
    for s in &input.strata {
        let mut window = Sums::default();
        for (p, sums) in s.periods.iter().filter(|(p, _)| in_range(p)) {
            window.add(sums);
            periods_in_range.insert(*p);
        }
        all.add(&window);
        let series = series::values(metric, Some(&s.periods));
        let (icon, concern, sufficiency) =
            stratum_spc(metric, &series, input.from, input.rebase_points);
        rows.push((s, window, icon, concern, sufficiency));
    }
    let overall_count = all.weight(vt);
    let mut strata = Vec::with_capacity(rows.len());
    let mut unknown_count = 0.0;
    let mut known: Vec<(String, f64)> = Vec::new();
    let mut ordered: Vec<(f64, f64)> = Vec::new();
    let mut ordered_index: Vec<usize> = Vec::new();
    for (s, window, icon, concern, sufficiency) in &rows {
        let unknown = input.dimension.is_unknown(&s.label);
        let value = window.value(vt, per);
        let count = window.weight(vt);
        if unknown {
            unknown_count += count;
        } else if let Some(v) = value {
            known.push((s.label.clone(), v));
            if count > 0.0 {
                ordered.push((count, v));
                ordered_index.push(strata.len());
            }
        }
        strata.push(pb::StratumSummary {
            label: s.label.clone(),
            display_name: dimensions::display_name(input.dimension, &s.label),
            unknown,
            value,
            count,
            share: if overall_count > 0.0 {
                count / overall_count
            } else {
                0.0
            },
            numerator: (vt == crate::definitions::ValueType::Rate && window.n > 0)
                .then_some(window.sum_num),
            rank: None,
            variation_icon: *icon as i32,
            spc_concern: *concern,
            spc_data_sufficiency: *sufficiency as i32,
        });
    }

    let (gap, gap_note) = match gap(input.dimension, &known) {
        Ok(g) => (
            Some(pb::InequalityGap {
                comparison_stratum: g.comparison,
                reference_stratum: g.reference,
                absolute_gap: g.absolute,
                rate_ratio: g.ratio,
            }),
            String::new(),
        ),
        Err(e) => (None, e),
    };

    let (slope_index, relative_index, slope_index_note) = if !input.dimension.ordered() {
        (
            None,
            None,
            format!(
                "{} is not an ordered dimension: the slope index applies to IMD quintile and age band",
                input.dimension.title()
            ),
        )
    } else if vt == crate::definitions::ValueType::Count {
        (
            None,
            None,
            "a COUNT metric has no population per stratum to weight by: record it as a RATE".into(),
        )
    } else {
        match slope_index(&ordered) {
            Ok((sii, ranks)) => {
                for (i, x) in ordered_index.iter().zip(ranks) {
                    strata[*i].rank = Some(x);
                }
                let rii = weighted_mean(&ordered)
                    .filter(|m| *m != 0.0)
                    .map(|m| sii / m);
                (Some(sii), rii, String::new())
            }
            Err(e) => (None, None, e),
        }
    };

    let first = periods_in_range.first().copied();
    let last = periods_in_range.last().copied();
    pb::InequalityBreakdown {
        metric: metric.name(),
        dimension: input.dimension.to_proto() as i32,
        start_date: first.map(qi_platform::convert::date),
        last_period: last.map(qi_platform::convert::date),
        period_count: i32::try_from(periods_in_range.len()).unwrap_or(i32::MAX),
        concern: strata.iter().any(|s| s.spc_concern),
        strata,
        overall_value: all.value(vt, per),
        overall_count,
        unknown_count,
        unknown_share: if overall_count > 0.0 {
            unknown_count / overall_count
        } else {
            0.0
        },
        gap,
        gap_note,
        slope_index,
        relative_index,
        slope_index_note,
        ethnic_groups_combined: input.ethnic_groups_combined,
    }
}

/// A dimension's gap per period, from each label's period sums: the series the dashboard
/// charts.
pub(crate) fn gap_series(
    metric: &Metric,
    dimension: Dimension,
    by_label: &BTreeMap<String, BTreeMap<NaiveDate, Sums>>,
) -> Vec<(NaiveDate, f64)> {
    let labels = metric.settings.recording.labels(dimension);
    let mut per_period: BTreeMap<NaiveDate, Vec<(String, f64)>> = BTreeMap::new();
    for label in labels.iter().filter(|l| !dimension.is_unknown(l)) {
        let Some(periods) = by_label.get(label) else {
            continue;
        };
        for (p, s) in periods {
            if let Some(v) = s.value(metric.value_type, metric.settings.rate_per) {
                per_period.entry(*p).or_default().push((label.clone(), v));
            }
        }
    }
    qi_spc::gaps::sizes(dimension.shared().extremes(), &per_period)
}

/// Reads a gap series: WIDENING when its XmR chart (direction DECREASE: a smaller gap is
/// better) ends in a special-cause concern, NARROWING in an improvement.
pub(crate) fn signal(dimension: Dimension, gaps: &[(NaiveDate, f64)]) -> pb::InequalitySignal {
    let mut out = pb::InequalitySignal {
        dimension: dimension.to_proto() as i32,
        trend: pb::InequalityGapTrend::NotEnoughData as i32,
        gap_period_count: i32::try_from(gaps.len()).unwrap_or(i32::MAX),
        ..Default::default()
    };
    let Some((last_period, last)) = gaps.last().copied() else {
        return out;
    };
    let values: Vec<f64> = gaps.iter().map(|(_, g)| *g).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    out.latest_gap = Some(last);
    out.latest_gap_period = Some(qi_platform::convert::date(last_period));
    out.mean_gap = Some(mean);
    out.latest_gap_above_mean = last > mean;
    let (trend, chart) = qi_spc::gaps::trend(&values);
    if let Some(chart) = chart {
        out.gap_variation_icon = charts::variation(chart.variation) as i32;
        out.trend = match trend {
            GapTrend::NotEnoughData => pb::InequalityGapTrend::NotEnoughData,
            GapTrend::NoSignal => pb::InequalityGapTrend::NoSignal,
            GapTrend::Widening => pb::InequalityGapTrend::Widening,
            GapTrend::Narrowing => pb::InequalityGapTrend::Narrowing,
        } as i32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    /// Worked by hand: populations 100, 200, 300, 200, 200 (N = 1,000), rates 30, 25, 20,
    /// 15, 10. Shares .1 .2 .3 .2 .2, so ranks .05 .2 .45 .7 .9; weighted means x̄ = .5,
    /// ȳ = 19; Sxy = −1.75, Sxx = .079; SII = −1.75 / .079 = −22.1519; RII = SII / 19.
    #[test]
    fn the_slope_index_matches_a_hand_computed_case() {
        let strata = [
            (100.0, 30.0),
            (200.0, 25.0),
            (300.0, 20.0),
            (200.0, 15.0),
            (200.0, 10.0),
        ];
        let (sii, ranks) = slope_index(&strata).unwrap();
        assert_close(sii, -1.75 / 0.079);
        for (x, want) in ranks.iter().zip([0.05, 0.2, 0.45, 0.7, 0.9]) {
            assert_close(*x, want);
        }
        assert_close(weighted_mean(&strata).unwrap(), 19.0);
        // A perfectly linear gradient with equal populations: the slope is the end-to-end
        // difference of the fitted line.
        let linear = [(1.0, 0.1), (1.0, 0.3), (1.0, 0.5), (1.0, 0.7), (1.0, 0.9)];
        let (sii, _) = slope_index(&linear).unwrap();
        assert_close(sii, 1.0);
        assert!(slope_index(&[(10.0, 1.0)]).is_err());
        assert!(slope_index(&[(10.0, 1.0), (0.0, 2.0)]).is_err());
    }

    #[test]
    fn gaps_compare_the_extreme_strata() {
        let known = |v: &[(&str, f64)]| -> Vec<(String, f64)> {
            v.iter().map(|(l, x)| ((*l).to_owned(), *x)).collect()
        };
        let g = gap(
            Dimension::Imd,
            &known(&[("1", 30.0), ("3", 50.0), ("5", 10.0)]),
        )
        .unwrap();
        assert_eq!((g.comparison.as_str(), g.reference.as_str()), ("1", "5"));
        assert_close(g.absolute, 20.0);
        assert_close(g.ratio.unwrap(), 3.0);
        assert!(gap(Dimension::Imd, &known(&[("1", 30.0)])).is_err());
        let g = gap(
            Dimension::Ethnicity,
            &known(&[("A", 5.0), ("H", 9.0), ("N", 0.0)]),
        )
        .unwrap();
        assert_eq!((g.comparison.as_str(), g.reference.as_str()), ("H", "N"));
        assert_eq!(g.ratio, None);
        let g = gap(Dimension::Sex, &known(&[("1", 4.0), ("2", 4.0)])).unwrap();
        assert_eq!((g.comparison.as_str(), g.reference.as_str()), ("1", "2"));
        assert!(gap(Dimension::Sex, &known(&[("1", 4.0)])).is_err());
    }

    #[test]
    fn a_gap_that_keeps_rising_is_widening() {
        let day = |i: u64| NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Days::new(i * 7);
        let flat: Vec<_> = (0..20)
            .map(|i| (day(i), 10.0 + if i % 2 == 0 { 0.5 } else { -0.5 }))
            .collect();
        assert_eq!(
            signal(Dimension::Imd, &flat).trend,
            pb::InequalityGapTrend::NoSignal as i32
        );
        let mut rising = flat.clone();
        for (k, i) in (20..28).enumerate() {
            rising.push((day(i), 11.0 + k as f64));
        }
        let s = signal(Dimension::Imd, &rising);
        assert_eq!(s.trend, pb::InequalityGapTrend::Widening as i32);
        assert!(s.latest_gap_above_mean);
        let mut falling = flat;
        for (k, i) in (20..28).enumerate() {
            falling.push((day(i), 9.0 - 0.5 * k as f64));
        }
        assert_eq!(
            signal(Dimension::Imd, &falling).trend,
            pb::InequalityGapTrend::Narrowing as i32
        );
        assert_eq!(
            signal(Dimension::Imd, &[]).trend,
            pb::InequalityGapTrend::NotEnoughData as i32
        );
    }
}
