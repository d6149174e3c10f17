//! Loads the improvement portfolio: the programmes first, then the ward programme beside
//! the ideas and projects, then the merged ideas (they name projects that exist by then).

use std::sync::Arc;

use super::client::{Api, each};
use super::{ideas, programmes, wards};
use crate::demo::Tally;
use crate::demo::plan::people::Workforce;
use crate::demo::plan::portfolio::{IdeaPlan, ProjectPlan, Triage, portfolio};
use crate::demo::plan::training::plan as training_plan;

/// One journey of the portfolio's: an idea (with the project it became), or a wrapped
/// programme's project.
enum Work {
    Idea(IdeaPlan, Option<ProjectPlan>),
    Project(ProjectPlan),
}

/// Loads the programmes, the ideas and projects, and the ward programme.
pub(crate) async fn load(api: &Api, staff: &Workforce) -> anyhow::Result<Tally> {
    let mut tally = programmes::load(api).await?;
    let portfolio = portfolio();
    let training = Arc::new(training_plan(staff));
    let staff = Arc::new(staff.clone());
    let mut work: Vec<Work> = portfolio
        .ideas
        .iter()
        .filter(|i| i.triage != Triage::Merged)
        .map(|i| Work::Idea(i.clone(), portfolio.project_of(i).cloned()))
        .collect();
    work.extend(
        portfolio
            .projects
            .iter()
            .filter(|p| p.idea.is_none())
            .map(|p| Work::Project(p.clone())),
    );
    // The long journeys (a project's dozen calls) first, so the short ones fill in behind
    // them rather than leave one long journey running alone at the end.
    work.sort_by_key(|w| match w {
        Work::Project(_) | Work::Idea(_, Some(_)) => 0,
        Work::Idea(_, None) => 1,
    });
    let journeys = {
        let (api, staff) = (api.clone(), staff.clone());
        each(work, move |w| {
            let (api, staff, training) = (api.clone(), staff.clone(), training.clone());
            async move {
                match w {
                    Work::Idea(i, p) => ideas::idea(&api, &staff, &training, i, p).await,
                    Work::Project(p) => ideas::wrapped_project(&api, &staff, &training, p).await,
                }
            }
        })
    };
    let (w, j) = tokio::try_join!(wards::load(api), journeys)?;
    tally += w;
    tally += j;
    let api = api.clone();
    tally += each(portfolio.merges(), move |(i, into)| {
        let (api, staff) = (api.clone(), staff.clone());
        async move { ideas::merged_idea(&api, &staff, i, into).await }
    })
    .await?;
    Ok(tally)
}
