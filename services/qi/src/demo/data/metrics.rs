//! The QMS metrics each site keeps: their definitions, the wrapped programme whose project
//! improves each, how each site stood before, where the series start, and the strata the
//! measurements are split by.

use chrono::NaiveDate;
use qi_proto::metrics as pb;

use crate::demo::day;

/// Where the weekly series start: the first Monday of 2021.
pub(crate) const FIRST_WEEK: NaiveDate = day(2021, 1, 4);
/// Where the monthly and quarterly series start.
pub(crate) const FIRST_MONTH: NaiveDate = day(2021, 1, 1);
/// The last quarter with a staff survey result.
pub(crate) const LAST_QUARTER: NaiveDate = day(2026, 7, 1);

/// IMD quintiles with each one's share of admissions and how much longer it stays.
pub(crate) const IMD: [(&str, u32, f64); 6] = [
    ("1", 70, 0.9),
    ("2", 60, 0.5),
    ("3", 55, 0.2),
    ("4", 50, 0.0),
    ("5", 45, -0.2),
    ("U", 12, 0.3),
];

/// Ethnic categories with their share of complaints, in percent.
pub(crate) const ETHNIC: [(&str, u32); 13] = [
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

/// One of the four QMS metrics each site keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qms {
    /// Length of stay (weekly, by IMD quintile).
    LengthOfStay,
    /// Discharge decision to departure (weekly).
    DischargeTime,
    /// Complaints received (monthly, by ethnic category).
    Complaints,
    /// Staff engagement (quarterly).
    StaffEngagement,
}

impl Qms {
    /// The four, in the order each site creates them.
    pub(crate) const ALL: [Qms; 4] = [
        Qms::LengthOfStay,
        Qms::DischargeTime,
        Qms::Complaints,
        Qms::StaffEngagement,
    ];

    /// The metric's id under its site.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Qms::LengthOfStay => "los",
            Qms::DischargeTime => "discharge-tat",
            Qms::Complaints => "complaints",
            Qms::StaffEngagement => "staff-morale",
        }
    }

    /// The wrapped programme whose project at the site improves it.
    pub(crate) fn project(self) -> &'static str {
        match self {
            Qms::LengthOfStay | Qms::DischargeTime => "discharge",
            Qms::Complaints => "concerns",
            Qms::StaffEngagement => "wellbeing",
        }
    }

    /// Each site's level before its project, in the order of the sites.
    pub(crate) fn before(self) -> [f64; 3] {
        match self {
            Qms::LengthOfStay => [6.4, 6.0, 6.8],
            Qms::DischargeTime => [6.6, 6.2, 7.0],
            Qms::Complaints => [34.0, 30.0, 28.0],
            Qms::StaffEngagement => [6.5, 6.6, 6.4],
        }
    }

    /// The annotation where it improved.
    pub(crate) fn note(self) -> &'static str {
        match self {
            Qms::LengthOfStay | Qms::DischargeTime => "Discharge before noon project completed",
            Qms::Complaints => "Resolving concerns at ward level project completed",
            Qms::StaffEngagement => "Staff wellbeing huddles project completed",
        }
    }

    /// Whether the shift is sustained, so a rebase point follows the improvement.
    pub(crate) fn rebased(self) -> bool {
        matches!(self, Qms::LengthOfStay | Qms::DischargeTime)
    }

    /// The metric's definition at `site`.
    pub(crate) fn definition(self, site: &str) -> pb::Metric {
        match self {
            Qms::LengthOfStay => pb::Metric {
                display_name: format!("Length of stay, {site} (days)"),
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
            Qms::DischargeTime => pb::Metric {
                display_name: format!("Discharge decision to departure, {site} (hours)"),
                unit: "hours".into(),
                kind: pb::MetricKind::Qms as i32,
                improvement_direction: pb::ImprovementDirection::Decrease as i32,
                description: "Mean hours from the decision to discharge to the patient leaving the ward: the process measure of the discharge work.".into(),
                target: Some(4.0),
                frequency: pb::MetricFrequency::Week as i32,
                value_type: pb::MetricValueType::Mean as i32,
                ..Default::default()
            },
            Qms::Complaints => pb::Metric {
                display_name: format!("Complaints received, {site}"),
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
            Qms::StaffEngagement => pb::Metric {
                display_name: format!("Staff engagement, {site} (score out of 10)"),
                unit: "score".into(),
                kind: pb::MetricKind::Qms as i32,
                improvement_direction: pb::ImprovementDirection::Increase as i32,
                description: "The staff engagement score of the quarterly pulse survey.".into(),
                target: Some(7.0),
                frequency: pb::MetricFrequency::Quarter as i32,
                value_type: pb::MetricValueType::Mean as i32,
                ..Default::default()
            },
        }
    }
}
