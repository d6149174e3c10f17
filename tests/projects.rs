//! Projects requests the tests share: wards, ideas and their triage, projects and their
//! lifecycle, what a project holds (team, PDSA cycles, engagement, progress scores),
//! programmes and the portfolio summary; and the aim and outcome a project is given.

use qi_proto::projects as pb;
use tonic::Status;

use crate::{Caller, date, today, ymd};

/// A whole SMART aim, for length of stay on Cedar Ward.
pub fn aim() -> pb::Aim {
    pb::Aim {
        statement: "Reduce length of stay for frail patients on Cedar Ward".into(),
        measure: "Mean length of stay".into(),
        metric: "sites/BAS/metrics/los-frailty".into(),
        baseline: Some(9.5),
        target: Some(7.0),
        unit: "days".into(),
        target_date: Some(date(ymd(2027, 12, 31))),
    }
}

/// A project titled `title` with [`aim`] and a problem statement, ready to start.
pub fn with_aim(title: &str) -> pb::Project {
    pb::Project {
        title: title.into(),
        aim: Some(aim()),
        problem_statement: "Patients wait a day for discharge letters".into(),
        ..Default::default()
    }
}

/// A whole outcome: a summary, bed days saved (whose unit the service fills) and a benefit
/// of another kind with its own unit.
pub fn outcome() -> pb::Outcome {
    pb::Outcome {
        summary: "Length of stay fell from 9.5 to 7.2 days, sustained for 12 weeks".into(),
        benefits: vec![
            pb::Benefit {
                kind: pb::BenefitKind::BedDaysSaved as i32,
                value: 1_150.0,
                description: "per year, from the SPC shift".into(),
                ..Default::default()
            },
            pb::Benefit {
                kind: pb::BenefitKind::Other as i32,
                value: 12.0,
                unit: "minutes per discharge".into(),
                ..Default::default()
            },
        ],
    }
}

/// Creates ward `id` at `site`, an acute medical ward.
pub async fn create_ward(c: &Caller, site: &str, id: &str) -> Result<pb::Ward, Status> {
    let req = pb::CreateWardRequest {
        parent: format!("sites/{site}"),
        ward_id: id.into(),
        ward: Some(pb::Ward {
            display_name: format!("{id} ward"),
            specialty: "Acute medicine".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let made = c.projects().create_ward(req).await?.into_inner();
    Ok(made.ward.expect("a ward"))
}

/// An idea at `site` on patient flow, from a nurse, with a system id.
pub fn new_idea(site: &str, title: &str) -> pb::CreateIdeaRequest {
    pb::CreateIdeaRequest {
        parent: format!("sites/{site}"),
        idea: Some(pb::Idea {
            title: title.into(),
            submitter: "A. Nurse".into(),
            theme: "Patient flow".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates an idea.
pub async fn create_idea(c: &Caller, req: pb::CreateIdeaRequest) -> Result<pb::Idea, Status> {
    let made = c.projects().create_idea(req).await?.into_inner();
    Ok(made.idea.expect("an idea"))
}

/// Submits [`new_idea`] at `site`.
pub async fn submit_idea(c: &Caller, site: &str, title: &str) -> Result<pb::Idea, Status> {
    create_idea(c, new_idea(site, title)).await
}

/// Takes idea `name` under review.
pub async fn review_idea(c: &Caller, name: &str) -> Result<pb::Idea, Status> {
    let req = pb::ReviewIdeaRequest {
        name: name.into(),
        ..Default::default()
    };
    let idea = c.projects().review_idea(req).await?.into_inner().idea;
    Ok(idea.expect("an idea"))
}

/// Declines idea `name` for `reason`.
pub async fn decline_idea(c: &Caller, name: &str, reason: &str) -> Result<pb::Idea, Status> {
    let req = pb::DeclineIdeaRequest {
        name: name.into(),
        reason: reason.into(),
        ..Default::default()
    };
    let idea = c.projects().decline_idea(req).await?.into_inner().idea;
    Ok(idea.expect("an idea"))
}

/// Accepts idea `name` as a project with a system id; `request_id` may be empty.
pub async fn accept_idea(
    c: &Caller,
    name: &str,
    request_id: &str,
) -> Result<pb::AcceptIdeaResponse, Status> {
    let req = pb::AcceptIdeaRequest {
        name: name.into(),
        request_id: request_id.into(),
        ..Default::default()
    };
    Ok(c.projects().accept_idea(req).await?.into_inner())
}

/// Merges idea `name` into the idea or project `into`.
pub async fn merge_idea(c: &Caller, name: &str, into: &str) -> Result<pb::Idea, Status> {
    let req = pb::MergeIdeaRequest {
        name: name.into(),
        into: into.into(),
        ..Default::default()
    };
    let idea = c.projects().merge_idea(req).await?.into_inner().idea;
    Ok(idea.expect("an idea"))
}

/// Reopens idea `name` for `reason`.
pub async fn reopen_idea(c: &Caller, name: &str, reason: &str) -> Result<pb::Idea, Status> {
    let req = pb::ReopenIdeaRequest {
        name: name.into(),
        reason: reason.into(),
        ..Default::default()
    };
    let idea = c.projects().reopen_idea(req).await?.into_inner().idea;
    Ok(idea.expect("an idea"))
}

/// The history of idea `name`, oldest first (every page).
pub async fn idea_events(c: &Caller, name: &str) -> Result<Vec<pb::IdeaEvent>, Status> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = pb::ListIdeaEventsRequest {
            parent: name.into(),
            page_size: 2,
            page_token,
        };
        let page = c.projects().list_idea_events(req).await?.into_inner();
        events.extend(page.idea_events);
        if page.next_page_token.is_empty() {
            return Ok(events);
        }
        page_token = page.next_page_token;
    }
}

/// The first page of the ideas under `parent`.
pub fn list_ideas(parent: &str) -> pb::ListIdeasRequest {
    pb::ListIdeasRequest {
        parent: parent.into(),
        ..Default::default()
    }
}

/// Creates project `id` led by `site`.
pub async fn create_project(
    c: &Caller,
    site: &str,
    id: &str,
    project: pb::Project,
) -> Result<pb::Project, Status> {
    let req = pb::CreateProjectRequest {
        parent: format!("sites/{site}"),
        project_id: id.into(),
        project: Some(project),
        request_id: String::new(),
    };
    let made = c.projects().create_project(req).await?.into_inner();
    Ok(made.project.expect("a project"))
}

/// Reads project `name`.
pub async fn get_project(c: &Caller, name: &str) -> Result<pb::Project, Status> {
    let req = pb::GetProjectRequest { name: name.into() };
    let project = c.projects().get_project(req).await?.into_inner().project;
    Ok(project.expect("a project"))
}

/// The first page of the projects under `parent`.
pub fn list_projects(parent: &str) -> pb::ListProjectsRequest {
    pb::ListProjectsRequest {
        parent: parent.into(),
        ..Default::default()
    }
}

/// The names of the projects under `parent` (first page), sorted.
pub async fn project_names(c: &Caller, parent: &str) -> Result<Vec<String>, Status> {
    project_names_where(c, parent, "").await
}

/// The names of the projects under `parent` that `filter` chooses (first page), sorted.
pub async fn project_names_where(
    c: &Caller,
    parent: &str,
    filter: &str,
) -> Result<Vec<String>, Status> {
    let req = pb::ListProjectsRequest {
        filter: filter.into(),
        ..list_projects(parent)
    };
    let listed = c.projects().list_projects(req).await?;
    let mut names: Vec<String> = listed
        .into_inner()
        .projects
        .into_iter()
        .map(|p| p.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Updates `project` (named in it) with no mask: the fields it gives.
pub async fn update_project(c: &Caller, project: pb::Project) -> Result<pb::Project, Status> {
    let req = pb::UpdateProjectRequest {
        project: Some(project),
        update_mask: None,
    };
    let project = c.projects().update_project(req).await?.into_inner().project;
    Ok(project.expect("a project"))
}

/// Starts project `name`.
pub async fn start_project(c: &Caller, name: &str) -> Result<pb::Project, Status> {
    let req = pb::StartProjectRequest {
        name: name.into(),
        ..Default::default()
    };
    let project = c.projects().start_project(req).await?.into_inner().project;
    Ok(project.expect("a project"))
}

/// Completes project `name` with `outcome`.
pub async fn complete_project(
    c: &Caller,
    name: &str,
    outcome: pb::Outcome,
) -> Result<pb::Project, Status> {
    let req = pb::CompleteProjectRequest {
        name: name.into(),
        outcome: Some(outcome),
        ..Default::default()
    };
    let project = c
        .projects()
        .complete_project(req)
        .await?
        .into_inner()
        .project;
    Ok(project.expect("a project"))
}

/// Stops project `name` for `reason`.
pub async fn stop_project(c: &Caller, name: &str, reason: &str) -> Result<pb::Project, Status> {
    let req = pb::StopProjectRequest {
        name: name.into(),
        reason: reason.into(),
        ..Default::default()
    };
    let project = c.projects().stop_project(req).await?.into_inner().project;
    Ok(project.expect("a project"))
}

/// Records a progress score of `score` on project `parent`, assessed today.
pub fn new_progress_score(parent: &str, score: f64) -> pb::RecordProgressScoreRequest {
    pb::RecordProgressScoreRequest {
        parent: parent.into(),
        progress_score: Some(pb::ProgressScore {
            score,
            assessed_date: Some(date(today())),
            note: format!("scored {score}"),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// Records [`new_progress_score`].
pub async fn record_progress_score(
    c: &Caller,
    parent: &str,
    score: f64,
) -> Result<pb::ProgressScore, Status> {
    let req = new_progress_score(parent, score);
    let made = c.projects().record_progress_score(req).await?.into_inner();
    Ok(made.progress_score.expect("a score"))
}

/// A PDSA cycle testing `change` on project `parent`, starting today.
pub async fn create_pdsa_cycle(
    c: &Caller,
    parent: &str,
    change: &str,
) -> Result<pb::PdsaCycle, Status> {
    let req = pb::CreatePdsaCycleRequest {
        parent: parent.into(),
        pdsa_cycle: Some(pb::PdsaCycle {
            change_idea: change.into(),
            objective: "Learn whether it shortens waits".into(),
            prediction: "Waits fall by a third".into(),
            plan: "Two weeks on the ward, nurses collect times".into(),
            start_date: Some(date(today())),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let made = c.projects().create_pdsa_cycle(req).await?.into_inner();
    Ok(made.pdsa_cycle.expect("a cycle"))
}

/// The PDSA cycles of project `parent` (first page).
pub async fn pdsa_cycles(c: &Caller, parent: &str) -> Result<Vec<pb::PdsaCycle>, Status> {
    let req = pb::ListPdsaCyclesRequest {
        parent: parent.into(),
        ..Default::default()
    };
    Ok(c.projects()
        .list_pdsa_cycles(req)
        .await?
        .into_inner()
        .pdsa_cycles)
}

/// A patient partner, not staff, named `display_name`.
pub fn patient_partner(display_name: &str) -> pb::TeamMember {
    pb::TeamMember {
        display_name: display_name.into(),
        role: pb::TeamRole::PatientPartner as i32,
        ..Default::default()
    }
}

/// Adds `member` to the team of project `parent`.
pub async fn add_team_member(
    c: &Caller,
    parent: &str,
    member: pb::TeamMember,
) -> Result<pb::TeamMember, Status> {
    let req = pb::CreateTeamMemberRequest {
        parent: parent.into(),
        team_member: Some(member),
        request_id: String::new(),
    };
    let made = c.projects().create_team_member(req).await?.into_inner();
    Ok(made.team_member.expect("a team member"))
}

/// Records a workshop of eight with patients, today, on project `parent`.
pub async fn record_engagement(c: &Caller, parent: &str) -> Result<pb::EngagementActivity, Status> {
    let req = pb::CreateEngagementActivityRequest {
        parent: parent.into(),
        engagement_activity: Some(pb::EngagementActivity {
            activity_date: Some(date(today())),
            kind: pb::EngagementKind::Workshop as i32,
            participants: 8,
            summary: "Patients mapped the discharge journey with the team".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let made = c.projects().create_engagement_activity(req).await?;
    Ok(made.into_inner().engagement_activity.expect("an activity"))
}

/// Creates programme `id` of `kind` under `parent` (`trust` or a site), with a cohort
/// (training-wrapped) or a theme (thematic); either may be empty.
pub async fn create_programme(
    c: &Caller,
    parent: &str,
    id: &str,
    kind: pb::ProgrammeKind,
    cohort: &str,
    theme: &str,
) -> Result<pb::Programme, Status> {
    let req = pb::CreateProgrammeRequest {
        parent: parent.into(),
        programme_id: id.into(),
        programme: Some(pb::Programme {
            display_name: format!("Programme {id}"),
            kind: kind as i32,
            cohort: cohort.into(),
            theme: theme.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let made = c.projects().create_programme(req).await?.into_inner();
    Ok(made.programme.expect("a programme"))
}

/// The portfolio summary under `parent`, grouped by `period`, of `programme` (or all).
pub async fn portfolio_summary(
    c: &Caller,
    parent: &str,
    period: pb::PortfolioPeriod,
    programme: &str,
) -> Result<pb::GetPortfolioSummaryResponse, Status> {
    let req = pb::GetPortfolioSummaryRequest {
        parent: parent.into(),
        period: period as i32,
        programme: programme.into(),
        ..Default::default()
    };
    Ok(c.projects().get_portfolio_summary(req).await?.into_inner())
}
