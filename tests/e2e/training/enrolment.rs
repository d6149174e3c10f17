//! Enrolment: a cohort fills to its capacity, then learners wait in line; a withdrawal or
//! a raised capacity promotes the first in line; learners come from the cohort's sites.

use chrono::Days;
use qi_e2e::training::{EXTRACT_TIME, create_cohort, enrol, esr, new_cohort, sync};
use qi_e2e::{Caller, TestSuite, today};
use qi_proto::training as pb;
use tonic::Code;

use super::{AHMED, CLARKE, DAVIES, enrol_three, running_cohort, withdraw_brown};

#[tokio::test]
async fn past_its_capacity_a_cohorts_learners_wait_in_line() {
    let suite = TestSuite::start().await;
    let (cohort, team) = running_cohort(&suite).await;
    let [ahmed, brown, clarke] = &enrol_three(&team, &cohort).await[..] else {
        panic!("three enrolments");
    };
    let enrolled = pb::EnrolmentState::Enrolled as i32;
    assert_eq!((ahmed.state, brown.state), (enrolled, enrolled));
    assert_eq!(
        (clarke.state, clarke.waitlist_position),
        (pb::EnrolmentState::Waitlisted as i32, 1)
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_learner_of_a_site_the_cohort_is_not_at_is_refused() {
    let suite = TestSuite::start().await;
    let (cohort, team) = running_cohort(&suite).await;
    enrol_three(&team, &cohort).await;
    let err = enrol(&team, &cohort, DAVIES).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::PermissionDenied,
        "a BAS token cannot name a SOU learner"
    );
    let trust = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let err = enrol(&trust, &cohort, DAVIES).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_learner_is_enrolled_once() {
    let suite = TestSuite::start().await;
    let (cohort, team) = running_cohort(&suite).await;
    enrol_three(&team, &cohort).await;
    let again = enrol(&team, &cohort, AHMED).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_withdrawal_gives_the_place_to_the_first_in_line() {
    let suite = TestSuite::start().await;
    let (cohort, team) = running_cohort(&suite).await;
    enrol_three(&team, &cohort).await;
    let withdrawn = withdraw_brown(&team, &cohort).await;
    assert_eq!(withdrawn.promoted.unwrap().staff, CLARKE);
    suite.stop().await.unwrap();
}

/// Twelve people at BRM, and a cross-site Fundamentals cohort for three a month away: its
/// name, and the trust-wide team that runs it.
async fn twelve_learners_for_three_places(suite: &TestSuite) -> (String, Caller) {
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let people: Vec<_> = (0..12)
        .map(|i| esr(&format!("{}", 50_000_000 + i), "BRM", &format!("L{i}")))
        .collect();
    sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME, &people)
        .await
        .unwrap();
    let trust = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let start = today() + Days::new(30);
    let mut req = new_cohort("trust", "Fundamentals, cross-site", start, 3);
    if let Some(c) = req.cohort.as_mut() {
        c.course = "trust/courses/qsir-fund".into();
    }
    let cohort = create_cohort(&trust, req).await.unwrap();
    (cohort.name, trust)
}

fn learner(i: usize) -> String {
    format!("sites/BRM/staff/{}", 50_000_000 + i)
}

const ENROLLED: &str = "SELECT count(*) FROM training.enrolment WHERE state = 'enrolled'";
const WAITING: &str = "SELECT count(*) FROM training.enrolment WHERE state = 'waitlisted'";

#[tokio::test]
async fn concurrent_enrolments_never_overfill_a_cohort() {
    let suite = TestSuite::start().await;
    let (cohort, trust) = twelve_learners_for_three_places(&suite).await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (trust, cohort) = (trust.clone(), cohort.clone());
            tokio::spawn(async move { enrol(&trust, &cohort, &learner(i)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let counts = (suite.count(ENROLLED).await, suite.count(WAITING).await);
    assert_eq!(counts, (3, 9));
    suite.stop().await.unwrap();
}

/// A change of `cohort`'s capacity, guarded by `etag` when given.
fn capacity(cohort: &str, capacity: i32, etag: &str) -> pb::UpdateCohortRequest {
    pb::UpdateCohortRequest {
        cohort: Some(pb::Cohort {
            name: cohort.into(),
            capacity,
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["capacity".into()],
        }),
    }
}

#[tokio::test]
async fn raising_the_capacity_promotes_the_waitlist_and_a_stale_etag_is_aborted() {
    let suite = TestSuite::start().await;
    let (cohort, trust) = twelve_learners_for_three_places(&suite).await;
    for i in 0..12 {
        enrol(&trust, &cohort, &learner(i)).await.unwrap();
    }
    let got = trust
        .training()
        .get_cohort(pb::GetCohortRequest {
            name: cohort.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .cohort
        .unwrap();
    let raise = capacity(&cohort, 5, &got.etag);
    let raised = trust
        .training()
        .update_cohort(raise.clone())
        .await
        .unwrap()
        .into_inner()
        .cohort
        .unwrap();
    assert_eq!((raised.enrolled_count, raised.waitlist_count), (5, 7));
    let stale = trust.training().update_cohort(raise).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn lowering_the_capacity_below_the_enrolled_is_refused() {
    let suite = TestSuite::start().await;
    let (cohort, trust) = twelve_learners_for_three_places(&suite).await;
    for i in 0..3 {
        enrol(&trust, &cohort, &learner(i)).await.unwrap();
    }
    let mut lower = capacity(&cohort, 2, "");
    lower.update_mask = None;
    let err = trust.training().update_cohort(lower).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}
