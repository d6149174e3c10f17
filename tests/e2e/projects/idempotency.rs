//! Creates with a request id happen once: retried or sent concurrently, they answer the
//! same and store one row; the id with another request is refused.

use qi_e2e::projects::{create_project, new_idea, with_aim};
use qi_e2e::{TestSuite, fields};
use qi_proto::projects as pb;

use super::bas_team;

/// A BAS project titled `title` with request id `rid`.
fn new_project(title: &str, rid: &str) -> pb::CreateProjectRequest {
    pb::CreateProjectRequest {
        parent: "sites/BAS".into(),
        project_id: String::new(),
        project: Some(with_aim(title)),
        request_id: rid.into(),
    }
}

#[tokio::test]
async fn concurrent_creates_with_one_request_id_make_one_project_and_one_answer() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let rid = uuid::Uuid::new_v4().to_string();
    // Eight concurrent sends and one after: one project, the same answer to all.
    let sends: Vec<_> = (0..8)
        .map(|_| {
            let mut c = team.projects();
            let r = new_project("Falls", &rid);
            tokio::spawn(async move { c.create_project(r).await.map(|r| r.into_inner()) })
        })
        .collect();
    let mut answers = Vec::new();
    for s in sends {
        answers.push(s.await.unwrap().unwrap());
    }
    let again = team
        .projects()
        .create_project(new_project("Falls", &rid))
        .await
        .unwrap()
        .into_inner();
    assert!(answers.iter().all(|a| *a == again));
    assert_eq!(
        suite.count("SELECT count(*) FROM projects.project").await,
        1
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_id_sent_with_another_project_is_refused() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let rid = uuid::Uuid::new_v4().to_string();
    team.projects()
        .create_project(new_project("Falls", &rid))
        .await
        .unwrap();
    let err = team
        .projects()
        .create_project(new_project("Not falls", &rid))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["request_id"]);
    suite.stop().await.unwrap();
}

/// Numbered children too: a retried PDSA cycle is not a second cycle.
#[tokio::test]
async fn a_retried_pdsa_cycle_is_not_a_second_cycle() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let parent = create_project(&team, "BAS", "falls", with_aim("Falls"))
        .await
        .unwrap()
        .name;
    let cycle = pb::CreatePdsaCycleRequest {
        parent,
        pdsa_cycle: Some(pb::PdsaCycle {
            change_idea: "Hourly rounding".into(),
            objective: "o".into(),
            prediction: "p".into(),
            ..Default::default()
        }),
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    let one = team
        .projects()
        .create_pdsa_cycle(cycle.clone())
        .await
        .unwrap()
        .into_inner();
    let two = team
        .projects()
        .create_pdsa_cycle(cycle)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one, two);
    assert_eq!(
        suite
            .count("SELECT count(*) FROM projects.pdsa_cycle")
            .await,
        1
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_retried_idea_is_not_a_second_idea() {
    let suite = TestSuite::start().await;
    let team = bas_team(&suite);
    let idea = pb::CreateIdeaRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..new_idea("BAS", "Hourly rounding")
    };
    let a = team
        .projects()
        .create_idea(idea.clone())
        .await
        .unwrap()
        .into_inner();
    let b = team
        .projects()
        .create_idea(idea)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    assert_eq!(suite.count("SELECT count(*) FROM projects.idea").await, 1);
    suite.stop().await.unwrap();
}
