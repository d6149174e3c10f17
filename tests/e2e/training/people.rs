//! A person has one name for life, `staff/{employee_number}` (issue 25): a move between
//! sites changes their `site` and history, never their name; reading them follows their
//! current site, and their enrolments and completions follow them under the same name.
//! "My cohorts" is ListCohorts by `learner`.

use chrono::Days;
use qi_e2e::training::{
    EXTRACT_TIME, create_cohort, enrol, esr, list_cohorts, new_cohort, register, start_cohort, sync,
};
use qi_e2e::{Caller, TestSuite, fields, today};
use qi_proto::training as pb;
use tonic::{Code, Status};

use super::{AHMED, DAVIES, enrol_three, running_cohort, withdraw_brown};

async fn get_staff(c: &Caller, name: &str) -> Result<pb::Staff, tonic::Status> {
    let req = pb::GetStaffRequest { name: name.into() };
    Ok(c.training()
        .get_staff(req)
        .await?
        .into_inner()
        .staff
        .expect("a person"))
}

async fn listed(c: &Caller, parent: &str) -> Vec<String> {
    let req = pb::ListStaffRequest {
        parent: parent.into(),
        ..Default::default()
    };
    let staff = c
        .training()
        .list_staff(req)
        .await
        .unwrap()
        .into_inner()
        .staff;
    staff.into_iter().map(|s| s.name).collect()
}

async fn completions(c: &Caller, parent: &str) -> Result<Vec<pb::Completion>, tonic::Status> {
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

fn sites(p: &pb::Staff) -> Vec<(&str, bool)> {
    p.site_history
        .iter()
        .map(|s| (s.site.as_str(), s.end_date.is_some()))
        .collect()
}

#[tokio::test]
async fn a_mover_keeps_their_name_and_their_reads_follow_their_site() {
    let suite = TestSuite::start().await;
    let (cohort, team) = running_cohort(&suite).await;
    // Ahmed, at BAS, completes the BAS cohort: every session attended.
    enrol(&team, &cohort, AHMED).await.unwrap();
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
    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let sou = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    let before = get_staff(&bas, AHMED).await.unwrap();
    assert_eq!(
        (before.name.as_str(), before.site.as_str()),
        (AHMED, "sites/BAS")
    );
    assert_eq!(sites(&before), [("sites/BAS", false)]);
    assert_eq!(
        get_staff(&sou, AHMED).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // HR moves Ahmed to SOU.
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let moved = [esr("40000001", "SOU", "Ahmed")];
    let answer = sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME + 60, &moved)
        .await
        .unwrap();
    assert_eq!(answer.updated, 1);
    // Re-sending the extract changes nothing, the history included.
    sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME + 60, &moved)
        .await
        .unwrap();

    // BAS no longer reads Ahmed, by the name or by the v1 alias under BAS, nor their
    // record or completions; and a person who never existed is refused alike.
    for name in [
        AHMED,
        "sites/BAS/staff/40000001",
        "sites/-/staff/40000001",
        "staff/49999999",
    ] {
        let err = get_staff(&bas, name).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{name}: {err:?}");
    }
    let record = pb::GetTrainingRecordRequest {
        staff: AHMED.into(),
    };
    let err = bas
        .training()
        .get_training_record(record)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        completions(&bas, AHMED).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert!(!listed(&bas, "sites/BAS").await.iter().any(|n| n == AHMED));

    // SOU does, with two spells, and the canonical name even when asked by an alias. (An
    // alias under BAS is the gateway's to refuse SOU: a name's site is checked there.)
    for name in [AHMED, "sites/SOU/staff/40000001", "sites/-/staff/40000001"] {
        let after = get_staff(&sou, name).await.unwrap();
        assert_eq!(
            (after.name.as_str(), after.site.as_str()),
            (AHMED, "sites/SOU"),
            "{name}"
        );
        assert_eq!(sites(&after), [("sites/SOU", false), ("sites/BAS", true)]);
    }
    assert!(listed(&sou, "sites/SOU").await.iter().any(|n| n == AHMED));
    let record = pb::GetTrainingRecordRequest {
        staff: AHMED.into(),
    };
    let record = sou
        .training()
        .get_training_record(record)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.enrolments.len(), 1);
    assert_eq!(
        (
            record.enrolments[0].name.as_str(),
            record.enrolments[0].staff.as_str()
        ),
        ("sites/BAS/cohorts/autumn/enrolments/40000001", AHMED)
    );
    let done = completions(&sou, AHMED).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].staff, AHMED);
    assert!(
        done[0].name.starts_with("staff/40000001/completions/"),
        "{}",
        done[0].name
    );
    assert_eq!(record.completions, done);
    // The trained-staff register follows the learner's current site.
    assert_eq!(completions(&sou, "sites/SOU").await.unwrap(), done);
    assert!(completions(&bas, "sites/BAS").await.unwrap().is_empty());

    // BAS's cohort keeps its learner: on its roster, and in its register.
    let roster = pb::ListEnrolmentsRequest {
        parent: cohort.clone(),
        ..Default::default()
    };
    let roster = team
        .training()
        .list_enrolments(roster)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        roster
            .enrolments
            .iter()
            .map(|e| e.staff.as_str())
            .collect::<Vec<_>>(),
        [AHMED]
    );
    register(
        &team,
        &cohort,
        5,
        &[("sites/BAS/staff/40000001", pb::AttendanceStatus::Attended)],
    )
    .await
    .unwrap();

    // Trust-wide callers read anyone, and are told when there is no one.
    let trust = suite.caller("qi-office", &["viewer"], &["*"]);
    assert_eq!(get_staff(&trust, AHMED).await.unwrap().site, "sites/SOU");
    let err = get_staff(&trust, "staff/49999999").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn staff_me_is_the_callers_own_record_wherever_they_work() {
    let suite = TestSuite::start().await;
    let (cohort, team) = running_cohort(&suite).await;
    enrol(&team, &cohort, AHMED).await.unwrap();
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    sync(
        &hr,
        pb::SyncMode::Delta,
        EXTRACT_TIME + 60,
        &[esr("40000001", "SOU", "Ahmed")],
    )
    .await
    .unwrap();
    // Ahmed's token still says BAS, but a person always reads their own record.
    let ahmed = suite.employee_caller("ahmed", &["viewer"], &["BAS"], "40000001");
    for name in ["staff/me", AHMED] {
        let me = get_staff(&ahmed, name).await.unwrap();
        assert_eq!(
            (me.name.as_str(), me.site.as_str()),
            (AHMED, "sites/SOU"),
            "{name}"
        );
    }
    assert!(completions(&ahmed, "staff/me").await.unwrap().is_empty());
    let record = pb::GetTrainingRecordRequest {
        staff: "staff/me".into(),
    };
    let record = ahmed
        .training()
        .get_training_record(record)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.enrolments.len(), 1);
    // Someone else at SOU is not theirs to read.
    let err = get_staff(&ahmed, "staff/40000004").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Without the claim, `staff/me` names no one: FAILED_PRECONDITION naming the claim.
    let anyone = suite.caller("kiosk", &["viewer"], &["*"]);
    let err = get_staff(&anyone, "staff/me").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("employee_number"),
        "{}",
        err.message()
    );
    let err = completions(&anyone, "staff/me").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

/// The names of the cohorts under `parent` on which `learner` holds or awaits a place.
async fn cohorts_of(c: &Caller, parent: &str, learner: &str) -> Result<Vec<String>, Status> {
    let req = pb::ListCohortsRequest {
        learner: learner.into(),
        ..list_cohorts(parent)
    };
    let listed = c.training().list_cohorts(req).await?.into_inner();
    Ok(listed.cohorts.into_iter().map(|c| c.name).collect())
}

#[tokio::test]
async fn my_cohorts_are_those_i_hold_or_await_a_place_on_as_their_rosters_show() {
    let suite = TestSuite::start().await;
    // BAS's cohort: Ahmed and Clarke hold places, Brown withdrew.
    let (autumn, team) = running_cohort(&suite).await;
    enrol_three(&team, &autumn).await;
    withdraw_brown(&team, &autumn).await;
    // SOU's cohort with Davies; a trust-wide Fundamentals day (a learner is on one
    // unfinished cohort of a course) of one place, Ahmed's, Davies waiting.
    let office = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let soon = today() + Days::new(30);
    let sou = create_cohort(&office, new_cohort("sites/SOU", "QSIR, SOU", soon, 10))
        .await
        .unwrap()
        .name;
    enrol(&office, &sou, DAVIES).await.unwrap();
    let mut fundamentals = new_cohort("trust", "QSIR Fundamentals, cross-site", soon, 1);
    if let Some(c) = fundamentals.cohort.as_mut() {
        c.course = "trust/courses/qsir-fund".into();
    }
    let trust = create_cohort(&office, fundamentals).await.unwrap().name;
    enrol(&office, &trust, AHMED).await.unwrap();
    let waiting = enrol(&office, &trust, DAVIES).await.unwrap();
    assert_eq!(waiting.state, pb::EnrolmentState::Waitlisted as i32);

    let person = |sub, site, number| suite.employee_caller(sub, &["viewer"], &[site], number);
    let ahmed = person("ahmed", "BAS", "40000001");
    for form in ["staff/me", AHMED, "sites/SOU/staff/40000001"] {
        assert_eq!(
            cohorts_of(&ahmed, "sites/-", form).await.unwrap(),
            [autumn.as_str()],
            "{form}"
        );
        assert_eq!(
            cohorts_of(&ahmed, "trust", form).await.unwrap(),
            [trust.as_str()]
        );
    }
    // A withdrawal is no longer a place; a wait is.
    let brown = person("brown", "BAS", "40000002");
    assert!(
        cohorts_of(&brown, "sites/-", "staff/me")
            .await
            .unwrap()
            .is_empty()
    );
    let davies = person("davies", "SOU", "40000004");
    assert_eq!(
        cohorts_of(&davies, "trust", "staff/me").await.unwrap(),
        [trust.as_str()]
    );
    assert_eq!(
        cohorts_of(&davies, "sites/-", "staff/me").await.unwrap(),
        [sou.as_str()]
    );

    // Nothing of a site the caller does not hold: SOU's cohort is not BAS's to list, and
    // the trust-wide roster shows a BAS caller only BAS's learners, so not Davies.
    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    for parent in ["sites/-", "trust"] {
        assert!(
            cohorts_of(&bas, parent, DAVIES).await.unwrap().is_empty(),
            "{parent}"
        );
    }
    assert_eq!(
        cohorts_of(&bas, "trust", AHMED).await.unwrap(),
        [trust.as_str()]
    );
    let sou_viewer = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    assert!(
        cohorts_of(&sou_viewer, "trust", AHMED)
            .await
            .unwrap()
            .is_empty()
    );
    let everywhere = suite.caller("qi-viewer", &["viewer"], &["*"]);
    assert_eq!(
        cohorts_of(&everywhere, "sites/-", DAVIES).await.unwrap(),
        [sou.as_str()]
    );
    assert_eq!(
        cohorts_of(&everywhere, "trust", DAVIES).await.unwrap(),
        [trust.as_str()]
    );

    // Without the claim, `staff/me` names no one: FAILED_PRECONDITION naming the claim.
    let err = cohorts_of(&bas, "sites/-", "staff/me").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("`employee_number`"), "{err:?}");
    for bad in ["40000001", "staff/4000", "sites/BAS/staff/me"] {
        let err = cohorts_of(&ahmed, "sites/-", bad).await.unwrap_err();
        assert_eq!(fields(&err), ["learner"], "{bad}");
    }
    suite.stop().await.unwrap();
}
