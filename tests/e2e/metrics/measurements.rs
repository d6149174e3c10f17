//! Measurement ingest: a batch is stored by its keys (period, site, stratum), a correction
//! replaces a stored value, and a trust metric recorded by site takes each row's site.

use qi_e2e::metrics::{counts, create, month, rate, record, stratum, value};
use qi_e2e::{Caller, TestSuite, date, fields, ymd};
use qi_proto::metrics as pb;
use tonic::Code;

use super::{DNA, STORED, bas_nurse, complaints, trust_team, weekly_batch, weekly_dna};

#[tokio::test]
async fn a_batch_is_stored_a_measurement_a_row() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    let first = record(&nurse, DNA, weekly_batch(), "").await.unwrap();
    assert_eq!(counts(&first), (48, 0, 0));
    assert_eq!(suite.count(STORED).await, 48);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_corrected_value_replaces_the_stored_one_and_a_new_key_adds_one() {
    let suite = TestSuite::start().await;
    let nurse = weekly_dna(&suite).await;
    record(&nurse, DNA, weekly_batch(), "").await.unwrap();
    let mut correction = weekly_batch();
    correction.truncate(1);
    correction[0].numerator = Some(9.0);
    correction.push(rate(
        date(ymd(2026, 2, 2)),
        stratum("1", "", "1"),
        1.0,
        50.0,
    ));
    let fixed = record(&nurse, DNA, correction, "").await.unwrap();
    assert_eq!(counts(&fixed), (1, 1, 0));
    assert_eq!(suite.count(STORED).await, 49);
    suite.stop().await.unwrap();
}

/// The trust's monthly complaints, recorded by site: a row's site is required.
async fn complaints_by_site(suite: &TestSuite) {
    let mut by_site = complaints();
    by_site.location_breakdown = pb::LocationBreakdown::Site as i32;
    create(&trust_team(suite), "trust", "complaints", by_site)
        .await
        .unwrap();
}

/// January 2024's twelve complaints at `site`.
fn complaint(site: &str) -> pb::Measurement {
    pb::Measurement {
        site: site.into(),
        ..value(month(0), 12.0)
    }
}

/// A contributor of every site.
fn trust_clerk(suite: &TestSuite) -> Caller {
    suite.caller("trust-clerk", &["contributor"], &["*"])
}

#[tokio::test]
async fn a_trust_metric_by_site_is_recorded_by_trust_wide_contributors() {
    let suite = TestSuite::start().await;
    complaints_by_site(&suite).await;
    let both = vec![complaint("sites/BAS"), complaint("sites/SOU")];
    let done = record(&trust_clerk(&suite), "trust/metrics/complaints", both, "")
        .await
        .unwrap();
    assert_eq!(counts(&done), (2, 0, 0));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_site_contributor_cannot_record_a_trust_metric() {
    let suite = TestSuite::start().await;
    complaints_by_site(&suite).await;
    let bas = vec![complaint("sites/BAS")];
    let err = record(&bas_nurse(&suite), "trust/metrics/complaints", bas, "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_trust_metric_by_site_refuses_a_row_without_its_site() {
    let suite = TestSuite::start().await;
    complaints_by_site(&suite).await;
    let nowhere = vec![complaint("")];
    let err = record(
        &trust_clerk(&suite),
        "trust/metrics/complaints",
        nowhere,
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(fields(&err), ["measurements[0].site"]);
    suite.stop().await.unwrap();
}
