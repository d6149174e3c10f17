//! Bad input is INVALID_ARGUMENT naming every bad field: of a definition, a batch (which
//! then stores nothing), chart options and filters, a picture's size, a breakdown.

use qi_e2e::metrics::{
    breakdown, chart, chart_request, compute, create, month, rate, record, render, render_request,
    stratum, value,
};
use qi_e2e::{TestSuite, date, fields, ymd};
use qi_proto::metrics as pb;

use super::{
    DNA, LOS, STORED, bas_nurse, bas_team, bas_viewer, december_breakdown, falls_definition, los,
    los_definition, readmissions_at_brm, sou_viewer, weekly_batch, weekly_dna,
};

#[tokio::test]
async fn a_bad_definition_names_every_bad_field() {
    let suite = TestSuite::start().await;
    let mut bad = falls_definition();
    bad.frequency = 0;
    bad.imd_edition = 0;
    bad.age_bands = vec!["0-17".into()];
    bad.target = Some(f64::NAN);
    let err = create(&bas_team(&suite), "sites/BAS", "Bad Id", bad)
        .await
        .unwrap_err();
    let mut named = fields(&err);
    named.sort();
    assert_eq!(
        named,
        [
            "metric.age_bands",
            "metric.frequency",
            "metric.imd_edition",
            "metric.target",
            "metric_id"
        ]
    );
    suite.stop().await.unwrap();
}

/// A rate of 1 in 10 on `day` of February 2026, in IMD quintile `imd` and sex `sex`.
fn feb(day: u32, imd: &str, sex: &str) -> pb::Measurement {
    rate(date(ymd(2026, 2, day)), stratum(imd, "", sex), 1.0, 10.0)
}

#[tokio::test]
async fn one_bad_measurement_stores_none_of_its_batch_and_every_bad_field_is_named() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    record(&nurse, DNA, weekly_batch(), "").await.unwrap();
    let mut nan = rate(date(ymd(2026, 2, 9)), stratum("2", "", "1"), f64::NAN, 10.0);
    nan.count = 3;
    let bad = vec![
        feb(9, "1", "1"),
        nan,
        rate(date(ymd(2026, 2, 9)), stratum("3", "", "1"), 1.0, 0.0),
        feb(10, "4", "1"),
        feb(9, "6", "1"),
        rate(date(ymd(2026, 2, 9)), stratum("5", "A", "1"), 1.0, 10.0),
        feb(9, "5", ""),
        feb(9, "1", "1"),
        pb::Measurement {
            value: Some(3.0),
            ..feb(9, "U", "X")
        },
        pb::Measurement {
            site: "sites/SOU".into(),
            ..feb(9, "U", "1")
        },
    ];
    let err = record(&nurse, DNA, bad, "").await.unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "measurements[1].numerator",
            "measurements[1].count",
            "measurements[2].denominator",
            "measurements[3].period",
            "measurements[4].stratum.imd_quintile",
            "measurements[5].stratum.ethnic_category",
            "measurements[6].stratum.sex",
            "measurements[7]",
            "measurements[8].value",
            "measurements[9].site",
        ]
    );
    let stored = suite.count(STORED).await;
    assert_eq!(stored, 48, "nothing of the bad batch was stored");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_empty_batch_is_refused() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    let err = record(&nurse, DNA, Vec::new(), "").await.unwrap_err();
    assert_eq!(fields(&err), ["measurements"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_batch_of_more_than_ten_thousand_is_refused() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    let too_many: Vec<_> = (0..10_001)
        .map(|i| {
            rate(
                date(ymd(2026, 1, 5)),
                stratum("1", "", "1"),
                f64::from(i),
                1e6,
            )
        })
        .collect();
    let err = record(&nurse, DNA, too_many, "").await.unwrap_err();
    assert_eq!(fields(&err), ["measurements"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_value_metric_refuses_nan_and_infinity_by_field() {
    let suite = TestSuite::start().await;
    create(&bas_team(&suite), "sites/BAS", "los", los_definition())
        .await
        .unwrap();
    let values = vec![
        value(month(0), 4.5),
        value(month(1), f64::NAN),
        value(month(2), f64::INFINITY),
    ];
    let err = record(&bas_nurse(&suite), "sites/BAS/metrics/los", values, "")
        .await
        .unwrap_err();
    assert_eq!(
        fields(&err),
        ["measurements[1].value", "measurements[2].value"]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn bad_values_and_options_of_a_stateless_chart_are_named() {
    let suite = TestSuite::start().await;
    let req = pb::ComputeSpcRequest {
        values: vec![1.0, 2.0, f64::NAN, f64::INFINITY],
        options: Some(pb::SpcOptions {
            rebase_positions: vec![2, 4],
            fix_after_n_points: Some(5),
            target: Some(f64::NAN),
            ..Default::default()
        }),
        view: 0,
    };
    let err = compute(&bas_viewer(&suite), req).await.unwrap_err();
    assert_eq!(
        fields(&err),
        [
            "values[2]",
            "values[3]",
            "options.target",
            "options.rebase_positions[1]",
            "options.fix_after_n_points"
        ]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_stateless_chart_needs_values() {
    let suite = TestSuite::start().await;
    let req = pb::ComputeSpcRequest::default();
    let err = compute(&bas_viewer(&suite), req).await.unwrap_err();
    assert_eq!(fields(&err), ["values"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_stored_chart_takes_no_rebase_positions_in_its_options() {
    let suite = TestSuite::start().await;
    los(&suite).await;
    let req = pb::GetSpcChartRequest {
        options: Some(pb::SpcOptions {
            rebase_positions: vec![3],
            ..Default::default()
        }),
        ..chart_request(LOS)
    };
    let err = chart(&sou_viewer(&suite), req).await.unwrap_err();
    assert_eq!(fields(&err), ["options.rebase_positions"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_chart_filter_on_a_dimension_the_metric_does_not_record_is_refused() {
    let suite = TestSuite::start().await;
    los(&suite).await;
    let req = pb::GetSpcChartRequest {
        filter: Some(pb::SeriesFilter {
            stratum: stratum("1", "", ""),
            ..Default::default()
        }),
        ..chart_request(LOS)
    };
    let err = chart(&sou_viewer(&suite), req).await.unwrap_err();
    assert_eq!(fields(&err), ["filter.stratum.imd_quintile"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_picture_too_narrow_is_refused() {
    let suite = TestSuite::start().await;
    los(&suite).await;
    let req = pb::RenderSpcChartRequest {
        width: 20,
        ..render_request(LOS)
    };
    let err = render(&sou_viewer(&suite), req).await.unwrap_err();
    assert_eq!(fields(&err), ["width"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_breakdown_by_a_dimension_the_metric_does_not_record_is_refused() {
    let suite = TestSuite::start().await;
    let viewer = readmissions_at_brm(&suite).await;
    let req = december_breakdown(pb::InequalityDimension::Sex, false);
    let err = breakdown(&viewer, req).await.unwrap_err();
    assert_eq!(fields(&err), ["dimension"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn only_a_breakdown_by_ethnic_category_combines_ethnic_groups() {
    let suite = TestSuite::start().await;
    let viewer = readmissions_at_brm(&suite).await;
    let req = december_breakdown(pb::InequalityDimension::ImdQuintile, true);
    let err = breakdown(&viewer, req).await.unwrap_err();
    assert_eq!(fields(&err), ["combine_ethnic_groups"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_breakdown_filtered_on_its_own_dimension_is_refused() {
    let suite = TestSuite::start().await;
    let viewer = readmissions_at_brm(&suite).await;
    let mut own = december_breakdown(pb::InequalityDimension::ImdQuintile, false);
    own.filter = Some(pb::SeriesFilter {
        stratum: stratum("1", "", ""),
        ..Default::default()
    });
    let err = breakdown(&viewer, own).await.unwrap_err();
    assert_eq!(fields(&err), ["filter.stratum.imd_quintile"]);
    suite.stop().await.unwrap();
}
