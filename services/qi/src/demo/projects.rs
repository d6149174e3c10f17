//! The improvement portfolio: 469 ideas triaged at the three sites, the projects they
//! became, programmes wrapped around Practitioner cohorts (each site's learners work on
//! one problem), a thematic programme per site, and the ward accreditation programme
//! (five wards every three months until December 2024, sixty in all). Projects carry an
//! aim, a team (patient partners on some), PDSA cycles, progress scores, measures linked
//! to the QMS metrics, engagement activities where co-produced, and an outcome once
//! completed: 45 completed and 99 in progress.

use chrono::{Days, Months, NaiveDate};
use qi_platform::convert::date;
use qi_proto::projects as pb;

use super::people::Workforce;
use super::rng::{Rng, person};
use super::training::Plan as TrainingPlan;
use super::{AS_OF, Api, Tally, created, day, each, failed, request_id, rpc};
use crate::seed::{SITES, WARDS};

/// Ideas received per site.
const IDEAS_PER_SITE: [usize; 3] = [172, 154, 143];
/// Ideas by where triage left them: accepted, declined, merged, under review, submitted.
const ACCEPTED: usize = 120;
const DECLINED: usize = 140;
const MERGED: usize = 35;
const UNDER_REVIEW: usize = 64;
/// Of the projects ideas became: completed, stopped and still scoping (the rest are in
/// progress).
const IDEA_PROJECTS_COMPLETED: usize = 27;
const IDEA_PROJECTS_STOPPED: usize = 2;
const IDEA_PROJECTS_SCOPING: usize = 4;

/// Programmes wrapped around a Practitioner cohort: (year, month of the cohort, id, title,
/// theme). Those of cohorts up to October 2024 have finished their projects.
const WRAPPED: [(i32, u32, &str, &str, usize); 10] = [
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
const WRAPPED_DONE_BEFORE: i32 = 2025;

const FLOW: usize = 0;
const SAFETY: usize = 1;
const EXPERIENCE: usize = 2;
const WELLBEING: usize = 3;
const EFFICIENCY: usize = 4;

/// A theme: its name, idea titles, change ideas tested, the aim, the metrics its projects
/// measure (id, kind), and the benefit claimed on completion (kind, low, high).
struct Theme {
    name: &'static str,
    ideas: [&'static str; 6],
    changes: [&'static str; 4],
    aim: (&'static str, &'static str, f64, f64, &'static str),
    measures: &'static [(&'static str, pb::MeasureKind)],
    benefit: (pb::BenefitKind, f64, f64),
}

const THEMES: [Theme; 5] = [
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
const THEMATIC: [(&str, &str, usize); 3] = [
    ("BAS", "patient-flow", FLOW),
    ("BRM", "safer-care", SAFETY),
    ("SOU", "patient-experience", EXPERIENCE),
];

const WARD_PROGRAMME: &str = "trust/programmes/ward-accreditation";

const DECLINE_REASONS: [&str; 4] = [
    "Already covered by an existing project",
    "Outside the improvement team's remit: referred to estates",
    "Not enough evidence of a problem yet: please collect baseline data and resubmit",
    "Needs funding: referred to the business case process",
];

/// Where triage leaves an idea.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Triage {
    Submitted,
    UnderReview,
    Declined,
    Merged,
    Accepted,
}

/// Where a project ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Scoping,
    InProgress,
    Completed,
    Stopped,
}

/// One idea.
#[derive(Debug, Clone)]
pub(crate) struct IdeaPlan {
    n: usize,
    pub(crate) site: &'static str,
    ward: Option<&'static str>,
    theme: usize,
    title: String,
    triage: Triage,
    /// The day it was received.
    submitted: NaiveDate,
}

impl IdeaPlan {
    fn name(&self) -> String {
        format!("sites/{}/ideas/idea-{:04}", self.site, self.n)
    }
}

/// One project: from an idea (`idea` set) or created in a wrapped programme.
#[derive(Debug, Clone)]
pub(crate) struct ProjectPlan {
    pub(crate) id: String,
    pub(crate) site: &'static str,
    pub(crate) fate: Fate,
    idea: Option<usize>,
    title: String,
    ward: Option<&'static str>,
    theme: usize,
    programme: Option<String>,
    cohort: Option<(i32, u32)>,
    participating: Vec<String>,
    pub(crate) start: NaiveDate,
    pub(crate) end: Option<NaiveDate>,
    coproduced: bool,
    key: u64,
}

impl ProjectPlan {
    pub(crate) fn name(&self) -> String {
        format!("sites/{}/projects/{}", self.site, self.id)
    }
}

/// The ideas and projects.
#[derive(Debug, Clone)]
pub(crate) struct Portfolio {
    pub(crate) ideas: Vec<IdeaPlan>,
    pub(crate) projects: Vec<ProjectPlan>,
}

impl Portfolio {
    /// When the wrapped programme `id`'s project at `site` completed, if it did.
    pub(crate) fn wrapped_end(&self, id: &str, site: &str) -> Option<NaiveDate> {
        let wanted = format!("{id}-{}", site.to_lowercase());
        self.projects
            .iter()
            .find(|p| p.id == wanted)
            .and_then(|p| p.end)
    }
}

fn title_case(ward: &str) -> String {
    let mut t = ward.to_owned();
    t[..1].make_ascii_uppercase();
    format!("{t} Ward")
}

/// Lays out the ideas and projects.
pub(crate) fn portfolio() -> Portfolio {
    // Which site each idea comes from, and where triage leaves it.
    let mut sites: Vec<&'static str> = SITES
        .iter()
        .zip(IDEAS_PER_SITE)
        .flat_map(|((s, _), n)| std::iter::repeat_n(*s, n))
        .collect();
    Rng::of("idea-sites", 0).shuffle(&mut sites);
    let total = sites.len();
    let mut triage: Vec<Triage> = [
        (Triage::Accepted, ACCEPTED),
        (Triage::Declined, DECLINED),
        (Triage::Merged, MERGED),
        (Triage::UnderReview, UNDER_REVIEW),
    ]
    .iter()
    .flat_map(|(t, n)| std::iter::repeat_n(*t, *n))
    .collect();
    triage.resize(total, Triage::Submitted);
    Rng::of("idea-triage", 0).shuffle(&mut triage);
    let mut ideas: Vec<IdeaPlan> = sites
        .into_iter()
        .zip(triage)
        .enumerate()
        .map(|(i, (site, triage))| {
            let n = i + 1;
            let mut r = Rng::of("idea", n as u64);
            let theme = r.below(THEMES.len() as u64) as usize;
            let ward = r.chance(0.75).then(|| *r.pick(&WARDS));
            let what = *r.pick(&THEMES[theme].ideas);
            let title = match ward {
                Some(w) => format!("{what} on {}", title_case(w)),
                None => format!("{what} ({site})"),
            };
            // Ideas still waiting arrived lately; decided ones through the years (an
            // accepted one shortly before its project started: set below).
            let submitted = match triage {
                Triage::Submitted => AS_OF - Days::new(r.below(180)),
                Triage::UnderReview => AS_OF - Days::new(30 + r.below(330)),
                Triage::Declined | Triage::Merged | Triage::Accepted => {
                    let span = (AS_OF - FIRST_IDEA).num_days() as u64 - 60;
                    FIRST_IDEA + Days::new(span * i as u64 / total as u64 + r.below(30))
                }
            };
            IdeaPlan {
                n,
                site,
                ward,
                theme,
                title,
                triage,
                submitted,
            }
        })
        .collect();
    let mut projects = Vec::new();
    // Projects of the wrapped programmes: one per site, started a week into the course.
    for (p, (year, month, id, title, theme)) in WRAPPED.iter().enumerate() {
        for (s, (site, _)) in SITES.iter().enumerate() {
            let key = (p * 3 + s) as u64;
            let mut r = Rng::of("wrapped-project", key);
            let start = super::training::practitioner_start(*year, *month) + Days::new(7);
            let done = *year < WRAPPED_DONE_BEFORE;
            let end = done.then(|| start + Months::new(10) + Days::new(r.below(30)));
            let ward = *r.pick(&WARDS);
            projects.push(ProjectPlan {
                id: format!("{id}-{}", site.to_lowercase()),
                site,
                fate: if done {
                    Fate::Completed
                } else {
                    Fate::InProgress
                },
                idea: None,
                title: format!("{title}: {} ({site})", title_case(ward)),
                ward: Some(ward),
                theme: *theme,
                programme: Some(format!("trust/programmes/wrapped-{year}-{month:02}")),
                cohort: Some((*year, *month)),
                participating: Vec::new(),
                start,
                end,
                coproduced: r.chance(if *year < 2024 { 0.3 } else { 0.7 }),
                key: 1_000 + key,
            });
        }
    }
    // Projects from accepted ideas, started through the years in the order accepted.
    let accepted: Vec<&IdeaPlan> = ideas
        .iter()
        .filter(|i| i.triage == Triage::Accepted)
        .collect();
    let started = accepted.len() - IDEA_PROJECTS_SCOPING;
    let first = day(2021, 5, 3);
    let span = (day(2026, 9, 28) - first).num_days() as u64;
    // Of the projects started before 2025, these finish (evenly spread); the rest go on.
    let eligible: Vec<usize> = (0..started)
        .filter(|k| first + Days::new(span * *k as u64 / started as u64) < day(2025, 1, 1))
        .collect();
    let closing = IDEA_PROJECTS_COMPLETED + IDEA_PROJECTS_STOPPED;
    let closed: Vec<usize> = (0..closing)
        .map(|j| eligible[j * eligible.len() / closing])
        .collect();
    for (k, idea) in accepted.iter().enumerate() {
        let mut r = Rng::of("idea-project", idea.n as u64);
        let (fate, start, end) = if k >= started {
            (Fate::Scoping, AS_OF, None)
        } else {
            let start = first + Days::new(span * k as u64 / started as u64 + r.below(20));
            match closed.iter().position(|c| *c == k) {
                Some(j) if j % 15 == 7 => (
                    Fate::Stopped,
                    start,
                    Some(start + Months::new(3) + Days::new(r.below(60))),
                ),
                Some(_) => (
                    Fate::Completed,
                    start,
                    Some(start + Months::new(8) + Days::new(r.below(240))),
                ),
                None => (Fate::InProgress, start, None),
            }
        };
        let programme = THEMATIC
            .iter()
            .find(|(s, _, t)| *s == idea.site && *t == idea.theme)
            .map(|(s, id, _)| format!("sites/{s}/programmes/{id}"));
        let participating = if r.chance(0.1) {
            let other = SITES[(SITES.iter().position(|(s, _)| *s == idea.site).unwrap_or(0)
                + 1
                + r.below(2) as usize)
                % 3]
            .0;
            vec![format!("sites/{other}")]
        } else {
            Vec::new()
        };
        projects.push(ProjectPlan {
            id: format!("proj-{:04}", idea.n),
            site: idea.site,
            fate,
            idea: Some(idea.n),
            title: idea.title.clone(),
            ward: idea.ward,
            theme: idea.theme,
            programme,
            cohort: None,
            participating,
            start,
            end: end.map(|e: NaiveDate| e.min(AS_OF - Days::new(7))),
            coproduced: r.chance(if start < day(2024, 1, 1) { 0.2 } else { 0.6 }),
            key: idea.n as u64,
        });
    }
    for idea in &mut ideas {
        if let Some(p) = projects.iter().find(|p| p.idea == Some(idea.n)) {
            let mut r = Rng::of("idea-received", idea.n as u64);
            idea.submitted = p.start - Days::new(30 + r.below(60));
        }
    }
    Portfolio { ideas, projects }
}

/// The first idea the demo trust received.
const FIRST_IDEA: NaiveDate = day(2021, 3, 1);

/// One ward of the ward programme.
#[derive(Debug, Clone)]
pub(crate) struct WardPlan {
    pub(crate) site: &'static str,
    ward: &'static str,
    wave: i32,
    /// (assessment began, accreditation: (date, rating, standards met), reassessment).
    assessed: NaiveDate,
    accredited: Option<(NaiveDate, pb::AccreditationRating, i32)>,
    reassessed: Option<(NaiveDate, pb::AccreditationRating, i32)>,
}

const FIRST_WAVE: NaiveDate = day(2022, 1, 10);
const STANDARDS: i32 = 15;

/// The sixty wards: five a wave, a wave every three months from January 2022.
pub(crate) fn ward_programme() -> Vec<WardPlan> {
    (0..60usize)
        .map(|k| {
            let mut r = Rng::of("ward-programme", k as u64);
            let wave = (k / 5) as i32 + 1;
            let start = FIRST_WAVE + Months::new(3 * (wave as u32 - 1));
            let rate = |r: &mut Rng, better: bool| {
                let met = (10 + r.below(4) as i32 + i32::from(better) * 2).min(STANDARDS);
                let rating = match met {
                    14.. => pb::AccreditationRating::Gold,
                    12..=13 => pb::AccreditationRating::Silver,
                    _ => pb::AccreditationRating::Bronze,
                };
                (rating, met)
            };
            let stuck = r.chance(0.06);
            let accredited = (!stuck).then(|| {
                let (rating, met) = rate(&mut r, false);
                (start + Months::new(6), rating, met)
            });
            let reassessed = accredited.and_then(|(d, _, _)| {
                let again = d + Months::new(6);
                (again <= AS_OF && r.chance(0.6)).then(|| {
                    let (rating, met) = rate(&mut r, true);
                    (again, rating, met)
                })
            });
            WardPlan {
                site: SITES[k % 3].0,
                ward: WARDS[k / 3],
                wave,
                assessed: start + Months::new(3),
                accredited,
                reassessed,
            }
        })
        .collect()
}

/// Loads the programmes, the ideas and projects, and the ward programme.
pub(crate) async fn load(api: &Api, staff: &Workforce) -> anyhow::Result<Tally> {
    let mut tally = programmes(api).await?;
    let portfolio = portfolio();
    let training = std::sync::Arc::new(super::training::plan(staff));
    let staff = std::sync::Arc::new(staff.clone());
    let merge_staff = staff.clone();
    let enrolled = std::sync::Arc::new(enrolled_wards(api).await?);
    let wards = {
        let api = api.clone();
        each(ward_programme(), move |w| {
            let api = api.clone();
            let found = enrolled
                .get(&format!(
                    "{WARD_PROGRAMME}/wardEnrolments/{}-{}",
                    w.site.to_lowercase(),
                    w.ward
                ))
                .copied();
            async move { ward(&api, w, found).await }
        })
    };
    let mut work: Vec<Work> = Vec::new();
    for idea in &portfolio.ideas {
        if idea.triage == Triage::Merged {
            continue;
        }
        let project = portfolio
            .projects
            .iter()
            .find(|p| p.idea == Some(idea.n))
            .cloned();
        work.push(Work::Idea(idea.clone(), project));
    }
    for p in portfolio.projects.iter().filter(|p| p.idea.is_none()) {
        work.push(Work::Project(p.clone()));
    }
    // The long journeys (a project's dozen calls) first, so the short ones fill in behind
    // them rather than leave one long journey running alone at the end.
    work.sort_by_key(|w| match w {
        Work::Project(_) | Work::Idea(_, Some(_)) => 0,
        Work::Idea(_, None) => 1,
    });
    let ideas = {
        let api = api.clone();
        each(work, move |w| {
            let api = api.clone();
            let staff = staff.clone();
            let training = training.clone();
            async move {
                match w {
                    Work::Idea(i, p) => idea(&api, &staff, &training, i, p).await,
                    Work::Project(p) => direct_project(&api, &staff, &training, p).await,
                }
            }
        })
    };
    let (w, i) = tokio::try_join!(wards, ideas)?;
    tally += w;
    tally += i;
    // Merges name a project of the idea's site: those exist now.
    let merges: Vec<(IdeaPlan, String)> = portfolio
        .ideas
        .iter()
        .filter(|i| i.triage == Triage::Merged)
        .filter_map(|i| {
            portfolio
                .projects
                .iter()
                .find(|p| p.site == i.site && p.theme == i.theme && p.idea.is_some())
                .or_else(|| portfolio.projects.iter().find(|p| p.site == i.site))
                .map(|p| (i.clone(), p.name()))
        })
        .collect();
    let api = api.clone();
    tally += each(merges, move |(i, into)| {
        let api = api.clone();
        let staff = merge_staff.clone();
        async move { merged_idea(&api, &staff, i, into).await }
    })
    .await?;
    Ok(tally)
}

enum Work {
    Idea(IdeaPlan, Option<ProjectPlan>),
    Project(ProjectPlan),
}

async fn programmes(api: &Api) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut all = vec![(
        "trust".to_owned(),
        "ward-accreditation".to_owned(),
        pb::Programme {
            display_name: "Ward accreditation programme".into(),
            description: "Five wards join every three months; each starts with a diagnostic, is assessed against fifteen standards and rated Bronze, Silver or Gold, and is reassessed six months later.".into(),
            kind: pb::ProgrammeKind::WardProgramme as i32,
            ..Default::default()
        },
    )];
    for (year, month, _, title, theme) in WRAPPED {
        all.push((
            "trust".into(),
            format!("wrapped-{year}-{month:02}"),
            pb::Programme {
                display_name: title.into(),
                description: format!(
                    "The QSIR Practitioner cohort of {} works on one {} problem across the three sites.",
                    super::training::practitioner_start(year, month).format("%B %Y"),
                    THEMES[theme].name.to_lowercase()
                ),
                kind: pb::ProgrammeKind::TrainingWrapped as i32,
                cohort: format!("trust/cohorts/prac-{year}-{month:02}"),
                ..Default::default()
            },
        ));
    }
    for (site, id, theme) in THEMATIC {
        all.push((
            format!("sites/{site}"),
            id.into(),
            pb::Programme {
                display_name: format!("{} at {site}", THEMES[theme].name),
                description: format!(
                    "{site}'s projects on {}.",
                    THEMES[theme].name.to_lowercase()
                ),
                kind: pb::ProgrammeKind::Thematic as i32,
                theme: THEMES[theme].name.into(),
                ..Default::default()
            },
        ));
    }
    for (parent, id, programme) in all {
        let name = format!("{parent}/programmes/{id}");
        let made = created(
            rpc!(
                api.projects,
                create_programme,
                pb::CreateProgrammeRequest {
                    parent: parent.clone(),
                    programme_id: id.clone(),
                    programme: Some(programme.clone()),
                    request_id: String::new(),
                }
            ),
            &name,
        )?;
        let planned = match made {
            Some(r) => {
                tally.created += 1;
                r.programme.and_then(|p| p.wave_plan).is_some()
            }
            None => {
                tally.existing += 1;
                rpc!(
                    api.projects,
                    get_programme,
                    pb::GetProgrammeRequest { name: name.clone() }
                )
                .map_err(|s| failed(s, &name))?
                .programme
                .and_then(|p| p.wave_plan)
                .is_some()
            }
        };
        if name == WARD_PROGRAMME && !planned {
            rpc!(
                api.projects,
                plan_waves,
                pb::PlanWavesRequest {
                    programme: name.clone(),
                    wave_plan: Some(pb::WavePlan {
                        first_wave_date: Some(date(FIRST_WAVE)),
                        interval_months: 3,
                        wards_per_wave: 5,
                        per_site: false,
                        end_date: Some(date(day(2024, 12, 31))),
                        target_wards: 60,
                        reassessment_months: 6,
                    }),
                    etag: String::new(),
                }
            )
            .map_err(|s| failed(s, &format!("planning the waves of {name}")))?;
        }
    }
    Ok(tally)
}

/// The ward programme's enrolments already made, by name, with their stage.
async fn enrolled_wards(api: &Api) -> anyhow::Result<std::collections::BTreeMap<String, i32>> {
    let mut out = std::collections::BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = rpc!(
            api.projects,
            list_ward_enrolments,
            pb::ListWardEnrolmentsRequest {
                parent: WARD_PROGRAMME.into(),
                wave: 0,
                page_size: 500,
                page_token: page_token.clone(),
            }
        )
        .map_err(|s| failed(s, WARD_PROGRAMME))?;
        out.extend(page.ward_enrolments.into_iter().map(|e| (e.name, e.stage)));
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// Enrols a ward (unless `found` says it is, and at which stage) and takes it through
/// assessment and accreditation. A full wave is checked before a duplicate, so wards
/// already enrolled are read first rather than created again.
async fn ward(api: &Api, w: WardPlan, found: Option<i32>) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let name = format!(
        "{WARD_PROGRAMME}/wardEnrolments/{}-{}",
        w.site.to_lowercase(),
        w.ward
    );
    let fresh = found.is_none();
    let stage = match found {
        Some(stage) => {
            tally.existing += 1;
            stage
        }
        None => {
            let made = rpc!(
                api.projects,
                create_ward_enrolment,
                pb::CreateWardEnrolmentRequest {
                    parent: WARD_PROGRAMME.into(),
                    ward_enrolment: Some(pb::WardEnrolment {
                        ward: format!("sites/{}/wards/{}", w.site, w.ward),
                        wave: w.wave,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                }
            )
            .map_err(|s| failed(s, &name))?;
            tally.created += 1;
            made.ward_enrolment.map(|e| e.stage).unwrap_or_default()
        }
    };
    let step = |t: &mut Tally| {
        if !fresh {
            t.advanced += 1;
        }
    };
    if stage == pb::WardStage::Diagnostic as i32 {
        rpc!(
            api.projects,
            start_ward_assessment,
            pb::StartWardAssessmentRequest {
                name: name.clone(),
                assessment_date: Some(date(w.assessed)),
                etag: String::new(),
            }
        )
        .map_err(|s| failed(s, &format!("assessing {name}")))?;
        step(&mut tally);
    }
    if stage == pb::WardStage::Diagnostic as i32 || stage == pb::WardStage::Assessment as i32 {
        for (d, rating, met) in w.accredited.iter().chain(w.reassessed.iter()) {
            rpc!(
                api.projects,
                accredit_ward,
                pb::AccreditWardRequest {
                    name: name.clone(),
                    rating: *rating as i32,
                    standards_met: *met,
                    standards_assessed: STANDARDS,
                    accredited_date: Some(date(*d)),
                    etag: String::new(),
                }
            )
            .map_err(|s| failed(s, &format!("accrediting {name}")))?;
            step(&mut tally);
        }
    }
    Ok(tally)
}

async fn idea(
    api: &Api,
    staff: &Workforce,
    training: &TrainingPlan,
    i: IdeaPlan,
    project: Option<ProjectPlan>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let name = i.name();
    let (mut state, fresh) = create_idea(api, staff, &i, &mut tally).await?;
    let step = |t: &mut Tally| {
        if !fresh {
            t.advanced += 1;
        }
    };
    let submitted = pb::IdeaState::Submitted as i32;
    let review = pb::IdeaState::UnderReview as i32;
    match i.triage {
        Triage::Submitted | Triage::Merged => {}
        Triage::Declined => {
            if state == submitted {
                let reason = DECLINE_REASONS[i.n % DECLINE_REASONS.len()];
                rpc!(
                    api.projects,
                    decline_idea,
                    pb::DeclineIdeaRequest {
                        name: name.clone(),
                        reason: reason.into(),
                        etag: String::new(),
                    }
                )
                .map_err(|s| failed(s, &format!("declining {name}")))?;
                step(&mut tally);
            }
        }
        Triage::UnderReview | Triage::Accepted => {
            if state == submitted {
                rpc!(
                    api.projects,
                    review_idea,
                    pb::ReviewIdeaRequest {
                        name: name.clone(),
                        etag: String::new(),
                    }
                )
                .map_err(|s| failed(s, &format!("reviewing {name}")))?;
                step(&mut tally);
                state = review;
            }
        }
    }
    let Some(p) = project else {
        return Ok(tally);
    };
    let current = if state == review {
        let accepted = rpc!(
            api.projects,
            accept_idea,
            pb::AcceptIdeaRequest {
                name: name.clone(),
                project_id: p.id.clone(),
                etag: String::new(),
                request_id: String::new(),
            }
        )
        .map_err(|s| failed(s, &format!("accepting {name}")))?;
        tally.created += 1;
        accepted.project
    } else {
        tally.existing += 1;
        get_project(api, &p).await?
    };
    let Some(current) = current else {
        anyhow::bail!("{} came back without a project", name);
    };
    tally += journey(api, staff, training, &p, current, fresh).await?;
    Ok(tally)
}

/// Creates an idea, or finds it: its state and whether it is new.
async fn create_idea(
    api: &Api,
    staff: &Workforce,
    i: &IdeaPlan,
    tally: &mut Tally,
) -> anyhow::Result<(i32, bool)> {
    let name = i.name();
    let mut r = Rng::of("idea-submitter", i.n as u64);
    let submitter_staff = r
        .chance(0.7)
        .then(|| staff.at(i.site, 400 + r.below(400) as usize).clone());
    let submitter = match &submitter_staff {
        Some(p) => p.display(),
        None => {
            let (f, s) = person(&mut r);
            format!("{f} {s} (patient)")
        }
    };
    let theme = &THEMES[i.theme];
    let made = created(
        rpc!(
            api.projects,
            create_idea,
            pb::CreateIdeaRequest {
                parent: format!("sites/{}", i.site),
                idea_id: format!("idea-{:04}", i.n),
                idea: Some(pb::Idea {
                    title: i.title.clone(),
                    description: format!(
                        "{}. Suggested to improve {} and tried elsewhere in the NHS.",
                        i.title,
                        theme.name.to_lowercase()
                    ),
                    ward: i
                        .ward
                        .map(|w| format!("sites/{}/wards/{w}", i.site))
                        .unwrap_or_default(),
                    submitter,
                    submitter_staff: submitter_staff.map(|p| p.name()).unwrap_or_default(),
                    theme: theme.name.into(),
                    submit_date: Some(date(i.submitted)),
                    ..Default::default()
                }),
                request_id: String::new(),
            }
        ),
        &name,
    )?;
    Ok(match made {
        Some(r) => {
            tally.created += 1;
            (r.idea.map(|i| i.state).unwrap_or_default(), true)
        }
        None => {
            tally.existing += 1;
            let got = rpc!(
                api.projects,
                get_idea,
                pb::GetIdeaRequest { name: name.clone() }
            )
            .map_err(|s| failed(s, &name))?;
            (got.idea.map(|i| i.state).unwrap_or_default(), false)
        }
    })
}

async fn merged_idea(
    api: &Api,
    staff: &Workforce,
    i: IdeaPlan,
    into: String,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let (state, fresh) = create_idea(api, staff, &i, &mut tally).await?;
    if state == pb::IdeaState::Submitted as i32 || state == pb::IdeaState::UnderReview as i32 {
        let name = i.name();
        rpc!(
            api.projects,
            merge_idea,
            pb::MergeIdeaRequest {
                name: name.clone(),
                into,
                etag: String::new(),
            }
        )
        .map_err(|s| failed(s, &format!("merging {name}")))?;
        if !fresh {
            tally.advanced += 1;
        }
    }
    Ok(tally)
}

async fn get_project(api: &Api, p: &ProjectPlan) -> anyhow::Result<Option<pb::Project>> {
    let name = p.name();
    Ok(rpc!(
        api.projects,
        get_project,
        pb::GetProjectRequest { name: name.clone() }
    )
    .map_err(|s| failed(s, &name))?
    .project)
}

fn aim(p: &ProjectPlan) -> pb::Aim {
    let t = &THEMES[p.theme];
    let (statement, measure, baseline, target, unit) = t.aim;
    let place = p.ward.map_or_else(|| p.site.to_owned(), title_case);
    pb::Aim {
        statement: format!(
            "{statement} on {place} from {baseline} to {target} {unit} within a year"
        ),
        measure: measure.into(),
        metric: t
            .measures
            .first()
            .map(|(m, _)| format!("sites/{}/metrics/{m}", p.site))
            .unwrap_or_default(),
        baseline: Some(baseline),
        target: Some(target),
        unit: unit.into(),
        target_date: Some(date(p.start.max(day(2021, 1, 1)) + Months::new(12))),
    }
}

fn involvement(p: &ProjectPlan) -> pb::PatientInvolvement {
    let mut r = Rng::of("involvement", p.key);
    if p.coproduced {
        *r.pick(&[
            pb::PatientInvolvement::CoProducing,
            pb::PatientInvolvement::CoDesigning,
            pb::PatientInvolvement::Engaging,
        ])
    } else {
        *r.pick(&[
            pb::PatientInvolvement::Consulting,
            pb::PatientInvolvement::Informing,
            pb::PatientInvolvement::None,
        ])
    }
}

async fn direct_project(
    api: &Api,
    staff: &Workforce,
    training: &TrainingPlan,
    p: ProjectPlan,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let name = p.name();
    let made = created(
        rpc!(
            api.projects,
            create_project,
            pb::CreateProjectRequest {
                parent: format!("sites/{}", p.site),
                project_id: p.id.clone(),
                project: Some(pb::Project {
                    title: p.title.clone(),
                    description: format!(
                        "Worked on by {}'s learners on the QSIR Practitioner course.",
                        p.site
                    ),
                    aim: Some(aim(&p)),
                    participating_sites: p.participating.clone(),
                    wards: p
                        .ward
                        .map(|w| vec![format!("sites/{}/wards/{w}", p.site)])
                        .unwrap_or_default(),
                    programme: p.programme.clone().unwrap_or_default(),
                    patient_involvement: involvement(&p) as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            }
        ),
        &name,
    )?;
    let fresh = made.is_some();
    let current = match made {
        Some(r) => {
            tally.created += 1;
            r.project
        }
        None => {
            tally.existing += 1;
            get_project(api, &p).await?
        }
    };
    let Some(current) = current else {
        anyhow::bail!("{name} came back empty");
    };
    tally += journey(api, staff, training, &p, current, fresh).await?;
    Ok(tally)
}

/// One planned PDSA cycle.
struct Cycle {
    change: &'static str,
    start: NaiveDate,
    end: NaiveDate,
    decision: Option<pb::PdsaDecision>,
}

fn cycles(p: &ProjectPlan) -> Vec<Cycle> {
    let mut r = Rng::of("pdsa", p.key);
    let t = &THEMES[p.theme];
    let (count, last_open) = match p.fate {
        Fate::Scoping => (0, false),
        Fate::Stopped => (1, false),
        Fate::Completed => (3 + r.below(2) as usize, false),
        Fate::InProgress => (1 + r.below(3) as usize, r.chance(0.5)),
    };
    let limit = p.end.unwrap_or(AS_OF);
    let mut out = Vec::new();
    let mut start = p.start + Days::new(14);
    for c in 0..count {
        let end = start + Days::new(21 + r.below(22));
        if end > limit {
            break;
        }
        let decision = if p.fate == Fate::Stopped {
            Some(pb::PdsaDecision::Abandon)
        } else if c + 1 == count {
            (!last_open).then_some(pb::PdsaDecision::Adopt)
        } else {
            Some(pb::PdsaDecision::Adapt)
        };
        out.push(Cycle {
            change: t.changes[(p.key as usize + c) % t.changes.len()],
            start,
            end,
            decision,
        });
        start = end + Days::new(7);
    }
    out
}

fn decision_word(d: pb::PdsaDecision) -> &'static str {
    match d {
        pb::PdsaDecision::Adopt => "Adopt",
        pb::PdsaDecision::Adapt => "Adapt",
        pb::PdsaDecision::Abandon => "Abandon",
        pb::PdsaDecision::Unspecified => "",
    }
}

/// Takes a project from where it stands to where the plan leaves it. A project found
/// (not just made) still scoping may have part of its team and cycles from a cut run:
/// those are read back and not made twice.
async fn journey(
    api: &Api,
    staff: &Workforce,
    training: &TrainingPlan,
    p: &ProjectPlan,
    current: pb::Project,
    fresh: bool,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let name = p.name();
    let mut state = current.state;
    let step = |t: &mut Tally| {
        if !fresh {
            t.advanced += 1;
        }
    };
    if state == pb::ProjectState::Scoping as i32 {
        if current.aim.is_none() {
            rpc!(
                api.projects,
                update_project,
                pb::UpdateProjectRequest {
                    project: Some(pb::Project {
                        name: name.clone(),
                        aim: Some(aim(p)),
                        programme: p.programme.clone().unwrap_or_default(),
                        participating_sites: p.participating.clone(),
                        patient_involvement: involvement(p) as i32,
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec![
                            "aim".into(),
                            "programme".into(),
                            "participating_sites".into(),
                            "patient_involvement".into(),
                        ],
                    }),
                }
            )
            .map_err(|s| failed(s, &format!("setting the aim of {name}")))?;
            step(&mut tally);
        }
        let mut r = Rng::of("team", p.key);
        // What a cut run left: (PDSA cycles, scores, engagement activities, partners).
        let (had_cycles, had_scores, had_activities, had_partner) = if fresh {
            (Vec::new(), 0, 0, false)
        } else {
            existing_parts(api, &name).await?
        };
        // The team: the lead (a learner of the programme's cohort when there is one).
        let lead = p
            .cohort
            .and_then(|(y, m)| training.practitioner(y, m))
            .and_then(|c| c.seats.iter().find(|s| s.site == p.site))
            .map(|s| s.staff.clone())
            .unwrap_or_else(|| staff.at(p.site, r.below(600) as usize).name());
        let mut members = vec![(lead, pb::TeamRole::Lead)];
        for _ in 0..2 {
            members.push((
                staff.at(p.site, 600 + r.below(1200) as usize).name(),
                pb::TeamRole::Member,
            ));
        }
        if r.chance(0.5) {
            members.push((
                staff.at(p.site, r.below(300) as usize).name(),
                pb::TeamRole::Coach,
            ));
        }
        if r.chance(0.3) {
            members.push((
                staff.at(p.site, 2000 + r.below(500) as usize).name(),
                pb::TeamRole::Sponsor,
            ));
        }
        for (who, role) in members {
            let what = format!("{who} on {name}");
            if created(
                rpc!(
                    api.projects,
                    create_team_member,
                    pb::CreateTeamMemberRequest {
                        parent: name.clone(),
                        team_member: Some(pb::TeamMember {
                            staff: who.clone(),
                            role: role as i32,
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    }
                ),
                &what,
            )?
            .is_some()
            {
                tally.created += 1;
            }
        }
        if p.coproduced && r.chance(0.6) && !had_partner {
            let (f, s) = person(&mut r);
            let what = format!("patient partner on {name}");
            rpc!(
                api.projects,
                create_team_member,
                pb::CreateTeamMemberRequest {
                    parent: name.clone(),
                    team_member: Some(pb::TeamMember {
                        display_name: format!("{f} {s}"),
                        role: pb::TeamRole::PatientPartner as i32,
                        affiliation: r
                            .pick(&["Patient panel", "Healthwatch", "Carers' forum"])
                            .to_string(),
                        ..Default::default()
                    }),
                    request_id: request_id(&what),
                }
            )
            .map_err(|s| failed(s, &what))?;
            tally.created += 1;
        }
        // PDSA cycles, in order.
        for (k, c) in cycles(p).iter().enumerate() {
            let number = k + 1;
            let cycle_name = format!("{name}/pdsaCycles/{number}");
            let decided_already = match had_cycles.get(k) {
                Some(d) => *d != pb::PdsaDecision::Unspecified as i32,
                None => {
                    let decided = c.decision.is_some();
                    rpc!(
                        api.projects,
                        create_pdsa_cycle,
                        pb::CreatePdsaCycleRequest {
                            parent: name.clone(),
                            pdsa_cycle: Some(pb::PdsaCycle {
                                change_idea: c.change.into(),
                                objective: format!("Find out whether '{}' works here", c.change),
                                prediction: "Fewer delays within two weeks of starting".into(),
                                plan: format!(
                                    "Test on {} for {} days; the ward team records each case on a tally sheet.",
                                    p.ward.map_or_else(|| p.site.to_owned(), title_case),
                                    (c.end - c.start).num_days()
                                ),
                                do_notes: if decided {
                                    "Ran as planned; two shifts missed the first days.".into()
                                } else {
                                    String::new()
                                },
                                study_notes: if decided {
                                    "Most cases met the new standard; the run chart moved the way predicted.".into()
                                } else {
                                    String::new()
                                },
                                start_date: Some(date(c.start)),
                                end_date: decided.then(|| date(c.end)),
                                ..Default::default()
                            }),
                            request_id: request_id(&cycle_name),
                        }
                    )
                    .map_err(|s| failed(s, &format!("planning {cycle_name}")))?;
                    tally.created += 1;
                    false
                }
            };
            if let (Some(d), false) = (c.decision, decided_already) {
                rpc!(
                    api.projects,
                    decide_pdsa_cycle,
                    pb::DecidePdsaCycleRequest {
                        name: cycle_name.clone(),
                        decision: d as i32,
                        act_notes: format!("{}: {}", decision_word(d), c.change),
                        end_date: Some(date(c.end)),
                        etag: String::new(),
                    }
                )
                .map_err(|s| failed(s, &format!("deciding {cycle_name}")))?;
            }
        }
        // Progress scores: the history a team keeps.
        let scores: Vec<(f64, NaiveDate)> = match (p.fate, p.end) {
            (Fate::Scoping, _) => vec![(1.0, AS_OF - Days::new(14))],
            (Fate::Stopped, Some(e)) => vec![(1.5, e - Days::new(14))],
            (Fate::Completed, Some(e)) => vec![
                (2.0, p.start + Days::new(60)),
                (
                    3.0,
                    p.start + Days::new((e - p.start).num_days() as u64 / 2),
                ),
                (4.0 + 0.5 * r.below(3) as f64, e),
            ],
            _ => vec![
                (1.5, p.start + Days::new(30)),
                (2.0 + 0.5 * r.below(4) as f64, p.start + Days::new(120)),
            ],
        };
        for (k, (score, when)) in scores.iter().enumerate().skip(had_scores) {
            if *when > AS_OF {
                continue;
            }
            let what = format!("score {k} of {name}");
            rpc!(
                api.projects,
                record_progress_score,
                pb::RecordProgressScoreRequest {
                    parent: name.clone(),
                    progress_score: Some(pb::ProgressScore {
                        score: *score,
                        assessed_date: Some(date(*when)),
                        note: "Agreed at the project review".into(),
                        ..Default::default()
                    }),
                    request_id: request_id(&what),
                }
            )
            .map_err(|s| failed(s, &what))?;
            tally.created += 1;
        }
        // Measures: the QMS metrics the theme moves.
        for (metric, kind) in THEMES[p.theme].measures {
            let metric = format!("sites/{}/metrics/{metric}", p.site);
            let what = format!("{metric} on {name}");
            if created(
                rpc!(
                    api.projects,
                    create_measure,
                    pb::CreateMeasureRequest {
                        parent: name.clone(),
                        measure: Some(pb::Measure {
                            metric: metric.clone(),
                            kind: *kind as i32,
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    }
                ),
                &what,
            )?
            .is_some()
            {
                tally.created += 1;
            }
        }
        // Co-production: engagement activities with patients.
        if p.coproduced && p.fate != Fate::Scoping {
            let kinds = [
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
            let n = 1 + r.below(2) as usize;
            for k in had_activities..n {
                let (kind, summary) = *r.pick(&kinds);
                let when = (p.start + Days::new(30 + 45 * k as u64)).min(AS_OF);
                let what = format!("activity {k} of {name}");
                rpc!(
                    api.projects,
                    create_engagement_activity,
                    pb::CreateEngagementActivityRequest {
                        parent: name.clone(),
                        engagement_activity: Some(pb::EngagementActivity {
                            activity_date: Some(date(when)),
                            kind: kind as i32,
                            participants: 5 + r.below(40) as i32,
                            summary: format!(
                                "{summary}: what mattered to them shaped the next change."
                            ),
                            ..Default::default()
                        }),
                        request_id: request_id(&what),
                    }
                )
                .map_err(|s| failed(s, &what))?;
                tally.created += 1;
            }
        }
        if p.fate != Fate::Scoping {
            rpc!(
                api.projects,
                start_project,
                pb::StartProjectRequest {
                    name: name.clone(),
                    start_date: Some(date(p.start)),
                    etag: String::new(),
                }
            )
            .map_err(|s| failed(s, &format!("starting {name}")))?;
            step(&mut tally);
            state = pb::ProjectState::InProgress as i32;
        }
    }
    if state == pb::ProjectState::InProgress as i32 {
        match (p.fate, p.end) {
            (Fate::Completed, Some(end)) => {
                let t = &THEMES[p.theme];
                let mut r = Rng::of("outcome", p.key);
                let (kind, low, high) = t.benefit;
                let value = (low + (high - low) * r.unit()).round();
                rpc!(
                    api.projects,
                    complete_project,
                    pb::CompleteProjectRequest {
                        name: name.clone(),
                        end_date: Some(date(end)),
                        outcome: Some(pb::Outcome {
                            summary: format!(
                                "{} adopted after {} PDSA cycles; the SPC chart shows a sustained shift.",
                                cycles(p).last().map_or("The change", |c| c.change),
                                cycles(p).len()
                            ),
                            benefits: vec![pb::Benefit {
                                kind: kind as i32,
                                value,
                                description: "Per year, claimed from the sustained SPC shift".into(),
                                ..Default::default()
                            }],
                        }),
                        etag: String::new(),
                    }
                )
                .map_err(|s| failed(s, &format!("completing {name}")))?;
                step(&mut tally);
            }
            (Fate::Stopped, Some(end)) => {
                rpc!(
                    api.projects,
                    stop_project,
                    pb::StopProjectRequest {
                        name: name.clone(),
                        reason: "The ward was redesignated; the team will resubmit the idea".into(),
                        end_date: Some(date(end)),
                        etag: String::new(),
                    }
                )
                .map_err(|s| failed(s, &format!("stopping {name}")))?;
                step(&mut tally);
            }
            _ => {}
        }
    }
    Ok(tally)
}

/// A found project's PDSA decisions, score count, activity count and whether it has a
/// patient partner.
async fn existing_parts(api: &Api, name: &str) -> anyhow::Result<(Vec<i32>, usize, usize, bool)> {
    let cycles = rpc!(
        api.projects,
        list_pdsa_cycles,
        pb::ListPdsaCyclesRequest {
            parent: name.to_owned(),
            page_size: 500,
            page_token: String::new(),
        }
    )
    .map_err(|s| failed(s, name))?;
    let scores = rpc!(
        api.projects,
        list_progress_scores,
        pb::ListProgressScoresRequest {
            parent: name.to_owned(),
            page_size: 500,
            page_token: String::new(),
        }
    )
    .map_err(|s| failed(s, name))?;
    let activities = rpc!(
        api.projects,
        list_engagement_activities,
        pb::ListEngagementActivitiesRequest {
            parent: name.to_owned(),
            page_size: 500,
            page_token: String::new(),
        }
    )
    .map_err(|s| failed(s, name))?;
    let team = rpc!(
        api.projects,
        list_team_members,
        pb::ListTeamMembersRequest {
            parent: name.to_owned(),
            page_size: 500,
            page_token: String::new(),
        }
    )
    .map_err(|s| failed(s, name))?;
    Ok((
        cycles.pdsa_cycles.iter().map(|c| c.decision).collect(),
        scores.progress_scores.len(),
        activities.engagement_activities.len(),
        team.team_members
            .iter()
            .any(|m| m.role == pb::TeamRole::PatientPartner as i32),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portfolio_has_the_programme_s_headline_figures() {
        let p = portfolio();
        assert_eq!(p.ideas.len(), 469);
        let count = |f: Fate| p.projects.iter().filter(|x| x.fate == f).count();
        assert_eq!(count(Fate::Completed), 45);
        assert_eq!(count(Fate::InProgress), 99);
        for x in &p.projects {
            if let Some(e) = x.end {
                assert!(e >= x.start && e <= AS_OF, "{} ends {e}", x.id);
            }
        }
        assert_eq!(ward_programme().len(), 60);
    }
}
