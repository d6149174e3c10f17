//! The QMS metrics of each site since 2021 — length of stay (weekly, by IMD quintile),
//! complaints (monthly, by ethnic category), staff engagement (quarterly) and the time from
//! discharge decision to departure (weekly) — each improving after the site's project
//! aimed at it completed, with an annotation there, and a rebase point where the shift is
//! sustained (as Making Data Count advises).

use chrono::{Datelike, Days, Months, NaiveDate};
use qi_platform::convert::date;
use qi_proto::metrics as pb;

use super::projects::portfolio;
use super::rng::Rng;
use super::{AS_OF, Api, Tally, created, day, each, failed, rpc};
use crate::seed::SITES;

/// Where the series start: the first Monday of 2021.
const FIRST_WEEK: NaiveDate = day(2021, 1, 4);
const FIRST_MONTH: NaiveDate = day(2021, 1, 1);
/// The last quarter with a staff survey result.
const LAST_QUARTER: NaiveDate = day(2026, 7, 1);

/// IMD quintiles with each one's share of admissions and how much longer it stays.
const IMD: [(&str, u32, f64); 6] = [
    ("1", 70, 0.9),
    ("2", 60, 0.5),
    ("3", 55, 0.2),
    ("4", 50, 0.0),
    ("5", 45, -0.2),
    ("U", 12, 0.3),
];

/// Ethnic categories with their share of complaints, in percent.
const ETHNIC: [(&str, u32); 13] = [
    ("A", 70),
    ("B", 2),
    ("C", 6),
    ("H", 4),
    ("J", 2),
    ("K", 1),
    ("L", 2),
    ("M", 2),
    ("N", 3),
    ("R", 1),
    ("S", 2),
    ("Z", 3),
    ("99", 2),
];

/// One metric of a site, and when the project aimed at it completed.
#[derive(Debug, Clone)]
struct Series {
    site: &'static str,
    s: usize,
    id: &'static str,
    improved: NaiveDate,
}

/// Loads each site's four metrics.
pub(crate) async fn load(api: &Api) -> anyhow::Result<Tally> {
    let portfolio = portfolio();
    let mut all = Vec::new();
    for (s, (site, _)) in SITES.iter().enumerate() {
        let end = |project: &str| {
            portfolio
                .wrapped_end(project, site)
                .unwrap_or(day(2023, 3, 1))
        };
        for (id, project) in [
            ("los", "discharge"),
            ("discharge-tat", "discharge"),
            ("complaints", "concerns"),
            ("staff-morale", "wellbeing"),
        ] {
            all.push(Series {
                site,
                s,
                id,
                improved: end(project),
            });
        }
    }
    let api = api.clone();
    each(all, move |series| {
        let api = api.clone();
        async move { metric(&api, series).await }
    })
    .await
}

fn weeks() -> impl Iterator<Item = NaiveDate> {
    (0..)
        .map(|k| FIRST_WEEK + Days::new(7 * k))
        .take_while(|d| *d <= AS_OF)
}

fn months() -> impl Iterator<Item = NaiveDate> {
    (0..)
        .map(|k| FIRST_MONTH + Months::new(k))
        .take_while(|d| *d <= AS_OF)
}

fn quarters() -> impl Iterator<Item = NaiveDate> {
    (0..)
        .map(|k| FIRST_MONTH + Months::new(3 * k))
        .take_while(|d| *d <= LAST_QUARTER)
}

/// The first period of `periods` on or after `d`.
fn period_from(mut periods: impl Iterator<Item = NaiveDate>, d: NaiveDate) -> Option<NaiveDate> {
    periods.find(|p| *p >= d)
}

fn mean(
    period: NaiveDate,
    value: f64,
    count: i64,
    stratum: Option<pb::Stratum>,
) -> pb::Measurement {
    pb::Measurement {
        period: Some(date(period)),
        stratum,
        value: Some((value * 100.0).round() / 100.0),
        count,
        ..Default::default()
    }
}

/// The metric's definition and its measurements.
fn generate(x: &Series) -> (pb::Metric, Vec<pb::Measurement>, &'static str, bool) {
    let mut r = Rng::of(&format!("metric-{}", x.id), x.s as u64);
    let after = |p: NaiveDate| p >= x.improved;
    match x.id {
        "los" => {
            let base = [6.4, 6.0, 6.8][x.s];
            let mut out = Vec::new();
            for w in weeks() {
                // Winter pressure: a little longer from December to February.
                let winter = if matches!(w.month(), 12 | 1 | 2) {
                    0.25
                } else {
                    0.0
                };
                for (q, share, extra) in IMD {
                    let gain = if after(w) {
                        0.8 + extra.max(0.0) * 0.3
                    } else {
                        0.0
                    };
                    let v = base + extra + winter - gain + r.noise(0.35);
                    let n = i64::from(share) + r.noise(6.0).round() as i64;
                    out.push(mean(
                        w,
                        v,
                        n.max(1),
                        Some(pb::Stratum {
                            imd_quintile: q.into(),
                            ..Default::default()
                        }),
                    ));
                }
            }
            (
                pb::Metric {
                    display_name: format!("Length of stay, {} (days)", x.site),
                    unit: "days".into(),
                    kind: pb::MetricKind::Qms as i32,
                    improvement_direction: pb::ImprovementDirection::Decrease as i32,
                    description: "Mean length of stay of adult inpatients discharged in the week, by the IMD quintile of their home address.".into(),
                    target: Some(5.5),
                    frequency: pb::MetricFrequency::Week as i32,
                    value_type: pb::MetricValueType::Mean as i32,
                    dimensions: vec![pb::InequalityDimension::ImdQuintile as i32],
                    imd_edition: pb::ImdEdition::Imd2019 as i32,
                    ..Default::default()
                },
                out,
                "Discharge before noon project completed",
                true,
            )
        }
        "discharge-tat" => {
            let base = [6.6, 6.2, 7.0][x.s];
            let out = weeks()
                .map(|w| {
                    let v = if after(w) { base - 2.2 } else { base } + r.noise(0.45);
                    mean(w, v, 180 + r.below(60) as i64, None)
                })
                .collect();
            (
                pb::Metric {
                    display_name: format!("Discharge decision to departure, {} (hours)", x.site),
                    unit: "hours".into(),
                    kind: pb::MetricKind::Qms as i32,
                    improvement_direction: pb::ImprovementDirection::Decrease as i32,
                    description: "Mean hours from the decision to discharge to the patient leaving the ward: the process measure of the discharge work.".into(),
                    target: Some(4.0),
                    frequency: pb::MetricFrequency::Week as i32,
                    value_type: pb::MetricValueType::Mean as i32,
                    ..Default::default()
                },
                out,
                "Discharge before noon project completed",
                true,
            )
        }
        "complaints" => {
            let base = [34.0, 30.0, 28.0][x.s];
            let mut out = Vec::new();
            for m in months() {
                let level = if after(m) { base * 0.7 } else { base };
                for (c, pct) in ETHNIC {
                    let expect = level * f64::from(pct) / 100.0;
                    let v = (expect + r.noise(expect.sqrt())).round().max(0.0);
                    out.push(pb::Measurement {
                        period: Some(date(m)),
                        stratum: Some(pb::Stratum {
                            ethnic_category: c.into(),
                            ..Default::default()
                        }),
                        value: Some(v),
                        ..Default::default()
                    });
                }
            }
            (
                pb::Metric {
                    display_name: format!("Complaints received, {}", x.site),
                    unit: "complaints".into(),
                    kind: pb::MetricKind::Qms as i32,
                    improvement_direction: pb::ImprovementDirection::Decrease as i32,
                    description: "Formal complaints received in the month, by the complainant's ethnic category (NHS Data Dictionary).".into(),
                    target: Some(20.0),
                    frequency: pb::MetricFrequency::Month as i32,
                    value_type: pb::MetricValueType::Count as i32,
                    dimensions: vec![pb::InequalityDimension::EthnicCategory as i32],
                    ..Default::default()
                },
                out,
                "Resolving concerns at ward level project completed",
                false,
            )
        }
        _ => {
            let base = [6.5, 6.6, 6.4][x.s];
            let out = quarters()
                .map(|q| {
                    let v = if after(q) { base + 0.5 } else { base } + r.noise(0.08);
                    mean(q, v, 1_100 + r.below(300) as i64, None)
                })
                .collect();
            (
                pb::Metric {
                    display_name: format!("Staff engagement, {} (score out of 10)", x.site),
                    unit: "score".into(),
                    kind: pb::MetricKind::Qms as i32,
                    improvement_direction: pb::ImprovementDirection::Increase as i32,
                    description: "The staff engagement score of the quarterly pulse survey.".into(),
                    target: Some(7.0),
                    frequency: pb::MetricFrequency::Quarter as i32,
                    value_type: pb::MetricValueType::Mean as i32,
                    ..Default::default()
                },
                out,
                "Staff wellbeing huddles project completed",
                false,
            )
        }
    }
}

async fn metric(api: &Api, x: Series) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let name = format!("sites/{}/metrics/{}", x.site, x.id);
    let (definition, measurements, note, rebase) = generate(&x);
    let made = created(
        rpc!(
            api.metrics,
            create_metric,
            pb::CreateMetricRequest {
                parent: format!("sites/{}", x.site),
                metric_id: x.id.into(),
                metric: Some(definition),
                request_id: String::new(),
            }
        ),
        &name,
    )?;
    if made.is_some() {
        tally.created += 1;
    } else {
        tally.existing += 1;
    }
    // Re-sending a batch changes nothing: the key is the period and stratum.
    let stored = rpc!(
        api.metrics,
        batch_create_measurements,
        pb::BatchCreateMeasurementsRequest {
            parent: name.clone(),
            measurements,
            request_id: String::new(),
        }
    )
    .map_err(|s| failed(s, &format!("recording {name}")))?;
    if stored.updated_count > 0 || (made.is_none() && stored.created_count > 0) {
        tally.advanced += 1;
    }
    let annotation = created(
        rpc!(
            api.metrics,
            create_annotation,
            pb::CreateAnnotationRequest {
                parent: name.clone(),
                annotation_id: "project-completed".into(),
                annotation: Some(pb::Annotation {
                    date: Some(date(x.improved)),
                    text: note.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            }
        ),
        &format!("annotating {name}"),
    )?;
    tally.created += u64::from(annotation.is_some());
    let periods: Box<dyn Iterator<Item = NaiveDate>> = match x.id {
        "complaints" => Box::new(months()),
        "staff-morale" => Box::new(quarters()),
        _ => Box::new(weeks()),
    };
    if rebase && let Some(period) = period_from(periods, x.improved) {
        let point = created(
            rpc!(
                api.metrics,
                create_rebase_point,
                pb::CreateRebasePointRequest {
                    parent: name.clone(),
                    rebase_point_id: "after-project".into(),
                    rebase_point: Some(pb::RebasePoint {
                        period: Some(date(period)),
                        reason: format!("{note}: a sustained shift"),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                }
            ),
            &format!("rebasing {name}"),
        )?;
        tally.created += u64::from(point.is_some());
    }
    Ok(tally)
}
