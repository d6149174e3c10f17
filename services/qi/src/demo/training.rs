//! QSIR training since 2021: the five-week QSIR Practitioner course four times a year as
//! trust-wide (cross-site) cohorts, one-day QSIR Fundamentals cohorts at each site twice a
//! year, and next year's first Practitioner cohort open for enrolment. Each past cohort is
//! opened, filled, run and completed, with a register for every session: completions
//! follow from attendance, as they do for a real cohort.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, Weekday};
use qi_platform::convert::date;
use qi_proto::training as pb;

use super::people::Workforce;
use super::rng::{Rng, person};
use super::{Api, Tally, created, day, each, failed, rpc};
use crate::seed::SITES;

const PRACTITIONER: &str = "trust/courses/qsir-prac";
const FUNDAMENTALS: &str = "trust/courses/qsir-fund";

/// Learners on each Practitioner cohort, and how many of them miss two sessions.
const PRACTITIONER_SEATS: usize = 22;
const PRACTITIONER_INCOMPLETE: usize = 2;
/// Learners on each Fundamentals day, how many are Practitioner learners of the site, and
/// how many do not come.
const FUNDAMENTALS_SEATS: usize = 10;
const FUNDAMENTALS_RETURNING: usize = 3;
/// Learners already enrolled on next year's first cohort.
const NEXT_COHORT_SEATS: usize = 14;

/// A learner's place and register marks (one per session).
#[derive(Debug, Clone)]
pub(crate) struct Seat {
    pub(crate) staff: String,
    pub(crate) employee: String,
    pub(crate) site: &'static str,
    marks: Vec<pb::AttendanceStatus>,
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
    parent: String,
    id: String,
    course: &'static str,
    title: String,
    start: NaiveDate,
    sessions: u32,
    capacity: i32,
    facilitators: Vec<String>,
    pub(crate) seats: Vec<Seat>,
    /// Run and completed (else only opened and filled: a cohort still to come).
    held: bool,
}

impl CohortPlan {
    pub(crate) fn name(&self) -> String {
        format!("{}/cohorts/{}", self.parent, self.id)
    }
}

/// Every cohort of the demo.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) cohorts: Vec<CohortPlan>,
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
    // Where each site's pool has been drawn to: Practitioner learners come first.
    let mut drawn: BTreeMap<&'static str, usize> = SITES.iter().map(|(s, _)| (*s, 0)).collect();
    let mut take = |site: &'static str| {
        let k = drawn[site];
        drawn.insert(site, k + 1);
        let p = staff.at(site, k);
        (p.name(), p.employee.clone(), p.site)
    };
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
                    let (staff, employee, site) = take(SITES[(index as usize + j) % 3].0);
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
    // Fundamentals: new learners from each site's pool, and some Practitioner learners
    // of the site catching the one-day course too.
    for year in 2021..=2026 {
        for month in [3, 9] {
            for (s, (site, _)) in SITES.iter().enumerate() {
                let i = ((year - 2021) * 2 + i32::from(month == 9)) as usize;
                let mut r = Rng::of("fundamentals", (i * 3 + s) as u64);
                let absent = r.below(FUNDAMENTALS_SEATS as u64) as usize;
                let seats = (0..FUNDAMENTALS_SEATS)
                    .map(|j| {
                        let (staff, employee, site) = if j < FUNDAMENTALS_RETURNING {
                            let p = staff.at(site, i * FUNDAMENTALS_RETURNING + j);
                            (p.name(), p.employee.clone(), p.site)
                        } else {
                            take(site)
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
    Plan { cohorts }
}

/// Loads every cohort.
pub(crate) async fn load(api: &Api, staff: &Workforce) -> anyhow::Result<Tally> {
    let plan = plan(staff);
    let api = api.clone();
    each(plan.cohorts, move |c| {
        let api = api.clone();
        async move { cohort(&api, c).await }
    })
    .await
}

/// Creates one cohort (or finds it) and takes whatever steps of its life are still missing.
async fn cohort(api: &Api, c: CohortPlan) -> anyhow::Result<Tally> {
    let name = c.name();
    let mut tally = Tally::default();
    let made = created(
        rpc!(
            api.training,
            create_cohort,
            pb::CreateCohortRequest {
                parent: c.parent.clone(),
                cohort_id: c.id.clone(),
                cohort: Some(pb::Cohort {
                    course: c.course.into(),
                    display_name: c.title.clone(),
                    start_date: Some(date(c.start)),
                    capacity: c.capacity,
                    facilitators: c.facilitators.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            }
        ),
        &name,
    )?;
    let fresh = made.is_some();
    let mut state = match made {
        Some(r) => {
            tally.created += 1;
            r.cohort.map(|c| c.state).unwrap_or_default()
        }
        None => {
            tally.existing += 1;
            rpc!(
                api.training,
                get_cohort,
                pb::GetCohortRequest { name: name.clone() }
            )
            .map_err(|s| failed(s, &name))?
            .cohort
            .map(|c| c.state)
            .unwrap_or_default()
        }
    };
    let step = |t: &mut Tally| {
        if !fresh {
            t.advanced += 1;
        }
    };
    if state == pb::CohortState::Planned as i32 {
        rpc!(
            api.training,
            open_cohort,
            pb::OpenCohortRequest {
                name: name.clone(),
                etag: String::new()
            }
        )
        .map_err(|s| failed(s, &format!("opening {name}")))?;
        step(&mut tally);
        state = pb::CohortState::Open as i32;
    }
    if state == pb::CohortState::Open as i32 {
        for seat in &c.seats {
            let what = format!("enrolling {} on {name}", seat.staff);
            let made = created(
                rpc!(
                    api.training,
                    create_enrolment,
                    pb::CreateEnrolmentRequest {
                        parent: name.clone(),
                        enrolment: Some(pb::Enrolment {
                            staff: seat.staff.clone(),
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    }
                ),
                &what,
            )?;
            if made.is_some() {
                tally.created += 1;
            }
        }
        if !c.held {
            return Ok(tally);
        }
        rpc!(
            api.training,
            start_cohort,
            pb::StartCohortRequest {
                name: name.clone(),
                etag: String::new()
            }
        )
        .map_err(|s| failed(s, &format!("starting {name}")))?;
        step(&mut tally);
        state = pb::CohortState::Running as i32;
    }
    if state == pb::CohortState::Running as i32 {
        for n in 1..=c.sessions {
            let session = format!("{name}/sessions/{n}");
            let records = c
                .seats
                .iter()
                .map(|s| pb::AttendanceRecord {
                    staff: s.staff.clone(),
                    status: s.marks[(n - 1) as usize] as i32,
                })
                .collect();
            rpc!(
                api.training,
                record_attendance,
                pb::RecordAttendanceRequest {
                    session: session.clone(),
                    records,
                }
            )
            .map_err(|s| failed(s, &format!("taking the register of {session}")))?;
        }
        rpc!(
            api.training,
            complete_cohort,
            pb::CompleteCohortRequest {
                name: name.clone(),
                etag: String::new()
            }
        )
        .map_err(|s| failed(s, &format!("completing {name}")))?;
        step(&mut tally);
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn nth_weekday_finds_the_second_thursday() {
        let d = nth_weekday(2021, 1, Weekday::Thu, 2);
        assert_eq!((d.year(), d.month(), d.day()), (2021, 1, 14));
    }
}
