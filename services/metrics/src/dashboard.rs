//! The QMS dashboard (GetQmsDashboard): per metric, the latest value, the variation and
//! assurance icons of its SPC chart — or, for a metric with fewer periods than the service's
//! threshold, a run-chart reading instead, and the row says which — and whether its
//! inequality gaps are widening (see [`crate::inequality::signal`]).
//! A page of metrics costs a fixed number of grouped queries, not a query per metric.

use qi_platform::names::OwnerAccess as _;
use std::collections::HashMap;

use qi_platform::names::{ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteScope, Violations};
use qi_proto::metrics as pb;
use sqlx::PgConnection;

use crate::MetricsApi;
use crate::charts;
use crate::definitions::{self, DashboardScope, Kind, Metric, direction_to_proto};
use crate::dimensions::Dimension;
use crate::runchart::{self, RunChartOptions};
use crate::series::{self, Filter, Grouped};
use crate::spc::{self, SpcOptions};
use crate::{inequality, rebase_points, run_charts};

/// GetQmsDashboard: one page of the dashboard's metrics (by parent and kind) with their
/// rows.
pub(crate) async fn get(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::GetQmsDashboardRequest,
) -> Result<pb::GetQmsDashboardResponse, Error> {
    let pb::GetQmsDashboardRequest {
        parent,
        kinds,
        page_size,
        page_token,
    } = req;
    let mut v = Violations::new();
    let list_parent = v.check(ListParent::parse("parent", &parent).map(Some));
    let mut kind_columns = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let kind = v.check(Kind::from_proto(&format!("kinds[{i}]"), *k));
        if !kind_columns.contains(&kind.column()) {
            kind_columns.push(kind.column());
        }
    }
    if kind_columns.is_empty() {
        kind_columns.push(Kind::Qms.column());
    }
    v.finish()?;
    let scope = match list_parent {
        Some(ListParent::Owner(Owner::Trust)) => DashboardScope {
            trust: true,
            sites: Some(Vec::new()),
            kinds: kind_columns.clone(),
        },
        Some(ListParent::Owner(owner @ Owner::Site(_))) => {
            owner.check_read(&ctx)?;
            DashboardScope {
                trust: true,
                sites: Some(owner.site_column().map(str::to_owned).into_iter().collect()),
                kinds: kind_columns.clone(),
            }
        }
        Some(ListParent::AllSites) | None => DashboardScope {
            trust: true,
            sites: ctx.sites.sql_filter(),
            kinds: kind_columns.clone(),
        },
    };
    let page = Page::parse(
        page_size,
        &page_token,
        &format!("{parent}|{}", kind_columns.join(",")),
    )?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let (metrics, next_page_token) =
        definitions::store::list_for_dashboard(&mut conn, &scope, &page).await?;
    let rows = rows(&mut conn, &ctx.sites, &metrics, api.run_chart_below_points).await?;
    Ok(pb::GetQmsDashboardResponse {
        rows,
        next_page_token,
    })
}

/// The dashboard rows of these metrics, in their order, from the measurements at `sites`;
/// a metric with fewer than `run_chart_below` periods is read by a run chart.
async fn rows(
    conn: &mut PgConnection,
    sites: &SiteScope,
    metrics: &[Metric],
    run_chart_below: usize,
) -> Result<Vec<pb::QmsDashboardRow>, Error> {
    if metrics.is_empty() {
        return Ok(Vec::new());
    }
    let refs: Vec<&Metric> = metrics.iter().collect();
    let everything = Filter::scoped(sites);
    let overall = series::store::read(conn, &refs, None, &everything).await?;
    let rebase = rebase_points::store::of_metrics(conn, &refs).await?;
    let mut by_dimension: HashMap<Dimension, Grouped> = HashMap::new();
    for d in Dimension::ALL {
        let recorded: Vec<&Metric> = metrics
            .iter()
            .filter(|m| m.settings.recording.records(d))
            .collect();
        if !recorded.is_empty() {
            by_dimension.insert(
                d,
                series::store::read(conn, &recorded, Some(d), &everything).await?,
            );
        }
    }
    Ok(metrics
        .iter()
        .map(|m| {
            let periods = overall.get(&m.uid).and_then(|labels| labels.get(""));
            let points = series::values(m, periods);
            let rebase_points = rebase.get(&m.uid).map_or(&[][..], Vec::as_slice);
            let signals: Vec<pb::InequalitySignal> = m
                .settings
                .recording
                .dimensions
                .iter()
                .map(|d| {
                    let empty = Default::default();
                    let by_label = by_dimension
                        .get(d)
                        .and_then(|g| g.get(&m.uid))
                        .unwrap_or(&empty);
                    inequality::signal(*d, &inequality::gap_series(m, *d, by_label))
                })
                .collect();
            row(m, &points, rebase_points, signals, run_chart_below)
        })
        .collect())
}

/// The summary of a metric's signals.
fn overall_trend(signals: &[pb::InequalitySignal]) -> pb::InequalityGapTrend {
    use pb::InequalityGapTrend as T;
    if signals.is_empty() {
        return T::NotRecorded;
    }
    let has = |t: T| signals.iter().any(|s| s.trend == t as i32);
    if has(T::Widening) {
        T::Widening
    } else if has(T::Narrowing) {
        T::Narrowing
    } else if has(T::NoSignal) {
        T::NoSignal
    } else {
        T::NotEnoughData
    }
}

fn row(
    m: &Metric,
    points: &[(chrono::NaiveDate, f64)],
    rebase_points: &[pb::RebasePoint],
    signals: Vec<pb::InequalitySignal>,
    run_chart_below: usize,
) -> pb::QmsDashboardRow {
    // A young metric is read by a run chart: too few periods for SPC's limits to mean much.
    let young = points.len() < run_chart_below;
    let mut out = pb::QmsDashboardRow {
        metric: m.name(),
        display_name: m.settings.display_name.clone(),
        kind: m.settings.kind.to_proto() as i32,
        unit: m.settings.unit.clone(),
        improvement_direction: direction_to_proto(m.settings.direction) as i32,
        frequency: m.frequency.to_proto() as i32,
        scope: m.scope_proto() as i32,
        target: m.settings.target,
        variation_icon: pb::SpcVariationIcon::Unspecified as i32,
        assurance_icon: pb::SpcAssuranceIcon::Unspecified as i32,
        data_sufficiency: pb::SpcDataSufficiency::NotEnoughData as i32,
        inequality_trend: overall_trend(&signals) as i32,
        inequality: signals,
        reading: if young {
            pb::QmsReading::RunChart
        } else {
            pb::QmsReading::Spc
        } as i32,
        ..Default::default()
    };
    let Some((latest, value)) = points.last() else {
        return out;
    };
    out.latest_period = Some(qi_platform::convert::date(*latest));
    out.latest_value = Some(*value);
    out.point_count = i32::try_from(points.len()).unwrap_or(i32::MAX);
    let periods: Vec<chrono::NaiveDate> = points.iter().map(|(p, _)| *p).collect();
    let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
    if young {
        out.run_chart = run_chart_reading(&values);
        if let Ok(chart) = spc::compute(&values, &SpcOptions::default()) {
            out.data_sufficiency = charts::sufficiency(chart.sufficiency) as i32;
        }
        return out;
    }
    let (positions, _) = rebase_points::positions(&periods, rebase_points);
    let options = SpcOptions {
        improvement_direction: m.settings.direction,
        target: m.settings.target,
        rebase_positions: positions,
        ..SpcOptions::default()
    };
    if let Ok(chart) = spc::compute(&values, &options) {
        out.variation_icon = charts::variation(chart.variation) as i32;
        out.assurance_icon = charts::assurance(chart.assurance) as i32;
        out.data_sufficiency = charts::sufficiency(chart.sufficiency) as i32;
    }
    out
}

/// A young metric's run-chart reading: the IHI rules over every period.
fn run_chart_reading(values: &[f64]) -> Option<pb::QmsRunChartReading> {
    let chart = runchart::compute(values, &RunChartOptions::default()).ok()?;
    let latest_in_signal = chart
        .points
        .last()
        .is_some_and(|p| p.shift || p.trend || p.long_run);
    Some(pb::QmsRunChartReading {
        rule_set: run_charts::rule_set(chart.rule_set) as i32,
        median: chart.median,
        has_signal: chart.has_signal(),
        signals: chart
            .signals
            .iter()
            .map(|s| run_charts::signal_kind(s) as i32)
            .collect(),
        latest_in_signal,
        runs_test_note: run_charts::runs_test_note(&chart),
    })
}
