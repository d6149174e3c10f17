//! QSIR training since 2021: the five-week QSIR Practitioner course four times a year as
//! trust-wide (cross-site) cohorts, one-day QSIR Fundamentals cohorts at each site twice a
//! year, and next year's first Practitioner cohort open for enrolment; who sits on each, and
//! their register marks, from which completions follow as they do for a real cohort. And
//! what came before the system: the paper register of QSIR Fundamentals days in 2019 and
//! 2020, staff who trained at another trust (Inter Authority Transfers) and competences ESR
//! holds, imported as completions from elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, Weekday};
use qi_proto::training as pb;

use super::people::Workforce;
use crate::demo::data::training::{
    FUNDAMENTALS, FUNDAMENTALS_RETURNING, FUNDAMENTALS_SEATS, NEXT_COHORT_SEATS, PRACTITIONER,
    PRACTITIONER_INCOMPLETE, PRACTITIONER_SEATS,
};
use crate::demo::day;
use crate::demo::rng::{Rng, person};
use crate::seed::SITES;

/// A learner's place and register marks (one per session).
#[derive(Debug, Clone)]
pub(crate) struct Seat {
    pub(crate) staff: String,
    pub(crate) employee: String,
    pub(crate) site: &'static str,
    pub(crate) marks: Vec<pb::AttendanceStatus>,
}

impl Seat {
    fn completes(&self) -> bool {
        self.marks.iter().all(|m| {
            matches!(
                m,
                pb::AttendanceStatus::Attended | pb::AttendanceStatus::CaughtUp
            )
        })
    }
}

/// One cohort to load.
#[derive(Debug, Clone)]
pub(crate) struct CohortPlan {
    pub(crate) parent: String,
    pub(crate) id: String,
    pub(crate) course: &'static str,
    pub(crate) title: String,
    pub(crate) start: NaiveDate,
    pub(crate) sessions: u32,
    pub(crate) capacity: i32,
    pub(crate) facilitators: Vec<String>,
    pub(crate) seats: Vec<Seat>,
    /// Run and completed (else only opened and filled: a cohort still to come).
    pub(crate) held: bool,
}

impl CohortPlan {
    pub(crate) fn name(&self) -> String {
        format!("{}/cohorts/{}", self.parent, self.id)
    }
}

/// A completion from elsewhere, as the demo imports it.
#[derive(Debug, Clone)]
pub(crate) struct Imported {
    pub(crate) employee: String,
    pub(crate) site: &'static str,
    pub(crate) completion: pb::ImportedCompletion,
}

/// Every cohort of the demo, and the completions from before the system.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) cohorts: Vec<CohortPlan>,
    pub(crate) historic: Vec<Imported>,
}

impl Plan {
    /// People with at least one completion, by site.
    pub(crate) fn trained_by_site(&self) -> BTreeMap<&'static str, i64> {
        let mut trained: BTreeSet<(&'static str, &str)> = BTreeSet::new();
        for c in self.cohorts.iter().filter(|c| c.held) {
            for s in c.seats.iter().filter(|s| s.completes()) {
                trained.insert((s.site, &s.employee));
            }
        }
        // Each imported completion lands, or is kept out for one earned here: either way
        // its person is trained.
        for h in &self.historic {
            trained.insert((h.site, &h.employee));
        }
        let mut by_site = BTreeMap::new();
        for (site, _) in trained {
            *by_site.entry(site).or_default() += 1;
        }
        by_site
    }

    /// The Practitioner cohort starting in `year`-`month`, if there is one.
    pub(crate) fn practitioner(&self, year: i32, month: u32) -> Option<&CohortPlan> {
        self.cohorts
            .iter()
            .find(|c| c.id == format!("prac-{year}-{month:02}"))
    }
}

/// The `n`-th `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n as u8)
        .unwrap_or_else(|| day(year, month, 1))
}

/// The first day of the Practitioner cohort of `year`-`month`: its second Thursday.
pub(crate) fn practitioner_start(year: i32, month: u32) -> NaiveDate {
    nth_weekday(year, month, Weekday::Thu, 2)
}

/// QSIR Associates who facilitate (generated names).
fn associates() -> Vec<String> {
    (0..6)
        .map(|i| {
            let (f, s) = person(&mut Rng::of("associate", i));
            format!("{f} {s}")
        })
        .collect()
}

/// Lays out every cohort and who sits on it.
pub(crate) fn plan(staff: &Workforce) -> Plan {
    let associates = associates();
    let mut learners = Learners::new(staff);
    // Practitioner learners are drawn first, then the Fundamentals days' new learners.
    let mut cohorts = practitioner_cohorts(&mut learners, &associates);
    cohorts.extend(fundamentals_cohorts(&mut learners, &associates));
    // Drawn last, so the cohorts' learners are as they were before the history was added.
    let historic = historic(&mut learners);
    Plan { cohorts, historic }
}

/// Trusts the demo's transfers trained at.
const OTHER_TRUSTS: [&str; 3] = [
    "East Suffolk and North Essex NHS Foundation Trust",
    "The Princess Alexandra Hospital NHS Trust",
    "Barking, Havering and Redbridge University Hospitals NHS Trust",
];

/// What came before the system, at each site: two QSIR Fundamentals days of the paper
/// register (June 2019, February 2020), each of six who later trained here and two who did
/// not; two staff who did QSIR Practitioner at another trust and came by Inter Authority
/// Transfer; and one whose QSIR Fundamentals ESR holds from a previous post.
fn historic(learners: &mut Learners<'_>) -> Vec<Imported> {
    let mut out = Vec::new();
    let mut add = |(_, employee, site): (String, String, &'static str),
                   course: &str,
                   on: NaiveDate,
                   source: pb::CompletionSource,
                   reference: String,
                   organisation: &str| {
        out.push(Imported {
            completion: pb::ImportedCompletion {
                employee_number: employee.clone(),
                course: course.into(),
                completion_date: Some(qi_platform::convert::date(on)),
                source: source as i32,
                source_reference: reference,
                previous_organisation: organisation.into(),
                expiry_date: None,
            },
            employee,
            site,
        });
    };
    for (s, (site, _)) in SITES.iter().enumerate() {
        for (d, on) in [day(2019, 6, 11), day(2020, 2, 11)].into_iter().enumerate() {
            for j in 0..8 {
                let learner = if j < 6 {
                    // Practitioner learners of the site, who took the day on paper first.
                    learners.at(site, 5 + d * 40 + j * 3)
                } else {
                    learners.take(site)
                };
                let row = 2 + d * 8 + j;
                add(
                    learner,
                    FUNDAMENTALS,
                    on,
                    pb::CompletionSource::HistoricRegister,
                    format!(
                        "QSIR register {}, {site} day, row {row}",
                        on.format("%B %Y")
                    ),
                    "",
                );
            }
        }
        for t in 0..2usize {
            let learner = learners.take(site);
            let on = day(2018 + t as i32, 3 + 4 * t as u32, 20 + s as u32);
            add(
                learner,
                PRACTITIONER,
                on,
                pb::CompletionSource::InterAuthorityTransfer,
                format!("IAT {}/{:04}", on.format("%Y"), 311 + s * 7 + t * 2),
                OTHER_TRUSTS[(s + t) % 3],
            );
        }
        let learner = learners.take(site);
        add(
            learner,
            FUNDAMENTALS,
            day(2020, 11, 3 + s as u32),
            pb::CompletionSource::EsrCompetence,
            "ESR competence 37210001, from a previous post".into(),
            "",
        );
    }
    out
}

/// Each site's pool of staff, drawn from in order: (name, employee number, site).
struct Learners<'a> {
    staff: &'a Workforce,
    /// Where each site's pool has been drawn to.
    drawn: BTreeMap<&'static str, usize>,
}

impl<'a> Learners<'a> {
    fn new(staff: &'a Workforce) -> Self {
        Learners {
            staff,
            drawn: SITES.iter().map(|(s, _)| (*s, 0)).collect(),
        }
    }

    /// The next learner of `site` not yet drawn.
    fn take(&mut self, site: &'static str) -> (String, String, &'static str) {
        let k = self.drawn[site];
        self.drawn.insert(site, k + 1);
        self.at(site, k)
    }

    /// The `k`-th learner of `site`, drawn or not.
    fn at(&self, site: &str, k: usize) -> (String, String, &'static str) {
        let p = self.staff.at(site, k);
        (p.name(), p.employee.clone(), p.site)
    }
}

/// The Practitioner cohorts: four a year from 2021, and next year's first (open, not held).
fn practitioner_cohorts(learners: &mut Learners<'_>, associates: &[String]) -> Vec<CohortPlan> {
    let mut cohorts = Vec::new();
    let mut index = 0u64;
    for year in 2021..=2027 {
        for month in [1, 4, 7, 10] {
            let held = year < 2027;
            if !held && month > 1 {
                break;
            }
            let seats_n = if held {
                PRACTITIONER_SEATS
            } else {
                NEXT_COHORT_SEATS
            };
            let mut r = Rng::of("practitioner", index);
            let mut incomplete = BTreeSet::new();
            while incomplete.len() < PRACTITIONER_INCOMPLETE {
                incomplete.insert(r.below(seats_n as u64) as usize);
            }
            let seats = (0..seats_n)
                .map(|j| {
                    let (staff, employee, site) = learners.take(SITES[(index as usize + j) % 3].0);
                    let mut marks = vec![pb::AttendanceStatus::Attended; 5];
                    if incomplete.contains(&j) {
                        marks[1 + r.below(2) as usize] = pb::AttendanceStatus::Absent;
                        marks[3 + r.below(2) as usize] = pb::AttendanceStatus::Absent;
                    } else if r.chance(0.1) {
                        marks[r.below(5) as usize] = pb::AttendanceStatus::CaughtUp;
                    }
                    Seat {
                        staff,
                        employee,
                        site,
                        marks,
                    }
                })
                .collect();
            let start = practitioner_start(year, month);
            cohorts.push(CohortPlan {
                parent: "trust".into(),
                id: format!("prac-{year}-{month:02}"),
                course: PRACTITIONER,
                title: format!("QSIR Practitioner, {}", start.format("%B %Y")),
                start,
                sessions: 5,
                capacity: 24,
                facilitators: vec![
                    associates[index as usize % 6].clone(),
                    associates[(index as usize + 3) % 6].clone(),
                ],
                seats,
                held,
            });
            index += 1;
        }
    }
    cohorts
}

/// The Fundamentals days at each site, twice a year from 2021: new learners from the site's
/// pool, and some Practitioner learners of the site catching the one-day course too.
fn fundamentals_cohorts(learners: &mut Learners<'_>, associates: &[String]) -> Vec<CohortPlan> {
    let mut cohorts = Vec::new();
    for year in 2021..=2026 {
        for month in [3, 9] {
            for (s, (site, _)) in SITES.iter().enumerate() {
                let i = ((year - 2021) * 2 + i32::from(month == 9)) as usize;
                let mut r = Rng::of("fundamentals", (i * 3 + s) as u64);
                let absent = r.below(FUNDAMENTALS_SEATS as u64) as usize;
                let seats = (0..FUNDAMENTALS_SEATS)
                    .map(|j| {
                        let (staff, employee, site) = if j < FUNDAMENTALS_RETURNING {
                            learners.at(site, i * FUNDAMENTALS_RETURNING + j)
                        } else {
                            learners.take(site)
                        };
                        let mark = if j == absent {
                            pb::AttendanceStatus::Absent
                        } else {
                            pb::AttendanceStatus::Attended
                        };
                        Seat {
                            staff,
                            employee,
                            site,
                            marks: vec![mark],
                        }
                    })
                    .collect();
                let start = nth_weekday(year, month, Weekday::Tue, 2);
                cohorts.push(CohortPlan {
                    parent: format!("sites/{site}"),
                    id: format!("fund-{year}-{month:02}"),
                    course: FUNDAMENTALS,
                    title: format!("QSIR Fundamentals, {site}, {}", start.format("%B %Y")),
                    start,
                    sessions: 1,
                    capacity: 16,
                    facilitators: vec![associates[(i + s) % 6].clone()],
                    seats,
                    held: true,
                });
            }
        }
    }
    cohorts
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn the_history_is_from_before_2021_and_adds_a_few_people_only_it_trained() {
        let staff = crate::demo::plan::people::workforce(3_000);
        let p = plan(&staff);
        assert_eq!(p.historic.len(), 3 * (16 + 2 + 1));
        assert!(
            p.historic
                .iter()
                .all(|h| { h.completion.completion_date.is_some_and(|d| d.year < 2021) })
        );
        let without = Plan {
            historic: Vec::new(),
            ..p.clone()
        };
        let (with, before): (i64, i64) = (
            p.trained_by_site().values().sum(),
            without.trained_by_site().values().sum(),
        );
        // The people drawn for the history alone, and now and then a Practitioner learner
        // who never completed here but has the paper register's day.
        let only_history = 3 * (2 * 2 + 2 + 1);
        assert!(
            (only_history..only_history + 6).contains(&(with - before)),
            "{with} - {before}"
        );
    }

    #[test]
    fn nth_weekday_finds_the_second_thursday() {
        let d = nth_weekday(2021, 1, Weekday::Thu, 2);
        assert_eq!((d.year(), d.month(), d.day()), (2021, 1, 14));
    }
}
