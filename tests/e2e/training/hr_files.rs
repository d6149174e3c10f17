//! `qi hr import` and `qi hr export`: CSV files moved through the gateway; the export in
//! the default layout and in a trust's own, compared with the samples in `tests/fixtures/`.

use pb::AttendanceStatus::{Absent, Attended};
use qi::hr_export::{ExportReport, Layout};
use qi_e2e::training::{
    EXTRACT_TIME, create_cohort, enrol, esr, new_cohort, register, set_competence, start_cohort,
    sync,
};
use qi_e2e::{Caller, TestSuite, ymd};
use qi_proto::training as pb;

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

/// The export's samples, kept with the test fixtures: a trust's layout, and what the default
/// layout and that one write for [`register_of_three_courses`].
const DEFAULT_SAMPLE: &str = include_str!("../../fixtures/hr-export-default.csv");
const LAYOUT_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/hr-export-layout.toml"
);
const LAYOUT_SAMPLE: &str = include_str!("../../fixtures/hr-export-layout.csv");

/// Creates (as a trust-wide admin) a course of one session.
async fn one_day_course(
    admin: &Caller,
    id: &str,
    code: &str,
    title: &str,
    competence: (&str, &str),
    validity_months: i32,
) {
    admin
        .training()
        .create_course(pb::CreateCourseRequest {
            parent: "trust".into(),
            course_id: id.into(),
            course: Some(pb::Course {
                code: code.into(),
                display_name: title.into(),
                session_count: 1,
                validity_months,
                esr_competence_id: competence.0.into(),
                esr_competence_name: competence.1.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
}

/// A BAS cohort `id` of `course` held on `day`, its `learners` enrolled and the cohort
/// started.
async fn one_day_cohort(
    team: &Caller,
    id: &str,
    course: &str,
    day: chrono::NaiveDate,
    learners: &[&str],
) -> String {
    let mut req = new_cohort("sites/BAS", id, day, 10);
    req.cohort_id = id.into();
    if let Some(c) = req.cohort.as_mut() {
        c.course = course.into();
    }
    let cohort = create_cohort(team, req).await.unwrap().name;
    for l in learners {
        enrol(team, &cohort, l).await.unwrap();
    }
    start_cohort(team, &cohort).await.unwrap();
    cohort
}

/// A register history on fixed dates in March 2026, one change at a time so the cursors are
/// fixed too: Ahmed completes QSIR Fundamentals (competence set by UpdateCourse) and Lean
/// (created with a competence whose name holds a comma, and a 36-month validity); Brown
/// completes Fundamentals and a corrected register revokes it; Clarke completes Safety
/// Huddles, a course naming no competence (its title goes out instead).
async fn register_of_three_courses(suite: &TestSuite) {
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let people = [
        esr("50000001", "BAS", "Ahmed"),
        esr("50000002", "BAS", "Brown"),
        esr("50000003", "BAS", "Clarke"),
    ];
    sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME, &people)
        .await
        .unwrap();
    let admin = suite.caller("admin", &["admin"], &["*"]);
    set_competence(
        &admin,
        "trust/courses/qsir-fund",
        "10491",
        "123|LOCAL|QSIR Fundamentals|",
    )
    .await
    .unwrap();
    one_day_course(
        &admin,
        "lean",
        "LEAN",
        "Lean for Healthcare",
        ("10492", "Lean for Healthcare, Level 1"),
        36,
    )
    .await;
    one_day_course(&admin, "huddles", "HUDDLES", "Safety Huddles", ("", ""), 0).await;
    let team = suite.caller("bas-lead", &["improvement_team"], &["BAS"]);
    let (ahmed, brown, clarke) = ("staff/50000001", "staff/50000002", "staff/50000003");
    let fund = one_day_cohort(
        &team,
        "fund-march",
        "trust/courses/qsir-fund",
        ymd(2026, 3, 2),
        &[ahmed, brown],
    )
    .await;
    let lean = one_day_cohort(
        &team,
        "lean-march",
        "trust/courses/lean",
        ymd(2026, 3, 9),
        &[ahmed],
    )
    .await;
    let huddles = one_day_cohort(
        &team,
        "huddles-march",
        "trust/courses/huddles",
        ymd(2026, 3, 16),
        &[clarke],
    )
    .await;
    for (cohort, learner, status) in [
        (&fund, ahmed, Attended),
        (&fund, brown, Attended),
        (&lean, ahmed, Attended),
        (&huddles, clarke, Attended),
        (&fund, brown, Absent),
    ] {
        register(&team, cohort, 1, &[(learner, status)])
            .await
            .unwrap();
    }
}

/// `qi hr export` in `layout`: the file it writes, and its report.
async fn export(suite: &TestSuite, since: &str, layout: &Layout) -> (String, ExportReport) {
    let gateway = format!("http://{}", suite.addr);
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let mut out = Vec::new();
    let report = qi::hr_export::export(&gateway, &hr, since, layout, &mut out)
        .await
        .unwrap();
    (String::from_utf8(out).unwrap(), report)
}

#[tokio::test]
async fn qi_hr_export_with_no_changes_writes_the_default_heading_only() {
    let suite = TestSuite::start().await;
    let (file, report) = export(&suite, "", &Layout::default()).await;
    assert_eq!(report.last_cursor, None);
    assert_eq!(
        file,
        DEFAULT_SAMPLE.lines().next().unwrap().to_owned() + "\n"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn qi_hr_export_writes_each_record_s_competence_in_the_default_layout_as_the_sample() {
    let suite = TestSuite::start().await;
    register_of_three_courses(&suite).await;
    let (file, report) = export(&suite, "", &Layout::default()).await;
    assert_eq!(file, DEFAULT_SAMPLE);
    assert_eq!(
        (report.written, report.last_cursor.as_deref()),
        (4, Some("5"))
    );
    // Resumed after a cursor, only what followed it.
    let (rest, _) = export(&suite, "3", &Layout::default()).await;
    let lines: Vec<&str> = DEFAULT_SAMPLE.lines().collect();
    assert_eq!(rest, format!("{}\n{}\n{}\n", lines[0], lines[3], lines[4]));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_trust_s_layout_chooses_columns_order_headings_date_format_and_revocations() {
    let suite = TestSuite::start().await;
    register_of_three_courses(&suite).await;
    // The sample layout: its headings, DD-Mon-YYYY, achievements only; the revocation is
    // reported instead.
    let layout = Layout::load(std::path::Path::new(LAYOUT_FILE)).unwrap();
    let (file, report) = export(&suite, "", &layout).await;
    assert_eq!(file, LAYOUT_SAMPLE);
    assert_eq!(report.written, 3);
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|c| (c.employee_number.as_str(), c.competence_id.as_str()))
        .collect();
    assert_eq!(skipped, [("50000002", "10491")]);
    assert_eq!(report.last_cursor.as_deref(), Some("5"));
    // No heading, another order, ISO dates, semicolons.
    let bare = Layout::parse(
        r#"columns = ["competence_id", "achieved_date", "employee_number", "kind"]
           header = false
           date_format = "%Y-%m-%d"
           delimiter = ";""#,
    )
    .unwrap();
    let (file, _) = export(&suite, "", &bare).await;
    assert_eq!(
        file,
        "10491;2026-03-02;50000001;achieved\n\
         10492;2026-03-09;50000001;achieved\n\
         ;2026-03-16;50000003;achieved\n\
         10491;2026-03-02;50000002;revoked\n"
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
