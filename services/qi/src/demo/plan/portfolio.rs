//! The improvement portfolio's layout: the ideas the three sites received and where triage
//! left them, the projects accepted ideas became, and the projects of the programmes
//! wrapped around Practitioner cohorts (each site's learners work on one problem), each
//! with its theme, dates and where it ends up.

use chrono::{Days, Months, NaiveDate};

use super::training::practitioner_start;
use crate::demo::data::projects::{
    ACCEPTED, CLOSING_BEFORE, DECLINED, FIRST_IDEA, FIRST_IDEA_PROJECT, IDEA_PROJECTS_COMPLETED,
    IDEA_PROJECTS_SCOPING, IDEA_PROJECTS_STOPPED, IDEAS_PER_SITE, LAST_IDEA_PROJECT, MERGED,
    THEMATIC, THEMES, UNDER_REVIEW, WRAPPED, WRAPPED_DONE_BEFORE,
};
use crate::demo::rng::Rng;
use crate::demo::{AS_OF, day};
use crate::seed::{SITES, WARDS};

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
    /// Its number, trust-wide (its id is `idea-NNNN`).
    pub(crate) n: usize,
    pub(crate) site: &'static str,
    pub(crate) ward: Option<&'static str>,
    /// Its theme's place in `THEMES`.
    pub(crate) theme: usize,
    pub(crate) title: String,
    pub(crate) triage: Triage,
    /// The day it was received.
    pub(crate) submitted: NaiveDate,
    /// The day it was taken under review, if it was.
    pub(crate) reviewed: Option<NaiveDate>,
    /// The day it was accepted, declined or merged, if it was.
    pub(crate) decided: Option<NaiveDate>,
}

impl IdeaPlan {
    /// The idea's name.
    pub(crate) fn name(&self) -> String {
        format!("sites/{}/ideas/idea-{:04}", self.site, self.n)
    }
}

/// One project: from an idea (`idea` set) or created in a wrapped programme.
#[derive(Debug, Clone)]
pub(crate) struct ProjectPlan {
    pub(crate) id: String,
    pub(crate) site: &'static str,
    pub(crate) fate: Fate,
    /// The number of the idea it came from.
    pub(crate) idea: Option<usize>,
    pub(crate) title: String,
    pub(crate) ward: Option<&'static str>,
    /// Its theme's place in `THEMES`.
    pub(crate) theme: usize,
    pub(crate) programme: Option<String>,
    /// The Practitioner cohort (year, month) whose learners work on it.
    pub(crate) cohort: Option<(i32, u32)>,
    pub(crate) participating: Vec<String>,
    pub(crate) start: NaiveDate,
    pub(crate) end: Option<NaiveDate>,
    pub(crate) coproduced: bool,
    /// The key of the generators its details are drawn from.
    pub(crate) key: u64,
}

impl ProjectPlan {
    /// The project's name.
    pub(crate) fn name(&self) -> String {
        format!("sites/{}/projects/{}", self.site, self.id)
    }

    /// Where it is tested: its ward, or its site.
    pub(crate) fn place(&self) -> String {
        self.ward.map_or_else(|| self.site.to_owned(), title_case)
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

    /// The project an idea became, if it became one.
    pub(crate) fn project_of(&self, idea: &IdeaPlan) -> Option<&ProjectPlan> {
        self.projects.iter().find(|p| p.idea == Some(idea.n))
    }

    /// The merged ideas, each with the name of the project it is merged into: one of its
    /// site's projects from an idea of the same theme, else any of its site's.
    pub(crate) fn merges(&self) -> Vec<(IdeaPlan, String)> {
        self.ideas
            .iter()
            .filter(|i| i.triage == Triage::Merged)
            .filter_map(|i| {
                self.projects
                    .iter()
                    .find(|p| p.site == i.site && p.theme == i.theme && p.idea.is_some())
                    .or_else(|| self.projects.iter().find(|p| p.site == i.site))
                    .map(|p| (i.clone(), p.name()))
            })
            .collect()
    }
}

/// "Oak Ward", of `oak`.
pub(crate) fn title_case(ward: &str) -> String {
    let mut t = ward.to_owned();
    t[..1].make_ascii_uppercase();
    format!("{t} Ward")
}

/// Lays out the ideas and projects.
pub(crate) fn portfolio() -> Portfolio {
    let mut ideas = ideas();
    let mut projects = wrapped_projects();
    projects.extend(idea_projects(&ideas));
    // An accepted idea was received shortly before its project started.
    for idea in &mut ideas {
        if let Some(p) = projects.iter().find(|p| p.idea == Some(idea.n)) {
            let mut r = Rng::of("idea-received", idea.n as u64);
            idea.submitted = p.start - Days::new(30 + r.below(60));
        }
    }
    // Triage takes days to weeks; an accepted idea is decided the week its project starts.
    for idea in &mut ideas {
        let mut r = Rng::of("idea-triage-days", idea.n as u64);
        let after = |d: NaiveDate, days: u64| (d + Days::new(days)).min(AS_OF);
        let start = projects
            .iter()
            .find(|p| p.idea == Some(idea.n))
            .map(|p| p.start);
        idea.reviewed = matches!(idea.triage, Triage::UnderReview | Triage::Accepted)
            .then(|| after(idea.submitted, 2 + r.below(16)));
        idea.decided = match idea.triage {
            Triage::Declined => Some(after(idea.submitted, 7 + r.below(40))),
            Triage::Merged => Some(after(idea.submitted, 5 + r.below(25))),
            // At least 13 days after its review: it was received 30 days or more before.
            Triage::Accepted => start.map(|s| (s - Days::new(1 + r.below(5))).min(AS_OF)),
            Triage::Submitted | Triage::UnderReview => None,
        };
    }
    Portfolio { ideas, projects }
}

/// The ideas: which site each comes from, where triage leaves it, its theme and title.
fn ideas() -> Vec<IdeaPlan> {
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
    sites
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
            // accepted one shortly before its project started: set in `portfolio`).
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
                reviewed: None,
                decided: None,
            }
        })
        .collect()
}

/// Projects of the wrapped programmes: one per site, started a week into the course.
fn wrapped_projects() -> Vec<ProjectPlan> {
    let mut projects = Vec::new();
    for (p, (year, month, id, title, theme)) in WRAPPED.iter().enumerate() {
        for (s, (site, _)) in SITES.iter().enumerate() {
            let key = (p * 3 + s) as u64;
            let mut r = Rng::of("wrapped-project", key);
            let start = practitioner_start(*year, *month) + Days::new(7);
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
    projects
}

/// Projects from accepted ideas, started through the years in the order accepted: of
/// those started before [`CLOSING_BEFORE`], some finish (evenly spread); the rest go on;
/// the last few are still scoping.
fn idea_projects(ideas: &[IdeaPlan]) -> Vec<ProjectPlan> {
    let accepted: Vec<&IdeaPlan> = ideas
        .iter()
        .filter(|i| i.triage == Triage::Accepted)
        .collect();
    let started = accepted.len() - IDEA_PROJECTS_SCOPING;
    let span = (LAST_IDEA_PROJECT - FIRST_IDEA_PROJECT).num_days() as u64;
    let start_of = |k: usize| FIRST_IDEA_PROJECT + Days::new(span * k as u64 / started as u64);
    let eligible: Vec<usize> = (0..started)
        .filter(|k| start_of(*k) < CLOSING_BEFORE)
        .collect();
    let closing = IDEA_PROJECTS_COMPLETED + IDEA_PROJECTS_STOPPED;
    let closed: Vec<usize> = (0..closing)
        .map(|j| eligible[j * eligible.len() / closing])
        .collect();
    accepted
        .iter()
        .enumerate()
        .map(|(k, idea)| {
            let mut r = Rng::of("idea-project", idea.n as u64);
            let (fate, start, end) = if k >= started {
                (Fate::Scoping, AS_OF, None)
            } else {
                let start = start_of(k) + Days::new(r.below(20));
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
                vec![format!("sites/{}", other_site(idea.site, &mut r))]
            } else {
                Vec::new()
            };
            ProjectPlan {
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
            }
        })
        .collect()
}

/// One of the two sites other than `site`.
fn other_site(site: &str, r: &mut Rng) -> &'static str {
    let here = SITES.iter().position(|(s, _)| *s == site).unwrap_or(0);
    SITES[(here + 1 + r.below(2) as usize) % 3].0
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
    }
}
