//! The training service through the gateway: HR sync in and out, cohorts and their
//! sessions, enrolment with a waitlist, registers, completions and the register's queries.
//! Here, what several of its tests start from.

mod cohorts;
mod completions;
mod courses;
mod coverage;
mod enrolment;
mod esr_mapping;
mod hr_files;
mod people;
mod reconcile;
mod register;
mod staff;
mod sync;

use chrono::Days;
use qi_e2e::training::{EXTRACT_TIME, create_cohort, enrol, esr, new_cohort, sync};
use qi_e2e::{Caller, TestSuite, today};
use qi_proto::training as pb;

/// The learners of [`running_cohort`]: three at BAS, one at SOU.
const AHMED: &str = "staff/40000001";
const BROWN: &str = "staff/40000002";
const CLARKE: &str = "staff/40000003";
const DAVIES: &str = "staff/40000004";

/// How many days ago [`running_cohort`] started.
const STARTED_DAYS_AGO: u64 = 35;

/// Staff at BAS and SOU, and a BAS cohort of QSIR Practitioner that started five weeks ago
/// (so every session is in the past), capacity 2: its name, and its site's improvement team.
async fn running_cohort(suite: &TestSuite) -> (String, Caller) {
    let hr = suite.caller("esr", &["hr_sync"], &["*"]);
    let people = [
        esr("40000001", "BAS", "Ahmed"),
        esr("40000002", "BAS", "Brown"),
        esr("40000003", "BAS", "Clarke"),
        esr("40000004", "SOU", "Davies"),
    ];
    sync(&hr, pb::SyncMode::Delta, EXTRACT_TIME, &people)
        .await
        .unwrap();
    let team = suite.caller("bas-lead", &["improvement_team"], &["BAS"]);
    let start = today() - Days::new(STARTED_DAYS_AGO);
    let mut req = new_cohort("sites/BAS", "QSIR Practitioner, autumn", start, 2);
    req.cohort_id = "autumn".into();
    if let Some(c) = req.cohort.as_mut() {
        c.facilitators = vec!["A. Associate".into()];
    }
    let cohort = create_cohort(&team, req).await.unwrap();
    (cohort.name, team)
}

/// Enrols Ahmed, Brown and Clarke on `cohort`, in that order: the third waits.
async fn enrol_three(team: &Caller, cohort: &str) -> Vec<pb::Enrolment> {
    let mut out = Vec::new();
    for learner in [AHMED, BROWN, CLARKE] {
        out.push(enrol(team, cohort, learner).await.unwrap());
    }
    out
}

/// Withdraws Brown from `cohort`.
async fn withdraw_brown(team: &Caller, cohort: &str) -> pb::WithdrawEnrolmentResponse {
    let req = pb::WithdrawEnrolmentRequest {
        name: format!("{cohort}/enrolments/40000002"),
    };
    team.training()
        .withdraw_enrolment(req)
        .await
        .unwrap()
        .into_inner()
}
