//! A trust metric recorded by site and one recorded by ward, each with rows at BAS and SOU:
//! a BAS caller's every read of them adds up BAS's rows alone (a trust total beside BAS's
//! own part would give SOU's away by subtraction), and a filter naming SOU's site or ward is
//! refused as an access failure, not answered as bad input.

use qi_e2e::metrics::{
    breakdown, breakdown_request, chart, chart_request, create, dashboard, dashboard_request,
    list_measurements, metric, month, record, render, render_request, stratum, value,
};
use qi_e2e::{Caller, TestSuite};
use qi_proto::metrics as pb;
use tonic::{Code, Status};

use super::{bas_viewer, trust_team};

/// The two trust metrics: by site, and by ward.
const METRICS: [&str; 2] = ["trust/metrics/falls", "trust/metrics/ward-falls"];

/// Twelve months of `v` falls of sex `sex` at `site` or `ward`.
fn twelve_months(site: &str, ward: &str, v: f64, sex: &str) -> Vec<pb::Measurement> {
    (0..12)
        .map(|i| pb::Measurement {
            site: site.into(),
            ward: ward.into(),
            stratum: stratum("", "", sex),
            ..value(month(i), v)
        })
        .collect()
}

/// The two trust metrics of falls by sex, recorded by site and by ward: BAS 5 a month
/// (sex 1), SOU 9 a month (sex 2), over twelve months. The trust's team, who made them.
async fn falls_at_bas_and_sou(suite: &TestSuite) -> Caller {
    let trust = trust_team(suite);
    let mut falls = metric(
        "Falls",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Count,
        &[pb::InequalityDimension::Sex],
    );
    falls.location_breakdown = pb::LocationBreakdown::Site as i32;
    create(&trust, "trust", "falls", falls.clone())
        .await
        .unwrap();
    falls.location_breakdown = pb::LocationBreakdown::Ward as i32;
    create(&trust, "trust", "ward-falls", falls).await.unwrap();
    let mut rows = twelve_months("sites/BAS", "", 5.0, "1");
    rows.extend(twelve_months("sites/SOU", "", 9.0, "2"));
    record(&trust, METRICS[0], rows, "").await.unwrap();
    let mut rows = twelve_months("", "sites/BAS/wards/cedar", 5.0, "1");
    rows.extend(twelve_months("", "sites/SOU/wards/oak", 9.0, "2"));
    record(&trust, METRICS[1], rows, "").await.unwrap();
    trust
}

#[tokio::test]
async fn a_one_site_caller_lists_its_sites_measurements_alone() {
    let suite = TestSuite::start().await;
    falls_at_bas_and_sou(&suite).await;
    for metric in METRICS {
        let listed = list_measurements(&bas_viewer(&suite), metric, 100, "")
            .await
            .unwrap()
            .measurements;
        assert_eq!(listed.len(), 12, "{metric}");
        assert!(listed.iter().all(|m| m.site == "sites/BAS"), "{metric}");
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_one_site_callers_chart_adds_up_its_sites_rows_alone() {
    let suite = TestSuite::start().await;
    let trust = falls_at_bas_and_sou(&suite).await;
    let values = |chart: pb::SpcChart| chart.points.iter().map(|p| p.value).collect::<Vec<_>>();
    for metric in METRICS {
        let bas = chart(&bas_viewer(&suite), chart_request(metric))
            .await
            .unwrap();
        assert_eq!(values(bas), [5.0; 12], "{metric}");
        let all = chart(&trust, chart_request(metric)).await.unwrap();
        assert_eq!(values(all), [14.0; 12], "{metric}");
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_one_site_callers_breakdown_counts_its_sites_rows_alone() {
    let suite = TestSuite::start().await;
    falls_at_bas_and_sou(&suite).await;
    for metric in METRICS {
        let req = breakdown_request(metric, pb::InequalityDimension::Sex);
        let b = breakdown(&bas_viewer(&suite), req).await.unwrap();
        let counted: Vec<(String, f64)> = b
            .strata
            .iter()
            .filter(|s| s.count > 0.0)
            .map(|s| (s.label.clone(), s.count))
            .collect();
        assert_eq!(counted, [("1".to_owned(), 60.0)], "{metric}");
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_one_site_callers_dashboard_shows_its_sites_values_alone() {
    let suite = TestSuite::start().await;
    falls_at_bas_and_sou(&suite).await;
    let rows = dashboard(&bas_viewer(&suite), dashboard_request("sites/-", &[]))
        .await
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.latest_value == Some(5.0)));
    suite.stop().await.unwrap();
}

/// The answers of a chart, a picture and a breakdown of `metric` under `filter`.
async fn filtered_reads(
    c: &Caller,
    metric: &str,
    filter: &pb::SeriesFilter,
) -> [(&'static str, Result<(), Status>); 3] {
    let spc = pb::GetSpcChartRequest {
        filter: Some(filter.clone()),
        ..chart_request(metric)
    };
    let picture = pb::RenderSpcChartRequest {
        filter: Some(filter.clone()),
        ..render_request(metric)
    };
    let by_sex = pb::GetInequalityBreakdownRequest {
        filter: Some(filter.clone()),
        ..breakdown_request(metric, pb::InequalityDimension::Sex)
    };
    [
        ("spc", chart(c, spc).await.map(|_| ())),
        ("render", render(c, picture).await.map(|_| ())),
        ("breakdown", breakdown(c, by_sex).await.map(|_| ())),
    ]
}

#[tokio::test]
async fn a_filter_naming_another_sites_site_or_ward_is_denied_on_every_read() {
    let suite = TestSuite::start().await;
    falls_at_bas_and_sou(&suite).await;
    // It was INVALID_ARGUMENT; now PERMISSION_DENIED, whatever the metric records.
    let sou_site = pb::SeriesFilter {
        site: "sites/SOU".into(),
        ..Default::default()
    };
    let sou_ward = pb::SeriesFilter {
        ward: "sites/SOU/wards/oak".into(),
        ..Default::default()
    };
    let bas_site_sou_ward = pb::SeriesFilter {
        site: "sites/BAS".into(),
        ..sou_ward.clone()
    };
    for metric in METRICS {
        for filter in [&sou_site, &sou_ward, &bas_site_sou_ward] {
            for (rpc, got) in filtered_reads(&bas_viewer(&suite), metric, filter).await {
                let e = got.expect_err(&format!("{metric} {rpc} {filter:?}: answered"));
                assert_eq!(e.code(), Code::PermissionDenied, "{metric} {rpc}: {e:?}");
            }
        }
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_filter_naming_the_callers_own_site_is_answered_on_every_read() {
    let suite = TestSuite::start().await;
    falls_at_bas_and_sou(&suite).await;
    let bas_site = pb::SeriesFilter {
        site: "sites/BAS".into(),
        ..Default::default()
    };
    for metric in METRICS {
        for (rpc, got) in filtered_reads(&bas_viewer(&suite), metric, &bas_site).await {
            assert!(got.is_ok(), "{metric} {rpc} {bas_site:?}: {got:?}");
        }
    }
    suite.stop().await.unwrap();
}
