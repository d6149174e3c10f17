//! Annotations: added by contributors, listed with their author, deleted once (again is
//! NOT_FOUND unless a missing one is allowed).

use qi_e2e::TestSuite;
use qi_e2e::metrics::delete_annotation;
use qi_proto::metrics as pb;
use tonic::Code;

use super::{LOS, annotated_los, sou_viewer};

/// The first annotation of [`annotated_los`].
const PDSA_1: &str = "sites/SOU/metrics/los/annotations/pdsa-1";

#[tokio::test]
async fn a_deleted_annotation_leaves_the_others_listed_with_their_author() {
    let suite = TestSuite::start().await;
    let nurse = annotated_los(&suite).await;
    delete_annotation(&nurse, PDSA_1, false).await.unwrap();
    let req = pb::ListAnnotationsRequest {
        parent: LOS.into(),
        ..Default::default()
    };
    let left = sou_viewer(&suite)
        .metrics()
        .list_annotations(req)
        .await
        .unwrap()
        .into_inner()
        .annotations;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].author, "sou-nurse");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_a_deleted_annotation_is_not_found() {
    let suite = TestSuite::start().await;
    let nurse = annotated_los(&suite).await;
    delete_annotation(&nurse, PDSA_1, false).await.unwrap();
    let err = delete_annotation(&nurse, PDSA_1, false).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_a_missing_annotation_allowed_missing_succeeds() {
    let suite = TestSuite::start().await;
    let nurse = annotated_los(&suite).await;
    delete_annotation(&nurse, PDSA_1, false).await.unwrap();
    let quietly = delete_annotation(&nurse, PDSA_1, true).await;
    assert!(quietly.is_ok(), "{quietly:?}");
    let left = suite.count("SELECT count(*) FROM metrics.annotation").await;
    assert_eq!(left, 1, "the other annotation stays");
    suite.stop().await.unwrap();
}
