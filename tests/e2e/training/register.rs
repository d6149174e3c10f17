//! Registers and what they bring about: completions once every session is attended or
//! caught up, the roster, the person's record and the summary, and HR's export of
//! achievements and revocations against the course's ESR competence.

use chrono::Days;
use qi_e2e::training::{register, set_competence, start_cohort};
use qi_e2e::{Caller, TestSuite, date, today};
use qi_proto::training as pb;
use tonic::Code;

use super::{AHMED, BROWN, CLARKE, STARTED_DAYS_AGO, enrol_three, running_cohort, withdraw_brown};
use pb::AttendanceStatus::{Absent, Attended, CaughtUp};

/// [`running_cohort`] with Ahmed and Clarke enrolled (Brown withdrew), started.
async fn started_with_two(suite: &TestSuite) -> (String, Caller) {
    let (cohort, team) = running_cohort(suite).await;
    enrol_three(&team, &cohort).await;
    withdraw_brown(&team, &cohort).await;
    start_cohort(&team, &cohort).await.unwrap();
    (cohort, team)
}

/// Ahmed attends all five sessions; Clarke the first four, catching up on the last.
async fn register_every_session(team: &Caller, cohort: &str) -> Vec<pb::RecordAttendanceResponse> {
    let mut answers = Vec::new();
    for session in 1..=5 {
        let clarke = if session == 5 { CaughtUp } else { Attended };
        let records = [(AHMED, Attended), (CLARKE, clarke)];
        answers.push(register(team, cohort, session, &records).await.unwrap());
    }
    answers
}

/// [`started_with_two`], with both learners completing.
async fn completed(suite: &TestSuite) -> (String, Caller) {
    let (cohort, team) = started_with_two(suite).await;
    register_every_session(&team, &cohort).await;
    (cohort, team)
}

#[tokio::test]
async fn registers_are_kept_for_running_cohorts_only() {
    let suite = TestSuite::start().await;
    let (cohort, team) = running_cohort(&suite).await;
    enrol_three(&team, &cohort).await;
    let err = register(&team, &cohort, 1, &[(AHMED, Attended)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_register_naming_someone_not_enrolled_is_refused_naming_the_record() {
    let suite = TestSuite::start().await;
    let (cohort, team) = started_with_two(&suite).await;
    let err = register(&team, &cohort, 1, &[(AHMED, Attended), (BROWN, Attended)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("records[1].staff"),
        "{}",
        err.message()
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn learners_who_attend_or_catch_up_on_every_session_complete_on_the_last_date() {
    let suite = TestSuite::start().await;
    let (cohort, team) = started_with_two(&suite).await;
    let answers = register_every_session(&team, &cohort).await;
    for early in &answers[..4] {
        assert!(early.new_completions.is_empty());
    }
    // Clarke missed the last day but caught up; both complete on session 5's date.
    let last = date(today() - Days::new(STARTED_DAYS_AGO) + Days::new(28));
    let done = &answers[4];
    assert_eq!(done.new_completions.len(), 2);
    assert!(
        done.new_completions
            .iter()
            .all(|c| c.completion_date == Some(last))
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_roster_the_persons_record_and_the_summary_agree() {
    let suite = TestSuite::start().await;
    let (cohort, team) = completed(&suite).await;
    let mut training = team.training();
    let roster = training
        .list_enrolments(pb::ListEnrolmentsRequest {
            parent: cohort.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .enrolments;
    let states: Vec<_> = roster
        .iter()
        .map(|e| (e.staff.as_str(), e.state, e.attendance.len()))
        .collect();
    assert_eq!(
        states,
        [
            (AHMED, pb::EnrolmentState::Enrolled as i32, 5),
            (CLARKE, pb::EnrolmentState::Enrolled as i32, 5),
            (BROWN, pb::EnrolmentState::Withdrawn as i32, 0),
        ]
    );
    let record = training
        .get_training_record(pb::GetTrainingRecordRequest {
            staff: "sites/-/staff/40000003".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.completions.len(), 1);
    assert_eq!(
        record.completions[0].course_display_name,
        "QSIR Practitioner"
    );
    let summary = training
        .get_training_summary(pb::GetTrainingSummaryRequest {
            parent: "sites/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.staff_trained, 2);
    assert_eq!(summary.course_totals[0].course_code, "QSIR-PRAC");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn another_sites_caller_sees_none_of_the_register() {
    let suite = TestSuite::start().await;
    completed(&suite).await;
    let sou = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    let theirs = sou
        .training()
        .list_completions(pb::ListCompletionsRequest {
            parent: "sites/-".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        theirs.completions.is_empty(),
        "SOU sees none of BAS's register"
    );
    suite.stop().await.unwrap();
}

/// HR's export of the changes to training records after `since`.
async fn export(hr: &Caller, since: String) -> Vec<pb::TrainingRecordChange> {
    let req = pb::StreamTrainingRecordsRequest {
        since_cursor: since,
    };
    let mut stream = hr
        .training()
        .stream_training_records(req)
        .await
        .unwrap()
        .into_inner();
    let mut all = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        all.extend(m.changes);
    }
    all
}

#[tokio::test]
async fn hr_exports_the_achievements_then_a_revocation_after_its_cursor() {
    let suite = TestSuite::start().await;
    let (cohort, team) = completed(&suite).await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let first = export(&hr, String::new()).await;
    assert_eq!(first.len(), 2);
    // A course naming no ESR competence sends its title and no id.
    assert!(
        first
            .iter()
            .all(|c| c.kind == pb::TrainingRecordChangeKind::Achieved as i32
                && (c.competence_id.as_str(), c.competence_name.as_str())
                    == ("", "QSIR Practitioner"))
    );
    // The trust names the course's competence; a corrected register revokes one, which goes
    // out against that competence.
    let admin = suite.caller("admin", &["admin"], &["*"]);
    let practitioner = "123|LOCAL|QSIR Practitioner|";
    set_competence(&admin, "trust/courses/qsir-prac", "10490", practitioner)
        .await
        .unwrap();
    let cursor = first.last().unwrap().cursor.clone();
    register(&team, &cohort, 5, &[(CLARKE, Absent)])
        .await
        .unwrap();
    let later = export(&hr, cursor).await;
    assert_eq!(later.len(), 1);
    assert_eq!(
        (
            later[0].employee_number.as_str(),
            later[0].kind,
            later[0].competence_id.as_str(),
            later[0].competence_name.as_str(),
            later[0].course_code.as_str()
        ),
        (
            "40000003",
            pb::TrainingRecordChangeKind::Revoked as i32,
            "10490",
            practitioner,
            "QSIR-PRAC"
        )
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_restored_completion_is_exported_once_and_a_resent_register_changes_nothing() {
    let suite = TestSuite::start().await;
    let (cohort, team) = completed(&suite).await;
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    register(&team, &cohort, 5, &[(CLARKE, Absent)])
        .await
        .unwrap();
    let revoked = export(&hr, String::new()).await;
    let cursor = revoked.last().unwrap().cursor.clone();
    // Corrected back, the completion is restored as a new change; the same register sent
    // again (a retry) changes nothing and exports nothing.
    for round in 0..2 {
        let again = register(&team, &cohort, 5, &[(CLARKE, CaughtUp)])
            .await
            .unwrap();
        let restored: Vec<_> = again.new_completions.iter().map(|c| &c.staff).collect();
        assert_eq!(restored.len(), 1 - round, "round {round}: {restored:?}");
    }
    let restored = export(&hr, cursor).await;
    assert_eq!(
        restored
            .iter()
            .map(|c| (c.employee_number.as_str(), c.kind))
            .collect::<Vec<_>>(),
        [("40000003", pb::TrainingRecordChangeKind::Achieved as i32)]
    );
    suite.stop().await.unwrap();
}
