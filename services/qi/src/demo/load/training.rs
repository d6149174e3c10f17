//! Loads every cohort: created (or found), then taken through whatever steps of its life
//! are still missing — opened, filled, run with a register for every session, completed.

use qi_platform::convert::date;
use qi_proto::training as pb;

use super::client::{Api, created, each, failed, made_or_found, rpc};
use crate::demo::Tally;
use crate::demo::data::training::COMPETENCES;
use crate::demo::plan::people::Workforce;
use crate::demo::plan::training::{CohortPlan, Imported, plan};

/// Names the courses' ESR competences, then loads every cohort, then the completions from
/// before the system (after the cohorts, so one earned here is there to keep them out).
pub(crate) async fn load(api: &Api, staff: &Workforce) -> anyhow::Result<Tally> {
    let mut tally = competences(api).await?;
    let plan = plan(staff);
    let cohorts_api = api.clone();
    tally += each(plan.cohorts, move |c| {
        let api = cohorts_api.clone();
        async move { cohort(&api, c).await }
    })
    .await?;
    tally += historic(api, plan.historic).await?;
    Ok(tally)
}

/// Imports the completions from before the system in one call, as `qi hr completions
/// import` sends a file: a second run finds them all there (keyed by person, course and
/// date).
async fn historic(api: &Api, rows: Vec<Imported>) -> anyhow::Result<Tally> {
    let req = pb::ImportCompletionsRequest {
        parent: "sites/-".into(),
        completions: rows.into_iter().map(|h| h.completion).collect(),
        request_id: String::new(),
    };
    let resp = rpc!(api.training, import_completions, req)
        .map_err(|s| failed(s, "importing the completions from before the system"))?;
    anyhow::ensure!(
        resp.rejected.is_empty(),
        "the demo's historic completions were refused: {:?}",
        resp.rejected
    );
    Ok(Tally {
        created: u64::try_from(resp.inserted).unwrap_or(0),
        existing: u64::try_from(resp.unchanged + resp.updated + resp.kept_earned_here).unwrap_or(0),
        advanced: 0,
    })
}

/// Names each course's ESR competence, unless it already does: the courses come with the
/// migrations, so setting it is a step on a record found, and a second run changes nothing.
async fn competences(api: &Api) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for (course, id, name) in COMPETENCES {
        let got = rpc!(
            api.training,
            get_course,
            pb::GetCourseRequest {
                name: course.into()
            }
        )
        .map_err(|s| failed(s, course))?;
        let current = got.course.unwrap_or_default();
        if (
            current.esr_competence_id.as_str(),
            current.esr_competence_name.as_str(),
        ) == (id, name)
        {
            tally.existing += 1;
            continue;
        }
        rpc!(
            api.training,
            update_course,
            pb::UpdateCourseRequest {
                course: Some(pb::Course {
                    name: course.into(),
                    esr_competence_id: id.into(),
                    esr_competence_name: name.into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["esr_competence_id".into(), "esr_competence_name".into()],
                }),
            }
        )
        .map_err(|s| failed(s, &format!("naming {course}'s ESR competence")))?;
        tally.step(false);
    }
    Ok(tally)
}

/// Creates one cohort (or finds it) and takes whatever steps of its life are still missing.
async fn cohort(api: &Api, c: CohortPlan) -> anyhow::Result<Tally> {
    let name = c.name();
    let mut tally = Tally::default();
    let (mut state, fresh) = create(api, &c, &mut tally).await?;
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
        tally.step(fresh);
        state = pb::CohortState::Open as i32;
    }
    if state == pb::CohortState::Open as i32 {
        tally.created += enrol(api, &c).await?;
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
        tally.step(fresh);
        state = pb::CohortState::Running as i32;
    }
    if state == pb::CohortState::Running as i32 {
        registers(api, &c).await?;
        rpc!(
            api.training,
            complete_cohort,
            pb::CompleteCohortRequest {
                name: name.clone(),
                etag: String::new()
            }
        )
        .map_err(|s| failed(s, &format!("completing {name}")))?;
        tally.step(fresh);
    }
    Ok(tally)
}

/// Creates the cohort, or finds it: its state and whether it is new.
async fn create(api: &Api, c: &CohortPlan, tally: &mut Tally) -> anyhow::Result<(i32, bool)> {
    let name = c.name();
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
    let found = async {
        let got = rpc!(
            api.training,
            get_cohort,
            pb::GetCohortRequest { name: name.clone() }
        )
        .map_err(|s| failed(s, &name))?;
        Ok(got.cohort)
    };
    let (cohort, fresh) = made_or_found(made.map(|r| r.cohort), found, tally).await?;
    Ok((cohort.map(|c| c.state).unwrap_or_default(), fresh))
}

/// Enrols every learner not enrolled yet; returns how many it enrolled.
async fn enrol(api: &Api, c: &CohortPlan) -> anyhow::Result<u64> {
    let name = c.name();
    let mut enrolled = 0;
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
        enrolled += u64::from(made.is_some());
    }
    Ok(enrolled)
}

/// Takes the register of every session.
async fn registers(api: &Api, c: &CohortPlan) -> anyhow::Result<()> {
    let name = c.name();
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
    Ok(())
}
