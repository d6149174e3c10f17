//! Ideas and their triage: submitted by anyone at the site, reviewed, then accepted as a
//! project, declined with a reason (and reopened with one) or merged into a live idea or a
//! project of the site; every other move is refused; lists filter by state, theme and
//! submitter ("my ideas"); the submitter and the site's improvement team edit an idea while
//! it is open (UpdateIdea).

use qi_e2e::projects::{
    accept_idea, create_idea, create_ward, decline_idea, list_ideas, merge_idea, new_idea,
    reopen_idea, review_idea, submit_idea,
};
use qi_e2e::{Caller, TestSuite, code, fields};
use qi_proto::projects as pb;
use tonic::{Code, Status};

use super::bas_team;

/// BAS's improvement team and a nurse at BAS who contributes ideas.
struct Triage {
    team: Caller,
    nurse: Caller,
}

/// Cedar ward at BAS, and the callers who submit and triage ideas there.
async fn cedar(suite: &TestSuite) -> Triage {
    let team = bas_team(suite);
    create_ward(&team, "BAS", "cedar").await.unwrap();
    let nurse = suite.caller("bas-nurse", &["contributor"], &["BAS"]);
    Triage { team, nurse }
}

/// The nurse's idea `discharge-letters`, on Cedar ward, as submitted.
async fn discharge_letters(t: &Triage) -> pb::Idea {
    let mut req = pb::CreateIdeaRequest {
        idea_id: "discharge-letters".into(),
        ..new_idea("BAS", "Discharge letters before noon")
    };
    if let Some(idea) = req.idea.as_mut() {
        idea.description = "Letters wait for the afternoon round".into();
        idea.ward = "sites/BAS/wards/cedar".into();
        idea.submitter_staff = "staff/10000001".into();
    }
    create_idea(&t.nurse, req).await.unwrap()
}

/// [`discharge_letters`], reviewed and accepted: the answer, idea and project.
async fn accepted(t: &Triage) -> (pb::Idea, pb::Project) {
    let first = discharge_letters(t).await;
    review_idea(&t.team, &first.name).await.unwrap();
    let accepted = accept_idea(&t.team, &first.name, "").await.unwrap();
    (accepted.idea.unwrap(), accepted.project.unwrap())
}

/// A pharmacist idea from the nurse, declined by the team.
async fn declined(t: &Triage) -> pb::Idea {
    let idea = submit_idea(&t.nurse, "BAS", "Ward-based pharmacist")
        .await
        .unwrap();
    decline_idea(&t.team, &idea.name, "Covered by the pharmacy review")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_contributor_submits_an_idea_and_only_the_team_reviews_it() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let first = discharge_letters(&t).await;
    assert_eq!(first.state, pb::IdeaState::Submitted as i32);
    assert_eq!(
        code(review_idea(&t.nurse, &first.name).await),
        Code::PermissionDenied
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_idea_is_reviewed_once_before_it_is_accepted() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let first = discharge_letters(&t).await;
    assert_eq!(
        code(accept_idea(&t.team, &first.name, "").await),
        Code::FailedPrecondition
    );
    let reviewed = review_idea(&t.team, &first.name).await.unwrap();
    assert_eq!(reviewed.state, pb::IdeaState::UnderReview as i32);
    assert_eq!(
        code(review_idea(&t.team, &first.name).await),
        Code::FailedPrecondition
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_accepted_idea_becomes_a_scoping_project_on_its_ward() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let (idea, project) = accepted(&t).await;
    assert_eq!(idea.state, pb::IdeaState::Accepted as i32);
    assert_eq!(idea.project, project.name);
    assert_eq!(project.idea, idea.name);
    assert!(project.name.starts_with("sites/BAS/projects/"));
    assert_eq!(project.state, pb::ProjectState::Scoping as i32);
    assert_eq!(project.title, "Discharge letters before noon");
    assert_eq!(project.wards, ["sites/BAS/wards/cedar"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_retried_accept_answers_the_same_and_makes_one_project() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let first = discharge_letters(&t).await;
    review_idea(&t.team, &first.name).await.unwrap();
    let rid = uuid::Uuid::new_v4().to_string();
    let accepted = accept_idea(&t.team, &first.name, &rid).await.unwrap();
    let again = accept_idea(&t.team, &first.name, &rid).await.unwrap();
    assert_eq!(accepted, again, "a retried accept answers the same");
    assert_eq!(
        suite.count("SELECT count(*) FROM projects.project").await,
        1
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_accepted_idea_stays_accepted() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let (idea, project) = accepted(&t).await;
    for m in [
        decline_idea(&t.team, &idea.name, "no").await,
        merge_idea(&t.team, &idea.name, &project.name).await,
        reopen_idea(&t.team, &idea.name, "why").await,
        review_idea(&t.team, &idea.name).await,
    ] {
        assert_eq!(
            code(m),
            Code::FailedPrecondition,
            "an accepted idea stays accepted"
        );
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn declining_an_idea_needs_a_reason_and_keeps_it() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let second = submit_idea(&t.nurse, "BAS", "Ward-based pharmacist")
        .await
        .unwrap();
    let err = decline_idea(&t.team, &second.name, "  ").await.unwrap_err();
    assert_eq!(fields(&err), ["reason"]);
    let declined = decline_idea(&t.team, &second.name, "Covered by the pharmacy review")
        .await
        .unwrap();
    assert_eq!(declined.state, pb::IdeaState::Declined as i32);
    assert_eq!(declined.decline_reason, "Covered by the pharmacy review");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_declined_idea_is_reopened_before_any_other_move() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let first = discharge_letters(&t).await;
    let second = declined(&t).await;
    for m in [
        review_idea(&t.team, &second.name).await,
        accept_idea(&t.team, &second.name, "")
            .await
            .map(|r| r.idea.unwrap()),
        merge_idea(&t.team, &second.name, &first.name).await,
        decline_idea(&t.team, &second.name, "again").await,
    ] {
        assert_eq!(
            code(m),
            Code::FailedPrecondition,
            "a declined idea is reopened first"
        );
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn reopening_needs_a_reason_and_puts_a_declined_idea_back_under_review() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let second = declined(&t).await;
    assert_eq!(
        fields(&reopen_idea(&t.team, &second.name, "").await.unwrap_err()),
        ["reason"]
    );
    let reopened = reopen_idea(
        &t.team,
        &second.name,
        "The pharmacy review did not cover wards",
    )
    .await
    .unwrap();
    assert_eq!(reopened.state, pb::IdeaState::UnderReview as i32);
    assert_eq!(reopened.decline_reason, "");
    assert_eq!(
        reopened.reopen_reason,
        "The pharmacy review did not cover wards"
    );
    assert_eq!(
        code(reopen_idea(&t.team, &second.name, "again").await),
        Code::FailedPrecondition,
        "only a declined idea reopens"
    );
    suite.stop().await.unwrap();
}

/// The ideas of [`merges`]: an accepted idea's project, a live idea, one merged into it,
/// and one merged into the project.
struct Merged {
    project: pb::Project,
    second: pb::Idea,
    third: pb::Idea,
    fourth: pb::Idea,
}

/// An accepted idea, a live pharmacist idea, a second pharmacist idea merged into it, and a
/// letters idea not merged yet.
async fn merges(t: &Triage) -> Merged {
    let (_, project) = accepted(t).await;
    let second = submit_idea(&t.nurse, "BAS", "Ward-based pharmacist")
        .await
        .unwrap();
    let third = submit_idea(&t.nurse, "BAS", "Pharmacist on the ward round")
        .await
        .unwrap();
    let third = merge_idea(&t.team, &third.name, &second.name)
        .await
        .unwrap();
    let fourth = submit_idea(&t.nurse, "BAS", "Letters template")
        .await
        .unwrap();
    Merged {
        project,
        second,
        third,
        fourth,
    }
}

#[tokio::test]
async fn an_idea_merges_into_another_live_idea_of_its_site() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let m = merges(&t).await;
    assert_eq!(m.third.state, pb::IdeaState::Merged as i32);
    assert_eq!(m.third.merged_into, m.second.name);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_idea_merges_into_no_idea_but_a_live_other_one_of_its_site() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let m = merges(&t).await;
    for into in [
        m.fourth.name.clone(),
        m.third.name.clone(),
        "sites/BAS/ideas/no-such".into(),
        "sites/SOU/ideas/x".into(),
        "sites/SOU/projects/x".into(),
        "elsewhere".into(),
    ] {
        let err = merge_idea(&t.team, &m.fourth.name, &into)
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["into"], "{into}");
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_idea_merges_into_a_project_of_its_site_once() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let m = merges(&t).await;
    let merged = merge_idea(&t.team, &m.fourth.name, &m.project.name)
        .await
        .unwrap();
    assert_eq!(merged.merged_into, m.project.name);
    assert_eq!(
        code(merge_idea(&t.team, &m.fourth.name, &m.project.name).await),
        Code::FailedPrecondition
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn ideas_filter_by_state_and_by_theme_in_any_case() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let m = merges(&t).await;
    merge_idea(&t.team, &m.fourth.name, &m.project.name)
        .await
        .unwrap();
    let req = pb::ListIdeasRequest {
        state: pb::IdeaState::Merged as i32,
        theme: "patient FLOW".into(),
        ..list_ideas("sites/BAS")
    };
    let listed = t.nurse.projects().list_ideas(req).await.unwrap();
    let mut names: Vec<_> = listed
        .into_inner()
        .ideas
        .into_iter()
        .map(|i| i.name)
        .collect();
    names.sort();
    let mut expected = vec![m.third.name, m.fourth.name];
    expected.sort();
    assert_eq!(names, expected);
    suite.stop().await.unwrap();
}

/// The nurse of [`discharge_letters`] as a person: `staff/10000001`, a BAS contributor.
fn nurse_10000001(suite: &TestSuite) -> Caller {
    suite.employee_caller("bas-nurse", &["contributor"], &["BAS"], "10000001")
}

/// The names of the ideas under `parent` that `submitter` submitted, as listed.
async fn ideas_of(c: &Caller, parent: &str, submitter: &str) -> Result<Vec<String>, Status> {
    let req = pb::ListIdeasRequest {
        submitter: submitter.into(),
        ..list_ideas(parent)
    };
    let listed = c.projects().list_ideas(req).await?.into_inner();
    Ok(listed.ideas.into_iter().map(|i| i.name).collect())
}

#[tokio::test]
async fn my_ideas_are_those_i_submitted_at_the_sites_i_hold() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let mine = discharge_letters(&t).await;
    let me = nurse_10000001(&suite);
    let later = create_idea(&me, with_submitter(new_idea("BAS", "Later"), "staff/me"))
        .await
        .unwrap();
    assert_eq!(later.submitter_staff, "staff/10000001");
    // Someone else's idea at BAS, one of no staff member, and one of mine at SOU.
    create_idea(
        &t.nurse,
        with_submitter(new_idea("BAS", "Theirs"), "staff/10000002"),
    )
    .await
    .unwrap();
    submit_idea(&t.nurse, "BAS", "Anonymous").await.unwrap();
    let qi_office = suite.caller("qi-office", &["improvement_team"], &["*"]);
    let at_sou = create_idea(
        &qi_office,
        with_submitter(new_idea("SOU", "At SOU"), "staff/10000001"),
    )
    .await
    .unwrap();

    let expected = [later.name.as_str(), mine.name.as_str()];
    for form in ["staff/me", "staff/10000001", "sites/SOU/staff/10000001"] {
        for parent in ["sites/-", "sites/BAS"] {
            assert_eq!(
                ideas_of(&me, parent, form).await.unwrap(),
                expected,
                "{parent} {form}"
            );
        }
    }
    // SOU's is not BAS's to show; a trust-wide caller finds all three.
    assert_eq!(
        ideas_of(&qi_office, "sites/-", "staff/10000001")
            .await
            .unwrap(),
        [
            at_sou.name.as_str(),
            later.name.as_str(),
            mine.name.as_str()
        ]
    );
    // Another filter narrows it further.
    let req = pb::ListIdeasRequest {
        submitter: "staff/me".into(),
        state: pb::IdeaState::Submitted as i32,
        theme: "nothing like it".into(),
        ..list_ideas("sites/-")
    };
    let none = me.projects().list_ideas(req).await.unwrap().into_inner();
    assert!(none.ideas.is_empty());

    // Without the claim, `staff/me` names no one: FAILED_PRECONDITION naming the claim.
    let err = ideas_of(&t.nurse, "sites/-", "staff/me").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("`employee_number`"), "{err:?}");
    for bad in ["10000001", "staff/12ab5678", "sites/BAS/staff/me"] {
        let err = ideas_of(&me, "sites/-", bad).await.unwrap_err();
        assert_eq!(fields(&err), ["submitter"], "{bad}");
    }
    suite.stop().await.unwrap();
}

/// `req` with its idea's `submitter_staff` set.
fn with_submitter(mut req: pb::CreateIdeaRequest, staff: &str) -> pb::CreateIdeaRequest {
    if let Some(idea) = req.idea.as_mut() {
        idea.submitter_staff = staff.into();
    }
    req
}

/// Sends UpdateIdea: `idea` (named in it) with `paths` as the mask (`None`: no mask).
async fn update_idea(
    c: &Caller,
    idea: pb::Idea,
    paths: Option<&[&str]>,
) -> Result<pb::Idea, Status> {
    let req = pb::UpdateIdeaRequest {
        idea: Some(idea),
        update_mask: paths.map(|p| prost_types::FieldMask {
            paths: p.iter().map(|s| s.to_string()).collect(),
        }),
    };
    let idea = c.projects().update_idea(req).await?.into_inner().idea;
    Ok(idea.expect("an idea"))
}

/// An edit of idea `name`: a new title and theme.
fn retitled(name: &str) -> pb::Idea {
    pb::Idea {
        name: name.into(),
        title: "Discharge letters by eleven".into(),
        theme: "Discharge".into(),
        ..Default::default()
    }
}

/// Reads idea `name`.
async fn get_idea(c: &Caller, name: &str) -> pb::Idea {
    let req = pb::GetIdeaRequest { name: name.into() };
    let got = c.projects().get_idea(req).await.unwrap().into_inner();
    got.idea.expect("an idea")
}

#[tokio::test]
async fn the_submitter_edits_their_own_open_idea_and_the_same_edit_twice_is_one() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let first = discharge_letters(&t).await;
    let me = nurse_10000001(&suite);
    let edited = update_idea(&me, retitled(&first.name), None).await.unwrap();
    assert_eq!(
        (edited.title.as_str(), edited.theme.as_str()),
        ("Discharge letters by eleven", "Discharge")
    );
    // What the edit did not name stays, and so do who submitted it, when, and its state.
    assert_eq!(edited.description, first.description);
    assert_eq!(edited.ward, "sites/BAS/wards/cedar");
    assert_eq!(
        (edited.submitter_staff.as_str(), edited.submit_date),
        ("staff/10000001", first.submit_date)
    );
    assert_eq!(edited.state, pb::IdeaState::Submitted as i32);
    assert_ne!(edited.etag, first.etag);
    // Again, with the etag it now has: the same idea, the same etag.
    let again = pb::Idea {
        etag: edited.etag.clone(),
        ..retitled(&first.name)
    };
    assert_eq!(update_idea(&me, again, None).await.unwrap(), edited);
    // With the etag read before the first edit: ABORTED.
    let stale = pb::Idea {
        etag: first.etag.clone(),
        title: "Something else".into(),
        ..retitled(&first.name)
    };
    let err = update_idea(&me, stale, None).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    // Under review it is still theirs to edit; a masked empty field clears it.
    review_idea(&t.team, &first.name).await.unwrap();
    let cleared = pb::Idea {
        name: first.name.clone(),
        ..Default::default()
    };
    let cleared = update_idea(&me, cleared, Some(&["ward", "description"]))
        .await
        .unwrap();
    assert_eq!(
        (cleared.ward.as_str(), cleared.description.as_str()),
        ("", "")
    );
    assert_eq!(cleared.title, "Discharge letters by eleven");
    assert_eq!(get_idea(&me, &first.name).await, cleared);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_contributor_who_did_not_submit_it_or_cannot_show_it_is_refused_and_nothing_stored() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let first = discharge_letters(&t).await;
    let someone = suite.employee_caller("bas-porter", &["contributor"], &["BAS"], "10000002");
    let err = update_idea(&someone, retitled(&first.name), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("staff/10000002 did not submit"),
        "{err:?}"
    );
    // The submitter's own token without the claim: refused, naming the claim.
    let err = update_idea(&t.nurse, retitled(&first.name), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("`employee_number`"), "{err:?}");
    // An idea no staff member submitted is nobody's to edit but the team's.
    let anonymous = submit_idea(&t.nurse, "BAS", "Anonymous").await.unwrap();
    let err = update_idea(&nurse_10000001(&suite), retitled(&anonymous.name), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(get_idea(&t.nurse, &first.name).await, first);
    assert_eq!(get_idea(&t.nurse, &anonymous.name).await, anonymous);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_improvement_team_edits_any_idea_of_its_site_and_no_other_site() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let first = discharge_letters(&t).await;
    let edited = update_idea(&t.team, retitled(&first.name), Some(&["title"]))
        .await
        .unwrap();
    assert_eq!(
        (edited.title.as_str(), edited.theme.as_str()),
        ("Discharge letters by eleven", "Patient flow")
    );
    let admin = suite.caller("admin", &["admin"], &["BAS"]);
    let anonymous = submit_idea(&t.nurse, "BAS", "Anonymous").await.unwrap();
    update_idea(&admin, retitled(&anonymous.name), None)
        .await
        .unwrap();
    let sou_team = suite.caller("sou-team", &["improvement_team"], &["SOU"]);
    let err = update_idea(&sou_team, retitled(&first.name), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert_eq!(get_idea(&t.nurse, &first.name).await, edited);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_decided_idea_is_not_edited_until_a_declined_one_is_reopened() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let me = nurse_10000001(&suite);
    let (accepted, _) = accepted(&t).await;
    let merged = create_idea(&me, with_submitter(new_idea("BAS", "Twin"), "staff/me"))
        .await
        .unwrap();
    let merged = merge_idea(&t.team, &merged.name, &accepted.project)
        .await
        .unwrap();
    let declined = create_idea(&me, with_submitter(new_idea("BAS", "Gone"), "staff/me"))
        .await
        .unwrap();
    let declined = decline_idea(&t.team, &declined.name, "Not now")
        .await
        .unwrap();
    for (idea, state) in [
        (&accepted, "accepted"),
        (&merged, "merged"),
        (&declined, "declined"),
    ] {
        for editor in [&me, &t.team] {
            let err = update_idea(editor, retitled(&idea.name), None)
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::FailedPrecondition, "{state}: {err:?}");
            assert!(err.message().contains(&format!("is {state}")), "{err:?}");
        }
        assert_eq!(&get_idea(&me, &idea.name).await, idea);
    }
    reopen_idea(&t.team, &declined.name, "Now").await.unwrap();
    update_idea(&me, retitled(&declined.name), None)
        .await
        .unwrap();
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_edit_is_invalid_naming_the_field_and_nothing_is_stored() {
    let suite = TestSuite::start().await;
    let t = cedar(&suite).await;
    let first = discharge_letters(&t).await;
    let me = nurse_10000001(&suite);
    let edit = |f: fn(&mut pb::Idea)| {
        let mut idea = retitled(&first.name);
        f(&mut idea);
        idea
    };
    for (idea, paths, field) in [
        (edit(|i| i.title = "  ".into()), None, "idea.title"),
        (
            edit(|i| i.title.clear()),
            Some(&["title"][..]),
            "idea.title",
        ),
        (edit(|i| i.title = "t".repeat(201)), None, "idea.title"),
        (edit(|i| i.theme = "t".repeat(101)), None, "idea.theme"),
        (
            edit(|i| i.description = "\u{7}".into()),
            None,
            "idea.description",
        ),
        (
            edit(|i| i.ward = "sites/SOU/wards/willow".into()),
            None,
            "idea.ward",
        ),
        (
            edit(|i| i.ward = "sites/BAS/wards/no-such".into()),
            None,
            "idea.ward",
        ),
        (edit(|i| i.ward = "cedar".into()), None, "idea.ward"),
        (edit(|_| ()), Some(&["state"][..]), "update_mask"),
        (edit(|_| ()), Some(&["submitter_staff"][..]), "update_mask"),
        (pb::Idea::default(), None, "idea.name"),
        (
            pb::Idea {
                name: first.name.clone(),
                ..Default::default()
            },
            None,
            "update_mask",
        ),
    ] {
        let err = update_idea(&me, idea, paths).await.unwrap_err();
        assert_eq!(fields(&err), [field], "{paths:?}");
    }
    let err = me
        .projects()
        .update_idea(pb::UpdateIdeaRequest::default())
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["idea"]);
    assert_eq!(get_idea(&me, &first.name).await, first);
    suite.stop().await.unwrap();
}
