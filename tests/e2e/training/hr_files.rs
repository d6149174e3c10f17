//! `qi hr import` and `qi hr export`: CSV files moved through the gateway.

use qi_e2e::TestSuite;

/// An extract of three lines: one good, one with an unknown site, one with a bad date.
fn extract_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let file = dir.path().join("extract.csv");
    std::fs::write(
        &file,
        "employee_number,assignment_number,primary_assignment,forename,surname,site,staff_group,hire_date\n\
         70000001,70000001,Y,Mo,Green,BAS,03,2020-02-01\n\
         70000002,70000002,Y,Jo,Hill,ZZZ,03,2020-02-01\n\
         70000003,70000003,Y,Al,Ince,SOU,03,not-a-date\n",
    )
    .unwrap();
    file
}

#[tokio::test]
async fn qi_hr_import_applies_the_readable_lines_and_reports_the_rest_by_line() {
    let suite = TestSuite::start().await;
    let gateway = format!("http://{}", suite.addr);
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    let done = qi::hr::import(
        &gateway,
        &hr,
        &extract_file(&dir),
        false,
        "march",
        &mut report,
    )
    .await
    .unwrap();
    assert_eq!((done.response.inserted, done.refused), (1, 2));
    assert!(done.applied_any());
    let report = String::from_utf8(report).unwrap();
    assert!(report.contains("line 3: site"), "{report}");
    assert!(report.contains("line 4: hire_date"), "{report}");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_qi_hr_import_with_unreadable_lines_is_refused_before_anything_is_sent() {
    let suite = TestSuite::start().await;
    let gateway = format!("http://{}", suite.addr);
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let dir = tempfile::tempdir().unwrap();
    let refused = qi::hr::import(
        &gateway,
        &hr,
        &extract_file(&dir),
        true,
        "march",
        &mut Vec::new(),
    )
    .await;
    assert!(refused.is_err());
    assert_eq!(suite.count("SELECT count(*) FROM training.staff").await, 0);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn qi_hr_export_writes_its_columns_as_the_header() {
    let suite = TestSuite::start().await;
    let gateway = format!("http://{}", suite.addr);
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let mut out = Vec::new();
    let last = qi::hr::export(&gateway, &hr, "", &mut out).await.unwrap();
    assert_eq!(last, None);
    assert_eq!(
        String::from_utf8(out).unwrap().lines().next().unwrap(),
        qi::hr::EXPORT_COLUMNS.join(",")
    );
    suite.stop().await.unwrap();
}
