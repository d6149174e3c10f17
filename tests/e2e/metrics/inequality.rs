//! Inequality breakdowns on the hand-computed case of [`super::readmissions`]: each
//! stratum's rate and population, the gap, the slope and relative indices, the strata's
//! own SPC, ethnic groups combined, and a filter on another dimension.

use qi_e2e::TestSuite;
use qi_e2e::metrics::{breakdown, stratum};
use qi_proto::metrics as pb;

use super::{close, december, december_breakdown, readmissions_at_brm};

/// December's breakdown by IMD quintile, as a BRM viewer reads it.
async fn by_imd(suite: &TestSuite) -> pb::InequalityBreakdown {
    let viewer = readmissions_at_brm(suite).await;
    let req = december_breakdown(pb::InequalityDimension::ImdQuintile, false);
    breakdown(&viewer, req).await.unwrap()
}

#[tokio::test]
async fn the_imd_breakdown_gives_each_quintiles_rate_and_population() {
    let suite = TestSuite::start().await;
    let b = by_imd(&suite).await;
    let labels: Vec<&str> = b.strata.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["1", "2", "3", "4", "5", "U"]);
    let rates: Vec<f64> = b.strata.iter().map(|s| s.value.unwrap()).collect();
    for (got, want) in rates.iter().zip([30.0, 25.0, 20.0, 15.0, 10.0, 10.0]) {
        assert!(close(*got, want), "{rates:?}");
    }
    let populations: Vec<f64> = b.strata.iter().map(|s| s.count).collect();
    assert_eq!(populations, [100.0, 200.0, 300.0, 200.0, 200.0, 100.0]);
    assert!(b.strata[5].unknown && !b.strata[0].unknown);
    assert_eq!(b.period_count, 1);
    assert_eq!(b.overall_count, 1_100.0);
    assert!(close(b.unknown_share, 100.0 / 1_100.0));
    assert!(close(b.overall_value.unwrap(), 200.0 / 1_100.0 * 100.0));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_imd_gap_is_quintile_1_against_quintile_5() {
    let suite = TestSuite::start().await;
    let gap = by_imd(&suite).await.gap.unwrap();
    assert_eq!(
        (
            gap.comparison_stratum.as_str(),
            gap.reference_stratum.as_str()
        ),
        ("1", "5")
    );
    assert!(close(gap.absolute_gap, 20.0));
    assert!(close(gap.rate_ratio.unwrap(), 3.0));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_slope_and_relative_indices_match_the_hand_computed_case() {
    let suite = TestSuite::start().await;
    let b = by_imd(&suite).await;
    let sii = -1.75 / 0.079;
    assert!(close(b.slope_index.unwrap(), sii), "{:?}", b.slope_index);
    assert!(close(b.relative_index.unwrap(), sii / 19.0));
    let ranks: Vec<Option<f64>> = b.strata.iter().map(|s| s.rank).collect();
    for (got, want) in ranks.iter().zip([0.05, 0.2, 0.45, 0.7, 0.9]) {
        assert!(close(got.unwrap(), want), "{ranks:?}");
    }
    assert_eq!(ranks[5], None, "unknown strata take no rank");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn quintile_1s_december_is_a_special_cause_concern_on_its_own_chart() {
    let suite = TestSuite::start().await;
    let b = by_imd(&suite).await;
    let concerns: Vec<bool> = b.strata.iter().map(|s| s.spc_concern).collect();
    assert_eq!(concerns, [true, false, false, false, false, false]);
    assert!(b.concern);
    assert_eq!(
        b.strata[0].variation_icon,
        pb::SpcVariationIcon::ConcernHigh as i32
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn ethnic_categories_combine_into_broad_groups_without_a_slope_index() {
    let suite = TestSuite::start().await;
    let viewer = readmissions_at_brm(&suite).await;
    let req = december_breakdown(pb::InequalityDimension::EthnicCategory, true);
    let b = breakdown(&viewer, req).await.unwrap();
    let got: Vec<(&str, Option<f64>)> = b
        .strata
        .iter()
        .map(|s| (s.label.as_str(), s.value))
        .collect();
    assert_eq!(got[0].0, "WHITE");
    assert!(close(got[0].1.unwrap(), 145.0 / 750.0 * 100.0));
    assert_eq!(got[1], ("MIXED", None));
    assert!(close(got[2].1.unwrap(), 30.0));
    assert!(close(got[3].1.unwrap(), 15.0));
    assert_eq!(got[4], ("OTHER", None));
    assert_eq!((got[5].0, got[6].0), ("Z", "99"));
    let gap = b.gap.unwrap();
    assert_eq!(
        (
            gap.comparison_stratum.as_str(),
            gap.reference_stratum.as_str()
        ),
        ("ASIAN", "BLACK")
    );
    assert!(close(gap.rate_ratio.unwrap(), 2.0));
    assert_eq!(b.slope_index, None);
    assert!(!b.slope_index_note.is_empty());
    assert!(b.ethnic_groups_combined);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_filter_on_another_dimension_narrows_the_breakdown() {
    let suite = TestSuite::start().await;
    let viewer = readmissions_at_brm(&suite).await;
    // Among the White British only, quintile 1 is 15/50.
    let mut among = december_breakdown(pb::InequalityDimension::ImdQuintile, false);
    among.filter = Some(pb::SeriesFilter {
        stratum: stratum("", "A", ""),
        ..december()
    });
    let b = breakdown(&viewer, among).await.unwrap();
    assert!(close(b.strata[0].value.unwrap(), 30.0));
    assert_eq!(b.strata[0].count, 50.0);
    suite.stop().await.unwrap();
}
