//! Each site's QMS metrics, measured since 2021 and improving after the site's project
//! aimed at each completed: the definitions, the measurements, the annotation there and,
//! where the shift is sustained, the rebase point (as Making Data Count advises).

use chrono::{Datelike, Days, Months, NaiveDate};
use qi_platform::convert::date;
use qi_proto::metrics as pb;

use super::portfolio::Portfolio;
use crate::demo::AS_OF;
use crate::demo::data::metrics::{ETHNIC, FIRST_MONTH, FIRST_WEEK, IMD, LAST_QUARTER, Qms};
use crate::demo::day;
use crate::demo::rng::Rng;
use crate::seed::SITES;

/// The site whose complaints' gap between ethnic groups widens at the end of the story,
/// with no project measuring it (`ListEquityOpportunities` finds it).
pub(crate) const WIDENING_SITE: &str = "SOU";
/// The last month before it widens.
pub(crate) const WIDENING_FROM: NaiveDate = day(2026, 2, 1);

/// One metric of a site, and when the project aimed at it completed.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) site: &'static str,
    /// The site's place in `SITES`.
    s: usize,
    pub(crate) qms: Qms,
    /// When it improved: the day the site's project aimed at it completed.
    pub(crate) improved: NaiveDate,
}

/// Each site's four metrics.
pub(crate) fn series(portfolio: &Portfolio) -> Vec<Series> {
    let mut all = Vec::new();
    for (s, (site, _)) in SITES.iter().enumerate() {
        for qms in Qms::ALL {
            all.push(Series {
                site,
                s,
                qms,
                improved: portfolio
                    .wrapped_end(qms.project(), site)
                    .unwrap_or(day(2023, 3, 1)),
            });
        }
    }
    all
}

/// What to record of one series.
#[derive(Debug, Clone)]
pub(crate) struct MetricPlan {
    pub(crate) definition: pb::Metric,
    pub(crate) measurements: Vec<pb::Measurement>,
    /// The annotation at the improvement.
    pub(crate) note: &'static str,
    /// The period from which the series is rebased, if it is.
    pub(crate) rebase: Option<NaiveDate>,
}

impl Series {
    /// The metric's name.
    pub(crate) fn name(&self) -> String {
        format!("sites/{}/metrics/{}", self.site, self.qms.id())
    }

    /// The metric's definition, measurements, annotation and rebase point.
    pub(crate) fn plan(&self) -> MetricPlan {
        let mut r = Rng::of(&format!("metric-{}", self.qms.id()), self.s as u64);
        let before = self.qms.before()[self.s];
        let measurements = match self.qms {
            Qms::LengthOfStay => self.length_of_stay(&mut r, before),
            Qms::DischargeTime => self.discharge_time(&mut r, before),
            Qms::Complaints => self.complaints(&mut r, before),
            Qms::StaffEngagement => self.staff_engagement(&mut r, before),
        };
        MetricPlan {
            definition: self.qms.definition(self.site),
            measurements,
            note: self.qms.note(),
            rebase: if self.qms.rebased() {
                periods(self.qms).find(|p| *p >= self.improved)
            } else {
                None
            },
        }
    }

    fn after(&self, period: NaiveDate) -> bool {
        period >= self.improved
    }

    /// Weekly means by IMD quintile, longer in winter, shorter once improved (most for the
    /// most deprived).
    fn length_of_stay(&self, r: &mut Rng, base: f64) -> Vec<pb::Measurement> {
        let mut out = Vec::new();
        for w in weeks() {
            // Winter pressure: a little longer from December to February.
            let winter = if matches!(w.month(), 12 | 1 | 2) {
                0.25
            } else {
                0.0
            };
            for (q, share, extra) in IMD {
                let gain = if self.after(w) {
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
        out
    }

    /// Weekly mean hours, 2.2 fewer once improved.
    fn discharge_time(&self, r: &mut Rng, base: f64) -> Vec<pb::Measurement> {
        weeks()
            .map(|w| {
                let v = if self.after(w) { base - 2.2 } else { base } + r.noise(0.45);
                mean(w, v, 180 + r.below(60) as i64, None)
            })
            .collect()
    }

    /// Monthly counts by ethnic category, 30% fewer once improved. At [`WIDENING_SITE`]
    /// the gap widens after [`WIDENING_FROM`]: three more complaints each month from the
    /// largest group, so the gap between the groups grows while no project measures it.
    fn complaints(&self, r: &mut Rng, base: f64) -> Vec<pb::Measurement> {
        let mut out = Vec::new();
        for m in months() {
            let level = if self.after(m) { base * 0.7 } else { base };
            let widening = if self.site == WIDENING_SITE {
                3.0 * widened(m)
            } else {
                0.0
            };
            for (c, pct) in ETHNIC {
                let expect = level * f64::from(pct) / 100.0;
                let extra = if c == "A" { widening } else { 0.0 };
                let v = (expect + extra + r.noise(expect.sqrt())).round().max(0.0);
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
        out
    }

    /// Quarterly scores, half a point higher once improved.
    fn staff_engagement(&self, r: &mut Rng, base: f64) -> Vec<pb::Measurement> {
        quarters()
            .map(|q| {
                let v = if self.after(q) { base + 0.5 } else { base } + r.noise(0.08);
                mean(q, v, 1_100 + r.below(300) as i64, None)
            })
            .collect()
    }
}

/// Months from [`WIDENING_FROM`] to `m`; 0 up to it.
fn widened(m: NaiveDate) -> f64 {
    let months =
        (m.year() - WIDENING_FROM.year()) * 12 + m.month0() as i32 - WIDENING_FROM.month0() as i32;
    f64::from(months.max(0))
}

/// The periods of the metric's series, in order.
fn periods(qms: Qms) -> Box<dyn Iterator<Item = NaiveDate>> {
    match qms {
        Qms::LengthOfStay | Qms::DischargeTime => Box::new(weeks()),
        Qms::Complaints => Box::new(months()),
        Qms::StaffEngagement => Box::new(quarters()),
    }
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

/// A mean of `count` values, to two places.
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

/// The young metric: BAS's weekly inpatient falls rate since its ward falls bundle started,
/// twelve weeks to the end of the story — too few for SPC, so the QMS dashboard and
/// `RenderRunChart` read it as a run chart (a shift below the median after the bundle).
pub(crate) const YOUNG_METRIC: &str = "falls";
/// The young metric's site.
pub(crate) const YOUNG_SITE: &str = "BAS";

/// The young metric's definition and its twelve weekly measurements.
pub(crate) fn young_metric() -> (pb::Metric, Vec<pb::Measurement>) {
    let definition = pb::Metric {
        display_name: format!("Inpatient falls per 1,000 bed days, {YOUNG_SITE}"),
        unit: "per 1,000 bed days".into(),
        kind: pb::MetricKind::Process as i32,
        improvement_direction: pb::ImprovementDirection::Decrease as i32,
        description: "Falls reported on the wards of the falls bundle, per 1,000 occupied bed days: measured weekly since the bundle's first PDSA cycle, read as a run chart until it has enough weeks for SPC.".into(),
        frequency: pb::MetricFrequency::Week as i32,
        value_type: pb::MetricValueType::Mean as i32,
        ..Default::default()
    };
    // Six weeks as it was, then six with the bundle in place.
    const WEEKS: [f64; 12] = [7.4, 6.9, 7.8, 7.1, 7.6, 7.2, 5.9, 6.2, 5.5, 5.8, 5.1, 5.4];
    let first = day(2026, 8, 10);
    let measurements = (0u64..)
        .zip(WEEKS)
        .map(|(w, v)| mean(first + Days::new(7 * w), v, 1_400, None))
        .collect();
    (definition, measurements)
}

/// The metric whose inequality gap widens with no project measuring it: SOU's monthly rate
/// of missed outpatient appointments by IMD quintile.
pub(crate) const WIDENING_METRIC: &str = "dna";

/// The widening metric's definition and measurements: each quintile's appointments and
/// those missed since [`FIRST_MONTH`], the most deprived missing twice as many as the least,
/// and after [`WIDENING_FROM`] 0.8 points more each month.
pub(crate) fn widening_metric() -> (pb::Metric, Vec<pb::Measurement>) {
    let definition = pb::Metric {
        display_name: format!("Missed outpatient appointments, {WIDENING_SITE}"),
        unit: "% of appointments".into(),
        kind: pb::MetricKind::Qms as i32,
        improvement_direction: pb::ImprovementDirection::Decrease as i32,
        description: "Outpatient appointments not attended (DNA), per 100 booked, by the patient's IMD quintile.".into(),
        frequency: pb::MetricFrequency::Month as i32,
        value_type: pb::MetricValueType::Rate as i32,
        rate_per: 100.0,
        dimensions: vec![pb::InequalityDimension::ImdQuintile as i32],
        imd_edition: pb::ImdEdition::Imd2019 as i32,
        ..Default::default()
    };
    let mut r = Rng::of("metric-dna", 0);
    let mut measurements = Vec::new();
    for m in months() {
        let after = widened(m);
        for (q, share, _) in IMD.iter().filter(|(q, ..)| *q != "U") {
            let quintile: f64 = q.parse().unwrap_or(3.0);
            // 12% missed in quintile 1 down to 6% in quintile 5; quintile 1 worsens.
            let rate =
                13.5 - 1.5 * quintile + r.noise(0.4) + if *q == "1" { 0.8 * after } else { 0.0 };
            let booked = f64::from(*share) * 20.0;
            measurements.push(pb::Measurement {
                period: Some(date(m)),
                stratum: Some(pb::Stratum {
                    imd_quintile: (*q).into(),
                    ..Default::default()
                }),
                numerator: Some((booked * rate / 100.0).round()),
                denominator: Some(booked),
                ..Default::default()
            });
        }
    }
    (definition, measurements)
}
