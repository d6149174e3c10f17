//! The metrics service through the gateway: metric definitions, measurement ingest (site
//! rules, idempotent re-sends, all-or-nothing batches with field-named errors), SPC equal
//! to the engine on the same values, rebase points, annotations and the SVG chart,
//! inequality breakdowns on a hand-computed case, and the QMS dashboard scoped to the
//! caller's sites. Here, what several of its tests start from.

mod access;
mod annotations;
mod bad_input;
mod dashboard;
mod definitions;
mod idempotency;
mod inequality;
mod measurements;
mod paging;
mod picture;
mod rebase;
mod run_chart;
mod site_scope;
mod spc;

use chrono::Days;
use qi_e2e::metrics::{
    annotate, create, create_rebase_point, metric, month, rate, rebase_point, record, stratum,
    value,
};
use qi_e2e::{Caller, TestSuite, date, ymd};
use qi_proto::metrics as pb;

/// BAS's falls metric, as [`bas_falls`] creates it.
const FALLS: &str = "sites/BAS/metrics/falls";
/// BAS's weekly did-not-attend rate, as [`weekly_dna`] creates it.
const DNA: &str = "sites/BAS/metrics/dna";
/// SOU's mean length of stay, as [`los`] creates it.
const LOS: &str = "sites/SOU/metrics/los";
/// BRM's readmissions, as [`readmissions_at_brm`] creates them.
const READMIT: &str = "sites/BRM/metrics/readmit";

/// Counts the measurements stored.
const STORED: &str = "SELECT count(*) FROM metrics.measurement";

/// A monthly falls rate per 1,000 bed days by IMD quintile and sex, target 5.
fn falls_definition() -> pb::Metric {
    let mut falls = metric(
        "Inpatient falls per 1,000 bed days",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Rate,
        &[
            pb::InequalityDimension::ImdQuintile,
            pb::InequalityDimension::Sex,
        ],
    );
    falls.rate_per = 1_000.0;
    falls.target = Some(5.0);
    falls.unit = "per 1,000 bed days".into();
    falls.description = "Datix falls over occupied bed days".into();
    falls
}

/// Complaints, a monthly QMS count with no dimensions.
fn complaints() -> pb::Metric {
    metric(
        "Complaints",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Count,
        &[],
    )
}

/// BAS's improvement team.
fn bas_team(suite: &TestSuite) -> Caller {
    suite.caller("bas-team", &["improvement_team"], &["BAS"])
}

/// A contributor at BAS.
fn bas_nurse(suite: &TestSuite) -> Caller {
    suite.caller("bas-nurse", &["contributor"], &["BAS"])
}

/// A viewer at BAS.
fn bas_viewer(suite: &TestSuite) -> Caller {
    suite.caller("bas-viewer", &["viewer"], &["BAS"])
}

/// A viewer at SOU.
fn sou_viewer(suite: &TestSuite) -> Caller {
    suite.caller("sou-viewer", &["viewer"], &["SOU"])
}

/// The trust-wide improvement team.
fn trust_team(suite: &TestSuite) -> Caller {
    suite.caller("qi-office", &["improvement_team"], &["*"])
}

/// BAS's falls metric ([`FALLS`]) as its team creates it: the metric, and the team.
async fn bas_falls(suite: &TestSuite) -> (pb::Metric, Caller) {
    let team = bas_team(suite);
    let made = create(&team, "sites/BAS", "falls", falls_definition())
        .await
        .unwrap();
    (made, team)
}

/// 4 weeks × IMD {1..5, U} × sex {1, 2}: 48 measurements of a weekly rate.
fn weekly_batch() -> Vec<pb::Measurement> {
    let mut out = Vec::new();
    for week in 0..4 {
        let monday = date(ymd(2026, 1, 5 + 7 * week));
        for (q, imd) in ["1", "2", "3", "4", "5", "U"].iter().enumerate() {
            for sex in ["1", "2"] {
                out.push(rate(monday, stratum(imd, "", sex), (q + 1) as f64, 100.0));
            }
        }
    }
    out
}

/// BAS's weekly did-not-attend rate per 100 by IMD quintile and sex ([`DNA`]), as its
/// team defines it, with nothing recorded: a BAS contributor, who records.
async fn weekly_dna(suite: &TestSuite) -> Caller {
    let mut dna = metric(
        "Did-not-attend rate",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Week,
        pb::MetricValueType::Rate,
        &[
            pb::InequalityDimension::ImdQuintile,
            pb::InequalityDimension::Sex,
        ],
    );
    dna.rate_per = 100.0;
    create(&bas_team(suite), "sites/BAS", "dna", dna)
        .await
        .unwrap();
    bas_nurse(suite)
}

/// Thirty months of mean length of stay: a stable process that shifts down after a change.
fn los_values() -> Vec<f64> {
    vec![
        6.1, 5.8, 6.4, 6.0, 5.7, 6.3, 6.6, 5.9, 6.2, 6.0, 5.6, 6.5, 6.1, 5.9, 6.3, 6.2, 5.8, 6.0,
        4.9, 5.1, 4.6, 4.8, 5.0, 4.4, 4.7, 4.9, 4.5, 4.8, 4.6, 4.3,
    ]
}

/// A monthly mean length of stay, an outcome, with no dimensions.
fn los_definition() -> pb::Metric {
    metric(
        "Mean length of stay",
        pb::MetricKind::Outcome,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Mean,
        &[],
    )
}

/// SOU's monthly mean length of stay ([`LOS`]), target 5.5 days, with [`los_values`]
/// recorded from January 2024: SOU's improvement team, who made it.
async fn los(suite: &TestSuite) -> Caller {
    let team = suite.caller("sou-team", &["improvement_team"], &["SOU"]);
    let mut los = los_definition();
    los.target = Some(5.5);
    los.unit = "days".into();
    create(&team, "sites/SOU", "los", los).await.unwrap();
    let batch: Vec<_> = (0..)
        .zip(los_values())
        .map(|(i, v)| value(month(i), v))
        .collect();
    record(&team, LOS, batch, "").await.unwrap();
    team
}

/// [`los`] with two rebase points: `d2a` at month 18, where the process shifts, and `later`
/// at month 40, past the last measurement. SOU's improvement team.
async fn rebased_los(suite: &TestSuite) -> Caller {
    let team = los(suite).await;
    create_rebase_point(&team, rebase_point(LOS, "d2a", month(18)))
        .await
        .unwrap();
    create_rebase_point(&team, rebase_point(LOS, "later", month(40)))
        .await
        .unwrap();
    team
}

/// [`rebased_los`] annotated twice by a SOU contributor, `pdsa-1` and `pdsa-2` (the second
/// with markup to escape): the contributor.
async fn annotated_los(suite: &TestSuite) -> Caller {
    rebased_los(suite).await;
    let nurse = suite.caller("sou-nurse", &["contributor"], &["SOU"]);
    for (id, day, text) in [
        ("pdsa-1", ymd(2025, 3, 10), "PDSA 1: criteria-led discharge"),
        (
            "pdsa-2",
            ymd(2025, 6, 16),
            "PDSA 2 started <ward rounds> & huddles",
        ),
    ] {
        annotate(&nurse, LOS, id, date(day), text).await.unwrap();
    }
    nurse
}

/// The hand-computed case: in December 2025 the IMD quintiles' readmissions are 30/100,
/// 50/200, 60/300, 30/200 and 20/200 (30, 25, 20, 15 and 10 per 100), plus 10/100 of
/// unknown deprivation. Ranks .05 .2 .45 .7 .9, weighted mean rate 19, Sxy −1.75,
/// Sxx .079: SII = −1.75 / .079 = −22.1519 per 100, RII = SII / 19; the gap between
/// quintile 1 and 5 is 20 per 100, the rate ratio 3; the unknown share 100 / 1,100.
///
/// Before December, eleven months hold each stratum near a steady rate, quintile 1 at 20
/// or 21, so December's 30 is above its upper process limit: a concern for a measure where
/// lower is better.
fn readmissions() -> Vec<pb::Measurement> {
    let mut out = Vec::new();
    for m in 0..11 {
        let p = date(ymd(2025, m + 1, 1));
        let wobble = f64::from(m % 2);
        out.push(rate(p, stratum("1", "A", ""), 20.0 + wobble, 100.0));
        out.push(rate(p, stratum("2", "B", ""), 50.0 - wobble, 200.0));
        out.push(rate(p, stratum("3", "A", ""), 60.0 + wobble, 300.0));
        out.push(rate(p, stratum("4", "N", ""), 30.0 + wobble, 200.0));
        out.push(rate(p, stratum("5", "C", ""), 20.0 + wobble, 200.0));
        out.push(rate(p, stratum("U", "Z", ""), 10.0 + wobble, 100.0));
    }
    let dec = date(ymd(2025, 12, 1));
    out.extend([
        rate(dec, stratum("1", "A", ""), 15.0, 50.0),
        rate(dec, stratum("1", "H", ""), 15.0, 50.0),
        rate(dec, stratum("2", "B", ""), 50.0, 200.0),
        rate(dec, stratum("3", "A", ""), 60.0, 300.0),
        rate(dec, stratum("4", "N", ""), 30.0, 200.0),
        rate(dec, stratum("5", "C", ""), 20.0, 200.0),
        rate(dec, stratum("U", "Z", ""), 10.0, 100.0),
    ]);
    out
}

/// BRM's monthly emergency readmissions per 100 by IMD quintile and ethnic category
/// ([`READMIT`]), with [`readmissions`] recorded: a BRM viewer.
async fn readmissions_at_brm(suite: &TestSuite) -> Caller {
    let team = suite.caller("brm-team", &["improvement_team"], &["BRM"]);
    let mut readmit = metric(
        "Emergency readmissions within 30 days",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Rate,
        &[
            pb::InequalityDimension::ImdQuintile,
            pb::InequalityDimension::EthnicCategory,
        ],
    );
    readmit.rate_per = 100.0;
    create(&team, "sites/BRM", "readmit", readmit)
        .await
        .unwrap();
    let done = record(&team, READMIT, readmissions(), "").await.unwrap();
    assert_eq!(done.created_count, 73);
    suite.caller("brm-viewer", &["viewer"], &["BRM"])
}

/// December 2025 alone.
fn december() -> pb::SeriesFilter {
    pb::SeriesFilter {
        start_date: Some(date(ymd(2025, 12, 1))),
        end_date: Some(date(ymd(2026, 1, 1))),
        ..Default::default()
    }
}

/// [`READMIT`]'s December breakdown by `dimension`, its ethnic groups combined or not.
fn december_breakdown(
    dimension: pb::InequalityDimension,
    combine: bool,
) -> pb::GetInequalityBreakdownRequest {
    pb::GetInequalityBreakdownRequest {
        metric: READMIT.into(),
        dimension: dimension as i32,
        filter: Some(december()),
        combine_ethnic_groups: combine,
    }
}

/// Twenty-six weeks of a weekly rate by IMD: the gap between quintiles 1 and 5 holds near 5
/// per 100 for eighteen weeks, then grows a point a week.
fn widening() -> Vec<pb::Measurement> {
    let mut out = Vec::new();
    for w in 0..26u64 {
        let p = date(ymd(2025, 1, 6) + Days::new(7 * w));
        let q5 = 10.0 + (w % 2) as f64;
        let gap = if w < 18 {
            5.0 + (w % 3) as f64 * 0.5
        } else {
            6.0 + (w - 17) as f64
        };
        out.push(rate(p, stratum("1", "", ""), q5 + gap, 100.0));
        out.push(rate(p, stratum("3", "", ""), q5 + 2.0, 100.0));
        out.push(rate(p, stratum("5", "", ""), q5, 100.0));
        out.push(rate(p, stratum("U", "", ""), 1.0, 10.0));
    }
    out
}

/// A weekly QMS rate per 100, target 30, by these dimensions.
fn weekly_qms(name: &str, dims: &[pb::InequalityDimension]) -> pb::Metric {
    let mut m = metric(
        name,
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Week,
        pb::MetricValueType::Rate,
        dims,
    );
    m.rate_per = 100.0;
    m.target = Some(30.0);
    m
}

/// What the QMS dashboard shows: a DNA rate by IMD at BAS (gap widening) and at SOU
/// (quintile 1 unrecorded), the trust's staff sickness (no dimensions, twenty weeks), and
/// BAS's pressure ulcers, an outcome with nothing recorded: the trust's team, who made them.
async fn qms_board(suite: &TestSuite) -> Caller {
    let trust = trust_team(suite);
    let imd = [pb::InequalityDimension::ImdQuintile];
    for site in ["sites/BAS", "sites/SOU"] {
        create(&trust, site, "dna", weekly_qms("DNA rate", &imd))
            .await
            .unwrap();
    }
    let sickness = weekly_qms("Staff sickness", &[]);
    create(&trust, "trust", "sickness", sickness).await.unwrap();
    let mut outcome = weekly_qms("Pressure ulcers", &[]);
    outcome.kind = pb::MetricKind::Outcome as i32;
    create(&trust, "sites/BAS", "ulcers", outcome)
        .await
        .unwrap();
    record(&trust, "sites/BAS/metrics/dna", widening(), "")
        .await
        .unwrap();
    let flat: Vec<_> = widening()
        .into_iter()
        .filter(|m| m.stratum.as_ref().is_some_and(|s| s.imd_quintile != "1"))
        .collect();
    record(&trust, "sites/SOU/metrics/dna", flat, "")
        .await
        .unwrap();
    let weeks = (0..20u64).map(|w| {
        let monday = date(ymd(2025, 1, 6) + Days::new(7 * w));
        rate(monday, None, 4.0 + (w % 3) as f64, 100.0)
    });
    record(&trust, "trust/metrics/sickness", weeks.collect(), "")
        .await
        .unwrap();
    trust
}

/// Whether `a` is `b` to nine significant digits.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}
