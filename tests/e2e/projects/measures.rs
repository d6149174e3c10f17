//! A project's measures: outcome, process and balancing, each metric once, listed in that
//! order.

use qi_e2e::{Caller, TestSuite, code, fields};
use qi_proto::projects as pb;
use tonic::{Code, Status};

use super::{bas_editor, running_project};

/// Adds `metric` to the measures of `project` as `kind`.
async fn add_measure(
    c: &Caller,
    project: &str,
    metric: &str,
    kind: pb::MeasureKind,
) -> Result<pb::Measure, Status> {
    let req = pb::CreateMeasureRequest {
        parent: project.into(),
        measure: Some(pb::Measure {
            metric: metric.into(),
            kind: kind as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let made = c.projects().create_measure(req).await?.into_inner();
    Ok(made.measure.expect("a measure"))
}

/// Falls (balancing), length of stay (outcome) and letters by noon (process), in that order.
async fn three_measures(c: &Caller, project: &str) {
    for (metric, kind) in [
        ("trust/metrics/falls", pb::MeasureKind::Balancing),
        ("sites/BAS/metrics/los-frailty", pb::MeasureKind::Outcome),
        (
            "sites/BAS/metrics/letters-by-noon",
            pb::MeasureKind::Process,
        ),
    ] {
        add_measure(c, project, metric, kind).await.unwrap();
    }
}

#[tokio::test]
async fn a_metric_measures_a_project_once() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    three_measures(&lead, &p.name).await;
    let dup = add_measure(
        &lead,
        &p.name,
        "trust/metrics/falls",
        pb::MeasureKind::Process,
    )
    .await;
    assert_eq!(code(dup), Code::AlreadyExists);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_measure_names_a_bad_metric_and_a_missing_kind() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let bad = add_measure(
        &bas_editor(&suite),
        &p.name,
        "metrics/falls",
        pb::MeasureKind::Unspecified,
    )
    .await
    .unwrap_err();
    assert_eq!(fields(&bad), ["measure.metric", "measure.kind"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn measures_page_outcome_then_process_then_balancing() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let lead = bas_editor(&suite);
    three_measures(&lead, &p.name).await;
    let page = |token: String| pb::ListMeasuresRequest {
        parent: p.name.clone(),
        page_size: 2,
        page_token: token,
    };
    let measures = lead
        .projects()
        .list_measures(page(String::new()))
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<i32> = measures.measures.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            pb::MeasureKind::Outcome as i32,
            pb::MeasureKind::Process as i32
        ]
    );
    let rest = lead
        .projects()
        .list_measures(page(measures.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.measures[0].metric, "trust/metrics/falls");
    assert!(rest.next_page_token.is_empty());
    suite.stop().await.unwrap();
}
