//! GetCohortImpact: what a cohort's learners went on to do.
//!
//! - **Learners** are the cohort's completers now at one of the caller's sites (as a
//!   trust-wide cohort's roster shows them to a one-site caller).
//! - **Their projects** are those the caller may read that they lead, started on or after
//!   the cohort's first day (or not started yet), or that they joined (the membership's
//!   creation) within 12 months after completing.
//! - **Active at 6 and 12 months**: of the completers whose mark has passed, those on a
//!   project that had started and not ended at the mark, on its team by then (a lead from
//!   the project's start: a team recorded after the fact still says who led it).
//! - **Outcome measures** are read as the caller would chart them ([`crate::readings`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Months, NaiveDate, Utc};
use qi_platform::convert::{date, required_date, timestamp};
use qi_platform::names::{Owner, OwnerAccess as _, parse_accessible, parse_name};
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::insights as pb;
use qi_proto::projects as ppb;
use sqlx::PgConnection;

use crate::InsightsApi;
use crate::projection::site_of;
use crate::readings::{Part, Reading, Series};

/// The most cohorts one call covers.
const MAX_COHORTS: i64 = 50;

/// Which cohorts a request asks about.
enum Which {
    One(String),
    Range {
        course: String,
        from: NaiveDate,
        to: NaiveDate,
    },
}

fn which(ctx: &AccessContext, req: &pb::GetCohortImpactRequest) -> Result<Which, Error> {
    let pb::GetCohortImpactRequest {
        cohort,
        course,
        start_date_from,
        start_date_to,
    } = req;
    match (cohort.is_empty(), course.is_empty()) {
        (false, false) => Err(Error::invalid(
            "course",
            "give a cohort, or a course with a range of start dates, not both",
        )),
        (true, true) => Err(Error::invalid(
            "cohort",
            "is required (or `course` with `start_date_from` and `start_date_to`)",
        )),
        (false, true) => {
            // Authorization before existence: another site's cohort is refused either way.
            parse_accessible(ctx, "cohort", cohort, "cohorts", false)?;
            Ok(Which::One(cohort.clone()))
        }
        (true, false) => {
            let mut v = Violations::new();
            if let Some((owner, _)) = v.check(parse_name("course", course, "courses").map(Some))
                && owner != Owner::Trust
            {
                v.add("course", "courses are trust-wide: `trust/courses/{course}`");
            }
            let from = v.check(required_date("start_date_from", start_date_from.as_ref()));
            let to = v.check(required_date("start_date_to", start_date_to.as_ref()));
            if from > to {
                v.add("start_date_to", "is before start_date_from");
            }
            v.finish()?;
            Ok(Which::Range {
                course: course.clone(),
                from,
                to,
            })
        }
    }
}

/// A cohort as the answer needs it.
struct Cohort {
    name: String,
    display_name: String,
    course: String,
    start_date: Option<NaiveDate>,
}

async fn cohorts(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    which: &Which,
) -> Result<Vec<Cohort>, Error> {
    let sites = ctx.sites.sql_filter();
    let rows = match which {
        Which::One(name) => {
            let rows = sqlx::query_as!(
                Cohort,
                "SELECT name, display_name, course, start_date FROM cohort WHERE name = $1",
                name,
            )
            .fetch_all(&mut *conn)
            .await?;
            if rows.is_empty() {
                return Err(Error::not_found(name));
            }
            rows
        }
        Which::Range { course, from, to } => {
            let rows = sqlx::query_as!(
                Cohort,
                "SELECT name, display_name, course, start_date FROM cohort
                 WHERE course = $1 AND start_date BETWEEN $2 AND $3
                   AND (site = '' OR $4::text[] IS NULL OR site = ANY($4))
                 ORDER BY start_date, name LIMIT $5",
                course,
                from,
                to,
                sites.as_deref(),
                MAX_COHORTS + 1,
            )
            .fetch_all(&mut *conn)
            .await?;
            if rows.len() as i64 > MAX_COHORTS {
                return Err(Error::invalid(
                    "start_date_to",
                    format!("more than {MAX_COHORTS} cohorts start in the range: narrow it"),
                ));
            }
            rows
        }
    };
    Ok(rows)
}

/// A completer now at one of the caller's sites.
struct Learner {
    completion: String,
    staff: String,
    display_name: String,
    site: String,
    cohort: String,
    completion_date: NaiveDate,
}

/// A project a person is on, and how.
#[derive(Clone)]
struct OnTeam {
    staff: String,
    project: String,
    lead: bool,
    joined: DateTime<Utc>,
}

/// A project as the answer needs it.
struct Project {
    name: String,
    title: String,
    state: i32,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    progress_score: Option<f64>,
    programme: String,
}

impl Project {
    /// Whether it ran on `day`: started by then, not ended before.
    fn active_on(&self, day: NaiveDate) -> bool {
        self.start_date.is_some_and(|s| s <= day) && self.end_date.is_none_or(|e| e >= day)
    }
}

/// A project's outcome measures, read.
type Outcomes = BTreeMap<String, Vec<pb::OutcomeReading>>;

/// Answers GetCohortImpact.
pub(crate) async fn get(
    api: &InsightsApi,
    ctx: AccessContext,
    req: pb::GetCohortImpactRequest,
) -> Result<pb::GetCohortImpactResponse, Error> {
    let which = which(&ctx, &req)?;
    // One snapshot of the read model for the whole answer.
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let cohorts = cohorts(&mut tx, &ctx, &which).await?;
    let sites = ctx.sites.sql_filter();
    let cohort_names: Vec<String> = cohorts.iter().map(|c| c.name.clone()).collect();
    let learners = sqlx::query_as!(
        Learner,
        r#"SELECT c.name AS completion, c.staff,
                  coalesce(nullif(c.display_name, ''), s.display_name, '') AS "display_name!",
                  coalesce(s.site, '') AS "site!", c.cohort, c.completion_date
           FROM completion c LEFT JOIN staff s ON s.name = c.staff
           WHERE c.cohort = ANY($1) AND ($2::text[] IS NULL OR s.site = ANY($2))
           ORDER BY c.cohort, c.staff, c.name"#,
        &cohort_names,
        sites.as_deref(),
    )
    .fetch_all(&mut *tx)
    .await?;

    // Every project of the answer: the learners' and the programmes' that the caller reads.
    let staff: Vec<String> = learners.iter().map(|l| l.staff.clone()).collect();
    let on_teams = sqlx::query_as!(
        OnTeam,
        r#"SELECT t.staff, t.project, t.role = $3 AS "lead!", t.create_time AS joined
           FROM team_member t JOIN project p ON p.name = t.project
           WHERE t.staff = ANY($1) AND ($2::text[] IS NULL OR p.sites && $2)"#,
        &staff,
        sites.as_deref(),
        ppb::TeamRole::Lead as i32,
    )
    .fetch_all(&mut *tx)
    .await?;
    let programmes: Vec<(String, String, String)> = sqlx::query!(
        "SELECT name, display_name, cohort FROM programme WHERE cohort = ANY($1) ORDER BY name",
        &cohort_names,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.name, r.display_name, r.cohort))
    .filter(|(name, _, _)| readable(&ctx, name))
    .collect();
    let programme_names: Vec<String> = programmes.iter().map(|p| p.0.clone()).collect();
    let learner_projects: Vec<String> = on_teams.iter().map(|t| t.project.clone()).collect();
    let projects: HashMap<String, Project> = sqlx::query_as!(
        Project,
        "SELECT name, title, state, start_date, end_date, progress_score, programme
         FROM project
         WHERE (name = ANY($1) OR programme = ANY($2))
           AND ($3::text[] IS NULL OR sites && $3)",
        &learner_projects,
        &programme_names,
        sites.as_deref(),
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|p| (p.name.clone(), p))
    .collect();
    let outcomes = outcomes(&mut tx, &ctx, &projects).await?;
    tx.commit().await?;

    let mut by_cohort: BTreeMap<&str, Vec<&Learner>> = BTreeMap::new();
    for l in &learners {
        by_cohort.entry(&l.cohort).or_default().push(l);
    }
    let today = qi_platform::calendar::today();
    let mut answer = pb::GetCohortImpactResponse::default();
    let mut involved: HashMap<&str, Vec<(&Learner, Vec<&OnTeam>)>> = HashMap::new();
    for cohort in &cohorts {
        let learners = by_cohort.remove(cohort.name.as_str()).unwrap_or_default();
        let mut rows = Vec::new();
        let mut theirs = Vec::new();
        for l in learners {
            let on: Vec<&OnTeam> = on_teams
                .iter()
                .filter(|t| t.staff == l.staff && projects.contains_key(&t.project))
                .filter(|t| counts(t, l, cohort, &projects))
                .collect();
            rows.push(learner(l, &on, &projects, &outcomes));
            theirs.push((l, on));
        }
        let totals = totals(&theirs, None, &projects, &outcomes, today);
        answer.cohorts.push(pb::CohortImpact {
            cohort: cohort.name.clone(),
            display_name: cohort.display_name.clone(),
            course: cohort.course.clone(),
            start_date: cohort.start_date.map(date),
            learners: rows,
            totals: Some(totals),
        });
        involved.insert(&cohort.name, theirs);
    }
    for (name, display_name, cohort) in programmes {
        let mut names: Vec<&str> = projects
            .values()
            .filter(|p| p.programme == name)
            .map(|p| p.name.as_str())
            .collect();
        names.sort_unstable();
        let theirs = involved.get(cohort.as_str()).map_or(&[][..], Vec::as_slice);
        let only: BTreeSet<&str> = names.iter().copied().collect();
        let totals = totals(theirs, Some(&only), &projects, &outcomes, today);
        answer.programmes.push(pb::ProgrammeImpact {
            programme: name.clone(),
            display_name,
            cohort,
            projects: names.into_iter().map(str::to_owned).collect(),
            totals: Some(totals),
        });
    }
    Ok(answer)
}

/// Whether a name rooted at a site (or the trust) is one the caller reads.
fn readable(ctx: &AccessContext, name: &str) -> bool {
    match site_of(name) {
        "" => true,
        code => qi_platform::SiteCode::parse(code)
            .map(Owner::Site)
            .is_ok_and(|o| o.check_read(ctx).is_ok()),
    }
}

/// Whether a team place is one of the learner's "projects after training".
fn counts(t: &OnTeam, l: &Learner, cohort: &Cohort, projects: &HashMap<String, Project>) -> bool {
    let Some(p) = projects.get(&t.project) else {
        return false;
    };
    if t.lead {
        // Led from the course on (QSIR practitioners bring a project to it), or not begun.
        return match (p.start_date, cohort.start_date) {
            (Some(start), Some(first_day)) => start >= first_day,
            _ => true,
        };
    }
    let joined = qi_platform::calendar::london_date(t.joined);
    joined >= l.completion_date
        && l.completion_date
            .checked_add_months(Months::new(12))
            .is_some_and(|end| joined <= end)
}

fn learner(
    l: &Learner,
    on: &[&OnTeam],
    projects: &HashMap<String, Project>,
    outcomes: &Outcomes,
) -> pb::LearnerImpact {
    let mut rows: Vec<pb::ProjectInvolvement> = on
        .iter()
        .filter_map(|t| {
            let p = projects.get(&t.project)?;
            Some(pb::ProjectInvolvement {
                project: p.name.clone(),
                title: p.title.clone(),
                lead: t.lead,
                join_time: Some(timestamp(t.joined)),
                state: p.state,
                start_date: p.start_date.map(date),
                progress_score: p.progress_score,
                outcomes: outcomes.get(&p.name).cloned().unwrap_or_default(),
            })
        })
        .collect();
    rows.sort_by(|a, b| a.project.cmp(&b.project));
    pb::LearnerImpact {
        staff: l.staff.clone(),
        display_name: l.display_name.clone(),
        site: l.site.clone(),
        completion: l.completion.clone(),
        completion_date: Some(date(l.completion_date)),
        projects: rows,
    }
}

/// The figures over learners and their projects (`only`: these projects alone).
fn totals(
    learners: &[(&Learner, Vec<&OnTeam>)],
    only: Option<&BTreeSet<&str>>,
    projects: &HashMap<String, Project>,
    outcomes: &Outcomes,
    today: NaiveDate,
) -> pb::ImpactTotals {
    let kept = |name: &str| only.is_none_or(|o| o.contains(name));
    let mut t = pb::ImpactTotals {
        completers: learners.len() as i32,
        ..Default::default()
    };
    for (l, on) in learners {
        for (months, past, active) in [
            (
                6,
                &mut t.completers_past_6_months,
                &mut t.active_at_6_months,
            ),
            (
                12,
                &mut t.completers_past_12_months,
                &mut t.active_at_12_months,
            ),
        ] {
            let Some(mark) = l.completion_date.checked_add_months(Months::new(months)) else {
                continue;
            };
            if mark > today {
                continue;
            }
            *past += 1;
            let on_one = on.iter().any(|team| {
                kept(&team.project)
                    && projects.get(&team.project).is_some_and(|p| {
                        p.active_on(mark)
                            && (team.lead
                                || qi_platform::calendar::london_date(team.joined) <= mark)
                    })
            });
            *active += i32::from(on_one);
        }
    }
    let share = |n: i32, of: i32| {
        if of == 0 {
            0.0
        } else {
            f64::from(n) / f64::from(of)
        }
    };
    t.share_active_at_6_months = share(t.active_at_6_months, t.completers_past_6_months);
    t.share_active_at_12_months = share(t.active_at_12_months, t.completers_past_12_months);
    // Each project once: the programme's own, or the learners'.
    let counted: BTreeSet<&str> = match only {
        Some(o) => o.clone(),
        None => learners
            .iter()
            .flat_map(|(_, on)| on.iter().map(|t| t.project.as_str()))
            .collect(),
    };
    let mut by_state: BTreeMap<i32, i32> = BTreeMap::new();
    for name in &counted {
        let Some(p) = projects.get(*name) else {
            continue;
        };
        *by_state.entry(p.state).or_default() += 1;
        for o in outcomes.get(*name).into_iter().flatten() {
            match pb::SpcReading::try_from(o.reading) {
                Ok(pb::SpcReading::Improvement) => t.outcomes_improving += 1,
                Ok(pb::SpcReading::Concern) => t.outcomes_of_concern += 1,
                _ => {}
            }
            t.outcomes_shifted_after_start += i32::from(o.shift_after_start);
        }
    }
    t.projects_by_state = by_state
        .into_iter()
        .map(|(state, count)| pb::StateCount { state, count })
        .collect();
    t
}

/// Each project's outcome measures the caller may read, charted as the caller sees them.
async fn outcomes(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    projects: &HashMap<String, Project>,
) -> Result<Outcomes, Error> {
    let names: Vec<String> = projects.keys().cloned().collect();
    let measures: Vec<(String, String)> = sqlx::query!(
        "SELECT DISTINCT project, metric FROM measure
         WHERE project = ANY($1) AND kind = $2 ORDER BY project, metric",
        &names,
        ppb::MeasureKind::Outcome as i32,
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (r.project, r.metric))
    .filter(|(_, metric)| readable(ctx, metric))
    .collect();
    let metric_names: Vec<String> = measures
        .iter()
        .map(|(_, m)| m.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let metrics = crate::readings::metrics(conn, &metric_names).await?;
    let sites = ctx.sites.sql_filter();
    let series = Series::read(conn, &metric_names, sites.as_deref(), false).await?;
    let readings: HashMap<&str, Reading> = metrics
        .values()
        .map(|m| (m.name.as_str(), series.reading(m, Part::Seen)))
        .collect();
    let mut out = Outcomes::new();
    for (project, metric) in measures {
        let (Some(m), Some(reading)) = (metrics.get(&metric), readings.get(metric.as_str())) else {
            continue;
        };
        let start = projects.get(&project).and_then(|p| p.start_date);
        out.entry(project).or_default().push(pb::OutcomeReading {
            metric: metric.clone(),
            display_name: m.display_name.clone(),
            reading: reading.reading as i32,
            shift_after_start: start.is_some_and(|s| reading.shifted_since(s)),
        });
    }
    Ok(out)
}
