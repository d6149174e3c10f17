//! Completions from elsewhere (`ImportCompletions`, `qi hr completions import`): the
//! historic register, ESR competences and Inter Authority Transfers counted in the register,
//! the summary and the export to ESR; a re-import adds nothing; a completion earned here is
//! never overridden; a site's HR caller imports and reads its own sites' staff only.

use qi::hr_export::Layout;
use qi_e2e::training::{EXTRACT_TIME, esr, register, start_cohort, sync};
use qi_e2e::{Caller, TestSuite, date, ymd};
use qi_proto::training as pb;
use tonic::Code;

use super::{AHMED, CLARKE, running_cohort};
use pb::CompletionSource::{EsrCompetence, HistoricRegister, InterAuthorityTransfer};

/// Staff at BAS (two), SOU (one) and BRM (one), synced by HR's trust-wide account.
async fn four_staff(suite: &TestSuite) -> Caller {
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let people = [
        esr("60000001", "BAS", "Archer"),
        esr("60000002", "BAS", "Baker"),
        esr("60000003", "SOU", "Carter"),
        esr("60000004", "BRM", "Dyer"),
    ];
    sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME, &people)
        .await
        .unwrap();
    hr
}

/// A completion of `course` on `(y, m, d)` from `source`.
fn done(
    emp: &str,
    course: &str,
    (y, m, d): (i32, u32, u32),
    source: pb::CompletionSource,
) -> pb::ImportedCompletion {
    pb::ImportedCompletion {
        employee_number: emp.into(),
        course: course.into(),
        completion_date: Some(date(ymd(y, m, d))),
        source: source as i32,
        source_reference: "QSIR register 2019-20".into(),
        previous_organisation: if source == InterAuthorityTransfer {
            "Mid Essex Hospital Services NHS Trust".into()
        } else {
            String::new()
        },
        expiry_date: None,
    }
}

fn import(parent: &str, rows: Vec<pb::ImportedCompletion>) -> pb::ImportCompletionsRequest {
    pb::ImportCompletionsRequest {
        parent: parent.into(),
        completions: rows,
        request_id: String::new(),
    }
}

/// (inserted, updated, unchanged, kept out, refused rows) of an answer.
fn counts(r: &pb::ImportCompletionsResponse) -> (i32, i32, i32, i32, usize) {
    (
        r.inserted,
        r.updated,
        r.unchanged,
        r.kept_earned_here,
        r.rejected.len(),
    )
}

async fn list(c: &Caller, parent: &str) -> Result<Vec<pb::Completion>, tonic::Status> {
    let req = pb::ListCompletionsRequest {
        parent: parent.into(),
        ..Default::default()
    };
    Ok(c.training()
        .list_completions(req)
        .await?
        .into_inner()
        .completions)
}

#[tokio::test]
async fn completions_from_elsewhere_count_everywhere_the_register_counts_and_once() {
    let suite = TestSuite::start().await;
    let hr = four_staff(&suite).await;
    let rows = vec![
        done("60000001", "QSIR-FUND", (2019, 5, 14), HistoricRegister),
        done(
            "60000002",
            "trust/courses/qsir-prac",
            (2020, 3, 2),
            EsrCompetence,
        ),
        done(
            "60000003",
            "QSIR-PRAC",
            (2020, 9, 7),
            InterAuthorityTransfer,
        ),
    ];
    let first = hr
        .training()
        .import_completions(import("sites/-", rows.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.received, counts(&first)), (3, (3, 0, 0, 0, 0)));
    // The same file again adds nothing: keyed by person, course and date.
    let again = hr
        .training()
        .import_completions(import("sites/-", rows))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counts(&again), (0, 0, 3, 0, 0));
    assert_eq!(
        suite
            .count("SELECT count(*) FROM training.completion WHERE cohort_uid IS NULL")
            .await,
        3
    );
    // In the register, each marked with its source and evidence, and with no cohort.
    let register = list(&hr, "sites/-").await.unwrap();
    let mut seen: Vec<_> = register
        .iter()
        .map(|c| (c.staff.as_str(), c.source, c.cohort.as_str()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("staff/60000001", HistoricRegister as i32, ""),
            ("staff/60000002", EsrCompetence as i32, ""),
            ("staff/60000003", InterAuthorityTransfer as i32, ""),
        ]
    );
    let transfer = register
        .iter()
        .find(|c| c.staff == "staff/60000003")
        .unwrap();
    assert_eq!(
        transfer.previous_organisation,
        "Mid Essex Hospital Services NHS Trust"
    );
    assert_eq!(transfer.imported_by, "esr");
    // In the summary: three people trained, by site.
    let viewer = suite.caller("board", &["viewer"], &["*"]);
    let summary = viewer
        .training()
        .get_training_summary(pb::GetTrainingSummaryRequest {
            parent: "sites/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.staff_trained, 3);
    // In the export: every change marked; the default layout writes what ESR lacks (the
    // historic register) and leaves out what it holds (its own competence, the transfer).
    let changes = hr
        .training()
        .stream_training_records(pb::StreamTrainingRecordsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap()
        .changes;
    let mut provenance: Vec<_> = changes.iter().map(|c| c.provenance).collect();
    provenance.sort();
    assert_eq!(
        provenance,
        [
            HistoricRegister as i32,
            EsrCompetence as i32,
            InterAuthorityTransfer as i32
        ]
    );
    let mut file = Vec::new();
    let gateway = format!("http://{}", suite.addr);
    let report = qi::hr_export::export(&gateway, hr.token(), "", &Layout::default(), &mut file)
        .await
        .unwrap();
    assert_eq!((report.written, report.held_by_esr), (1, 2));
    let file = String::from_utf8(file).unwrap();
    assert!(
        file.contains("60000001") && file.contains("historic register: QSIR register 2019-20"),
        "{file}"
    );
    let all = Layout::parse(
        "held_by_esr = \"row\"\ncolumns = [\"employee_number\", \"kind\", \"provenance\"]",
    )
    .unwrap();
    let mut file = Vec::new();
    let report = qi::hr_export::export(&gateway, hr.token(), "", &all, &mut file)
        .await
        .unwrap();
    assert_eq!(report.written, 3);
    let file = String::from_utf8(file).unwrap();
    assert!(file.contains("60000003,achieved,transfer"), "{file}");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_import_never_overrides_a_completion_earned_here_and_refuses_bad_rows_alone() {
    let suite = TestSuite::start().await;
    let (cohort, team) = running_cohort(&suite).await;
    qi_e2e::training::enrol(&team, &cohort, AHMED)
        .await
        .unwrap();
    start_cohort(&team, &cohort).await.unwrap();
    for session in 1..=5 {
        register(
            &team,
            &cohort,
            session,
            &[(AHMED, pb::AttendanceStatus::Attended)],
        )
        .await
        .unwrap();
    }
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let mut future = done("40000003", "QSIR-FUND", (2019, 1, 1), HistoricRegister);
    future.completion_date = Some(date(ymd(2999, 1, 1)));
    let resp = hr
        .training()
        .import_completions(import(
            "sites/-",
            vec![
                // Ahmed completed QSIR Practitioner here: that stays, the import is kept out.
                done("40000001", "QSIR-PRAC", (2019, 6, 3), HistoricRegister),
                done("40000003", "QSIR-PRAC", (2019, 6, 3), HistoricRegister),
                future,
                done("40000003", "NO-SUCH-COURSE", (2019, 6, 3), HistoricRegister),
                done("40000003", "QSIR-PRAC", (2019, 6, 3), EsrCompetence),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counts(&resp), (1, 0, 0, 1, 3));
    let refused: Vec<_> = resp
        .rejected
        .iter()
        .map(|r| (r.index, r.field.as_str()))
        .collect();
    assert_eq!(
        refused,
        [
            (2, "completions[2].completion_date"),
            (3, "completions[3].course"),
            (4, "completions[4].completion_date"),
        ]
    );
    let ahmed = list(&hr, AHMED).await.unwrap();
    assert_eq!(ahmed.len(), 1);
    assert_eq!(ahmed[0].source, pb::CompletionSource::Course as i32);
    assert_eq!(ahmed[0].cohort, cohort);
    assert_eq!(list(&hr, CLARKE).await.unwrap().len(), 1);
    // A request over the contract's bound is refused whole before it is read.
    let many = vec![done("40000003", "QSIR-FUND", (2019, 1, 1), HistoricRegister); 5_001];
    let err = hr
        .training()
        .import_completions(import("sites/-", many))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        suite
            .count("SELECT count(*) FROM training.completion WHERE source <> 'course'")
            .await,
        1
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_retried_import_with_its_request_id_gets_the_first_answer() {
    let suite = TestSuite::start().await;
    let hr = four_staff(&suite).await;
    let mut req = import(
        "sites/BAS",
        vec![done(
            "60000001",
            "QSIR-FUND",
            (2019, 5, 14),
            HistoricRegister,
        )],
    );
    req.request_id = "0b6e3a57-7f52-4f9e-9d0a-2f4a7d1c0a11".into();
    let first = hr.training().import_completions(req.clone()).await.unwrap();
    let retry = hr.training().import_completions(req.clone()).await.unwrap();
    assert_eq!(first.into_inner(), retry.into_inner());
    req.completions[0].source_reference = "something else".into();
    let err = hr.training().import_completions(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_site_hr_caller_imports_for_and_reads_its_own_sites_staff_only() {
    let suite = TestSuite::start().await;
    four_staff(&suite).await;
    let bas_hr = suite.caller("bas-hr", &["hr_sync"], &["BAS"]);
    let sou_row = || done("60000003", "QSIR-FUND", (2019, 5, 14), HistoricRegister);
    // Another site's parent: refused whole by the gateway.
    let err = bas_hr
        .training()
        .import_completions(import("sites/SOU", vec![sou_row()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Its own site, or all its sites: another site's person is refused alone, in the same
    // words as someone who does not exist.
    for parent in ["sites/BAS", "sites/-"] {
        let resp = bas_hr
            .training()
            .import_completions(import(
                parent,
                vec![
                    done("60000001", "QSIR-FUND", (2019, 5, 14), HistoricRegister),
                    sou_row(),
                    done("69999999", "QSIR-FUND", (2019, 5, 14), HistoricRegister),
                ],
            ))
            .await
            .unwrap()
            .into_inner();
        let refused: Vec<_> = resp
            .rejected
            .iter()
            .map(|r| {
                (
                    r.index,
                    r.field.as_str(),
                    r.reason.replace(&r.employee_number, "N"),
                )
            })
            .collect();
        assert_eq!(refused.len(), 2, "{parent}: {refused:?}");
        assert_eq!((refused[0].0, refused[1].0), (1, 2));
        assert_eq!(refused[0].1, "completions[1].employee_number");
        assert_eq!(refused[0].2, refused[1].2, "no existence leak");
    }
    assert_eq!(
        suite
            .count("SELECT count(*) FROM training.completion WHERE employee_number = '60000003'")
            .await,
        0
    );
    // Reads: another site's register and people are refused; its own list holds its own.
    let trust_hr = suite.caller("esr", &["hr_sync"], &["*"]);
    trust_hr
        .training()
        .import_completions(import("sites/SOU", vec![sou_row()]))
        .await
        .unwrap();
    let err = list(&bas_hr, "sites/SOU").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = list(&bas_hr, "staff/60000003").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = bas_hr
        .training()
        .get_training_record(pb::GetTrainingRecordRequest {
            staff: "staff/60000003".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mine: Vec<_> = list(&bas_hr, "sites/-")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.staff)
        .collect();
    assert_eq!(mine, ["staff/60000001"]);
    let summary = bas_hr
        .training()
        .get_training_summary(pb::GetTrainingSummaryRequest {
            parent: "sites/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.staff_trained, 1);
    suite.stop().await.unwrap();
}

/// A fixture's path.
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

#[tokio::test]
async fn qi_hr_completions_import_refuses_a_wrong_header_whole_and_a_bad_line_alone() {
    let suite = TestSuite::start().await;
    let gateway = format!("http://{}", suite.addr);
    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    // The README's walk: the map, the extract, then the history.
    qi::hr_map::import(&gateway, &hr, &fixture("esr-mapping.csv"), &mut Vec::new())
        .await
        .unwrap();
    let sample = "sample";
    qi::hr::import(
        &gateway,
        &hr,
        &fixture("esr-extract.csv"),
        false,
        sample,
        &mut Vec::new(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.csv");
    std::fs::write(
        &wrong,
        "employee_number,course,date,source\n80000001,QSIR-FUND,2019-05-14,historic\n",
    )
    .unwrap();
    let err = qi::hr_completions::import(&gateway, &hr, "sites/-", &wrong, &mut Vec::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown column \"date\"") && err.contains("completion_date"),
        "{err}"
    );
    assert_eq!(
        suite
            .count("SELECT count(*) FROM training.completion")
            .await,
        0
    );
    // The sample file: the good lines land, the bad ones are named by line and column.
    let file = fixture("historic-completions.csv");
    let mut out = Vec::new();
    let report = qi::hr_completions::import(&gateway, &hr, "sites/-", &file, &mut out)
        .await
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!((report.inserted, report.refused), (4, 2), "{out}");
    assert!(out.contains("line 6: completion_date"), "{out}");
    assert!(out.contains("line 7: previous_organisation"), "{out}");
    let again = qi::hr_completions::import(&gateway, &hr, "sites/-", &file, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!((again.inserted, again.unchanged), (0, 4));
    suite.stop().await.unwrap();
}
