//! The read model's requests the tests share, and the same answers worked out from plain
//! calls to the services' own APIs, to cross-check them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Months, NaiveDate};
use qi_proto::insights as pb;
use qi_proto::projects as ppb;
use qi_proto::training as tpb;
use tonic::Status;

use crate::Caller;

/// Each learner (staff name) with their projects (name, whether they lead it).
pub type Involvement = BTreeMap<String, BTreeSet<(String, bool)>>;

/// GetCohortImpact of one cohort.
pub async fn impact(c: &Caller, cohort: &str) -> Result<pb::GetCohortImpactResponse, Status> {
    let req = pb::GetCohortImpactRequest {
        cohort: cohort.into(),
        ..Default::default()
    };
    Ok(c.insights().get_cohort_impact(req).await?.into_inner())
}

/// Every row of ListCapabilityCoverage under `parent`, grouped by `group_by`.
pub async fn coverage(
    c: &Caller,
    parent: &str,
    group_by: pb::CoverageGrouping,
) -> Result<Vec<pb::CapabilityCoverage>, Status> {
    let mut rows = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = pb::ListCapabilityCoverageRequest {
            parent: parent.into(),
            group_by: group_by as i32,
            page_size: 500,
            page_token,
        };
        let page = c
            .insights()
            .list_capability_coverage(req)
            .await?
            .into_inner();
        rows.extend(page.rows);
        if page.next_page_token.is_empty() {
            return Ok(rows);
        }
        page_token = page.next_page_token;
    }
}

/// A cohort's learners and their projects as GetCohortImpact gave them.
pub fn from_answer(cohort: &pb::CohortImpact) -> Involvement {
    cohort
        .learners
        .iter()
        .map(|l| {
            let projects = l
                .projects
                .iter()
                .map(|p| (p.project.clone(), p.lead))
                .collect();
            (l.staff.clone(), projects)
        })
        .collect()
}

fn day(d: Option<qi_proto::google::r#type::Date>) -> Option<NaiveDate> {
    d.map(crate::day)
}

/// The same as [`from_answer`], from the services' own lists (every page): the cohort's
/// completions the caller sees, and the projects they lead (started on or after the
/// cohort's `first_day`, or not started) or joined within 12 months after completing.
pub async fn by_the_apis(c: &Caller, cohort: &str, first_day: NaiveDate) -> Involvement {
    let mut out = Involvement::new();
    let mut completed: BTreeMap<String, NaiveDate> = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = c
            .training()
            .list_completions(tpb::ListCompletionsRequest {
                parent: "sites/-".into(),
                page_size: 500,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for done in page.completions.into_iter().filter(|d| d.cohort == cohort) {
            out.entry(done.staff.clone()).or_default();
            completed.insert(done.staff, day(done.completion_date).unwrap());
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut projects = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = c
            .projects()
            .list_projects(ppb::ListProjectsRequest {
                parent: "sites/-".into(),
                page_size: 500,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        projects.extend(page.projects);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for p in projects {
        let started = day(p.start_date);
        let team = c
            .projects()
            .list_team_members(ppb::ListTeamMembersRequest {
                parent: p.name.clone(),
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .team_members;
        for m in team {
            let Some(done) = completed.get(&m.staff) else {
                continue;
            };
            let lead = m.role == ppb::TeamRole::Lead as i32;
            let joined = m.create_time.and_then(|t| {
                chrono::DateTime::from_timestamp(t.seconds, 0)
                    .map(qi_platform::calendar::london_date)
            });
            let counts = if lead {
                started.is_none_or(|s| s >= first_day)
            } else {
                joined.is_some_and(|j| j >= *done && j <= *done + Months::new(12))
            };
            if counts {
                out.entry(m.staff)
                    .or_default()
                    .insert((p.name.clone(), lead));
            }
        }
    }
    out
}
