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

/// A file under `tests/fixtures`.
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The lines of a mapping CSV, the header apart, with wards as full names, in order.
fn mapping_lines(csv: &str) -> Vec<String> {
    let mut lines: Vec<String> = qi::hr_map::read_map(csv.as_bytes())
        .unwrap()
        .lines
        .into_iter()
        .map(|l| {
            format!(
                "{} {} {}",
                l.mapping.name, l.mapping.ward, l.mapping.display_name
            )
        })
        .collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn qi_hr_map_import_and_export_carry_the_sample_mapping_through_and_the_sync_uses_it() {
    let suite = TestSuite::start().await;
    let gateway = format!("http://{}", suite.addr);
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let mut report = Vec::new();
    let done = qi::hr_map::import(&gateway, &hr, &fixture("esr-mapping.csv"), &mut report)
        .await
        .unwrap();
    assert_eq!(
        (done.created, done.refused),
        (8, 0),
        "{}",
        String::from_utf8_lossy(&report)
    );
    let again = qi::hr_map::import(&gateway, &hr, &fixture("esr-mapping.csv"), &mut Vec::new())
        .await
        .unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 8));
    // What comes out is what went in, and reads back in.
    let mut out = Vec::new();
    let written = qi::hr_map::export(&gateway, &hr, &mut out).await.unwrap();
    assert_eq!(written, 8);
    let exported = String::from_utf8(out).unwrap();
    assert_eq!(
        exported.lines().next().unwrap(),
        qi::hr_map::MAP_COLUMNS.join(",")
    );
    let sample = std::fs::read_to_string(fixture("esr-mapping.csv")).unwrap();
    assert_eq!(mapping_lines(&exported), mapping_lines(&sample));
    // The sample extract carries codes, not sites: all placed but the one naming codes
    // the mapping lacks, which is refused by line, its codes counted.
    let mut report = Vec::new();
    let synced = qi::hr::import(
        &gateway,
        &hr,
        &fixture("esr-extract.csv"),
        false,
        "sample",
        &mut report,
    )
    .await
    .unwrap();
    let report = String::from_utf8(report).unwrap();
    assert_eq!(
        (synced.response.inserted, synced.refused),
        (4, 1),
        "{report}"
    );
    assert!(report.contains("line 6: location"), "{report}");
    assert!(report.contains("location LOC-NEW (1 rows)"), "{report}");
    assert!(
        report.contains("organisation CC-UNKNOWN (1 rows)"),
        "{report}"
    );
    let wards = suite
        .count("SELECT count(*) FROM training.staff WHERE ward <> ''")
        .await;
    assert_eq!(wards, 3);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn qi_hr_map_import_refuses_a_wrong_header_whole_and_a_bad_line_or_site_alone() {
    let suite = TestSuite::start().await;
    let gateway = format!("http://{}", suite.addr);
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.csv");
    std::fs::write(&wrong, "kind,code,site,cost_centre\nlocation,L1,BAS,x\n").unwrap();
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let e = qi::hr_map::import(&gateway, &hr, &wrong, &mut Vec::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("kind, code, site, ward, display_name"), "{e}");
    // A BAS improvement team maps BAS's codes; the SOU line and the bad line are refused.
    let mixed = dir.path().join("mixed.csv");
    std::fs::write(
        &mixed,
        "kind,code,site,ward\n\
         location,BAS-MAIN,BAS,\n\
         location,SOU-MAIN,SOU,\n\
         organisation,CC-ASH,BAS,Ash Ward\n\
         organisation,CC-ELM,BAS,sites/SOU/wards/elm\n",
    )
    .unwrap();
    let team = suite.token("bas-team", &["improvement_team"], &["BAS"]);
    let mut report = Vec::new();
    let done = qi::hr_map::import(&gateway, &team, &mixed, &mut report)
        .await
        .unwrap();
    let report = String::from_utf8(report).unwrap();
    assert_eq!((done.created, done.refused), (1, 3), "{report}");
    assert!(done.applied_any());
    for expected in [
        "line 3: site: PermissionDenied",
        "line 4: ward",
        "line 5: ward",
    ] {
        assert!(report.contains(expected), "{expected}: {report}");
    }
    suite.stop().await.unwrap();
}
