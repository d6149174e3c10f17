//! The idea funnel's history: every move kept with its time, actor and reason (dated moves
//! for triage decided before the suite, never out of order nor in the future), a reviewer
//! assigned by the site's improvement team, and the portfolio's funnel figures computed
//! from the history, for the caller's sites only.

use qi_e2e::projects::{
    accept_idea, create_idea, decline_idea, idea_events, new_idea, portfolio_summary, reopen_idea,
    review_idea, submit_idea,
};
use qi_e2e::{Caller, TestSuite, code, date, fields, today, ymd};
use qi_proto::projects as pb;
use tonic::Code;

use super::bas_team;

/// BAS's improvement team as a person, `staff/20000009`.
fn bas_lead(suite: &TestSuite) -> Caller {
    suite.employee_caller("bas-lead", &["improvement_team"], &["BAS"], "20000009")
}

/// An idea of `site` received on `day`, by a caller who may submit there.
async fn received(c: &Caller, site: &str, title: &str, day: chrono::NaiveDate) -> pb::Idea {
    let mut req = new_idea(site, title);
    if let Some(idea) = req.idea.as_mut() {
        idea.submit_date = Some(date(day));
    }
    create_idea(c, req).await.unwrap()
}

fn states(events: &[pb::IdeaEvent]) -> Vec<pb::IdeaState> {
    events.iter().map(|e| e.state()).collect()
}

#[tokio::test]
async fn every_move_is_kept_oldest_first_with_who_made_it_and_why() {
    let suite = TestSuite::start().await;
    let lead = bas_lead(&suite);
    let idea = submit_idea(&lead, "BAS", "Pharmacist on the ward")
        .await
        .unwrap();
    review_idea(&lead, &idea.name).await.unwrap();
    decline_idea(&lead, &idea.name, "No pharmacist this year")
        .await
        .unwrap();
    reopen_idea(&lead, &idea.name, "Funding found")
        .await
        .unwrap();
    accept_idea(&lead, &idea.name, "").await.unwrap();
    // Read two at a time: the pages join up in order.
    let events = idea_events(&lead, &idea.name).await.unwrap();
    use pb::IdeaState as S;
    assert_eq!(
        states(&events),
        [
            S::Submitted,
            S::UnderReview,
            S::Declined,
            S::UnderReview,
            S::Accepted
        ]
    );
    let reasons: Vec<_> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["", "", "No pharmacist this year", "Funding found", ""]
    );
    assert!(
        events
            .iter()
            .all(|e| e.actor == "bas-lead" && e.actor_staff == "staff/20000009")
    );
    let times: Vec<_> = events
        .iter()
        .map(|e| e.event_time.as_ref().map(|t| (t.seconds, t.nanos)))
        .collect();
    assert!(times.iter().all(Option::is_some));
    assert!(times.is_sorted(), "{times:?}");
    // A caller without an employee number is kept by their token's subject alone.
    let team = bas_team(&suite);
    let other = submit_idea(&team, "BAS", "Board round at nine")
        .await
        .unwrap();
    let events = idea_events(&team, &other.name).await.unwrap();
    assert_eq!(
        (events[0].actor.as_str(), events[0].actor_staff.as_str()),
        ("bas-team", "")
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_move_loaded_with_its_day_is_kept_at_noon_and_never_out_of_order() {
    let suite = TestSuite::start().await;
    let lead = bas_lead(&suite);
    let idea = received(&lead, "BAS", "Discharge lounge", ymd(2025, 1, 6)).await;
    let review = |day: chrono::NaiveDate| pb::ReviewIdeaRequest {
        name: idea.name.clone(),
        effective_date: Some(date(day)),
        ..Default::default()
    };
    // Before its submission, or in the future: refused, naming the field, nothing kept.
    for day in [ymd(2025, 1, 5), today() + chrono::Days::new(1)] {
        let err = lead.projects().review_idea(review(day)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{day}: {err:?}");
        assert_eq!(fields(&err), ["effective_date"], "{day}");
    }
    let events = idea_events(&lead, &idea.name).await.unwrap();
    assert_eq!(states(&events), [pb::IdeaState::Submitted]);
    // Noon in London: 12:00 UTC in January, 11:00 UTC in June.
    let noon = |t: &prost_types::Timestamp| {
        chrono::DateTime::from_timestamp(t.seconds, 0).map(|t| t.to_rfc3339())
    };
    assert_eq!(
        noon(events[0].event_time.as_ref().unwrap()).unwrap(),
        "2025-01-06T12:00:00+00:00"
    );
    lead.projects()
        .review_idea(review(ymd(2025, 1, 20)))
        .await
        .unwrap();
    let decline = pb::DeclineIdeaRequest {
        name: idea.name.clone(),
        reason: "Space needed for beds".into(),
        effective_date: Some(date(ymd(2025, 6, 2))),
        ..Default::default()
    };
    let declined = lead.projects().decline_idea(decline).await.unwrap();
    let declined = declined.into_inner().idea.unwrap();
    assert_eq!(
        noon(declined.decision_time.as_ref().unwrap()).unwrap(),
        "2025-06-02T11:00:00+00:00"
    );
    let events = idea_events(&lead, &idea.name).await.unwrap();
    let times: Vec<_> = events
        .iter()
        .filter_map(|e| noon(e.event_time.as_ref()?))
        .collect();
    assert_eq!(
        times,
        [
            "2025-01-06T12:00:00+00:00",
            "2025-01-20T12:00:00+00:00",
            "2025-06-02T11:00:00+00:00"
        ]
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_ideas_history_is_read_only_at_its_site() {
    let suite = TestSuite::start().await;
    let lead = bas_lead(&suite);
    let idea = submit_idea(&lead, "BAS", "Pharmacist on the ward")
        .await
        .unwrap();
    let sou = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    let err = idea_events(&sou, &idea.name).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    assert_eq!(idea_events(&bas, &idea.name).await.unwrap().len(), 1);
    let missing = idea_events(&bas, "sites/BAS/ideas/no-such-idea").await;
    assert_eq!(code(missing), Code::NotFound);
    suite.stop().await.unwrap();
}

fn assign(name: &str, reviewer: &str, etag: &str) -> pb::AssignIdeaReviewerRequest {
    pb::AssignIdeaReviewerRequest {
        name: name.into(),
        reviewer: reviewer.into(),
        etag: etag.into(),
    }
}

#[tokio::test]
async fn the_sites_team_assigns_a_reviewer_to_an_open_idea() {
    let suite = TestSuite::start().await;
    let lead = bas_lead(&suite);
    let idea = submit_idea(&lead, "BAS", "Pharmacist on the ward")
        .await
        .unwrap();
    let assigned = lead
        .projects()
        .assign_idea_reviewer(assign(&idea.name, "staff/me", &idea.etag))
        .await
        .unwrap()
        .into_inner()
        .idea
        .unwrap();
    assert_eq!(assigned.reviewer, "staff/20000009");
    // A stale etag, a contributor, another site's team: refused, nothing stored.
    let stale = assign(&idea.name, "staff/12345678", &idea.etag);
    let err = lead
        .projects()
        .assign_idea_reviewer(stale)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    let nurse = suite.caller("bas-nurse", &["contributor"], &["BAS"]);
    let sou = suite.caller("sou-team", &["improvement_team"], &["SOU"]);
    for c in [&nurse, &sou] {
        let req = assign(&idea.name, "staff/12345678", "");
        let err = c.projects().assign_idea_reviewer(req).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    let err = lead
        .projects()
        .assign_idea_reviewer(assign(&idea.name, "someone", ""))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["reviewer"]);
    let got = idea_events(&lead, &idea.name).await.unwrap();
    assert_eq!(got.len(), 1, "an assignment is not a move");
    let cleared = lead
        .projects()
        .assign_idea_reviewer(assign(&idea.name, "", &assigned.etag))
        .await
        .unwrap()
        .into_inner()
        .idea
        .unwrap();
    assert_eq!(cleared.reviewer, "");
    // Once decided there is nothing left to review.
    let declined = decline_idea(&lead, &idea.name, "Not now").await.unwrap();
    let req = assign(&declined.name, "staff/me", "");
    let err = lead.projects().assign_idea_reviewer(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    suite.stop().await.unwrap();
}

/// The funnel's stage `s` as (entered, median days, conversion, waiting, overdue).
fn stage(
    summary: &pb::GetPortfolioSummaryResponse,
    s: pb::IdeaState,
) -> (i64, Option<f64>, Option<f64>, i64, i64) {
    let f = summary
        .funnel
        .iter()
        .find(|f| f.stage() == s)
        .unwrap_or_else(|| panic!("no {s:?} stage"));
    (f.entered, f.median_days, f.conversion, f.waiting, f.overdue)
}

#[tokio::test]
async fn the_portfolio_reports_the_funnel_stage_by_stage_for_the_callers_sites() {
    let suite = TestSuite::start_with(&[("QI_IDEA_REVIEW_DAYS", "10")]).await;
    let lead = bas_lead(&suite);
    let dated = |d: chrono::NaiveDate| Some(date(d));
    // Reviewed after 4 days, accepted 8 days later.
    let a = received(&lead, "BAS", "Board round at nine", ymd(2026, 1, 5)).await;
    let review = |name: &str, d| pb::ReviewIdeaRequest {
        name: name.into(),
        effective_date: dated(d),
        ..Default::default()
    };
    lead.projects()
        .review_idea(review(&a.name, ymd(2026, 1, 9)))
        .await
        .unwrap();
    let accept = pb::AcceptIdeaRequest {
        name: a.name.clone(),
        effective_date: dated(ymd(2026, 1, 17)),
        ..Default::default()
    };
    lead.projects().accept_idea(accept).await.unwrap();
    // Reviewed after 6 days; waiting under review since.
    let b = received(&lead, "BAS", "Discharge lounge", ymd(2026, 1, 5)).await;
    lead.projects()
        .review_idea(review(&b.name, ymd(2026, 1, 11)))
        .await
        .unwrap();
    // Declined after 10 days.
    let c = received(&lead, "BAS", "Pharmacist on the ward", ymd(2026, 1, 5)).await;
    let decline = pb::DeclineIdeaRequest {
        name: c.name.clone(),
        reason: "Covered by the pharmacy review".into(),
        effective_date: dated(ymd(2026, 1, 15)),
        ..Default::default()
    };
    lead.projects().decline_idea(decline).await.unwrap();
    // Received today: waiting, not yet overdue.
    submit_idea(&lead, "BAS", "Weekend discharges")
        .await
        .unwrap();
    // SOU's idea counts for SOU and the trust, never for BAS.
    let sou = suite.caller("sou-team", &["improvement_team"], &["SOU"]);
    received(&sou, "SOU", "Falls sensors", ymd(2026, 1, 5)).await;

    let bas = suite.caller("bas-viewer", &["viewer"], &["BAS"]);
    let summary = portfolio_summary(&bas, "sites/-", Default::default(), "")
        .await
        .unwrap();
    assert_eq!(summary.review_deadline_days, 10);
    use pb::IdeaState as S;
    // Submitted: 4, 6 and 10 days for the three that left; 2 of 4 went on to review.
    assert_eq!(
        stage(&summary, S::Submitted),
        (4, Some(6.0), Some(0.5), 1, 0)
    );
    assert_eq!(
        stage(&summary, S::UnderReview),
        (2, Some(8.0), Some(0.5), 1, 1)
    );
    assert_eq!(stage(&summary, S::Accepted), (1, None, None, 1, 0));
    assert_eq!(stage(&summary, S::Declined), (1, None, None, 1, 0));
    assert_eq!(stage(&summary, S::Merged), (0, None, None, 0, 0));
    let trust = suite.caller("trust-viewer", &["viewer"], &["*"]);
    let all = portfolio_summary(&trust, "sites/-", Default::default(), "")
        .await
        .unwrap();
    assert_eq!(stage(&all, S::Submitted).0, 5);
    assert_eq!(
        stage(&all, S::Submitted).4,
        1,
        "SOU's waits past the deadline"
    );
    suite.stop().await.unwrap();
}
