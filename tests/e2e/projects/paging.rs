//! Paging the idea and project lists across sites: every item once, newest first, a page
//! token bound to the request it continues, and a bad page size named.

use qi_e2e::projects::{create_project, list_ideas, list_projects, submit_idea, with_aim};
use qi_e2e::{Caller, TestSuite, fields};
use qi_proto::projects as pb;

/// A team at BAS and SOU, and seven ideas and seven projects alternating between the two:
/// the team, and the ideas' names newest first.
async fn seven_of_each(suite: &TestSuite) -> (Caller, Vec<String>) {
    let team = suite.caller("bas-team", &["improvement_team"], &["BAS", "SOU"]);
    let mut made = Vec::new();
    for i in 0..7 {
        let site = if i % 2 == 0 { "BAS" } else { "SOU" };
        made.push(
            submit_idea(&team, site, &format!("Idea {i}"))
                .await
                .unwrap()
                .name,
        );
        create_project(&team, site, &format!("p{i}"), with_aim("p"))
            .await
            .unwrap();
    }
    made.reverse();
    (team, made)
}

#[tokio::test]
async fn ideas_page_newest_first_through_every_idea_once() {
    let suite = TestSuite::start().await;
    let (team, made) = seven_of_each(&suite).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let req = pb::ListIdeasRequest {
            page_size: 3,
            page_token: token.clone(),
            ..list_ideas("sites/-")
        };
        let resp = team.projects().list_ideas(req).await.unwrap().into_inner();
        pages += 1;
        seen.extend(resp.ideas.into_iter().map(|i| i.name));
        if resp.next_page_token.is_empty() {
            break;
        }
        token = resp.next_page_token;
    }
    assert_eq!((pages, seen), (3, made));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_negative_page_size_is_refused() {
    let suite = TestSuite::start().await;
    let (team, _) = seven_of_each(&suite).await;
    let req = pb::ListIdeasRequest {
        page_size: -1,
        ..list_ideas("sites/-")
    };
    let bad = team.projects().list_ideas(req).await.unwrap_err();
    assert_eq!(fields(&bad), ["page_size"]);
    suite.stop().await.unwrap();
}

/// A page of four projects under `sites/-` in `state` (or any), from `token`.
fn four_projects(state: pb::ProjectState, token: &str) -> pb::ListProjectsRequest {
    pb::ListProjectsRequest {
        state: state as i32,
        page_size: 4,
        page_token: token.into(),
        ..list_projects("sites/-")
    }
}

/// The pages of four of the projects under `sites/-`: each page's names and the token to
/// the next (empty on the last).
async fn project_pages(c: &Caller) -> Vec<(Vec<String>, String)> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let req = four_projects(pb::ProjectState::Unspecified, &token);
        let resp = c.projects().list_projects(req).await.unwrap().into_inner();
        let names = resp.projects.into_iter().map(|p| p.name).collect();
        token = resp.next_page_token;
        pages.push((names, token.clone()));
        if token.is_empty() {
            return pages;
        }
    }
}

#[tokio::test]
async fn projects_page_through_every_project_once() {
    let suite = TestSuite::start().await;
    let (team, _) = seven_of_each(&suite).await;
    let mut names: Vec<String> = project_pages(&team)
        .await
        .into_iter()
        .flat_map(|(names, _)| names)
        .collect();
    assert_eq!(names.len(), 7);
    names.dedup();
    assert_eq!(names.len(), 7);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_project_page_token_is_bound_to_the_filter_it_continues() {
    let suite = TestSuite::start().await;
    let (team, _) = seven_of_each(&suite).await;
    let pages = project_pages(&team).await;
    let tokens: Vec<&String> = pages
        .iter()
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(tokens.len(), 1, "a second page follows the first");
    for token in tokens {
        let req = four_projects(pb::ProjectState::Completed, token);
        let other = team.projects().list_projects(req).await.unwrap_err();
        assert_eq!(fields(&other), ["page_token"]);
    }
    suite.stop().await.unwrap();
}
