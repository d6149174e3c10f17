//! A project's journey from scoping to where the plan leaves it: the team (a patient partner
//! on some), the PDSA cycles and their decisions, progress scores, measures, engagement
//! activities where co-produced, and the outcome once completed. What a project found
//! scoping already has (a cut run's part) is taken into account, so nothing is made twice.

use chrono::{Days, NaiveDate};
use qi_platform::convert::date;
use qi_proto::projects as pb;

use super::people::{Person, Workforce};
use super::portfolio::{Fate, Portfolio, ProjectPlan};
use super::training::Plan as TrainingPlan;
use crate::demo::AS_OF;
use crate::demo::data::projects::{ENGAGEMENT, PARTNER_AFFILIATIONS, THEMES};
use crate::demo::rng::{Rng, person};

/// What a project found still scoping has already (none when it was just made).
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    /// Its PDSA cycles' decisions, in order.
    pub(crate) decisions: Vec<i32>,
    /// Its progress scores.
    pub(crate) scores: usize,
    /// Its engagement activities.
    pub(crate) activities: usize,
    /// Whether it has a patient partner.
    pub(crate) partner: bool,
}

/// What a project gets while scoping, beyond its aim and PDSA cycles: each record numbered
/// as its request id counts it.
#[derive(Debug, Clone)]
pub(crate) struct Scoping {
    /// The team: the lead, members, and perhaps a coach and a sponsor (staff names).
    pub(crate) team: Vec<(String, pb::TeamRole)>,
    /// A patient partner, on some co-produced projects.
    pub(crate) partner: Option<pb::TeamMember>,
    /// Progress scores not recorded yet and not after [`AS_OF`], by number.
    pub(crate) scores: Vec<(usize, pb::ProgressScore)>,
    /// Engagement activities not recorded yet, by number.
    pub(crate) activities: Vec<(usize, pb::EngagementActivity)>,
}

/// What `p` gets while scoping, given what it has already. One generator draws the team,
/// the partner, the scores and the activities, in that order.
pub(crate) fn scoping(
    p: &ProjectPlan,
    staff: &Workforce,
    training: &TrainingPlan,
    found: &Found,
) -> Scoping {
    let mut r = Rng::of("team", p.key);
    let team = team(p, staff, training, &mut r);
    let partner = partner(p, found, &mut r);
    let scores = scores(p, &mut r)
        .into_iter()
        .enumerate()
        .skip(found.scores)
        .filter(|(_, (_, when))| *when <= AS_OF)
        .map(|(k, (score, when))| {
            let score = pb::ProgressScore {
                score,
                assessed_date: Some(date(when)),
                note: "Agreed at the project review".into(),
                ..Default::default()
            };
            (k, score)
        })
        .collect();
    let activities = activities(p, found, &mut r);
    Scoping {
        team,
        partner,
        scores,
        activities,
    }
}

/// The lead (a learner of the programme's cohort when there is one), two members, and
/// perhaps a coach and a sponsor.
fn team(
    p: &ProjectPlan,
    staff: &Workforce,
    training: &TrainingPlan,
    r: &mut Rng,
) -> Vec<(String, pb::TeamRole)> {
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
    members
}

/// A patient partner on most co-produced projects, unless there is one already.
fn partner(p: &ProjectPlan, found: &Found, r: &mut Rng) -> Option<pb::TeamMember> {
    if !(p.coproduced && r.chance(0.6) && !found.partner) {
        return None;
    }
    let (f, s) = person(r);
    Some(pb::TeamMember {
        display_name: format!("{f} {s}"),
        role: pb::TeamRole::PatientPartner as i32,
        affiliation: r.pick(&PARTNER_AFFILIATIONS).to_string(),
        ..Default::default()
    })
}

/// Progress scores (score, day assessed): the history a team keeps, to where the project
/// ends up.
fn scores(p: &ProjectPlan, r: &mut Rng) -> Vec<(f64, NaiveDate)> {
    match (p.fate, p.end) {
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
    }
}

/// Co-production: one or two engagement activities with patients once the project runs.
fn activities(p: &ProjectPlan, found: &Found, r: &mut Rng) -> Vec<(usize, pb::EngagementActivity)> {
    if !p.coproduced || p.fate == Fate::Scoping {
        return Vec::new();
    }
    let n = 1 + r.below(2) as usize;
    (found.activities..n)
        .map(|k| {
            let (kind, summary) = *r.pick(&ENGAGEMENT);
            let when = (p.start + Days::new(30 + 45 * k as u64)).min(AS_OF);
            let activity = pb::EngagementActivity {
                activity_date: Some(date(when)),
                kind: kind as i32,
                participants: 5 + r.below(40) as i32,
                summary: format!("{summary}: what mattered to them shaped the next change."),
                ..Default::default()
            };
            (k, activity)
        })
        .collect()
}

/// The QMS metrics the project's theme moves, as its measures.
pub(crate) fn measures(p: &ProjectPlan) -> Vec<pb::Measure> {
    THEMES[p.theme]
        .measures
        .iter()
        .map(|(metric, kind)| pb::Measure {
            metric: format!("sites/{}/metrics/{metric}", p.site),
            kind: *kind as i32,
            ..Default::default()
        })
        .collect()
}

/// One planned PDSA cycle.
#[derive(Debug, Clone)]
pub(crate) struct Cycle {
    pub(crate) change: String,
    /// How big the test is: each cycle of a project's ramp tests at a larger scale.
    pub(crate) scale: &'static str,
    /// The number of the cycle this one follows in the ramp (none for the first).
    pub(crate) follows: Option<usize>,
    pub(crate) start: NaiveDate,
    pub(crate) end: NaiveDate,
    /// What was decided at its end (none while it runs).
    pub(crate) decision: Option<pb::PdsaDecision>,
}

impl Cycle {
    /// The cycle as planned, with what was done and learnt once it is decided.
    pub(crate) fn record(&self, p: &ProjectPlan) -> pb::PdsaCycle {
        let decided = self.decision.is_some();
        pb::PdsaCycle {
            change_idea: self.change.clone(),
            objective: format!("Find out whether '{}' works here", self.change),
            prediction: "Fewer delays within two weeks of starting".into(),
            plan: format!(
                "Test on {} for {} days; the ward team records each case on a tally sheet.",
                p.place(),
                (self.end - self.start).num_days()
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
            result: if decided {
                "Delays fell by about a fifth: less than predicted, but every week.".into()
            } else {
                String::new()
            },
            scale: self.scale.into(),
            follows: self
                .follows
                .map(|n| format!("{}/pdsaCycles/{n}", p.name()))
                .unwrap_or_default(),
            start_date: Some(date(self.start)),
            end_date: decided.then(|| date(self.end)),
            ..Default::default()
        }
    }

    /// What the team acts on after deciding `d`.
    pub(crate) fn act_notes(&self, d: pb::PdsaDecision) -> String {
        let word = match d {
            pb::PdsaDecision::Adopt => "Adopt",
            pb::PdsaDecision::Adapt => "Adapt",
            pb::PdsaDecision::Abandon => "Abandon",
            pb::PdsaDecision::Unspecified => "",
        };
        format!("{word}: {}", self.change)
    }
}

/// How big each cycle of a ramp tests, in order.
const SCALES: [&str; 5] = [
    "one patient, one shift",
    "one bay, one week",
    "one ward, three weeks",
    "two wards, a month",
    "every ward on the site",
];

/// The project's PDSA cycles, in order: a ramp testing one of its theme's changes at a
/// growing scale, each following the last, adapted until the last is adopted (abandoned
/// where the project stopped; one still running on some).
pub(crate) fn cycles(p: &ProjectPlan) -> Vec<Cycle> {
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
        let change = t.changes[p.key as usize % t.changes.len()];
        out.push(Cycle {
            change: if c == 0 {
                change.to_owned()
            } else {
                format!("{change} (adapted after cycle {c})")
            },
            scale: SCALES[c.min(SCALES.len() - 1)],
            follows: (c > 0).then_some(c),
            start,
            end,
            decision,
        });
        start = end + Days::new(7);
    }
    out
}

/// The outcome of a completed project: its adopted change, and the benefit claimed.
pub(crate) fn outcome(p: &ProjectPlan) -> pb::Outcome {
    let mut r = Rng::of("outcome", p.key);
    let (kind, low, high) = THEMES[p.theme].benefit;
    let value = (low + (high - low) * r.unit()).round();
    let cycles = cycles(p);
    pb::Outcome {
        summary: format!(
            "{} adopted after {} PDSA cycles; the SPC chart shows a sustained shift.",
            cycles.last().map_or("The change", |c| c.change.as_str()),
            cycles.len()
        ),
        benefits: vec![pb::Benefit {
            kind: kind as i32,
            value,
            description: "Per year, claimed from the sustained SPC shift".into(),
            ..Default::default()
        }],
    }
}

/// The demo's leaver who leads a project: the lead of the first project in progress (by
/// name) who is neither a learner, a facilitator nor an imported completion, so leaving
/// touches no register. HR's last extract of the story records them gone (see
/// `load::people::leaver`), and the read model lists their project at risk.
pub(crate) fn leaver<'a>(
    portfolio: &Portfolio,
    staff: &'a Workforce,
    training: &TrainingPlan,
) -> Option<(ProjectPlan, &'a Person)> {
    let mut live: Vec<&ProjectPlan> = portfolio
        .projects
        .iter()
        .filter(|p| p.fate == Fate::InProgress)
        .collect();
    live.sort_by_key(|p| p.name());
    live.into_iter().find_map(|p| {
        let lead = scoping(p, staff, training, &Found::default())
            .team
            .into_iter()
            .find(|(_, role)| *role == pb::TeamRole::Lead)?
            .0;
        let trained = training
            .cohorts
            .iter()
            .any(|c| c.seats.iter().any(|s| s.staff == lead) || c.facilitators.contains(&lead))
            || training
                .historic
                .iter()
                .any(|h| format!("staff/{}", h.employee) == lead);
        let person = staff.people.iter().find(|x| x.name() == lead)?;
        (!trained).then(|| (p.clone(), person))
    })
}
