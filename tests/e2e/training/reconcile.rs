//! Reconciliation with ESR (`ReconcileTraining`, `qi hr reconcile`): the register beside
//! ESR's competence records, person by person and course by course, counted and paged,
//! within the caller's sites.

use qi_e2e::{Caller, TestSuite, date, ymd};
use qi_proto::training as pb;
use tonic::Code;

/// A fixture's path.
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The README's walk up to the history: the map, the extract, the historic completions
/// (80000001 and 80000004 at BAS, 80000002 at BRM, 80000003 at SOU).
async fn walked(suite: &TestSuite) -> (String, String) {
    let gateway = format!("http://{}", suite.addr);
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    qi::hr_map::import(&gateway, &hr, &fixture("esr-mapping.csv"), &mut Vec::new())
        .await
        .unwrap();
    qi::hr::import(
        &gateway,
        &hr,
        &fixture("esr-extract.csv"),
        false,
        "sample",
        &mut Vec::new(),
    )
    .await
    .unwrap();
    qi::hr_completions::import(
        &gateway,
        &hr,
        "sites/-",
        &fixture("historic-completions.csv"),
        &mut Vec::new(),
    )
    .await
    .unwrap();
    (gateway, hr)
}

fn counts(c: &pb::ReconciliationCounts) -> [i64; 7] {
    [
        c.in_both,
        c.register_only,
        c.esr_only,
        c.date_mismatches,
        c.other_competences,
        c.not_at_sites,
        c.rejected_records,
    ]
}

#[tokio::test]
async fn qi_hr_reconcile_writes_each_person_and_course_as_the_register_and_esr_compare() {
    let suite = TestSuite::start().await;
    let (gateway, hr) = walked(&suite).await;
    let (mut out, mut log) = (Vec::new(), Vec::new());
    let report = qi::hr_reconcile::reconcile(
        &gateway,
        &hr,
        "sites/-",
        &fixture("esr-competences.csv"),
        &mut out,
        &mut log,
    )
    .await
    .unwrap();
    let (out, log) = (
        String::from_utf8(out).unwrap(),
        String::from_utf8(log).unwrap(),
    );
    assert_eq!(counts(&report.counts), [2, 1, 1, 1, 1, 1, 0], "{log}");
    assert_eq!(report.refused, 1, "{log}");
    assert!(log.contains("line 8: achieved_date"), "{log}");
    assert_eq!(
        out,
        "kind,employee_number,name,course_code,register_date,esr_date,register_source\n\
         in_both,80000001,Priya Shah,QSIR-FUND,2019-05-14,2019-05-14,historic\n\
         esr_only,80000001,Priya Shah,QSIR-PRAC,,2023-04-20,\n\
         date_mismatch,80000002,Tom Reed,QSIR-PRAC,2018-11-26,2018-12-03,historic\n\
         in_both,80000003,Ana Costa,QSIR-FUND,2020-02-11,2020-02-11,esr\n\
         register_only,80000004,Lee Ward,QSIR-PRAC,2020-06-30,,transfer\n"
    );
    suite.stop().await.unwrap();
}

fn request(
    parent: &str,
    records: &[(&str, &str, (i32, u32, u32))],
) -> pb::ReconcileTrainingRequest {
    pb::ReconcileTrainingRequest {
        parent: parent.into(),
        esr_records: records
            .iter()
            .map(|(e, c, (y, m, d))| pb::EsrCompetenceRecord {
                employee_number: (*e).into(),
                competence: (*c).into(),
                achieved_date: Some(date(ymd(*y, *m, *d))),
            })
            .collect(),
        ..Default::default()
    }
}

async fn reconcile(
    c: &Caller,
    req: pb::ReconcileTrainingRequest,
) -> Result<pb::ReconcileTrainingResponse, tonic::Status> {
    Ok(c.training().reconcile_training(req).await?.into_inner())
}

#[tokio::test]
async fn a_site_hr_caller_reconciles_its_own_sites_staff_only_and_pages_by_kind() {
    let suite = TestSuite::start().await;
    walked(&suite).await;
    let records = [
        ("80000001", "QSIR-FUND", (2019, 5, 14)),
        ("80000001", "QSIR-PRAC", (2023, 4, 20)),
        ("80000002", "QSIR-PRAC", (2018, 12, 3)),
        ("80000003", "QSIR-FUND", (2020, 2, 11)),
        ("89999999", "QSIR-FUND", (2020, 2, 11)),
    ];
    let bas = suite.caller("bas-hr", &["hr_sync"], &["BAS"]);
    let err = reconcile(&bas, request("sites/SOU", &records))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Other sites' people and nobody at all are counted alike, never listed.
    let mine = reconcile(&bas, request("sites/-", &records)).await.unwrap();
    assert_eq!(counts(mine.counts.as_ref().unwrap()), [1, 1, 1, 0, 0, 3, 0]);
    let people: Vec<_> = mine.entries.iter().map(|e| e.staff.as_str()).collect();
    assert_eq!(
        people,
        ["staff/80000001", "staff/80000001", "staff/80000004"]
    );
    // A page at a time, and one kind only; the counts stay whole.
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let mut req = request("sites/-", &records);
    req.page_size = 2;
    let first = reconcile(&hr, req.clone()).await.unwrap();
    assert_eq!(first.entries.len(), 2);
    req.page_token = first.next_page_token.clone();
    let second = reconcile(&hr, req.clone()).await.unwrap();
    assert_eq!(second.entries.len(), 2);
    let mut other = req.clone();
    other.esr_records.pop();
    let err = reconcile(&hr, other).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "a token is for its records"
    );
    let mut odd = request("sites/-", &records);
    odd.kind = pb::ReconciliationKind::DateMismatch as i32;
    let odd = reconcile(&hr, odd).await.unwrap();
    assert_eq!(odd.entries.len(), 1);
    assert_eq!(odd.entries[0].staff, "staff/80000002");
    assert_eq!(odd.counts, first.counts);
    // Viewers and the improvement team do not reconcile: HR's account does.
    let viewer = suite.caller("board", &["viewer"], &["*"]);
    let err = reconcile(&viewer, request("sites/-", &records))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await.unwrap();
}
