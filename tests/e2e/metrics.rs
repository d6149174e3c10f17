//! The metrics service through the gateway: metric definitions, measurement ingest (site
//! rules, idempotent re-sends, all-or-nothing batches with field-named errors), SPC equal
//! to the engine on the same values, the SVG chart, inequality breakdowns on a hand-computed
//! case, and the QMS dashboard scoped to the caller's sites.

use std::collections::HashSet;

use qi_e2e::{TestSuite, authed};
use qi_proto::google::r#type::Date;
use qi_proto::metrics as pb;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

// The SPC engine itself: the reference the service's answers must equal bit for bit.
use qi_metrics::spc;

type Client = MetricServiceClient<Channel>;

fn client(suite: &TestSuite) -> Client {
    MetricServiceClient::new(suite.channel.clone())
}

fn d(year: i32, month: i32, day: i32) -> Date {
    Date { year, month, day }
}

/// The first of the month `i` months after January 2024.
fn month(i: i32) -> Date {
    d(2024 + i / 12, i % 12 + 1, 1)
}

/// The fields a refusal names.
fn fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|f| f.field).collect())
        .unwrap_or_default()
}

async fn count(suite: &TestSuite, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

fn metric(
    display_name: &str,
    kind: pb::MetricKind,
    direction: pb::ImprovementDirection,
    frequency: pb::MetricFrequency,
    value_type: pb::MetricValueType,
    dimensions: &[pb::InequalityDimension],
) -> pb::Metric {
    let imd = dimensions.contains(&pb::InequalityDimension::ImdQuintile);
    pb::Metric {
        display_name: display_name.into(),
        kind: kind as i32,
        improvement_direction: direction as i32,
        frequency: frequency as i32,
        value_type: value_type as i32,
        dimensions: dimensions.iter().map(|d| *d as i32).collect(),
        imd_edition: if imd {
            pb::ImdEdition::Imd2019 as i32
        } else {
            0
        },
        ..Default::default()
    }
}

async fn create(
    c: &mut Client,
    token: &str,
    parent: &str,
    id: &str,
    m: pb::Metric,
) -> Result<pb::Metric, tonic::Status> {
    c.create_metric(authed(
        token,
        pb::CreateMetricRequest {
            parent: parent.into(),
            metric_id: id.into(),
            metric: Some(m),
            request_id: String::new(),
        },
    ))
    .await
    .map(|r| r.into_inner().metric.expect("a metric"))
}

async fn ingest(
    c: &mut Client,
    token: &str,
    parent: &str,
    measurements: Vec<pb::Measurement>,
    request_id: &str,
) -> Result<pb::BatchCreateMeasurementsResponse, tonic::Status> {
    c.batch_create_measurements(authed(
        token,
        pb::BatchCreateMeasurementsRequest {
            parent: parent.into(),
            measurements,
            request_id: request_id.into(),
        },
    ))
    .await
    .map(|r| r.into_inner())
}

fn stratum(imd: &str, ethnic: &str, sex: &str) -> Option<pb::Stratum> {
    Some(pb::Stratum {
        imd_quintile: imd.into(),
        ethnic_category: ethnic.into(),
        age_band: String::new(),
        sex: sex.into(),
    })
}

fn rate(
    period: Date,
    stratum: Option<pb::Stratum>,
    numerator: f64,
    denominator: f64,
) -> pb::Measurement {
    pb::Measurement {
        period: Some(period),
        stratum,
        numerator: Some(numerator),
        denominator: Some(denominator),
        ..Default::default()
    }
}

fn value(period: Date, v: f64) -> pb::Measurement {
    pb::Measurement {
        period: Some(period),
        value: Some(v),
        ..Default::default()
    }
}

fn counts(r: &pb::BatchCreateMeasurementsResponse) -> (i32, i32, i32) {
    (r.created_count, r.updated_count, r.unchanged_count)
}

#[tokio::test]
async fn metric_definitions_carry_scope_recording_rules_and_update_with_masks_and_etags() {
    let suite = TestSuite::start().await;
    let mut c = client(&suite);
    let bas = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let viewer = suite.token("bas-viewer", &["viewer"], &["BAS"]);

    let mut falls = metric(
        "Inpatient falls per 1,000 bed days",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Rate,
        &[
            pb::InequalityDimension::ImdQuintile,
            pb::InequalityDimension::Sex,
        ],
    );
    falls.rate_per = 1_000.0;
    falls.target = Some(5.0);
    falls.unit = "per 1,000 bed days".into();
    falls.description = "Datix falls over occupied bed days".into();
    let made = create(&mut c, &bas, "sites/BAS", "falls", falls.clone())
        .await
        .unwrap();
    assert_eq!(made.name, "sites/BAS/metrics/falls");
    assert_eq!(made.scope, pb::MetricScope::Site as i32);
    assert_eq!(made.rate_per, 1_000.0);
    assert_eq!(made.target, Some(5.0));
    assert_eq!(made.location_breakdown, pb::LocationBreakdown::None as i32);
    assert_eq!(made.dimensions.len(), 2);
    assert!(!made.has_measurements);

    // A ward's and a project's metric live under their site.
    let mut ward = falls.clone();
    ward.ward = "sites/BAS/wards/cedar".into();
    let ward = create(&mut c, &bas, "sites/BAS", "cedar-falls", ward)
        .await
        .unwrap();
    assert_eq!(ward.scope, pb::MetricScope::Ward as i32);
    assert_eq!(ward.ward, "sites/BAS/wards/cedar");
    let mut project = falls.clone();
    project.project = "sites/BAS/projects/frailty".into();
    let project = create(&mut c, &bas, "sites/BAS", "frailty-falls", project)
        .await
        .unwrap();
    assert_eq!(project.scope, pb::MetricScope::Project as i32);
    let mut elsewhere = falls.clone();
    elsewhere.project = "sites/SOU/projects/frailty".into();
    let err = create(&mut c, &bas, "sites/BAS", "x", elsewhere)
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["metric.project"]);

    // Bad definitions name every field.
    let mut bad = falls.clone();
    bad.frequency = 0;
    bad.imd_edition = 0;
    bad.age_bands = vec!["0-17".into()];
    bad.target = Some(f64::NAN);
    let err = create(&mut c, &bas, "sites/BAS", "Bad Id", bad)
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

    // Trust-wide metrics: written by trust-wide callers only, read by anyone with the role.
    let trust_metric = metric(
        "Complaints",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Count,
        &[],
    );
    let err = create(&mut c, &bas, "trust", "complaints", trust_metric.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    create(&mut c, &trust, "trust", "complaints", trust_metric)
        .await
        .unwrap();
    let got = c
        .get_metric(authed(
            &viewer,
            pb::GetMetricRequest {
                name: "trust/metrics/complaints".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .metric
        .unwrap();
    assert_eq!(got.scope, pb::MetricScope::Trust as i32);
    let sou = suite.token("sou-viewer", &["viewer"], &["SOU"]);
    let err = c
        .get_metric(authed(
            &sou,
            pb::GetMetricRequest {
                name: "sites/BAS/metrics/falls".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Update: a masked field, with the etag read; a stale etag is refused.
    let update = |m: pb::Metric, paths: &[&str]| pb::UpdateMetricRequest {
        metric: Some(m),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    };
    let mut change = made.clone();
    change.display_name = "Falls per 1,000 occupied bed days".into();
    change.target = None;
    let updated = c
        .update_metric(authed(
            &bas,
            update(change.clone(), &["display_name", "target"]),
        ))
        .await
        .unwrap()
        .into_inner()
        .metric
        .unwrap();
    assert_eq!(updated.display_name, "Falls per 1,000 occupied bed days");
    assert_eq!(updated.target, None, "a masked, unset target is cleared");
    assert_ne!(updated.etag, made.etag);
    let err = c
        .update_metric(authed(&bas, update(change.clone(), &["display_name"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    let mut fresh = updated.clone();
    let err = c
        .update_metric(authed(&bas, update(fresh.clone(), &["frequency"])))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["update_mask"]);
    // Recording rules change freely until the first measurement, then never.
    fresh
        .dimensions
        .push(pb::InequalityDimension::EthnicCategory as i32);
    let widened = c
        .update_metric(authed(&bas, update(fresh, &["dimensions"])))
        .await
        .unwrap()
        .into_inner()
        .metric
        .unwrap();
    assert_eq!(widened.dimensions.len(), 3);
    let contributor = suite.token("bas-nurse", &["contributor"], &["BAS"]);
    ingest(
        &mut c,
        &contributor,
        "sites/BAS/metrics/falls",
        vec![rate(month(0), stratum("1", "A", "2"), 2.0, 400.0)],
        "",
    )
    .await
    .unwrap();
    let mut narrower = widened.clone();
    narrower.dimensions.pop();
    let err = c
        .update_metric(authed(&bas, update(narrower, &["dimensions"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // Contributors record but do not define.
    let err = c
        .update_metric(authed(&contributor, update(widened, &["display_name"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Lists page.
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_metrics(authed(
                &viewer,
                pb::ListMetricsRequest {
                    parent: "sites/BAS".into(),
                    page_size: 2,
                    page_token: token.clone(),
                },
            ))
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

/// 4 weeks × IMD {1..5, U} × sex {1, 2}: 48 measurements of a weekly rate.
fn weekly_batch() -> Vec<pb::Measurement> {
    let mut out = Vec::new();
    for week in 0..4 {
        let monday = d(2026, 1, 5 + 7 * week);
        for (q, imd) in ["1", "2", "3", "4", "5", "U"].iter().enumerate() {
            for sex in ["1", "2"] {
                out.push(rate(monday, stratum(imd, "", sex), (q + 1) as f64, 100.0));
            }
        }
    }
    out
}

#[tokio::test]
async fn measurements_ingest_all_or_nothing_idempotently_and_by_site_rules() {
    let suite = TestSuite::start().await;
    let mut c = client(&suite);
    let team = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let nurse = suite.token("bas-nurse", &["contributor"], &["BAS"]);
    let viewer = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    let sou_nurse = suite.token("sou-nurse", &["contributor"], &["SOU"]);
    let mut dna = metric(
        "Did-not-attend rate",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Week,
        pb::MetricValueType::Rate,
        &[
            pb::InequalityDimension::ImdQuintile,
            pb::InequalityDimension::Sex,
        ],
    );
    dna.rate_per = 100.0;
    create(&mut c, &team, "sites/BAS", "dna", dna)
        .await
        .unwrap();
    let parent = "sites/BAS/metrics/dna";
    let stored = || count(&suite, "SELECT count(*) FROM metrics.measurement");

    // Contributors record; a re-sent batch changes nothing.
    let first = ingest(&mut c, &nurse, parent, weekly_batch(), "")
        .await
        .unwrap();
    assert_eq!(counts(&first), (48, 0, 0));
    let again = ingest(&mut c, &nurse, parent, weekly_batch(), "")
        .await
        .unwrap();
    assert_eq!(counts(&again), (0, 0, 48));
    assert_eq!(stored().await, 48);
    let before: Vec<(i64, String)> = {
        let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
        let rows =
            sqlx::query_as("SELECT id, update_time::text FROM metrics.measurement ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows
    };
    ingest(&mut c, &nurse, parent, weekly_batch(), "")
        .await
        .unwrap();
    let after: Vec<(i64, String)> = {
        let pool = sqlx::PgPool::connect(&suite.database_url).await.unwrap();
        let rows =
            sqlx::query_as("SELECT id, update_time::text FROM metrics.measurement ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows
    };
    assert_eq!(before, after, "a re-send touches no row");

    // A corrected value replaces the stored one; a new key adds one.
    let mut correction = weekly_batch();
    correction.truncate(1);
    correction[0].numerator = Some(9.0);
    correction.push(rate(d(2026, 2, 2), stratum("1", "", "1"), 1.0, 50.0));
    let fixed = ingest(&mut c, &nurse, parent, correction, "")
        .await
        .unwrap();
    assert_eq!(counts(&fixed), (1, 1, 0));
    assert_eq!(stored().await, 49);

    // All or nothing: one bad measurement stores none, and every bad field is named.
    let mut nan = rate(d(2026, 2, 9), stratum("2", "", "1"), f64::NAN, 10.0);
    nan.count = 3;
    let bad = vec![
        rate(d(2026, 2, 9), stratum("1", "", "1"), 1.0, 10.0),
        nan,
        rate(d(2026, 2, 9), stratum("3", "", "1"), 1.0, 0.0),
        rate(d(2026, 2, 10), stratum("4", "", "1"), 1.0, 10.0),
        rate(d(2026, 2, 9), stratum("6", "", "1"), 1.0, 10.0),
        rate(d(2026, 2, 9), stratum("5", "A", "1"), 1.0, 10.0),
        rate(d(2026, 2, 9), stratum("5", "", ""), 1.0, 10.0),
        rate(d(2026, 2, 9), stratum("1", "", "1"), 1.0, 10.0),
        pb::Measurement {
            value: Some(3.0),
            ..rate(d(2026, 2, 9), stratum("U", "", "X"), 1.0, 10.0)
        },
        pb::Measurement {
            site: "sites/SOU".into(),
            ..rate(d(2026, 2, 9), stratum("U", "", "1"), 1.0, 10.0)
        },
    ];
    let err = ingest(&mut c, &nurse, parent, bad, "").await.unwrap_err();
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
    assert_eq!(stored().await, 49, "nothing of the bad batch was stored");
    let err = ingest(&mut c, &nurse, parent, Vec::new(), "")
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["measurements"]);
    let too_many: Vec<_> = (0..10_001)
        .map(|i| rate(d(2026, 1, 5), stratum("1", "", "1"), f64::from(i), 1e6))
        .collect();
    let err = ingest(&mut c, &nurse, parent, too_many, "")
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["measurements"]);

    // A value metric refuses NaN and infinity by `measurements[i].value`.
    let los = metric(
        "Mean length of stay",
        pb::MetricKind::Outcome,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Mean,
        &[],
    );
    create(&mut c, &team, "sites/BAS", "los", los)
        .await
        .unwrap();
    let err = ingest(
        &mut c,
        &nurse,
        "sites/BAS/metrics/los",
        vec![
            value(month(0), 4.5),
            value(month(1), f64::NAN),
            value(month(2), f64::INFINITY),
        ],
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(
        fields(&err),
        ["measurements[1].value", "measurements[2].value"]
    );

    // A retry with the same request id returns the first answer; another body is refused.
    let request_id = "2f8c7a3e-1b4d-4c1a-9e55-7d0f3b2a6c10";
    let one = vec![rate(d(2026, 2, 16), stratum("1", "", "1"), 1.0, 10.0)];
    let first = ingest(&mut c, &nurse, parent, one.clone(), request_id)
        .await
        .unwrap();
    let replay = ingest(&mut c, &nurse, parent, one, request_id)
        .await
        .unwrap();
    assert_eq!(counts(&first), (1, 0, 0));
    assert_eq!(
        replay, first,
        "the replay is the first answer, not (0, 0, 1)"
    );
    let other = vec![rate(d(2026, 2, 16), stratum("2", "", "1"), 1.0, 10.0)];
    let err = ingest(&mut c, &nurse, parent, other, request_id)
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["request_id"]);

    // Site rules: viewers do not record; another site's contributor is refused whether or
    // not the metric exists; a trust-wide metric is written by trust-wide callers only.
    for (token, name) in [
        (&viewer, parent),
        (&sou_nurse, parent),
        (&sou_nurse, "sites/BAS/metrics/no-such-metric"),
    ] {
        let err = ingest(&mut c, token, name, weekly_batch(), "")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{name}");
    }
    let err = ingest(
        &mut c,
        &nurse,
        "sites/BAS/metrics/no-such-metric",
        weekly_batch(),
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let trust_team = suite.token("qi-office", &["improvement_team"], &["*"]);
    let mut by_site = metric(
        "Complaints",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Count,
        &[],
    );
    by_site.location_breakdown = pb::LocationBreakdown::Site as i32;
    create(&mut c, &trust_team, "trust", "complaints", by_site)
        .await
        .unwrap();
    let complaint = |site: &str| pb::Measurement {
        site: site.into(),
        ..value(month(0), 12.0)
    };
    let err = ingest(
        &mut c,
        &nurse,
        "trust/metrics/complaints",
        vec![complaint("sites/BAS")],
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let trust_nurse = suite.token("trust-clerk", &["contributor"], &["*"]);
    let done = ingest(
        &mut c,
        &trust_nurse,
        "trust/metrics/complaints",
        vec![complaint("sites/BAS"), complaint("sites/SOU")],
        "",
    )
    .await
    .unwrap();
    assert_eq!(counts(&done), (2, 0, 0));
    let err = ingest(
        &mut c,
        &trust_nurse,
        "trust/metrics/complaints",
        vec![complaint("")],
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(fields(&err), ["measurements[0].site"]);

    // The measurements page through, oldest first, each once.
    let mut seen = HashSet::new();
    let mut periods = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_measurements(authed(
                &viewer,
                pb::ListMeasurementsRequest {
                    parent: parent.into(),
                    page_size: 20,
                    page_token: token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
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

/// Thirty months of mean length of stay: a stable process that shifts down after a change.
fn los_values() -> Vec<f64> {
    vec![
        6.1, 5.8, 6.4, 6.0, 5.7, 6.3, 6.6, 5.9, 6.2, 6.0, 5.6, 6.5, 6.1, 5.9, 6.3, 6.2, 5.8, 6.0,
        4.9, 5.1, 4.6, 4.8, 5.0, 4.4, 4.7, 4.9, 4.5, 4.8, 4.6, 4.3,
    ]
}

fn point_type(t: spc::PointType) -> pb::SpcPointType {
    match t {
        spc::PointType::CommonCause => pb::SpcPointType::CommonCause,
        spc::PointType::ImprovementHigh => pb::SpcPointType::ImprovementHigh,
        spc::PointType::ImprovementLow => pb::SpcPointType::ImprovementLow,
        spc::PointType::ConcernHigh => pb::SpcPointType::ConcernHigh,
        spc::PointType::ConcernLow => pb::SpcPointType::ConcernLow,
        spc::PointType::NeutralHigh => pb::SpcPointType::NeutralHigh,
        spc::PointType::NeutralLow => pb::SpcPointType::NeutralLow,
    }
}

fn variation(v: spc::VariationIcon) -> pb::SpcVariationIcon {
    match v {
        spc::VariationIcon::CommonCause => pb::SpcVariationIcon::CommonCause,
        spc::VariationIcon::ImprovementHigh => pb::SpcVariationIcon::ImprovementHigh,
        spc::VariationIcon::ImprovementLow => pb::SpcVariationIcon::ImprovementLow,
        spc::VariationIcon::ConcernHigh => pb::SpcVariationIcon::ConcernHigh,
        spc::VariationIcon::ConcernLow => pb::SpcVariationIcon::ConcernLow,
        spc::VariationIcon::NeutralHigh => pb::SpcVariationIcon::NeutralHigh,
        spc::VariationIcon::NeutralLow => pb::SpcVariationIcon::NeutralLow,
    }
}

fn assurance(a: Option<spc::AssuranceIcon>) -> pb::SpcAssuranceIcon {
    match a {
        None => pb::SpcAssuranceIcon::None,
        Some(spc::AssuranceIcon::ConsistentPass) => pb::SpcAssuranceIcon::ConsistentPass,
        Some(spc::AssuranceIcon::ConsistentFail) => pb::SpcAssuranceIcon::ConsistentFail,
        Some(spc::AssuranceIcon::Inconsistent) => pb::SpcAssuranceIcon::Inconsistent,
    }
}

/// Asserts the service's chart is the engine's, field for field and bit for bit.
fn assert_same_chart(got: &pb::SpcChart, want: &spc::SpcChart) {
    assert_eq!(got.points.len(), want.points.len());
    for (i, (g, w)) in got.points.iter().zip(&want.points).enumerate() {
        let at = format!("point {i}");
        assert_eq!(g.position as usize, i, "{at}");
        assert_eq!(g.value.to_bits(), w.value.to_bits(), "{at} value");
        assert_eq!(g.mean.to_bits(), w.mean.to_bits(), "{at} mean");
        assert_eq!(g.group as usize, w.group, "{at} group");
        assert_eq!(g.rebase_group as usize, w.rebase_group, "{at} rebase group");
        let bits = |x: Option<f64>| x.map(f64::to_bits);
        assert_eq!(
            bits(g.lower_process_limit),
            bits(w.limits.map(|l| l.lower)),
            "{at}"
        );
        assert_eq!(
            bits(g.upper_process_limit),
            bits(w.limits.map(|l| l.upper)),
            "{at}"
        );
        assert_eq!(
            bits(g.lower_two_sigma),
            bits(w.limits.map(|l| l.lower_two_sigma)),
            "{at}"
        );
        assert_eq!(
            bits(g.upper_two_sigma),
            bits(w.limits.map(|l| l.upper_two_sigma)),
            "{at}"
        );
        assert_eq!(
            bits(g.moving_range),
            bits(w.moving_range),
            "{at} moving range"
        );
        assert_eq!(
            g.moving_range_screened_out, w.moving_range_screened_out,
            "{at}"
        );
        let side = match w.side {
            spc::MeanSide::Above => pb::SpcMeanSide::Above,
            spc::MeanSide::On => pb::SpcMeanSide::On,
            spc::MeanSide::Below => pb::SpcMeanSide::Below,
        };
        assert_eq!(g.side, side as i32, "{at} side");
        assert_eq!(g.near_limit, w.near_limit, "{at} near limit");
        let rules = g.rules.unwrap_or_default();
        assert_eq!(
            (
                rules.outside_limits,
                rules.shift,
                rules.trend,
                rules.two_in_three
            ),
            (
                w.rules.outside_limits,
                w.rules.shift,
                w.rules.trend,
                w.rules.two_in_three
            ),
            "{at} rules"
        );
        assert_eq!(g.special_cause_label, w.special_cause.ptd_label(), "{at}");
        assert_eq!(g.point_type, point_type(w.point_type) as i32, "{at}");
        assert_eq!(g.colour, w.point_type.colour(), "{at}");
        assert_eq!(g.trial_limits, w.trial_limits, "{at}");
    }
    assert_eq!(got.groups.len(), want.groups.len());
    for (g, w) in got.groups.iter().zip(&want.groups) {
        assert_eq!(
            (
                g.start as usize,
                g.length as usize,
                g.baseline_length as usize
            ),
            (w.start, w.len, w.baseline_len)
        );
        assert_eq!(g.mean.to_bits(), w.mean.to_bits());
        assert_eq!(
            g.mean_moving_range.map(f64::to_bits),
            w.mean_moving_range.map(f64::to_bits)
        );
        assert_eq!(g.trial_limits, w.trial_limits);
    }
    assert_eq!(got.variation_icon, variation(want.variation) as i32);
    assert_eq!(got.assurance_icon, assurance(want.assurance) as i32);
    assert_eq!(got.point_count as usize, want.points.len());
}

/// A tiny XML well-formedness check: tags nest and close, attributes are quoted, no raw `<`
/// or stray `&` in text. Returns the number of elements.
fn well_formed(doc: &str) -> Result<usize, String> {
    let mut rest = doc
        .strip_prefix("<?xml")
        .and_then(|r| r.split_once("?>"))
        .map_or(doc, |(_, after)| after);
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let text_ok = |t: &str| -> Result<(), String> {
        if t.contains('<') {
            return Err(format!("raw < in {t:?}"));
        }
        for (i, _) in t.match_indices('&') {
            let entity = t[i + 1..].split(';').next().unwrap_or_default();
            let ok = ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
                || entity
                    .strip_prefix('#')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !ok || !t[i..].contains(';') {
                return Err(format!("stray & in {t:?}"));
            }
        }
        Ok(())
    };
    while let Some(open) = rest.find('<') {
        text_ok(&rest[..open])?;
        let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name.trim()) {
                return Err(format!("mismatched </{name}>"));
            }
            continue;
        }
        let body = tag.trim_end_matches('/');
        let name = body
            .split_whitespace()
            .next()
            .ok_or("empty tag")?
            .to_owned();
        let mut attrs = body[name.len()..].trim();
        while !attrs.is_empty() {
            let (_, after) = attrs.split_once('=').ok_or("attribute without value")?;
            let quote = after.chars().next().ok_or("missing value")?;
            if quote != '"' {
                return Err(format!("unquoted attribute in <{name}>"));
            }
            let end = after[1..].find('"').ok_or("unterminated attribute")? + 1;
            text_ok(&after[1..end])?;
            attrs = after[end + 1..].trim();
        }
        elements += 1;
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    text_ok(rest)?;
    if stack.is_empty() {
        Ok(elements)
    } else {
        Err(format!("unclosed {stack:?}"))
    }
}

#[tokio::test]
async fn spc_through_the_service_equals_the_engine_on_the_same_values() {
    let suite = TestSuite::start().await;
    let mut c = client(&suite);
    let team = suite.token("sou-team", &["improvement_team"], &["SOU"]);
    let viewer = suite.token("sou-viewer", &["viewer"], &["SOU"]);
    let bas_viewer = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    let mut los = metric(
        "Mean length of stay",
        pb::MetricKind::Outcome,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Mean,
        &[],
    );
    los.target = Some(5.5);
    los.unit = "days".into();
    create(&mut c, &team, "sites/SOU", "los", los)
        .await
        .unwrap();
    let name = "sites/SOU/metrics/los";
    let values = los_values();
    let batch: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| value(month(i as i32), *v))
        .collect();
    ingest(&mut c, &team, name, batch, "").await.unwrap();

    // Rebase points: at a period start only, one per period.
    let rebase = |id: &str, period: Date| pb::CreateRebasePointRequest {
        parent: name.into(),
        rebase_point_id: id.into(),
        rebase_point: Some(pb::RebasePoint {
            period: Some(period),
            reason: "discharge-to-assess pathway adopted".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let err = c
        .create_rebase_point(authed(&team, rebase("d2a", d(2025, 7, 2))))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["rebase_point.period"]);
    c.create_rebase_point(authed(&team, rebase("d2a", month(18))))
        .await
        .unwrap();
    let err = c
        .create_rebase_point(authed(&team, rebase("again", month(18))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    c.create_rebase_point(authed(&team, rebase("later", month(40))))
        .await
        .unwrap();
    let listed = c
        .list_rebase_points(authed(
            &viewer,
            pb::ListRebasePointsRequest {
                parent: name.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .rebase_points;
    assert_eq!(listed.len(), 2);

    // GetSpcChart with the metric's defaults equals the engine with the same options.
    let get = |options: Option<pb::SpcOptions>, ignore: bool| pb::GetSpcChartRequest {
        metric: name.into(),
        options,
        ignore_rebase_points: ignore,
        ..Default::default()
    };
    let resp = c
        .get_spc_chart(authed(&viewer, get(None, false)))
        .await
        .unwrap()
        .into_inner();
    let chart = resp.chart.unwrap();
    let defaults = spc::SpcOptions {
        improvement_direction: spc::ImprovementDirection::Decrease,
        target: Some(5.5),
        rebase_positions: vec![18],
        ..spc::SpcOptions::default()
    };
    let want = spc::compute(&values, &defaults).unwrap();
    assert_same_chart(&chart, &want);
    assert_eq!(
        chart.groups.len(),
        2,
        "the stored rebase point splits the chart"
    );
    assert_eq!(
        resp.applied_rebase_points.len(),
        1,
        "the future one applies to nothing"
    );
    assert_eq!(chart.points[0].period, Some(month(0)));
    assert_eq!(chart.points[29].period, Some(month(29)));
    assert_eq!(
        chart.applied_options.as_ref().unwrap().rebase_positions,
        [18]
    );

    // Every option, stored and stateless, against the engine.
    let options = pb::SpcOptions {
        improvement_direction: pb::ImprovementDirection::Increase as i32,
        target: Some(4.0),
        rebase_positions: Vec::new(),
        fix_after_n_points: Some(12),
        screen_outliers: Some(false),
        rule_set: pb::SpcRuleSet::LifeQi as i32,
        shift_points: 0,
        trend_points: 5,
        trial_limit_threshold: 12,
    };
    let engine_options = |rebase: Vec<usize>| spc::SpcOptions {
        improvement_direction: spc::ImprovementDirection::Increase,
        target: Some(4.0),
        rebase_positions: rebase,
        fix_after_n_points: Some(12),
        screen_outliers: false,
        rules: spc::RuleParameters {
            shift_points: 8,
            trend_points: 5,
        },
        trial_limit_threshold: 12,
    };
    let chart = c
        .get_spc_chart(authed(&viewer, get(Some(options.clone()), false)))
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert_same_chart(
        &chart,
        &spc::compute(&values, &engine_options(vec![18])).unwrap(),
    );
    let chart = c
        .get_spc_chart(authed(&viewer, get(Some(options.clone()), true)))
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert_same_chart(
        &chart,
        &spc::compute(&values, &engine_options(Vec::new())).unwrap(),
    );
    let computed = c
        .compute_spc(authed(
            &bas_viewer,
            pb::ComputeSpcRequest {
                values: values.clone(),
                options: Some(pb::SpcOptions {
                    rebase_positions: vec![18, 0],
                    ..options.clone()
                }),
                view: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert_same_chart(
        &computed,
        &spc::compute(&values, &engine_options(vec![18, 0])).unwrap(),
    );
    assert_eq!(
        computed.groups[0].rebase_group, 1,
        "a rebase at 0 numbers from 1"
    );
    // ComputeSpc's defaults are the package's (direction increase, screening on).
    let plain = c
        .compute_spc(authed(
            &bas_viewer,
            pb::ComputeSpcRequest {
                values: values.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert_same_chart(
        &plain,
        &spc::compute(&values, &spc::SpcOptions::default()).unwrap(),
    );
    let summary = c
        .compute_spc(authed(
            &bas_viewer,
            pb::ComputeSpcRequest {
                values: values.clone(),
                view: pb::SpcChartView::Summary as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert!(summary.points.is_empty());
    assert_eq!(summary.point_count, 30);
    assert_eq!(summary.latest_point, plain.points.last().cloned());

    // Bad options and values name their fields.
    let err = c
        .compute_spc(authed(
            &bas_viewer,
            pb::ComputeSpcRequest {
                values: vec![1.0, 2.0, f64::NAN, f64::INFINITY],
                options: Some(pb::SpcOptions {
                    rebase_positions: vec![2, 4],
                    fix_after_n_points: Some(5),
                    target: Some(f64::NAN),
                    ..Default::default()
                }),
                view: 0,
            },
        ))
        .await
        .unwrap_err();
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
    let err = c
        .compute_spc(authed(&bas_viewer, pb::ComputeSpcRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["values"]);
    let err = c
        .get_spc_chart(authed(
            &viewer,
            get(
                Some(pb::SpcOptions {
                    rebase_positions: vec![3],
                    ..Default::default()
                }),
                false,
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["options.rebase_positions"]);
    let err = c
        .get_spc_chart(authed(
            &viewer,
            pb::GetSpcChartRequest {
                metric: name.into(),
                filter: Some(pb::SeriesFilter {
                    stratum: stratum("1", "", ""),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["filter.stratum.imd_quintile"]);

    // Too little data is marked, not an error: no points, and a single point.
    let empty = metric(
        "Bed occupancy",
        pb::MetricKind::Process,
        pb::ImprovementDirection::Neither,
        pb::MetricFrequency::Day,
        pb::MetricValueType::Mean,
        &[],
    );
    create(&mut c, &team, "sites/SOU", "occupancy", empty)
        .await
        .unwrap();
    let occupancy = "sites/SOU/metrics/occupancy";
    let none = c
        .get_spc_chart(authed(
            &viewer,
            pb::GetSpcChartRequest {
                metric: occupancy.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert_eq!(
        none.data_sufficiency,
        pb::SpcDataSufficiency::NotEnoughData as i32
    );
    assert!(none.data_sufficiency_reason.contains("no measurements"));
    assert!(none.points.is_empty());
    ingest(
        &mut c,
        &team,
        occupancy,
        vec![value(d(2026, 3, 1), 0.93)],
        "",
    )
    .await
    .unwrap();
    let one = c
        .get_spc_chart(authed(
            &viewer,
            pb::GetSpcChartRequest {
                metric: occupancy.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert_eq!(
        one.data_sufficiency,
        pb::SpcDataSufficiency::NotEnoughData as i32
    );
    assert_eq!(one.points.len(), 1);

    // Another site's caller is refused.
    let err = c
        .get_spc_chart(authed(&bas_viewer, get(None, false)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Annotations: added by contributors, drawn on the picture, deleted.
    let nurse = suite.token("sou-nurse", &["contributor"], &["SOU"]);
    for (id, day, text) in [
        ("pdsa-1", d(2025, 3, 10), "PDSA 1: criteria-led discharge"),
        (
            "pdsa-2",
            d(2025, 6, 16),
            "PDSA 2 started <ward rounds> & huddles",
        ),
    ] {
        c.create_annotation(authed(
            &nurse,
            pb::CreateAnnotationRequest {
                parent: name.into(),
                annotation_id: id.into(),
                annotation: Some(pb::Annotation {
                    date: Some(day),
                    text: text.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    }
    let svg = c
        .render_spc_chart(authed(
            &viewer,
            pb::RenderSpcChartRequest {
                metric: name.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(svg.content_type, "image/svg+xml");
    let elements = well_formed(&svg.svg).unwrap_or_else(|e| panic!("{e}"));
    assert!(elements > 60, "{elements} elements");
    assert!(svg.svg.starts_with("<?xml") && svg.svg.ends_with("</svg>"));
    assert!(svg.svg.contains("Mean length of stay"));
    assert!(svg.svg.contains("Target 5.5"));
    assert!(
        svg.svg
            .contains("PDSA 2 started &lt;ward rounds&gt; &amp; huddles")
    );
    assert_eq!(
        svg.svg.matches("<title>Mean:").count(),
        2,
        "a mean per group"
    );
    if let Some(dir) = std::env::var_os("QI_SAVE_SVG") {
        std::fs::write(std::path::Path::new(&dir).join("los.svg"), &svg.svg).unwrap();
    }
    let err = c
        .render_spc_chart(authed(
            &viewer,
            pb::RenderSpcChartRequest {
                metric: name.into(),
                width: 20,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["width"]);
    c.delete_annotation(authed(
        &nurse,
        pb::DeleteAnnotationRequest {
            name: format!("{name}/annotations/pdsa-1"),
            allow_missing: false,
        },
    ))
    .await
    .unwrap();
    let err = c
        .delete_annotation(authed(
            &nurse,
            pb::DeleteAnnotationRequest {
                name: format!("{name}/annotations/pdsa-1"),
                allow_missing: false,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    c.delete_annotation(authed(
        &nurse,
        pb::DeleteAnnotationRequest {
            name: format!("{name}/annotations/pdsa-1"),
            allow_missing: true,
        },
    ))
    .await
    .unwrap();
    let left = c
        .list_annotations(authed(
            &viewer,
            pb::ListAnnotationsRequest {
                parent: name.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .annotations;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].author, "sou-nurse");
    // Rebase points are the improvement team's.
    let err = c
        .delete_rebase_point(authed(
            &nurse,
            pb::DeleteRebasePointRequest {
                name: format!("{name}/rebasePoints/d2a"),
                allow_missing: false,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    c.delete_rebase_point(authed(
        &team,
        pb::DeleteRebasePointRequest {
            name: format!("{name}/rebasePoints/d2a"),
            allow_missing: false,
        },
    ))
    .await
    .unwrap();
    let chart = c
        .get_spc_chart(authed(&viewer, get(None, false)))
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert_eq!(chart.groups.len(), 1);
    suite.stop().await.unwrap();
}

/// The hand-computed case: in December 2025 the IMD quintiles' readmissions are 30/100,
/// 50/200, 60/300, 30/200 and 20/200 (30, 25, 20, 15 and 10 per 100), plus 10/100 of
/// unknown deprivation. Ranks .05 .2 .45 .7 .9, weighted mean rate 19, Sxy −1.75,
/// Sxx .079: SII = −1.75 / .079 = −22.1519 per 100, RII = SII / 19; the gap between
/// quintile 1 and 5 is 20 per 100, the rate ratio 3; the unknown share 100 / 1,100.
///
/// Before December, eleven months hold each stratum near a steady rate, quintile 1 at 20
/// or 21, so December's 30 is above its upper process limit: a concern for a measure where
/// lower is better.
fn readmissions() -> Vec<pb::Measurement> {
    let mut out = Vec::new();
    for m in 0..11 {
        let p = d(2025, m + 1, 1);
        let wobble = f64::from(m % 2);
        out.push(rate(p, stratum("1", "A", ""), 20.0 + wobble, 100.0));
        out.push(rate(p, stratum("2", "B", ""), 50.0 - wobble, 200.0));
        out.push(rate(p, stratum("3", "A", ""), 60.0 + wobble, 300.0));
        out.push(rate(p, stratum("4", "N", ""), 30.0 + wobble, 200.0));
        out.push(rate(p, stratum("5", "C", ""), 20.0 + wobble, 200.0));
        out.push(rate(p, stratum("U", "Z", ""), 10.0 + wobble, 100.0));
    }
    let dec = d(2025, 12, 1);
    out.extend([
        rate(dec, stratum("1", "A", ""), 15.0, 50.0),
        rate(dec, stratum("1", "H", ""), 15.0, 50.0),
        rate(dec, stratum("2", "B", ""), 50.0, 200.0),
        rate(dec, stratum("3", "A", ""), 60.0, 300.0),
        rate(dec, stratum("4", "N", ""), 30.0, 200.0),
        rate(dec, stratum("5", "C", ""), 20.0, 200.0),
        rate(dec, stratum("U", "Z", ""), 10.0, 100.0),
    ]);
    out
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[tokio::test]
async fn the_inequality_breakdown_matches_a_hand_computed_case() {
    let suite = TestSuite::start().await;
    let mut c = client(&suite);
    let team = suite.token("brm-team", &["improvement_team"], &["BRM"]);
    let viewer = suite.token("brm-viewer", &["viewer"], &["BRM"]);
    let mut readmit = metric(
        "Emergency readmissions within 30 days",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Rate,
        &[
            pb::InequalityDimension::ImdQuintile,
            pb::InequalityDimension::EthnicCategory,
        ],
    );
    readmit.rate_per = 100.0;
    create(&mut c, &team, "sites/BRM", "readmit", readmit)
        .await
        .unwrap();
    let name = "sites/BRM/metrics/readmit";
    let done = ingest(&mut c, &team, name, readmissions(), "")
        .await
        .unwrap();
    assert_eq!(done.created_count, 73);
    let december = Some(pb::SeriesFilter {
        start_date: Some(d(2025, 12, 1)),
        end_date: Some(d(2026, 1, 1)),
        ..Default::default()
    });
    let breakdown =
        |dimension: pb::InequalityDimension, combine: bool| pb::GetInequalityBreakdownRequest {
            metric: name.into(),
            dimension: dimension as i32,
            filter: december.clone(),
            combine_ethnic_groups: combine,
        };
    let b = c
        .get_inequality_breakdown(authed(
            &viewer,
            breakdown(pb::InequalityDimension::ImdQuintile, false),
        ))
        .await
        .unwrap()
        .into_inner()
        .breakdown
        .unwrap();
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
    let gap = b.gap.unwrap();
    assert_eq!(
        (
            gap.comparison_stratum.as_str(),
            gap.reference_stratum.as_str()
        ),
        ("1", "5")
    );
    assert!(close(gap.absolute_gap, 20.0));
    assert!(close(gap.rate_ratio.unwrap(), 3.0));
    let sii = -1.75 / 0.079;
    assert!(close(b.slope_index.unwrap(), sii), "{:?}", b.slope_index);
    assert!(close(b.relative_index.unwrap(), sii / 19.0));
    let ranks: Vec<Option<f64>> = b.strata.iter().map(|s| s.rank).collect();
    for (got, want) in ranks.iter().zip([0.05, 0.2, 0.45, 0.7, 0.9]) {
        assert!(close(got.unwrap(), want), "{ranks:?}");
    }
    assert_eq!(ranks[5], None, "unknown strata take no rank");
    // Quintile 1's December is a special-cause concern on its own chart; the others not.
    let concerns: Vec<bool> = b.strata.iter().map(|s| s.spc_concern).collect();
    assert_eq!(concerns, [true, false, false, false, false, false]);
    assert!(b.concern);
    assert_eq!(
        b.strata[0].variation_icon,
        pb::SpcVariationIcon::ConcernHigh as i32
    );

    // Ethnicity: not ordered (no SII); combined into broad groups.
    let b = c
        .get_inequality_breakdown(authed(
            &viewer,
            breakdown(pb::InequalityDimension::EthnicCategory, true),
        ))
        .await
        .unwrap()
        .into_inner()
        .breakdown
        .unwrap();
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

    // Bad requests name the field.
    let err = c
        .get_inequality_breakdown(authed(
            &viewer,
            breakdown(pb::InequalityDimension::Sex, false),
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["dimension"]);
    let err = c
        .get_inequality_breakdown(authed(
            &viewer,
            breakdown(pb::InequalityDimension::ImdQuintile, true),
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["combine_ethnic_groups"]);
    let mut own = breakdown(pb::InequalityDimension::ImdQuintile, false);
    own.filter = Some(pb::SeriesFilter {
        stratum: stratum("1", "", ""),
        ..Default::default()
    });
    let err = c
        .get_inequality_breakdown(authed(&viewer, own))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["filter.stratum.imd_quintile"]);
    // Among the White British only (another dimension's filter), quintile 1 is 15/50.
    let mut among = breakdown(pb::InequalityDimension::ImdQuintile, false);
    among.filter = Some(pb::SeriesFilter {
        stratum: stratum("", "A", ""),
        ..december.clone().unwrap()
    });
    let b = c
        .get_inequality_breakdown(authed(&viewer, among))
        .await
        .unwrap()
        .into_inner()
        .breakdown
        .unwrap();
    assert!(close(b.strata[0].value.unwrap(), 30.0));
    assert_eq!(b.strata[0].count, 50.0);
    let sou = suite.token("sou-viewer", &["viewer"], &["SOU"]);
    let err = c
        .get_inequality_breakdown(authed(
            &sou,
            breakdown(pb::InequalityDimension::ImdQuintile, false),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

/// Twenty-six weeks of a weekly rate by IMD: the gap between quintiles 1 and 5 holds near 5
/// per 100 for eighteen weeks, then grows a point a week.
fn widening() -> Vec<pb::Measurement> {
    let mut out = Vec::new();
    for w in 0..26u64 {
        let monday =
            chrono::NaiveDate::from_ymd_opt(2025, 1, 6).unwrap() + chrono::Days::new(7 * w);
        let p = qi_platform::convert::date(monday);
        let q5 = 10.0 + (w % 2) as f64;
        let gap = if w < 18 {
            5.0 + (w % 3) as f64 * 0.5
        } else {
            6.0 + (w - 17) as f64
        };
        out.push(rate(p, stratum("1", "", ""), q5 + gap, 100.0));
        out.push(rate(p, stratum("3", "", ""), q5 + 2.0, 100.0));
        out.push(rate(p, stratum("5", "", ""), q5, 100.0));
        out.push(rate(p, stratum("U", "", ""), 1.0, 10.0));
    }
    out
}

#[tokio::test]
async fn the_qms_dashboard_covers_the_callers_sites_and_flags_widening_gaps() {
    let suite = TestSuite::start().await;
    let mut c = client(&suite);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let bas_viewer = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    let qms = |name: &str, dims: &[pb::InequalityDimension]| {
        let mut m = metric(
            name,
            pb::MetricKind::Qms,
            pb::ImprovementDirection::Decrease,
            pb::MetricFrequency::Week,
            pb::MetricValueType::Rate,
            dims,
        );
        m.rate_per = 100.0;
        m.target = Some(30.0);
        m
    };
    let imd = [pb::InequalityDimension::ImdQuintile];
    create(&mut c, &trust, "sites/BAS", "dna", qms("DNA rate", &imd))
        .await
        .unwrap();
    create(&mut c, &trust, "sites/SOU", "dna", qms("DNA rate", &imd))
        .await
        .unwrap();
    create(
        &mut c,
        &trust,
        "trust",
        "sickness",
        qms("Staff sickness", &[]),
    )
    .await
    .unwrap();
    let mut outcome = qms("Pressure ulcers", &[]);
    outcome.kind = pb::MetricKind::Outcome as i32;
    create(&mut c, &trust, "sites/BAS", "ulcers", outcome)
        .await
        .unwrap();
    ingest(&mut c, &trust, "sites/BAS/metrics/dna", widening(), "")
        .await
        .unwrap();
    let flat: Vec<_> = widening()
        .into_iter()
        .filter(|m| m.stratum.as_ref().is_some_and(|s| s.imd_quintile != "1"))
        .collect();
    ingest(&mut c, &trust, "sites/SOU/metrics/dna", flat, "")
        .await
        .unwrap();
    ingest(
        &mut c,
        &trust,
        "trust/metrics/sickness",
        (0..20u64)
            .map(|w| {
                let monday =
                    chrono::NaiveDate::from_ymd_opt(2025, 1, 6).unwrap() + chrono::Days::new(7 * w);
                rate(
                    qi_platform::convert::date(monday),
                    None,
                    4.0 + (w % 3) as f64,
                    100.0,
                )
            })
            .collect(),
        "",
    )
    .await
    .unwrap();

    let dashboard = |token: &str, parent: &str, kinds: Vec<i32>| {
        let mut c = c.clone();
        let token = token.to_owned();
        let parent = parent.to_owned();
        async move {
            c.get_qms_dashboard(authed(
                &token,
                pb::GetQmsDashboardRequest {
                    parent,
                    kinds,
                    page_size: 0,
                    page_token: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner())
        }
    };
    // A BAS caller sees BAS's QMS metrics and the trust's, never SOU's.
    let board = dashboard(&bas_viewer, "sites/-", Vec::new()).await.unwrap();
    let names: Vec<&str> = board.rows.iter().map(|r| r.metric.as_str()).collect();
    assert_eq!(names, ["trust/metrics/sickness", "sites/BAS/metrics/dna"]);
    let dna = &board.rows[1];
    assert_eq!(dna.point_count, 26);
    assert_eq!(dna.latest_period, Some(d(2025, 6, 30)));
    // The last week: (q5 + 14) + (q5 + 2) + q5 over 300, plus 1 of 10 unknown.
    let q5 = 11.0;
    let want = (3.0 * q5 + 16.0 + 1.0) / 310.0 * 100.0;
    assert!(
        close(dna.latest_value.unwrap(), want),
        "{:?}",
        dna.latest_value
    );
    assert_ne!(dna.variation_icon, pb::SpcVariationIcon::Unspecified as i32);
    assert_ne!(dna.assurance_icon, pb::SpcAssuranceIcon::None as i32);
    assert_eq!(
        dna.inequality_trend,
        pb::InequalityGapTrend::Widening as i32
    );
    let signal = &dna.inequality[0];
    assert_eq!(
        signal.dimension,
        pb::InequalityDimension::ImdQuintile as i32
    );
    assert_eq!(signal.gap_period_count, 26);
    assert!(close(signal.latest_gap.unwrap(), 14.0));
    assert!(signal.latest_gap_above_mean);
    assert_eq!(
        board.rows[0].inequality_trend,
        pb::InequalityGapTrend::NotRecorded as i32
    );

    // Another site's dashboard is refused; a site's shows it and the trust's.
    let err = dashboard(&bas_viewer, "sites/SOU", Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let with_outcomes = dashboard(
        &bas_viewer,
        "sites/BAS",
        vec![pb::MetricKind::Qms as i32, pb::MetricKind::Outcome as i32],
    )
    .await
    .unwrap();
    let names: Vec<&str> = with_outcomes
        .rows
        .iter()
        .map(|r| r.metric.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "trust/metrics/sickness",
            "sites/BAS/metrics/dna",
            "sites/BAS/metrics/ulcers"
        ]
    );
    let only_trust = dashboard(&bas_viewer, "trust", Vec::new()).await.unwrap();
    assert_eq!(only_trust.rows.len(), 1);

    // A trust-wide caller sees every site; SOU's gap (quintile 1 unrecorded) cannot be taken.
    let all = dashboard(&trust, "sites/-", Vec::new()).await.unwrap();
    let names: Vec<&str> = all.rows.iter().map(|r| r.metric.as_str()).collect();
    assert_eq!(
        names,
        [
            "trust/metrics/sickness",
            "sites/BAS/metrics/dna",
            "sites/SOU/metrics/dna"
        ]
    );
    assert_eq!(
        all.rows[2].inequality_trend,
        pb::InequalityGapTrend::NotEnoughData as i32
    );
    // The dashboard pages.
    let mut c2 = c.clone();
    let first = c2
        .get_qms_dashboard(authed(
            &trust,
            pb::GetQmsDashboardRequest {
                parent: "sites/-".into(),
                page_size: 2,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.rows.len(), 2);
    let second = c2
        .get_qms_dashboard(authed(
            &trust,
            pb::GetQmsDashboardRequest {
                parent: "sites/-".into(),
                page_size: 2,
                page_token: first.next_page_token,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.rows.len(), 1);
    assert_eq!(second.rows[0].metric, "sites/SOU/metrics/dna");
    assert!(second.next_page_token.is_empty());
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn every_metrics_method_states_its_access_policy_and_the_gateway_applies_it() {
    let pool = prost_reflect::DescriptorPool::decode(qi_proto::FILE_DESCRIPTOR_SET).unwrap();
    let methods = qi_gateway::policy::load(&pool);
    let ours: Vec<_> = methods
        .values()
        .filter(|m| m.service == "qi.metrics.v1.MetricService")
        .collect();
    assert_eq!(ours.len(), 17);
    for m in &ours {
        let policy = m
            .policy
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", m.path));
        assert!(!policy.roles.iter().any(|r| r == "hr_sync"), "{}", m.path);
    }
    let policy = |name: &str| {
        methods[&format!("/qi.metrics.v1.MetricService/{name}")]
            .policy
            .clone()
            .unwrap()
    };
    assert!(
        policy("BatchCreateMeasurements")
            .roles
            .contains(&"contributor".to_owned())
    );
    assert!(
        !policy("CreateRebasePoint")
            .roles
            .contains(&"contributor".to_owned())
    );
    assert!(policy("ComputeSpc").resource_path.is_empty());

    // Through the gateway: the stateless call needs a token and a reading role.
    let suite = TestSuite::start().await;
    let mut c = client(&suite);
    let values = pb::ComputeSpcRequest {
        values: vec![1.0, 2.0, 3.0],
        ..Default::default()
    };
    let err = c.compute_spc(values.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let err = c
        .compute_spc(authed(&hr, values.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let viewer = suite.token("viewer", &["viewer"], &["BRM"]);
    let chart = c
        .compute_spc(authed(&viewer, values))
        .await
        .unwrap()
        .into_inner()
        .chart
        .unwrap();
    assert_eq!(chart.point_count, 3);
    suite.stop().await.unwrap();
}

/// A trust metric recorded by site and one recorded by ward, each with rows at BAS and SOU:
/// a BAS caller's every read of them adds up BAS's rows alone (a trust total beside BAS's
/// own part would give SOU's away by subtraction), and a filter naming SOU's site or ward is
/// refused as an access failure, not answered as bad input.
#[tokio::test]
async fn a_one_site_caller_reads_only_its_sites_part_of_a_trust_metric() {
    let suite = TestSuite::start().await;
    let mut c = client(&suite);
    let trust = suite.token("qi-office", &["improvement_team"], &["*"]);
    let bas = suite.token("bas-viewer", &["viewer"], &["BAS"]);
    let mut falls = metric(
        "Falls",
        pb::MetricKind::Qms,
        pb::ImprovementDirection::Decrease,
        pb::MetricFrequency::Month,
        pb::MetricValueType::Count,
        &[pb::InequalityDimension::Sex],
    );
    falls.location_breakdown = pb::LocationBreakdown::Site as i32;
    create(&mut c, &trust, "trust", "falls", falls.clone())
        .await
        .unwrap();
    falls.location_breakdown = pb::LocationBreakdown::Ward as i32;
    create(&mut c, &trust, "trust", "ward-falls", falls)
        .await
        .unwrap();
    // BAS: 5 a month (sex 1); SOU: 9 a month (sex 2), over twelve months.
    let at = |site: &str, ward: &str, v: f64, sex: &str| {
        (0..12)
            .map(|i| pb::Measurement {
                site: site.into(),
                ward: ward.into(),
                stratum: stratum("", "", sex),
                ..value(month(i), v)
            })
            .collect::<Vec<_>>()
    };
    let mut rows = at("sites/BAS", "", 5.0, "1");
    rows.extend(at("sites/SOU", "", 9.0, "2"));
    ingest(&mut c, &trust, "trust/metrics/falls", rows, "")
        .await
        .unwrap();
    let mut rows = at("", "sites/BAS/wards/cedar", 5.0, "1");
    rows.extend(at("", "sites/SOU/wards/oak", 9.0, "2"));
    ingest(&mut c, &trust, "trust/metrics/ward-falls", rows, "")
        .await
        .unwrap();

    for metric in ["trust/metrics/falls", "trust/metrics/ward-falls"] {
        let listed = c
            .list_measurements(authed(
                &bas,
                pb::ListMeasurementsRequest {
                    parent: metric.into(),
                    page_size: 100,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .measurements;
        assert_eq!(listed.len(), 12, "{metric}");
        assert!(listed.iter().all(|m| m.site == "sites/BAS"), "{metric}");

        let chart = |token: &str| {
            let mut c = c.clone();
            let token = token.to_owned();
            async move {
                c.get_spc_chart(authed(
                    &token,
                    pb::GetSpcChartRequest {
                        metric: metric.into(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .chart
                .unwrap()
            }
        };
        let values =
            |chart: &pb::SpcChart| chart.points.iter().map(|p| p.value).collect::<Vec<_>>();
        assert_eq!(values(&chart(&bas).await), [5.0; 12], "{metric}");
        assert_eq!(values(&chart(&trust).await), [14.0; 12], "{metric}");

        let breakdown = c
            .get_inequality_breakdown(authed(
                &bas,
                pb::GetInequalityBreakdownRequest {
                    metric: metric.into(),
                    dimension: pb::InequalityDimension::Sex as i32,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .breakdown
            .unwrap();
        let counted: Vec<(String, f64)> = breakdown
            .strata
            .iter()
            .filter(|s| s.count > 0.0)
            .map(|s| (s.label.clone(), s.count))
            .collect();
        assert_eq!(counted, [("1".to_owned(), 60.0)], "{metric}");
    }

    let dashboard = c
        .get_qms_dashboard(authed(
            &bas,
            pb::GetQmsDashboardRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .rows;
    assert_eq!(dashboard.len(), 2);
    assert!(dashboard.iter().all(|r| r.latest_value == Some(5.0)));

    // Every filter field naming a site or ward: SOU's is refused PERMISSION_DENIED (it was
    // INVALID_ARGUMENT), whatever the metric records; BAS's own is answered.
    for metric in ["trust/metrics/falls", "trust/metrics/ward-falls"] {
        for (filter, allowed) in [
            (
                pb::SeriesFilter {
                    site: "sites/SOU".into(),
                    ..Default::default()
                },
                false,
            ),
            (
                pb::SeriesFilter {
                    ward: "sites/SOU/wards/oak".into(),
                    ..Default::default()
                },
                false,
            ),
            (
                pb::SeriesFilter {
                    site: "sites/BAS".into(),
                    ward: "sites/SOU/wards/oak".into(),
                    ..Default::default()
                },
                false,
            ),
            (
                pb::SeriesFilter {
                    site: "sites/BAS".into(),
                    ..Default::default()
                },
                true,
            ),
        ] {
            let spc = c
                .get_spc_chart(authed(
                    &bas,
                    pb::GetSpcChartRequest {
                        metric: metric.into(),
                        filter: Some(filter.clone()),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ());
            let render = c
                .render_spc_chart(authed(
                    &bas,
                    pb::RenderSpcChartRequest {
                        metric: metric.into(),
                        filter: Some(filter.clone()),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ());
            let breakdown = c
                .get_inequality_breakdown(authed(
                    &bas,
                    pb::GetInequalityBreakdownRequest {
                        metric: metric.into(),
                        dimension: pb::InequalityDimension::Sex as i32,
                        filter: Some(filter.clone()),
                        ..Default::default()
                    },
                ))
                .await
                .map(|_| ());
            for (rpc, got) in [("spc", spc), ("render", render), ("breakdown", breakdown)] {
                match got {
                    Ok(()) => assert!(allowed, "{metric} {rpc} {filter:?}: answered"),
                    Err(e) => {
                        assert!(!allowed, "{metric} {rpc} {filter:?}: {e:?}");
                        assert_eq!(e.code(), Code::PermissionDenied, "{metric} {rpc}: {e:?}");
                    }
                }
            }
        }
    }
    suite.stop().await.unwrap();
}
