//! Workforce breakdowns (issue 28): the training summary by staff group, pay band, ESR
//! department, mapped ward, site, course and financial year, with headcount beside the
//! trained so coverage is a percentage; the register listed by the same fields through
//! `filter`; a site's caller sees its own sites' people only; bad filters and groupings named.

use qi_e2e::training::{EXTRACT_TIME, esr, sync};
use qi_e2e::{Caller, TestSuite, date, fields, ymd};
use qi_proto::training as pb;
use tonic::Code;

use pb::CompletionSource::{EsrCompetence, HistoricRegister, InterAuthorityTransfer};
use pb::SummaryDimension as D;

/// A person of the workforce: group, band, department and cost centre as ESR sends them.
fn person(emp: &str, site: &str, group: &str, band: &str, dept: &str, org: &str) -> pb::EsrRow {
    pb::EsrRow {
        staff_group: group.into(),
        pay_band: band.into(),
        department: dept.into(),
        organisation: org.into(),
        ..esr(emp, site, "Ng")
    }
}

/// Five people (one a leaver), their cost centre CC-ASH mapped to BAS's ward Ash, and four
/// completions from elsewhere, loaded by HR's trust-wide account.
async fn workforce(suite: &TestSuite) -> Caller {
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    hr.training()
        .batch_upsert_esr_mappings(pb::BatchUpsertEsrMappingsRequest {
            parent: "sites/BAS".into(),
            esr_mappings: vec![pb::EsrMapping {
                name: "sites/BAS/esrMappings/organisation.CC-ASH".into(),
                ward: "sites/BAS/wards/ash".into(),
                ..Default::default()
            }],
            request_id: String::new(),
        })
        .await
        .unwrap();
    let mut people = vec![
        person("70000001", "BAS", "03", "Band 5", "Ward Ash", "CC-ASH"),
        person("70000002", "BAS", "03", "Band 6", "Ward Ash", "CC-ASH"),
        person("70000003", "BAS", "01", "Band 8a", "Board", ""),
        person("70000004", "SOU", "03", "Band 5", "Ward Elm", ""),
        person("70000005", "BAS", "03", "Band 5", "Ward Oak", ""),
    ];
    sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME, &people)
        .await
        .unwrap();
    let done =
        |emp: &str, course: &str, (y, m, d), source: pb::CompletionSource| pb::ImportedCompletion {
            employee_number: emp.into(),
            course: course.into(),
            completion_date: Some(date(ymd(y, m, d))),
            source: source as i32,
            source_reference: "QSIR register".into(),
            previous_organisation: if source == InterAuthorityTransfer {
                "Another NHS Trust".into()
            } else {
                String::new()
            },
            expiry_date: None,
        };
    let imported = hr
        .training()
        .import_completions(pb::ImportCompletionsRequest {
            parent: "sites/-".into(),
            completions: vec![
                done("70000001", "QSIR-FUND", (2019, 5, 14), HistoricRegister),
                done("70000001", "QSIR-PRAC", (2021, 6, 1), EsrCompetence),
                done(
                    "70000004",
                    "QSIR-FUND",
                    (2020, 9, 7),
                    InterAuthorityTransfer,
                ),
                done("70000005", "QSIR-FUND", (2019, 6, 1), HistoricRegister),
            ],
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.inserted, 4, "{imported:?}");
    // Then 70000005 leaves: their completion still counts, their head no longer does.
    people[4].termination_date = Some(date(ymd(2024, 1, 31)));
    sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME + 60, &people[4..])
        .await
        .unwrap();
    hr
}

async fn summary(
    c: &Caller,
    group_by: &[D],
    filter: &str,
) -> Result<pb::GetTrainingSummaryResponse, tonic::Status> {
    let req = pb::GetTrainingSummaryRequest {
        parent: "sites/-".into(),
        period: pb::SummaryPeriod::FinancialYear as i32,
        group_by: group_by.iter().map(|d| *d as i32).collect(),
        filter: filter.into(),
        ..Default::default()
    };
    Ok(c.training().get_training_summary(req).await?.into_inner())
}

/// (group value, completions, staff trained, headcount, coverage % rounded) per row, the
/// group value read by `key`.
fn cells(
    s: &pb::GetTrainingSummaryResponse,
    key: impl Fn(&pb::TrainingBreakdownRow) -> String,
) -> Vec<(String, i64, i64, i64, i64)> {
    s.breakdown
        .iter()
        .map(|r| {
            (
                key(r),
                r.completions,
                r.staff_trained,
                r.headcount,
                r.coverage_percent.round() as i64,
            )
        })
        .collect()
}

#[tokio::test]
async fn the_summary_gives_coverage_by_each_workforce_field_and_the_register_filters_by_them() {
    let suite = TestSuite::start().await;
    let hr = workforce(&suite).await;

    // By staff group: the leaver's completion counts, their head does not.
    let s = summary(&hr, &[D::StaffGroup], "").await.unwrap();
    assert_eq!(s.headcount, 4);
    assert_eq!(
        cells(&s, |r| r.staff_group.clone()),
        [("01".into(), 0, 0, 1, 0), ("03".into(), 4, 2, 3, 67)]
    );
    // By pay band, and by ESR department as sent.
    let s = summary(&hr, &[D::PayBand], "").await.unwrap();
    assert_eq!(
        cells(&s, |r| r.pay_band.clone()),
        [
            ("Band 5".into(), 4, 2, 2, 100),
            ("Band 6".into(), 0, 0, 1, 0),
            ("Band 8a".into(), 0, 0, 1, 0)
        ]
    );
    let s = summary(&hr, &[D::Department], "site = BAS").await.unwrap();
    assert_eq!(
        cells(&s, |r| r.department.clone()),
        [
            ("Board".into(), 0, 0, 1, 0),
            ("Ward Ash".into(), 2, 1, 2, 50),
            ("Ward Oak".into(), 1, 0, 0, 0)
        ]
    );
    // By mapped ward, within one site: the unmapped are a group of their own.
    let s = summary(&hr, &[D::Ward], "site = BAS").await.unwrap();
    assert_eq!(s.headcount, 3);
    assert_eq!(
        cells(&s, |r| r.ward.clone()),
        [
            (String::new(), 1, 0, 1, 0),
            ("sites/BAS/wards/ash".into(), 2, 1, 2, 50)
        ]
    );
    // By site and course: coverage of each course at each site.
    let s = summary(&hr, &[D::Site, D::Course], "").await.unwrap();
    assert_eq!(
        cells(&s, |r| format!("{} {}", r.site, r.course_code)),
        [
            ("BAS QSIR-FUND".into(), 2, 1, 3, 33),
            ("SOU QSIR-FUND".into(), 1, 1, 1, 100),
            ("BAS QSIR-PRAC".into(), 1, 1, 3, 33),
        ]
    );
    // By course and financial year (April to March), for everyone in scope.
    let s = summary(&hr, &[D::Course, D::Period], "").await.unwrap();
    let by_year: Vec<_> = s
        .breakdown
        .iter()
        .map(|r| {
            let p = r.period_start.expect("a period");
            (
                format!("{}-{:02} {}", p.year, p.month, r.course_code),
                r.completions,
                r.headcount,
            )
        })
        .collect();
    assert_eq!(
        by_year,
        [
            ("2019-04 QSIR-FUND".to_owned(), 2, 4),
            ("2020-04 QSIR-FUND".to_owned(), 1, 4),
            ("2021-04 QSIR-PRAC".to_owned(), 1, 4),
        ]
    );
    // No grouping: the whole scope as one group; filters narrow it.
    let s = summary(&hr, &[], "staff_group = 03 AND source != HISTORIC_REGISTER")
        .await
        .unwrap();
    assert_eq!(cells(&s, |_| String::new()), [(String::new(), 2, 2, 3, 67)]);
    assert_eq!(s.staff_trained, 2);

    // The register, filtered by the same fields.
    let listed = |filter: &str| {
        let c = hr.clone();
        let filter = filter.to_owned();
        async move {
            let req = pb::ListCompletionsRequest {
                parent: "sites/-".into(),
                filter,
                ..Default::default()
            };
            let mut who: Vec<_> = c
                .training()
                .list_completions(req)
                .await?
                .into_inner()
                .completions
                .into_iter()
                .map(|c| format!("{} {}", &c.staff[6..], &c.course[14..]))
                .collect();
            who.sort();
            Ok::<_, tonic::Status>(who)
        }
    };
    assert_eq!(
        listed("staff_group = 03 AND source != HISTORIC_REGISTER")
            .await
            .unwrap(),
        ["70000001 qsir-prac", "70000004 qsir-fund"]
    );
    assert_eq!(
        listed("ward = sites/BAS/wards/ash AND completion_date >= 2020-01-01")
            .await
            .unwrap(),
        ["70000001 qsir-prac"]
    );
    assert_eq!(
        listed(r#"pay_band = "Band 5" AND course = trust/courses/qsir-fund AND site != SOU"#)
            .await
            .unwrap(),
        ["70000001 qsir-fund", "70000005 qsir-fund"]
    );
    assert_eq!(
        listed(r#"department = "Ward Elm""#).await.unwrap(),
        ["70000004 qsir-fund"]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_site_caller_sees_its_own_sites_people_and_bad_filters_and_groupings_are_named() {
    let suite = TestSuite::start().await;
    workforce(&suite).await;
    let sou = suite.caller("sou-hr", &["hr_sync"], &["SOU"]);
    // Grouped by site, only SOU's group; asking for BAS's narrows to nobody.
    let s = summary(&sou, &[D::Site], "").await.unwrap();
    assert_eq!(
        cells(&s, |r| r.site.clone()),
        [("SOU".into(), 1, 1, 1, 100)]
    );
    // Grouped by the fields other sites' people carry, none of theirs appears.
    let s = summary(&sou, &[D::Department, D::Ward, D::PayBand], "")
        .await
        .unwrap();
    assert_eq!(
        cells(&s, |r| format!(
            "{}|{}|{}",
            r.department, r.ward, r.pay_band
        )),
        [("Ward Elm||Band 5".into(), 1, 1, 1, 100)]
    );
    let s = summary(&sou, &[D::Ward], "site = BAS").await.unwrap();
    assert_eq!((s.headcount, s.breakdown.len(), s.staff_trained), (0, 0, 0));
    let listed = sou
        .training()
        .list_completions(pb::ListCompletionsRequest {
            parent: "sites/-".into(),
            filter: "site = BAS".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.completions.is_empty());
    let listed = sou
        .training()
        .list_completions(pb::ListCompletionsRequest {
            parent: "sites/-".into(),
            filter: r#"department = "Ward Ash""#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.completions.is_empty(), "{listed:?}");

    let e = summary(&sou, &[D::Ward, D::Course, D::Ward], "")
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), fields(&e)),
        (Code::InvalidArgument, vec!["group_by[2]".to_owned()])
    );
    let e = summary(&sou, &[D::Unspecified], "").await.unwrap_err();
    assert_eq!(fields(&e), ["group_by[0]"]);
    let e = summary(&sou, &[], "grade = 5 AND staff_group = 3")
        .await
        .unwrap_err();
    assert_eq!(fields(&e), ["filter", "filter"]);
    assert!(e.message().contains("no field `grade`"), "{}", e.message());
    let e = sou
        .training()
        .list_completions(pb::ListCompletionsRequest {
            parent: "sites/-".into(),
            filter: "completion_date != 2020-01-01".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), fields(&e)),
        (Code::InvalidArgument, vec!["filter".to_owned()])
    );
    suite.stop().await.unwrap();
}
