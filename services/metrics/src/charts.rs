//! SPC charts: their RPCs (a stored metric's chart, as data or drawn, and the chart of values
//! sent), options read from requests (every field named on refusal), the engine's output
//! as the contract carries it, and the "not enough data" result. The numbers are the
//! engine's ([`crate::spc`]), untouched.

use chrono::NaiveDate;
use qi_platform::convert::date;
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use crate::MetricsApi;
use crate::definitions::store::Lock;
use crate::definitions::{self, Metric, direction_from_proto, direction_to_proto};
use crate::render::{self, Picture};
use crate::series::{self, Filter};
use crate::spc::{
    self, AssuranceIcon, DataSufficiency, ImprovementDirection, MeanSide, PointType,
    RuleParameters, SpcChart, SpcError, SpcOptions, SpecialCause, VariationIcon,
};
use crate::{annotations, rebase_points};

/// The most points one chart holds (the response stays well under 4 MiB).
pub(crate) const MAX_POINTS: usize = 20_000;

/// GetSpcChart: a stored metric's chart over the filtered series, with its annotations
/// and the rebase points applied.
pub(crate) async fn get(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::GetSpcChartRequest,
) -> Result<pb::GetSpcChartResponse, Error> {
    let pb::GetSpcChartRequest {
        metric,
        filter,
        options,
        ignore_rebase_points,
        view: chart_view,
    } = req;
    let chart_view = view(chart_view)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let request = ChartRequest {
        metric,
        filter,
        options,
        ignore_rebase_points,
    };
    let stored = stored_chart(&mut conn, &ctx, request).await?;
    let chart = match &stored.chart {
        Ok(chart) => to_proto(chart, Some(&stored.periods), &stored.options, chart_view),
        Err(reason) => empty(&stored.options, reason),
    };
    Ok(pb::GetSpcChartResponse {
        chart: Some(chart),
        annotations: stored.annotations,
        applied_rebase_points: stored.applied_rebase_points,
    })
}

/// ComputeSpc: the chart of the values sent (no stored data).
pub(crate) async fn compute(
    _api: &MetricsApi,
    _ctx: AccessContext,
    req: pb::ComputeSpcRequest,
) -> Result<pb::ComputeSpcResponse, Error> {
    let pb::ComputeSpcRequest {
        values,
        options,
        view: chart_view,
    } = req;
    let mut v = Violations::new();
    if values.is_empty() {
        v.add(
            "values",
            "is required: send 1 to 20,000 values in time order",
        );
    }
    for (i, x) in values
        .iter()
        .enumerate()
        .filter(|(_, x)| !x.is_finite())
        .take(20)
    {
        v.add(
            format!("values[{i}]"),
            format!("is not a finite number ({x})"),
        );
    }
    let options = v
        .check(read_options(options, Source::Values { len: values.len() }).map(Some))
        .unwrap_or_default();
    let chart_view = v
        .check(view(chart_view).map(Some))
        .unwrap_or(pb::SpcChartView::Full);
    v.finish()?;
    let chart = chart_of(&values, &options)?;
    Ok(pb::ComputeSpcResponse {
        chart: Some(to_proto(&chart, None, &options, chart_view)),
    })
}

/// RenderSpcChart: a stored metric's chart drawn as SVG.
pub(crate) async fn render(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::RenderSpcChartRequest,
) -> Result<pb::RenderSpcChartResponse, Error> {
    let pb::RenderSpcChartRequest {
        metric,
        filter,
        options,
        ignore_rebase_points,
        width,
        height,
        title,
    } = req;
    let (width, height, title) = picture_size(width, height, &title)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let request = ChartRequest {
        metric,
        filter,
        options,
        ignore_rebase_points,
    };
    let stored = stored_chart(&mut conn, &ctx, request).await?;
    let notes = dated_notes(&stored.annotations);
    let note = match &stored.chart {
        Ok(chart) => sufficiency_reason(chart, &stored.options),
        Err(_) => String::new(),
    };
    let title = if title.is_empty() {
        stored.metric.settings.display_name.clone()
    } else {
        title
    };
    let svg = render::svg(&Picture {
        title: &title,
        unit: &stored.metric.settings.unit,
        width,
        height,
        frequency: stored.metric.frequency,
        direction: stored.options.improvement_direction,
        target: stored.options.target,
        chart: stored.chart.as_ref().map_err(|e| *e),
        periods: &stored.periods,
        annotations: &notes,
        sufficiency_note: &note,
    });
    Ok(pb::RenderSpcChartResponse {
        svg,
        content_type: "image/svg+xml".into(),
    })
}

/// A stored metric's chart, with what was needed to compute it.
struct StoredChart {
    metric: Metric,
    periods: Vec<NaiveDate>,
    options: SpcOptions,
    /// The chart, or why there is none.
    chart: Result<SpcChart, &'static str>,
    applied_rebase_points: Vec<pb::RebasePoint>,
    annotations: Vec<pb::Annotation>,
}

/// A chart's request fields, shared by GetSpcChart and RenderSpcChart.
struct ChartRequest {
    metric: String,
    filter: Option<pb::SeriesFilter>,
    options: Option<pb::SpcOptions>,
    ignore_rebase_points: bool,
}

fn view(v: i32) -> Result<pb::SpcChartView, Error> {
    pb::SpcChartView::try_from(v).map_err(|_| Error::invalid("view", "choose FULL or SUMMARY"))
}

/// Reads a stored metric's series and computes its chart.
async fn stored_chart(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    req: ChartRequest,
) -> Result<StoredChart, Error> {
    let ChartRequest {
        metric,
        filter,
        options,
        ignore_rebase_points,
    } = req;
    let metric = definitions::resolve(conn, ctx, "metric", &metric, false, Lock::None).await?;
    let mut v = Violations::new();
    let filter = v.check(Filter::parse(ctx, "filter", &metric, filter));
    let options = v
        .check(
            read_options(
                options,
                Source::Metric {
                    direction: metric.settings.direction,
                    target: metric.settings.target,
                },
            )
            .map(Some),
        )
        .unwrap_or_default();
    v.finish()?;
    let (periods, values) = stored_series(conn, &metric, &filter).await?;
    let mut options = options;
    let mut applied_rebase_points = Vec::new();
    if !ignore_rebase_points && !periods.is_empty() {
        let stored = rebase_points::store::of_metrics(conn, &[&metric]).await?;
        let (positions, applied) = rebase_points::positions(
            &periods,
            stored.get(&metric.uid).map_or(&[][..], Vec::as_slice),
        );
        options.rebase_positions = positions;
        applied_rebase_points = applied;
    }
    let (chart, annotations) = match (periods.first(), periods.last()) {
        (Some(_), Some(_)) => {
            let chart = chart_of(&values, &options)?;
            let notes = notes_within(conn, &metric, &periods).await?;
            (Ok(chart), notes)
        }
        (None, _) | (_, None) => (Err("no measurements in the range"), Vec::new()),
    };
    Ok(StoredChart {
        metric,
        periods,
        options,
        chart,
        applied_rebase_points,
        annotations,
    })
}

/// A stored metric's series under `filter`, one point per period: the periods and the
/// values, at most [`MAX_POINTS`] (more is refused, naming `filter.start_date`).
pub(crate) async fn stored_series(
    conn: &mut PgConnection,
    metric: &Metric,
    filter: &Filter,
) -> Result<(Vec<NaiveDate>, Vec<f64>), Error> {
    let grouped = series::store::read(conn, &[metric], None, filter).await?;
    let points = series::values(metric, grouped.get(&metric.uid).and_then(|l| l.get("")));
    if points.len() > MAX_POINTS {
        return Err(Error::invalid(
            "filter.start_date",
            format!(
                "the series holds {} periods; a chart holds at most {}: narrow the range",
                points.len(),
                MAX_POINTS
            ),
        ));
    }
    Ok(points.into_iter().unzip())
}

/// The metric's annotations dated within the charted periods (none without periods).
pub(crate) async fn notes_within(
    conn: &mut PgConnection,
    metric: &Metric,
    periods: &[NaiveDate],
) -> Result<Vec<pb::Annotation>, Error> {
    match (periods.first(), periods.last()) {
        (Some(first), Some(last)) => {
            let end = metric.frequency.next(*last);
            annotations::store::between(conn, metric, *first, end).await
        }
        (None, _) | (_, None) => Ok(Vec::new()),
    }
}

/// Annotations as a picture draws them: (date, text).
pub(crate) fn dated_notes(annotations: &[pb::Annotation]) -> Vec<(NaiveDate, String)> {
    annotations
        .iter()
        .filter_map(|a| {
            let d = a.date?;
            let day = NaiveDate::from_ymd_opt(
                d.year,
                u32::try_from(d.month).ok()?,
                u32::try_from(d.day).ok()?,
            )?;
            Some((day, a.text.clone()))
        })
        .collect()
}

/// A picture's size and title as requested (`width`, `height`, `title` named on refusal):
/// 960 × 540 by default; an empty title means the metric's name.
pub(crate) fn picture_size(
    width: i32,
    height: i32,
    title: &str,
) -> Result<(u32, u32, String), Error> {
    let mut v = Violations::new();
    let width = match width {
        0 => 960,
        w => v.check(qi_platform::convert::int_in("width", w, 320..=4_000)),
    };
    let height = match height {
        0 => 540,
        h => v.check(qi_platform::convert::int_in("height", h, 240..=3_000)),
    };
    let title = title.trim().to_owned();
    if title.chars().count() > 200 {
        v.add("title", "is longer than 200 characters");
    }
    v.finish()?;
    Ok((width.unsigned_abs(), height.unsigned_abs(), title))
}

/// Where a chart's data come from, which decides some option rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Source {
    /// Values the caller sent (ComputeSpc): rebase positions allowed; direction defaults to
    /// INCREASE as in the package.
    Values {
        /// How many values.
        len: usize,
    },
    /// A stored metric: rebase points come from the metric; direction and target default
    /// to the metric's.
    Metric {
        /// The metric's direction.
        direction: ImprovementDirection,
        /// The metric's target.
        target: Option<f64>,
    },
}

/// Reads `options` (fields `options.…`) into the engine's options.
pub(crate) fn read_options(
    options: Option<pb::SpcOptions>,
    source: Source,
) -> Result<SpcOptions, Error> {
    let pb::SpcOptions {
        improvement_direction,
        target,
        rebase_positions,
        fix_after_n_points,
        screen_outliers,
        rule_set,
        shift_points,
        trend_points,
        trial_limit_threshold,
    } = options.unwrap_or_default();
    let mut v = Violations::new();
    let (default_direction, default_target) = match source {
        Source::Values { .. } => (ImprovementDirection::Increase, None),
        Source::Metric { direction, target } => (direction, target),
    };
    let improvement_direction = if improvement_direction == 0 {
        default_direction
    } else {
        v.check(direction_from_proto(
            "options.improvement_direction",
            improvement_direction,
        ))
    };
    if let Some(t) = target
        && !t.is_finite()
    {
        v.add("options.target", format!("is not a finite number ({t})"));
    }
    let mut positions = Vec::with_capacity(rebase_positions.len());
    match source {
        Source::Values { len } => {
            for (i, p) in rebase_positions.iter().enumerate() {
                match usize::try_from(*p) {
                    Ok(p) if p < len => positions.push(p),
                    _ => v.add(
                        format!("options.rebase_positions[{i}]"),
                        format!(
                            "{p} is outside the series (positions 0 to {})",
                            len.saturating_sub(1)
                        ),
                    ),
                }
            }
        }
        Source::Metric { .. } => {
            if !rebase_positions.is_empty() {
                v.add(
                    "options.rebase_positions",
                    "a stored metric is rebased at its rebase points: add one with CreateRebasePoint, or use ComputeSpc",
                );
            }
        }
    }
    let fix_after_n_points = match fix_after_n_points {
        None => None,
        Some(n) => match usize::try_from(n) {
            Ok(n) if n >= spc::MIN_FIX_AFTER_N_POINTS => Some(n),
            _ => {
                v.add(
                    "options.fix_after_n_points",
                    format!("must be at least {} (got {n})", spc::MIN_FIX_AFTER_N_POINTS),
                );
                None
            }
        },
    };
    let mut rules = match pb::SpcRuleSet::try_from(rule_set) {
        Ok(pb::SpcRuleSet::Unspecified | pb::SpcRuleSet::Mdc) => RuleParameters::MDC,
        Ok(pb::SpcRuleSet::LifeQi) => RuleParameters::LIFE_QI,
        Err(_) => {
            v.add("options.rule_set", "choose MDC or LIFE_QI");
            RuleParameters::MDC
        }
    };
    let mut run = |field: &str, given: i32, into: &mut usize| {
        if given == 0 {
            return;
        }
        match usize::try_from(given) {
            Ok(n) if (RuleParameters::MIN_POINTS..=100).contains(&n) => *into = n,
            _ => v.add(
                field,
                format!(
                    "must be {} to 100 (got {given}), or 0 for the rule set's",
                    RuleParameters::MIN_POINTS
                ),
            ),
        }
    };
    run(
        "options.shift_points",
        shift_points,
        &mut rules.shift_points,
    );
    run(
        "options.trend_points",
        trend_points,
        &mut rules.trend_points,
    );
    let trial_limit_threshold = match trial_limit_threshold {
        0 => spc::DEFAULT_TRIAL_LIMIT_THRESHOLD,
        n => match usize::try_from(n) {
            Ok(n) if n <= 1_000 => n,
            _ => {
                v.add(
                    "options.trial_limit_threshold",
                    format!("must be 1 to 1,000 (got {n}), or 0 for 13"),
                );
                spc::DEFAULT_TRIAL_LIMIT_THRESHOLD
            }
        },
    };
    v.finish()?;
    Ok(SpcOptions {
        improvement_direction,
        target: target.or(default_target),
        rebase_positions: positions,
        fix_after_n_points,
        screen_outliers: screen_outliers.unwrap_or(true),
        rules,
        trial_limit_threshold,
    })
}

/// Runs the engine, naming the field of anything it refuses (`values` for ComputeSpc).
fn chart_of(values: &[f64], options: &SpcOptions) -> Result<SpcChart, Error> {
    spc::compute(values, options).map_err(|e| {
        let field = match e {
            SpcError::Empty => "values".to_owned(),
            SpcError::NonFiniteValue { index, .. } => format!("values[{index}]"),
            SpcError::RebasePositionOutOfRange { .. } => "options.rebase_positions".to_owned(),
            SpcError::FixAfterNPointsTooSmall { .. } => "options.fix_after_n_points".to_owned(),
            SpcError::NonFiniteTarget { .. } => "options.target".to_owned(),
            SpcError::ShiftPointsTooSmall { .. } => "options.shift_points".to_owned(),
            SpcError::TrendPointsTooSmall { .. } => "options.trend_points".to_owned(),
        };
        Error::invalid(field, e.to_string())
    })
}

/// The options as the response reports them (every one resolved).
pub(crate) fn applied(o: &SpcOptions) -> pb::SpcOptions {
    pb::SpcOptions {
        improvement_direction: direction_to_proto(o.improvement_direction) as i32,
        target: o.target,
        rebase_positions: o
            .rebase_positions
            .iter()
            .map(|p| i32::try_from(*p).unwrap_or(i32::MAX))
            .collect(),
        fix_after_n_points: o
            .fix_after_n_points
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
        screen_outliers: Some(o.screen_outliers),
        rule_set: if o.rules == RuleParameters::LIFE_QI {
            pb::SpcRuleSet::LifeQi
        } else {
            pb::SpcRuleSet::Mdc
        } as i32,
        shift_points: int(o.rules.shift_points),
        trend_points: int(o.rules.trend_points),
        trial_limit_threshold: int(o.trial_limit_threshold),
    }
}

fn int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The variation icon as the contract's enum.
pub(crate) fn variation(icon: VariationIcon) -> pb::SpcVariationIcon {
    match icon {
        VariationIcon::CommonCause => pb::SpcVariationIcon::CommonCause,
        VariationIcon::ImprovementHigh => pb::SpcVariationIcon::ImprovementHigh,
        VariationIcon::ImprovementLow => pb::SpcVariationIcon::ImprovementLow,
        VariationIcon::ConcernHigh => pb::SpcVariationIcon::ConcernHigh,
        VariationIcon::ConcernLow => pb::SpcVariationIcon::ConcernLow,
        VariationIcon::NeutralHigh => pb::SpcVariationIcon::NeutralHigh,
        VariationIcon::NeutralLow => pb::SpcVariationIcon::NeutralLow,
    }
}

/// The assurance icon as the contract's enum (NONE without one).
pub(crate) fn assurance(icon: Option<AssuranceIcon>) -> pb::SpcAssuranceIcon {
    match icon {
        None => pb::SpcAssuranceIcon::None,
        Some(AssuranceIcon::ConsistentPass) => pb::SpcAssuranceIcon::ConsistentPass,
        Some(AssuranceIcon::ConsistentFail) => pb::SpcAssuranceIcon::ConsistentFail,
        Some(AssuranceIcon::Inconsistent) => pb::SpcAssuranceIcon::Inconsistent,
    }
}

/// Data sufficiency as the contract's enum.
pub(crate) fn sufficiency(s: DataSufficiency) -> pb::SpcDataSufficiency {
    match s {
        DataSufficiency::Sufficient => pb::SpcDataSufficiency::Sufficient,
        DataSufficiency::TrialLimits => pb::SpcDataSufficiency::TrialLimits,
        DataSufficiency::NotEnoughData => pb::SpcDataSufficiency::NotEnoughData,
    }
}

fn point_type(t: PointType) -> pb::SpcPointType {
    match t {
        PointType::CommonCause => pb::SpcPointType::CommonCause,
        PointType::ImprovementHigh => pb::SpcPointType::ImprovementHigh,
        PointType::ImprovementLow => pb::SpcPointType::ImprovementLow,
        PointType::ConcernHigh => pb::SpcPointType::ConcernHigh,
        PointType::ConcernLow => pb::SpcPointType::ConcernLow,
        PointType::NeutralHigh => pb::SpcPointType::NeutralHigh,
        PointType::NeutralLow => pb::SpcPointType::NeutralLow,
    }
}

fn special_cause(c: SpecialCause) -> pb::SpcSpecialCause {
    match c {
        SpecialCause::CommonCause => pb::SpcSpecialCause::CommonCause,
        SpecialCause::AboveUpperLimit => pb::SpcSpecialCause::AboveUpperLimit,
        SpecialCause::BelowLowerLimit => pb::SpcSpecialCause::BelowLowerLimit,
        SpecialCause::TrendIncreasing => pb::SpcSpecialCause::TrendIncreasing,
        SpecialCause::TrendDecreasing => pb::SpcSpecialCause::TrendDecreasing,
        SpecialCause::TwoInThreeAbove => pb::SpcSpecialCause::TwoInThreeAbove,
        SpecialCause::TwoInThreeBelow => pb::SpcSpecialCause::TwoInThreeBelow,
        SpecialCause::ShiftAbove => pb::SpcSpecialCause::ShiftAbove,
        SpecialCause::ShiftBelow => pb::SpcSpecialCause::ShiftBelow,
    }
}

fn side(s: MeanSide) -> pb::SpcMeanSide {
    match s {
        MeanSide::Above => pb::SpcMeanSide::Above,
        MeanSide::On => pb::SpcMeanSide::On,
        MeanSide::Below => pb::SpcMeanSide::Below,
    }
}

/// Whether a point type is a special-cause concern.
pub(crate) fn is_concern(t: PointType) -> bool {
    matches!(t, PointType::ConcernHigh | PointType::ConcernLow)
}

fn point(i: usize, p: &spc::SpcPoint, period: Option<NaiveDate>) -> pb::SpcPoint {
    pb::SpcPoint {
        position: int(i),
        period: period.map(date),
        value: p.value,
        group: int(p.group),
        rebase_group: int(p.rebase_group),
        mean: p.mean,
        lower_process_limit: p.limits.map(|l| l.lower),
        upper_process_limit: p.limits.map(|l| l.upper),
        lower_two_sigma: p.limits.map(|l| l.lower_two_sigma),
        upper_two_sigma: p.limits.map(|l| l.upper_two_sigma),
        moving_range: p.moving_range,
        moving_range_screened_out: p.moving_range_screened_out,
        side: side(p.side) as i32,
        near_limit: p.near_limit,
        rules: Some(pb::SpcRules {
            outside_limits: p.rules.outside_limits,
            shift: p.rules.shift,
            trend: p.rules.trend,
            two_in_three: p.rules.two_in_three,
        }),
        special_cause: special_cause(p.special_cause) as i32,
        special_cause_label: p.special_cause.ptd_label().to_owned(),
        point_type: point_type(p.point_type) as i32,
        colour: p.point_type.colour().to_owned(),
        trial_limits: p.trial_limits,
    }
}

/// Why a chart's data are not sufficient, in a sentence.
pub(crate) fn sufficiency_reason(chart: &SpcChart, options: &SpcOptions) -> String {
    let Some(last) = chart.groups.last() else {
        return "there are no points".into();
    };
    match chart.sufficiency {
        DataSufficiency::Sufficient => String::new(),
        DataSufficiency::TrialLimits => format!(
            "the last group has {} points, fewer than {}: its limits are trial limits and will move",
            last.len, options.trial_limit_threshold
        ),
        DataSufficiency::NotEnoughData if last.len == 1 => {
            "not enough data: the last group has a single point, so it has no process limits".into()
        }
        DataSufficiency::NotEnoughData => {
            "not enough data: every moving range of the last group is zero (its values are all equal), so it has no process limits".into()
        }
    }
}

/// The engine's chart as the contract carries it; `periods` dates the points of a stored
/// metric.
pub(crate) fn to_proto(
    chart: &SpcChart,
    periods: Option<&[NaiveDate]>,
    options: &SpcOptions,
    view: pb::SpcChartView,
) -> pb::SpcChart {
    let period_of = |i: usize| periods.and_then(|p| p.get(i).copied());
    let full = !matches!(view, pb::SpcChartView::Summary);
    pb::SpcChart {
        points: if full {
            chart
                .points
                .iter()
                .enumerate()
                .map(|(i, p)| point(i, p, period_of(i)))
                .collect()
        } else {
            Vec::new()
        },
        groups: chart
            .groups
            .iter()
            .map(|g| pb::SpcGroup {
                rebase_group: int(g.rebase_group),
                start: int(g.start),
                length: int(g.len),
                baseline_length: int(g.baseline_len),
                mean: g.mean,
                mean_moving_range: g.mean_moving_range,
                lower_process_limit: g.limits.map(|l| l.lower),
                upper_process_limit: g.limits.map(|l| l.upper),
                lower_two_sigma: g.limits.map(|l| l.lower_two_sigma),
                upper_two_sigma: g.limits.map(|l| l.upper_two_sigma),
                trial_limits: g.trial_limits,
                start_period: period_of(g.start).map(date),
            })
            .collect(),
        variation_icon: variation(chart.variation) as i32,
        assurance_icon: assurance(chart.assurance) as i32,
        data_sufficiency: sufficiency(chart.sufficiency) as i32,
        data_sufficiency_reason: sufficiency_reason(chart, options),
        applied_options: Some(applied(options)),
        point_count: int(chart.points.len()),
        latest_point: chart
            .points
            .len()
            .checked_sub(1)
            .map(|i| point(i, &chart.points[i], period_of(i))),
    }
}

/// The chart of a series with no points: marked NOT_ENOUGH_DATA, with no icons.
pub(crate) fn empty(options: &SpcOptions, reason: &str) -> pb::SpcChart {
    pb::SpcChart {
        variation_icon: pb::SpcVariationIcon::Unspecified as i32,
        assurance_icon: pb::SpcAssuranceIcon::Unspecified as i32,
        data_sufficiency: pb::SpcDataSufficiency::NotEnoughData as i32,
        data_sufficiency_reason: format!("not enough data: {reason}"),
        applied_options: Some(applied(options)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: Error) -> Vec<String> {
        let Error::InvalidArgument { violations } = e else {
            panic!("expected invalid argument, got {e:?}")
        };
        violations.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn defaults_are_the_packages() {
        let o = read_options(None, Source::Values { len: 3 }).unwrap();
        assert_eq!(o, SpcOptions::default());
        let o = read_options(
            None,
            Source::Metric {
                direction: ImprovementDirection::Decrease,
                target: Some(4.0),
            },
        )
        .unwrap();
        assert_eq!(o.improvement_direction, ImprovementDirection::Decrease);
        assert_eq!(o.target, Some(4.0));
    }

    #[test]
    fn every_option_is_read_and_bad_ones_named() {
        let given = pb::SpcOptions {
            improvement_direction: pb::ImprovementDirection::Neither as i32,
            target: Some(2.0),
            rebase_positions: vec![5, 0],
            fix_after_n_points: Some(12),
            screen_outliers: Some(false),
            rule_set: pb::SpcRuleSet::LifeQi as i32,
            shift_points: 9,
            trend_points: 0,
            trial_limit_threshold: 12,
        };
        let o = read_options(Some(given.clone()), Source::Values { len: 20 }).unwrap();
        assert_eq!(o.rebase_positions, [5, 0]);
        assert_eq!(o.rules.shift_points, 9);
        assert_eq!(o.rules.trend_points, 6);
        assert!(!o.screen_outliers);
        assert_eq!(o.trial_limit_threshold, 12);
        let back = applied(&o);
        assert_eq!(back.rebase_positions, [5, 0]);
        let bad = pb::SpcOptions {
            improvement_direction: 9,
            target: Some(f64::INFINITY),
            rebase_positions: vec![3, 20, -1],
            fix_after_n_points: Some(11),
            rule_set: 7,
            shift_points: 1,
            trend_points: -3,
            trial_limit_threshold: -1,
            ..given
        };
        assert_eq!(
            fields(read_options(Some(bad.clone()), Source::Values { len: 20 }).unwrap_err()),
            [
                "options.improvement_direction",
                "options.target",
                "options.rebase_positions[1]",
                "options.rebase_positions[2]",
                "options.fix_after_n_points",
                "options.rule_set",
                "options.shift_points",
                "options.trend_points",
                "options.trial_limit_threshold"
            ]
        );
        let stored = Source::Metric {
            direction: ImprovementDirection::Increase,
            target: None,
        };
        let only_positions = pb::SpcOptions {
            rebase_positions: vec![1],
            ..Default::default()
        };
        assert_eq!(
            fields(read_options(Some(only_positions), stored).unwrap_err()),
            ["options.rebase_positions"]
        );
    }

    #[test]
    fn the_proto_chart_carries_every_engine_field() {
        let values = [1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 30.0];
        let o = SpcOptions::default();
        let chart = chart_of(&values, &o).unwrap();
        let p = to_proto(&chart, None, &o, pb::SpcChartView::Unspecified);
        assert_eq!(p.points.len(), 7);
        assert_eq!(p.point_count, 7);
        let last = &p.points[6];
        assert_eq!(
            last.special_cause,
            pb::SpcSpecialCause::AboveUpperLimit as i32
        );
        assert_eq!(last.special_cause_label, "Above UCL");
        assert_eq!(last.point_type, pb::SpcPointType::ImprovementHigh as i32);
        assert_eq!(last.colour, spc::COLOUR_IMPROVEMENT);
        assert_eq!(p.latest_point.as_ref(), Some(last));
        assert_eq!(
            p.data_sufficiency,
            pb::SpcDataSufficiency::TrialLimits as i32
        );
        assert!(p.data_sufficiency_reason.contains("trial"));
        assert_eq!(
            p.points[0].upper_process_limit,
            chart.points[0].limits.map(|l| l.upper)
        );
        let summary = to_proto(&chart, None, &o, pb::SpcChartView::Summary);
        assert!(summary.points.is_empty());
        assert_eq!(summary.latest_point.as_ref(), Some(last));
        let one = chart_of(&[4.0], &o).unwrap();
        let p = to_proto(&one, None, &o, pb::SpcChartView::Full);
        assert_eq!(
            p.data_sufficiency,
            pb::SpcDataSufficiency::NotEnoughData as i32
        );
        assert!(p.data_sufficiency_reason.contains("single point"));
        assert_eq!(
            fields(chart_of(&[1.0, f64::NAN], &o).unwrap_err()),
            ["values[1]"]
        );
    }
}
