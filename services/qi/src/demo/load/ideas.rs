//! Loads the ideas and the projects: each idea submitted (or found) and triaged as the plan
//! has it, an accepted idea's project and a wrapped programme's taken on its journey, and
//! the merged ideas merged into a project of their site.

use anyhow::Context as _;
use qi_platform::convert::date;
use qi_proto::projects as pb;

use super::client::{Api, created, failed, made_or_found, rpc};
use super::journey::journey;
use crate::demo::Tally;
use crate::demo::data::projects::DECLINE_REASONS;
use crate::demo::plan::people::Workforce;
use crate::demo::plan::portfolio::{IdeaPlan, ProjectPlan, Triage};
use crate::demo::plan::training::Plan as TrainingPlan;

/// Submits an idea (or finds it), triages it, and takes the project it became, if it
/// became one, on its journey.
pub(crate) async fn idea(
    api: &Api,
    staff: &Workforce,
    training: &TrainingPlan,
    i: IdeaPlan,
    project: Option<ProjectPlan>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let (state, fresh, reviewer) = submit(api, staff, &i, &mut tally).await?;
    let state = triage(api, &i, state, fresh, &mut tally).await?;
    if i.triage == Triage::UnderReview && reviewer.is_empty() {
        assign_reviewer(api, staff, &i, fresh, &mut tally).await?;
    }
    let Some(p) = project else {
        return Ok(tally);
    };
    let name = i.name();
    // Accepting the idea makes its project; once accepted, the project is there.
    let accepted = if state == pb::IdeaState::UnderReview as i32 {
        let accepted = rpc!(
            api.projects,
            accept_idea,
            pb::AcceptIdeaRequest {
                name: name.clone(),
                project_id: p.id.clone(),
                etag: String::new(),
                request_id: String::new(),
                effective_date: i.decided.map(date),
            }
        )
        .map_err(|s| failed(s, &format!("accepting {name}")))?;
        Some(accepted.project)
    } else {
        None
    };
    let (current, _) = made_or_found(accepted, get_project(api, &p), &mut tally).await?;
    let current = current.with_context(|| format!("{name} came back without a project"))?;
    tally += journey(api, staff, training, &p, current, fresh).await?;
    Ok(tally)
}

/// Creates an idea, or finds it: its state, whether it is new, and its reviewer.
async fn submit(
    api: &Api,
    staff: &Workforce,
    i: &IdeaPlan,
    tally: &mut Tally,
) -> anyhow::Result<(i32, bool, String)> {
    let name = i.name();
    let made = created(
        rpc!(
            api.projects,
            create_idea,
            pb::CreateIdeaRequest {
                parent: format!("sites/{}", i.site),
                idea_id: format!("idea-{:04}", i.n),
                idea: Some(i.record(staff)),
                request_id: String::new(),
            }
        ),
        &name,
    )?;
    let found = async {
        let got = rpc!(
            api.projects,
            get_idea,
            pb::GetIdeaRequest { name: name.clone() }
        )
        .map_err(|s| failed(s, &name))?;
        Ok(got.idea)
    };
    let (idea, fresh) = made_or_found(made.map(|r| r.idea), found, tally).await?;
    let idea = idea.unwrap_or_default();
    Ok((idea.state, fresh, idea.reviewer))
}

/// Takes a submitted idea to where triage leaves it (a merge waits for its project):
/// declined, or under review (on the way to being accepted). Returns its state.
async fn triage(
    api: &Api,
    i: &IdeaPlan,
    state: i32,
    fresh: bool,
    tally: &mut Tally,
) -> anyhow::Result<i32> {
    if state != pb::IdeaState::Submitted as i32 {
        return Ok(state);
    }
    let name = i.name();
    match i.triage {
        Triage::Submitted | Triage::Merged => Ok(state),
        Triage::Declined => {
            let reason = DECLINE_REASONS[i.n % DECLINE_REASONS.len()];
            rpc!(
                api.projects,
                decline_idea,
                pb::DeclineIdeaRequest {
                    name: name.clone(),
                    reason: reason.into(),
                    etag: String::new(),
                    effective_date: i.decided.map(date),
                }
            )
            .map_err(|s| failed(s, &format!("declining {name}")))?;
            tally.step(fresh);
            Ok(state)
        }
        Triage::UnderReview | Triage::Accepted => {
            rpc!(
                api.projects,
                review_idea,
                pb::ReviewIdeaRequest {
                    name: name.clone(),
                    etag: String::new(),
                    effective_date: i.reviewed.map(date),
                }
            )
            .map_err(|s| failed(s, &format!("reviewing {name}")))?;
            tally.step(fresh);
            Ok(pb::IdeaState::UnderReview as i32)
        }
    }
}

/// Assigns an idea under review to one of five reviewers at its site.
async fn assign_reviewer(
    api: &Api,
    staff: &Workforce,
    i: &IdeaPlan,
    fresh: bool,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let name = i.name();
    let reviewer = staff.at(i.site, 10 + i.n % 5).name();
    rpc!(
        api.projects,
        assign_idea_reviewer,
        pb::AssignIdeaReviewerRequest {
            name: name.clone(),
            reviewer,
            etag: String::new(),
        }
    )
    .map_err(|s| failed(s, &format!("assigning {name} a reviewer")))?;
    tally.step(fresh);
    Ok(())
}

/// Submits a merged idea (or finds it) and merges it into the project `into`.
pub(crate) async fn merged_idea(
    api: &Api,
    staff: &Workforce,
    i: IdeaPlan,
    into: String,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let (state, fresh, _) = submit(api, staff, &i, &mut tally).await?;
    if state == pb::IdeaState::Submitted as i32 || state == pb::IdeaState::UnderReview as i32 {
        let name = i.name();
        rpc!(
            api.projects,
            merge_idea,
            pb::MergeIdeaRequest {
                name: name.clone(),
                into,
                etag: String::new(),
                effective_date: i.decided.map(date),
            }
        )
        .map_err(|s| failed(s, &format!("merging {name}")))?;
        tally.step(fresh);
    }
    Ok(tally)
}

/// Creates a wrapped programme's project (or finds it) and takes it on its journey.
pub(crate) async fn wrapped_project(
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
                project: Some(p.record()),
                request_id: String::new(),
            }
        ),
        &name,
    )?;
    let (current, fresh) =
        made_or_found(made.map(|r| r.project), get_project(api, &p), &mut tally).await?;
    let current = current.with_context(|| format!("{name} came back empty"))?;
    tally += journey(api, staff, training, &p, current, fresh).await?;
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
