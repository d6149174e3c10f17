//! Takes a project from where it stands to where the plan leaves it: while scoping, its
//! aim, team, PDSA cycles, scores, measures and activities, then started; once in progress,
//! completed with its outcome or stopped. A project found (not just made) still scoping may
//! have part of its team and cycles from a cut run: those are read back and not made twice.

use qi_platform::convert::{date, etag};
use qi_proto::projects as pb;

use super::client::{Api, created, failed, request_id, rpc};
use crate::demo::Tally;
use crate::demo::data::projects::STOP_REASON;
use crate::demo::plan::drivers;
use crate::demo::plan::journey::{Found, Scoping, cycles, measures, outcome, scoping};
use crate::demo::plan::people::Workforce;
use crate::demo::plan::portfolio::{Fate, ProjectPlan};
use crate::demo::plan::training::Plan as TrainingPlan;

/// Takes `p`, which stands as `current` (made by this run when `fresh`), to where the plan
/// leaves it.
pub(crate) async fn journey(
    api: &Api,
    staff: &Workforce,
    training: &TrainingPlan,
    p: &ProjectPlan,
    current: pb::Project,
    fresh: bool,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut state = current.state;
    if state == pb::ProjectState::Scoping as i32 {
        if current.aim.is_none() {
            set_aim(api, p).await?;
            tally.step(fresh);
        }
        let found = if fresh {
            Found::default()
        } else {
            found(api, &p.name()).await?
        };
        let work = scoping(p, staff, training, &found);
        tally.created += team(api, p, &work).await?;
        tally.created += pdsa_cycles(api, p, &found).await?;
        tally.created += scores(api, p, &work).await?;
        tally.created += measure(api, p).await?;
        tally.created += activities(api, p, &work).await?;
        if p.fate != Fate::Scoping {
            let name = p.name();
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
            tally.step(fresh);
            state = pb::ProjectState::InProgress as i32;
        }
    }
    if state == pb::ProjectState::InProgress as i32 && p.fate == Fate::InProgress {
        tally.created += driver_diagram(api, p).await?;
    }
    if state == pb::ProjectState::InProgress as i32 && finish(api, p).await? {
        tally.step(fresh);
    }
    Ok(tally)
}

/// Sets the aim, programme, participating sites, patient involvement and charter of a
/// project accepted from an idea (which has none of them yet; its theme came with it).
async fn set_aim(api: &Api, p: &ProjectPlan) -> anyhow::Result<()> {
    let name = p.name();
    rpc!(
        api.projects,
        update_project,
        pb::UpdateProjectRequest {
            project: Some(pb::Project {
                name: name.clone(),
                aim: Some(p.aim()),
                programme: p.programme.clone().unwrap_or_default(),
                participating_sites: p.participating.clone(),
                patient_involvement: p.involvement() as i32,
                ..p.charter()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![
                    "aim".into(),
                    "programme".into(),
                    "participating_sites".into(),
                    "patient_involvement".into(),
                    "problem_statement".into(),
                    "scope_in".into(),
                    "scope_out".into(),
                    "stakeholders".into(),
                    "expected_benefits".into(),
                    "qsir_phase".into(),
                ],
            }),
        }
    )
    .map_err(|s| failed(s, &format!("setting the aim of {name}")))?;
    Ok(())
}

/// Adds the team members not there yet, and the patient partner; returns how many it added.
async fn team(api: &Api, p: &ProjectPlan, work: &Scoping) -> anyhow::Result<u64> {
    let name = p.name();
    let mut added = 0;
    for (who, role) in &work.team {
        let what = format!("{who} on {name}");
        let made = created(
            rpc!(
                api.projects,
                create_team_member,
                pb::CreateTeamMemberRequest {
                    parent: name.clone(),
                    team_member: Some(pb::TeamMember {
                        staff: who.clone(),
                        role: *role as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                }
            ),
            &what,
        )?;
        added += u64::from(made.is_some());
    }
    if let Some(partner) = &work.partner {
        let what = format!("patient partner on {name}");
        rpc!(
            api.projects,
            create_team_member,
            pb::CreateTeamMemberRequest {
                parent: name.clone(),
                team_member: Some(partner.clone()),
                request_id: request_id(&what),
            }
        )
        .map_err(|s| failed(s, &what))?;
        added += 1;
    }
    Ok(added)
}

/// Plans the PDSA cycles not there yet, in order, and records each decision not taken yet;
/// returns how many cycles it planned.
async fn pdsa_cycles(api: &Api, p: &ProjectPlan, found: &Found) -> anyhow::Result<u64> {
    let name = p.name();
    let mut planned = 0;
    for (k, c) in cycles(p).iter().enumerate() {
        let cycle_name = format!("{name}/pdsaCycles/{}", k + 1);
        let decided_already = match found.decisions.get(k) {
            Some(d) => *d != pb::PdsaDecision::Unspecified as i32,
            None => {
                rpc!(
                    api.projects,
                    create_pdsa_cycle,
                    pb::CreatePdsaCycleRequest {
                        parent: name.clone(),
                        pdsa_cycle: Some(c.record(p)),
                        request_id: request_id(&cycle_name),
                    }
                )
                .map_err(|s| failed(s, &format!("planning {cycle_name}")))?;
                planned += 1;
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
                    act_notes: c.act_notes(d),
                    end_date: Some(date(c.end)),
                    etag: String::new(),
                }
            )
            .map_err(|s| failed(s, &format!("deciding {cycle_name}")))?;
        }
    }
    Ok(planned)
}

/// Records the progress scores still missing; returns how many.
async fn scores(api: &Api, p: &ProjectPlan, work: &Scoping) -> anyhow::Result<u64> {
    let name = p.name();
    for (k, score) in &work.scores {
        let what = format!("score {k} of {name}");
        rpc!(
            api.projects,
            record_progress_score,
            pb::RecordProgressScoreRequest {
                parent: name.clone(),
                progress_score: Some(score.clone()),
                request_id: request_id(&what),
            }
        )
        .map_err(|s| failed(s, &what))?;
    }
    Ok(work.scores.len() as u64)
}

/// Links the metrics the theme moves as measures, where not linked yet; returns how many.
async fn measure(api: &Api, p: &ProjectPlan) -> anyhow::Result<u64> {
    let name = p.name();
    let mut linked = 0;
    for m in measures(p) {
        let what = format!("{} on {name}", m.metric);
        let made = created(
            rpc!(
                api.projects,
                create_measure,
                pb::CreateMeasureRequest {
                    parent: name.clone(),
                    measure: Some(m.clone()),
                    request_id: String::new(),
                }
            ),
            &what,
        )?;
        linked += u64::from(made.is_some());
    }
    Ok(linked)
}

/// Records the engagement activities still missing; returns how many.
async fn activities(api: &Api, p: &ProjectPlan, work: &Scoping) -> anyhow::Result<u64> {
    let name = p.name();
    for (k, activity) in &work.activities {
        let what = format!("activity {k} of {name}");
        rpc!(
            api.projects,
            create_engagement_activity,
            pb::CreateEngagementActivityRequest {
                parent: name.clone(),
                engagement_activity: Some(activity.clone()),
                request_id: request_id(&what),
            }
        )
        .map_err(|s| failed(s, &what))?;
    }
    Ok(work.activities.len() as u64)
}

/// Draws the driver diagram of a project in progress that has none yet; returns whether it
/// did (its first version: a second run finds it and changes nothing).
async fn driver_diagram(api: &Api, p: &ProjectPlan) -> anyhow::Result<u64> {
    let project = p.name();
    let name = format!("{project}/driverDiagram");
    let current = rpc!(
        api.projects,
        get_driver_diagram,
        pb::GetDriverDiagramRequest {
            name: name.clone(),
            version: 0,
        }
    )
    .map_err(|s| failed(s, &name))?;
    if current.driver_diagram.is_some_and(|d| d.version > 0) {
        return Ok(0);
    }
    let measures = rpc!(
        api.projects,
        list_measures,
        pb::ListMeasuresRequest {
            parent: project.clone(),
            page_size: 50,
            ..Default::default()
        }
    )
    .map_err(|s| failed(s, &project))?
    .measures;
    let members = rpc!(
        api.projects,
        list_team_members,
        pb::ListTeamMembersRequest {
            parent: project.clone(),
            page_size: 50,
            ..Default::default()
        }
    )
    .map_err(|s| failed(s, &project))?
    .team_members;
    // The lead first, then the rest of the staff on the team.
    let mut team: Vec<(bool, String)> = members
        .into_iter()
        .filter(|m| !m.staff.is_empty())
        .map(|m| (m.role != pb::TeamRole::Lead as i32, m.staff))
        .collect();
    team.sort_by_key(|(not_lead, _)| *not_lead);
    let team: Vec<String> = team.into_iter().map(|(_, staff)| staff).collect();
    rpc!(
        api.projects,
        edit_driver_diagram,
        pb::EditDriverDiagramRequest {
            name: name.clone(),
            edits: drivers::edits(p, &team, &measures),
            etag: etag(0),
            summary: "Drawn by the team at the project's launch".into(),
            request_id: request_id(&name),
        }
    )
    .map_err(|s| failed(s, &format!("drawing {name}")))?;
    Ok(1)
}

/// Completes a project in progress with its outcome, or stops it, as the plan has it;
/// returns whether it did either.
async fn finish(api: &Api, p: &ProjectPlan) -> anyhow::Result<bool> {
    let name = p.name();
    match (p.fate, p.end) {
        (Fate::Completed, Some(end)) => {
            rpc!(
                api.projects,
                complete_project,
                pb::CompleteProjectRequest {
                    name: name.clone(),
                    end_date: Some(date(end)),
                    outcome: Some(outcome(p)),
                    etag: String::new(),
                }
            )
            .map_err(|s| failed(s, &format!("completing {name}")))?;
            Ok(true)
        }
        (Fate::Stopped, Some(end)) => {
            rpc!(
                api.projects,
                stop_project,
                pb::StopProjectRequest {
                    name: name.clone(),
                    reason: STOP_REASON.into(),
                    end_date: Some(date(end)),
                    etag: String::new(),
                }
            )
            .map_err(|s| failed(s, &format!("stopping {name}")))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// What a project found still scoping has from a cut run: its PDSA decisions, score and
/// activity counts, and whether it has a patient partner.
async fn found(api: &Api, name: &str) -> anyhow::Result<Found> {
    // The first page of one kind of the project's children: more than a project has.
    macro_rules! children {
        ($method:ident, $request:ident) => {
            rpc!(
                api.projects,
                $method,
                pb::$request {
                    parent: name.to_owned(),
                    page_size: 500,
                    ..Default::default()
                }
            )
            .map_err(|s| failed(s, name))?
        };
    }
    let cycles = children!(list_pdsa_cycles, ListPdsaCyclesRequest);
    let scores = children!(list_progress_scores, ListProgressScoresRequest);
    let activities = children!(list_engagement_activities, ListEngagementActivitiesRequest);
    let team = children!(list_team_members, ListTeamMembersRequest);
    Ok(Found {
        decisions: cycles.pdsa_cycles.iter().map(|c| c.decision).collect(),
        scores: scores.progress_scores.len(),
        activities: activities.engagement_activities.len(),
        partner: team
            .team_members
            .iter()
            .any(|m| m.role == pb::TeamRole::PatientPartner as i32),
    })
}
