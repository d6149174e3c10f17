//! Changing a project: the fields given (or masked) only, guarded by its etag, and never so
//! that a ward is left without its site.

use qi_e2e::projects::update_project;
use qi_e2e::{TestSuite, fields};
use qi_proto::projects as pb;
use tonic::Code;

use super::{bas_editor, running_project};

/// A new title for `started`, sent with its etag.
fn retitled(started: &pb::Project) -> pb::Project {
    pb::Project {
        name: started.name.clone(),
        title: "Frailty length of stay (phase 1)".into(),
        etag: started.etag.clone(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_update_changes_the_fields_it_gives_and_keeps_the_rest() {
    let suite = TestSuite::start().await;
    let started = running_project(&suite).await;
    let updated = update_project(&bas_editor(&suite), retitled(&started))
        .await
        .unwrap();
    assert_eq!(updated.title, "Frailty length of stay (phase 1)");
    assert_eq!(updated.wards.len(), 2, "unmasked fields are kept");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_update_with_a_stale_etag_is_aborted() {
    let suite = TestSuite::start().await;
    let started = running_project(&suite).await;
    let lead = bas_editor(&suite);
    update_project(&lead, retitled(&started)).await.unwrap();
    let stale = update_project(&lead, retitled(&started)).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_site_whose_ward_the_project_is_on_stays_in_the_project() {
    let suite = TestSuite::start().await;
    let started = running_project(&suite).await;
    let change = pb::Project {
        etag: String::new(),
        participating_sites: Vec::new(),
        ..retitled(&started)
    };
    let req = pb::UpdateProjectRequest {
        project: Some(change),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["participating_sites".into()],
        }),
    };
    let err = bas_editor(&suite)
        .projects()
        .update_project(req)
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        ["project.wards[1]"],
        "dropping SOU would orphan its ward"
    );
    suite.stop().await.unwrap();
}
