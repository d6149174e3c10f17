//! The improvement portfolio's data: how many ideas each site received and where triage
//! left them, the programmes, the themes projects work on (their ideas, changes, aims,
//! measures and benefits), and the ward accreditation programme's schedule.

use chrono::NaiveDate;
use qi_proto::projects as pb;

use crate::demo::day;

/// Ideas received per site.
pub(crate) const IDEAS_PER_SITE: [usize; 3] = [172, 154, 143];
/// Ideas by where triage left them: accepted, declined, merged, under review, submitted.
pub(crate) const ACCEPTED: usize = 120;
pub(crate) const DECLINED: usize = 140;
pub(crate) const MERGED: usize = 35;
pub(crate) const UNDER_REVIEW: usize = 64;
/// Of the projects ideas became: completed, stopped and still scoping (the rest are in
/// progress).
pub(crate) const IDEA_PROJECTS_COMPLETED: usize = 27;
pub(crate) const IDEA_PROJECTS_STOPPED: usize = 2;
pub(crate) const IDEA_PROJECTS_SCOPING: usize = 4;

/// Programmes wrapped around a Practitioner cohort: (year, month of the cohort, id, title,
/// theme). Those of cohorts up to October 2024 have finished their projects.
pub(crate) const WRAPPED: [(i32, u32, &str, &str, usize); 10] = [
    (2022, 4, "discharge", "Discharge before noon", FLOW),
    (2022, 10, "falls", "Reducing inpatient falls", SAFETY),
    (
        2023,
        4,
        "concerns",
        "Resolving concerns at ward level",
        EXPERIENCE,
    ),
    (
        2023,
        10,
        "sepsis",
        "Sepsis screening within the hour",
        SAFETY,
    ),
    (2024, 4, "wellbeing", "Staff wellbeing huddles", WELLBEING),
    (
        2024,
        10,
        "theatres",
        "Theatres starting on time",
        EFFICIENCY,
    ),
    (
        2025,
        4,
        "medicines",
        "Medicines reconciliation within 24 hours",
        SAFETY,
    ),
    (2025, 10, "frailty", "Frailty same-day emergency care", FLOW),
    (
        2026,
        4,
        "follow-up",
        "Patient-initiated follow-up",
        EFFICIENCY,
    ),
    (2026, 10, "virtual-wards", "Virtual ward uptake", FLOW),
];
/// The wrapped programmes of cohorts before this year have completed their projects.
pub(crate) const WRAPPED_DONE_BEFORE: i32 = 2025;

/// The themes, by their place in [`THEMES`].
pub(crate) const FLOW: usize = 0;
pub(crate) const SAFETY: usize = 1;
pub(crate) const EXPERIENCE: usize = 2;
pub(crate) const WELLBEING: usize = 3;
pub(crate) const EFFICIENCY: usize = 4;

/// A theme: its name, idea titles, change ideas tested, the aim, the metrics its projects
/// measure (id, kind), and the benefit claimed on completion (kind, low, high).
pub(crate) struct Theme {
    pub(crate) name: &'static str,
    pub(crate) ideas: [&'static str; 6],
    pub(crate) changes: [&'static str; 4],
    /// (statement, measure, baseline, target, unit).
    pub(crate) aim: (&'static str, &'static str, f64, f64, &'static str),
    pub(crate) measures: &'static [(&'static str, pb::MeasureKind)],
    pub(crate) benefit: (pb::BenefitKind, f64, f64),
}

/// The five themes, in the order of [`FLOW`] to [`EFFICIENCY`].
pub(crate) const THEMES: [Theme; 5] = [
    Theme {
        name: "Patient flow",
        ideas: [
            "Criteria-led discharge",
            "Discharge lounge before 11am",
            "Board round every morning",
            "Medicines to take home prescribed the day before",
            "Red and green bed days",
            "Weekend discharge planning",
        ],
        changes: [
            "Expected discharge date set at the first board round",
            "Pharmacy slot for medicines to take home by 10am",
            "Nurse-led discharge against agreed criteria",
            "Transport booked the day before discharge",
        ],
        aim: (
            "Reduce the mean length of stay",
            "Mean length of stay",
            7.2,
            6.0,
            "days",
        ),
        measures: &[
            ("los", pb::MeasureKind::Outcome),
            ("discharge-tat", pb::MeasureKind::Process),
            ("complaints", pb::MeasureKind::Balancing),
        ],
        benefit: (pb::BenefitKind::BedDaysSaved, 300.0, 1500.0),
    },
    Theme {
        name: "Patient safety",
        ideas: [
            "Falls risk assessment on admission",
            "Bay tagging for patients at risk of falls",
            "Safety huddle at every handover",
            "Intentional rounding for pressure areas",
            "NEWS2 escalation prompts",
            "Sepsis screening prompt at triage",
        ],
        changes: [
            "Bay tagging: one member of staff always in the bay",
            "Falls risk assessment within six hours of admission",
            "Safety huddle at 10am and 10pm",
            "Lying and standing blood pressure on admission",
        ],
        aim: (
            "Reduce inpatient falls",
            "Falls per 1,000 bed days",
            6.5,
            4.5,
            "per 1,000 bed days",
        ),
        measures: &[],
        benefit: (pb::BenefitKind::HarmEventsAvoided, 5.0, 30.0),
    },
    Theme {
        name: "Patient experience",
        ideas: [
            "Quiet at night",
            "Protected mealtimes",
            "Discharge information leaflet",
            "Call bell response times",
            "Open visiting for carers",
            "Ward welcome pack",
        ],
        changes: [
            "Named nurse introduces themselves at every shift",
            "Concerns resolved on the ward within 48 hours",
            "Quiet-at-night pack with eye mask and earplugs",
            "Daily ward manager walk-round asking patients",
        ],
        aim: (
            "Reduce formal complaints",
            "Complaints received",
            12.0,
            8.0,
            "complaints a month",
        ),
        measures: &[("complaints", pb::MeasureKind::Outcome)],
        benefit: (pb::BenefitKind::ComplaintsAvoided, 5.0, 40.0),
    },
    Theme {
        name: "Staff wellbeing",
        ideas: [
            "Rest room refresh",
            "Team debriefs after incidents",
            "Rota requests online",
            "Wellbeing champion on every ward",
            "Protected breaks",
            "Thank-you board",
        ],
        changes: [
            "Ten-minute wellbeing huddle at the start of the week",
            "Protected break rota on the whiteboard",
            "Debrief within 24 hours of a difficult shift",
            "Rota requests closed six weeks ahead",
        ],
        aim: (
            "Improve staff engagement",
            "Staff engagement score",
            6.4,
            7.2,
            "score out of 10",
        ),
        measures: &[("staff-morale", pb::MeasureKind::Outcome)],
        benefit: (pb::BenefitKind::StaffHoursReleased, 200.0, 900.0),
    },
    Theme {
        name: "Efficiency",
        ideas: [
            "Digital handover sheet",
            "Theatre list planning meeting",
            "Clinic template review",
            "Stock topped up by the supplier",
            "Fewer duplicate blood tests",
            "Clinic letters within seven days",
        ],
        changes: [
            "First patient in the anaesthetic room by 8:45",
            "Electronic handover template",
            "Stock levels set per bay",
            "Duplicate test alert in the order system",
        ],
        aim: (
            "Cut the time from decision to discharge",
            "Hours from decision to discharge",
            6.0,
            4.0,
            "hours",
        ),
        measures: &[("discharge-tat", pb::MeasureKind::Process)],
        benefit: (pb::BenefitKind::StaffHoursReleased, 200.0, 2000.0),
    },
];

/// Each site's thematic programme: (site, id, theme).
pub(crate) const THEMATIC: [(&str, &str, usize); 3] = [
    ("BAS", "patient-flow", FLOW),
    ("BRM", "safer-care", SAFETY),
    ("SOU", "patient-experience", EXPERIENCE),
];

/// Why triage declines an idea (taken in turn).
pub(crate) const DECLINE_REASONS: [&str; 4] = [
    "Already covered by an existing project",
    "Outside the improvement team's remit: referred to estates",
    "Not enough evidence of a problem yet: please collect baseline data and resubmit",
    "Needs funding: referred to the business case process",
];

/// The first idea the demo trust received.
pub(crate) const FIRST_IDEA: NaiveDate = day(2021, 3, 1);

/// Projects from accepted ideas start evenly from this day to [`LAST_IDEA_PROJECT`], in the
/// order the ideas were accepted.
pub(crate) const FIRST_IDEA_PROJECT: NaiveDate = day(2021, 5, 3);
/// See [`FIRST_IDEA_PROJECT`].
pub(crate) const LAST_IDEA_PROJECT: NaiveDate = day(2026, 9, 28);
/// Of the projects from ideas, those that finished (completed or stopped) started before this.
pub(crate) const CLOSING_BEFORE: NaiveDate = day(2025, 1, 1);

/// The ward accreditation programme.
pub(crate) const WARD_PROGRAMME: &str = "trust/programmes/ward-accreditation";
/// Its description.
pub(crate) const WARD_PROGRAMME_ABOUT: &str = "Five wards join every three months; each starts with a diagnostic, is assessed against fifteen standards and rated Bronze, Silver or Gold, and is reassessed six months later.";
/// The day its first wave joins.
pub(crate) const FIRST_WAVE: NaiveDate = day(2022, 1, 10);
/// Months between waves.
pub(crate) const WAVE_MONTHS: u32 = 3;
/// Wards in each wave.
pub(crate) const WARDS_PER_WAVE: usize = 5;
/// Wards in the programme.
pub(crate) const PROGRAMME_WARDS: usize = 60;
/// The day by which every wave has joined.
pub(crate) const LAST_WAVE_BY: NaiveDate = day(2024, 12, 31);
/// The next ward programme, planned and not begun: two wards a site each quarter of 2027
/// and 2028, chosen from the wards' readiness (`SuggestNextWave`).
pub(crate) const NEXT_PROGRAMME: &str = "trust/programmes/fundamental-care";
/// Its description.
pub(crate) const NEXT_PROGRAMME_ABOUT: &str = "Fundamental standards of care: two wards a site join each quarter from January 2027, chosen for the trained staff, ideas and concerns they bring.";
/// The day its first wave joins.
pub(crate) const NEXT_FIRST_WAVE: NaiveDate = day(2027, 1, 11);
/// The day by which every wave has joined.
pub(crate) const NEXT_LAST_WAVE_BY: NaiveDate = day(2028, 12, 31);

/// Months from accreditation to reassessment.
pub(crate) const REASSESSMENT_MONTHS: u32 = 6;
/// The standards a ward is assessed against.
pub(crate) const STANDARDS: i32 = 15;

/// Where a project's patient partner comes from.
pub(crate) const PARTNER_AFFILIATIONS: [&str; 3] =
    ["Patient panel", "Healthwatch", "Carers' forum"];

/// Ways of engaging patients, each with what the activity was.
pub(crate) const ENGAGEMENT: [(pb::EngagementKind, &str); 4] = [
    (pb::EngagementKind::Survey, "Survey of patients on the ward"),
    (
        pb::EngagementKind::FocusGroup,
        "Focus group with patients and carers",
    ),
    (pb::EngagementKind::Workshop, "Co-design workshop"),
    (
        pb::EngagementKind::PatientStory,
        "A patient's story told to the team",
    ),
];

/// Why the stopped projects stopped.
pub(crate) const STOP_REASON: &str = "The ward was redesignated; the team will resubmit the idea";
