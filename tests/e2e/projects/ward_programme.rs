//! The ward programme: waves planned at an interval to an end date, wards enrolled into a
//! wave up to its size, each ward's stages (diagnostic, assessment, accredited and
//! re-rated, or withdrawn), and progress by wave and site, seen within the caller's sites.

use chrono::{Datelike, Months, NaiveDate};
use qi_e2e::projects::{create_programme, create_ward};
use qi_e2e::{Caller, TestSuite, code, date, fields, today};
use qi_proto::projects as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::{bas_team, bas_viewer, trust_team};

/// Wards Ash, Beech and Cedar at BAS, Willow at SOU and Oak at BRM; the trust's ward
/// programme and its thematic one: the two, in that order.
async fn programmes(trust: &Caller) -> (pb::Programme, pb::Programme) {
    for (site, ward) in [
        ("BAS", "ash"),
        ("BAS", "beech"),
        ("BAS", "cedar"),
        ("SOU", "willow"),
        ("BRM", "oak"),
    ] {
        create_ward(trust, site, ward).await.unwrap();
    }
    let wards = pb::ProgrammeKind::WardProgramme;
    let programme = create_programme(trust, "trust", "ward-accreditation", wards, "", "")
        .await
        .unwrap();
    let thematic = pb::ProgrammeKind::Thematic;
    let flow = create_programme(trust, "trust", "flow", thematic, "", "Flow")
        .await
        .unwrap();
    (programme, flow)
}

/// The first wave's date: the first of the month two quarters ago.
fn first_wave() -> NaiveDate {
    today().with_day(1).unwrap() - Months::new(6)
}

/// Waves of `size` wards every three months, from [`first_wave`] until 30 months on,
/// towards 60 wards.
fn plan(size: i32) -> pb::WavePlan {
    pb::WavePlan {
        first_wave_date: Some(date(first_wave())),
        interval_months: 3,
        wards_per_wave: size,
        end_date: Some(date(first_wave() + Months::new(30))),
        target_wards: 60,
        ..Default::default()
    }
}

/// Plans the waves of `programme` with `plan`.
async fn plan_waves(
    c: &Caller,
    programme: &str,
    plan: pb::WavePlan,
) -> Result<pb::PlanWavesResponse, Status> {
    let req = pb::PlanWavesRequest {
        programme: programme.into(),
        wave_plan: Some(plan),
        etag: String::new(),
    };
    Ok(c.projects().plan_waves(req).await?.into_inner())
}

/// [`programmes`], the ward programme's waves planned two wards to a wave: the trust's
/// team and the programme's name.
async fn planned(suite: &TestSuite) -> (Caller, String) {
    let trust = trust_team(suite);
    let (programme, _) = programmes(&trust).await;
    plan_waves(&trust, &programme.name, plan(2)).await.unwrap();
    (trust, programme.name)
}

/// Enrols `ward` into wave `wave` of `programme`.
async fn enrol(
    c: &Caller,
    programme: &str,
    ward: &str,
    wave: i32,
) -> Result<pb::WardEnrolment, Status> {
    let req = pb::CreateWardEnrolmentRequest {
        parent: programme.into(),
        ward_enrolment: Some(pb::WardEnrolment {
            ward: ward.into(),
            wave,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let made = c.projects().create_ward_enrolment(req).await?.into_inner();
    Ok(made.ward_enrolment.expect("an enrolment"))
}

/// [`planned`], with Ash (BAS) and Willow (SOU) in wave 1, Beech (BAS) and Oak (BRM) in
/// wave 2: the trust's team, the programme's name and Ash's enrolment.
async fn enrolled(suite: &TestSuite) -> (Caller, String, pb::WardEnrolment) {
    let (trust, programme) = planned(suite).await;
    let ash = enrol(&trust, &programme, "sites/BAS/wards/ash", 1)
        .await
        .unwrap();
    for (ward, wave) in [
        ("sites/SOU/wards/willow", 1),
        ("sites/BAS/wards/beech", 2),
        ("sites/BRM/wards/oak", 2),
    ] {
        enrol(&trust, &programme, ward, wave).await.unwrap();
    }
    (trust, programme, ash)
}

/// Starts the assessment of enrolment `name`.
async fn start_assessment(c: &Caller, name: &str) -> Result<pb::WardEnrolment, Status> {
    let req = pb::StartWardAssessmentRequest {
        name: name.into(),
        ..Default::default()
    };
    let started = c.projects().start_ward_assessment(req).await?.into_inner();
    Ok(started.ward_enrolment.expect("an enrolment"))
}

/// Accredits enrolment `name` with `rating`, `met` of 15 standards met.
async fn accredit(
    c: &Caller,
    name: &str,
    rating: pb::AccreditationRating,
    met: i32,
) -> Result<pb::WardEnrolment, Status> {
    let req = pb::AccreditWardRequest {
        name: name.into(),
        rating: rating as i32,
        standards_met: met,
        standards_assessed: 15,
        ..Default::default()
    };
    let accredited = c.projects().accredit_ward(req).await?.into_inner();
    Ok(accredited.ward_enrolment.expect("an enrolment"))
}

/// Withdraws Oak from `programme` for `reason`.
async fn withdraw_oak(
    c: &Caller,
    programme: &str,
    reason: &str,
) -> Result<pb::WithdrawWardEnrolmentResponse, Status> {
    let req = pb::WithdrawWardEnrolmentRequest {
        name: format!("{programme}/wardEnrolments/brm-oak"),
        reason: reason.into(),
        etag: String::new(),
    };
    Ok(c.projects()
        .withdraw_ward_enrolment(req)
        .await?
        .into_inner())
}

/// [`enrolled`], with Ash assessed and accredited gold and Oak withdrawn: the trust's team
/// and the programme's name.
async fn under_way(suite: &TestSuite) -> (Caller, String) {
    let (trust, programme, ash) = enrolled(suite).await;
    start_assessment(&trust, &ash.name).await.unwrap();
    accredit(&trust, &ash.name, pb::AccreditationRating::Gold, 14)
        .await
        .unwrap();
    withdraw_oak(&trust, &programme, "Ward closed for refurbishment")
        .await
        .unwrap();
    (trust, programme)
}

/// The progress of `programme` as `c` sees it.
async fn progress(c: &Caller, programme: &str) -> pb::GetWardProgrammeProgressResponse {
    let req = pb::GetWardProgrammeProgressRequest {
        programme: programme.into(),
    };
    let progress = c.projects().get_ward_programme_progress(req).await;
    progress.unwrap().into_inner()
}

#[tokio::test]
async fn only_the_trust_wide_team_plans_a_trust_programmes_waves() {
    let suite = TestSuite::start().await;
    let (programme, _) = programmes(&trust_team(&suite)).await;
    let planned = plan_waves(&bas_team(&suite), &programme.name, plan(2)).await;
    assert_eq!(code(planned), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn only_a_ward_programme_has_waves() {
    let suite = TestSuite::start().await;
    let trust = trust_team(&suite);
    let (_, thematic) = programmes(&trust).await;
    let planned = plan_waves(&trust, &thematic.name, plan(2)).await;
    assert_eq!(code(planned), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_wave_plan_needs_an_interval() {
    let suite = TestSuite::start().await;
    let trust = trust_team(&suite);
    let (programme, _) = programmes(&trust).await;
    let no_interval = pb::WavePlan {
        interval_months: 0,
        ..plan(2)
    };
    let bad = plan_waves(&trust, &programme.name, no_interval)
        .await
        .unwrap_err();
    assert_eq!(fields(&bad), ["wave_plan.interval_months"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_plan_lays_out_a_wave_every_interval_until_its_end() {
    let suite = TestSuite::start().await;
    let trust = trust_team(&suite);
    let (programme, _) = programmes(&trust).await;
    let planned = plan_waves(&trust, &programme.name, plan(2)).await.unwrap();
    assert_eq!(planned.waves.len(), 11, "every three months for 30 months");
    assert_eq!(
        planned.waves[1].start_date,
        Some(date(first_wave() + Months::new(3)))
    );
    assert_eq!(
        planned.waves[10].name,
        format!("{}/waves/11", programme.name)
    );
    let kept = planned.programme.unwrap().wave_plan.unwrap();
    assert_eq!(kept.reassessment_months, 6);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn waves_are_listed_in_pages() {
    let suite = TestSuite::start().await;
    let (_, programme) = planned(&suite).await;
    let req = pb::ListWavesRequest {
        parent: programme,
        page_size: 4,
        ..Default::default()
    };
    let waves = bas_viewer(&suite).projects().list_waves(req).await;
    let waves = waves.unwrap().into_inner();
    assert_eq!(waves.waves.len(), 4);
    assert!(!waves.next_page_token.is_empty());
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_ward_joins_its_wave_at_the_diagnostic_stage() {
    let suite = TestSuite::start().await;
    let (trust, programme) = planned(&suite).await;
    let ash = enrol(&trust, &programme, "sites/BAS/wards/ash", 1)
        .await
        .unwrap();
    assert_eq!(ash.name, format!("{programme}/wardEnrolments/bas-ash"));
    assert_eq!(ash.stage, pb::WardStage::Diagnostic as i32);
    assert_eq!(ash.diagnostic_date, Some(date(first_wave())));
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_wave_takes_no_more_wards() {
    let suite = TestSuite::start().await;
    let (trust, programme, _) = enrolled(&suite).await;
    let full = enrol(&trust, &programme, "sites/BAS/wards/cedar", 1)
        .await
        .unwrap_err();
    assert_eq!(full.code(), Code::FailedPrecondition);
    assert_eq!(full.get_details_error_info().unwrap().reason, "WAVE_FULL");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_ward_is_enrolled_once() {
    let suite = TestSuite::start().await;
    let (trust, programme, _) = enrolled(&suite).await;
    let again = enrol(&trust, &programme, "sites/BAS/wards/ash", 3).await;
    assert_eq!(code(again), Code::AlreadyExists);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_enrolment_names_a_wave_not_planned_or_a_ward_that_does_not_exist() {
    let suite = TestSuite::start().await;
    let (trust, programme) = planned(&suite).await;
    let err = enrol(&trust, &programme, "sites/BAS/wards/ash", 40)
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["ward_enrolment.wave"]);
    let err = enrol(&trust, &programme, "sites/BAS/wards/nowhere", 3)
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["ward_enrolment.ward"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_sites_team_does_not_enrol_wards_into_a_trust_programme() {
    let suite = TestSuite::start().await;
    let (_, programme) = planned(&suite).await;
    let made = enrol(&bas_team(&suite), &programme, "sites/BAS/wards/cedar", 3).await;
    assert_eq!(code(made), Code::PermissionDenied);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_wave_plan_is_fixed_once_wards_join() {
    let suite = TestSuite::start().await;
    let (trust, programme, _) = enrolled(&suite).await;
    let replanned = plan_waves(&trust, &programme, plan(5)).await;
    assert_eq!(code(replanned), Code::FailedPrecondition);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_sites_ward_programme_takes_its_own_wards_only() {
    let suite = TestSuite::start().await;
    programmes(&trust_team(&suite)).await;
    let bas = bas_team(&suite);
    let wards = pb::ProgrammeKind::WardProgramme;
    let local = create_programme(&bas, "sites/BAS", "bas-wards", wards, "", "")
        .await
        .unwrap();
    plan_waves(&bas, &local.name, plan(5)).await.unwrap();
    let err = enrol(&bas, &local.name, "sites/SOU/wards/willow", 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_ward_is_assessed_once_before_it_is_accredited() {
    let suite = TestSuite::start().await;
    let (trust, _, ash) = enrolled(&suite).await;
    let early = accredit(&trust, &ash.name, pb::AccreditationRating::Gold, 15).await;
    assert_eq!(code(early), Code::FailedPrecondition);
    let assessing = start_assessment(&trust, &ash.name).await.unwrap();
    assert_eq!(assessing.stage, pb::WardStage::Assessment as i32);
    assert_eq!(
        code(start_assessment(&trust, &ash.name).await),
        Code::FailedPrecondition
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_accreditation_names_a_missing_rating_and_more_standards_met_than_assessed() {
    let suite = TestSuite::start().await;
    let (trust, _, ash) = enrolled(&suite).await;
    start_assessment(&trust, &ash.name).await.unwrap();
    let err = accredit(&trust, &ash.name, pb::AccreditationRating::Unspecified, 16)
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["rating", "standards_met"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn accreditation_rates_a_ward_and_is_due_again_in_six_months() {
    let suite = TestSuite::start().await;
    let (trust, _, ash) = enrolled(&suite).await;
    start_assessment(&trust, &ash.name).await.unwrap();
    let silver = accredit(&trust, &ash.name, pb::AccreditationRating::Silver, 12)
        .await
        .unwrap();
    assert_eq!(
        (silver.stage, silver.rating),
        (
            pb::WardStage::Accredited as i32,
            pb::AccreditationRating::Silver as i32
        )
    );
    assert_eq!(
        silver.reassessment_due_date,
        Some(date(today() + Months::new(6)))
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn reassessment_re_rates_an_accredited_ward() {
    let suite = TestSuite::start().await;
    let (trust, _, ash) = enrolled(&suite).await;
    start_assessment(&trust, &ash.name).await.unwrap();
    accredit(&trust, &ash.name, pb::AccreditationRating::Silver, 12)
        .await
        .unwrap();
    let gold = accredit(&trust, &ash.name, pb::AccreditationRating::Gold, 14)
        .await
        .unwrap();
    assert_eq!(
        gold.rating,
        pb::AccreditationRating::Gold as i32,
        "reassessment re-rates"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_ward_is_withdrawn_once_and_with_a_reason() {
    let suite = TestSuite::start().await;
    let (trust, programme, _) = enrolled(&suite).await;
    let err = withdraw_oak(&trust, &programme, "").await.unwrap_err();
    assert_eq!(fields(&err), ["reason"]);
    withdraw_oak(&trust, &programme, "Ward closed for refurbishment")
        .await
        .unwrap();
    assert_eq!(
        code(withdraw_oak(&trust, &programme, "again").await),
        Code::FailedPrecondition
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_withdrawn_ward_is_not_assessed() {
    let suite = TestSuite::start().await;
    let (trust, programme) = under_way(&suite).await;
    let oak = format!("{programme}/wardEnrolments/brm-oak");
    assert_eq!(
        code(start_assessment(&trust, &oak).await),
        Code::FailedPrecondition
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn progress_counts_waves_done_and_to_come_and_wards_by_stage_wave_and_site() {
    let suite = TestSuite::start().await;
    let (trust, programme) = under_way(&suite).await;
    let all = progress(&trust, &programme).await;
    assert_eq!(all.waves_planned, 11);
    assert_eq!(
        all.waves_started, 3,
        "the waves of two quarters ago, last quarter and this one"
    );
    assert_eq!(all.waves_remaining, 8);
    assert_eq!(all.wards_enrolled, 3);
    assert_eq!(all.wards_to_target, 57);
    let totals = all.totals.unwrap();
    assert_eq!(
        (
            totals.diagnostic,
            totals.accredited,
            totals.gold,
            totals.withdrawn
        ),
        (2, 1, 1, 1)
    );
    let wave1: Vec<(String, i32)> = all.waves[0]
        .sites
        .iter()
        .map(|s| (s.site.clone(), s.counts.as_ref().unwrap().enrolled))
        .collect();
    assert_eq!(
        wave1,
        [("sites/BAS".to_owned(), 1), ("sites/SOU".to_owned(), 1)]
    );
    assert_eq!(
        all.waves[1].wave.as_ref().unwrap().enrolled_count,
        1,
        "withdrawn wards leave the count"
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_site_sees_the_progress_and_enrolments_of_its_own_wards() {
    let suite = TestSuite::start().await;
    let (_, programme) = under_way(&suite).await;
    let viewer = bas_viewer(&suite);
    let mine = progress(&viewer, &programme).await;
    assert_eq!(mine.sites, ["sites/BAS"]);
    assert_eq!(mine.wards_enrolled, 2);
    assert!(
        mine.waves
            .iter()
            .flat_map(|w| &w.sites)
            .all(|s| s.site == "sites/BAS")
    );
    let req = pb::ListWardEnrolmentsRequest {
        parent: programme,
        ..Default::default()
    };
    let listed = viewer.projects().list_ward_enrolments(req).await;
    let listed = listed.unwrap().into_inner().ward_enrolments;
    assert_eq!(
        listed.iter().map(|e| e.ward.as_str()).collect::<Vec<_>>(),
        ["sites/BAS/wards/ash", "sites/BAS/wards/beech"]
    );
    suite.stop().await.unwrap();
}
