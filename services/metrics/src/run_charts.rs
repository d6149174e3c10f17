//! Run charts: their RPCs (a stored metric's chart, as data or drawn, and the chart of
//! values sent), options read from requests (every field named on refusal), and the
//! engine's output as the contract carries it. The numbers are the engine's
//! ([`crate::runchart`]), untouched.

use chrono::NaiveDate;
use qi_platform::convert::date;
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use crate::MetricsApi;
use crate::charts::{self, MAX_POINTS};
use crate::definitions::store::Lock;
use crate::definitions::{self, Metric};
use crate::render::{self, Frame, RunPicture};
use crate::runchart::{
    self, Direction, RuleSet, RunChart, RunChartError, RunChartOptions, RunsTest, Side, Signal,
};
use crate::series::Filter;

/// The most periods a caller may flag astronomical on a stored metric's chart.
const MAX_FLAGGED_PERIODS: usize = 1_000;

/// GetRunChart: a stored metric's run chart over the filtered series, with its annotations.
pub(crate) async fn get(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::GetRunChartRequest,
) -> Result<pb::GetRunChartResponse, Error> {
    let pb::GetRunChartRequest {
        metric,
        filter,
        options,
        astronomical_periods,
    } = req;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let stored = stored_chart(
        &mut conn,
        &ctx,
        metric,
        filter,
        options,
        astronomical_periods,
    )
    .await?;
    let chart = match &stored.chart {
        Ok(chart) => to_proto(chart, Some(&stored.periods)),
        Err(_) => empty(stored.rule_set),
    };
    Ok(pb::GetRunChartResponse {
        chart: Some(chart),
        annotations: stored.annotations,
    })
}

/// ComputeRunChart: the run chart of the values sent (no stored data).
pub(crate) async fn compute(
    _api: &MetricsApi,
    _ctx: AccessContext,
    req: pb::ComputeRunChartRequest,
) -> Result<pb::ComputeRunChartResponse, Error> {
    let pb::ComputeRunChartRequest {
        values,
        options,
        astronomical_positions,
    } = req;
    let mut v = Violations::new();
    if values.is_empty() {
        v.add(
            "values",
            format!("is required: send 1 to {MAX_POINTS} values in time order"),
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
    let (rule_set, baseline) = read_options(options, &mut v);
    if let Some(b) = baseline
        && b > values.len()
        && !values.is_empty()
    {
        v.add(
            "options.baseline_length",
            format!("is longer than the {} values sent", values.len()),
        );
    }
    let mut astronomical = Vec::with_capacity(astronomical_positions.len());
    for (i, p) in astronomical_positions.iter().enumerate() {
        match usize::try_from(*p) {
            Ok(p) if p < values.len() => astronomical.push(p),
            _ => v.add(
                format!("astronomical_positions[{i}]"),
                format!(
                    "{p} is outside the series (positions 0 to {})",
                    values.len().saturating_sub(1)
                ),
            ),
        }
    }
    v.finish()?;
    let options = RunChartOptions {
        rule_set,
        baseline_len: baseline,
        astronomical,
    };
    let chart = chart_of(&values, &options, "astronomical_positions")?;
    Ok(pb::ComputeRunChartResponse {
        chart: Some(to_proto(&chart, None)),
    })
}

/// RenderRunChart: a stored metric's run chart drawn as SVG.
pub(crate) async fn render(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::RenderRunChartRequest,
) -> Result<pb::RenderRunChartResponse, Error> {
    let pb::RenderRunChartRequest {
        metric,
        filter,
        options,
        astronomical_periods,
        width,
        height,
        title,
    } = req;
    let (width, height, title) = charts::picture_size(width, height, &title)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let stored = stored_chart(
        &mut conn,
        &ctx,
        metric,
        filter,
        options,
        astronomical_periods,
    )
    .await?;
    let notes = charts::dated_notes(&stored.annotations);
    let note = match &stored.chart {
        Ok(chart) => runs_test_note(chart),
        Err(_) => String::new(),
    };
    let title = if title.is_empty() {
        stored.metric.settings.display_name.clone()
    } else {
        title
    };
    let svg = render::run_chart_svg(&RunPicture {
        frame: Frame {
            title: &title,
            unit: &stored.metric.settings.unit,
            width,
            height,
            frequency: stored.metric.frequency,
            direction: stored.metric.settings.direction,
            target: stored.metric.settings.target,
            periods: &stored.periods,
            annotations: &notes,
            note: &note,
        },
        chart: stored.chart.as_ref().map_err(|e| *e),
    });
    Ok(pb::RenderRunChartResponse {
        svg,
        content_type: "image/svg+xml".into(),
    })
}

/// A stored metric's run chart, with what was needed to compute it.
struct StoredChart {
    metric: Metric,
    periods: Vec<NaiveDate>,
    rule_set: RuleSet,
    /// The chart, or why there is none.
    chart: Result<RunChart, &'static str>,
    annotations: Vec<pb::Annotation>,
}

/// Reads a stored metric's series and computes its run chart.
async fn stored_chart(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    metric: String,
    filter: Option<pb::SeriesFilter>,
    options: Option<pb::RunChartOptions>,
    astronomical_periods: Vec<qi_proto::google::r#type::Date>,
) -> Result<StoredChart, Error> {
    let metric = definitions::resolve(conn, ctx, "metric", &metric, false, Lock::None).await?;
    let mut v = Violations::new();
    let filter = v.check(Filter::parse(ctx, "filter", &metric, filter));
    let (rule_set, baseline) = read_options(options, &mut v);
    let mut flagged = Vec::with_capacity(astronomical_periods.len());
    if astronomical_periods.len() > MAX_FLAGGED_PERIODS {
        v.add(
            "astronomical_periods",
            format!("flag at most {MAX_FLAGGED_PERIODS} periods"),
        );
    }
    for (i, d) in astronomical_periods.iter().enumerate() {
        let field = format!("astronomical_periods[{i}]");
        flagged.push((
            field.clone(),
            v.check(qi_platform::convert::required_date(&field, Some(d)).map(Some)),
        ));
    }
    v.finish()?;
    let (periods, values) = charts::stored_series(conn, &metric, &filter).await?;
    // A flag must name a period of the series.
    let mut v = Violations::new();
    let mut astronomical = Vec::with_capacity(flagged.len());
    for (field, day) in flagged {
        match day.and_then(|d| periods.binary_search(&d).ok()) {
            Some(position) => astronomical.push(position),
            None => v.add(field, "is not the start of a period of the charted series"),
        }
    }
    v.finish()?;
    let chart = if values.is_empty() {
        Err("no measurements in the range")
    } else {
        let options = RunChartOptions {
            rule_set,
            // A stored series may be shorter than the baseline asked for: take it all.
            baseline_len: baseline.map(|b| b.min(values.len())),
            astronomical,
        };
        Ok(chart_of(&values, &options, "astronomical_periods")?)
    };
    let annotations = charts::notes_within(conn, &metric, &periods).await?;
    Ok(StoredChart {
        metric,
        periods,
        rule_set,
        chart,
        annotations,
    })
}

/// Reads `options` (fields `options.…`, refusals added to `v`): the rule set and the
/// baseline (`None`: all points).
fn read_options(
    options: Option<pb::RunChartOptions>,
    v: &mut Violations,
) -> (RuleSet, Option<usize>) {
    let pb::RunChartOptions {
        rule_set,
        baseline_length,
    } = options.unwrap_or_default();
    let rule_set = match pb::RunChartRuleSet::try_from(rule_set) {
        Ok(pb::RunChartRuleSet::Unspecified | pb::RunChartRuleSet::Ihi) => RuleSet::Ihi,
        Ok(pb::RunChartRuleSet::Anhoej) => RuleSet::Anhoej,
        Err(_) => {
            v.add("options.rule_set", "choose IHI or ANHOEJ");
            RuleSet::Ihi
        }
    };
    let baseline = match baseline_length {
        0 => None,
        n => match usize::try_from(n) {
            Ok(n) if n <= MAX_POINTS => Some(n),
            _ => {
                v.add(
                    "options.baseline_length",
                    format!("must be 1 to {MAX_POINTS} (got {n}), or 0 for every point"),
                );
                None
            }
        },
    };
    (rule_set, baseline)
}

/// Runs the engine, naming the field of anything it refuses.
pub(crate) fn chart_of(
    values: &[f64],
    options: &RunChartOptions,
    flags_field: &str,
) -> Result<RunChart, Error> {
    runchart::compute(values, options).map_err(|e| {
        let field = match e {
            RunChartError::Empty => "values".to_owned(),
            RunChartError::NonFiniteValue { index, .. } => format!("values[{index}]"),
            RunChartError::BaselineOutOfRange { .. } => "options.baseline_length".to_owned(),
            RunChartError::AstronomicalOutOfRange { index, .. } => {
                format!("{flags_field}[{index}]")
            }
        };
        Error::invalid(field, e.to_string())
    })
}

fn int(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The rule set as the contract's enum.
pub(crate) fn rule_set(r: RuleSet) -> pb::RunChartRuleSet {
    match r {
        RuleSet::Ihi => pb::RunChartRuleSet::Ihi,
        RuleSet::Anhoej => pb::RunChartRuleSet::Anhoej,
    }
}

/// A signal's kind as the contract's enum.
pub(crate) fn signal_kind(s: &Signal) -> pb::RunChartSignalKind {
    match s {
        Signal::Shift { .. } => pb::RunChartSignalKind::Shift,
        Signal::Trend { .. } => pb::RunChartSignalKind::Trend,
        Signal::TooFewRuns => pb::RunChartSignalKind::TooFewRuns,
        Signal::TooManyRuns => pb::RunChartSignalKind::TooManyRuns,
        Signal::LongRun { .. } => pb::RunChartSignalKind::LongRun,
        Signal::FewCrossings => pb::RunChartSignalKind::FewCrossings,
        Signal::Astronomical { .. } => pb::RunChartSignalKind::Astronomical,
    }
}

fn side_word(s: Side) -> (&'static str, pb::RunChartSignalDirection) {
    match s {
        Side::Above => ("above", pb::RunChartSignalDirection::Above),
        Side::Below | Side::On => ("below", pb::RunChartSignalDirection::Below),
    }
}

fn signal(s: &Signal, chart: &RunChart) -> pb::RunChartSignal {
    let kind = signal_kind(s) as i32;
    let span = |start: usize, end: usize, len: usize, direction: pb::RunChartSignalDirection| {
        (Some(int(start)), Some(int(end)), int(len), direction as i32)
    };
    let ((start, end, length, direction), description) = match *s {
        Signal::Shift {
            start,
            end,
            len,
            side,
        } => {
            let (word, d) = side_word(side);
            (
                span(start, end, len, d),
                format!("{len} points in a row {word} the median (a shift is 6 or more)"),
            )
        }
        Signal::Trend {
            start,
            end,
            len,
            direction,
        } => {
            let (word, d) = match direction {
                Direction::Up => ("up", pb::RunChartSignalDirection::Up),
                Direction::Down => ("down", pb::RunChartSignalDirection::Down),
            };
            (
                span(start, end, len, d),
                format!("{len} points in a row going {word} (a trend is 5 or more)"),
            )
        }
        Signal::LongRun {
            start,
            end,
            len,
            side,
        } => {
            let (word, d) = side_word(side);
            let limit = match chart.runs_test {
                RunsTest::Anhoej {
                    longest_run_limit, ..
                } => longest_run_limit,
                RunsTest::IhiApplied { .. }
                | RunsTest::IhiNotApplied
                | RunsTest::AnhoejNotApplied => 0,
            };
            (
                span(start, end, len, d),
                format!("a run of {len} points {word} the median, longer than {limit}"),
            )
        }
        Signal::TooFewRuns | Signal::TooManyRuns => {
            let (lower, upper) = match chart.runs_test {
                RunsTest::IhiApplied { lower, upper } => (lower, upper),
                RunsTest::IhiNotApplied | RunsTest::Anhoej { .. } | RunsTest::AnhoejNotApplied => {
                    (0, 0)
                }
            };
            (
                (
                    None,
                    None,
                    0,
                    pb::RunChartSignalDirection::Unspecified as i32,
                ),
                format!(
                    "{} runs where {lower} to {upper} are expected for {} useful observations",
                    chart.runs, chart.useful
                ),
            )
        }
        Signal::FewCrossings => {
            let min = match chart.runs_test {
                RunsTest::Anhoej { min_crossings, .. } => min_crossings,
                RunsTest::IhiApplied { .. }
                | RunsTest::IhiNotApplied
                | RunsTest::AnhoejNotApplied => 0,
            };
            (
                (
                    None,
                    None,
                    0,
                    pb::RunChartSignalDirection::Unspecified as i32,
                ),
                format!(
                    "{} crossings of the median, fewer than {min} for {} useful observations",
                    chart.crossings, chart.useful
                ),
            )
        }
        Signal::Astronomical { position } => (
            (
                Some(int(position)),
                Some(int(position)),
                0,
                pb::RunChartSignalDirection::Unspecified as i32,
            ),
            "flagged as an astronomical point".to_owned(),
        ),
    };
    pb::RunChartSignal {
        kind,
        start,
        end,
        length,
        direction,
        description,
    }
}

/// Why the runs test was not applied, in a sentence; empty when it was.
pub(crate) fn runs_test_note(chart: &RunChart) -> String {
    match chart.runs_test {
        RunsTest::IhiNotApplied => format!(
            "runs rule not applied: {} useful observations, and the IHI table covers {} to {}",
            chart.useful,
            runchart::RUNS_TABLE_FIRST,
            runchart::RUNS_TABLE_LAST
        ),
        RunsTest::AnhoejNotApplied => {
            "runs rules not applied: every point is on the median".to_owned()
        }
        RunsTest::IhiApplied { .. } | RunsTest::Anhoej { .. } => String::new(),
    }
}

/// The engine's chart as the contract carries it; `periods` dates the points of a stored
/// metric.
pub(crate) fn to_proto(chart: &RunChart, periods: Option<&[NaiveDate]>) -> pb::RunChart {
    let (min_runs, max_runs, longest_run_limit, min_crossings) = match chart.runs_test {
        RunsTest::IhiApplied { lower, upper } => (Some(int(lower)), Some(int(upper)), None, None),
        RunsTest::Anhoej {
            longest_run_limit,
            min_crossings,
        } => (
            None,
            None,
            Some(int(longest_run_limit)),
            Some(int(min_crossings)),
        ),
        RunsTest::IhiNotApplied | RunsTest::AnhoejNotApplied => (None, None, None, None),
    };
    pb::RunChart {
        rule_set: rule_set(chart.rule_set) as i32,
        median: chart.median,
        baseline_length: int(chart.baseline_len),
        points: chart
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| pb::RunChartPoint {
                position: int(i),
                period: periods.and_then(|ps| ps.get(i).copied()).map(date),
                value: p.value,
                side: match p.side {
                    Side::Above => pb::RunChartSide::Above,
                    Side::On => pb::RunChartSide::On,
                    Side::Below => pb::RunChartSide::Below,
                } as i32,
                shift: p.shift,
                trend: p.trend,
                long_run: p.long_run,
                astronomical: p.astronomical,
                in_signal: p.in_signal(),
            })
            .collect(),
        point_count: int(chart.points.len()),
        useful_observation_count: int(chart.useful),
        run_count: int(chart.runs),
        crossing_count: int(chart.crossings),
        longest_run: int(chart.longest_run),
        runs_test_applied: matches!(
            chart.runs_test,
            RunsTest::IhiApplied { .. } | RunsTest::Anhoej { .. }
        ),
        runs_test_note: runs_test_note(chart),
        min_runs,
        max_runs,
        longest_run_limit,
        min_crossings,
        signals: chart.signals.iter().map(|s| signal(s, chart)).collect(),
        has_signal: chart.has_signal(),
        applied_options: Some(pb::RunChartOptions {
            rule_set: rule_set(chart.rule_set) as i32,
            baseline_length: int(chart.baseline_len),
        }),
    }
}

/// The chart of a series with no points.
fn empty(r: RuleSet) -> pb::RunChart {
    pb::RunChart {
        rule_set: rule_set(r) as i32,
        runs_test_note: "not enough data: no measurements in the range".into(),
        applied_options: Some(pb::RunChartOptions {
            rule_set: rule_set(r) as i32,
            baseline_length: 0,
        }),
        ..Default::default()
    }
}
