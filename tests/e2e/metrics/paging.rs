//! Paging: metrics, measurements (oldest first, each once) and the dashboard's rows come a
//! page at a time.

use std::collections::HashSet;

use qi_e2e::metrics::{
    create, dashboard, dashboard_request, list_measurements, rate, record, stratum,
};
use qi_e2e::{TestSuite, date, ymd};
use qi_proto::metrics as pb;

use super::{DNA, bas_falls, bas_viewer, falls_definition, qms_board, weekly_batch, weekly_dna};

#[tokio::test]
async fn metrics_list_a_page_at_a_time() {
    let suite = TestSuite::start().await;
    let (_, team) = bas_falls(&suite).await;
    let mut ward = falls_definition();
    ward.ward = "sites/BAS/wards/cedar".into();
    create(&team, "sites/BAS", "cedar-falls", ward)
        .await
        .unwrap();
    let mut project = falls_definition();
    project.project = "sites/BAS/projects/frailty".into();
    create(&team, "sites/BAS", "frailty-falls", project)
        .await
        .unwrap();
    let viewer = bas_viewer(&suite);
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let req = pb::ListMetricsRequest {
            parent: "sites/BAS".into(),
            page_size: 2,
            page_token: token.clone(),
            ..Default::default()
        };
        let page = viewer
            .metrics()
            .list_metrics(req)
            .await
            .unwrap()
            .into_inner();
        names.extend(page.metrics.into_iter().map(|m| m.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        names,
        [
            "sites/BAS/metrics/cedar-falls",
            "sites/BAS/metrics/falls",
            "sites/BAS/metrics/frailty-falls"
        ]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn measurements_page_through_oldest_first_each_once() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    let mut fifty = weekly_batch();
    for day in [ymd(2026, 2, 2), ymd(2026, 2, 16)] {
        fifty.push(rate(date(day), stratum("1", "", "1"), 1.0, 50.0));
    }
    record(&nurse, DNA, fifty, "").await.unwrap();
    let viewer = bas_viewer(&suite);
    let mut seen = HashSet::new();
    let mut periods = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_measurements(&viewer, DNA, 20, &token).await.unwrap();
        for m in page.measurements {
            assert!(seen.insert(m.name.clone()), "{} twice", m.name);
            assert_eq!(m.site, "sites/BAS");
            periods.push(m.period.map(|p| (p.year, p.month, p.day)));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 50);
    assert!(periods.windows(2).all(|w| w[0] <= w[1]));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_dashboard_pages() {
    let suite = TestSuite::start().await;
    let trust = qms_board(&suite).await;
    let first = pb::GetQmsDashboardRequest {
        page_size: 2,
        ..dashboard_request("sites/-", &[])
    };
    let first = dashboard(&trust, first).await.unwrap();
    assert_eq!(first.rows.len(), 2);
    let second = pb::GetQmsDashboardRequest {
        page_size: 2,
        page_token: first.next_page_token,
        ..dashboard_request("sites/-", &[])
    };
    let second = dashboard(&trust, second).await.unwrap();
    assert_eq!(second.rows.len(), 1);
    assert_eq!(second.rows[0].metric, "sites/SOU/metrics/dna");
    assert!(second.next_page_token.is_empty());
    suite.stop().await.unwrap();
}
